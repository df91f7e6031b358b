import t from 'tap';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { createRing, resetRing, ringCapacityPackets, ringDataBytes, RingWriter, RingReader, TS, ahead } from '../src/shared/ring';
import { Egress, type Sink } from '../src/main/egress/egress';
import { RingPool } from '../src/main/egress/ring-pool';
import { seqPackets as packets } from './helpers/packets';

const seqAt = (b: Buffer, i: number) => b.readUInt32BE(i * TS + 4);

/** A socket stand-in whose write completions the test releases by hand. */
class HeldSink implements Sink {
  received: Buffer[] = [];
  pending: Array<(err?: Error | null) => void> = [];
  destroyed = false;
  corked = 0;
  write(chunk: Buffer, cb: (err?: Error | null) => void): boolean {
    this.received.push(Buffer.from(chunk)); // what the kernel would copy at completion time
    this.pending.push(cb);
    return true;
  }
  cork() {
    this.corked++;
  }
  uncork() {}
  destroy() {
    this.destroyed = true;
  }
  complete() {
    const p = this.pending;
    this.pending = [];
    for (const cb of p) cb();
  }
  bytes() {
    return Buffer.concat(this.received);
  }
}

const SMALL = 1024 * TS; // the smallest ring: 1024 packets

t.test('positions wrap; views split at the end of the ring', async (t) => {
  const sab = createRing(SMALL, 4);
  const w = new RingWriter(sab);
  const r = new RingReader(sab);
  t.equal(r.cap, 1024);
  let seq = 0;
  let read = 0;
  const got: number[] = [];
  for (let round = 0; round < 40; round++) {
    const n = 100 + (round % 7) * 13;
    t.equal(w.write(packets(seq, n), 0, n), n);
    seq += n;
    w.publish(0);
    const [a, b] = r.views(read, r.head());
    for (const v of b ? [a, b] : [a]) for (let i = 0; i < v.length / TS; i++) got.push(seqAt(v, i));
    read = r.head();
  }
  t.equal(got.length, seq);
  t.ok(
    got.every((v, i) => v === i),
    'every packet read once, in order, across wraps',
  );
});

t.test('int32 position wrap-around is seamless', async (t) => {
  const sab = createRing(SMALL, 4);
  new Int32Array(sab, 0, 1)[0] = 0x7fffff00; // start just below the signed wrap
  const w = new RingWriter(sab);
  const r = new RingReader(sab);
  const start = r.head();
  const slot = r.acquire(start);
  w.write(packets(0, 600), 0, 600);
  w.publish(0);
  t.equal(ahead(r.head(), start), 600, 'distance survives the sign flip');
  const [a, b] = r.views(start, r.head());
  const all = b ? Buffer.concat([a, b]) : a;
  t.equal(all.length, 600 * TS);
  t.equal(seqAt(all, 599), 599);
  r.release(slot);
});

t.test('a pinned reader is never overwritten (I2); the writer stops short instead', async (t) => {
  const sab = createRing(SMALL, 4);
  const w = new RingWriter(sab);
  const r = new RingReader(sab);
  const slot = r.acquire(0);
  t.equal(w.write(packets(0, 1024), 0, 1024), 1024, 'a full ring fits');
  t.equal(w.write(packets(1024, 10), 0, 10), 0, 'one more would overwrite the pinned packet 0');
  t.ok(w.blocked(), 'BLOCKED is raised for main');
  const [a] = r.views(0, 1);
  t.equal(seqAt(a, 0), 0, 'packet 0 intact');
  r.pin(slot, 5);
  t.equal(w.write(packets(1024, 10), 0, 10), 5, 'room for exactly what the pin freed');
  r.release(slot);
  t.equal(w.write(packets(1029, 5), 0, 5), 5);
  w.publish(0);
  t.notOk(w.blocked(), 'BLOCKED clears once there is room');
});

