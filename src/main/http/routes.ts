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
import { isExpected, tooMany, badRequest, unauthorized, notFound, LimitError, methodNotAllowed } from '../errors';
import { parseStreamQuery } from './stream-query';
import { AddressLimit, clientAddress, type KeyGuard } from './guard';
import type { Supervisor, Selector, Stream, ChannelRef } from '../supervision/supervisor';
import type { Admin } from './admin';
import type { Metrics } from '../ops/metrics';
import type { Health } from '../ops/health';
import type { EnginePool } from '../engine/engines';
import { sendJson, sendError, fail } from './reply';
import { describe } from './describe';
import { dashboardHtml } from '../ops/dashboard';
import { loadSource, rewritePlaylist, publicBase, channelIndex, channelsPlaylist } from '../catalog/playlist';
import type { Channel } from '../catalog/channels';
import type { Hls } from '../hls/hls';
import { playerHtml, hlsJs, hlsJsMissing, PLAYER_CSP } from '../hls/player';
import { remoteLabel, type TrustedProxies } from './client-address';
import { SocketSink } from '../egress/socket-sink';

/** Requests a client may pipeline behind a stream request before its connection is cut (they are never started). */
const MAX_IGNORED = 8;

export interface RoutesOptions {
  channels: ReadonlyMap<string, Channel>;
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
  /** Degraded parts, listed by /readyz and /ace/status. */
  health?: Health;
  /** The API key (guard.ts); /metrics and /ace/status can be opened without it. */
  guard: KeyGuard;
  publicMetrics: boolean;
  publicStatus: boolean;
  maxClientsPerIp: number;
  /** Direct writes to client sockets (egress/socket-sink.ts); default on. */
  directWrites?: boolean;
  hls?: Hls;
}

export class Routes {
  private clientSeq = 0;
  private channels: ReadonlyMap<string, Channel>;
  private channelOf: ReturnType<typeof channelIndex>;
  private readonly perAddress: AddressLimit;
  /**
   * Connections a stream request owns, with the number of requests pipelined behind it. One
   * request, one viewer: a stream answer is the last thing on its connection, so nothing after
   * it is ever started (it would write into the same socket, one more viewer per request).
   */
  private readonly claimed = new WeakMap<Socket, number>();
  /** Stream viewers' sockets, so a shutdown can wait for them to drain (server.ts). */
  readonly viewers = new Set<Socket>();

  constructor(
    private readonly sup: Supervisor,
    private readonly log: Logger,
    private readonly o: RoutesOptions,
  ) {
    this.channels = o.channels;
    this.channelOf = channelIndex(o.channels.values());
    this.perAddress = new AddressLimit(o.maxClientsPerIp);
  }

  /** SIGHUP: new channel requests use the reloaded file; running channels keep theirs. */
  setChannels(channels: ReadonlyMap<string, Channel>): void {
    this.channels = channels;
    this.channelOf = channelIndex(channels.values());
  }

