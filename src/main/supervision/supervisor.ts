/**
 * The supervisor: the registry of streams and the only place where policy is decided — which
 * engine and which id a stream uses, what a fault means (retry, reconnect, failover, give up),
 * how long a stream outlives its last client. Stream actors carry the decisions out
 * (src/shared/messages.ts); they decide nothing.
 *
 * Lifecycle of a stream: starting → live ⇄ recovering → draining → stopped.
 *  S1 One stream per key at a time: the registry entry is made synchronously on the first
 *     request, so concurrent first requests share one engine session.
 *  S2 A stopped stream leaves the registry at once, so a later request makes a new one; that one
 *     waits for the old session's stop to finish (bounded) before it asks the engine, so a stop
 *     and a join never race on the engine (Dispatcharr #1341, #1557).
 *  S3 refs counts clients attached or waiting; at 0 the stream drains for graceMs and a client
 *     arriving meanwhile re-attaches to the same session, whatever state it is in.
 *  S4 Stopping releases everything: retry and grace timers, the actor (told to stop, port
 *     closed), clients' responses (ended cleanly), the engine session (stop sent, bounded).
 *  S5 The actor exists from the stream's first moment to its last, across sessions, engines and
 *     alternates, so keepalive covers every gap; if its thread dies it is restarted on the same
 *     ring, and clients stay connected.
 *  S6 A stopped stream's ring goes back to the pool (ring-pool.ts P1) only when every actor task
 *     it ever ran has settled and every client socket that held its views has closed; sockets
 *     still open clientTimeoutMs after the stop are destroyed, so no client pins a ring forever.
 *
 * Fault policy (decide()): the first fault of a stream that was flowing → reconnect to the same
 * playback URL; a session the engine no longer knows (403/404/410, stat "unknown playback
 * session") → a new session; anything that keeps failing → failover: the next alternate id of a
 * channel, else another engine, else a fresh session. Delays back off exponentially with jitter;
 * retryAttempts consecutive failures or maxSwitches switches → give up. Flowing for
 * stablePeriodMs resets all counters.
 *  S6 Clients that have their headers are not given up on before giveUpAfterMs of outage: past
 *     the attempt and switch limits the stream keeps retrying at the capped delay, on keepalive.
 *     A stream nobody watches still ends after its grace period (S3).
 *  S7 While a retry waits, an engine that went away (unreachable, refused) is probed with
 *     get_version every readyProbeMs, one probe per engine whatever the number of streams; the
 *     first answer after a failure retries every waiting stream at once with a new session and
 *     fresh counters. An engine that never went away is not probed into early retries, so the
 *     backoff keeps protecting an engine that answers but fails streams. The first reconnect of a
 *     flowing stream, and the first new session after "session gone", are not delayed at all.
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { randomBytes } from 'node:crypto';
import type { Piscina } from 'piscina';
import type { Config } from '../config';
import { RingReader } from '../../shared/ring';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/umd/node-adapter';
import {
  WAKE,
  type ActorTask,
  type Command,
  type Report,
  type ActorStats,
  type EngineStat,
  type UpstreamFault,
  type ActorApi,
  type ActorInspection,
} from '../../shared/messages';
import { Egress, EgressClock, type Client, type Sink, type CutReason } from '../egress/egress';
import { RingPool } from '../egress/ring-pool';
import { startSession, stopSession, engineVersion, type EngineSession } from '../engine/engine-client';
import { EngineError, LimitError, StreamGoneError } from '../errors';
import type { EventLog } from './events';
import type { EnginePool, EngineState } from '../engine/engines';

export type StreamState = 'starting' | 'live' | 'recovering' | 'draining' | 'stopped';

export interface Selector {
  name: 'id' | 'infohash';
  value: string;
}

/** A named channel with alternate ids in preference order (the channels file). */
export interface ChannelRef {
  name: string;
  slug: string;
  ids: Selector[];
}

export interface ClientSink extends Sink {
  end(): void;
}

type Action = 'reconnect' | 'new-session' | 'next-engine' | 'next-id';

const ACTOR_RESTARTS_PER_MINUTE = 5;

