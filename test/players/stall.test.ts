/** ffmpeg and mpv through acemux while the engine sends nothing for 10 s (test/helpers/splice-rig.ts). */
import t from 'tap';
import { runFault, assertClean } from '../helpers/splice-rig';
import { haveFfmpeg, haveMpv } from '../helpers/players';

t.setTimeout(100_000);
if (!haveFfmpeg || !haveMpv) t.skip('ffmpeg and mpv are needed (Debian packages ffmpeg, mpv)', () => {});
else t.test('stall of 10 s', async (t) => assertClean(t, await runFault('stall', { stallMs: 10_000 })));
