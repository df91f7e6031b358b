// AceStream engine simulator: a real HTTP server speaking the engine API (see
// docs/ENGINE-API.md), with fault injection and a control API under /sim/ for tests.
//
// Invariants:
// - At most one live session per content (infohash) and per pid. getstream with the same pid and the
//   same content returns the existing session (same token and URLs); a different pid for that content,
//   or that pid for another content, evicts the older session first. An evicted session's token
//   answers 403 on playback; stopped/expired/forgotten tokens are unknown (404, stat/cmd error).
// - At most one reader per session: a concurrent second reader gets a corrupt status line and is closed.
// - Every playback connection owns a ring buffer whose size is a multiple of 188. Packets are generated
//   whole into it; writes are unaligned slices of it. A region is regenerated only after the write
//   callback of the bytes it held (libuv writes straight from our memory until then), tracked by
//   released ≤ sent ≤ generated ≤ released + ring size.
// - Pacing: one shared timer (every tickMs) tops every paced connection up to burst + rate × elapsed; a
//   connection writes only whole random-size chunks, so chunk sizes stay in [chunkMin, chunkMax]
//   except where the ring wraps or a fault limit trims one. Unthrottled connections are driven by
//   'drain' instead. Nothing allocates per packet.
// - Faults are snapshotted per request (see faults.ts).

import { createHash, randomBytes, randomFillSync } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { resolve } from 'node:path';
import { type Fault, type FaultSet, faultFor, mergeFaultSets, parseFaultSet } from './faults';
import { type LoopMode, SampleSource, SampleTrack, SyntheticSource, type TsSource } from './ts-source';
import { TS_PACKET_SIZE as TS_PACKET, fillNullPackets } from '../shared/mpegts/ts-packet';

export interface EngineSimOptions {
  host?: string; // default 127.0.0.1
  port?: number; // default 0 (ephemeral)
  /** Bits per second; default: the sample's mux rate (synthetic: 4 Mb/s); 0 = as fast as the socket drains. */
  bitrate?: number;
  loopMode?: LoopMode; // default 'continuous'
  /** Playback headers are held until this long after getstream (the engine prebuffering). */
  prebufferMs?: number;
  /** Sent at link speed when a playback connection starts, before pacing. */
  burstBytes?: number;
  chunkMin?: number; // default 1000
  chunkMax?: number; // default 20000
  /** Pacing cadence: every tickMs each paced connection writes the whole chunks that are due (15). */
  tickMs?: number;
  synthetic?: boolean;
  /** Playback body framing: 'close' (close-delimited, default) or 'chunked'. */
  body?: 'close' | 'chunked';
  /** A session without a reader for this long ends by itself (default 60000). */
  idleSessionMs?: number;
  seed?: number; // PRNG seed for chunk sizes
  samplePath?: string; // default assets/sample.mpegts
  faults?: FaultSet;
}

export interface SessionInfo {
  token: string;
  content: string;
  infohash: string;
  pid: string;
  readers: number;
  bytesSent: number;
  state: 'prebuf' | 'dl';
  playback: 'none' | 'holding' | 'flowing' | 'stalled';
}

export interface SimStats {
  getstreamRequests: number;
  sessionsStarted: number;
  sessionsStopped: number;
  sessionsEvicted: number;
  sessionsExpired: number;
  sessionsActive: number;
  playbackOpened: number;
  playbackActive: number;
  secondReaders: number;
  stopCommands: number;
  statRequests: number;
  restarts: number;
  bytesSent: number;
  sessions: SessionInfo[];
}

export interface EngineSim {
  readonly host: string;
  readonly port: number;
  readonly origin: string;
  stats(): SimStats;
  setFaults(f: FaultSet): void;
  resetFaults(): void;
  restart(): void;
  close(): Promise<void>;
}

const TICK_MS = 15;
const STAT_EMPTY_MS = 200; // stat answers {} this soon after getstream
const SYNTHETIC_DEFAULT_BPS = 4_000_000;
const UNKNOWN_SESSION = 'unknown playback session id';
const MAX_EVICTED_REMEMBERED = 10_000;

type Counters = Omit<SimStats, 'sessionsActive' | 'playbackActive' | 'sessions'>;

