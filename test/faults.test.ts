/**
 * Fault injection: the simulator's fault switches against the real acemux, one test per fault.
 * Each asserts what a player sees — bytes keep flowing (keepalive null packets through gaps) and
 * stay packet-aligned, or the response ends cleanly — and, from the simulator's counters, that
 * no engine session is left behind.
 */
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSim, type SimHandle } from './helpers/sim';
import { startAcemux, freePort, type Acemux } from './helpers/acemux';
import { fetchStream, getJson, aligned, sleep, contentId, type Received } from './helpers/client';
import { readPcr, discontinuityIndicator, pidOf } from '../src/shared/mpegts/ts-packet';
import { ccErrors, describeErrors, truncatedPes } from './helpers/ts-check';

const TS = 188;
const NULL_PID = 0x1fff;
const FAST = ['--stall-timeout', '1500ms', '--first-data-timeout', '4s', '--playback-timeout', '1500ms', '--retry-base', '150ms', '--retry-cap', '800ms', '--grace', '400ms', '--keepalive', '200ms', '--stat-interval', '500ms', '--engine-timeout', '3s'];
const hasFfmpeg = !spawnSync('ffmpeg', ['-version']).error;

interface Watched extends Received {
  maxGapMs: number;
}

/** Reads a stream for `ms`, recording the longest silence between two data events. */
async function watch(url: string, ms: number): Promise<Watched> {
  let last = 0;
  let maxGapMs = 0;
  const r = await fetchStream(url, {
    ms,
    onData: (_d, at) => {
      if (last) maxGapMs = Math.max(maxGapMs, at - last);
      last = at;
    },
  });
  return { ...r, maxGapMs };
}

const whole = (b: Buffer) => b.subarray(0, b.length - (b.length % TS));
const firstData = (b: Buffer) => {
  let off = 0;
  while (off + TS <= b.length && pidOf(b, off) === NULL_PID) off += TS;
  return off;
};
const countPid = (b: Buffer, pid: number) => {
  let n = 0;
  for (let off = 0; off + TS <= b.length; off += TS) if (pidOf(b, off) === pid) n++;
  return n;
};

/** What every test asserts of a played stream: continuous, aligned, starting clean. */
function assertPlayed(t: Test, r: Watched, what: string): void {
  t.equal(r.status, 200, `${what}: 200`);
  t.ok(aligned(whole(r.body)), `${what}: packet-aligned throughout`);
  t.ok(r.maxGapMs < 1200, `${what}: never silent for long (longest gap ${r.maxGapMs} ms)`);
  const off = firstData(r.body);
  t.ok(off < r.body.length, `${what}: real data arrived`);
  t.equal(pidOf(r.body, off), 0, `${what}: the first data packet is a PAT`);
  t.equal(describeErrors(ccErrors(whole(r.body))), 'none', `${what}: no continuity error on any PID`);
  t.equal(describeErrors(truncatedPes(whole(r.body))), 'none', `${what}: no truncated PES`);
}

/** After the clients are gone and the grace period has passed, the engine holds no session of ours. */
async function assertNoLeak(t: Test, ace: Acemux, ...sims: SimHandle[]): Promise<void> {
  await sleep(1500);
  for (const sim of sims) {
    const st = await sim.stats();
    t.equal(st.sessionsActive, 0, `no engine session left on ${sim.origin}`);
    t.equal(st.playbackActive, 0, 'no playback connection left');
  }
  t.equal((await getJson(`${ace.origin}/ace/status`)).body.streams, 0, 'no stream left in acemux');
}

async function events(ace: Acemux, id?: string): Promise<Array<{ kind: string; [k: string]: unknown }>> {
  const r = await getJson(`${ace.origin}/ace/status${id ? `?id=${id}` : ''}`);
  return r.body.events ?? [];
}

/**
 * ffprobe demuxes the capture without an error and decodes most of its pictures. A splice can
 * leave one truncated picture (the old upstream ended mid-frame): a decoder conceals it.
 */