t.test('stats travel in the ring, not in messages', async (t) => {
  const sab = createRing(SMALL, 4);
  const w = new RingWriter(sab);
  const r = new RingReader(sab);
  t.equal(r.readStats().videoCodec, null);
  w.writeStats({
    bytesIn: 5e9,
    packets: 7,
    junkBytes: 1,
    resyncs: 2,
    nullPacketsSent: 3,
    bitrate: 4_000_000,
    videoCodec: 'hevc',
    joinPoints: 9,
    blockedMs: 11,
  });
  t.same(r.readStats(), {
    bytesIn: 5e9,
    packets: 7,
    junkBytes: 1,
    resyncs: 2,
    nullPacketsSent: 3,
    bitrate: 4_000_000,
    videoCodec: 'hevc',
    joinPoints: 9,
    blockedMs: 11,
  });
});

t.test('WAKE pings once until main clears it (I5)', async (t) => {
  const sab = createRing(SMALL, 4);
  const w = new RingWriter(sab);
  const r = new RingReader(sab);
  w.write(packets(0, 1), 0, 1);
  t.equal(w.publish(0), true, 'first publication pings');
  w.write(packets(1, 1), 0, 1);
  t.equal(w.publish(0), false, 'main already scheduled: no second ping');
  r.clearWake();
  w.write(packets(2, 1), 0, 1);
  t.equal(w.publish(0), true, 'after a drain began, the next publication pings again');
});

t.test('join points: newest safe one, delay honoured, stale ones ignored (I4)', async (t) => {
  const sab = createRing(SMALL, 4);
  const w = new RingWriter(sab);
  const r = new RingReader(sab);
  t.equal(r.joinPoint(0), 0, 'no join point yet: the head');
  w.write(packets(0, 100), 0, 100);
  w.addJoin(10, 1000);
  w.addJoin(60, 2000);
  w.publish(2500);
  t.equal(r.joinPoint(0), 60, 'newest');
  t.equal(r.joinPoint(1000), 10, 'at least 1 s behind the head clock');
  t.equal(r.joinPoint(5000), 10, 'none old enough: the oldest safe one');
  w.write(packets(100, 710), 0, 710); // head 810: packet 10 is 800 back, past the 3/4-ring window
  w.publish(3000);
  t.equal(r.joinPoint(5000), 60, 'the stale entry is skipped; the oldest safe one is 60');
  w.write(packets(810, 200), 0, 200);
  w.publish(3100);
  t.equal(r.joinPoint(0), r.head(), 'both too old: the head');
});

t.test('a ring never takes more than asked: rounded down to 2^k packets, at least 1024', async (t) => {
  t.equal(ringCapacityPackets(6 << 20), 32768, '6 MiB → 32768 packets (6.16 MB), not 65536 (12.3 MB)');
  t.equal(ringCapacityPackets(3 << 20), 16384);
  t.equal(ringCapacityPackets(16384 * TS), 16384, 'an exact power of two is kept');
  t.equal(ringCapacityPackets(16384 * TS - 1), 8192);
  t.equal(ringCapacityPackets(1), 1024);
  for (const asked of [256 * 1024, 1e6, 3 << 20, 6 << 20, 1 << 30]) {
    const sab = createRing(asked, 2);
    const r = new RingReader(sab);
    t.equal(r.data.length, ringDataBytes(asked), `${asked}: the data area is what ringDataBytes says`);
    t.ok(r.data.length <= Math.max(asked, 1024 * TS) && r.data.length > asked / 2, `${asked}: within (asked/2, asked]`);
  }
});