interface Session {
  token: string;
  psid: string;
  content: string;
  infohash: string;
  pid: string;
  createdAt: number;
  readyAt: number; // prebuffering ends
  source: TsSource;
  reader: Playback | null;
  idleSince: number;
  bytesSent: number;
  dead: boolean; // an offline channel: stat stays in prebuf with 0 peers
  stalledAt: number | null; // downloaded stops growing while a stall fault holds
  stalledUntil: number; // a timed stall (stallForMs): nothing is sent before this
}

export async function startEngineSim(opts: EngineSimOptions = {}): Promise<EngineSim> {
  const sim = new Sim(opts);
  try {
    await sim.listen();
  } catch (err) {
    await sim.close(); // clears the housekeeping timer so a failed start does not pin the process
    throw err;
  }
  return sim;
}

class Sim implements EngineSim {
  host: string;
  port = 0;
  readonly cfg: Required<Omit<EngineSimOptions, 'faults' | 'samplePath' | 'bitrate'>> & { rate: number; nominalRate: number };
  private readonly track: SampleTrack | null;
  private readonly server: http.Server;
  private readonly sockets = new Set<Socket>();
  private readonly sessions = new Map<string, Session>();
  private readonly evicted = new Set<string>();
  /** Requests deliberately left unanswered (hangs, delays): destroyed on restart and close. */
  private readonly held = new Set<ServerResponse>();
  private readonly timers = new Set<NodeJS.Timeout>();
  readonly paced = new Set<Playback>();
  private ticker: NodeJS.Timeout | null = null;
  private readonly housekeeper: NodeJS.Timeout;
  private faults: FaultSet = {};
  private rngState: number;
  readonly counters: Counters = {
    getstreamRequests: 0,
    sessionsStarted: 0,
    sessionsStopped: 0,
    sessionsEvicted: 0,
    sessionsExpired: 0,
    playbackOpened: 0,
    secondReaders: 0,
    stopCommands: 0,
    statRequests: 0,
    restarts: 0,
    bytesSent: 0,
  };
  playbackActive = 0;

  constructor(opts: EngineSimOptions) {
    const synthetic = opts.synthetic ?? false;
    this.track = synthetic ? null : new SampleTrack(opts.samplePath ?? resolve(__dirname, '../../assets/sample.mpegts'));
    const nominalRate = this.track ? this.track.bitrate : SYNTHETIC_DEFAULT_BPS;
    const chunkMin = Math.max(1, Math.floor(opts.chunkMin ?? 1000));
    this.cfg = {
      host: opts.host ?? '127.0.0.1',
      port: opts.port ?? 0,
      loopMode: opts.loopMode ?? 'continuous',
      prebufferMs: opts.prebufferMs ?? 0,
      burstBytes: opts.burstBytes ?? 0,
      chunkMin,
      chunkMax: Math.max(chunkMin, Math.floor(opts.chunkMax ?? 20000)),
      tickMs: Math.max(1, opts.tickMs ?? TICK_MS),
      synthetic,
      body: opts.body ?? 'close',
      idleSessionMs: opts.idleSessionMs ?? 60_000,
      seed: opts.seed ?? 1,
      rate: opts.bitrate ?? nominalRate,
      nominalRate: opts.bitrate || nominalRate,
    };
    this.host = this.cfg.host;
    this.rngState = this.cfg.seed >>> 0;
    if (opts.faults) this.faults = mergeFaultSets({}, opts.faults);
    this.server = http.createServer((req, res) => this.route(req, res));
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    this.server.on('clientError', (_err, socket) => socket.destroy());
    const every = Math.min(1000, Math.max(20, this.cfg.idleSessionMs / 4));
    this.housekeeper = setInterval(() => this.expireIdle(), every);
  }

  get origin(): string {
    return `http://${this.host}:${this.port}`;
  }

  listen(): Promise<void> {
    return new Promise((ok, fail) => {
      this.server.once('error', fail);
      this.server.listen(this.cfg.port, this.cfg.host, () => {
        const addr = this.server.address();
        if (addr && typeof addr === 'object') this.port = addr.port;
        ok();
      });
    });
  }

  // ---- shared helpers used by Playback ----

  now(): number {
    return performance.now();
  }

