/**
 * The supervisor: the registry of streams and the only place where policy is decided — when a
 * stream starts and on which engine, how long it outlives its last client, what a fault means,
 * when to give up. Stream actors carry its decisions out (src/shared/messages.ts).
 *
 * Lifecycle of a stream: starting → live ⇄ recovering → draining → stopped.
 *  S1 One stream per key at a time: the registry entry is made synchronously on the first
 *     request, so concurrent first requests share one engine session.
 *  S2 A stopped stream leaves the registry at once, so a later request makes a new one; that one
 *     waits for the old session's stop to finish (bounded) before it asks the engine, so a stop
 *     and a join never race on the engine (Dispatcharr #1341, #1557).
 *  S3 refs counts clients attached or waiting; at 0 the stream drains for graceMs and a client
 *     arriving meanwhile re-attaches to the same session.
 *  S4 Stopping releases everything: actor told to stop, port closed, timers cleared, clients'
 *     responses ended, engine stop sent (bounded).
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { randomBytes } from 'node:crypto';
import type { Piscina } from 'piscina';
import type { Logger } from 'pino';
import type { Config } from '../shared/config';
import { createRing, RingReader } from '../shared/ring';
import { WAKE, type ActorTask, type Report, type ActorStats, type EngineStat, type ConnectCommand } from '../shared/messages';
import { Egress, type Client, type Sink, type CutReason } from './egress';
import { startSession, stopSession, EngineError, type EngineSession } from './engine-client';

export type StreamState = 'starting' | 'live' | 'recovering' | 'draining' | 'stopped';

export interface Selector {
  name: 'id' | 'infohash';
  value: string;
}

/** A request the supervisor cannot take now: 503 with Retry-After. */
export class LimitError extends Error {
  constructor(message: string, readonly retryAfterS: number) {
    super(message);
  }
}

/** The stream ended before or while the client was attaching. */
export class StreamGoneError extends Error {}

export interface ClientSink extends Sink {
  end(): void;
}

export class Stream {
  state: StreamState = 'starting';
  session: EngineSession | null = null;
  readonly egress: Egress;
  readonly createdAt = Date.now();
  firstDataAt = 0;
  refs = 0;
  port: MessagePort | null = null;
  graceTimer: NodeJS.Timeout | null = null;
  ready!: Promise<void>;
  stats: ActorStats | null = null;
  stat: EngineStat | null = null;
  stopReason = '';
  readonly sinks = new Map<Client, ClientSink>();

  constructor(readonly key: string, readonly selector: Selector, readonly extra: ReadonlyArray<[string, string]>, ring: RingReader, egress: (s: Stream, r: RingReader) => Egress) {
    this.egress = egress(this, ring);
  }
}

export function streamKey(sel: Selector, extra: ReadonlyArray<[string, string]>): string {
  const rest = [...extra].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([k, v]) => `&${k}=${v}`).join('');
  return `${sel.name}=${sel.value.toLowerCase()}${rest}`;
}

export class Supervisor {
  readonly streams = new Map<string, Stream>();
  private readonly stopping = new Map<string, Promise<void>>();
  private readonly pool: Piscina;
  private pidSeq = 0;
  private readonly pidPrefix = `acemux-${randomBytes(3).toString('hex')}`;
  clients = 0;
  closed = false;

  constructor(private readonly cfg: Config, pool: Piscina, private readonly log: Logger) {
    this.pool = pool;
  }

