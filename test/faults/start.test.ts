/** Faults before or at the start of a stream: engine down, getstream error, hang, 500, slow start (helpers in ./common.ts). */
import t from 'tap';
import { startSim, type SimHandle } from '../helpers/sim';
import { startAcemux, freePort } from '../helpers/acemux';
import { getJson, sleep, contentId } from '../helpers/client';
import { FAST, TS, NULL_PID, watch, firstData, countPid, assertPlayed, assertNoLeak, events } from './common';

t.test('engine down at start: keepalive until it comes up, then the stream', async (t) => {
  const port = await freePort();
  const ace = await startAcemux(`http://127.0.0.1:${port}`, [...FAST, '--headers-within', '300ms', '--retry-attempts', '20']);
  let sim: SimHandle | null = null;
  t.teardown(async () => {
    await ace.stop();
    await sim?.stop();
  });
  const id = contentId(0xd0);
  const playing = watch(`${ace.origin}/ace/getstream?id=${id}`, 6000);
  await sleep(2000);
  sim = await startSim(['--port', String(port)]);
  const r = await playing;
  assertPlayed(t, r, 'engine down at start');
  t.ok(countPid(r.body.subarray(0, firstData(r.body)), NULL_PID) >= 5, 'null packets while the engine was down');
  const ev = await events(ace);
  t.ok(
    ev.some((e) => e.kind === 'retry'),
    'retries were logged as events',
  );
  await assertNoLeak(t, ace, sim);
});

t.test("getstream error: a clear 502 with the engine's words, nothing left behind", async (t) => {
  const sim = await startSim();
  const ace = await startAcemux(sim.origin, FAST);
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  const id = contentId(0xe1);
  await sim.setFaults({ ids: { [id]: { getstreamError: 'failed to load content' } } });
  const r = await getJson(`${ace.origin}/ace/getstream?id=${id}`);
  t.equal(r.status, 502);
  t.match(r.body.error, /failed to load content/);
  const ev = await events(ace);
  t.ok(
    ev.some((e) => e.kind === 'give-up'),
    'the give-up is an event',
  );
  await assertNoLeak(t, ace, sim);
});

t.test('hang before headers: keepalive, then a fresh session once the engine answers', async (t) => {
  const sim = await startSim();
  const ace = await startAcemux(sim.origin, [...FAST, '--retry-attempts', '20']);
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  await sim.setFaults({ global: { hangBeforeHeaders: true } });
  const playing = watch(`${ace.origin}/ace/getstream?id=${contentId(0xa1)}`, 7000);
  await sleep(2500);
  await sim.resetFaults();
  const r = await playing;
  assertPlayed(t, r, 'hang before headers');
  t.ok(firstData(r.body) > 0, 'null packets first');
  t.ok(
    (await events(ace)).some((e) => e.fault === 'headers-timeout'),
    'the headers timeout was seen',
  );
  await assertNoLeak(t, ace, sim);
});

t.test('playback 500: retried with backoff until the engine serves', async (t) => {
  const sim = await startSim();
  const ace = await startAcemux(sim.origin, [...FAST, '--retry-attempts', '20']);
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  await sim.setFaults({ global: { playbackStatus: 500 } });
  const playing = watch(`${ace.origin}/ace/getstream?id=${contentId(0xa2)}`, 5000);
  await sleep(1500);
  await sim.resetFaults();
  const r = await playing;
  assertPlayed(t, r, 'playback 500');
  const ev = await events(ace);
  t.ok(ev.filter((e) => e.fault === 'status').length >= 2, 'several attempts were made');
  const delays = ev.filter((e) => e.fault === 'status').map((e) => Number(e.delay_ms));
  t.ok(
    delays.every((d) => d >= 0 && d <= 800),
    `delays within the cap: ${delays.join(', ')}`,
  );
  await assertNoLeak(t, ace, sim);
});

t.test('slow start: null packets from the first moment until the engine has prebuffered', async (t) => {
  const sim = await startSim();
  const ace = await startAcemux(sim.origin, [...FAST, '--playback-timeout', '10s']);
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  await sim.setFaults({ global: { slowStartMs: 3000 } });
  const r = await watch(`${ace.origin}/ace/getstream?id=${contentId(0xa5)}`, 5000);
  assertPlayed(t, r, 'slow start');
  t.ok(r.firstByteMs < 600, `first byte after ${r.firstByteMs} ms`);
  t.ok(countPid(r.body.subarray(0, firstData(r.body)), NULL_PID) >= 10, 'null packets while the engine prebuffered');
  const nul = r.body.subarray(0, TS);
  t.same([...nul.subarray(0, 4)], [0x47, 0x1f, 0xff, 0x10], 'spec-correct null packet header');
  t.ok(
    nul.subarray(4).every((b) => b === 0xff),
    'null packet payload all 0xFF',
  );
  await assertNoLeak(t, ace, sim);
});
