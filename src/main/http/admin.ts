/**
 * The admin API under /api/ (JSON) and the dashboard's live feed (/api/live, server-sent
 * events). With an API key configured every /api/ call needs it (guard.ts G3), else 401; a
 * state-changing call (anything but GET and HEAD) from a page of another origin is refused with
 * 403 even without a key (G4). Operator actions go through the supervisor, like every other
 * decision.
 *
 * A live viewer that does not read falls behind: once more than LIVE_BEHIND snapshots wait
 * unsent in its response (the kernel's buffers are already full by then), it is cut, so a
 * stalled dashboard costs a bounded amount of memory.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Supervisor, Stream } from '../supervision/supervisor';
import type { EnginePool } from '../engine/engines';
import type { Journal } from '../ops/journal';
import type { AceEvent } from '../supervision/events';
import { StreamNames } from '../catalog/names';
import { Health } from '../ops/health';
import { badRequest } from '../errors';
import { sendJson, fail as failWith } from './reply';
import { describe } from './describe';
import { refuseCrossOrigin, type KeyGuard } from './guard';

const LIVE_MS = 1000;
/** The dashboard's history: one sample per stream this often, kept this long (GET /api/history). */
const HISTORY_SAMPLE_MS = 5000;
const HISTORY_MS = 15 * 60_000;
/** Event kinds that count as a stream's faults, as the dashboard shows them. */
const FAULT_KINDS = ['reconnect', 'retry', 'failover', 'actor-restart', 'client-cut'] as const;
type FaultCounts = Record<(typeof FAULT_KINDS)[number], number>;
/** [time ms, bytes out, bytes in, clients] */
type Sample = [number, number, number, number];
/** Snapshots a live viewer may have waiting unsent before it is cut. */
export const LIVE_BEHIND = 8;
/** ... but never cut one with less than this waiting (tiny snapshots, a brief hiccup). */
const LIVE_MIN_BUFFER = 64 * 1024;

export interface AdminOptions {
  /** Display names for streams (catalog/names.ts). */
  names?: StreamNames;
  /** Degraded parts, shown in the live snapshot. */
  health?: Health;
  /** How often the live feed pushes a snapshot. */
  liveMs?: number;
}

export class Admin {
  private readonly names: StreamNames;
  private readonly health: Health;
  private readonly liveMs: number;
  private readonly live = new Set<ServerResponse>();
  private liveTimer: NodeJS.Timeout | null = null;
  private readonly history = new Map<string, Sample[]>();
  private readonly historyTimer: NodeJS.Timeout;
  /** Per stream key, since the stream started: what went wrong, by kind (a stop forgets it). */
  private readonly faults = new Map<string, FaultCounts>();
  private readonly unsubscribe: () => void;

