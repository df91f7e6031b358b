/**
 * Rings sized by bitrate (issue 15, ring.ts I7, stream-actor.ts A10) through the real acemux and
 * simulator: a ~4 Mb/s stream keeps its initial 8192-packet ring; a ~12.6 Mb/s one grows to the
 * power of two that holds --ring-seconds (3 s), while its clients go on receiving aligned TS with
 * no continuity error across the growth.
 *
 * The simulator's bitrate flag only paces; acemux measures the bitrate from PCR. So the streams
 * are the sample with null packets woven in: the PCRs stay where they were, the bytes between
 * them multiply, and the simulator paces the padded file at its new mux rate.
 */
import t, { type Test } from 'tap';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSim } from './helpers/sim';
import { startAcemux } from './helpers/acemux';
import { fetchStream, getJson, aligned, sleep, contentId } from './helpers/client';
import { until } from './helpers/wait';
import { metricsText, metricValue } from './helpers/proc';
import { ccErrors, describeErrors, truncatedPes } from './helpers/ts-check';
import { pidOf, NULL_PID } from '../src/shared/mpegts/ts-packet';

const TS = 188;
const SAMPLE = join(__dirname, '..', 'assets', 'sample.mpegts'); // 1.4 Mb/s by its PCRs

/** The sample with `nulls(i)` null packets after its packet i: a constant-rate mux, faster. */
function padded(name: string, nulls: (i: number) => number): string {
  const src = readFileSync(SAMPLE);
  const n = src.length / TS;
  let total = 0;
  for (let i = 0; i < n; i++) total += 1 + nulls(i);
  const out = Buffer.alloc(total * TS, 0xff);
  let o = 0;
  for (let i = 0; i < n; i++) {
    src.copy(out, o, i * TS, (i + 1) * TS);
    o += TS;
    for (let k = nulls(i); k > 0; k--, o += TS) out.set([0x47, 0x1f, 0xff, 0x10], o);
  }
  const path = join(mkdtempSync(join(tmpdir(), 'acemux-ring-')), name);
  writeFileSync(path, out);
  return path;
}

/** Non-null packets only: what the player decodes, and where a lost or torn packet would show. */
function media(b: Buffer): Buffer {
  const keep: Buffer[] = [];
  for (let o = 0; o + TS <= b.length; o += TS) if (pidOf(b, o) !== NULL_PID) keep.push(b.subarray(o, o + TS));
  return Buffer.concat(keep);
}

async function run(t: Test, file: string, id: string) {
  const sim = await startSim(['--sample', file]);
  const ace = await startAcemux(sim.origin);
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  const status = async () => (await getJson(`${ace.origin}/ace/status?id=${id}`)).body;
  return { sim, ace, status, url: `${ace.origin}/ace/getstream?id=${id}` };
}

t.test('a ~4 Mb/s stream keeps the initial 8192-packet ring', async (t) => {
  // 1.75 nulls per packet on average: 1.4 × 2.75 = 3.85 Mb/s → 3 s = 7680 packets ≤ 8192.
  const { status, url } = await run(
    t,
    padded('4mbps.ts', (i) => (i % 4 === 0 ? 1 : 2)),
    contentId(41),
  );
  const client = fetchStream(url, { ms: 5000 });
  await until(async () => ((await status())?.bitrate ?? 0) > 0, 'the bitrate measured', 10_000, 100);
  await sleep(1000); // a few actor ticks after the measurement: time to grow, were it to
  const st = await status();
  t.ok(st.bitrate > 3.5e6 && st.bitrate < 4.2e6, `bitrate ${st.bitrate} is ~3.85 Mb/s`);
  t.equal(st.ring_bytes, 8192 * TS, 'the ring stays at 8192 packets');
  t.equal(st.ring_max_bytes, 65536 * TS, 'it could have grown to 65536');
  const r = await client;
  t.ok(aligned(r.body), 'aligned TS');
  t.equal(describeErrors(ccErrors(r.body)), 'none', 'no continuity error');
});