  /** mulberry32: cheap, seeded, good enough to vary chunk sizes. */
  chunkSize(): number {
    let t = (this.rngState = (this.rngState + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const r = ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
    return this.cfg.chunkMin + Math.floor(r * (this.cfg.chunkMax - this.cfg.chunkMin + 1));
  }

  later(ms: number, fn: () => void): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
    return t;
  }

  cancel(t: NodeJS.Timeout | null): void {
    if (!t) return;
    clearTimeout(t);
    this.timers.delete(t);
  }

  addPaced(p: Playback): void {
    this.paced.add(p);
    this.ticker ??= setInterval(() => {
      for (const q of this.paced) q.pump();
      if (this.paced.size === 0 && this.ticker) {
        clearInterval(this.ticker);
        this.ticker = null;
      }
    }, this.cfg.tickMs);
  }

  // ---- routing ----

  private route(req: IncomingMessage, res: ServerResponse): void {
    let url: URL;
    try {
      // Origin-form ('/x', also '//x') is resolved by prefixing, so '//' stays a path; else absolute-form.
      const raw = req.url ?? '/';
      url = raw.startsWith('/') ? new URL(`http://engine${raw}`) : new URL(raw);
    } catch {
      return sendJson(res, 404, { response: null, error: 'not found' });
    }
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const get = req.method === 'GET' || req.method === 'HEAD';
    try {
      if (path.startsWith('/sim/')) return this.control(req, res, path);
      if (get && path === '/webui/api/service' && url.searchParams.get('method') === 'get_version') {
        if (faultFor(this.faults, []).versionEndless) return this.endless(res);
        return sendJson(res, 200, { result: { code: 3017000, platform: 'linux', version: '3.1.70' }, error: null });
      }
      if (get && path === '/server/api' && url.searchParams.get('method') === 'get_status') {
        return sendJson(res, 200, { result: { status: 'ok', sessions: this.sessions.size }, error: null });
      }
      if (get && path === '/ace/getstream') return this.getstream(req, res, url);
      const m = /^\/ace\/(r|stat|cmd|event)\/([0-9a-fA-F]{40})\/([0-9a-zA-Z]+)$/.exec(path);
      if (get && m) {
        const [, kind, ih, token] = m;
        if (kind === 'r') return this.playback(req, res, ih.toLowerCase(), token);
        if (kind === 'stat') return this.stat(res, ih.toLowerCase(), token);
        if (kind === 'cmd') return this.command(res, ih.toLowerCase(), token, url);
        return this.event(res, ih.toLowerCase(), token);
      }
      sendJson(res, 404, { response: null, error: 'not found' });
    } catch (err) {
      // A simulator bug must not take the process down mid-test; answer and carry on.
      if (!res.headersSent) sendJson(res, 500, { response: null, error: String(err) });
      else res.destroy();
    }
  }

  private control(req: IncomingMessage, res: ServerResponse, path: string): void {
    const m = req.method;
    if (path === '/sim/stats' && m === 'GET') return sendJson(res, 200, this.stats());
    if (path === '/sim/faults' && m === 'GET') return sendJson(res, 200, this.faults);
    if (path === '/sim/faults' && m === 'DELETE') {
      this.resetFaults();
      return sendJson(res, 200, { ok: true });
    }
    if (path === '/sim/restart' && m === 'POST') {
      this.restart();
      return sendJson(res, 200, { ok: true });
    }
    if (path === '/sim/faults' && m === 'POST') {
      readBody(req, 64 * 1024, (err, body) => {
        if (err) return sendJson(res, 400, { ok: false, error: err.message });
        try {
          this.setFaults(parseFaultSet(JSON.parse(body || '{}')));
          sendJson(res, 200, { ok: true, faults: this.faults });
        } catch (e) {
          sendJson(res, 400, { ok: false, error: (e as Error).message });
        }
      });
      return;
    }
    sendJson(res, 404, { ok: false, error: 'not found' });
  }

  // ---- engine API ----

  private getstream(req: IncomingMessage, res: ServerResponse, url: URL): void {
    this.counters.getstreamRequests++;
    const q = url.searchParams;
    const json = q.get('format') === 'json';
    const sel = parseSelector(q);
    const pid = q.get('pid') ?? q.get('sid') ?? '';
    const fault = faultFor(this.faults, sel.ok ? [sel.content, sel.infohash] : []);
    if (fault.getstreamHang) return this.hold(res);
    if (fault.getstreamEndless) return this.endless(res);

    const fail = (msg: string) => {
      if (json) sendJson(res, 200, { response: null, error: msg });
      else sendText(res, 500, msg);
    };
    const answer = () => {
      this.held.delete(res);
      if (res.destroyed) return;
      if (fault.getstreamError !== undefined) return fail(padText(fault.getstreamError, fault.errorBytes));
      if (!sel.ok) return fail(sel.error);
      const base = `http://${req.headers.host || `${this.host}:${this.port}`}`;
      if (fault.getstreamPadBytes !== undefined) {
        // A valid envelope a client could use if it read it all; no session stands behind it.
        const fake = `${sel.infohash}/${'0'.repeat(32)}`;
        const head = JSON.stringify({
          response: {
            playback_url: `${base}/ace/r/${fake}`,
            stat_url: `${base}/ace/stat/${fake}`,
            command_url: `${base}/ace/cmd/${fake}`,
            infohash: sel.infohash,
          },
          error: null,
        });
        const pad = Math.max(0, fault.getstreamPadBytes - head.length - 10);
        return sendJson(res, 200, { ...JSON.parse(head), pad: 'x'.repeat(pad) });
      }
      const s = this.openSession(sel.content, sel.infohash, pid);
      const tail = `${s.infohash}/${s.token}`;
      const playbackUrl = `${base}/ace/r/${tail}`;
      if (!json) {
        res.writeHead(302, { Location: playbackUrl, 'Content-Length': 0 });
        return void res.end();
      }
      const response: Record<string, unknown> = {
        playback_url: playbackUrl,
        stat_url: `${base}/ace/stat/${tail}`,
        command_url: `${base}/ace/cmd/${tail}`,
      };
      if (fault.playbackUrl !== undefined) response.playback_url = fault.playbackUrl;
      if (fault.statUrl !== undefined) response.stat_url = fault.statUrl;
      if (fault.commandUrl !== undefined) response.command_url = fault.commandUrl;
      if (q.get('use_api_events') === '1') response.event_url = `${base}/ace/event/${tail}`;
      Object.assign(response, {
        infohash: s.infohash,
        playback_session_id: s.psid,
        is_live: 1,
        is_encrypted: 0,
        client_session_id: -1,
      });
      sendJson(res, 200, { response, error: null });
    };
    const delay = (fault.getstreamDelayMs ?? 0) + (fault.getstreamError !== undefined ? (fault.errorDelayMs ?? 0) : 0);
    if (delay > 0) {
      this.hold(res);
      this.later(delay, answer);
    } else {
      answer();
    }
  }

  private openSession(content: string, infohash: string, pid: string): Session {
    for (const s of this.sessions.values()) if (s.infohash === infohash && s.pid === pid) return s;
    for (const s of [...this.sessions.values()]) {
      if (s.infohash === infohash || s.pid === pid) this.endSession(s, 'evicted');
    }
    const now = this.now();
    const s: Session = {
      token: randomBytes(16).toString('hex'),
      psid: randomBytes(20).toString('hex'),
      content,
      infohash,
      pid,
      createdAt: now,
      readyAt: now + this.cfg.prebufferMs,
      source: this.track ? new SampleSource(this.track, this.cfg.loopMode) : new SyntheticSource(this.cfg.nominalRate),
      reader: null,
      idleSince: now,
      bytesSent: 0,
      dead: false,
      stalledAt: null,
      stalledUntil: 0,
    };
    this.sessions.set(s.token, s);
    this.counters.sessionsStarted++;
    return s;
  }

  private endSession(s: Session, why: 'stopped' | 'evicted' | 'expired' | 'forgotten'): void {
    if (this.sessions.get(s.token) !== s) return;
    this.sessions.delete(s.token);
    if (why === 'evicted') {
      this.counters.sessionsEvicted++;
      this.evicted.add(s.token);
      if (this.evicted.size > MAX_EVICTED_REMEMBERED) this.evicted.delete(this.evicted.values().next().value as string);
    } else if (why === 'stopped') {
      this.counters.sessionsStopped++;
    } else if (why === 'expired') {
      this.counters.sessionsExpired++;
    }
    s.reader?.destroy();
  }

  private lookup(ih: string, token: string): Session | null {
    const s = this.sessions.get(token);
    return s && s.infohash === ih ? s : null;
  }

  private playback(req: IncomingMessage, res: ServerResponse, ih: string, token: string): void {
    const s = this.lookup(ih, token);
    if (!s) {
      return sendText(res, this.evicted.has(token) ? 403 : 404, this.evicted.has(token) ? 'session taken over' : 'unknown session');
    }
    const fault = faultFor(this.faults, [s.content, s.infohash]);
    if (fault.playbackStatus) return sendText(res, fault.playbackStatus, `simulated status ${fault.playbackStatus}`);
    if (req.method === 'HEAD') return sendText(res, 200, '', 'video/mp2t'); // no body to pace, no reader
    if (s.reader) {
      // Measured engine behaviour: the newcomer gets garbage where the status line should be.
      this.counters.secondReaders++;
      const sock = req.socket;
      sock.write(CORRUPT_STATUS, () => sock.destroy());
      return;
    }
    this.counters.playbackOpened++;
    new Playback(this, s, res, fault);
  }

  private stat(res: ServerResponse, ih: string, token: string): void {
    this.counters.statRequests++;
    const s = this.lookup(ih, token);
    if (!s) return sendJson(res, 200, { response: null, error: UNKNOWN_SESSION });
    const fault = faultFor(this.faults, [s.content, s.infohash]);
    if (fault.statEndless) return this.endless(res);
    if (fault.statError !== undefined) return sendJson(res, 200, { response: null, error: padText(fault.statError, fault.errorBytes) });
    const now = this.now();
    if (now - s.createdAt < STAT_EMPTY_MS) return sendJson(res, 200, { response: {}, error: null });
    const dl = !s.dead && now >= s.readyAt;
    const flowingUntil = s.stalledAt ?? now;
    const rate = this.cfg.nominalRate;
    const downloaded = dl ? Math.floor((Math.max(0, flowingUntil - s.readyAt) * rate) / 8000 / 16384) * 16384 : 0;
    const unix = Math.floor(Date.now() / 1000);
    const peers = dl ? 6 + (parseInt(s.token.slice(0, 2), 16) % 10) : 0;
    sendJson(res, 200, {
      response: {
        status: dl ? 'dl' : 'prebuf',
        peers,
        speed_down: dl && s.stalledAt === null ? Math.round(rate / 8 / 1024) : 0,
        speed_up: dl ? 1 + (peers % 3) : 0,
        downloaded,
        uploaded: 0,
        total_progress: 0,
        progress: 0,
        livepos: {
          pos: String(unix - 10),
          live_first: String(unix - 3600),
          live_last: String(unix),
          first_ts: String(unix - 3600),
          last_ts: String(unix),
          buffer_pieces: dl ? '15' : '0',
        },
      },
      error: null,
    });
  }

  private command(res: ServerResponse, ih: string, token: string, url: URL): void {
    const method = url.searchParams.get('method');
    if (method === 'stop') this.counters.stopCommands++;
    const s = this.lookup(ih, token);
    if (!s) return sendJson(res, 200, { response: null, error: UNKNOWN_SESSION });
    const fault = faultFor(this.faults, [s.content, s.infohash]);
    if (fault.cmdHang) return this.hold(res);
    if (method !== 'stop') return sendJson(res, 200, { response: null, error: `unknown method ${method ?? ''}`.trim() });
    this.endSession(s, 'stopped');
    if (fault.cmdEndless) return this.endless(res); // stopped, but the answer never ends
    sendJson(res, 200, { response: 'ok', error: null });
  }

  private event(res: ServerResponse, ih: string, token: string): void {
    if (!this.lookup(ih, token)) return sendJson(res, 200, { response: null, error: UNKNOWN_SESSION });
    sendJson(res, 200, { response: [], error: null });
  }

  private hold(res: ServerResponse): void {
    this.held.add(res);
    res.once('close', () => this.held.delete(res));
  }

  /** A JSON-looking answer that never ends, at link speed (as fast as the client reads). */
  private endless(res: ServerResponse): void {
    this.hold(res);
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.write('{"response": {"playback_url": "http://');
    const pump = () => {
      while (!res.destroyed && res.write(ENDLESS_CHUNK));
    };
    res.on('drain', pump);
    pump();
  }

  private expireIdle(): void {
    const now = this.now();
    for (const s of [...this.sessions.values()]) {
      if (!s.reader && now - s.idleSince >= this.cfg.idleSessionMs) this.endSession(s, 'expired');
    }
  }

  // ---- control ----

  stats(): SimStats {
    const now = this.now();
    const sessions = [...this.sessions.values()].map((s): SessionInfo => ({
      token: s.token,
      content: s.content,
      infohash: s.infohash,
      pid: s.pid,
      readers: s.reader ? 1 : 0,
      bytesSent: s.bytesSent,
      state: !s.dead && now >= s.readyAt ? 'dl' : 'prebuf',
      playback: s.reader ? (s.reader.state === 'closed' ? 'none' : s.reader.state) : 'none',
    }));
    return { ...this.counters, sessionsActive: this.sessions.size, playbackActive: this.playbackActive, sessions };
  }

  setFaults(f: FaultSet): void {
    this.faults = mergeFaultSets(this.faults, f);
  }

  resetFaults(): void {
    this.faults = {};
  }

  restart(): void {
    this.counters.restarts++;
    for (const s of [...this.sessions.values()]) this.endSession(s, 'forgotten');
    this.evicted.clear();
    for (const r of [...this.held]) r.destroy();
    this.held.clear();
  }

  async close(): Promise<void> {
    clearInterval(this.housekeeper);
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = null;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const s of [...this.sessions.values()]) this.endSession(s, 'forgotten');
    const closed = new Promise<void>((ok) => this.server.close(() => ok()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}

/** One playback connection: hold (prebuffer / slow start / hang), then burst, then pace. */
class Playback {
  state: 'holding' | 'flowing' | 'stalled' | 'closed' = 'holding';
  private readonly ring: Buffer;
  private released = 0;
  private sent = 0;
  private generated = 0;
  private startAt = 0;
  private nextChunk: number;
  private waitingDrain = false;
  private waitingRoom = false;
  private limit: number; // body bytes after which a stall or drop fault fires
  private readonly drop: boolean;
  private readonly stallForMs: number;
  private holdTimer: NodeJS.Timeout | null = null;
  private readonly dripBps: number;
  private readonly junk: boolean;
  private readonly dropPatAfter: number;
  private readonly nullsAfter: number;
  private readonly dropPmtAfter: number;
  private readonly onDrain = () => {
    this.waitingDrain = false;
    this.pump();
  };
  private readonly onWritten = (err?: Error | null) => {
    if (err || this.state === 'closed') return;
    // Callbacks run in write order, so everything up to the oldest outstanding write is free.
    this.released = this.releasing.shift() ?? this.released;
    if (this.drop && this.released >= this.limit) return this.destroy();
    if (this.waitingRoom) {
      this.waitingRoom = false;
      this.pump();
    }
  };
  /** End offsets of writes not yet called back, oldest first. */
  private readonly releasing: number[] = [];

  constructor(
    private readonly sim: Sim,
    private readonly session: Session,
    private readonly res: ServerResponse,
    fault: Fault,
  ) {
    const cfg = sim.cfg;
    // Outstanding writes stay under the socket's high-water mark plus one chunk; 4 chunks is ample.
    const want = Math.max(1 << 18, 4 * cfg.chunkMax + (1 << 16));
    this.ring = Buffer.allocUnsafe(Math.ceil(want / TS_PACKET) * TS_PACKET);
    this.nextChunk = sim.chunkSize();
    const stall = fault.stallAfterBytes ?? Infinity;
    const drop = fault.dropAfterBytes ?? Infinity;
    this.limit = Math.min(stall, drop);
    this.drop = drop <= stall;
    this.dripBps = fault.dripBps ?? 0;
    this.junk = fault.junk === true;
    this.dropPatAfter = fault.dropPatAfterBytes ?? Infinity;
    this.nullsAfter = fault.nullsAfterBytes ?? Infinity;
    this.dropPmtAfter = fault.dropPmtAfterBytes ?? Infinity;
    this.stallForMs = fault.stallForMs ?? 0;
    session.reader = this;
    session.stalledAt = null;
    sim.playbackActive++;
    res.once('close', () => this.close());
    res.on('error', () => this.destroy()); // a vanished client is routine, never fatal
    res.socket?.setNoDelay(true);
    session.dead = fault.hangBeforeHeaders === true; // an offline channel: never any headers
    if (session.dead) return;
    const hold = Math.max(session.readyAt - sim.now(), fault.slowStartMs ?? 0, session.stalledUntil - sim.now());
    if (hold > 0) this.holdTimer = sim.later(hold, () => this.start());
    else this.start();
  }

  private start(): void {
    this.holdTimer = null;
    if (this.state !== 'holding') return;
    const res = this.res;
    if (this.sim.cfg.body === 'close') {
      // No Content-Length and no chunking: Node then frames the body by closing the connection.
      res.useChunkedEncodingByDefault = false;
      res.shouldKeepAlive = false;
    }
    res.writeHead(200, { 'Content-Type': 'video/mp2t', 'Cache-Control': 'no-cache' });
    res.flushHeaders();
    this.state = 'flowing';
    this.startAt = this.sim.now();
    if (this.sim.cfg.rate > 0 || this.dripBps > 0) this.sim.addPaced(this);
    this.pump();
  }

  /** Writes every whole chunk that is due, until backpressure, ring space or a fault stops it. */
  pump(): void {
    if (this.state !== 'flowing' || this.waitingDrain) return;
    const drip = this.dripBps > 0;
    const rate = drip ? this.dripBps * 8 : this.sim.cfg.rate;
    // The engine keeps a buffer: a reader that fell behind catches up at link speed.
    const due = rate > 0 ? (drip ? 0 : this.sim.cfg.burstBytes) + ((this.sim.now() - this.startAt) * rate) / 8000 : Infinity;
    const size = this.ring.length;
    const stamping = this.session.source.stamp !== undefined;
    for (;;) {
      const left = this.limit - this.sent;
      if (left <= 0) return this.limitReached();
      let len = Math.min(this.nextChunk, left);
      if (drip) len = Math.min(len, Math.floor(due - this.sent)); // a trickle: whatever is due, even 1 byte
      if (len <= 0 || this.sent + len > due) return;
      const pos = this.sent % size;
      len = Math.min(len, size - pos);
      const end = this.sent + len;
      // Whole packets up to the chunk end, plus one more so a stamp never lands in ungenerated bytes.
      const need = Math.ceil(end / TS_PACKET) * TS_PACKET + (stamping ? TS_PACKET : 0);
      if (need - this.released > size) {
        this.waitingRoom = true;
        return;
      }
      while (this.generated < need) {
        const at = this.generated % size;
        this.session.source.next(this.ring, at);
        if (this.junk) randomFillSync(this.ring, at, TS_PACKET);
        else if (this.generated >= this.nullsAfter) fillNullPackets(this.ring, at, 1);
        else if (this.generated >= this.dropPmtAfter && startsPmt(this.ring, at)) fillNullPackets(this.ring, at, 1);
        else if (this.generated >= this.dropPatAfter && this.ring[at + 2] === 0 && (this.ring[at + 1]! & 0x1f) === 0)
          fillNullPackets(this.ring, at, 1);
        this.generated += TS_PACKET;
      }
      if (stamping) this.stamp(this.sent, end);
      this.sent = end;
      this.session.bytesSent += len;
      this.sim.counters.bytesSent += len;
      this.nextChunk = this.sim.chunkSize();
      this.releasing.push(end);
      const ok = this.res.write(this.ring.subarray(pos, pos + len), this.onWritten);
      if (this.state !== 'flowing') return; // the write may have failed and closed us
      if (!ok) {
        this.waitingDrain = true;
        this.res.once('drain', this.onDrain);
        return;
      }
    }
  }

  /** Send time for every packet whose first byte lies in [from, to). */
  private stamp(from: number, to: number): void {
    const timeUs = Number(process.hrtime.bigint()) / 1000;
    const size = this.ring.length;
    const source = this.session.source;
    for (let p = Math.ceil(from / TS_PACKET) * TS_PACKET; p < to; p += TS_PACKET) source.stamp!(this.ring, p % size, timeUs);
  }

  private limitReached(): void {
    if (this.drop) return; // onWritten destroys once the last byte is flushed
    this.state = 'stalled';
    this.session.stalledAt = this.sim.now();
    this.sim.paced.delete(this);
    if (this.stallForMs > 0) {
      this.session.stalledUntil = this.session.stalledAt + this.stallForMs;
      this.holdTimer = this.sim.later(this.stallForMs, () => this.resume());
    }
  }

  /** A timed stall is over: carry on from where the source stopped, paced from now (no burst). */
  private resume(): void {
    this.holdTimer = null;
    if (this.state !== 'stalled') return;
    this.limit = Infinity;
    this.session.stalledAt = null;
    this.state = 'flowing';
    const rate = this.sim.cfg.rate;
    if (rate > 0) {
      this.startAt = this.sim.now() - ((this.sent - this.sim.cfg.burstBytes) * 8000) / rate;
      this.sim.addPaced(this);
    }
    this.pump();
  }

  destroy(): void {
    this.res.socket?.destroy();
    this.res.destroy();
    this.close();
  }

  private close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.sim.cancel(this.holdTimer);
    this.sim.paced.delete(this);
    this.sim.playbackActive--;
    if (this.session.reader === this) {
      this.session.reader = null;
      this.session.idleSince = this.sim.now();
    }
  }
}

const CORRUPT_STATUS = Buffer.from([
  0x48, 0x54, 0x54, 0x50, 0x2f, 0x31, 0x2e, 0x31, 0x20, 0x32, 0x00, 0xff, 0xfe, 0x81, 0x0d, 0x0a, 0x9c, 0x0d, 0x0a,
]); // "HTTP/1.1 2" then binary junk

type Selector = { ok: true; content: string; infohash: string } | { ok: false; error: string };

/** Exactly one content selector; ids map to a stable fake infohash (ids and infohashes differ). */
function parseSelector(q: URLSearchParams): Selector {
  const given = ['id', 'content_id', 'infohash', 'url', 'magnet'].filter((k) => q.has(k));
  if (given.length === 0) return { ok: false, error: 'missing content id' };
  if (given.length > 1) return { ok: false, error: 'only one of id, content_id, infohash, url, magnet allowed' };
  const kind = given[0];
  const value = (q.get(kind) ?? '').toLowerCase();
  if (kind === 'url' || kind === 'magnet' || !/^[0-9a-f]{40}$/.test(value)) return { ok: false, error: 'failed to load content' };
  const infohash = kind === 'infohash' ? value : createHash('sha1').update(`acemux-sim:${value}`).digest('hex');
  return { ok: true, content: value, infohash };
}

const ENDLESS_CHUNK = Buffer.alloc(64 * 1024, 'a');

/** A packet that starts a section with table_id 0x02 (a PMT), whatever its PID. */
function startsPmt(b: Buffer, off: number): boolean {
  if ((b[off + 1]! & 0x40) === 0 || (b[off + 3]! & 0x10) === 0) return false; // no PUSI, no payload
  const start = (b[off + 3]! & 0x20) !== 0 ? off + 5 + b[off + 4]! : off + 4;
  const table = start + 1 + b[start]!; // after the pointer field
  return table < off + TS_PACKET && b[table] === 0x02;
}

/** An error text repeated up to `size` characters (a hostile engine's 5 MB error). */
function padText(text: string, size: number | undefined): string {
  if (size === undefined || size <= text.length || text.length === 0) return text;
  return text.repeat(Math.ceil(size / text.length)).slice(0, size);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) });
  res.end(data);
}

function sendText(res: ServerResponse, status: number, text: string, type = 'text/plain'): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req: IncomingMessage, max: number, done: (err: Error | null, body: string) => void): void {
  const parts: Buffer[] = [];
  let size = 0;
  let finished = false;
  req.on('data', (d: Buffer) => {
    size += d.length;
    if (size > max && !finished) {
      finished = true;
      done(new Error('body too large'), '');
    } else parts.push(d);
  });
  req.on('end', () => {
    if (!finished) {
      finished = true;
      done(null, Buffer.concat(parts).toString('utf8'));
    }
  });
  req.on('error', () => {
    finished = true;
  });
}
