/**
 * The ring: one SharedArrayBuffer per stream. Its actor (a worker thread) is the only writer; the
 * egress (main thread) reads it for every client of the stream. Bytes never travel in messages.
 *
 * Layout, in Int32 words then bytes:
 *   header[HDR] | stats[8 × f64] | joins[JOIN_CAP × (pos, ms)] | slots[maxReaders × (active, pos)] | data[maxCap × 188]
 * The data block is allocated for maxCap packets but only the first cap (the header's CAP, the
 * effective capacity) are used: pages never written are never resident (a 12.3 MB SAB of which
 * 1.5 MB were touched measured +1.6 MB VmRSS), so a ring starts small and grows in place (I7)
 * once its actor knows the stream's bitrate.
 * The stats block carries the actor's counters to main with plain stores (monitoring only, read
 * on demand): a postMessage of them every second cost more than all the rest of an idle actor.
 *
 * Positions count packets and wrap modulo 2^32: compare them only with `ahead(a, b)` = (a − b)|0.
 * cap is a power of two, so `pos & mask` finds a packet's slot even across the counter's wrap.
 * cap changes (grows, I7): readers load it after HEAD (RingReader.head() does both), never cache it.
 *
 * Invariants (tested in test/ring.test.ts):
 *  I1 Only the writer stores data, HEAD, CAP and FLOOR, and it stores HEAD after the bytes
 *     (Atomics = release): a reader that loaded HEAD, then CAP, may read packets
 *     [max(HEAD − cap, FLOOR), HEAD) (readable()); FLOOR counts only while it lies in that window.
 *     FLOOR 0 on a fresh ring keeps readers off positions before the first packet; a stale FLOOR
 *     that the 2^32 wrap brings back into the window only narrows it for one lap (still valid).
 *  I2 A reader slot pins its reader's completed cursor — the start of any write still in flight.
 *     The writer never stores packet q unless q < pin + cap for every active slot, where cap is,
 *     for a pin before the last growth's position G, the capacity before that growth (I7). So a
 *     zero-copy view handed to a socket is never overwritten before the socket's write callback
 *     has run. When a pin would be overrun the writer stops (write() returns short) instead.
 *  I3 A cursor moves forward only: in a write callback (to the end of the completed write) or,
 *     with no write in flight, by a skip to a newer join point. The egress keeps this one.
 *  I4 Join entries hold the positions of clean join points (a PAT followed by a keyframe). They
 *     are advisory: a reader uses one only if it is readable (I1) and lies in
 *     [HEAD − cap + margin, HEAD], margin = cap / 4: the writer's room before it would reach the pin.
 *  I5 Main polls every ring's HEAD on one egress clock; the writer pings it early only when it
 *     is blocked or has a large batch waiting, and only when it flips WAKE 0→1; main stores 0
 *     before draining, so a ping during a drain causes one more drain and none is ever lost.
 *  I6 A ring is reused (src/main/egress/ring-pool.ts) only after resetRing(), and only once no
 *     writer, reader or write callback can reach it any more; a reset ring is indistinguishable
 *     from a fresh one except for TOUCHED, the faulted-in prefix, which spares the next actor
 *     the first-touch page faults. CAP goes back to the initial capacity; the pages a growth made
 *     resident stay resident (the pool keeps its rings warm), and TOUCHED, a prefix, stays true.
 *  I7 Growth, by the writer only, from cap C to C' (powers of two, C' ≤ maxCap) at its write
 *     position W (published or not: the A5 tail may be read back or retracted): every packet p in
 *     [W − C, W) is copied from slot p & (C−1) to slot p & (C'−1) where these differ (at most two
 *     runs; each destination is ≥ C, so it never overlaps a source), then FLOOR = W − C and CAP = C'
 *     are stored (release) before any later HEAD. A reader that sees a HEAD stored after the
 *     growth sees C' (I1's order); one that loaded C' with an older HEAD reads positions ≥ FLOOR,
 *     all copied. One that loaded C before the growth holds views of old slots, of positions
 *     below G = W only; its pin p < G keeps the writer below p + C (I2), and writing q lands on
 *     old slot q & (C−1) only when q mod C' < C, i.e. it would overwrite position q − C·k < p:
 *     never one the reader may still send. The rule for pins before G (GROW_AT, GROW_OLD in the
 *     header, so a restarted writer keeps it) lasts until no active pin is before G and the
 *     writer is margin (C/4, I4's timing assumption) past it; no new growth starts before that.
 */

