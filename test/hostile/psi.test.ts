/**
 * A hostile engine's playback that starts well and then goes bad: the PAT or the PMT stops (PSI
 * lost), every packet turns null, or real TS comes at a tenth of real time. The stream was live, so the
 * supervisor reconnects first, and fails over to the good engine when it happens again; the
 * viewer plays on throughout. Checks after each case: hostile.ts afterCase.
 */
import t from 'tap';
import { setUp, recovers } from './hostile';

t.test('hostile engine playback that goes bad', async (t) => {
  const b = await setUp(t);
  await recovers(t, b, 0xb4, { dropPatAfterBytes: 400_000 }, 'psi-lost', /no PAT for 1500 ms/, 'PAT lost mid-stream', true);
  await recovers(t, b, 0xb7, { dropPmtAfterBytes: 400_000 }, 'psi-lost', /no PMT for 1500 ms/, 'PMT lost mid-stream', true);
  await recovers(t, b, 0xb5, { nullsAfterBytes: 400_000 }, 'unplayable', /TS packets, all null/, 'only null packets after a while', true);
  // 20 KB/s of real TS from a 1.4 Mb/s sample: ~11 % of real time, with a PAT every ~1 s.
  await recovers(
    t,
    b,
    0xb6,
    { dripBps: 20_000 },
    'unplayable',
    /of real time\): too slow to play/,
    'real TS at a tenth of real time',
    true,
  );
});
