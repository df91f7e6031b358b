/**
 * Egress: writes one stream's ring to its clients' sockets. It knows sockets and the ring, not
 * HTTP or the supervisor, and assumes nothing about which thread it runs on (Node ≥ 24.20 could
 * host it in workers with transferred fresh sockets).
 *
 * Per client: at most one write in flight, of [cursor, head) as zero-copy ring views (two, corked,
 * when the range wraps). One write per wake-up and client keeps writes big (DESIGN fact 3).
 *
 * Invariants kept here (with ring.ts I2/I3):
 *  E1 A client's slot pins its cursor, which is the start of its write in flight; the cursor moves
 *     only in that write's completion callback, or by a skip when nothing is in flight.
 *  E2 A client past the lag limit is skipped to the newest join point once its write completes
 *     ('skip'), or cut ('disconnect'). One whose write does not complete by the cut limit (or that
 *     blocks the writer) is cut: its socket is destroyed, so libuv drops the rest of the write
 *     before the writer may reuse those bytes. Other clients never wait for it.
 *  E3 A removed client leaves nothing behind: slot released, listeners and callbacks inert.
 */
import { RingReader, ahead, TS } from '../shared/ring';
import type { LagPolicy } from '../shared/config';

/** The part of a socket the egress uses. */
export interface Sink {
  write(chunk: Buffer, cb: (err?: Error | null) => void): boolean;
  cork(): void;
  uncork(): void;
  destroy(): void;
}

export type CutReason = 'lagging' | 'stalled' | 'timeout' | 'write-error';

export class Client {
  cursor: number;
  /** End of the write in flight, or -1. */
  private end = -1;
  bytes = 0;
  skips = 0;
  readonly since = Date.now();
  removed = false;
  firstWriteAt = 0;
  /** When the write in flight was submitted (the egress's coarse clock). */
  writeAt = 0;
  readonly onWritten: (err?: Error | null) => void;

  constructor(readonly egress: Egress, readonly sink: Sink, readonly slot: number, cursor: number, readonly info: Record<string, unknown>) {
    this.cursor = cursor;
    this.onWritten = (err) => egress.written(this, err);
  }

  get writing(): boolean {
    return this.end !== -1;
  }

  /** Called by the egress only. */
  setEnd(end: number): void {
    this.end = end;
  }

  takeEnd(): number {
    const e = this.end;
    this.end = -1;
    return e;
  }
}

export interface EgressOptions {
  lagLimitBytes: number;
  lagPolicy: LagPolicy;
  joinDelayMs: number;
  /** A write in flight this long means a half-open or stalled client: cut it (E2). */
  clientTimeoutMs: number;
  /** Told when the egress cuts a client; the owner then ends its session. */
  onCut: (client: Client, reason: CutReason) => void;
}

const noop = () => {};

export class Egress {
  readonly ring: RingReader;
  readonly clients: Client[] = [];
  private readonly lagLimit: number;
  /** Past this lag a write still in flight is about to be overrun: cut (E2). */
  private readonly cutLimit: number;
  bytesOut = 0;
  cuts = 0;
  skips = 0;
  /** Coarse clock, read once per drain: no clock call per write. */
  private now = Date.now();

  constructor(ring: RingReader, private readonly opts: EgressOptions) {
    this.ring = ring;
    this.lagLimit = Math.max(1, Math.floor(opts.lagLimitBytes / TS));
    this.cutLimit = ring.cap - (ring.cap >> 3);
  }

  /** Adds a client at a clean join point and writes to it at once; null when the ring has no slot. */
  add(sink: Sink, info: Record<string, unknown> = {}): Client | null {
    const start = this.ring.joinPoint(this.opts.joinDelayMs);
    const slot = this.ring.acquire(start);
    if (slot < 0) return null;
    const c = new Client(this, sink, slot, start, info);
    this.clients.push(c);
    this.pump(c, this.ring.head());
    return c;
  }

  remove(c: Client): void {
    if (c.removed) return;
    c.removed = true;
    this.ring.release(c.slot);
    const i = this.clients.indexOf(c);
    if (i >= 0) {
      this.clients[i] = this.clients[this.clients.length - 1]!;
      this.clients.pop();
    }
  }

  /** On a WAKE: write what is new to every idle client; police the ones still writing. */
  drain(): void {
    this.ring.clearWake();
    this.now = Date.now();
    const head = this.ring.head();
    const blocked = this.ring.blocked();
    const list = this.clients;
    for (let i = list.length - 1; i >= 0; i--) {
      const c = list[i]!;
      if (!c.writing) this.pump(c, head);
      else {
        const lag = ahead(head, c.cursor);
        if (lag > this.cutLimit || (blocked && lag > this.ring.cap >> 1) || (this.opts.lagPolicy === 'disconnect' && lag > this.lagLimit)) {
          this.cut(c, lag > this.lagLimit ? 'stalled' : 'lagging');
        } else if (this.now - c.writeAt > this.opts.clientTimeoutMs) {
          this.cut(c, 'timeout');
        }
      }
    }
  }

  private cut(c: Client, reason: CutReason): void {
    this.cuts++;
    this.remove(c);
    c.sink.destroy(); // E2: libuv drops the unsent rest of the write before the slot is reused
    this.opts.onCut(c, reason);
  }

  private pump(c: Client, head: number): void {
    let lag = ahead(head, c.cursor);
    if (lag <= 0) return;
    if (lag > this.lagLimit) {
      if (this.opts.lagPolicy === 'disconnect') return this.cut(c, 'lagging');
      const to = this.ring.joinPoint(0);
      if (ahead(to, c.cursor) > 0) {
        c.cursor = to;
        c.skips++;
        this.skips++;
        this.ring.pin(c.slot, to);
        lag = ahead(head, to);
        if (lag <= 0) return;
      }
    }
    const [a, b] = this.ring.views(c.cursor, head);
    c.setEnd(head);
    c.writeAt = this.now;
    if (b === null) {
      c.sink.write(a, c.onWritten);
    } else {
      c.sink.cork();
      c.sink.write(a, noop);
      c.sink.write(b, c.onWritten);
      c.sink.uncork();
    }
  }

  /** A write completed: only now may the cursor move (E1). */
  written(c: Client, err?: Error | null): void {
    if (c.removed) return;
    const end = c.takeEnd();
    if (err) {
      this.remove(c);
      c.sink.destroy();
      this.opts.onCut(c, 'write-error');
      return;
    }
    const n = ahead(end, c.cursor) * TS;
    c.bytes += n;
    this.bytesOut += n;
    if (c.firstWriteAt === 0) c.firstWriteAt = Date.now();
    c.cursor = end;
    this.ring.pin(c.slot, end);
    this.pump(c, this.ring.head());
  }

  /** Bytes the client is behind the live edge. */
  lagBytes(c: Client): number {
    return Math.max(0, ahead(this.ring.head(), c.cursor)) * TS;
  }
}