import type { ActorStats } from './messages';
import { TS_PACKET_SIZE, VIDEO_CODECS } from './mpegts/ts-packet';

export const TS = TS_PACKET_SIZE;

// Buffer#copy into a SAB-backed Buffer measured 0.37 µs per 7.5 KB here, TypedArray#set of a
// subarray 3.2 µs (and it allocates the view): the copy is the writer's hot path.
export const copyBytes = Buffer.prototype.copy as (
  this: Uint8Array,
  target: Uint8Array,
  targetStart: number,
  sourceStart: number,
  sourceEnd: number,
) => number;
const JOIN_CAP = 128;

const H_HEAD = 0;
const H_WAKE = 1;
const H_JOINS = 2; // join entries written so far (wrapping)
const H_HEAD_MS = 3; // stream clock (ms since ring creation) at the last publication
const H_SLOTS_HIGH = 4; // slots [0, high) may be active; main raises it, writer scans up to it
const H_BLOCKED = 5; // 1 while the writer waits on a pinned reader
const H_CAP = 6;
const H_MAXR = 7;
const H_CODEC = 8; // VIDEO_CODECS index + 1; 0 = unknown
const H_TOUCHED = 9; // data bytes [0, n) already faulted in; survives resetRing (I6)
const H_FLOOR = 10; // oldest position still valid after the last growth (I7)
const H_MAXCAP = 11; // packets the data block was allocated for
const H_INITCAP = 12; // CAP after createRing/resetRing
const H_GROW_AT = 13; // writer only: position of the last growth (I7)
const H_GROW_OLD = 14; // writer only: cap before it; 0 once no pin needs the old rule (I7)
const HDR = 16;
const STATS_F64 = 8;
/** Header and stats, in Int32 words. */
const PRE = HDR + STATS_F64 * 2;

/** (a − b) as a signed 32-bit distance: positive when a is ahead of b. */
export function ahead(a: number, b: number): number {
  return (a - b) | 0;
}

/** The smallest ring, in packets. */
export const MIN_RING_PACKETS = 1024;

/**
 * Packets of a ring asked to hold `bytes`: the largest power of two that fits, so a ring never
 * takes more memory than asked (rounding up doubled 6 MiB to 12.3 MB); at least MIN_RING_PACKETS.
 */
export function ringCapacityPackets(bytes: number): number {
  let cap = MIN_RING_PACKETS;
  while (cap * 2 * TS <= bytes) cap *= 2;
  return cap;
}

/** The data bytes a ring asked to hold `bytes` really has (what the docs and status report). */
export function ringDataBytes(bytes: number): number {
  return ringCapacityPackets(bytes) * TS;
}

/** The whole SharedArrayBuffer's size (header and data) of a ring that may grow to `maxBytes`. */
export function ringByteLength(maxBytes: number, maxReaders: number): number {
  return Math.max(MMAP_FLOOR, (PRE + JOIN_CAP * 2 + maxReaders * 2) * 4 + ringCapacityPackets(maxBytes) * TS);
}

/**
 * Every ring asks for more than glibc's largest dynamic mmap threshold (32 MiB on 64-bit), so
 * its memory is always a fresh mmap: untouched pages stay unresident (I7) and a freed ring goes
 * back to the system. Below it, once a ring had been freed, glibc raised its threshold past the
 * ring's size and served the next ones from the heap, where calloc zeroes (touches) every byte:
 * 200 rings of 12.3 MB, 1.25 MB of each used, left 513 MiB resident instead of 90 MiB, at twice
 * the CPU per allocation. The extra is address space only, never touched.
 */
const MMAP_FLOOR = 32 * 1024 * 1024 + 4096;

/**
 * Main allocates rings, so they outlive an actor's thread (and its crash). The ring starts with
 * `bytes` of data and may grow up to `maxBytes` (I7; never below `bytes`).
 */
