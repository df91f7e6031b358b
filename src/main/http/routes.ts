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
import { HEX40 } from '../../shared/engine-api';
import { slugOf } from '../catalog/channels';
import { isExpected, LimitError } from '../errors';
import type { Supervisor, Selector, Stream, ChannelRef } from '../supervision/supervisor';
import type { Admin } from './admin';
import type { Metrics } from '../ops/metrics';
import type { EnginePool } from '../engine/engines';
import { sendJson, sendError, fail } from './reply';
import { describe } from './describe';
import { dashboardHtml } from '../ops/dashboard';
import { loadSource, rewritePlaylist, publicBase } from '../catalog/playlist';
import { remoteLabel, type TrustedProxies } from './client-address';

const SELECTORS = ['id', 'infohash', 'content_id'] as const;
/** Ours to set: a client's pid would let two players steal one engine session from each other. */
const OWNED = new Set(['pid', 'sid', 'format', 'token']);

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
  /** Whose X-Forwarded-For names the client (ACEMUX_TRUSTED_PROXIES); none when absent. */
  trustedProxies?: TrustedProxies;
  /** True from SIGTERM on: unready, and new viewers are refused (a balancer retries elsewhere). */
  draining?: () => boolean;
}

export class Routes {
  private clientSeq = 0;
  private readonly channels: ReadonlyMap<string, ChannelRef>;

  constructor(private readonly sup: Supervisor, private readonly log: Logger, private readonly o: RoutesOptions) {
    this.channels = o.channels;
  }

  /**
   * The request error boundary: a throw or a rejection anywhere in a handler becomes a logged 500
   * for that request (or a destroyed socket once headers went out), never the end of the process
   * and of every stream in it.
   */
  handle(req: IncomingMessage, res: ServerResponse): void {
    const boundary = (e: unknown) => {
      if (!isExpected(e)) this.log.error({ err: e instanceof Error ? e.stack : String(e), method: req.method, url: req.url?.slice(0, 256) }, 'request handler failed');
      sendError(res, e);
    };
    try {
      const done = this.dispatch(req, res);
      if (done) done.catch(boundary);
    } catch (e) {
      boundary(e);
    }
  }

  private dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> | void {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://x');
    } catch {
      return fail(res, 400, 'malformed request target');
    }
    const path = url.pathname;
    const readOnly = req.method === 'GET' || req.method === 'HEAD';
    if (path.startsWith('/api/')) {
      return this.o.admin.handle(req, res, url);
    }
    if (path === '/livez') return readOnly ? sendJson(res, 200, { status: 'alive' }) : this.notAllowed(req, res);
    if (path === '/readyz') {
      if (!readOnly) return this.notAllowed(req, res);
      // A draining node (SIGTERM) is unready at once, so a balancer sends new viewers elsewhere.
      const draining = this.sup.closed || (this.o.draining?.() ?? false);
      const ready = !draining && this.o.engines.anyHealthy();
      return sendJson(res, ready ? 200 : 503, { ready, draining, engines: this.o.engines.engines.map((e) => ({ url: e.url, healthy: e.healthy })) });
    }
    if (path === '/metrics') {
      if (!readOnly) return this.notAllowed(req, res);
      return this.o.metrics.render().then(({ contentType, body }) => {
        res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' });
        res.end(body);
      });
    }
    if (path === '/' || path === '/dashboard') {
      if (!readOnly) return this.notAllowed(req, res);
      const html = dashboardHtml(); // before the head: a page that cannot be read is a 500, not a cut connection
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'content-security-policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'" });
      res.end(html);
      return;
    }
    const playlist = path === '/playlist.m3u' || path === '/playlist.m3u8';
    if ((playlist || path === '/ace/getstream' || path === '/ace/getstream/' || path.startsWith('/ace/channel/')) && this.o.streamToken && readOnly) {
      const token = url.searchParams.get('token') ?? '';
      if (token !== this.o.streamToken) return fail(res, 401, 'missing or wrong token');
    }
    if (playlist) {
      if (!readOnly) return this.notAllowed(req, res);
      return this.playlist(req, res);
    }
    if (path === '/ace/getstream' || path === '/ace/getstream/') {
      if (!readOnly) return this.notAllowed(req, res);
      return this.getstream(req, res, url.searchParams);
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
      return this.play(req, res, channel.ids[0]!, q.extra, channel);
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
    if (this.o.draining?.()) return sendError(res, new LimitError('acemux is shutting down', 5));
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
      if (!isExpected(e)) this.log.error({ err: (e as Error).stack }, 'getstream failed');
      return sendError(res, e);
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
    const client = this.sup.attach(s, sink, { id: ++this.clientSeq, remote: remoteLabel(req, this.o.trustedProxies), t0 });
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