t.test('a reset ring is like a new one: no head, joins, pins, stats or wake left (I6)', async (t) => {
  const sab = createRing(SMALL, 4);
  const w = new RingWriter(sab);
  const r = new RingReader(sab);
  w.write(packets(0, 700), 0, 700);
  w.addJoin(300, 1200);
  w.setTouched(700 * TS);
  w.writeStats({
    bytesIn: 9,
    packets: 9,
    junkBytes: 9,
    resyncs: 9,
    nullPacketsSent: 9,
    bitrate: 9,
    videoCodec: 'h264',
    joinPoints: 9,
    blockedMs: 9,
  });
  w.publish(1500);
  r.acquire(100);
  r.acquire(650);
  w.rescan();
  t.equal(w.write(packets(700, 1000), 0, 1000), 424, 'a pin at 100 holds the writer');
  w.publish(1600);
  t.ok(r.blocked());

  resetRing(sab);
  const fresh = new Int32Array(createRing(SMALL, 4), 0, 16 + 16 + 256 + 8);
  const words = new Int32Array(sab, 0, fresh.length);
  const TOUCHED = 9;
  for (let i = 0; i < fresh.length; i++) if (i !== TOUCHED) t.equal(words[i], fresh[i], `word ${i} as in a new ring`);
  const r2 = new RingReader(sab);
  t.equal(r2.cap, 1024);
  t.equal(r2.maxReaders, 4);
  t.equal(r2.head(), 0);
  t.equal(r2.headMs(), 0);
  t.notOk(r2.blocked());
  t.equal(r2.joinPoint(0), 0, 'no stale join point: a joiner starts at the new head');
  t.same(r2.readStats(), {
    bytesIn: 0,
    packets: 0,
    junkBytes: 0,
    resyncs: 0,
    nullPacketsSent: 0,
    bitrate: 0,
    videoCodec: null,
    joinPoints: 0,
    blockedMs: 0,
  });
  t.equal(r2.touched(), 700 * TS, 'the faulted-in prefix is remembered, so the next actor does not touch it again');
  const w2 = new RingWriter(sab);
  t.equal(w2.position, 0);
  t.equal(w2.write(packets(5000, 1024), 0, 1024), 1024, 'no stale pin: a whole lap fits');
  t.equal(w2.publish(0), true, 'the wake flag was cleared: the first publication pings');
  const [a] = r2.views(0, r2.head());
  t.equal(seqAt(a, 0), 5000, 'a reader sees only the new stream');
});

t.test('the pool hands a returned ring out again, reset, and keeps at most maxIdle', async (t) => {
  const pool = new RingPool(2);
  const a = pool.take(SMALL, 4);
  const b = pool.take(SMALL, 4);
  const c = pool.take(SMALL, 4);
  t.equal(pool.created, 3);
  t.equal(pool.inUse, 3);
  const w = new RingWriter(a);
  w.write(packets(0, 10), 0, 10);
  w.publish(10);
  pool.give(a);
  pool.give(a);
  t.equal(pool.idleCount, 1, 'a ring given twice is pooled once');
  pool.give(b);
  pool.give(c);
  t.equal(pool.idleCount, 2, 'past maxIdle a ring is dropped');
  t.equal(pool.dropped, 1);
  t.equal(pool.inUse, 0);
  const other = pool.take(SMALL * 2, 4);
  t.ok(other !== a && other !== b, 'a ring of another size is not handed out for it');
  const again = [pool.take(SMALL, 4), pool.take(SMALL, 4)];
  t.ok(again.includes(a) && again.includes(b), 'the pooled rings come back');
  t.equal(pool.reused, 2);
  t.equal(new RingReader(a).head(), 0, 'reset before reuse');
  t.equal(pool.take(SMALL, 4) === c, false, 'the dropped one is gone');
  t.equal(pool.created, 5);
});

function egressOn(sab: SharedArrayBuffer, lagLimitPackets: number, policy: 'skip' | 'disconnect' = 'skip') {
  const cuts: string[] = [];
  const eg = new Egress(new RingReader(sab), {
    lagLimitBytes: lagLimitPackets * TS,
    lagPolicy: policy,
    joinDelayMs: 0,
    clientTimeoutMs: 60_000,
    onCut: (_c, why) => cuts.push(why),
  });
  return { eg, cuts };
}

