/**
 * Memory is bounded by what is running, not by how many streams have run: 500 short streams
 * started and stopped (10 at a time) against the real acemux and simulator, and acemux's RSS at
 * the end within 10 % of its RSS after the first 10 (issue 9). Before the ring pool every stream
 * left its ring to a major GC that seldom came, and RSS grew by the ring's touched pages per stream.
 */
import t from 'tap';
import { startSim } from './helpers/sim';
import { startAcemux } from './helpers/acemux';
import { fetchStream, contentId } from './helpers/client';
import { rssOf, ringCounts } from './helpers/proc';

const TOTAL = 500;
const FIRST = 10;
/** Streams in flight at once. The first 10 then already overlap like all later ones (a stream
 * still stopping while its lane starts the next), so they hold as many rings as the peak. */
const AT_ONCE = 5;
/**
 * V8 collects garbage lazily, up to heap sizes it grows by itself: with default flags acemux's RSS
 * climbs for ~1000 short streams and then stays at ~170 MB however many more follow (measured),
 * which says nothing about what acemux keeps. A small young generation and old-space limit make
 * the collector keep up, so RSS shows what is retained: rings, sockets, buffers, registries.
 */
const V8_BOUNDED = '--max-semi-space-size=1 --max-old-space-size=64';

t.test(`${TOTAL} stream starts and stops: RSS stays within 10 % of RSS after the first ${FIRST}`, async (t) => {
  const sim = await startSim(['--synthetic', '--bitrate', '4000000']);
  const ace = await startAcemux(sim.origin, ['--grace', '50ms', '--stat-interval', '0'], { NODE_OPTIONS: V8_BOUNDED });
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  const pid = ace.proc.pid!;

  let next = 0;
  let failed = 0;
  const one = async (n: number) => {
    const r = await fetchStream(`${ace.origin}/ace/getstream?id=${contentId(n + 1)}`, { bytes: 20_000 });
    if (r.status !== 200 || r.body.length < 20_000) failed++;
  };
  const run = async (until: number) => {
    const lane = async () => {
      while (next < until) await one(next++);
    };
    await Promise.all(Array.from({ length: AT_ONCE }, lane));
  };
  /** Every stream stopped and its ring back in the pool (or dropped): nothing running. */
  const settled = async () => {
    for (let i = 0; i < 300; i++) {
      const r = await ringCounts(ace.origin);
      if (r.inUse === 0) return r;
      await new Promise((res) => setTimeout(res, 50));
    }
    throw new Error('streams did not stop');
  };

  await run(FIRST);
  await settled();
  const base = rssOf(pid);
  const curve: number[] = [base];
  for (let k = 100; k <= TOTAL; k = Math.min(TOTAL, k + 100)) {
    await run(k);
    curve.push(rssOf(pid));
    if (k === TOTAL) break;
  }
  const rings = await settled();
  const end = rssOf(pid);
  const mb = (b: number) => (b / 1e6).toFixed(1);
  t.comment(
    `RSS after ${FIRST}: ${mb(base)} MB; every ~100 starts: ${curve.map(mb).join(', ')}; at the end: ${mb(end)} MB; rings new ${rings.fresh}, pooled ${rings.pooled}, idle ${rings.idle}`,
  );
  t.equal(failed, 0, 'every stream played');
  t.equal(rings.fresh + rings.pooled, TOTAL, 'one ring taken per stream start');
  t.ok(rings.fresh <= 16, `rings allocated only up to the peak of concurrent streams: ${rings.fresh} new, ${rings.pooled} reused`);
  t.ok(end <= base * 1.1, `RSS at the end ${mb(end)} MB ≤ 110 % of ${mb(base)} MB after the first ${FIRST}`);
});
