/**
 * HLS made by acemux from the stream it already has: the same engine session, the same ring, one
 * segmenter per stream that any HLS viewer asked for. The routes parse and authorise; this module
 * answers playlists and segments and keeps HLS viewers' references on their streams.
 *
 * Invariants:
 *  H1 An HLS viewer (a remote address and user agent) holds one reference on its stream, taken
 *     through Supervisor.join — so the stream, client and per-stream limits apply as to getstream —
 *     and released with Supervisor.leave once it has fetched nothing (playlist or segment) for
 *     VIEWER_IDLE_TARGETS target durations. The last one leaving starts the stream's grace.
 *  H2 A stream's HLS state (segmenter, segments, viewers) lives from the first HLS request until
 *     the stream stops; on stop it releases the ring slot and every viewer's reference at once
 *     (Supervisor.onStreamStop), so no reference outlives its stream.
 *  H3 Segment URLs name a random handle per HLS state, never the stream key: a stream that stops
 *     and starts again gets new URLs, so an immutable cached segment is never a different one.
 *  H4 A playlist is never empty: a request waits for the first segment until engineTimeoutMs
 *     after it arrived, then answers ACEMUX_ERR_HLS_TIMEOUT (504).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { Segmenter } from './segmenter';
import { SegmentStore } from './segment-store';
import { writePlaylist } from './playlist-writer';
import { streamKey, type Supervisor, type Stream, type Selector, type ChannelRef } from '../supervision/supervisor';
import { LimitError, StreamGoneError, hlsTimeout, notFound } from '../errors';

/** H1: a viewer that fetched nothing for this many target durations has gone. */
const VIEWER_IDLE_TARGETS = 3;
const POLL_MS = 100;

export interface HlsOptions {
  segmentMs: number;
  window: number;
  engineTimeoutMs: number;
  streamToken: string;
}

interface Viewer {
  readonly remote: string;
  readonly userAgent: string;
  readonly since: number;
  lastSeen: number;
  bytes: number;
  segments: number;
  playlists: number;
  /** Requests of this viewer waiting for a first segment: it is not idle meanwhile (H1). */
  waiting: number;
}

class HlsStream {
  readonly handle = randomBytes(6).toString('hex'); // H3
  readonly store: SegmentStore;
  readonly segmenter: Segmenter;
  readonly viewers = new Map<string, Viewer>();
  readonly createdAt = Date.now();
  bytesOut = 0;
  segmentsServed = 0;
  playlistsServed = 0;
  firstSegmentAt = 0;
  /** The rendered playlist per URI prefix, valid while the newest segment is `seq`: every viewer
   *  of a window gets the same bytes, so they are written once per segment, not per request. */
  private readonly rendered = new Map<string, { seq: number; body: Buffer }>();

  constructor(
    readonly stream: Stream,
    o: HlsOptions,
  ) {
    this.store = new SegmentStore(o.window, o.segmentMs / 1000);
    this.segmenter = new Segmenter(stream.egress.ring, {
      targetS: o.segmentMs / 1000,
      backfillMs: o.window * o.segmentMs,
      epochMs: stream.createdAt,
      onSegment: (seg) => {
        this.store.add(seg);
        this.firstSegmentAt ||= Date.now();
      },
    });
  }

  playlist(prefix: string, token: string): Buffer {
    const seq = this.store.lastSeq;
    const hit = this.rendered.get(prefix);
    if (hit && hit.seq === seq) return hit.body;
    const handle = this.handle;
    const text = writePlaylist({
      segments: this.store.listed(),
      targetDuration: this.store.targetDuration,
      uri: (n) => `${prefix}hls/${handle}/${n}.ts${token}`,
    });
    const body = Buffer.from(text);
    this.rendered.set(prefix, { seq, body });
    return body;
  }
}

const byStream = new WeakMap<Stream, HlsStream>();