export function createRing(bytes: number, maxReaders: number, maxBytes = bytes): SharedArrayBuffer {
  const cap = ringCapacityPackets(bytes);
  const maxCap = Math.max(cap, ringCapacityPackets(maxBytes));
  const sab = new SharedArrayBuffer(ringByteLength(maxCap * TS, maxReaders));
  const h = new Int32Array(sab, 0, HDR);
  h[H_CAP] = cap;
  h[H_INITCAP] = cap;
  h[H_MAXCAP] = maxCap;
  h[H_MAXR] = maxReaders;
  return sab;
}

/**
 * Whether createRing(bytes, maxReaders, maxBytes) would have made this layout: same initial and
 * maximum capacity, same reader slots. (Not the byte length: every ring asks for at least
 * MMAP_FLOOR, whatever its layout.)
 */
export function ringFits(sab: SharedArrayBuffer, bytes: number, maxReaders: number, maxBytes = bytes): boolean {
  const h = new Int32Array(sab, 0, HDR);
  const cap = ringCapacityPackets(bytes);
  return h[H_INITCAP] === cap && h[H_MAXCAP] === Math.max(cap, ringCapacityPackets(maxBytes)) && h[H_MAXR] === maxReaders;
}

/**
 * Makes a used ring new again for the next stream (I6): head, wake flag, join index, clock,
 * reader slots, BLOCKED, codec, FLOOR and stats all zero, CAP back to the initial capacity, as
 * createRing() leaves them. Only the layout (capacities, maxReaders) and the record of faulted-in
 * pages survive; the data bytes are not cleared,
 * since with HEAD at 0 no reader may read any of them (I1). Call it only once nothing can touch
 * the ring any more: no writer, no reader, no write callback pending (the pool's contract).
 */
export function resetRing(sab: SharedArrayBuffer): void {
  const h = new Int32Array(sab, 0, HDR);
  const init = h[H_INITCAP]!;
  const maxCap = h[H_MAXCAP]!;
  const maxReaders = h[H_MAXR]!;
  const touched = h[H_TOUCHED]!;
  new Int32Array(sab, 0, PRE + JOIN_CAP * 2 + maxReaders * 2).fill(0);
  h[H_CAP] = init;
  h[H_INITCAP] = init;
  h[H_MAXCAP] = maxCap;
  h[H_MAXR] = maxReaders;
  h[H_TOUCHED] = touched;
}

/** What both sides see. */
export class Ring {
  readonly sab: SharedArrayBuffer;
  readonly h: Int32Array;
  readonly stats: Float64Array;
  readonly joins: Int32Array;
  readonly slots: Int32Array;
  /** Covers maxCap packets, made once: a growth needs no new view (I7). */
  readonly data: Buffer;
  /** The capacity in effect as last loaded (I1: after HEAD); grows, never shrinks (I7). */
  cap: number;
  mask: number;
  readonly maxCap: number;
  readonly maxReaders: number;

  constructor(sab: SharedArrayBuffer) {
    this.sab = sab;
    this.h = new Int32Array(sab, 0, HDR);
    this.cap = Atomics.load(this.h, H_CAP);
    this.mask = this.cap - 1;
    this.maxCap = this.h[H_MAXCAP]!;
    this.maxReaders = this.h[H_MAXR]!;
    this.stats = new Float64Array(sab, HDR * 4, STATS_F64);
    this.joins = new Int32Array(sab, PRE * 4, JOIN_CAP * 2);
    this.slots = new Int32Array(sab, (PRE + JOIN_CAP * 2) * 4, this.maxReaders * 2);
    const dataOff = (PRE + JOIN_CAP * 2 + this.maxReaders * 2) * 4;
    this.data = Buffer.from(sab, dataOff, this.maxCap * TS);
  }

  head(): number {
    return Atomics.load(this.h, H_HEAD);
  }

  /** Oldest position valid after the last growth (I7); meaningful only inside the window (I1). */
  floor(): number {
    return Atomics.load(this.h, H_FLOOR);
  }

  /**
   * How many packets behind `head` may be read (I1): cap, or less right after a growth (FLOOR),
   * or on a fresh ring (FLOOR 0: positions before the first packet were never written).
   */
  readable(head: number): number {
    const f = ahead(head, Atomics.load(this.h, H_FLOOR));
    return f >= 0 && f < this.cap ? f : this.cap;
  }

