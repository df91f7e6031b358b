/**
 * A hostile engine's playback from the start: a 1 byte/s trickle, 4 Mb/s of random bytes, and
 * valid TS that never carries a PAT. None of these is health: the actor reports 'unplayable'
 * after --stall-timeout (1.5 s here), the stream never went live, so the supervisor fails over
 * to the good engine at once; the client gets keepalive, then real data; the fault shows in
 * events and in /ace/status (last_fault). Checks after each case: hostile.ts afterCase.
 */
import t from 'tap';
import { setUp, recovers } from './hostile';

t.test('hostile engine playback', async (t) => {
  const b = await setUp(t);
  await recovers(t, b, 0xb1, { dripBps: 1 }, 'unplayable', /no whole TS packet/, '1 byte/s trickle');
  await recovers(t, b, 0xb2, { junk: true }, 'unplayable', /no whole TS packet|no PAT/, '4 Mb/s of random bytes');
  await recovers(t, b, 0xb3, { dropPatAfterBytes: 0 }, 'unplayable', /TS packets but no PAT/, 'TS without a PAT');
});
