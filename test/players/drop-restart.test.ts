/**
 * ffmpeg and mpv through acemux while the engine drops the playback connection, then while it
 * restarts (sessions forgotten): clean splices, lip sync, quick return (test/helpers/splice-rig.ts).
 */
import t from 'tap';
import { runFault, assertClean } from '../helpers/splice-rig';
import { haveFfmpeg, haveMpv } from '../helpers/players';

t.setTimeout(100_000);
if (!haveFfmpeg || !haveMpv) t.skip('ffmpeg and mpv are needed (Debian packages ffmpeg, mpv)', () => {});
else {
  t.test('drop: the engine closes the playback connection mid-stream', async (t) => assertClean(t, await runFault('drop')));
  t.test('engine restart: every session forgotten at once', async (t) => assertClean(t, await runFault('restart')));
}