t.test('the cursor moves only when a write completes (E1)', async (t) => {
  const sab = createRing(SMALL, 4);
  const w = new RingWriter(sab);
  const { eg } = egressOn(sab, 512);
  const sink = new HeldSink();
  const c = eg.add(sink)!;
  w.write(packets(0, 50), 0, 50);
  w.publish(0);
  eg.drain();
  t.equal(sink.pending.length, 1, 'one write in flight');
  w.write(packets(50, 50), 0, 50);
  w.publish(0);
  eg.drain();
  t.equal(sink.pending.length, 1, 'no second write while one is in flight');
  t.equal(c.cursor, 0, 'cursor still at the start of the write in flight');
  sink.complete();
  t.equal(c.cursor, 50, 'completed: cursor at its end');
  t.equal(sink.pending.length, 1, 'and the next range went out right away');
  sink.complete();
  t.equal(c.cursor, 100);
  const got = sink.bytes();
  t.equal(got.length, 100 * TS);
  t.ok(Array.from({ length: 100 }, (_, i) => seqAt(got, i) === i).every(Boolean), 'bytes in order');
});

t.test('a laggard is skipped to the newest join point; others are not slowed (E2)', async (t) => {
  const sab = createRing(SMALL, 4);
  const w = new RingWriter(sab);
  const { eg } = egressOn(sab, 300, 'skip');
  const slow = new HeldSink();
  const fast = new HeldSink();
  const cs = eg.add(slow)!;
  const cf = eg.add(fast)!;
  let seq = 0;
  for (let i = 0; i < 8; i++) {
    w.write(packets(seq, 50), 0, 50);
    if (i === 6) w.addJoin(seq, 0);
    seq += 50;
    w.publish(0);
    eg.drain();
    fast.complete(); // the fast client keeps up
  }
  t.equal(cf.cursor, seq, 'fast client at the live edge');
  t.equal(cs.cursor, 0, 'slow client still on its first write');
  slow.complete(); // its first write (50 packets) completes; it is now 350 behind
  t.equal(cs.skips, 1, 'skipped once');
  t.equal(cs.cursor, 300, 'to the newest join point');
  slow.complete();
  const got = slow.bytes();
  t.equal(seqAt(got, 50), 300, 'after the skip it receives from the join point');
});

t.test('a stalled client holding the writer back is cut; the others and the writer go on (E2)', async (t) => {
  const sab = createRing(SMALL, 4);
  const w = new RingWriter(sab);
  const { eg, cuts } = egressOn(sab, 512, 'skip');
  const stalled = new HeldSink();
  const fast = new HeldSink();
  const c = eg.add(stalled)!;
  eg.add(fast);
  let seq = 0;
  for (let i = 0; i < 80 && seq < 2000; i++) {
    const n = Math.min(50, 2000 - seq);
    seq += w.write(packets(seq, n), 0, n); // a refused packet is offered again next round
    w.publish(0);
    eg.drain();
    if (i === 0) c.writeAt -= 3000; // its first write, never completed, as if stuck for 3 s
    fast.complete();
  }
  t.ok(stalled.destroyed, 'socket destroyed');
  t.same(cuts, ['stalled']);
  t.ok(c.removed, 'client removed; slot released');
  t.equal(seq, 2000, 'the writer got everything in');
  t.equal(eg.clients.length, 1);
  const got = fast.bytes();
  t.equal(got.length, 2000 * TS, 'the fast client got every packet');
  t.ok(Array.from({ length: 2000 }, (_, i) => seqAt(got, i) === i).every(Boolean), 'in order, none overwritten');
});

t.test('clients that are all slower than the upstream hold the writer back instead of skipping (E2)', async (t) => {
  const sab = createRing(SMALL, 4);
  const w = new RingWriter(sab);
  const { eg, cuts } = egressOn(sab, 512, 'skip');
  const a = new HeldSink();
  const b = new HeldSink();
  const ca = eg.add(a)!;
  const cb = eg.add(b)!;
  let seq = 0;
  let refused = 0;
  for (let i = 0; i < 60; i++) {
    const n = w.write(packets(seq, 50), 0, 50);
    seq += n;
    if (n < 50) refused++;
    w.publish(0);
    eg.drain();
    if (i % 25 === 0) {
      a.complete();
      b.complete();
    } // both far slower than the input
  }
  t.ok(refused > 0, 'the writer was held back (upstream backpressure)');
  t.same(cuts, [], 'nobody cut');
  t.equal(ca.skips + cb.skips, 0, 'nobody skipped');
  const got = a.bytes();
  t.ok(Array.from({ length: got.length / TS }, (_, i) => seqAt(got, i) === i).every(Boolean), 'a received an unbroken sequence');
});