  headMs(): number {
    return Atomics.load(this.h, H_HEAD_MS);
  }

  blocked(): boolean {
    return Atomics.load(this.h, H_BLOCKED) === 1;
  }

  /**
   * The capacity the writer may hold the oldest pins to: the cap before the last growth while its
   * rule lasts (I2, I7), else cap. Shares of the ring that must stay below what blocks the writer
   * (the default lag limit) take this one.
   */
  pinCap(): number {
    const old = Atomics.load(this.h, H_GROW_OLD);
    return old !== 0 ? old : this.cap;
  }

  /** Data bytes [0, n) already faulted in, by this stream or an earlier user of the ring (I6). */
  touched(): number {
    return Atomics.load(this.h, H_TOUCHED);
  }

  readStats(): ActorStats {
    const f = this.stats;
    const codec = Atomics.load(this.h, H_CODEC);
    return {
      bytesIn: f[0]!,
      packets: f[1]!,
      junkBytes: f[2]!,
      resyncs: f[3]!,
      nullPacketsSent: f[4]!,
      bitrate: f[5]!,
      joinPoints: f[6]!,
      blockedMs: f[7]!,
      videoCodec: codec > 0 ? VIDEO_CODECS[codec - 1]! : null,
    };
  }

  /** The actor's side of readStats(). */
  writeStats(s: ActorStats): void {
    const f = this.stats;
    f[0] = s.bytesIn;
    f[1] = s.packets;
    f[2] = s.junkBytes;
    f[3] = s.resyncs;
    f[4] = s.nullPacketsSent;
    f[5] = s.bitrate;
    f[6] = s.joinPoints;
    f[7] = s.blockedMs;
    Atomics.store(this.h, H_CODEC, s.videoCodec ? VIDEO_CODECS.indexOf(s.videoCodec) + 1 : 0);
  }
}

/** The actor's side. Keeps an unpublished head so that main wakes once per batch, not per chunk. */
export class RingWriter extends Ring {
  private pos: number;
  /** The head may advance to here without rescanning pins (I2). */
  private limit: number;

  constructor(sab: SharedArrayBuffer) {
    super(sab);
    this.pos = this.head();
    this.limit = this.pos;
    this.rescan();
  }

  /**
   * Grows the ring in place to `packets` (rounded up to a power of two, at most maxCap), keeping
   * every packet in [position − cap, position) readable at its new slot (I7). Returns false when
   * there is nothing to grow, or while the previous growth's pin rule still holds (I2).
   */
  grow(packets: number): boolean {
    let want = this.cap;
    while (want < packets && want < this.maxCap) want *= 2;
    if (want <= this.cap) return false;
    this.rescan(); // clears the last growth's rule if it no longer applies
    if (Atomics.load(this.h, H_GROW_OLD) !== 0) return false;
    const c = this.cap;
    const w = this.pos;
    // [w − c, w) split where the old slot wraps (a multiple of c, hence of want too): two runs at most.
    let p = (w - c) | 0;
    let left = c;
    while (left > 0) {
      const from = p & (c - 1);
      const run = Math.min(left, c - from);
      const to = p & (want - 1);
      if (to !== from) this.data.copyWithin(to * TS, from * TS, (from + run) * TS);
      p = (p + run) | 0;
      left -= run;
    }
    Atomics.store(this.h, H_FLOOR, (w - c) | 0);
    Atomics.store(this.h, H_GROW_AT, w);
    Atomics.store(this.h, H_GROW_OLD, c);
    Atomics.store(this.h, H_CAP, want);
    this.cap = want;
    this.mask = want - 1;
    this.rescan();
    return true;
  }

  /** Next packet position to be written (published or not). */
  get position(): number {
    return this.pos;
  }

