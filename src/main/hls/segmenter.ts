/**
 * The HLS segmenter: follows one stream's ring on the main thread and cuts it into HLS media
 * segments at the join points the actor already indexes (a PAT, its PMT, then a keyframe — ring.ts
 * I4, stream-actor.ts A2). It never looks for keyframes itself; it reads the join index, and the
 * PCRs of the packets it copies (for durations and splices).
 *
 * Invariants:
 *  G1 The segmenter holds one reader slot pinned at the next packet it has not copied yet, so the
 *     writer never overwrites bytes it still needs (ring.ts I2). It copies [pin, head) every poll,
 *     so its pin trails the head by one poll only and never holds the writer back the way a slow
 *     client could.
 *  G2 Every segment starts at a join point and ends just before the next one it chose: packet
 *     aligned, starting with a PAT then a keyframe, never ending mid-GOP. The first segment starts
 *     at the first join point the segmenter sees; bytes before it (keepalive nulls) are dropped.
 *  G3 A segment is cut at the first join point at least (target − tolerance) of media time after
 *     its start (the very first segment at the first join point after its start: a new viewer of a
 *     cold stream waits one GOP, not a whole target), or at once at a join point where the media clock jumps (the actor's splice mark,
 *     discontinuity_indicator on the first PCR after a splice — stream-actor.ts A1 — or a PCR going
 *     backwards or forwards by more than MAX_PCR_GAP): that segment is flagged `discontinuity`.
 *  G3a A segment that ends at a splice ends before its last video PES start: the old upstream
 *     broke off mid-picture, and a browser's decoder (Chromium's, through MSE) fails on a
 *     truncated picture instead of concealing it. One frame is lost at a splice, never a stall.
 *  G4 A finished segment is one Buffer of its exact size, never written again: every viewer's
 *     response gets that same Buffer (no copy per viewer).
 *  G5 Durations are media time from the PCRs (a continuous clock `mt` that steps over jumps by the
 *     last normal PCR interval), not arrival time: an engine's burst delivers seconds of media in
 *     one read. Program date-times are arrival (wall) time at a discontinuity and at the start, and
 *     previous + duration otherwise, so they never go backwards.
 */
import { ahead, TS, type RingReader } from '../../shared/ring';
import { PsiTracker, pidOf, readPcr, discontinuityIndicator, PAT_PID } from '../../shared/mpegts/ts-packet';

export interface Segment {
  /** Media sequence number. */
  readonly seq: number;
  readonly data: Buffer;
  readonly durationS: number;
  readonly discontinuity: boolean;
  /** Discontinuity sequence number of this segment (count of discontinuities up to and including it). */
  readonly dseq: number;
  /** Wall-clock time of its first frame, ms since the epoch (EXT-X-PROGRAM-DATE-TIME). */
  readonly pdtMs: number;
}

const PCR_HZ = 27e6;
const PCR_WRAP = 2 ** 33 * 300;
/** A PCR step larger than this (or negative) is a clock jump, flagged or not. */
const MAX_PCR_GAP = 1 * PCR_HZ;
/** A join point this close to the target counts as reaching it (GOPs of exactly target/n). */
const TOLERANCE_S = 0.1;
const INITIAL_ACC = 1 << 20;
/** A segment that never reaches a usable join point is dropped past this (guard()): 20 s at 12 Mb/s. */
const MAX_SEGMENT_PACKETS = Math.floor((30 << 20) / TS);

export interface SegmenterOptions {
  /** Wanted segment length (media seconds). */
  targetS: number;
  /** How far back in the ring to start, so a stream already live has segments at once. */
  backfillMs: number;
  /** The ring's stream clock origin (join entries carry ms since it). */
  epochMs: number;
  onSegment: (seg: Omit<Segment, 'seq' | 'dseq'>) => void;
}

export class Segmenter {
  private readonly slot: number;
  /** Next packet position to copy (G1). */
  private pos: number;
  private started = false;
  /** Ring join entries read so far (wrapping count). */
  private joinsRead: number;
  /** Join points after the current segment's start: packet positions and arrival ms. */
  private joins: Array<[number, number]> = [];
  /** Bytes of the current segment copied so far: [segStart, pos). */
  private acc = Buffer.allocUnsafe(INITIAL_ACC);
  private accPackets = 0;
  private scanned = 0;
  private segStart = 0;
  private segArrivalMs = 0;
  private readonly psi = new PsiTracker();
  /** PCR-carrying packets of the current segment: packet index, media time, clock jump there. */
  private pcrIdx: number[] = [];
  private pcrMt: number[] = [];
  private pcrJump: boolean[] = [];
  /** Packet indexes of video PES starts in the current segment (G3a). */
  private pesIdx: number[] = [];
  private lastPcr = -1;
  private lastDelta = 0.04 * PCR_HZ;
  private mt = 0;
  private nextPdtMs = 0;
  private nextDiscontinuity = false;
  private emitted = 0;
  closed = false;