export class Stream {
  state: StreamState = 'starting';
  session: EngineSession | null = null;
  /** The engine a getstream is out to, until it answers: it counts in the engines' load already. */
  openingOn: string | null = null;
  selector: Selector;
  readonly egress: Egress;
  readonly createdAt = Date.now();
  firstDataAt = 0;
  refs = 0;
  port: MessagePort | null = null;
  /** comlink proxy of the actor's ActorApi (on-demand introspection). */
  inspector: Comlink.Remote<ActorApi> | null = null;
  inspectPort: MessagePort | null = null;
  graceTimer: NodeJS.Timeout | null = null;
  retryTimer: NodeJS.Timeout | null = null;
  /** The actor's counters, read from the ring. */
  get stats(): ActorStats {
    return this.egress.ring.readStats();
  }
  stat: EngineStat | null = null;
  /** Why the last stat poll failed (cut short by the actor), or null. */
  statError: string | null = null;
  stopReason = '';
  readonly sinks = new Map<Client, ClientSink>();
  /** Settles once: resolved when a session is first obtained, rejected if that fails for good. */
  readonly ready: Promise<void>;
  answered = false;
  settle!: (err?: Error) => void;

  // Supervision state, reset by a stable period (see decide()).
  attempts = 0;
  switches = 0;
  /** When data last started flowing on the current upstream; 0 while not flowing. */
  liveSince = 0;
  idIndex = 0;
  readonly triedIds = new Set<string>();
  readonly triedEngines = new Set<string>();
  life = 0;
  /** Actor tasks started and not yet settled (S6). */
  tasks = 0;
  ringReturned = false;
  /** Destroys the sockets still open after a stop (S6). */
  closeTimer: NodeJS.Timeout | null = null;
  restarts: number[] = [];
  lastError: EngineError | null = null;
  /** The latest fault and what was done about it, for /ace/status (detail already cut short). */
  lastFault: { fault: string; detail: string; action: string; at: string } | null = null;
  /** When the current outage began (the first fault since data last flowed); 0 while flowing. */
  outageSince = 0;

  constructor(
    readonly key: string,
    selector: Selector,
    readonly extra: ReadonlyArray<[string, string]>,
    readonly channel: ChannelRef | null,
    ring: RingReader,
    egress: (s: Stream, r: RingReader) => Egress,
  ) {
    this.selector = selector;
    this.egress = egress(this, ring);
    this.ready = new Promise<void>((resolve, reject) => {
      this.settle = (err) => {
        if (this.answered) return;
        this.answered = true;
        if (err) reject(err);
        else resolve();
      };
    });
    this.ready.catch(() => {}); // observed by joiners; never an unhandled rejection
  }
}

/** Re-reads state after an await (TypeScript would keep the narrowing from before it). */
const stopped = (s: Stream): boolean => s.state === 'stopped';

/** The content id plus the engine parameters (routes' stream-query.ts Q1), re-encoded so a value can never read as another parameter. */
export function streamKey(sel: Selector, extra: ReadonlyArray<[string, string]>): string {
  const rest = new URLSearchParams([...extra].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))).toString();
  return `${sel.name}=${sel.value.toLowerCase()}${rest ? `&${rest}` : ''}`;
}

/** base · 2^(attempt−1), capped, then jittered into [½, 1] of that so retries spread out. */
export function backoff(attempt: number, baseMs: number, capMs: number, rand = Math.random): number {
  const d = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(d / 2 + (rand() * d) / 2);
}

/** S7: streams waiting to retry on one engine, and whether a probe has seen it gone. */
interface ReadyWait {
  streams: Set<Stream>;
  away: boolean;
  timer: NodeJS.Timeout | null;
}

