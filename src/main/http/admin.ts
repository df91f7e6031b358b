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
import { badRequest } from '../errors';
import { sendJson, fail as failWith } from './reply';
import { describe } from './describe';
import { refuseCrossOrigin, type KeyGuard } from './guard';

const LIVE_MS = 1000;
/** Snapshots a live viewer may have waiting unsent before it is cut. */
export const LIVE_BEHIND = 8;
/** ... but never cut one with less than this waiting (tiny snapshots, a brief hiccup). */
const LIVE_MIN_BUFFER = 64 * 1024;

export class Admin {
  private readonly live = new Set<ServerResponse>();
  private liveTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly sup: Supervisor,
    private readonly engines: EnginePool,
    private readonly journal: Journal | null,
    private readonly guard: KeyGuard,
    private readonly liveMs = LIVE_MS,
  ) {}

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
        return sendJson(res, 200, { streams: [...this.sup.streams.values()].map(describe) });
      case 'GET streams/:':
        if (needStream()) return;
        return sendJson(res, 200, { ...describe(stream!), events: this.sup.events.last(50, stream!.key) });
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
      case 'GET live':
        return this.openLive(req, res);
    }
    const known = ['streams', 'engines', 'events', 'live'].includes(parts[0] ?? '');
    return known ? fail(405, `method ${m} not allowed here`) : fail(404, `no such API path: ${url.pathname}`);
  }

  private find(id: string): Stream | undefined {
    return this.sup.find(id) ?? this.sup.streams.get(id);
  }

  private engineList() {
    const load = this.sup.engineLoads();
    return this.engines.engines.map((e) => ({ url: e.url, healthy: e.healthy, version: e.version, streams: load.get(e.url) ?? 0, lastError: e.lastError, lastProbeAt: e.lastProbeAt || null }));
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
    sendJson(res, 200, await (this.journal ?? this.sup.events).page({ before, limit, kind, stream }));
  }

  snapshot() {
    return { time: Date.now(), streams: [...this.sup.streams.values()].map(describe), engines: this.engineList(), events: this.sup.events.last(20) };
  }

  private openLive(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache, no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
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
    if (this.liveTimer) clearInterval(this.liveTimer);
    this.liveTimer = null;
    for (const res of this.live) res.end();
    this.live.clear();
  }
}
