/** Failover: a dead engine, dead alternate ids, rapid channel switching (helpers in ./common.ts). */
import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSim } from '../helpers/sim';
import { startAcemux } from '../helpers/acemux';
import { fetchStream, getJson, sleep, contentId } from '../helpers/client';
import { FAST, watch, assertPlayed, assertNoLeak, events } from './common';

t.test('one of two engines dies: its stream fails over to the other', async (t) => {
  const a = await startSim();
  const b = await startSim();
  const ace = await startAcemux([a.origin, b.origin], [...FAST, '--engine-probe', '300ms']);
  t.teardown(async () => {
    await ace.stop();
    await a.stop();
    await b.stop();
  });
  const x = contentId(0xb1);
  const y = contentId(0xb2);
  const px = watch(`${ace.origin}/ace/getstream?id=${x}`, 7000);
  await sleep(300);
  const py = watch(`${ace.origin}/ace/getstream?id=${y}`, 6500);
  await sleep(1500);
  const sx = (await getJson(`${ace.origin}/ace/status?id=${x}`)).body;
  const sy = (await getJson(`${ace.origin}/ace/status?id=${y}`)).body;
  t.not(sx.engine, sy.engine, 'the two streams went to different engines (least loaded)');
  const victim = sx.engine === a.origin ? a : b;
  const survivor = victim === a ? b : a;
  await victim.stop();
  const [rx, ry] = await Promise.all([px, py]);
  assertPlayed(t, rx, 'the stream on the dead engine');
  assertPlayed(t, ry, 'the stream on the live engine');
  const ev = await events(ace);
  t.ok(
    ev.some((e) => e.kind === 'failover'),
    'a failover was decided',
  );
  t.ok(
    ev.some((e) => e.kind === 'engine-health' && e.healthy === false),
    'the dead engine was marked unhealthy',
  );
  const ready = await getJson(`${ace.origin}/ace/status`);
  t.equal(ready.status, 200);
  await assertNoLeak(t, ace, survivor);
});

t.test('a channel whose first two ids are dead plays from the third', async (t) => {
  const sim = await startSim();
  const [d1, d2, good] = [contentId(0xc1), contentId(0xc2), contentId(0xc3)];
  const dir = mkdtempSync(join(tmpdir(), 'acemux-ch-'));
  const file = join(dir, 'channels.json');
  writeFileSync(file, JSON.stringify({ channels: [{ name: 'Test One', ids: [d1, d2, good] }] }));
  const ace = await startAcemux(sim.origin, [...FAST, '--channels', file]);
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  await sim.setFaults({ ids: { [d1]: { getstreamError: 'failed to load content' }, [d2]: { playbackStatus: 500 } } });
  const r = await watch(`${ace.origin}/ace/channel/test-one`, 5000);
  assertPlayed(t, r, 'channel with alternates');
  const st = await getJson(`${ace.origin}/ace/status?id=${good}`);
  t.equal(st.status, 200, 'now playing the third id');
  t.equal(st.body.channel, 'Test One');
  const ev = await events(ace);
  t.ok(ev.filter((e) => e.kind === 'failover').length >= 2, 'two failovers');
  t.equal((await getJson(`${ace.origin}/ace/channel/nope`)).status, 404);
  for (const [q, why] of [
    [`id=${good}`, /remove "id"/],
    ['pid=7', /"pid" is set by acemux/],
    ['a=1&a=2', /"a" given more than once/],
  ] as const) {
    const bad = await getJson(`${ace.origin}/ace/channel/test-one?${q}`);
    t.equal(bad.status, 400, q);
    t.match(bad.body.error, why, q);
  }
  await sim.resetFaults();
  await assertNoLeak(t, ace, sim);
});

t.test('rapid channel switching leaves nothing behind', async (t) => {
  const sim = await startSim(['--bitrate', '2000000']);
  const ace = await startAcemux(sim.origin, [...FAST, '--grace', '300ms']);
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  const ids = [contentId(0xf1), contentId(0xf2), contentId(0xf3)];
  let ok = 0;
  for (let round = 0; round < 60; round++) {
    // Five quick zaps at once across the channels, each gone after a few ms.
    const zaps = Array.from({ length: 5 }, (_, i) =>
      fetchStream(`${ace.origin}/ace/getstream?id=${ids[(round + i) % 3]}`, { ms: 5 + ((round * 7 + i * 13) % 60) }).then(
        (r) => r.status === 200 && ok++,
        () => {},
      ),
    );
    await Promise.all(zaps);
  }
  t.ok(ok >= 250, `${ok} of 300 zaps answered 200`);
  await assertNoLeak(t, ace, sim);
  const st = await sim.stats();
  t.equal(st.secondReaders, 0, 'never two readers on one playback URL');
  t.equal(st.sessionsStarted, st.sessionsStopped + st.sessionsEvicted + st.sessionsExpired, 'every session we started was ended');
});

t.test('a burst of new channels is spread over the engines while their getstreams are out', async (t) => {
  // Slow answers: all four requests are out before any session exists. The load must count
  // streams whose getstream is still pending, or every one would see 0/0 and pick the first.
  const a = await startSim();
  const b = await startSim();
  for (const s of [a, b]) await s.setFaults({ global: { getstreamDelayMs: 400 } });
  const ace = await startAcemux([a.origin, b.origin], FAST);
  t.teardown(async () => {
    await ace.stop();
    await a.stop();
    await b.stop();
  });
  const ids = [0xc1, 0xc2, 0xc3, 0xc4].map(contentId);
  const plays = ids.map((id) => fetchStream(`${ace.origin}/ace/getstream?id=${id}`, { ms: 2500 }));
  await Promise.all(plays);
  const [sa, sb] = await Promise.all([a.stats(), b.stats()]);
  t.equal(sa.sessionsStarted + sb.sessionsStarted, 4, 'one session per channel');
  t.equal(sa.sessionsStarted, 2, 'two on the first engine');
  t.equal(sb.sessionsStarted, 2, 'two on the second');
});