  /**
   * Copies `count` packets from src[off…] and returns how many fit before a pinned reader (I2).
   * A short count means the caller must hold the rest and retry after main has cut the laggard.
   */
  write(src: Uint8Array, off: number, count: number): number {
    if (ahead(this.pos + count, this.limit) > 0) {
      this.rescan();
      const room = ahead(this.limit, this.pos);
      if (room < count) {
        count = room > 0 ? room : 0;
        Atomics.store(this.h, H_BLOCKED, 1);
      }
    }
    let n = count;
    let slot = this.pos & this.mask;
    while (n > 0) {
      const run = Math.min(n, this.cap - slot);
      copyBytes.call(src, this.data, slot * TS, off, off + run * TS);
      off += run * TS;
      n -= run;
      slot = 0;
    }
    this.pos = (this.pos + count) | 0;
    return count;
  }

  /** Records that data bytes [0, n) are faulted in (I6). */
  setTouched(n: number): void {
    Atomics.store(this.h, H_TOUCHED, n);
  }

  /** Byte offset in `data` of packet `pos`, for in-place edits before publication. */
  offsetOf(pos: number): number {
    return (pos & this.mask) * TS;
  }

  unpublished(): number {
    return ahead(this.pos, this.head());
  }

  /**
   * Stores HEAD (I1), at `to` (default: every packet written; never behind the current head).
   * With `urgent`, returns true when the caller must ping main (I5).
   */
  publish(nowMs: number, urgent = true, to = this.pos): boolean {
    Atomics.store(this.h, H_HEAD_MS, nowMs | 0);
    if (ahead(to, this.head()) > 0) Atomics.store(this.h, H_HEAD, to);
    // Not only write()'s lazy rescan at the limit: a reader may have pinned behind the head since
    // the last scan, and a limit a lap old would let the writer overrun it (I2).
    this.rescan();
    return urgent && Atomics.compareExchange(this.h, H_WAKE, 0, 1) === 0;
  }

  /**
   * Takes back unpublished packets: the next write goes to `to`, which must lie in [HEAD, position].
   * No reader has seen them (I1), so they may be rewritten with other bytes.
   */
  rewind(to: number): void {
    if (ahead(to, this.head()) < 0 || ahead(to, this.pos) > 0) throw new RangeError('rewind outside [head, position]');
    this.pos = to;
  }

  /** Packets that may be written now before a pinned reader is reached (I2). */
  room(): number {
    this.rescan();
    return Math.max(0, ahead(this.limit, this.pos));
  }

  /** Copies packets [from, from + count) of the ring (unpublished ones, typically) to dst[off…]. */
  read(from: number, count: number, dst: Uint8Array, off: number): void {
    let slot = from & this.mask;
    while (count > 0) {
      const run = Math.min(count, this.cap - slot);
      copyBytes.call(this.data, dst, off, slot * TS, (slot + run) * TS);
      off += run * TS;
      count -= run;
      slot = 0;
    }
  }

  addJoin(pos: number, ms: number): void {
    const n = Atomics.load(this.h, H_JOINS);
    const i = (n & (JOIN_CAP - 1)) * 2;
    Atomics.store(this.joins, i, pos);
    Atomics.store(this.joins, i + 1, ms | 0);
    Atomics.store(this.h, H_JOINS, (n + 1) | 0);
  }

  /** Recomputes `limit` from the pins (I2, with I7's rule); clears BLOCKED when there is room again. */
  rescan(): void {
    let limit = (this.pos + this.cap) | 0;
    const old = Atomics.load(this.h, H_GROW_OLD);
    const at = Atomics.load(this.h, H_GROW_AT);
    let before = false;
    const high = Atomics.load(this.h, H_SLOTS_HIGH);
    for (let s = 0; s < high; s++) {
      if (Atomics.load(this.slots, s * 2) === 0) continue;
      const p = Atomics.load(this.slots, s * 2 + 1);
      let l = (p + this.cap) | 0;
      if (old !== 0 && ahead(p, at) < 0) {
        before = true;
        l = (p + old) | 0;
      }
      if (ahead(l, limit) < 0) limit = l;
    }
    if (old !== 0 && !before && ahead(this.pos, at) >= old >> 2) Atomics.store(this.h, H_GROW_OLD, 0);
    this.limit = limit;
    if (ahead(this.limit, this.pos) > 0 && this.h[H_BLOCKED] === 1) Atomics.store(this.h, H_BLOCKED, 0);
  }
}

