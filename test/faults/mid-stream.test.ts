/** Faults mid-stream: stall, drop, engine restart; clean splices (helpers in ./common.ts). */
import t from 'tap';
import { startSim } from '../helpers/sim';
import { startAcemux, freePort } from '../helpers/acemux';
import { sleep, contentId } from '../helpers/client';
import { readPcr, discontinuityIndicator } from '../../src/shared/mpegts/ts-packet';
import { FAST, TS, NULL_PID, watch, countPid, assertPlayed, assertNoLeak, events, decodes } from './common';

t.test('stall mid-stream: reconnect, keepalive through the gap, decodes across the splice', async (t) => {
  const sim = await startSim(['--bitrate', '3000000']);
  const ace = await startAcemux(sim.origin, FAST);
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  const id = contentId(0xa3);
  await sim.setFaults({ ids: { [id]: { stallAfterBytes: 600_000 } } });
  const r = await watch(`${ace.origin}/ace/getstream?id=${id}`, 6000);
  assertPlayed(t, r, 'stall');
  t.ok(r.body.length > 900_000, `data after the splice (${r.body.length} bytes)`);
  const ev = await events(ace);
  t.ok(
    ev.some((e) => e.kind === 'reconnect' && e.fault === 'stalled'),
    'a stall led to a reconnect',
  );
  t.ok(countPid(r.body, 0) > 2, 'PATs on both sides of the splice');
  decodes(t, r.body, 'across a stall splice', 5);
  await sim.resetFaults();
  await assertNoLeak(t, ace, sim);
});

t.test('drop mid-stream: reconnect at a clean point with discontinuity_indicator set', async (t) => {
  const sim = await startSim(['--bitrate', '3000000']);
  const ace = await startAcemux(sim.origin, FAST);
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  const id = contentId(0xa4);
  await sim.setFaults({ ids: { [id]: { dropAfterBytes: 500_000 } } });
  const r = await watch(`${ace.origin}/ace/getstream?id=${id}`, 5000);
  assertPlayed(t, r, 'drop');
  let flagged = 0;
  for (let off = 0; off + TS <= r.body.length; off += TS) if (readPcr(r.body, off) >= 0 && discontinuityIndicator(r.body, off)) flagged++;
  t.ok(flagged >= 1, `the first PCR after each splice is flagged (${flagged})`);
  t.ok(
    (await events(ace)).some((e) => e.fault === 'ended'),
    'the drop was seen as the stream ending',
  );
  decodes(t, r.body, 'across a drop splice', 4);
  await sim.resetFaults();
  await assertNoLeak(t, ace, sim);
});

t.test('engine restart: the session is gone, a new one is made, players play on', async (t) => {
  const sim = await startSim();
  const ace = await startAcemux(sim.origin, FAST);
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  const playing = watch(`${ace.origin}/ace/getstream?id=${contentId(0xa6)}`, 6000);
  await sleep(2000);
  await sim.restart();
  const r = await playing;
  assertPlayed(t, r, 'engine restart');
  const st = await sim.stats();
  t.ok(st.sessionsStarted >= 2, 'a fresh session after the restart');
  t.ok(
    (await events(ace)).some((e) => e.action === 'new-session'),
    'decided: new session',
  );
  await assertNoLeak(t, ace, sim);
});

t.test('engine down past the retry limit: players kept on keepalive, a joiner too, then data', async (t) => {
  const port = await freePort();
  let sim = await startSim(['--port', String(port)]);
  // 3 attempts at ≤ 800 ms would give up within ~3 s without S6; the outage lasts ~6 s.
  const ace = await startAcemux(sim.origin, [...FAST, '--retry-attempts', '3', '--max-switches', '2']);
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  const id = contentId(0xa8);
  const playing = watch(`${ace.origin}/ace/getstream?id=${id}`, 11_000);
  await sleep(2000);
  await sim.stop();
  await sleep(3000);
  const joiner = await watch(`${ace.origin}/ace/getstream?id=${id}`, 1500);
  t.equal(joiner.status, 200, 'a player joining during the outage is answered 200');
  // It starts at the ring's last clean join point (the stream before the outage), then keepalive.
  const body = joiner.body.subarray(0, joiner.body.length - (joiner.body.length % TS));
  let tail = 0;
  while (tail * TS < body.length && countPid(body.subarray(body.length - (tail + 1) * TS, body.length - tail * TS), NULL_PID) === 1) tail++;
  t.ok(tail >= 7, `and gets keepalive null packets after the replayed history (${tail} trailing)`);
  await sleep(1000);
  const back = Date.now();
  sim = await startSim(['--port', String(port)]);
  const r = await playing;
  t.equal(r.ended, 'closed-by-us', 'the first player was never ended by acemux');
  t.ok(r.maxGapMs < 1200, `never silent for long (longest gap ${r.maxGapMs} ms)`);
  const ev = await events(ace);
  t.notOk(
    ev.some((e) => e.kind === 'give-up'),
    'not given up while players were connected',
  );
  const live = ev.filter((e) => e.kind === 'stream-live' && e.recovered && Number(e.time) >= back);
  t.ok(
    live.length > 0 && Number(live[0]!.time) - back <= 1000,
    `data flowing again ${live.length ? Number(live[0]!.time) - back : '-'} ms after the engine came back`,
  );
  await assertNoLeak(t, ace, sim);
});