  /**
   * The request error boundary: a throw or a rejection anywhere in a handler becomes a logged 500
   * for that request (or a destroyed socket once headers went out), never the end of the process
   * and of every stream in it.
   */
  handle(req: IncomingMessage, res: ServerResponse): void {
    const ignored = this.claimed.get(req.socket);
    if (ignored !== undefined) {
      if (ignored >= MAX_IGNORED) req.socket.destroy();
      else this.claimed.set(req.socket, ignored + 1);
      return;
    }
    const boundary = (e: unknown) => {
      if (!isExpected(e))
        this.log.error(
          { err: e instanceof Error ? e.stack : String(e), method: req.method, url: req.url?.slice(0, 256) },
          'request handler failed',
        );
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
      // Degraded parts are listed, not failed on (see ops/health.ts).
      return sendJson(res, ready ? 200 : 503, {
        ready,
        draining,
        engines: this.o.engines.engines.map((e) => ({ url: e.url, healthy: e.healthy })),
        degraded: this.o.health?.degraded ?? [],
      });
    }
    if (path === '/metrics') {
      if (!readOnly) return this.notAllowed(req, res);
      if (!this.o.publicMetrics) this.o.guard.check(req, url);
      return this.o.metrics.render().then(({ contentType, body }) => {
        res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' });
        res.end(body);
      });
    }
    if (path === '/' || path === '/dashboard') {
      if (!readOnly) return this.notAllowed(req, res);
      // The page is a static shell with no data in it: everything it shows comes from /api/, which
      // needs the key, so it is served to anyone and asks for the key itself. A ?key= is checked
      // (a wrong one counts against the address) and traded for a session cookie once, so the key
      // leaves the address bar and history.
      if (url.searchParams.has('key') && this.o.guard.check(req, url) === 'query') {
        res.writeHead(303, {
          location: path,
          'set-cookie': this.o.guard.sessionCookie(),
          'cache-control': 'no-store',
          'content-length': 0,
        });
        res.end();
        return;
      }
      const html = dashboardHtml(); // before the head: a page that cannot be read is a 500, not a cut connection
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'no-store',
        'content-security-policy':
          "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'",
      });
      res.end(html);
      return;
    }
    const playlist = path === '/playlist.m3u' || path === '/playlist.m3u8';
    if (
      (playlist || path === '/ace/getstream' || path === '/ace/getstream/' || path.startsWith('/ace/channel/')) &&
      this.o.streamToken &&
      readOnly
    ) {
      const token = url.searchParams.get('token') ?? '';
      if (token !== this.o.streamToken) return fail(res, 401, 'missing or wrong token');
    }
    if (path === '/ace/manifest.m3u8' || path.startsWith('/ace/hls/') || (path.startsWith('/ace/channel/') && path.endsWith('.m3u8'))) {
      return this.hlsRoute(req, res, url);
    }
    if (path === '/player' || path === '/player/hls.min.js') {
      if (!readOnly) return this.notAllowed(req, res);
      return this.player(req, res, path);
    }
    if (playlist) {
      if (!readOnly) return this.notAllowed(req, res);
      return this.playlist(req, res, url.searchParams.get('format'));
    }
    if (path === '/ace/getstream' || path === '/ace/getstream/') {
      if (!readOnly) return this.notAllowed(req, res);
      return this.getstream(req, res, url.searchParams);
    }
    if (path.startsWith('/ace/channel/')) {
      if (!readOnly) return this.notAllowed(req, res);
      const channel = this.channelAt(res, path.slice('/ace/channel/'.length));
      if (!channel) return;
      const q = parseStreamQuery(url.searchParams, true);
      if ('error' in q) return fail(res, 400, q.error);
      return this.play(req, res, channel.ids[0]!, q.extra, channel);
    }
    if (path === '/ace/status' || path === '/ace/status/') {
      if (!readOnly) return this.notAllowed(req, res);
      if (!this.o.publicStatus) this.o.guard.check(req, url);
      return this.status(res, url.searchParams);
    }
    return fail(res, 404, `no such path: ${path}`);
  }

  /** The channel a /ace/channel/ path names; when none, answers 400/404 and returns null. */
  private channelAt(res: ServerResponse, raw: string): ChannelRef | null {
    let slug: string;
    try {
      slug = decodeURIComponent(raw).toLowerCase().replace(/\/$/, '');
    } catch {
      fail(res, 400, 'malformed channel name');
      return null;
    }
    const channel = this.channels.get(slug) ?? this.channels.get(slugOf(slug));
    if (!channel) fail(res, 404, this.channels.size ? `no channel "${slug}"` : 'no channels file configured (ACEMUX_CHANNELS)');
    return channel ?? null;
  }

  /** HLS (src/main/hls): the token, method and query rules of getstream apply unchanged. */
  private hlsRoute(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> | void {
    const readOnly = req.method === 'GET' || req.method === 'HEAD';
    if (!readOnly) return this.notAllowed(req, res);
    if (this.o.streamToken && (url.searchParams.get('token') ?? '') !== this.o.streamToken)
      return sendError(res, unauthorized('missing or wrong token'));
    const hls = this.o.hls;
    if (!hls) return sendError(res, notFound('HLS is not enabled'));
    const path = url.pathname;
    if (path.startsWith('/ace/hls/')) return hls.segment(req, res, path.slice('/ace/hls/'.length));
    if (path === '/ace/manifest.m3u8') {
      const q = parseStreamQuery(url.searchParams, false);
      if ('error' in q) return sendError(res, badRequest(q.error));
      return hls.playlist(req, res, q.sel, q.extra, null, '');
    }
    const channel = this.channelAt(res, path.slice('/ace/channel/'.length, -'.m3u8'.length));
    if (!channel) return;
    const q = parseStreamQuery(url.searchParams, true);
    if ('error' in q) return sendError(res, badRequest(q.error));
    return hls.playlist(req, res, channel.ids[0]!, q.extra, channel, '../');
  }

  private player(req: IncomingMessage, res: ServerResponse, path: string): void {
    if (path === '/player') {
      const html = playerHtml();
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'no-store',
        'content-security-policy': PLAYER_CSP,
      });
      res.end(req.method === 'HEAD' ? undefined : html);
      return;
    }
    const js = hlsJs();
    if (!js) return sendError(res, hlsJsMissing());
    res.writeHead(200, {
      'content-type': 'text/javascript; charset=utf-8',
      'content-length': js.length,
      'cache-control': 'public, max-age=3600',
    });
    res.end(req.method === 'HEAD' ? undefined : js);
  }

  private notAllowed(req: IncomingMessage, res: ServerResponse): void {
    sendError(res, methodNotAllowed(req.method));
  }

  private async playlist(req: IncomingMessage, res: ServerResponse, format: string | null): Promise<void> {
    if (format !== null && format !== 'ts' && format !== 'hls') return sendError(res, badRequest('format must be ts or hls'));
    if (!this.o.playlist && this.channels.size === 0) return fail(res, 404, 'no playlist configured (ACEMUX_PLAYLIST or ACEMUX_CHANNELS)');
    let text = '';
    try {
      if (this.o.playlist) text = await loadSource(this.o.playlist, this.o.engineTimeoutMs);
    } catch (e) {
      return sendError(res, e); // a PlaylistError: 502, ACEMUX_ERR_PLAYLIST
    }
    const base = publicBase(req.headers.host, this.o.publicUrl || undefined, `http://${req.socket.localAddress}:${req.socket.localPort}`);
    const token = this.o.streamToken || undefined;
    const hls = format === 'hls';
    const body = this.o.playlist
      ? rewritePlaylist(text, base, { token, channelOf: this.channelOf, hls })
      : channelsPlaylist(this.channels.values(), base, { token, hls });
    res.writeHead(200, {
      'content-type': 'audio/x-mpegurl; charset=utf-8',
      'cache-control': 'no-store',
      'content-length': Buffer.byteLength(body),
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  private async getstream(req: IncomingMessage, res: ServerResponse, q: URLSearchParams): Promise<void> {
    const parsed = parseStreamQuery(q, false);
    if ('error' in parsed) return fail(res, 400, parsed.error);
    return this.play(req, res, parsed.sel, parsed.extra, null);
  }

  private async play(
    req: IncomingMessage,
    res: ServerResponse,
    sel: Selector,
    extra: Array<[string, string]>,
    channel: ChannelRef | null,
  ): Promise<void> {
    if (req.method === 'HEAD') {
      // Players and media servers probe with HEAD: answer like the stream would, start nothing.
      res.writeHead(200, streamHeaders());
      res.end();
      return;
    }
    if (this.o.draining?.()) return sendError(res, new LimitError('acemux is shutting down', 5));
    const socket = req.socket;
    this.claimed.set(socket as Socket, 0);
    // Whatever the answer, it ends the connection: what was pipelined behind it never starts.
    res.setHeader('connection', 'close');
    if (res.socket !== socket) {
      // Pipelined behind an unanswered request: the stream's bytes would overtake that answer.
      await new Promise<void>((r) => {
        res.once('socket', () => r());
        socket.once('close', () => r());
      });
      if (socket.destroyed) return;
    }
    const addr = clientAddress(req, this.o.trustedProxies);
    if (!this.perAddress.take(addr)) throw tooMany(`client limit of this address reached (${this.perAddress.max})`, 10);
    this.viewers.add(socket as Socket);
    socket.once('close', () => {
      this.perAddress.release(addr); // G2: once, however the request ended
      this.viewers.delete(socket as Socket);
    });
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
    const sink = new SocketSink(socket as Socket, this.o.directWrites ?? true);
    const client = this.sup.attach(s, sink, {
      id: ++this.clientSeq,
      remote: remoteLabel(req, this.o.trustedProxies),
      t0,
      ua: req.headers['user-agent']?.slice(0, 256),
    });
    this.log.debug({ stream: s.key, ms: Date.now() - t0 }, 'client attached');
    socket.once('close', () => {
      this.sup.detach(s, client);
      this.sup.events.record(
        'client-session',
        {
          stream: s.key,
          remote: client.info.remote,
          seconds: (Date.now() - client.since) / 1000,
          bytes: client.bytes,
          skips: client.skips,
          first_byte_ms: client.firstWriteAt ? client.firstWriteAt - t0 : null,
        },
        'client session ended',
      );
    });
  }

  private status(res: ServerResponse, q: URLSearchParams): void {
    const id = q.get('id') ?? q.get('infohash');
    if (id === null)
      return sendJson(res, 200, {
        streams: this.sup.streams.size,
        events: this.sup.events.last(20),
        degraded: this.o.health?.degraded ?? [],
      });
    if (!HEX40.test(id)) return fail(res, 400, 'id must be 40 hexadecimal characters');
    const s = this.sup.find(id);
    if (!s) return fail(res, 404, 'stream not running');
    sendJson(res, 200, { ...describe(s), events: this.sup.events.last(20, s.key) });
  }
}

function streamHeaders(): Record<string, string> {
  return { 'content-type': 'video/mp2t', 'cache-control': 'no-cache, no-store', connection: 'close', 'x-content-type-options': 'nosniff' };
}