t.test('a lone stalled client is cut after holding the writer back for a while', async (t) => {
  const sab = createRing(SMALL, 4);
  const w = new RingWriter(sab);
  const { eg, cuts } = egressOn(sab, 512, 'skip');
  const stalled = new HeldSink();
  const c = eg.add(stalled)!;
  for (let i = 0; i < 30; i++) {
    w.write(packets(i * 50, 50), 0, 50);
    w.publish(0);
    eg.drain();
  }
  t.ok(w.blocked(), 'writer blocked by the lone pin');
  t.same(cuts, [], 'not cut at once: it may be a slow start');
  c.writeAt -= 3000; // as if its write had been stuck for 3 s
  eg.drain();
  t.same(cuts, ['stalled']);
  t.ok(stalled.destroyed);
});

t.test('policy disconnect cuts a laggard instead of skipping', async (t) => {
  const sab = createRing(SMALL, 4);
  const w = new RingWriter(sab);
  const { eg, cuts } = egressOn(sab, 100, 'disconnect');
  const slow = new HeldSink();
  const fast = new HeldSink();
  eg.add(slow);
  eg.add(fast);
  for (let i = 0; i < 4; i++) {
    w.write(packets(i * 50, 50), 0, 50);
    w.publish(0);
    eg.drain();
    fast.complete();
  }
  eg.drain();
  t.same(cuts, ['lagging']);
  t.ok(slow.destroyed);
});

t.test('a half-open client is cut after the client timeout', async (t) => {
  const sab = createRing(SMALL, 4);
  const w = new RingWriter(sab);
  const { eg, cuts } = egressOn(sab, 512, 'skip');
  const dead = new HeldSink();
  const c = eg.add(dead)!;
  w.write(packets(0, 10), 0, 10);
  w.publish(0);
  eg.drain();
  t.same(cuts, []);
  c.writeAt -= 61_000;
  eg.drain();
  t.same(cuts, ['timeout']);
});