/** For describe(): a stream's HLS figures, or null when no HLS viewer ever asked for it. */
export function hlsSummary(s: Stream): Record<string, unknown> | null {
  const h = byStream.get(s);
  if (!h) return null;
  const listed = h.store.listed();
  return {
    viewers: h.viewers.size,
    bytes_out: h.bytesOut,
    segments_served: h.segmentsServed,
    playlists_served: h.playlistsServed,
    target_duration: h.store.targetDuration,
    media_sequence: listed[0]?.seq ?? null,
    last_segment: listed.length ? h.store.lastSeq : null,
    held_bytes: h.store.bytes,
    viewer_list: [...h.viewers.values()].map((v) => ({
      remote: v.remote,
      user_agent: v.userAgent,
      since: new Date(v.since).toISOString(),
      bytes: v.bytes,
      segments: v.segments,
    })),
  };
}

export class Hls {
  private readonly byKey = new Map<string, HlsStream>();
  private readonly byHandle = new Map<string, HlsStream>();
  private timer: NodeJS.Timeout | null = null;
  private lastSweep = 0;
  private readonly mSegments: Counter;
  private readonly mBytes: Counter;
  private readonly mPlaylists: Counter;
  private readonly mFirstSegment: Histogram;

  constructor(
    private readonly sup: Supervisor,
    private readonly o: HlsOptions,
    registry?: Registry,
  ) {
    const registers = registry ? [registry] : [];
    const viewers = () => [...this.byKey.values()].reduce((n, h) => n + h.viewers.size, 0);
    new Gauge({
      name: 'acemux_hls_viewers',
      help: 'HLS viewers (fetched within 3 target durations).',
      registers,
      collect() {
        this.set(viewers());
      },
    });
    this.mSegments = new Counter({ name: 'acemux_hls_segments_served_total', help: 'HLS segments served.', registers });
    this.mBytes = new Counter({ name: 'acemux_hls_bytes_out_total', help: 'HLS segment bytes served.', registers });
    this.mPlaylists = new Counter({ name: 'acemux_hls_playlists_served_total', help: 'HLS playlists served.', registers });
    this.mFirstSegment = new Histogram({
      name: 'acemux_hls_playlist_wait_seconds',
      help: 'From a playlist request to its answer (waits for the first segment of a new stream).',
      buckets: [0.01, 0.1, 0.5, 1, 2, 3, 5, 10, 20, 30],
      registers,
    });
  }

