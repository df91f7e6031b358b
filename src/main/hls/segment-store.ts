/**
 * The segments of one HLS stream: the sliding window a playlist lists, plus the ones that just
 * left it, and the wait for the first segment.
 *
 * Invariants:
 *  W1 Sequence numbers rise by one per segment and are never reused by this store; the media
 *     sequence of a playlist is the seq of its first listed segment, so it never goes backwards.
 *  W2 A segment stays servable for `window` segments after it left the playlist (RFC 8216
 *     6.2.2: its duration plus the longest playlist that listed it), then it is dropped and its
 *     URL answers 404; nothing else ever answers for that seq.
 *  W3 The target duration only grows: it is the longest rounded segment duration seen, at least
 *     the configured target (RFC 8216 4.3.3.1 wants every EXTINF, rounded, ≤ it).
 */
import type { Segment } from './segmenter';

export class SegmentStore {
  /** Listed segments are the last `window` of these; the ones before are the W2 tail. */
  private readonly all: Segment[] = [];
  private nextSeq = 0;
  private dseq = 0;
  targetDuration: number;
  bytes = 0;
  private waiters: Array<() => void> = [];

  constructor(
    private readonly window: number,
    targetS: number,
  ) {
    this.targetDuration = Math.max(1, Math.ceil(targetS));
  }

  add(s: Omit<Segment, 'seq' | 'dseq'>): Segment {
    if (s.discontinuity && this.nextSeq > 0) this.dseq++;
    const seg: Segment = { ...s, discontinuity: s.discontinuity && this.nextSeq > 0, seq: this.nextSeq++, dseq: this.dseq };
    this.all.push(seg);
    this.bytes += seg.data.length;
    this.targetDuration = Math.max(this.targetDuration, Math.round(seg.durationS)); // W3
    while (this.all.length > this.window * 2) this.bytes -= this.all.shift()!.data.length; // W2
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
    return seg;
  }

  /** The playlist's segments, oldest first. */
  listed(): Segment[] {
    return this.all.slice(-this.window);
  }

  get(seq: number): Segment | undefined {
    const first = this.all[0];
    return first === undefined ? undefined : this.all[seq - first.seq];
  }

  get count(): number {
    return this.all.length;
  }

  get lastSeq(): number {
    return this.nextSeq - 1;
  }

  /** Resolves true once a segment exists, false after timeoutMs or when `abort` says so. */
  waitFirst(timeoutMs: number): Promise<boolean> {
    if (this.all.length > 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((f) => f !== done);
        resolve(this.all.length > 0);
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve(this.all.length > 0);
      };
      this.waiters.push(done);
    });
  }

  /** Wakes every waiter (the stream stopped): they see no segment and answer an error. */
  close(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
