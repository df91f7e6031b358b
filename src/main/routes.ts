/**
 * The HTTP surface: acexy-compatible /ace/getstream (GET, HEAD) and /ace/status, channels
 * (/ace/channel/<name>), the rewritten playlist, probes (/livez, /readyz), /metrics, the
 * dashboard (/) and the admin API (/api/, in admin.ts). Every refusal is a status with a short
 * JSON body {"error": "..."}; nothing here decides policy (that is the supervisor's) or touches
 * stream bytes (that is the egress's).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { HEX40 } from '../shared/engine-api';
import { TS } from '../shared/ring';
import { slugOf } from './channels';
import { EngineError } from './engine-client';
import { Supervisor, LimitError, StreamGoneError, type Selector, type Stream, type ChannelRef } from './supervisor';
import type { Admin } from './admin';
import type { Metrics } from './metrics';
import type { EnginePool } from './engines';
import { dashboardHtml } from './dashboard';
import { loadSource, rewritePlaylist, publicBase } from './playlist';

const SELECTORS = ['id', 'infohash', 'content_id'] as const;
/** Ours to set: a client's pid would let two players steal one engine session from each other. */
const OWNED = new Set(['pid', 'sid', 'format', 'token']);

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...headers });
  res.end(text);
}

const fail = (res: ServerResponse, status: number, error: string, headers?: Record<string, string>) => sendJson(res, status, { error }, headers);

type Parsed<S> = { sel: S; extra: Array<[string, string]> } | { error: string };

/**
 * Exactly one selector, 40 hex (none for a channel: its ids come from the channels file); no pid;
 * each parameter once; the rest passes through to the engine.
 */
function parseStreamQuery(q: URLSearchParams, channel: false): Parsed<Selector>;
function parseStreamQuery(q: URLSearchParams, channel: true): Parsed<null>;
function parseStreamQuery(q: URLSearchParams, channel: boolean): Parsed<Selector | null> {
  const seen = new Set<string>();
  let sel: Selector | null = null;
  const extra: Array<[string, string]> = [];
  for (const [k, v] of q) {
    if (seen.has(k)) return { error: `parameter "${k}" given more than once` };
    seen.add(k);
    if ((SELECTORS as readonly string[]).includes(k)) {
      if (channel) return { error: `a channel plays the ids of the channels file; remove "${k}"` };
      if (sel) return { error: 'give exactly one of id or infohash' };
      if (!HEX40.test(v)) return { error: `${k} must be 40 hexadecimal characters` };
      sel = { name: k === 'infohash' ? 'infohash' : 'id', value: v };
    } else if (k === 'pid' || k === 'sid') {
      return { error: `"${k}" is set by acemux, which owns engine player ids; remove it` };
    } else if (!OWNED.has(k)) {
      extra.push([k, v]);
    }
  }
  if (!sel && !channel) return { error: 'missing id or infohash (40 hexadecimal characters)' };
  return { sel, extra };
}

export interface RoutesOptions {
  channels: ReadonlyMap<string, ChannelRef>;
  admin: Admin;
  metrics: Metrics;
  engines: EnginePool;
  streamToken: string;
  playlist: string;
  publicUrl: string;
  engineTimeoutMs: number;
}

export class Routes {
  private clientSeq = 0;
  private readonly channels: ReadonlyMap<string, ChannelRef>;