/** Main's side: reader slots (pins), join lookup and zero-copy views. */
export class RingReader extends Ring {
  private free: number[] = [];
  private high = 0;
  // One drain usually writes the same [from, to) to many clients: share the views (I1 holds
  // for all of them alike).
  private vFrom = 0;
  private vTo = 0;
  private vA: Buffer | null = null;
  private vB: Buffer | null = null;

  /**
   * Loads HEAD, then CAP (I1): every head a reader uses comes with a cap at least as new, so views
   * and windows computed from it are valid (I7). Cap only grows, so a cap newer than the head is fine.
   */
  override head(): number {
    const head = Atomics.load(this.h, H_HEAD);
    const cap = Atomics.load(this.h, H_CAP);
    if (cap !== this.cap) {
      this.cap = cap;
      this.mask = cap - 1;
      this.vA = null; // views cached under the old layout
    }
    return head;
  }

  /** Clears the wake flag before a drain (I5). */
  clearWake(): void {
    Atomics.store(this.h, H_WAKE, 0);
  }

  /** Takes a slot pinned at `pos`, or -1 when every slot is taken. */
  acquire(pos: number): number {
    let s = this.free.pop();
    if (s === undefined) {
      if (this.high >= this.maxReaders) return -1;
      s = this.high++;
      Atomics.store(this.h, H_SLOTS_HIGH, this.high);
    }
    Atomics.store(this.slots, s * 2 + 1, pos);
    Atomics.store(this.slots, s * 2, 1);
    return s;
  }

  pin(slot: number, pos: number): void {
    Atomics.store(this.slots, slot * 2 + 1, pos);
  }

  release(slot: number): void {
    Atomics.store(this.slots, slot * 2, 0);
    this.free.push(slot);
  }

  /**
   * The newest clean join point at least `delayMs` behind the head's clock and still safely inside
   * the ring (I4); the head itself when there is none (a fresh stream starts at a PAT anyway).
   */
  joinPoint(delayMs: number): number {
    const head = this.head();
    const headMs = this.headMs();
    const margin = this.cap >> 2;
    const window = this.readable(head);
    const n = Atomics.load(this.h, H_JOINS);
    let best = head;
    for (let k = 1; k <= JOIN_CAP && k <= n >>> 0; k++) {
      const i = ((n - k) & (JOIN_CAP - 1)) * 2;
      const pos = Atomics.load(this.joins, i);
      const back = ahead(head, pos);
      if (back < 0 || back > this.cap - margin || back > window) break; // older entries are older still
      best = pos; // too fresh for the delay: the oldest safe one comes closest
      if (ahead(headMs, Atomics.load(this.joins, i + 1)) >= delayMs) return pos;
    }
    return best;
  }

  /** Join entries written so far (a wrapping count): a reader that follows every one (the HLS
   *  segmenter) keeps its own count and reads entries [mine, joinCount()) with joinAt(). */
  joinCount(): number {
    return Atomics.load(this.h, H_JOINS);
  }

  /** Entry k as [pos, ms]; null once it has been overwritten (k ≤ joinCount() − JOIN_CAP). */
  joinAt(k: number): [number, number] | null {
    if (ahead(this.joinCount(), k) > JOIN_CAP - 4) return null; // margin: the writer may be storing entry k now
    const i = (k & (JOIN_CAP - 1)) * 2;
    return [Atomics.load(this.joins, i), Atomics.load(this.joins, i + 1)];
  }

  /**
   * Zero-copy views of packets [from, to), one or two (when the range wraps), in the layout of the
   * cap loaded with the last head() (I7). The views alias the ring: they may be handed to a socket
   * only while the caller's slot pins `from` (I2).
   */
  views(from: number, to: number): [Buffer, Buffer | null] {
    if (this.vA !== null && from === this.vFrom && to === this.vTo) return [this.vA, this.vB];
    const n = ahead(to, from);
    const slot = from & this.mask;
    const first = Math.min(n, this.cap - slot);
    const base = this.data.byteOffset;
    this.vA = Buffer.from(this.sab, base + slot * TS, first * TS);
    this.vB = n > first ? Buffer.from(this.sab, base, (n - first) * TS) : null;
    this.vFrom = from;
    this.vTo = to;
    return [this.vA, this.vB];
  }
}
