/**
 * Egress: writes one stream's ring to its clients' sockets. It knows sockets and the ring, not
 * HTTP or the supervisor, and assumes nothing about which thread it runs on (Node ≥ 24.20 could
 * host it in workers with transferred fresh sockets).
 *
 * Per client: at most one write in flight, of [cursor, head) as zero-copy ring views (two, corked,
 * when the range wraps). One write per wake-up and client keeps writes big (docs/DESIGN-FACTS.md, fact 3).
 * A sink that can (socket-sink.ts) first offers the views to the kernel directly; a write the
 * kernel took whole completes there and then, and only what it left goes the stream way.
 *
 * Invariants kept here (with ring.ts I2/I3):
 *  E1 A client's slot pins its cursor, which is the start of its write in flight; the cursor moves
 *     only when that write has completed (its callback, or a direct write the kernel took whole:
 *     the kernel has copied the bytes), or by a skip when nothing is in flight.
 *  E2 Lag is measured against the leader (the client furthest ahead), not the head: when every
 *     client is slower than the upstream (an engine's burst, an unthrottled source) the ring's
 *     pins hold the writer back (ring.ts I2), the upstream is paused, and nobody is skipped. A
 *     client more than the lag limit behind the leader is the slow one: it is skipped to the
 *     newest join point once its write completes ('skip'), or cut ('disconnect'). A client past
 *     the limit whose write has been stuck for BLOCKED_CUT_MS (or that alone holds the writer
 *     back that long) is cut — its socket destroyed, so libuv drops the rest of the write — as is
 *     one whose write has not completed within clientTimeoutMs (half-open). Other clients never
 *     wait for it.
 *  E3 A removed client leaves nothing behind: slot released, listeners and callbacks inert.
 */
import { type RingReader, ahead, TS } from '../../shared/ring';
import type { LagPolicy } from '../config';

/** The part of a socket the egress uses. */
export interface Sink {
  write(chunk: Buffer, cb: (err?: Error | null) => void): boolean;
  cork(): void;
  uncork(): void;
  destroy(): void;
  /** Hands the bytes to the kernel now: how many it took (0: none), or -1 when the socket failed. */
  readonly writeNow?: (a: Buffer, b: Buffer | null) => number;
}

export type CutReason = 'lagging' | 'stalled' | 'timeout' | 'write-error' | 'operator';

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

  constructor(
    readonly egress: Egress,
    readonly sink: Sink,
    readonly slot: number,
    cursor: number,
    readonly info: Record<string, unknown>,
  ) {
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
  /** The limit is half the ring as it is at each drain, not lagLimitBytes (the ring grows, ring.ts I7). */
  lagFollowsRing?: boolean;
  lagPolicy: LagPolicy;
  joinDelayMs: number;
  /** A write in flight this long means a half-open or stalled client: cut it (E2). */
  clientTimeoutMs: number;
  /** Told when the egress cuts a client; the owner then ends its session. */
  onCut: (client: Client, reason: CutReason) => void;
  /** Told when a client's first write has completed (first-byte metrics). */
  onFirstWrite?: (client: Client) => void;
}

const noop = () => {};
/** Largest single write: 256 KiB (docs/DESIGN-FACTS.md, fact 3: past ~64 KB a write costs no less per byte). */
const MAX_WRITE_PACKETS = 1394;
/** Drain at least this often even with no new data, to apply timeouts. */
const POLICE_MS = 250;
/** Writes the kernel takes whole, one after another, for one client in one pump (catching up). */
const DIRECT_CATCH_UP = 4;
/** A lone client holding the writer back this long with a write in flight is cut (E2). */
const BLOCKED_CUT_MS = 2000;

export class Egress {
  readonly ring: RingReader;
  readonly clients: Client[] = [];
  /** Packets (E2); half the current ring when it follows the ring, updated each drain. */
  private lagLimit: number;
  /** The most advanced completed cursor, recomputed each drain (E2). */
  private leader = 0;
  bytesOut = 0;
  writes = 0;
  cuts = 0;
  skips = 0;
  /** Coarse clock, read once per drain: no clock call per write. */
  private now = Date.now();
  private seenHead = 0;

  constructor(
    ring: RingReader,
    private readonly opts: EgressOptions,
  ) {
    this.ring = ring;
    this.lagLimit = opts.lagFollowsRing ? ring.pinCap() >> 1 : Math.max(1, Math.floor(opts.lagLimitBytes / TS));
  }