function decodes(t: Test, body: Buffer, what: string, seconds: number): void {
  if (!hasFfmpeg) return void t.skip(`${what}: ffprobe not installed`);
  let last = 0;
  for (let off = 0; off + TS <= body.length; off += TS) if (pidOf(body, off) === 0x100 && body[off + 1]! & 0x40) last = off;
  const file = join(mkdtempSync(join(tmpdir(), 'acemux-')), 'splice.ts');
  writeFileSync(file, body.subarray(0, last));
  const demux = spawnSync('ffprobe', ['-v', 'error', '-show_packets', file]);
  t.equal(demux.status, 0, `${what}: ffprobe demuxes it`);
  t.equal(demux.stderr.toString().trim(), '', `${what}: without demux errors`);
  const frames = spawnSync('ffprobe', ['-v', 'quiet', '-count_frames', '-select_streams', 'v', '-show_entries', 'stream=nb_read_frames', '-of', 'csv=p=0', file]);
  const n = Number(frames.stdout.toString().trim().split(/\s+/)[0]);
  t.ok(n >= seconds * 25 * 0.6, `${what}: ${n} pictures decoded from ~${seconds} s`);
}

t.test('engine down at start: keepalive until it comes up, then the stream', async (t) => {
  const port = await freePort();
  const ace = await startAcemux(`http://127.0.0.1:${port}`, [...FAST, '--headers-within', '300ms', '--retry-attempts', '20']);
  let sim: SimHandle | null = null;
  t.teardown(async () => { await ace.stop(); await sim?.stop(); });
  const id = contentId(0xd0);
  const playing = watch(`${ace.origin}/ace/getstream?id=${id}`, 6000);
  await sleep(2000);
  sim = await startSim(['--port', String(port)]);
  const r = await playing;
  assertPlayed(t, r, 'engine down at start');
  t.ok(countPid(r.body.subarray(0, firstData(r.body)), NULL_PID) >= 5, 'null packets while the engine was down');
  const ev = await events(ace);
  t.ok(ev.some((e) => e.kind === 'retry'), 'retries were logged as events');
  await assertNoLeak(t, ace, sim);
});

t.test('getstream error: a clear 502 with the engine\'s words, nothing left behind', async (t) => {
  const sim = await startSim();
  const ace = await startAcemux(sim.origin, FAST);
  t.teardown(async () => { await ace.stop(); await sim.stop(); });
  const id = contentId(0xe1);
  await sim.setFaults({ ids: { [id]: { getstreamError: 'failed to load content' } } });
  const r = await getJson(`${ace.origin}/ace/getstream?id=${id}`);
  t.equal(r.status, 502);
  t.match(r.body.error, /failed to load content/);
  const ev = await events(ace);
  t.ok(ev.some((e) => e.kind === 'give-up'), 'the give-up is an event');
  await assertNoLeak(t, ace, sim);
});

t.test('hang before headers: keepalive, then a fresh session once the engine answers', async (t) => {
  const sim = await startSim();
  const ace = await startAcemux(sim.origin, [...FAST, '--retry-attempts', '20']);
  t.teardown(async () => { await ace.stop(); await sim.stop(); });
  await sim.setFaults({ global: { hangBeforeHeaders: true } });
  const playing = watch(`${ace.origin}/ace/getstream?id=${contentId(0xa1)}`, 7000);
  await sleep(2500);
  await sim.resetFaults();
  const r = await playing;
  assertPlayed(t, r, 'hang before headers');
  t.ok(firstData(r.body) > 0, 'null packets first');
  t.ok((await events(ace)).some((e) => e.fault === 'headers-timeout'), 'the headers timeout was seen');
  await assertNoLeak(t, ace, sim);
});

t.test('playback 500: retried with backoff until the engine serves', async (t) => {
  const sim = await startSim();
  const ace = await startAcemux(sim.origin, [...FAST, '--retry-attempts', '20']);
  t.teardown(async () => { await ace.stop(); await sim.stop(); });
  await sim.setFaults({ global: { playbackStatus: 500 } });
  const playing = watch(`${ace.origin}/ace/getstream?id=${contentId(0xa2)}`, 5000);
  await sleep(1500);
  await sim.resetFaults();
  const r = await playing;
  assertPlayed(t, r, 'playback 500');
  const ev = await events(ace);
  t.ok(ev.filter((e) => e.fault === 'status').length >= 2, 'several attempts were made');
  const delays = ev.filter((e) => e.fault === 'status').map((e) => Number(e.delay_ms));
  t.ok(delays.every((d) => d >= 0 && d <= 800), `delays within the cap: ${delays.join(', ')}`);
  await assertNoLeak(t, ace, sim);
});

