/**
 * Prometheus metrics for /metrics. Three ways in, none on the data path:
 * - events: `observeEvent` (subscribed to the EventLog) counts decisions and cuts by kind/reason;
 * - deltas and timings pushed by their owners: `addBytes`, `observeFirstByte` (stream starts come as `stream-live` events);
 * - state pulled at scrape time: the collector set with `setCollector` runs before each render
 *   and refreshes the gauges (streams by state, clients, engines, the worst client lag) from the
 *   supervisor. Nothing pulled is a histogram: a sample per scrape would count scrapes.
 *
 * Conventions: every name starts `acemux_`; counters end `_total`; units are base units named in
 * the suffix (`_seconds`, `_bytes`). The Registry is this instance's own, so tests and several
 * servers in one process never collide on prom-client's global one.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AceEvent } from '../supervision/events';

const PREFIX = 'acemux_';
/** Zeroed at every refresh, so a state that empties shows 0 rather than its last count. */
const STREAM_STATES = ['starting', 'live', 'recovering', 'draining', 'stopped'] as const;
const DEFAULT_TOTAL_GAUGES = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export class Metrics {
  readonly registry = new Registry();

  private readonly streams: Gauge<'state'>;
  private readonly clients: Gauge;
  private readonly bytesIn: Counter;
  private readonly bytesOut: Counter;
  private readonly reconnects: Counter;
  private readonly failovers: Counter;
  private readonly retries: Counter;
  private readonly giveUps: Counter;
  private readonly clientCuts: Counter<'reason'>;
  private readonly events: Counter<'kind'>;
  private readonly engineUp: Gauge<'engine'>;
  private readonly clientLag: Gauge;
  private readonly firstByte: Histogram;
  private readonly streamStart: Histogram;
  private readonly loopLag: Gauge;
  private readonly rings: Gauge<'state'>;
  private readonly ringBytes: Gauge;
  private readonly ringStarts: Counter<'ring'>;
  private readonly ringTaken = { new: 0, pooled: 0 };
  private readonly loopDelay: IntervalHistogram;
  private collector: (() => void) | null = null;

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    const counter = <L extends string>(name: string, help: string, labelNames: L[] = []) =>
      new Counter<L>({ name: PREFIX + name, help, labelNames, registers });
    const gauge = <L extends string>(name: string, help: string, labelNames: L[] = []) =>
      new Gauge<L>({ name: PREFIX + name, help, labelNames, registers });
    const histogram = (name: string, help: string, buckets: number[]) => new Histogram({ name: PREFIX + name, help, buckets, registers });

    this.streams = gauge('streams', 'Streams in the registry, by lifecycle state.', ['state']);
    this.clients = gauge('clients', 'Clients attached to a stream.');
    this.bytesIn = counter('bytes_in_total', 'Bytes read from engines.');
    this.bytesOut = counter('bytes_out_total', 'Bytes written to clients.');
    this.reconnects = counter('upstream_reconnects_total', 'Upstream reconnects to the same engine.');
    this.failovers = counter('failovers_total', 'Streams switched to another engine.');
    this.retries = counter('retries_total', 'Retried stream starts.');
    this.giveUps = counter('give_ups_total', 'Streams given up after their retries.');
    this.clientCuts = counter('client_cuts_total', 'Clients disconnected by acemux, by reason.', ['reason']);
    this.events = counter('events_total', 'Events recorded by the event log, by kind.', ['kind']);
    this.engineUp = gauge('engine_up', 'Engine health verdict: 1 healthy, 0 not.', ['engine']);
    // Compare with the ring size and --lag-limit: near the limit, a client is about to be skipped or cut.
    this.clientLag = gauge('client_max_lag_bytes', "Largest distance of any client behind its stream's live edge, now.");
    const latency = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
    this.firstByte = histogram('first_byte_seconds', 'From a client request to its first stream byte written.', latency);
    // Engines prebuffer for seconds before the first data, so this one needs a longer tail.
    this.streamStart = histogram(
      'stream_start_seconds',
      "From the first request of a stream to the engine's first data.",
      [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 20, 30, 45, 60],
    );
    this.rings = gauge('rings', 'Stream rings: in use (running or draining streams) and idle in the pool.', ['state']);
    // Rings start small and grow with their stream's bitrate (ring.ts I7): this shows the growth.
    this.ringBytes = gauge('ring_capacity_bytes', "Data capacity of the streams' rings in use, as grown so far.");
    this.ringStarts = counter('ring_takes_total', 'Rings handed to starting streams: newly allocated or reused from the pool.', ['ring']);
    this.loopLag = gauge('event_loop_lag_seconds', 'Main thread event loop delay, p99 since the previous scrape.');

    // Our own monitor rather than the default metrics' one: it is reset at each scrape so the
    // gauge shows the recent window, and it is there even with default metrics off.
    this.loopDelay = monitorEventLoopDelay({ resolution: 10 });
    this.loopDelay.enable();

    if (opts.defaultMetrics !== false) {
      collectDefaultMetrics({ register: this.registry, prefix: PREFIX });
      // prom-client's nodejs_active_{handles,requests,resources}_total are gauges named like
      // counters, which `promtool check metrics` rejects; their by-type siblings sum to them.
      for (const name of DEFAULT_TOTAL_GAUGES) this.registry.removeSingleMetric(PREFIX + name);
    }
  }

  /** Runs before every render: refresh the pulled gauges here. */
  setCollector(fn: () => void): void {
    this.collector = fn;
  }

  /** For an EventLog subscription: one event in, the counters it stands for incremented. */
  observeEvent(e: AceEvent): void {
    this.events.inc({ kind: e.kind });
    switch (e.kind) {
      case 'reconnect':
        this.reconnects.inc();
        break;
      case 'failover':
        this.failovers.inc();
        break;
      case 'retry':
        this.retries.inc();
        break;
      case 'give-up':
        this.giveUps.inc();
        break;
      case 'client-cut':
        this.clientCuts.inc({ reason: typeof e.reason === 'string' ? e.reason : 'unknown' });
        break;
      case 'stream-live':
        if (!e.recovered && typeof e.ms === 'number') this.streamStart.observe(e.ms / 1000);
        break;
      case 'engine-health':
        if (typeof e.engine === 'string' && typeof e.healthy === 'boolean') this.setEngineUp(e.engine, e.healthy);
        break;
    }
  }

  /** Counters are fed by deltas since the caller's previous sample; negatives are ignored. */
  addBytes(inDelta: number, outDelta: number): void {
    if (inDelta > 0) this.bytesIn.inc(inDelta);
    if (outDelta > 0) this.bytesOut.inc(outDelta);
  }

  /** Streams by state; states not named are set to 0. */
  setStreams(byState: Partial<Record<string, number>>): void {
    for (const s of STREAM_STATES) this.streams.set({ state: s }, 0);
    for (const [state, n] of Object.entries(byState)) this.streams.set({ state }, n ?? 0);
  }

  /** The ring pool's counts; created and reused are running totals (counted as deltas). */
  setRings(p: { inUse: number; idleCount: number; created: number; reused: number }): void {
    this.rings.set({ state: 'in_use' }, p.inUse);
    this.rings.set({ state: 'idle' }, p.idleCount);
    const add = (ring: 'new' | 'pooled', total: number) => {
      const d = total - this.ringTaken[ring];
      if (d > 0) this.ringStarts.inc({ ring }, d);
      this.ringTaken[ring] = total;
    };
    add('new', p.created);
    add('pooled', p.reused);
  }

  /** The sum of the rings' current capacities (bytes). */
  setRingBytes(n: number): void {
    this.ringBytes.set(n);
  }

  setClients(n: number): void {
    this.clients.set(n);
  }

  setEngineUp(engine: string, up: boolean): void {
    this.engineUp.set({ engine }, up ? 1 : 0);
  }

  /** The worst client's lag now (0 with no clients). */
  setMaxClientLag(bytes: number): void {
    this.clientLag.set(bytes);
  }

  observeFirstByte(seconds: number): void {
    this.firstByte.observe(seconds);
  }

  async render(): Promise<{ contentType: string; body: string }> {
    this.collector?.();
    // The histogram reads 0 until it has a sample; percentile() is in nanoseconds.
    this.loopLag.set(this.loopDelay.count > 0 ? this.loopDelay.percentile(99) / 1e9 : 0);
    this.loopDelay.reset();
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  /** Stops the event loop monitor. */
  close(): void {
    this.loopDelay.disable();
  }
}