t.test('a real worker writes while main reads: no packet lost, torn or overwritten', async (t) => {
  const sab = createRing(SMALL, 4);
  const r = new RingReader(sab);
  const ringJs = join(__dirname, '..', 'dist', 'shared', 'ring.js');
  const TOTAL = 200_000; // ~37 MB through a 192 KB ring: ~190 laps
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const { RingWriter, TS } = require(workerData.ringJs);
    const w = new RingWriter(workerData.sab);
    const buf = Buffer.alloc(64 * TS, 0xff);
    let seq = 0;
    function step() {
      for (let k = 0; k < 50 && seq < workerData.total; k++) {
        const n = Math.min(1 + (seq % 64), workerData.total - seq);
        for (let i = 0; i < n; i++) { buf[i * TS] = 0x47; buf.writeUInt32BE(seq + i, i * TS + 4); }
        const done = w.write(buf, 0, n);
        seq += done;
        if (w.unpublished() >= 100 || done < n) { if (w.publish(0)) parentPort.postMessage(1); }
        if (done < n) break;
      }
      if (w.publish(0)) parentPort.postMessage(1);
      if (seq < workerData.total) setImmediate(step); else parentPort.postMessage('end');
    }
    step();`;
  const worker = new Worker(code, { eval: true, workerData: { sab, ringJs, total: TOTAL } });
  const slot = r.acquire(0);
  let cursor = 0;
  let expect = 0;
  let bad = 0;
  let ended = false;
  const drain = () => {
    r.clearWake();
    const head = r.head();
    if (ahead(head, cursor) <= 0) return;
    const [a, b] = r.views(cursor, head);
    for (const v of b ? [a, b] : [a]) {
      for (let i = 0; i < v.length / TS; i++) if (v[i * TS] !== 0x47 || seqAt(v, i) !== expect++) bad++;
    }
    cursor = head;
    r.pin(slot, cursor); // read complete: release the bytes to the writer
  };
  await new Promise<void>((resolve) => {
    worker.on('message', (m) => {
      if (m === 'end') ended = true;
      drain();
      if (ended && expect === TOTAL) resolve();
    });
  });
  await worker.terminate();
  t.equal(expect, TOTAL, 'every packet arrived');
  t.equal(bad, 0, 'none out of order or corrupt');
});

// ---- growth in place (I7) ----

/** The sequence numbers a reader sees for positions [from, to), through views in its current layout. */
function seqs(r: RingReader, from: number, to: number): number[] {
  const out: number[] = [];
  const [a, b] = r.views(from, to);
  for (const v of b ? [a, b] : [a]) for (let i = 0; i < v.length / TS; i++) out.push(seqAt(v, i));
  return out;
}
const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => (from + i) >>> 0);

t.test('growth keeps every packet of [W − C, W) at its new slot, the unpublished tail too (I7)', async (t) => {
  const sab = createRing(SMALL, 4, 8 * SMALL);
  const w = new RingWriter(sab);
  const r = new RingReader(sab);
  t.equal(r.cap, 1024, 'starts at the initial capacity');
  t.equal(r.maxCap, 8192);
  t.equal(r.data.length, 8192 * TS, 'the data view covers the maximum once');
  t.equal(w.write(packets(0, 1024), 0, 1024), 1024);
  t.equal(w.write(packets(1024, 300), 0, 300), 300); // W = 1324: [300, 1324) wraps the old slots
  w.publish(0, false, 1200); // 124 packets unpublished (A5's tail)
  t.equal(w.grow(1500), true, 'grows');
  t.equal(w.cap, 2048, 'rounded up to a power of two');
  t.equal(r.head(), 1200);
  t.equal(r.cap, 2048, 'a reader loads the new cap with the head');
  t.equal(r.floor(), 300, 'FLOOR = W − C');
  t.equal(r.readable(1200), 900, 'the readable window starts at FLOOR');
  t.same(seqs(r, 300, 1200), range(300, 900), 'published packets at their new slots');
  const tail = Buffer.alloc(124 * TS);
  w.read(1200, 124, tail, 0);
  t.same(
    Array.from({ length: 124 }, (_, i) => seqAt(tail, i)),
    range(1200, 124),
    'the unpublished tail survives too',
  );
  t.equal(w.write(packets(1324, 2048), 0, 2048), 2048, 'no pin: a whole new lap fits');
  w.publish(0);
  t.equal(r.readable(r.head()), 2048, 'FLOOR no longer bounds once a whole new cap lies above it');
  t.same(seqs(r, (r.head() - 2048) | 0, r.head()), range(3372 - 2048, 2048), 'the new layout wraps at 2048');
  t.equal(w.grow(100_000), true);
  t.equal(w.cap, 8192, 'clamped to the maximum');
  t.equal(w.grow(100_000), false, 'never past the maximum');
  t.same(seqs(r, 3372 - 2048, 3372), range(3372 - 2048, 2048), 'a second growth keeps the window too');
});

t.test('growth across the 2^32 position wrap, by two doublings at once (I7)', async (t) => {
  const sab = createRing(SMALL, 4, 8 * SMALL);
  new Int32Array(sab, 0, 1)[0] = -700; // head 700 packets below the unsigned wrap
  const w = new RingWriter(sab);
  const r = new RingReader(sab);
  const start = r.head();
  t.equal(w.write(packets(start >>> 0, 1024), 0, 1024), 1024); // W = 324: [−700, 324) crosses 0
  w.publish(0);
  const head = r.head();
  t.equal(head, 324);
  t.equal(w.grow(4096), true);
  t.equal(r.head(), head);
  t.equal(r.cap, 4096);
  t.equal(r.readable(head), 1024);
  t.same(seqs(r, start, head), range(start >>> 0, 1024), 'every packet across the wrap, at p & 4095');
  t.equal(w.write(packets(324, 4096), 0, 4096), 4096);
  w.publish(0);
  t.same(seqs(r, (r.head() - 4096) | 0, r.head()), range(324, 4096), 'and the writer goes on in the new layout');
});

/** A ring of 1024 packets that may grow to 4096, lapped once: 1024 + `more` packets written, none published. */
function lapped(more: number) {
  const sab = createRing(SMALL, 4, 4 * SMALL);
  const w = new RingWriter(sab);
  const r = new RingReader(sab);
  w.write(packets(0, 1024), 0, 1024);
  w.write(packets(1024, more), 0, more);
  return { sab, w, r };
}

t.test('a reader that loaded the old cap keeps its views; the writer stops short of them (I2, I7)', async (t) => {
  const { w, r } = lapped(300); // no pin yet: the ring holds [300, 1324)
  w.publish(0);
  const head = r.head(); // loads cap 1024
  const slot = r.acquire(1000);
  const [a, b] = r.views(1000, head); // old layout: slots 1000..1023, then 0..299, handed to a "socket"
  t.ok(b !== null, 'the old-layout range wraps');
  t.equal(w.grow(2048), true);
  // Positions 2048.. land on slots 0..; under the new cap alone the pin at 1000 would let the
  // writer go to 3048 and overwrite slots 0..299, which the old views still show.
  t.equal(w.write(packets(1324, 2000), 0, 2000), 700, 'the pre-growth pin holds the writer at pin + the old cap');
  t.ok(w.blocked());
  t.same(
    [...Array.from({ length: a.length / TS }, (_, i) => seqAt(a, i)), ...Array.from({ length: b!.length / TS }, (_, i) => seqAt(b!, i))],
    range(1000, 324),
    'the in-flight old-layout views still hold their packets',
  );
  t.equal(w.grow(4096), false, 'no new growth while a pin before the last one needs its rule');
  r.head(); // the next drain loads the new cap
  t.same(seqs(r, 1000, 2024), range(1000, 1024), 'read in the new layout, all intact');
  r.pin(slot, 1324); // the write completed: the pin passes G = 1324
  t.equal(w.room(), 1324 + 2048 - 2024, 'a pin at or after G allows pin + the new cap');
  t.equal(w.write(packets(2024, 1348), 0, 1348), 1348);
  w.publish(0);
  t.same(seqs(r, 1324, 3372), range(1324, 2048), 'no packet lost or torn');
  r.release(slot);
  t.equal(w.grow(4096), true, 'once no pin is before G, the ring may grow again');
});

t.test('a reader that loaded the new cap may read from FLOOR with an older head (I1, I7)', async (t) => {
  const { w, r } = lapped(476);
  w.publish(0, false, 1400);
  t.equal(w.grow(2048), true); // W = 1500, FLOOR = 476; HEAD still 1400
  t.equal(r.head(), 1400);
  t.same(seqs(r, 476, 1400), range(476, 924));
  t.equal(r.readable(1400), 924);
});

t.test('FLOOR bounds joins: an entry from before it is never handed out (I4, I7)', async (t) => {
  const { sab, w, r } = lapped(300);
  w.addJoin(250, 1000); // in the new cap's window, but below FLOOR: its slot was overwritten
  w.addJoin(700, 2000);
  w.publish(3000);
  t.equal(w.grow(2048), true);
  t.equal(r.floor(), 300);
  t.equal(r.joinPoint(0), 700);
  t.equal(r.joinPoint(1500), 700, 'the older entry would be delayed enough, but lies below FLOOR');
  const eg = egressOn(sab, 512).eg;
  const sink = new HeldSink();
  const c = eg.add(sink)!;
  t.equal(c.cursor, 700, 'a joining client starts inside the readable window');
  t.equal(seqAt(sink.received[0]!, 0), 700);
});

t.test('a client reading through a growth gets every packet once, in order (I7, E1)', async (t) => {
  const sab = createRing(SMALL, 4, 8 * SMALL);
  const w = new RingWriter(sab);
  const eg = new Egress(new RingReader(sab), {
    lagLimitBytes: 512 * TS,
    lagFollowsRing: true,
    lagPolicy: 'skip',
    joinDelayMs: 0,
    clientTimeoutMs: 60_000,
    onCut: () => t.fail('no cut'),
  });
  const sink = new HeldSink();
  eg.add(sink);
  let seq = 0;
  let grown = 0;
  for (let round = 0; round < 200; round++) {
    const n = 97 + (round % 5) * 31;
    const k = w.write(packets(seq, n), 0, n);
    seq += k;
    w.publish(0, false, (seq - (round % 3) * 7) | 0); // leave a tail unpublished now and then
    if (round % 4 === 0) eg.drain();
    if (round % 3 === 0) sink.complete();
    if (round === 30 || round === 90 || round === 150) if (w.grow(w.cap * 2)) grown++;
  }
  w.publish(0);
  for (let i = 0; i < 50 && sink.pending.length + eg.lagBytes(eg.clients[0]!) > 0; i++) {
    eg.drain();
    sink.complete();
  }
  t.ok(grown >= 2, `grew ${grown} times while the client read`);
  const got = sink.bytes();
  t.equal(got.length / TS, seq, 'every packet');
  let bad = 0;
  for (let i = 0; i < seq; i++) if (seqAt(got, i) !== i) bad++;
  t.equal(bad, 0, 'in order, none torn or from the old layout');
  t.equal(eg.skips, 0);
});

t.test('a reset ring starts at its initial capacity again, the grown pages still touched (I6, I7)', async (t) => {
  const pool = new RingPool(2);
  const sab = pool.take(SMALL, 4, 4 * SMALL);
  t.equal(sab.byteLength, pool.take(SMALL, 4, 4 * SMALL).byteLength, 'sized by the maximum');
  const w = new RingWriter(sab);
  w.write(packets(0, 1024), 0, 1024);
  w.setTouched(1024 * TS);
  w.grow(4096);
  w.write(packets(1024, 3000), 0, 3000);
  w.publish(0);
  pool.give(sab);
  t.equal(pool.take(SMALL, 4, 2 * SMALL) === sab, false, 'another maximum is another ring');
  const again = pool.take(SMALL, 4, 4 * SMALL);
  t.equal(again, sab, 'the same maximum reuses it');
  const r = new RingReader(again);
  t.equal(r.cap, 1024, 'CAP back to the initial capacity');
  t.equal(r.floor(), 0, 'FLOOR cleared');
  t.equal(r.head(), 0);
  t.equal(r.touched(), 1024 * TS, 'TOUCHED still the true faulted-in prefix');
  const w2 = new RingWriter(again);
  t.equal(w2.cap, 1024);
  t.equal(w2.grow(2048), true, 'no growth rule left over from the last stream');
});

t.test('a stuck client pinned before a growth still counts as lagging and is cut (E2, I7)', async (t) => {
  const sab = createRing(SMALL, 4, 4 * SMALL);
  const w = new RingWriter(sab);
  const cuts: string[] = [];
  const eg = new Egress(new RingReader(sab), {
    lagLimitBytes: 512 * TS,
    lagFollowsRing: true,
    lagPolicy: 'skip',
    joinDelayMs: 0,
    clientTimeoutMs: 60_000,
    onCut: (_c, why) => cuts.push(why),
  });
  const stalled = new HeldSink();
  const c = eg.add(stalled)!;
  w.write(packets(0, 600), 0, 600);
  w.publish(0);
  eg.drain(); // the client's write of [0, 600) is in flight and never completes
  t.equal(w.grow(4096), true);
  for (let i = 0; i < 40; i++) {
    w.write(packets(600 + i * 50, 50), 0, 50);
    w.publish(0);
    eg.drain();
  }
  t.ok(w.blocked(), 'the pre-growth pin holds the writer at 0 + the old cap, not the new one');
  t.equal(w.position, 1024);
  t.same(cuts, [], 'not cut at once');
  c.writeAt -= 3000;
  eg.drain();
  t.same(cuts, ['stalled'], 'cut: half the old cap is its lag limit until the pin passes the growth');
  t.ok(stalled.destroyed);
  t.equal(w.room(), 4096, 'and the writer is free, under the new cap');
});
