/**
 * An actor thread dies of an uncaught throw (as a bug in the actor would make it): the supervisor
 * restarts the actor on a live thread, and the player's connection carries on. The throw comes
 * from a test-only actor entry that wraps the real one (helpers/crashing-actor.cjs); acemux itself
 * has no crash hook.
 */
import t from 'tap';
import { FAST } from './faults/common';
import { join } from 'node:path';
import { startSim } from './helpers/sim';
import { startAcemux } from './helpers/acemux';
import { fetchStream, getJson, aligned, contentId } from './helpers/client';
import { until } from './helpers/wait';
import { pidOf } from '../src/shared/mpegts/ts-packet';

const TS = 188;
const CRASHING = join(__dirname, 'helpers', 'crashing-actor.cjs');

t.test('actor crash: the thread dies, the actor restarts, the client stays connected', async (t) => {
  const sim = await startSim(['--bitrate', '3000000']);
  const ace = await startAcemux(sim.origin, FAST, { CRASH_AFTER_BYTES: String(400_000) }, CRASHING);
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  const id = contentId(0xa7);
  let last = 0;
  let maxGapMs = 0;
  let bytes = 0;
  const playing = fetchStream(`${ace.origin}/ace/getstream?id=${id}`, {
    ms: 8000,
    onData: (d, at) => {
      if (last) maxGapMs = Math.max(maxGapMs, at - last);
      last = at;
      bytes += d.length;
    },
  });
  type Ev = { kind: string; error?: string; life?: number };
  let restart: Ev | undefined;
  await until(
    async () => {
      const ev: Ev[] = (await getJson(`${ace.origin}/ace/status`)).body.events ?? [];
      restart = ev.find((e) => e.kind === 'actor-restart');
      return restart !== undefined;
    },
    'an actor-restart event',
    10_000,
    100,
  );
  const atRestart = bytes;
  t.match(restart, { error: /test: actor crash/, life: 1 }, "the restart names the thread's death and starts life 1");
  // The client keeps receiving from the restarted actor on the same connection.
  await until(() => bytes > atRestart + 500_000, 'data after the restart', 10_000);
  const st = await getJson(`${ace.origin}/ace/status?id=${id}`);
  t.equal(st.status, 200);
  t.equal(st.body.clients, 1, 'the client is still attached to the stream');
  t.equal(ace.proc.exitCode, null, 'acemux is still running');
  const r = await playing;
  t.equal(r.status, 200);
  t.equal(r.ended, 'closed-by-us', 'the server never ended the response');
  const whole = r.body.subarray(0, r.body.length - (r.body.length % TS));
  t.ok(aligned(whole), 'packet-aligned across the restart');
  t.ok(maxGapMs < 1200, `never silent for long (longest gap ${maxGapMs} ms)`);
  t.ok([0, 0x1fff].includes(pidOf(r.body, 0)), 'starts with keepalive or a PAT');
});