  /** Adds a client at a clean join point and writes to it at once; null when the ring has no slot. */
  add(sink: Sink, info: Record<string, unknown> = {}): Client | null {
    const start = this.ring.joinPoint(this.opts.joinDelayMs);
    const slot = this.ring.acquire(start);
    if (slot < 0) return null;
    const c = new Client(this, sink, slot, start, info);
    this.clients.push(c);
    this.pump(c, this.ring.head()); // a joiner's first bytes go out now, not on the next tick
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

  /** On the egress clock: drain when the head moved, and now and then anyway (client timeouts). */
  poll(now: number): void {
    if (this.ring.head() !== this.seenHead || now - this.now >= POLICE_MS) this.drain(now);
  }

  drain(now = Date.now()): void {
    this.ring.clearWake();
    this.now = now;
    const head = this.ring.head(); // and the ring's cap, which may have grown (ring.ts I7)
    this.seenHead = head;
    // Half of what the writer is really bound by: right after a growth, pins from before it still
    // block the writer at the old cap, and a stuck one must count as lagging to be cut (E2).
    if (this.opts.lagFollowsRing) this.lagLimit = this.ring.pinCap() >> 1;
    const blocked = this.ring.blocked();
    const list = this.clients;
    if (list.length === 0) return;
    let leader = list[0]!.cursor;
    for (let i = 1; i < list.length; i++) if (ahead(list[i]!.cursor, leader) > 0) leader = list[i]!.cursor;
    this.leader = leader;
    for (let i = list.length - 1; i >= 0; i--) {
      const c = list[i]!;
      if (!c.writing) {
        this.pump(c, head);
        continue;
      }
      const behind = ahead(leader, c.cursor);
      const stuck = this.now - c.writeAt;
      // A slow client whose write still completes is skipped when it does (pump); only one whose
      // write is stuck is cut, and that happens long before its pin could hold the writer back.
      if (behind > this.lagLimit && this.opts.lagPolicy === 'disconnect') this.cut(c, 'lagging');
      else if (stuck > BLOCKED_CUT_MS && (behind > this.lagLimit || (blocked && ahead(head, c.cursor) > this.lagLimit)))
        this.cut(c, 'stalled');
      else if (stuck > this.opts.clientTimeoutMs) this.cut(c, 'timeout');
    }
  }

  private cut(c: Client, reason: CutReason): void {
    this.cuts++;
    this.remove(c);
    c.sink.destroy(); // E2: libuv drops the unsent rest of the write before the slot is reused
    this.opts.onCut(c, reason);
  }

  private pump(c: Client, head: number): void {
    for (let direct = 0; ; direct++) {
      let lag = ahead(head, c.cursor);
      if (lag <= 0) return;
      if (ahead(this.leader, c.cursor) > this.lagLimit) {
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
      // Bounded writes: each completes soon (so a stuck one means a stuck client), and a client
      // catching up shares the loop fairly with the others.
      const end = lag > MAX_WRITE_PACKETS ? (c.cursor + MAX_WRITE_PACKETS) | 0 : head;
      let [a, b] = this.ring.views(c.cursor, end);
      c.setEnd(end);
      c.writeAt = this.now;
      this.writes++;
      if (c.sink.writeNow !== undefined) {
        const took = c.sink.writeNow(a, b);
        if (took < 0) return this.cut(c, 'write-error');
        if (took === a.length + (b === null ? 0 : b.length)) {
          // E1: the kernel has copied it, the write is complete. The leader stays as this drain
          // found it (E2: lag is judged against completed cursors, not against a client that
          // happened to be written first in this drain).
          this.complete(c, c.takeEnd());
          if (direct < DIRECT_CATCH_UP - 1) continue;
          return;
        }
        // The rest goes the stream way, after nothing (socket-sink.ts D1, D3).
        if (took >= a.length) [a, b] = [b!.subarray(took - a.length), null];
        else if (took > 0) a = a.subarray(took);
      }
      if (b === null) {
        c.sink.write(a, c.onWritten);
      } else {
        c.sink.cork();
        c.sink.write(a, noop);
        c.sink.write(b, c.onWritten);
        c.sink.uncork();
      }
      return;
    }
  }

  /** A write in flight completed (its callback): only now may the cursor move (E1). */
  written(c: Client, err?: Error | null): void {
    if (c.removed) return;
    const end = c.takeEnd();
    if (err) return this.cut(c, 'write-error');
    this.complete(c, end);
    if (ahead(end, this.leader) > 0) this.leader = end;
    // Catch up at once only to the head the last drain saw; what arrived since waits for the next
    // tick, or the writes would shrink back to the size of upstream chunks.
    this.pump(c, this.seenHead);
  }

  /** The client has sent everything up to `end`. */
  private complete(c: Client, end: number): void {
    const n = ahead(end, c.cursor) * TS;
    c.bytes += n;
    this.bytesOut += n;
    if (c.firstWriteAt === 0) {
      c.firstWriteAt = Date.now();
      this.opts.onFirstWrite?.(c);
    }
    c.cursor = end;
    this.ring.pin(c.slot, end);
  }

  /** Bytes the client is behind the live edge. */
  lagBytes(c: Client): number {
    return Math.max(0, ahead(this.ring.head(), c.cursor)) * TS;
  }
}

/**
 * One timer for every stream's egress. Polling the heads every batchMs replaced a ping per
 * publication: the writes come out as big (rate × batchMs) and the actors post nothing in
 * steady state. Runs only while some stream exists.
 */
export class EgressClock {
  private readonly all = new Set<Egress>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly periodMs: number) {}

  add(e: Egress): void {
    this.all.add(e);
    this.timer ??= setInterval(() => this.tick(), this.periodMs);
  }

  remove(e: Egress): void {
    this.all.delete(e);
    if (this.all.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  private tick(): void {
    const now = Date.now();
    for (const e of this.all) e.poll(now);
  }
}