  /**
   * Takes a reference on the stream for `sel` (starting it if needed) and waits until it has an
   * engine session. The caller must call leave() exactly once afterwards, also on failure paths
   * after a successful join.
   */
  async join(sel: Selector, extra: ReadonlyArray<[string, string]>): Promise<Stream> {
    if (this.closed) throw new LimitError('acemux is shutting down', 5);
    const key = streamKey(sel, extra);
    let s = this.streams.get(key);
    if (s === undefined) {
      if (this.cfg.maxStreams > 0 && this.streams.size >= this.cfg.maxStreams) {
        throw new LimitError(`stream limit reached (${this.cfg.maxStreams})`, 10);
      }
      s = this.start(key, sel, extra);
    }
    if (s.refs >= this.cfg.maxClientsPerStream) throw new LimitError(`client limit of this stream reached (${this.cfg.maxClientsPerStream})`, 10);
    if (this.cfg.maxClients > 0 && this.clients >= this.cfg.maxClients) throw new LimitError(`client limit reached (${this.cfg.maxClients})`, 10);
    this.ref(s);
    try {
      await s.ready;
    } catch (e) {
      this.leave(s);
      throw e;
    }
    if (s.state === 'stopped') {
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
      s.state = s.firstDataAt > 0 ? 'live' : 'starting';
      this.log.info({ stream: s.key }, 'client re-attached during grace');
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
  }

  private start(key: string, sel: Selector, extra: ReadonlyArray<[string, string]>): Stream {
    const ring = new RingReader(createRing(this.cfg.ringBytes, this.cfg.maxClientsPerStream));
    const s = new Stream(key, sel, extra, ring, (st, r) => new Egress(r, {
      lagLimitBytes: this.cfg.lagLimitBytes,
      lagPolicy: this.cfg.lagPolicy,
      joinDelayMs: this.cfg.joinDelayMs,
      onCut: (c, reason) => this.onCut(st, c, reason),
    }));
    this.streams.set(key, s); // S1
    s.ready = this.open(s);
    s.ready.catch((e: Error) => this.stop(s, e.message));
    this.log.info({ stream: key }, 'stream starting');
    return s;
  }

  private async open(s: Stream): Promise<void> {
    const previous = this.stopping.get(s.key);
    if (previous) await previous; // S2
    const engine = this.pickEngine();
    const pid = `${this.pidPrefix}-${++this.pidSeq}`;
    const session = await startSession(engine, s.selector, s.extra, pid, this.cfg.engineTimeoutMs);
    s.session = session;
    if (s.state === 'stopped') {
      void stopSession(session.commandUrl ?? '', this.cfg.stopTimeoutMs);
      throw new StreamGoneError('stream stopped while starting');
    }
    this.log.info({ stream: s.key, engine, pid, playback: session.playbackUrl }, 'engine session started');
    this.spawn(s, { type: 'connect', playbackUrl: session.playbackUrl, statUrl: session.statUrl, splice: false });
  }

  /** The engine with the fewest of our streams (health-aware failover is the supervision issue's). */
  private pickEngine(): string {
    const load = new Map(this.cfg.engines.map((e) => [e, 0]));
    for (const s of this.streams.values()) if (s.session) load.set(s.session.engine, (load.get(s.session.engine) ?? 0) + 1);
    let best = this.cfg.engines[0]!;
    for (const [e, n] of load) if (n < load.get(best)!) best = e;
    return best;
  }

  private spawn(s: Stream, connect: ConnectCommand): void {
    const { port1, port2 } = new MessageChannel();
    s.port = port1;
    const task: ActorTask = {
      streamId: s.key,
      ring: s.egress.ring.sab,
      port: port2,
      epoch: s.createdAt,
      batchBytes: this.cfg.batchBytes,
      batchMs: this.cfg.batchMs,
      keepaliveMs: this.cfg.keepaliveMs,
      firstDataTimeoutMs: this.cfg.firstDataTimeoutMs,
      stallTimeoutMs: this.cfg.stallTimeoutMs,
      playbackHeadersTimeoutMs: this.cfg.playbackHeadersTimeoutMs,
      statIntervalMs: this.cfg.statIntervalMs,
      engineTimeoutMs: this.cfg.engineTimeoutMs,
      connect,
    };
    port1.on('message', (m: Report | typeof WAKE) => {
      if (m === WAKE) s.egress.drain();
      else this.onReport(s, m);
    });
    this.pool.run(task, { transferList: [port2] as never }).then(
      () => port1.close(),
      (err: Error) => {
        port1.close();
        if (s.state !== 'stopped') {
          this.log.error({ stream: s.key, err: err.message }, 'stream actor died');
          this.stop(s, `actor died: ${err.message}`);
        }
      },
    );
  }

  private onReport(s: Stream, m: Report): void {
    switch (m.type) {
      case 'first-data':
        s.firstDataAt ||= Date.now();
        if (s.state === 'starting' || s.state === 'recovering') s.state = 'live';
        this.log.info({ stream: s.key, ms: Date.now() - s.createdAt }, 'first data from engine');
        break;
      case 'stats':
        s.stats = m.stats;
        break;
      case 'stat':
        s.stat = m.stat;
        break;
      case 'upstream-fault':
        this.log.warn({ stream: s.key, fault: m.fault, detail: m.detail }, 'upstream fault');
        this.stop(s, `upstream ${m.fault}: ${m.detail}`);
        break;
      case 'connected':
      case 'stopped':
        break;
    }
  }

  private onCut(s: Stream, c: Client, reason: CutReason): void {
    this.log.warn({ stream: s.key, reason, lag: s.egress.lagBytes(c), bytes: c.bytes, ...c.info }, 'client cut');
  }

  /** S4. Idempotent. */
  stop(s: Stream, reason: string): void {
    if (s.state === 'stopped') return;
    s.state = 'stopped';
    s.stopReason = reason;
    if (this.streams.get(s.key) === s) this.streams.delete(s.key); // S2
    if (s.graceTimer !== null) clearTimeout(s.graceTimer);
    s.graceTimer = null;
    s.port?.postMessage({ type: 'stop' });
    for (const [c, sink] of s.sinks) {
      s.egress.remove(c);
      sink.end(); // in-flight bytes still go out: nobody writes the ring any more
    }
    const cmd = s.session?.commandUrl;
    const p = cmd
      ? stopSession(cmd, this.cfg.stopTimeoutMs).then((err) => {
          this.log.info({ stream: s.key, reason, engineSaid: err ?? 'ok' }, 'stream stopped');
        })
      : Promise.resolve().then(() => this.log.info({ stream: s.key, reason }, 'stream stopped'));
    const done = p.finally(() => {
      if (this.stopping.get(s.key) === done) this.stopping.delete(s.key);
    });
    this.stopping.set(s.key, done);
  }

  /** For /ace/status?id=: the running stream whose selector value is `id`. */
  find(id: string): Stream | undefined {
    const v = id.toLowerCase();
    for (const s of this.streams.values()) if (s.selector.value.toLowerCase() === v) return s;
    return undefined;
  }

  /** Stops every stream and waits for the engine stops (bounded by stopTimeoutMs each). */
  async close(): Promise<void> {
    this.closed = true;
    for (const s of [...this.streams.values()]) this.stop(s, 'shutdown');
    await Promise.all([...this.stopping.values()]);
  }
}

export { EngineError };