  constructor(private readonly sup: Supervisor, private readonly log: Logger, private readonly o: RoutesOptions) {
    this.channels = o.channels;
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://x');
    } catch {
      return fail(res, 400, 'malformed request target');
    }
    const path = url.pathname;
    const readOnly = req.method === 'GET' || req.method === 'HEAD';
    if (path.startsWith('/api/')) {
      void this.o.admin.handle(req, res, url).catch((e: Error) => {
        this.log.error({ err: e.stack }, 'admin API failed');
        fail(res, 500, 'internal error');
      });
      return;
    }
    if (path === '/livez') return readOnly ? sendJson(res, 200, { status: 'alive' }) : this.notAllowed(req, res);
    if (path === '/readyz') {
      if (!readOnly) return this.notAllowed(req, res);
      const ready = this.o.engines.anyHealthy();
      return sendJson(res, ready ? 200 : 503, { ready, engines: this.o.engines.engines.map((e) => ({ url: e.url, healthy: e.healthy })) });
    }
    if (path === '/metrics') {
      if (!readOnly) return this.notAllowed(req, res);
      void this.o.metrics.render().then(({ contentType, body }) => {
        res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' });
        res.end(body);
      }, (e: Error) => fail(res, 500, `metrics: ${e.message}`));
      return;
    }
    if (path === '/' || path === '/dashboard') {
      if (!readOnly) return this.notAllowed(req, res);
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'content-security-policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'" });
      res.end(dashboardHtml());
      return;
    }
    const playlist = path === '/playlist.m3u' || path === '/playlist.m3u8';
    if ((playlist || path === '/ace/getstream' || path === '/ace/getstream/' || path.startsWith('/ace/channel/')) && this.o.streamToken && readOnly) {
      const token = url.searchParams.get('token') ?? '';
      if (token !== this.o.streamToken) return fail(res, 401, 'missing or wrong token');
    }
    if (playlist) {
      if (!readOnly) return this.notAllowed(req, res);
      void this.playlist(req, res);
      return;
    }
    if (path === '/ace/getstream' || path === '/ace/getstream/') {
      if (!readOnly) return this.notAllowed(req, res);
      void this.getstream(req, res, url.searchParams);
      return;
    }
    if (path.startsWith('/ace/channel/')) {
      if (!readOnly) return this.notAllowed(req, res);
      let slug: string;
      try {
        slug = decodeURIComponent(path.slice('/ace/channel/'.length)).toLowerCase().replace(/\/$/, '');
      } catch {
        return fail(res, 400, 'malformed channel name');
      }
      const channel = this.channels.get(slug) ?? this.channels.get(slugOf(slug));
      if (!channel) return fail(res, 404, this.channels.size ? `no channel "${slug}"` : 'no channels file configured (ACEMUX_CHANNELS)');
      const q = parseStreamQuery(url.searchParams, true);
      if ('error' in q) return fail(res, 400, q.error);
      void this.play(req, res, channel.ids[0]!, q.extra, channel);
      return;
    }
    if (path === '/ace/status' || path === '/ace/status/') {
      if (!readOnly) return this.notAllowed(req, res);
      return this.status(res, url.searchParams);
    }
    return fail(res, 404, `no such path: ${path}`);
  }

  private notAllowed(req: IncomingMessage, res: ServerResponse): void {
    fail(res, 405, `method ${req.method} not allowed`, { allow: 'GET, HEAD', connection: 'close' });
  }

  private async playlist(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.o.playlist) return fail(res, 404, 'no playlist configured (ACEMUX_PLAYLIST)');
    let text: string;
    try {
      text = await loadSource(this.o.playlist, this.o.engineTimeoutMs);
    } catch (e) {
      return fail(res, 502, (e as Error).message);
    }
    const base = publicBase(req.headers.host, this.o.publicUrl || undefined, `http://${req.socket.localAddress}:${req.socket.localPort}`);
    const body = rewritePlaylist(text, base, { token: this.o.streamToken || undefined });
    res.writeHead(200, { 'content-type': 'audio/x-mpegurl; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  private async getstream(req: IncomingMessage, res: ServerResponse, q: URLSearchParams): Promise<void> {
    const parsed = parseStreamQuery(q, false);
    if ('error' in parsed) return fail(res, 400, parsed.error);
    return this.play(req, res, parsed.sel, parsed.extra, null);
  }

  private async play(req: IncomingMessage, res: ServerResponse, sel: Selector, extra: Array<[string, string]>, channel: ChannelRef | null): Promise<void> {
    if (req.method === 'HEAD') {
      // Players and media servers probe with HEAD: answer like the stream would, start nothing.
      res.writeHead(200, streamHeaders());
      res.end();
      return;
    }
    const socket = req.socket;
    let gone = false;
    const onEarlyClose = () => (gone = true);
    socket.once('close', onEarlyClose);
    const t0 = Date.now();
    let s: Stream;
    try {
      s = await this.sup.join(sel, extra, channel);
    } catch (e) {
      socket.off('close', onEarlyClose);
      if (e instanceof LimitError) return fail(res, 503, e.message, { 'retry-after': String(e.retryAfterS) });
      if (e instanceof EngineError) return fail(res, e.status, e.message);
      if (e instanceof StreamGoneError) return fail(res, 502, e.message);
      this.log.error({ err: (e as Error).stack }, 'getstream failed');
      return fail(res, 500, 'internal error');
    }
    socket.off('close', onEarlyClose);
    if (gone || socket.destroyed) {
      this.sup.leave(s);
      return;
    }
    // Headers go out now; the body bypasses ServerResponse and goes straight to the socket as
    // ring views (close-delimited, so no chunk framing writes in between).
    res.removeHeader('transfer-encoding');
    res.writeHead(200, streamHeaders());
    res.flushHeaders();
    socket.setNoDelay(true);
    const sink = socket as Socket;
    const client = this.sup.attach(s, sink, { id: ++this.clientSeq, remote: `${socket.remoteAddress}:${socket.remotePort}`, t0 });
    this.log.debug({ stream: s.key, ms: Date.now() - t0 }, 'client attached');
    socket.once('close', () => {
      this.sup.detach(s, client);
      this.sup.events.record('client-session', { stream: s.key, remote: client.info.remote, seconds: (Date.now() - client.since) / 1000, bytes: client.bytes, skips: client.skips, first_byte_ms: client.firstWriteAt ? client.firstWriteAt - t0 : null }, 'client session ended');
    });
  }

  private status(res: ServerResponse, q: URLSearchParams): void {
    const id = q.get('id') ?? q.get('infohash');
    if (id === null) return sendJson(res, 200, { streams: this.sup.streams.size, events: this.sup.events.last(20) });
    if (!HEX40.test(id)) return fail(res, 400, 'id must be 40 hexadecimal characters');
    const s = this.sup.find(id);
    if (!s) return fail(res, 404, 'stream not running');
    sendJson(res, 200, { ...describe(s), events: this.sup.events.last(20, s.key) });
  }
}