t.test('a ~12.6 Mb/s stream grows its ring; clients read on across the growth without a gap', async (t) => {
  // 8 nulls per packet: 1.4 × 9 = 12.6 Mb/s → 3 s = 25133 packets → 32768.
  const { status, url, ace } = await run(
    t,
    padded('12mbps.ts', () => 8),
    contentId(42),
  );
  const before: number[] = [];
  let sawSmall = false;
  const watcher = (async () => {
    for (let i = 0; i < 60; i++) {
      const st = await status().catch(() => null);
      if (st?.ring_bytes) before.push(st.ring_bytes);
      if (st?.ring_bytes === 8192 * TS) sawSmall = true;
      if (st?.ring_bytes === 32768 * TS) return;
      await sleep(50);
    }
  })();
  const first = fetchStream(url, { ms: 7000 }); // from the start, across the growth
  await sleep(500);
  const second = fetchStream(url, { ms: 6000 }); // joined before the growth too
  await watcher;
  await until(async () => (await status()).ring_bytes === 32768 * TS, 'the ring grown to 32768 packets', 10_000, 100);
  const third = fetchStream(url, { ms: 3000 }); // joins the grown ring
  const st = await status();
  t.ok(st.bitrate > 11e6 && st.bitrate < 14e6, `bitrate ${st.bitrate} is ~12.6 Mb/s`);
  t.ok(sawSmall, `the ring started at 8192 packets (status saw ${[...new Set(before)].map((b) => b / TS).join(' → ')})`);
  t.equal(st.ring_bytes, 32768 * TS, 'and grew to 32768 (3 s at 12.6 Mb/s, rounded up to 2^k)');
  const actor = await getJson(`${ace.origin}/api/streams/${contentId(42)}/actor`);
  t.equal(actor.status, 200);
  t.equal(actor.body.ring.capacityBytes, 32768 * TS, "the actor's own view agrees");
  t.equal(actor.body.ring.maxCapacityBytes, 65536 * TS);
  t.equal(metricValue(await metricsText(ace.origin), 'acemux_ring_capacity_bytes'), 32768 * TS, '/metrics shows the growth');
  const results = await Promise.all([first, second, third]);
  results.forEach((r, i) => {
    const want = (12.6e6 / 8) * [7, 6, 3][i]!;
    t.ok(r.body.length > want * 0.6, `client ${i + 1}: ${r.body.length} bytes of ~${want}`);
    t.ok(aligned(r.body), `client ${i + 1}: aligned TS`);
    t.equal(describeErrors(ccErrors(r.body)), 'none', `client ${i + 1}: no continuity error`);
    t.equal(describeErrors(truncatedPes(media(r.body))), 'none', `client ${i + 1}: no truncated PES`);
    t.equal(r.body[firstMedia(r.body)], 0x47);
    t.equal(pidOf(r.body, firstMedia(r.body)), 0, `client ${i + 1}: starts at a PAT`);
  });
  const end = await status();
  t.equal(end.skips, 0, 'nobody was skipped');
  t.equal(end.cuts, 0, 'nobody was cut');
});

function firstMedia(b: Buffer): number {
  let o = 0;
  while (o + TS <= b.length && pidOf(b, o) === NULL_PID) o += TS;
  return o;
}

t.test('a stream without PCR is sized by its arrivals over its first 2 s', async (t) => {
  // --synthetic carries PAT, PMT and data but no PCR: no media clock to measure. 8 Mb/s for 3 s
  // = 3 MB → 15958 packets → 16384.
  const sim = await startSim(['--synthetic', '--bitrate', '8000000']);
  const ace = await startAcemux(sim.origin);
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  const id = contentId(43);
  const status = async () => (await getJson(`${ace.origin}/ace/status?id=${id}`)).body;
  const client = fetchStream(`${ace.origin}/ace/getstream?id=${id}`, { ms: 4500 });
  await until(async () => (await status().catch(() => null))?.ring_bytes > 0, 'the stream running', 10_000, 50);
  t.equal((await status()).ring_bytes, 8192 * TS, 'it starts at 8192 packets');
  await until(async () => (await status()).ring_bytes !== 8192 * TS, 'the ring grown', 10_000, 100);
  const st = await status();
  t.equal(st.bitrate, 0, 'no PCR, so no media bitrate');
  t.equal(st.ring_bytes, 16384 * TS, 'grown to 16384 packets: 3 s of what arrived');
  const r = await client;
  t.ok(aligned(r.body), 'aligned TS');
  t.equal(describeErrors(ccErrors(r.body)), 'none', 'no continuity error across the growth');
  t.equal((await status()).skips, 0, 'nobody was skipped');
});
