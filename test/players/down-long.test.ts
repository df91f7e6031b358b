/**
 * ffmpeg and mpv through acemux while the engine is down for 90 s (a container restart or an
 * engine update): players stay connected on keepalive and play on afterwards. The outage is
 * ACEMUX_TEST_OUTAGE_S seconds (default 90, which CI runs); a shorter one makes a quick local run.
 */
import t from 'tap';
import { runFault, assertClean } from '../helpers/splice-rig';
import { haveFfmpeg, haveMpv } from '../helpers/players';

const outageS = Number(process.env.ACEMUX_TEST_OUTAGE_S ?? 90);
// The outage itself plus its recovery, at most half of the limit even on a loaded machine.
t.setTimeout((outageS + 60) * 2 * 1000);
if (!haveFfmpeg || !haveMpv) t.skip('ffmpeg and mpv are needed (Debian packages ffmpeg, mpv)', () => {});
else t.test(`engine down ${outageS} s`, async (t) => assertClean(t, await runFault('down', { downMs: outageS * 1000 })));