  /** Supervisor.onStreamStop (H2). */
  onStop(s: Stream): void {
    const h = byStream.get(s);
    if (!h) return;
    h.segmenter.close();
    h.store.close();
    if (this.byKey.get(s.key) === h) this.byKey.delete(s.key);
    this.byHandle.delete(h.handle);
    for (const v of h.viewers.values()) this.endViewer(h, v);
    h.viewers.clear();
    if (this.byKey.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** GET/HEAD of a media playlist; `prefix` leads from the playlist's URL to /ace/. */
  async playlist(
    req: IncomingMessage,
    res: ServerResponse,
    sel: Selector,
    extra: Array<[string, string]>,
    channel: ChannelRef | null,
    prefix: string,
  ): Promise<void> {
    if (req.method === 'HEAD') {
      // As getstream: answer like the resource would, start nothing.
      res.writeHead(200, playlistHeaders());
      res.end();
      return;
    }
    const t0 = Date.now();
    const key = channel ? `channel=${channel.slug}` : streamKey(sel, extra);
    const vkey = viewerKey(req);
    let h = this.byKey.get(key);
    let v = h?.viewers.get(vkey);
    if (!h || !v) {
      const s = await this.sup.join(sel, extra, channel); // H1: limits as for getstream
      try {
        h = this.ensure(s);
      } catch (e) {
        this.sup.leave(s);
        throw e;
      }
      v = h.viewers.get(vkey);
      if (v)
        this.sup.leave(s); // a concurrent request of the same viewer got there first
      else {
        v = {
          remote: req.socket.remoteAddress ?? '',
          userAgent: String(req.headers['user-agent'] ?? '').slice(0, 200),
          since: t0,
          lastSeen: t0,
          bytes: 0,
          segments: 0,
          playlists: 0,
          waiting: 0,
        };
        h.viewers.set(vkey, v);
      }
    }
    v.lastSeen = Date.now();
    v.waiting++;
    const ok = await h.store.waitFirst(Math.max(0, this.o.engineTimeoutMs - (Date.now() - t0))); // H4
    v.waiting--;
    if (h.stream.state === 'stopped') throw new StreamGoneError(`stream ended: ${h.stream.stopReason}`);
    if (!ok) throw hlsTimeout(`no HLS segment within ${this.o.engineTimeoutMs} ms (the engine sent no decodable video yet)`);
    v.lastSeen = Date.now();
    v.playlists++;
    h.playlistsServed++;
    this.mPlaylists.inc();
    this.mFirstSegment.observe((Date.now() - t0) / 1000);
    const token = this.o.streamToken ? `?token=${encodeURIComponent(this.o.streamToken)}` : '';
    const body = h.playlist(prefix, token);
    res.writeHead(200, { ...playlistHeaders(), 'content-length': body.length });
    res.end(body);
  }

  /** GET/HEAD /ace/hls/<handle>/<seq>.ts: the stored Buffer itself, to every viewer (G4). */
  segment(req: IncomingMessage, res: ServerResponse, rest: string): void {
    const m = /^([0-9a-f]{12})\/(\d{1,15})\.ts$/.exec(rest);
    if (!m) throw notFound('no such HLS segment (expected /ace/hls/<stream>/<sequence>.ts)');
    const h = this.byHandle.get(m[1]!);
    if (!h) throw notFound('no such HLS stream (it has stopped; reload the playlist)');
    const seq = Number(m[2]);
    const seg = h.store.get(seq);
    if (!seg) throw notFound(seq > h.store.lastSeq ? `HLS segment ${seq} does not exist yet` : `HLS segment ${seq} has left the window`);
    const v = h.viewers.get(viewerKey(req));
    if (req.method === 'HEAD') {
      res.writeHead(200, segmentHeaders(seg.data.length));
      res.end();
      return;
    }
    if (v) {
      v.lastSeen = Date.now();
      v.bytes += seg.data.length;
      v.segments++;
    }
    h.bytesOut += seg.data.length;
    h.segmentsServed++;
    this.mSegments.inc();
    this.mBytes.inc(seg.data.length);
    res.writeHead(200, segmentHeaders(seg.data.length));
    res.end(seg.data);
  }

  private ensure(s: Stream): HlsStream {
    const old = byStream.get(s);
    if (old) return old;
    const h = new HlsStream(s, this.o);
    if (!h.segmenter.ok) {
      h.segmenter.close();
      throw new LimitError('no reader slot left on this stream for HLS', 10);
    }
    byStream.set(s, h);
    this.byKey.set(s.key, h);
    this.byHandle.set(h.handle, h);
    this.timer ??= setInterval(() => this.tick(), POLL_MS);
    h.segmenter.poll(); // a stream already live has segments in its ring: cut them now
    return h;
  }

  private tick(): void {
    const now = Date.now();
    for (const h of this.byKey.values()) h.segmenter.poll();
    if (now - this.lastSweep < 1000) return;
    this.lastSweep = now;
    for (const h of this.byKey.values()) {
      const idleMs = VIEWER_IDLE_TARGETS * h.store.targetDuration * 1000;
      for (const [k, v] of h.viewers) {
        if (now - v.lastSeen <= idleMs || v.waiting > 0) continue;
        h.viewers.delete(k);
        this.endViewer(h, v);
      }
    }
  }

  private endViewer(h: HlsStream, v: Viewer): void {
    this.sup.leave(h.stream);
    this.sup.events.record(
      'client-session',
      {
        stream: h.stream.key,
        hls: true,
        remote: v.remote,
        seconds: (Date.now() - v.since) / 1000,
        bytes: v.bytes,
        segments: v.segments,
        playlists: v.playlists,
      },
      'HLS viewer session ended',
    );
  }
}

/** H1: no connection identifies an HLS viewer; its address and player do. */
function viewerKey(req: IncomingMessage): string {
  return `${req.socket.remoteAddress ?? ''}|${String(req.headers['user-agent'] ?? '').slice(0, 200)}`;
}

function playlistHeaders(): Record<string, string> {
  // A live playlist changes every segment: caches must revalidate each time.
  return { 'content-type': 'application/vnd.apple.mpegurl', 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' };
}

function segmentHeaders(length: number): Record<string, string | number> {
  // A segment URL never names other bytes (H3): cache it as long as anyone wants.
  return {
    'content-type': 'video/mp2t',
    'content-length': length,
    'cache-control': 'public, max-age=86400, immutable',
    'x-content-type-options': 'nosniff',
  };
}