t.test('stall mid-stream: reconnect, keepalive through the gap, decodes across the splice', async (t) => {
  const sim = await startSim(['--bitrate', '3000000']);
  const ace = await startAcemux(sim.origin, FAST);
  t.teardown(async () => { await ace.stop(); await sim.stop(); });
  const id = contentId(0xa3);
  await sim.setFaults({ ids: { [id]: { stallAfterBytes: 600_000 } } });
  const r = await watch(`${ace.origin}/ace/getstream?id=${id}`, 6000);
  assertPlayed(t, r, 'stall');
  t.ok(r.body.length > 900_000, `data after the splice (${r.body.length} bytes)`);
  const ev = await events(ace);
  t.ok(ev.some((e) => e.kind === 'reconnect' && e.fault === 'stalled'), 'a stall led to a reconnect');
  t.ok(countPid(r.body, 0) > 2, 'PATs on both sides of the splice');
  decodes(t, r.body, 'across a stall splice', 5);
  await sim.resetFaults();
  await assertNoLeak(t, ace, sim);
});

t.test('drop mid-stream: reconnect at a clean point with discontinuity_indicator set', async (t) => {
  const sim = await startSim(['--bitrate', '3000000']);
  const ace = await startAcemux(sim.origin, FAST);
  t.teardown(async () => { await ace.stop(); await sim.stop(); });
  const id = contentId(0xa4);
  await sim.setFaults({ ids: { [id]: { dropAfterBytes: 500_000 } } });
  const r = await watch(`${ace.origin}/ace/getstream?id=${id}`, 5000);
  assertPlayed(t, r, 'drop');
  let flagged = 0;
  for (let off = 0; off + TS <= r.body.length; off += TS) if (readPcr(r.body, off) >= 0 && discontinuityIndicator(r.body, off)) flagged++;
  t.ok(flagged >= 1, `the first PCR after each splice is flagged (${flagged})`);
  t.ok((await events(ace)).some((e) => e.fault === 'ended'), 'the drop was seen as the stream ending');
  decodes(t, r.body, 'across a drop splice', 4);
  await sim.resetFaults();
  await assertNoLeak(t, ace, sim);
});

t.test('slow start: null packets from the first moment until the engine has prebuffered', async (t) => {
  const sim = await startSim();
  const ace = await startAcemux(sim.origin, [...FAST, '--playback-timeout', '10s']);
  t.teardown(async () => { await ace.stop(); await sim.stop(); });
  await sim.setFaults({ global: { slowStartMs: 3000 } });
  const r = await watch(`${ace.origin}/ace/getstream?id=${contentId(0xa5)}`, 5000);
  assertPlayed(t, r, 'slow start');
  t.ok(r.firstByteMs < 600, `first byte after ${r.firstByteMs} ms`);
  t.ok(countPid(r.body.subarray(0, firstData(r.body)), NULL_PID) >= 10, 'null packets while the engine prebuffered');
  const nul = r.body.subarray(0, TS);
  t.same([...nul.subarray(0, 4)], [0x47, 0x1f, 0xff, 0x10], 'spec-correct null packet header');
  t.ok(nul.subarray(4).every((b) => b === 0xff), 'null packet payload all 0xFF');
  await assertNoLeak(t, ace, sim);
});

t.test('engine restart: the session is gone, a new one is made, players play on', async (t) => {
  const sim = await startSim();
  const ace = await startAcemux(sim.origin, FAST);
  t.teardown(async () => { await ace.stop(); await sim.stop(); });
  const playing = watch(`${ace.origin}/ace/getstream?id=${contentId(0xa6)}`, 6000);
  await sleep(2000);
  await sim.restart();
  const r = await playing;
  assertPlayed(t, r, 'engine restart');
  const st = await sim.stats();
  t.ok(st.sessionsStarted >= 2, 'a fresh session after the restart');
  t.ok((await events(ace)).some((e) => e.action === 'new-session'), 'decided: new session');
  await assertNoLeak(t, ace, sim);
});