export class Supervisor {
  readonly streams = new Map<string, Stream>();
  private readonly readyWaits = new Map<string, ReadyWait>();
  private readonly stopping = new Map<string, Promise<void>>();
  private pidSeq = 0;
  private readonly pidPrefix = `acemux-${randomBytes(3).toString('hex')}`;
  clients = 0;
  closed = false;
  /** SIGTERM's drain delay: streams play on, but a fault ends a stream instead of a retry, so a
   *  draining node never fights the node that took its channel over on a shared engine. */
  draining = false;
  private readonly clock: EgressClock;
  /** Bytes carried by streams that have stopped (for the byte counters). */
  readonly bytesDone = { in: 0, out: 0 };
  /** Hook for first-byte metrics (set by the server). */
  onFirstWrite: ((c: Client) => void) | null = null;
  /** Told synchronously when a stream stops, before its ring is let go (HLS releases its slot). */
  onStreamStop: ((s: Stream) => void) | null = null;
  readonly rings: RingPool;

  constructor(
    private readonly cfg: Config,
    private readonly pool: Piscina,
    readonly engines: EnginePool,
    readonly events: EventLog,
  ) {
    this.clock = new EgressClock(cfg.batchMs);
    this.rings = new RingPool(cfg.ringPoolIdle);
  }