  constructor(
    private readonly sup: Supervisor,
    private readonly engines: EnginePool,
    private readonly journal: Journal | null,
    private readonly guard: KeyGuard,
    opts: AdminOptions = {},
  ) {
    this.names = opts.names ?? new StreamNames();
    this.health = opts.health ?? new Health();
    this.liveMs = opts.liveMs ?? LIVE_MS;
    this.historyTimer = setInterval(() => this.sample(), HISTORY_SAMPLE_MS).unref();
    this.unsubscribe = sup.events.subscribe((e) => this.countFault(e));
  }

  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const fail = (status: number, error: string) => failWith(res, status, error);
    const m = req.method ?? 'GET';
    if (m !== 'GET' && m !== 'HEAD') refuseCrossOrigin(req);
    this.guard.check(req, url);
    const parts = url.pathname.split('/').filter(Boolean).slice(1); // drop "api"
    const route = `${m} ${parts.map((p, i) => (i % 2 === 1 ? ':' : p)).join('/')}`;
    let name: string | undefined;
    try {
      name = parts[1] === undefined ? undefined : decodeURIComponent(parts[1]);
    } catch {
      throw badRequest('malformed %-escape in the stream name');
    }
    const stream = name ? this.find(name) : undefined;
    const needStream = () => (stream ? false : (fail(404, 'stream not running'), true));
    switch (route) {
      case 'GET streams':
        return sendJson(res, 200, { streams: [...this.sup.streams.values()].map((s) => this.view(s)) });
      case 'GET streams/:':
        if (needStream()) return;
        return sendJson(res, 200, { ...this.view(stream!), events: this.sup.events.last(50, stream!.key).map((e) => this.label(e)) });
      case 'DELETE streams/:':
      case 'POST streams/:/stop':
        if (needStream()) return;
        this.sup.stop(stream!, 'stopped by operator');
        return sendJson(res, 200, { stopped: stream!.key });
      case 'DELETE streams/:/clients/:': {
        if (needStream()) return;
        const id = Number(parts[3]);
        if (!Number.isInteger(id) || !this.sup.disconnect(stream!, id)) return fail(404, 'no such client on this stream');
        return sendJson(res, 200, { disconnected: id });
      }
      case 'GET streams/:/actor': {
        if (needStream()) return;
        try {
          return sendJson(res, 200, await this.sup.inspect(stream!));
        } catch (e) {
          return fail(504, (e as Error).message);
        }
      }
      case 'POST streams/:/next':
        if (needStream()) return;
        if (!this.sup.nextAlternate(stream!)) return fail(409, 'this stream is not a channel with alternate ids');
        return sendJson(res, 200, { stream: stream!.key, now: stream!.selector.value });
      case 'GET engines':
        return sendJson(res, 200, { engines: this.engineList() });
      case 'GET events':
        return this.eventsPage(res, url);
      case 'GET history':
        return sendJson(res, 200, { sample_ms: HISTORY_SAMPLE_MS, streams: Object.fromEntries(this.history) });
      case 'GET live':
        return this.openLive(req, res);
    }
    const known = ['streams', 'engines', 'events', 'live', 'history'].includes(parts[0] ?? '');
    return known ? fail(405, `method ${m} not allowed here`) : fail(404, `no such API path: ${url.pathname}`);
  }

  private find(id: string): Stream | undefined {
    return this.sup.find(id) ?? this.sup.streams.get(id);
  }

  private engineList() {
    const load = this.sup.engineLoads();
    return this.engines.engines.map((e) => ({
      url: e.url,
      healthy: e.healthy,
      version: e.version,
      streams: load.get(e.url) ?? 0,
      lastError: e.lastError,
      lastProbeAt: e.lastProbeAt || null,
    }));
  }

  private async eventsPage(res: ServerResponse, url: URL): Promise<void> {
    const q = url.searchParams;
    const num = (name: string) => {
      const v = q.get(name);
      if (v === null) return undefined;
      const n = Number(v);
      return Number.isInteger(n) && n > 0 ? n : NaN;
    };
    const before = num('before');
    const limit = num('limit');
    if (Number.isNaN(before) || Number.isNaN(limit)) return failWith(res, 400, 'before and limit must be positive whole numbers');
    const kind = q.get('kind') ?? undefined;
    const stream = q.get('stream') ?? undefined;
    const page = await (this.journal ?? this.sup.events).page({ before, limit, kind, stream });
    sendJson(res, 200, { ...page, events: page.events.map((e) => this.label(e)) });
  }

  snapshot() {
    return {
      time: Date.now(),
      streams: [...this.sup.streams.values()].map((s) => this.view(s)),
      engines: this.engineList(),
      events: this.sup.events.last(20).map((e) => this.label(e)),
      degraded: this.health.degraded,
    };
  }

  /** describe() plus what only operators need: the key, a display name, fault counts. */
  private view(s: Stream): Record<string, unknown> {
    return {
      ...describe(s),
      key: s.key,
      name: s.channel?.name ?? this.names.ofKey(s.key) ?? this.names.ofId(s.selector.value) ?? null,
      faults: this.faults.get(s.key) ?? zeroFaults(),
    };
  }

  /** An event with its stream's display name, when one is known. */
  private label(e: AceEvent): AceEvent {
    const name = e.stream === undefined ? undefined : (this.sup.streams.get(e.stream)?.channel?.name ?? this.names.ofKey(e.stream));
    return name === undefined ? e : { ...e, stream_name: name };
  }

  private countFault(e: AceEvent): void {
    if (e.stream === undefined) return;
    if (e.kind === 'stream-stop') return void this.faults.delete(e.stream);
    if (!(FAULT_KINDS as readonly string[]).includes(e.kind)) return;
    let f = this.faults.get(e.stream);
    if (!f) this.faults.set(e.stream, (f = zeroFaults()));
    f[e.kind as keyof FaultCounts]++;
  }

  private sample(): void {
    const now = Date.now();
    for (const [key, s] of this.sup.streams) {
      let h = this.history.get(key);
      if (!h) this.history.set(key, (h = []));
      h.push([now, s.egress.bytesOut, s.stats.bytesIn, s.egress.clients.length]);
      while (h.length > 0 && h[0]![0] < now - HISTORY_MS) h.shift();
    }
    for (const key of this.history.keys()) if (!this.sup.streams.has(key)) this.history.delete(key);
  }

  private openLive(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache, no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write(`retry: 2000\nevent: snapshot\ndata: ${JSON.stringify(this.snapshot())}\n\n`);
    this.live.add(res);
    this.liveTimer ??= setInterval(() => this.pushLive(), this.liveMs);
    req.socket.once('close', () => {
      this.live.delete(res);
      if (this.live.size === 0 && this.liveTimer) {
        clearInterval(this.liveTimer);
        this.liveTimer = null;
      }
    });
  }

  private pushLive(): void {
    const msg = `event: snapshot\ndata: ${JSON.stringify(this.snapshot())}\n\n`;
    const bound = Math.max(LIVE_MIN_BUFFER, LIVE_BEHIND * Buffer.byteLength(msg));
    for (const res of this.live) {
      if (res.writableLength > bound) {
        this.live.delete(res);
        res.destroy(); // fell behind: a reconnecting EventSource gets a fresh snapshot anyway
      } else {
        res.write(msg);
      }
    }
  }

  close(): void {
    clearInterval(this.historyTimer);
    this.unsubscribe();
    if (this.liveTimer) clearInterval(this.liveTimer);
    this.liveTimer = null;
    for (const res of this.live) res.end();
    this.live.clear();
  }
}

function zeroFaults(): FaultCounts {
  return { reconnect: 0, retry: 0, failover: 0, 'actor-restart': 0, 'client-cut': 0 };
}
