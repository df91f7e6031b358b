/**
 * The event log: every supervision decision (retry, reconnect, failover, give-up, client cut,
 * actor restart, …) and every client session is recorded here once — logged with structure,
 * counted by kind, kept in a bounded in-memory window for /ace/status and the admin API, and
 * handed to subscribers (the on-disk journal, metrics, the dashboard's live feed).
 *
 * Not on the data path: events happen per decision or per session, never per packet or write.
 */
import type { Logger } from 'pino';

export type EventKind =
  | 'stream-start'
  | 'stream-live'
  | 'stream-stop'
  | 'retry'
  | 'reconnect'
  | 'failover'
  | 'give-up'
  | 'actor-restart'
  | 'client-cut'
  | 'client-session'
  | 'engine-health';

export interface AceEvent {
  seq: number;
  /** ms since the epoch */
  time: number;
  kind: EventKind;
  stream?: string;
  [field: string]: unknown;
}

const LEVEL: Record<EventKind, 'info' | 'warn' | 'error'> = {
  'stream-start': 'info',
  'stream-live': 'info',
  'stream-stop': 'info',
  retry: 'warn',
  reconnect: 'warn',
  failover: 'warn',
  'give-up': 'error',
  'actor-restart': 'error',
  'client-cut': 'warn',
  'client-session': 'info',
  'engine-health': 'warn',
};

export class EventLog {
  private readonly recent: AceEvent[] = [];
  private seq = 0;
  private readonly subscribers = new Set<(e: AceEvent) => void>();

  /** `startSeq`: the journal's last seq, so numbering continues across restarts. */
  constructor(
    private readonly log: Logger,
    startSeq = 0,
    private readonly keep = 200,
  ) {
    this.seq = startSeq;
  }

  record(kind: EventKind, fields: Record<string, unknown> & { stream?: string }, msg?: string): AceEvent {
    const e: AceEvent = { seq: ++this.seq, time: Date.now(), kind, ...fields };
    this.recent.push(e);
    if (this.recent.length > this.keep) this.recent.shift();
    this.log[LEVEL[kind]]({ event: kind, ...fields }, msg ?? kind);
    for (const fn of this.subscribers) {
      try {
        fn(e);
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'event subscriber failed');
      }
    }
    return e;
  }

  /** The in-memory part of history, paged like the journal (when there is no journal). */
  page(q: PageQuery = {}): Page {
    const pager = new Pager(q);
    for (let i = this.recent.length - 1; i >= 0 && !pager.full; i--) pager.offer(this.recent[i]!);
    return pager.page();
  }

  /** The newest `n` events, newest last; optionally only one stream's. */
  last(n: number, stream?: string): AceEvent[] {
    const list = stream === undefined ? this.recent : this.recent.filter((e) => e.stream === stream);
    return list.slice(-n);
  }

  subscribe(fn: (e: AceEvent) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }
}

export interface PageQuery {
  /** Only events with seq < before (the `next` of the previous page). */
  before?: number;
  /** Default 50, at most 500. */
  limit?: number;
  kind?: string;
  stream?: string;
}

export interface Page {
  /** Newest first. */
  events: AceEvent[];
  /** Pass as `before` for the next (older) page; null when there is none. */
  next: number | null;
}

/** Collects one page from events offered newest first: the journal's and the in-memory log's. */
export class Pager {
  readonly before: number;
  private readonly limit: number;
  private readonly out: AceEvent[] = [];

  constructor(private readonly q: PageQuery) {
    this.limit = Math.min(500, Math.max(1, Math.floor(q.limit ?? 50)));
    this.before = q.before ?? Infinity;
  }

  /** One more than asked, so that `next` is null exactly when nothing older matches. */
  get full(): boolean {
    return this.out.length > this.limit;
  }

  offer(e: AceEvent): void {
    if (
      e.seq >= this.before ||
      (this.q.kind !== undefined && e.kind !== this.q.kind) ||
      (this.q.stream !== undefined && e.stream !== this.q.stream)
    )
      return;
    this.out.push(e);
  }

  page(): Page {
    const more = this.full;
    const events = more ? this.out.slice(0, this.limit) : this.out;
    return { events, next: more ? events[this.limit - 1]!.seq : null };
  }
}