function streamHeaders(): Record<string, string> {
  return { 'content-type': 'video/mp2t', 'cache-control': 'no-cache, no-store', connection: 'close', 'x-content-type-options': 'nosniff' };
}

/** acexy's fields (clients, stream_id, stat_url) first, then ours. */
export function describe(s: Stream): Record<string, unknown> {
  const eg = s.egress;
  const st = s.stats;
  const uptime = (Date.now() - s.createdAt) / 1000;
  return {
    clients: eg.clients.length,
    stream_id: s.selector.value,
    stat_url: s.session?.statUrl ?? null,
    state: s.state,
    selector: s.selector.name,
    channel: s.channel?.name ?? null,
    attempts: s.attempts,
    switches: s.switches,
    actor_restarts: s.life,
    engine: s.session?.engine ?? null,
    pid: s.session?.pid ?? null,
    uptime_s: Math.round(uptime * 10) / 10,
    bytes_in: st.bytesIn,
    bytes_out: eg.bytesOut,
    avg_write_bytes: eg.writes ? Math.round(eg.bytesOut / eg.writes) : 0,
    bitrate: st.bitrate,
    video_codec: st.videoCodec,
    join_points: st.joinPoints,
    junk_bytes: st.junkBytes,
    null_packets: st.nullPacketsSent,
    ring_bytes: eg.ring.cap * TS,
    skips: eg.skips,
    cuts: eg.cuts,
    engine_stat: s.stat,
    client_list: eg.clients.map((c) => ({ id: c.info.id, remote: c.info.remote, since: new Date(c.since).toISOString(), bytes: c.bytes, lag_bytes: eg.lagBytes(c), skips: c.skips })),
  };
}