  /**
   * Takes a reference on the stream (starting it if needed) and waits until it has an engine
   * session, or until headersWithinMs when that is set. The caller must call leave() exactly once
   * afterwards — attach()+detach() do that — also on its failure paths after a successful join.
   */
  async join(sel: Selector, extra: ReadonlyArray<[string, string]>, channel: ChannelRef | null = null): Promise<Stream> {
    if (this.closed) throw new LimitError('acemux is shutting down', 5);
    const key = channel ? `channel=${channel.slug}` : streamKey(sel, extra);
    let s = this.streams.get(key);
    if (s === undefined) {
      if (this.cfg.maxStreams > 0 && this.streams.size >= this.cfg.maxStreams) {
        throw new LimitError(`stream limit reached (${this.cfg.maxStreams})`, 10);
      }
      s = this.start(key, sel, extra, channel);
    }
    if (s.refs >= this.cfg.maxClientsPerStream)
      throw new LimitError(`client limit of this stream reached (${this.cfg.maxClientsPerStream})`, 10);
    if (this.cfg.maxClients > 0 && this.clients >= this.cfg.maxClients)
      throw new LimitError(`client limit reached (${this.cfg.maxClients})`, 10);
    this.ref(s);
    try {
      if (this.cfg.headersWithinMs > 0 && !s.answered) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([s.ready, new Promise<void>((r) => (timer = setTimeout(r, this.cfg.headersWithinMs)))]);
        clearTimeout(timer);
      } else {
        await s.ready;
      }
    } catch (e) {
      this.leave(s);
      throw e;
    }
    if (stopped(s)) {
      this.leave(s);
      throw new StreamGoneError(`stream ended: ${s.stopReason}`);
    }
    return s;
  }

  private ref(s: Stream): void {
    s.refs++;
    this.clients++;
    if (s.graceTimer !== null) {
      clearTimeout(s.graceTimer);
      s.graceTimer = null;
      s.state = s.retryTimer ? 'recovering' : s.liveSince > 0 ? 'live' : 'starting';
    }
  }

  /** Drops a reference taken by join(); the last one starts the grace period (S3). */
  leave(s: Stream): void {
    s.refs--;
    this.clients--;
    if (s.refs > 0 || s.state === 'stopped') return;
    s.state = 'draining';
    s.graceTimer = setTimeout(() => this.stop(s, 'no clients'), this.cfg.graceMs);
  }

  /** Attaches a joined client's socket; it gets its first bytes right away. */
  attach(s: Stream, sink: ClientSink, info: Record<string, unknown>): Client {
    const c = s.egress.add(sink, info);
    if (c === null) throw new LimitError('no reader slot left on this stream', 10); // refs bound this; defensive
    s.sinks.set(c, sink);
    return c;
  }

  /** The client's socket closed. */
  detach(s: Stream, c: Client): void {
    s.egress.remove(c);
    if (s.sinks.delete(c)) this.leave(s);
    this.returnRing(s);
  }

  /** S6: the ring back to the pool once nothing can reach it; called on each event that may end that. */
  private returnRing(s: Stream): void {
    if (s.state !== 'stopped' || s.ringReturned || s.tasks > 0 || s.sinks.size > 0) return;
    s.ringReturned = true;
    if (s.closeTimer) clearTimeout(s.closeTimer); // it would keep the stream, and a dropped ring, alive
    this.rings.give(s.egress.ring.sab);
  }

  private start(key: string, sel: Selector, extra: ReadonlyArray<[string, string]>, channel: ChannelRef | null): Stream {
    const ring = new RingReader(this.rings.take(this.cfg.ringBytes, this.cfg.maxClientsPerStream + 1, this.cfg.ringMaxBytes)); // + the HLS segmenter's slot
    const first = channel ? channel.ids[0]! : sel;
    const s = new Stream(
      key,
      first,
      extra,
      channel,
      ring,
      (st, r) =>
        new Egress(r, {
          lagLimitBytes: this.cfg.lagLimitBytes,
          lagFollowsRing: this.cfg.lagLimitFollowsRing,
          lagPolicy: this.cfg.lagPolicy,
          joinDelayMs: this.cfg.joinDelayMs,
          clientTimeoutMs: this.cfg.clientTimeoutMs,
          onCut: (c, reason) => this.onCut(st, c, reason),
          onFirstWrite: (c) => this.onFirstWrite?.(c),
        }),
    );
    this.streams.set(key, s); // S1
    this.clock.add(s.egress);
    this.events.record('stream-start', { stream: key, id: first.value }, 'stream starting');
    this.spawn(s); // S5: keepalive from the first moment
    void this.openSession(s, true);
    return s;
  }

  // ---- sessions ----

  private async openSession(s: Stream, first = false): Promise<void> {
    if (first) {
      const previous = this.stopping.get(s.key);
      if (previous) await previous; // S2
    }
    if (stopped(s)) return;
    const engine = this.pickEngine(s.triedEngines);
    const pid = `${this.pidPrefix}-${++this.pidSeq}`;
    let session: EngineSession;
    s.openingOn = engine.url;
    try {
      session = await startSession(engine.url, s.selector, s.extra, pid, this.cfg.engineTimeoutMs, this.cfg.engineMaxAnswerBytes);
    } catch (e) {
      s.openingOn = null;
      if (stopped(s)) return;
      const err = e instanceof EngineError ? e : new EngineError((e as Error).message, 502, 'bad-answer');
      s.lastError = err;
      if (err.kind === 'unreachable' || err.kind === 'timeout') this.engines.markFailure(engine.url, err.message);
      s.triedEngines.add(engine.url);
      return this.onFault(s, err.kind === 'engine' ? 'session' : 'engine', err.message);
    }
    s.openingOn = null;
    if (stopped(s)) {
      if (session.commandUrl) void stopSession(session.commandUrl, this.cfg.stopTimeoutMs, this.cfg.engineMaxAnswerBytes);
      return;
    }
    const old = s.session;
    s.session = session;
    if (old?.commandUrl) void stopSession(old.commandUrl, this.cfg.stopTimeoutMs, this.cfg.engineMaxAnswerBytes);
    this.send(s, { type: 'connect', playbackUrl: session.playbackUrl, statUrl: session.statUrl, splice: s.answered });
    s.settle();
  }

  /** Streams per engine, derived from the registry (never stored, so never stale). */
  engineLoads(): Map<string, number> {
    const load = new Map<string, number>();
    // A stream whose getstream is still out counts on that engine: a burst of new channels would
    // otherwise all see the same loads and go to the same engine (seen under a CPU hog, where
    // the engine answers slowly: 30 channels on 3 nodes, all on one of two engines).
    for (const st of this.streams.values()) {
      const e = st.openingOn ?? st.session?.engine;
      if (e) load.set(e, (load.get(e) ?? 0) + 1);
    }
    return load;
  }

  /**
   * The least-loaded healthy engine not in `avoid`; else an untried one (the least recently
   * failed); else any healthy one; else the least recently failed. Never none: refusing every
   * stream on a probe's word would turn a flaky probe into an outage.
   */
  private pickEngine(avoid: ReadonlySet<string>): EngineState {
    const all = this.engines.engines;
    const load = this.engineLoads();
    const n = (e: EngineState) => load.get(e.url) ?? 0;
    const leastLoaded = (list: EngineState[]) => list.reduce((a, b) => (n(b) < n(a) ? b : a));
    const longestOk = (list: EngineState[]) => list.reduce((a, b) => (b.failedAt < a.failedAt ? b : a));
    const healthy = all.filter((e) => e.healthy);
    const fresh = healthy.filter((e) => !avoid.has(e.url));
    if (fresh.length) return leastLoaded(fresh);
    const untried = all.filter((e) => !avoid.has(e.url));
    if (untried.length) return longestOk(untried);
    return healthy.length ? leastLoaded(healthy) : longestOk(all);
  }

  // ---- actors ----

  private spawn(s: Stream): void {
    const { port1, port2 } = new MessageChannel();
    s.port = port1;
    const rpc = new MessageChannel();
    s.inspectPort?.close();
    s.inspectPort = rpc.port1;
    s.inspector = Comlink.wrap<ActorApi>(nodeEndpoint(rpc.port1 as never));
    const connect =
      s.session && s.answered
        ? { type: 'connect' as const, playbackUrl: s.session.playbackUrl, statUrl: s.session.statUrl, splice: true }
        : null;
    const task: ActorTask = {
      streamId: s.key,
      ring: s.egress.ring.sab,
      port: port2,
      epoch: s.createdAt,
      batchBytes: this.cfg.batchBytes,
      keepaliveMs: this.cfg.keepaliveMs,
      avHoldMs: this.cfg.avHoldMs,
      firstDataTimeoutMs: this.cfg.firstDataTimeoutMs,
      stallTimeoutMs: this.cfg.stallTimeoutMs,
      playbackHeadersTimeoutMs: this.cfg.playbackHeadersTimeoutMs,
      statIntervalMs: this.cfg.statIntervalMs,
      ringSeconds: this.cfg.ringSeconds,
      engineTimeoutMs: this.cfg.engineTimeoutMs,
      engineMaxAnswerBytes: this.cfg.engineMaxAnswerBytes,
      connect,
      life: s.life,
      inspectPort: rpc.port2,
    };
    port1.on('message', (m: Report | typeof WAKE) => {
      if (stopped(s)) return; // its ring may already serve another stream (S6)
      if (m === WAKE) s.egress.drain();
      else this.onReport(s, m);
    });
    s.tasks++;
    this.pool.run(task, { transferList: [port2, rpc.port2] as never }).then(
      () => {
        port1.close();
        rpc.port1.close();
        s.tasks--;
        this.returnRing(s);
      },
      (err: Error) => {
        port1.close();
        rpc.port1.close();
        s.tasks--;
        if (s.state !== 'stopped' && s.port === port1) this.onActorDied(s, err);
        this.returnRing(s);
      },
    );
  }

  /** S5: a dead thread takes its actors with it; the rings and sockets live here, so restart. */
  private onActorDied(s: Stream, err: Error): void {
    const now = Date.now();
    s.restarts = s.restarts.filter((t) => now - t < 60_000);
    s.restarts.push(now);
    if (s.restarts.length > ACTOR_RESTARTS_PER_MINUTE) return this.giveUp(s, `actor keeps dying: ${err.message}`);
    s.life++;
    s.liveSince = 0;
    this.events.record('actor-restart', { stream: s.key, error: err.message, life: s.life }, 'stream actor died; restarting it');
    this.spawn(s);
  }

  private send(s: Stream, c: Command): void {
    s.port?.postMessage(c);
  }

  private onReport(s: Stream, m: Report): void {
    switch (m.type) {
      case 'first-data': {
        const now = Date.now();
        const recovered = s.state === 'recovering' || s.firstDataAt > 0;
        s.firstDataAt ||= now;
        s.liveSince = now;
        s.outageSince = 0;
        if (s.state !== 'draining' && s.state !== 'stopped') s.state = 'live';
        if (s.session) this.engines.markSuccess(s.session.engine);
        this.events.record(
          'stream-live',
          { stream: s.key, ms: now - s.createdAt, recovered, id: s.selector.value, engine: s.session?.engine },
          recovered ? 'stream flowing again' : 'first data from engine',
        );
        break;
      }
      case 'stat':
        s.stat = m.stat;
        s.statError = m.error ?? null;
        if (m.error && /unknown playback session/i.test(m.error) && s.liveSince > 0) {
          this.send(s, { type: 'disconnect' });
          this.onFault(s, 'gone', `stat: ${m.error}`);
        }
        break;
      case 'upstream-fault':
        this.onFault(s, m.fault, m.detail);
        break;
    }
  }

  // ---- policy ----

  /** Every failure comes here: upstream faults from the actor, and failed getstream calls. */
  private onFault(s: Stream, fault: UpstreamFault | 'session' | 'engine', detail: string): void {
    if (s.state === 'stopped') return;
    if (this.draining) return this.stop(s, `draining: ${detail}`);
    const now = Date.now();
    const wasFlowing = s.liveSince > 0;
    if (wasFlowing && now - s.liveSince >= this.cfg.stablePeriodMs) this.resetHealth(s);
    s.liveSince = 0;
    if (wasFlowing || s.outageSince === 0) s.outageSince = now;
    s.attempts++;
    const action = this.decide(s, fault, wasFlowing);
    if (action === null) return;
    const holding = s.sinks.size > 0 && now - s.outageSince < this.cfg.giveUpAfterMs; // S6
    if (s.attempts > this.cfg.retryAttempts && !holding) return this.giveUp(s, `${detail} (after ${s.attempts - 1} retries)`);
    if (action !== 'reconnect' && action !== 'new-session' && ++s.switches > this.cfg.maxSwitches && !holding)
      return this.giveUp(s, `${detail} (after ${s.switches - 1} switches)`);
    // S7: the first reconnect of a stream that was flowing, and the first new session after the
    // engine said the session is gone, go at once: one call each is no hammering, and players wait.
    const atOnce = (action === 'reconnect' && s.attempts === 1) || (fault === 'gone' && s.attempts <= 2);
    const delay = atOnce
      ? 0
      : action === 'next-id' || action === 'next-engine'
        ? s.answered
          ? backoff(1, this.cfg.retryBaseMs, this.cfg.retryCapMs)
          : 0
        : backoff(s.attempts, this.cfg.retryBaseMs, this.cfg.retryCapMs);
    const kind = action === 'reconnect' ? 'reconnect' : action === 'new-session' ? 'retry' : 'failover';
    if (s.state !== 'draining') s.state = 'recovering';
    if (action === 'next-id') s.selector = this.nextId(s);
    s.lastFault = { fault, detail, action, at: new Date(now).toISOString() };
    this.events.record(
      kind,
      {
        stream: s.key,
        fault,
        detail,
        action,
        attempt: s.attempts,
        switches: s.switches,
        delay_ms: delay,
        id: s.selector.value,
        engine: s.session?.engine,
      },
      `${kind}: ${detail}`,
    );
    if (s.retryTimer) clearTimeout(s.retryTimer);
    s.retryTimer = setTimeout(() => {
      s.retryTimer = null;
      if (s.state === 'stopped') return;
      if (action === 'reconnect' && s.session) {
        this.send(s, { type: 'connect', playbackUrl: s.session.playbackUrl, statUrl: s.session.statUrl, splice: true });
      } else {
        void this.openSession(s);
      }
    }, delay);
    const away = fault === 'engine' || fault === 'connect';
    this.awaitEngine(s, s.session?.engine ?? this.pickEngine(s.triedEngines).url, away);
  }

  /** S7: probe the engine while `s` waits to retry; once it answers after being away, go now. */
  private awaitEngine(s: Stream, engine: string, away: boolean): void {
    if (this.cfg.readyProbeMs <= 0) return;
    let w = this.readyWaits.get(engine);
    if (w === undefined) {
      w = { streams: new Set(), away: false, timer: null };
      this.readyWaits.set(engine, w);
      const wait = w;
      const tick = async (): Promise<void> => {
        wait.timer = null;
        for (const st of wait.streams) if (st.state === 'stopped' || st.retryTimer === null) wait.streams.delete(st);
        if (wait.streams.size === 0 || this.closed) return void this.readyWaits.delete(engine);
        let ok = false;
        try {
          await engineVersion(engine, Math.min(this.cfg.engineTimeoutMs, 2000));
          ok = true;
        } catch {
          wait.away = true;
        }
        if (ok && wait.away) {
          this.readyWaits.delete(engine);
          this.engines.markSuccess(engine);
          for (const st of wait.streams) if (st.state !== 'stopped' && st.retryTimer !== null) this.engineBack(st, engine);
          return;
        }
        wait.timer = setTimeout(() => void tick(), this.cfg.readyProbeMs);
        wait.timer.unref();
      };
      w.timer = setTimeout(() => void tick(), this.cfg.readyProbeMs);
      w.timer.unref();
    }
    w.streams.add(s);
    if (away) w.away = true;
  }

  /** S7: the engine answers again; the outage was not this stream's doing. */
  private engineBack(s: Stream, engine: string): void {
    if (s.retryTimer) clearTimeout(s.retryTimer);
    s.retryTimer = null;
    s.attempts = 0;
    s.triedEngines.clear();
    this.events.record(
      'retry',
      {
        stream: s.key,
        fault: 'engine-back',
        detail: 'engine answers get_version again',
        action: 'new-session',
        attempt: 0,
        switches: s.switches,
        delay_ms: 0,
        id: s.selector.value,
        engine,
      },
      'retry: the engine answers again',
    );
    void this.openSession(s);
  }

  /** What to do about a fault; null when the stream was given up. */
  private decide(s: Stream, fault: UpstreamFault | 'session' | 'engine', wasFlowing: boolean): Action | null {
    const alternates = s.channel !== null && s.channel.ids.length > 1;
    const otherEngine = this.engines.engines.length > 1;
    // Before anyone got headers, fail fast where there is nothing else to try: the client gets
    // the engine's answer (502/504) instead of a retry loop — unless the operator chose early
    // headers (headersWithinMs), asking for keepalive and retries rather than errors.
    const nothingElse = (fault === 'session' && !alternates) || (fault === 'engine' && !otherEngine && !alternates);
    if (!s.answered && this.cfg.headersWithinMs === 0 && nothingElse) {
      this.giveUp(s, s.lastError?.message ?? fault);
      return null;
    }
    if (fault === 'gone') return 'new-session';
    if (wasFlowing && s.attempts === 1 && s.session) return 'reconnect';
    if (fault === 'engine') {
      if (otherEngine && s.triedEngines.size < this.engines.engines.length) return 'next-engine';
      if (alternates) return 'next-id';
      return 'new-session';
    }
    if (alternates) return 'next-id';
    if (otherEngine) {
      if (s.session) s.triedEngines.add(s.session.engine);
      if (s.triedEngines.size >= this.engines.engines.length) s.triedEngines.clear();
      return 'next-engine';
    }
    return 'new-session';
  }

  /** The next alternate not tried since the last stable period, wrapping around the list. */
  private nextId(s: Stream): Selector {
    const ids = s.channel!.ids;
    s.triedIds.add(s.selector.value.toLowerCase());
    for (let k = 1; k <= ids.length; k++) {
      const i = (s.idIndex + k) % ids.length;
      if (!s.triedIds.has(ids[i]!.value.toLowerCase())) {
        s.idIndex = i;
        return ids[i]!;
      }
    }
    s.triedIds.clear(); // every id tried: wrap around
    s.idIndex = (s.idIndex + 1) % ids.length;
    return ids[s.idIndex]!;
  }

  private resetHealth(s: Stream): void {
    s.attempts = 0;
    s.switches = 0;
    s.triedIds.clear();
    s.triedEngines.clear();
  }

  private giveUp(s: Stream, reason: string): void {
    this.events.record('give-up', { stream: s.key, reason, attempts: s.attempts, switches: s.switches }, 'giving up on stream');
    s.settle(s.lastError ?? new EngineError(reason, 502, 'engine'));
    this.stop(s, `gave up: ${reason}`);
  }

  private onCut(s: Stream, c: Client, reason: CutReason): void {
    this.events.record(
      'client-cut',
      { stream: s.key, reason, lag_bytes: s.egress.lagBytes(c), bytes: c.bytes, remote: c.info.remote },
      'client cut',
    );
  }

  /** S4. Idempotent. */
  stop(s: Stream, reason: string): void {
    if (s.state === 'stopped') return;
    s.state = 'stopped';
    s.stopReason = reason;
    s.settle(new StreamGoneError(reason));
    if (this.streams.get(s.key) === s) this.streams.delete(s.key); // S2
    this.clock.remove(s.egress);
    this.bytesDone.in += s.stats.bytesIn;
    this.bytesDone.out += s.egress.bytesOut;
    for (const t of [s.graceTimer, s.retryTimer]) if (t) clearTimeout(t);
    s.graceTimer = s.retryTimer = null;
    this.send(s, { type: 'stop' });
    this.onStreamStop?.(s);
    for (const [c, sink] of s.sinks) {
      s.egress.remove(c);
      sink.end(); // in-flight bytes still go out: nobody writes the ring any more
    }
    if (s.sinks.size > 0) {
      // S6: a client that never reads never closes, and its unsent views would pin the ring.
      s.closeTimer = setTimeout(() => {
        for (const sink of s.sinks.values()) sink.destroy();
      }, this.cfg.clientTimeoutMs).unref();
    }
    const cmd = s.session?.commandUrl;
    const p = cmd ? stopSession(cmd, this.cfg.stopTimeoutMs, this.cfg.engineMaxAnswerBytes) : Promise.resolve(null);
    const done = p
      .then((engineSaid) => {
        this.events.record('stream-stop', { stream: s.key, reason, engine_said: engineSaid ?? 'ok' }, 'stream stopped');
      })
      .finally(() => {
        if (this.stopping.get(s.key) === done) this.stopping.delete(s.key);
      });
    this.stopping.set(s.key, done);
  }

  /** Operator: the actor's own view, over comlink; bounded, since a busy or dead actor may not answer. */
  async inspect(s: Stream, timeoutMs = 2000): Promise<ActorInspection> {
    if (!s.inspector || s.state === 'stopped') throw new StreamGoneError('stream not running');
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        s.inspector.inspect() as Promise<ActorInspection>,
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('the actor did not answer in time')), timeoutMs))),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Operator: end one client's response. */
  disconnect(s: Stream, clientId: number): boolean {
    for (const [c, sink] of s.sinks) {
      if (c.info.id !== clientId) continue;
      this.onCut(s, c, 'operator');
      s.egress.remove(c);
      sink.end();
      return true;
    }
    return false;
  }

  /** Operator: move a channel to its next alternate id now. False when it has none. */
  nextAlternate(s: Stream): boolean {
    if (!s.channel || s.channel.ids.length < 2 || s.state === 'stopped') return false;
    if (s.retryTimer) clearTimeout(s.retryTimer);
    s.retryTimer = null;
    s.selector = this.nextId(s);
    s.liveSince = 0;
    if (s.state !== 'draining') s.state = 'recovering';
    this.events.record(
      'failover',
      { stream: s.key, action: 'next-id', reason: 'operator', id: s.selector.value },
      'failover: operator asked for the next alternate',
    );
    this.send(s, { type: 'disconnect' });
    void this.openSession(s);
    return true;
  }

  /** For /ace/status?id=: the running stream playing `id`. */
  find(id: string): Stream | undefined {
    const v = id.toLowerCase();
    for (const s of this.streams.values()) if (s.selector.value.toLowerCase() === v || s.channel?.slug === v) return s;
    return undefined;
  }

  /** Stops every stream and waits for the engine stops (bounded by stopTimeoutMs each). */
  async close(): Promise<void> {
    this.closed = true;
    for (const s of [...this.streams.values()]) this.stop(s, 'shutdown');
    await Promise.all([...this.stopping.values()]);
  }
}