t.test('one of two engines dies: its stream fails over to the other', async (t) => {
  const a = await startSim();
  const b = await startSim();
  const ace = await startAcemux([a.origin, b.origin], [...FAST, '--engine-probe', '300ms']);
  t.teardown(async () => { await ace.stop(); await a.stop(); await b.stop(); });
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
  t.ok(ev.some((e) => e.kind === 'failover'), 'a failover was decided');
  t.ok(ev.some((e) => e.kind === 'engine-health' && e.healthy === false), 'the dead engine was marked unhealthy');
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
  t.teardown(async () => { await ace.stop(); await sim.stop(); });
  await sim.setFaults({ ids: { [d1]: { getstreamError: 'failed to load content' }, [d2]: { playbackStatus: 500 } } });
  const r = await watch(`${ace.origin}/ace/channel/test-one`, 5000);
  assertPlayed(t, r, 'channel with alternates');
  const st = await getJson(`${ace.origin}/ace/status?id=${good}`);
  t.equal(st.status, 200, 'now playing the third id');
  t.equal(st.body.channel, 'Test One');
  const ev = await events(ace);
  t.ok(ev.filter((e) => e.kind === 'failover').length >= 2, 'two failovers');
  t.equal((await getJson(`${ace.origin}/ace/channel/nope`)).status, 404);
  for (const [q, why] of [[`id=${good}`, /remove "id"/], ['pid=7', /"pid" is set by acemux/], ['a=1&a=2', /"a" given more than once/]] as const) {
    const bad = await getJson(`${ace.origin}/ace/channel/test-one?${q}`);
    t.equal(bad.status, 400, q);
    t.match(bad.body.error, why, q);
  }
  await sim.resetFaults();
  await assertNoLeak(t, ace, sim);
});

t.test('actor crash: the thread dies, the actor restarts, clients stay connected', async (t) => {
  const sim = await startSim(['--bitrate', '3000000']);
  const ace = await startAcemux(sim.origin, [...FAST, '--test-crash-after', '400KB']);
  t.teardown(async () => { await ace.stop(); await sim.stop(); });
  const r = await watch(`${ace.origin}/ace/getstream?id=${contentId(0xa7)}`, 5000);
  assertPlayed(t, r, 'actor crash');
  t.ok(r.body.length > 700_000, `data after the crash (${r.body.length} bytes)`);
  t.ok((await events(ace)).some((e) => e.kind === 'actor-restart'), 'the restart is an event');
  await assertNoLeak(t, ace, sim);
});

t.test('rapid channel switching leaves nothing behind', async (t) => {
  const sim = await startSim(['--bitrate', '2000000']);
  const ace = await startAcemux(sim.origin, [...FAST, '--grace', '300ms']);
  t.teardown(async () => { await ace.stop(); await sim.stop(); });
  const ids = [contentId(0xf1), contentId(0xf2), contentId(0xf3)];
  let ok = 0;
  for (let round = 0; round < 60; round++) {
    // Five quick zaps at once across the channels, each gone after a few ms.
    const zaps = Array.from({ length: 5 }, (_, i) => fetchStream(`${ace.origin}/ace/getstream?id=${ids[(round + i) % 3]}`, { ms: 5 + ((round * 7 + i * 13) % 60) }).then((r) => r.status === 200 && ok++, () => {}));
    await Promise.all(zaps);
  }
  t.ok(ok >= 250, `${ok} of 300 zaps answered 200`);
  await assertNoLeak(t, ace, sim);
  const st = await sim.stats();
  t.equal(st.secondReaders, 0, 'never two readers on one playback URL');
  t.equal(st.sessionsStarted, st.sessionsStopped + st.sessionsEvicted + st.sessionsExpired, 'every session we started was ended');
});