  constructor(
    private readonly ring: RingReader,
    private readonly o: SegmenterOptions,
  ) {
    const head = ring.head();
    const count = ring.joinCount();
    // The oldest join entry still safely inside the ring and within the backfill (ring.ts I4).
    let start = head;
    let k = count;
    const margin = ring.cap >> 2;
    const window = ring.readable(head); // after a growth, less than cap (ring.ts I1, I7)
    for (let j = 1; j <= 120 && j <= count >>> 0; j++) {
      const e = ring.joinAt((count - j) | 0);
      if (e === null) break;
      const back = ahead(head, e[0]);
      if (back < 0 || back > ring.cap - margin || back > window || ahead(ring.headMs(), e[1]) > o.backfillMs) break;
      start = e[0];
      k = (count - j) | 0;
    }
    this.slot = ring.acquire(start);
    this.pos = start;
    this.joinsRead = k;
  }

  /** False when the ring had no reader slot left. */
  get ok(): boolean {
    return this.slot >= 0;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.slot >= 0) this.ring.release(this.slot);
  }

  /** Copies what is new in the ring and cuts the segments it completes. */
  poll(): void {
    if (this.closed || this.slot < 0) return;
    const head = this.ring.head();
    this.readJoins();
    if (!this.started) {
      // G2: wait for a join point at or after the pin.
      while (this.joins.length > 0 && ahead(this.joins[0]![0], this.pos) < 0) this.joins.shift();
      const first = this.joins.shift();
      if (first === undefined || ahead(head, first[0]) < 0) {
        if (first) this.joins.unshift(first);
        // Nothing to start from yet: keep the pin near the head so the writer stays free.
        if (ahead(head, this.pos) > this.ring.cap >> 2) this.move((head - (this.ring.cap >> 3)) | 0);
        return;
      }
      this.move(first[0]);
      this.started = true;
      this.segStart = first[0];
      this.segArrivalMs = this.o.epochMs + first[1];
      this.nextPdtMs = this.segArrivalMs;
    }
    const n = ahead(head, this.pos);
    if (n > 0) this.copy(n);
    this.scan();
    this.cut();
  }

  private move(pos: number): void {
    this.pos = pos;
    this.ring.pin(this.slot, pos);
  }

  private readJoins(): void {
    const count = this.ring.joinCount();
    for (; ahead(count, this.joinsRead) > 0; this.joinsRead = (this.joinsRead + 1) | 0) {
      const e = this.ring.joinAt(this.joinsRead);
      if (e === null) continue; // overwritten: a poll came very late; later entries are newer
      if (!this.started || ahead(e[0], this.segStart) > 0) this.joins.push(e);
    }
  }

  private copy(n: number): void {
    const need = (this.accPackets + n) * TS;
    if (need > this.acc.length) {
      const bigger = Buffer.allocUnsafe(Math.max(need, this.acc.length * 2));
      this.acc.copy(bigger, 0, 0, this.accPackets * TS);
      this.acc = bigger;
    }
    const [a, b] = this.ring.views(this.pos, (this.pos + n) | 0);
    a.copy(this.acc, this.accPackets * TS);
    if (b) b.copy(this.acc, this.accPackets * TS + a.length);
    this.accPackets += n;
    this.move((this.pos + n) | 0);
  }

  /** PSI and PCRs of the packets copied since the last scan (header bytes only). */
  private scan(): void {
    const buf = this.acc;
    const psi = this.psi;
    for (let i = this.scanned; i < this.accPackets; i++) {
      const p = i * TS;
      const pid = pidOf(buf, p);
      if (pid === PAT_PID || pid === psi.pmtPid) psi.feed(buf, p);
      if (pid === psi.videoPid && (buf[p + 1]! & 0x40) !== 0) this.pesIdx.push(i);
      if (pid !== psi.pcrPid) continue;
      const pcr = readPcr(buf, p);
      if (pcr < 0) continue;
      let jump = false;
      if (this.lastPcr >= 0) {
        let d = pcr - this.lastPcr;
        if (d < -PCR_WRAP / 2) d += PCR_WRAP;
        jump = discontinuityIndicator(buf, p) || d < 0 || d > MAX_PCR_GAP;
        if (!jump) this.lastDelta = d;
        this.mt += jump ? this.lastDelta : d; // G5
      }
      this.lastPcr = pcr;
      this.pcrIdx.push(i);
      this.pcrMt.push(this.mt);
      this.pcrJump.push(jump);
    }
    this.scanned = this.accPackets;
  }

  private cut(): void {
    let e = 0; // PCR entry pointer, moves forward with the join points
    let k = 0; // join points before k were passed over for this segment (too early)
    const maxRounded = Math.ceil(this.o.targetS);
    while (k < this.joins.length) {
      const [jpos, jms] = this.joins[k]!;
      const idx = ahead(jpos, this.segStart);
      if (idx <= 0) {
        this.joins.splice(k, 1);
        continue;
      }
      if (idx >= this.scanned) break;
      if (this.lastPcr < 0 && this.pesIdx.length === 0) {
        // G5's fallback for a stream with no PCR and no video at all (PAT-only join points): arrival time.
        const arrivalS = (this.o.epochMs + jms - this.segArrivalMs) / 1000;
        if (arrivalS < this.o.targetS - TOLERANCE_S) {
          k++;
          continue;
        }
        this.joins.splice(0, k);
        this.emit(idx, arrivalS, jms);
        k = 0;
        continue;
      }
      while (e < this.pcrIdx.length && this.pcrIdx[e]! < idx) e++;
      if (e >= this.pcrIdx.length) break; // the PCR after this join point is not here yet
      const jump = this.pcrJump[e]!;
      const durS = this.pcrIdx[0]! < idx ? (this.pcrMt[e]! - this.pcrMt[0]!) / PCR_HZ : 0;
      if (!jump && durS < (this.emitted === 0 ? TOLERANCE_S : this.o.targetS - TOLERANCE_S)) {
        k++;
        continue;
      }
      // G3: a GOP longer than the rest of the target would make this segment round above the
      // target duration, which a live playlist must not change: end at the join point before.
      if (!jump && Math.round(durS) > maxRounded && k > 0) {
        const prev = ahead(this.joins[k - 1]![0], this.segStart);
        let pe = 0;
        while (pe < this.pcrIdx.length && this.pcrIdx[pe]! < prev) pe++;
        if (pe < e && this.pcrIdx[0]! < prev) {
          this.joins.splice(0, k - 1);
          this.emit(prev, (this.pcrMt[pe]! - this.pcrMt[0]!) / PCR_HZ, this.joins[0]![1]);
          this.nextDiscontinuity = false;
          e = k = 0;
          continue;
        }
      }
      this.joins.splice(0, k);
      this.emit(idx, durS, jms, jump);
      this.nextDiscontinuity = jump;
      e = k = 0;
    }
    this.guard();
  }

  /** Makes [0, idx) of the accumulator a segment; the rest starts the next one (at join point idx). */
  private emit(idx: number, durS: number, nextArrivalMs: number, splice = false): void {
    let end = idx;
    if (splice) {
      // G3a: drop the picture the old upstream broke off in (and what came with it).
      let last = -1;
      for (const i of this.pesIdx) if (i < idx) last = i;
      if (last > 0) end = last;
    }
    const data = Buffer.allocUnsafeSlow(end * TS); // G4: exact size, its own memory
    this.acc.copy(data, 0, 0, end * TS);
    this.acc.copyWithin(0, idx * TS, this.accPackets * TS);
    this.accPackets -= idx;
    this.scanned -= idx;
    this.segStart = (this.segStart + idx) | 0;
    this.joins.shift();
    let k = 0;
    while (k < this.pcrIdx.length && this.pcrIdx[k]! < idx) k++;
    this.pcrIdx = this.pcrIdx.slice(k).map((i) => i - idx);
    this.pcrMt = this.pcrMt.slice(k);
    this.pcrJump = this.pcrJump.slice(k);
    this.pesIdx = this.pesIdx.filter((i) => i >= idx).map((i) => i - idx);
    const pdtMs = this.nextPdtMs;
    this.emitted++;
    this.o.onSegment({ data, durationS: Math.max(0.001, durS), discontinuity: this.nextDiscontinuity, pdtMs });
    this.nextPdtMs = pdtMs + durS * 1000;
    // G5: a splice restarts from arrival time, never earlier than where the last one ended.
    if (this.pcrJump[0]) this.nextPdtMs = Math.max(this.nextPdtMs, this.o.epochMs + nextArrivalMs);
    this.segArrivalMs = this.o.epochMs + nextArrivalMs;
  }

  /**
   * A segment that never reaches a usable join point (no keyframes, no PCR) must not grow without
   * bound: past MAX_SEGMENT_PACKETS it is dropped and the segmenter waits for the next join point
   * as at the start (G2). Not tied to the ring's size: segments are copied out of it (G1), and a
   * small ring must not cap the segment length.
   */
  private guard(): void {
    if (this.accPackets <= MAX_SEGMENT_PACKETS) return;
    this.accPackets = this.scanned = 0;
    this.pcrIdx = [];
    this.pcrMt = [];
    this.pcrJump = [];
    this.pesIdx = [];
    this.started = false;
    this.nextDiscontinuity = true;
  }
}
