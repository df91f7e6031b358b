/**
 * The ring pool: a stopped stream's ring goes back here and the next stream takes it, so memory
 * follows the peak number of concurrent streams, not the history of streams. A dropped
 * SharedArrayBuffer is freed only when both isolates that held it happen to run a major GC
 * (measured: 96 MB → 1.94 GB after many starts with 0 streams running); a reused one costs
 * nothing and is already faulted in (ring.ts I6).
 *
 *  P1 give() is called once per ring, only when nothing can reach it any more: the stream's actor
 *     tasks have all settled (no writer) and every client socket that ever held a view of it has
 *     closed (no write callback pending, docs/DESIGN-FACTS.md fact 2). The supervisor enforces both.
 *  P2 A ring is reset (resetRing) before it is handed out again, so a new stream never sees the
 *     old one's head, join points, pins or counters.
 *  P3 At most maxIdle rings wait in the pool; past that they are dropped, so a burst of streams
 *     does not pin its peak memory forever.
 */
import { createRing, resetRing, ringFits } from '../../shared/ring';

export class RingPool {
  private readonly idle: SharedArrayBuffer[] = [];
  created = 0;
  reused = 0;
  dropped = 0;
  /** Rings handed out and not given back: those of streams stopped but still draining too. */
  inUse = 0;

  constructor(private readonly maxIdle: number) {}

  /**
   * A ring starting with `bytes` of data, growing to `maxBytes` at most (ring.ts I7), for
   * `maxReaders` readers: a pooled one when one fits. Rings are matched by their layout (initial
   * and maximum capacity, reader slots): a reset ring starts at that again, whatever it grew to.
   */
  take(bytes: number, maxReaders: number, maxBytes = bytes): SharedArrayBuffer {
    for (let i = this.idle.length - 1; i >= 0; i--) {
      const sab = this.idle[i]!;
      if (!ringFits(sab, bytes, maxReaders, maxBytes)) continue;
      this.idle[i] = this.idle[this.idle.length - 1]!;
      this.idle.pop();
      this.reused++;
      this.inUse++;
      return sab;
    }
    this.created++;
    this.inUse++;
    return createRing(bytes, maxReaders, maxBytes);
  }

  /** Takes back a ring nothing can reach any more (P1). */
  give(sab: SharedArrayBuffer): void {
    if (this.idle.includes(sab)) return; // P1 says once; a second give must not hand it out twice
    this.inUse--;
    if (this.idle.length >= this.maxIdle) {
      this.dropped++;
      return;
    }
    resetRing(sab); // P2: reset on the way in, so an idle ring holds no stale state either
    this.idle.push(sab);
  }

  get idleCount(): number {
    return this.idle.length;
  }
}
