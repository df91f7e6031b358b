/**
 * The ring pool against the real acemux and simulator: a stopped stream's ring is reused only
 * once no client socket can still hold a view of it (docs/DESIGN-FACTS.md fact 2), and a stream that gets a
 * reused ring sees only its own bytes (ring.ts I6, ring-pool.ts P1–P2, supervisor S6).
 */
import t from 'tap';
import { join } from 'node:path';
import { request } from 'node:http';
import { startSim } from './helpers/sim';
import { startAcemux } from './helpers/acemux';
import { fetchStream, contentId, aligned } from './helpers/client';
import { ringCounts } from './helpers/proc';
import { pidOf } from '../src/shared/mpegts/ts-packet';

const CRASHING = join(__dirname, 'helpers', 'crashing-actor.cjs');

const DATA_PID = 0x1ff0; // the synthetic source's data packets: u32 seq at +4, f64 send time (µs) at +8

function post(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    request(url, { method: 'POST' }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    })
      .on('error', reject)
      .end();
  });
}

async function until<T>(what: string, get: () => Promise<T>, ok: (v: T) => boolean, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await get();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

t.test('a ring waits for its last client socket before reuse, and a reused ring carries only the new stream', async (t) => {
  // Fast enough that a client that stops reading fills its socket buffers within a second.
  const sim = await startSim(['--synthetic', '--bitrate', '80000000']);
  const ace = await startAcemux(sim.origin, ['--grace', '100ms', '--client-timeout', '3s', '--ring-pool', '4']);
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  const url = (n: number) => `${ace.origin}/ace/getstream?id=${contentId(n)}`;
  const rings = () => ringCounts(ace.origin);

  // X: one client reads on; another stops reading and keeps its socket open, so its write in
  // flight (zero-copy views of X's ring) cannot complete. Stop X while that write is stuck —
  // before the egress's own 2 s stuck-client cut.
  const reader = fetchStream(url(1), { ms: 60_000 });
  let got = 0;
  const stalled = fetchStream(url(1), { stallAfterBytes: 100_000, onData: (d) => (got += d.length) });
  await until(
    'the stalled client to have read',
    async () => got,
    (n) => n >= 100_000,
  );
  type Status = { client_list: Array<{ lag_bytes: number }> };
  await until(
    'its write to be stuck',
    async () => (await fetch(`${ace.origin}/api/streams/${contentId(1)}`).then((r) => r.json())) as Status,
    (b) => Math.max(...b.client_list.map((c) => c.lag_bytes)) > 1_000_000,
  );
  t.same(await rings(), { inUse: 1, idle: 0, fresh: 1, pooled: 0 });
  const stoppedAt = Date.now();
  t.equal(await post(`${ace.origin}/api/streams/${contentId(1)}/stop`), 200);
  t.equal((await reader).ended, 'ended-by-server', 'the reading client got a clean end');
  await until(
    'X to leave the registry',
    async () => (await fetch(`${ace.origin}/api/streams`).then((r) => r.json())) as { streams: unknown[] },
    (b) => b.streams.length === 0,
  );

  // Y starts while X's client socket is still open: X's ring must not be handed to it.
  const y = await fetchStream(url(2), { bytes: 50_000 });
  t.equal(y.status, 200);
  let r = await rings();
  t.equal(r.fresh, 2, "Y got a new ring: X's is still held by its open client socket");
  t.equal(r.pooled, 0);
  t.ok(r.inUse >= 1, "X's ring is still counted in use");

  // The stopped stream's stalled client is destroyed after --client-timeout; then X's ring and,
  // after its grace, Y's go back to the pool.
  void stalled; // paused, it never sees its end; the server side is what matters
  r = await until('both rings back in the pool', rings, (v) => v.idle === 2);
  t.ok(
    Date.now() - stoppedAt >= 2900,
    `X's ring came back only once its stalled client was cut, --client-timeout after the stop (${Date.now() - stoppedAt} ms)`,
  );
  t.same(r, { inUse: 0, idle: 2, fresh: 2, pooled: 0 });

  // Z takes a pooled ring and must see nothing of X or Y: every data packet was sent by the
  // engine after Z was asked for, in one unbroken sequence, starting at a PAT.
  const asked = Number(process.hrtime.bigint()) / 1000;
  const z = await fetchStream(url(3), { bytes: 300_000 });
  t.equal(z.status, 200);
  r = await rings();
  t.equal(r.pooled, 1, 'Z reused a pooled ring');
  t.equal(r.fresh, 2, 'no new ring for Z');
  const body = z.body.subarray(0, z.body.length - (z.body.length % 188));
  t.ok(aligned(body), 'whole packets');
  t.equal(pidOf(body, 0), 0, 'Z starts at a PAT');
  let prev = -1;
  let data = 0;
  let stale = 0;
  let gaps = 0;
  for (let off = 0; off < body.length; off += 188) {
    if (pidOf(body, off) !== DATA_PID) continue;
    data++;
    if (body.readDoubleBE(off + 8) < asked) stale++;
    const seq = body.readUInt32BE(off + 4);
    if (prev >= 0 && seq !== prev + 1) gaps++;
    prev = seq;
  }
  t.ok(data > 1000, `data packets read (${data})`);
  t.equal(stale, 0, 'no packet sent before Z was asked for (none left over from X or Y)');
  t.equal(gaps, 0, 'one unbroken sequence');
});

t.test('a stream whose actor thread died returns its ring once the restarted actor has stopped too', async (t) => {
  const sim = await startSim(['--synthetic']);
  // The test-only entry (helpers/crashing-actor.cjs) throws on the actor's thread after 300 KB.
  const ace = await startAcemux(sim.origin, ['--grace', '100ms'], { CRASH_AFTER_BYTES: '300000' }, CRASHING);
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  const rings = () => ringCounts(ace.origin);
  const id = contentId(9);
  const reading = fetchStream(`${ace.origin}/ace/getstream?id=${id}`, { ms: 60_000 });
  type Status = { actor_restarts: number; bytes_out: number };
  const status = async () => (await fetch(`${ace.origin}/ace/status?id=${id}`).then((r) => r.json())) as Status;
  const before = await until('the actor to die and come back', status, (s) => s.actor_restarts === 1);
  await until('data to flow from the restarted actor', status, (s) => s.bytes_out > before.bytes_out + 100_000);
  t.same(await rings(), { inUse: 1, idle: 0, fresh: 1, pooled: 0 }, 'one ring across the restart');
  t.equal(await post(`${ace.origin}/api/streams/${id}/stop`), 200);
  t.equal((await reading).ended, 'ended-by-server');
  t.same(
    await until('the ring back in the pool', rings, (r) => r.idle === 1),
    { inUse: 0, idle: 1, fresh: 1, pooled: 0 },
    'both actor tasks settled: the ring is back',
  );
});
