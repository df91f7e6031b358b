/**
 * Wires the process together: the HTTP acceptor (main thread), the actor pool (piscina worker
 * threads), the supervisor and the routes. `startServer` is what the CLI and tests call.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Piscina } from 'piscina';
import type { Logger } from 'pino';
import type { Config } from './config';
import { Supervisor } from './supervision/supervisor';
import { Routes } from './http/routes';
import { EventLog } from './supervision/events';
import { EnginePool } from './engine/engines';
import { loadChannels, type ChannelMap } from './catalog/channels';
import { Journal } from './ops/journal';
import { Metrics } from './ops/metrics';
import { Admin } from './http/admin';
import { Hls } from './hls/hls';
import { StreamNames } from './catalog/names';
import { loadSource } from './catalog/playlist';
import { Health } from './ops/health';
import { KeyGuard } from './http/guard';
import { codeOfStatus } from './errors';
import { TS } from '../shared/ring';

export interface Running {
  server: Server;
  supervisor: Supervisor;
  events: EventLog;
  engines: EnginePool;
  port: number;
  close(): Promise<void>;
  /** SIGHUP: re-read the channels file (the playlist is read on every request anyway). */
  reload(): Promise<void>;
}

/** What the actor threads load; a test may substitute a wrapper of it (ServerOptions.actorEntry). */
export const ACTOR_ENTRY = join(__dirname, '..', 'workers', 'actor-host.js');

export interface ServerOptions {
  /** The module each actor thread loads (default ACTOR_ENTRY). Not a flag: only code can set it. */
  actorEntry?: string;
}

function actorPool(cfg: Config, entry: string): Piscina {
  // The main thread writes to sockets; the actors need little CPU each, and every extra thread
  // adds its own wake-ups (measured: 2 actor threads cost 1.7× one on 2 cores for the same 20
  // streams). So: one thread per core beyond main's, at least one, at most four.
  const threads = cfg.workers || Math.max(1, Math.min(availableParallelism() - 1, 4));
  return new Piscina({
    filename: entry,
    minThreads: threads,
    maxThreads: threads,
    // Actors live as long as their stream: a thread must host many, and never queue one.
    concurrentTasksPerWorker: cfg.actorsPerWorker,
    idleTimeout: 2 ** 31 - 1,
    atomics: 'disabled',
  });
}

export async function startServer(cfg: Config, log: Logger, opts: ServerOptions = {}): Promise<Running> {
  const pool = actorPool(cfg, opts.actorEntry ?? ACTOR_ENTRY);
  // Load the actor module on every thread now, not on the first viewer's request.
  await Promise.all(Array.from({ length: pool.options.maxThreads * 2 }, () => pool.run({ warmup: true })));
  // A journal that cannot be opened (read-only directory, say) costs history, not service; it
  // shows as degraded (a sticky mark: events may be missing from the history since then).
  const health = new Health();
  const journal = cfg.stateDir
    ? await Journal.open(cfg.stateDir, {
        onError: (e) => {
          log.error({ err: e.message }, 'event journal write failed');
          health.degrade('journal', `write failed: ${e.message}`);
        },
      }).catch((e: Error) => {
        log.error({ dir: cfg.stateDir, err: e.message }, 'event journal disabled: cannot open its directory');
        health.degrade('journal', `disabled, cannot open ${cfg.stateDir}: ${e.message}`);
        return null;
      })
    : null;
  const events = new EventLog(log, journal?.lastSeq ?? 0);
  if (journal) events.subscribe((e) => journal.append(e));
  const metrics = new Metrics();
  events.subscribe((e) => metrics.observeEvent(e));
  const engines = new EnginePool(cfg.engines, events, cfg.engineTimeoutMs, cfg.engineMaxAnswerBytes);
  const supervisor = new Supervisor(cfg, pool, engines, events);
  supervisor.onFirstWrite = (c) => {
    if (typeof c.info.t0 === 'number') metrics.observeFirstByte((c.firstWriteAt - c.info.t0) / 1000);
  };
  const counted = { in: 0, out: 0 };
  metrics.setCollector(() => collect(supervisor, engines, metrics, counted));
  let channels: ChannelMap = new Map();
  if (cfg.channelsFile) {
    const loaded = await loadChannels(cfg.channelsFile);
    channels = loaded.channels;
    for (const w of loaded.warnings) log.warn({ file: cfg.channelsFile }, w);
    log.info({ channels: channels.size }, 'channels file loaded');
  }
  // Display names for the dashboard: channels now, the playlist's titles once it has arrived.
  const names = new StreamNames();
  names.addChannels(channels.values());
  if (cfg.playlist) {
    loadSource(cfg.playlist, cfg.engineTimeoutMs).then(
      (text) => names.addPlaylist(text),
      (e: Error) => log.warn({ err: e.message }, 'playlist not read for stream names'),
    );
  }
  const guard = new KeyGuard(cfg.apiKey);
  guard.trustedProxies = cfg.trustedProxies;
  const admin = new Admin(supervisor, engines, journal, guard, { names, health });
  const hls = new Hls(
    supervisor,
    { segmentMs: cfg.hlsSegmentMs, window: cfg.hlsWindow, engineTimeoutMs: cfg.engineTimeoutMs, streamToken: cfg.streamToken },
    metrics.registry,
  );
  supervisor.onStreamStop = (s) => hls.onStop(s);
  let draining = false; // from SIGTERM on (close())
  const routes = new Routes(supervisor, log, {
    channels,
    admin,
    metrics,
    engines,
    streamToken: cfg.streamToken,
    playlist: cfg.playlist,
    publicUrl: cfg.publicUrl,
    engineTimeoutMs: cfg.engineTimeoutMs,
    health,
    guard,
    publicMetrics: cfg.publicMetrics,
    publicStatus: cfg.publicStatus,
    maxClientsPerIp: cfg.maxClientsPerIp,
    directWrites: cfg.directWrites,
    hls,
    trustedProxies: cfg.trustedProxies,
    draining: () => draining,
  });
  const server = createServer(
    { maxHeaderSize: 16 * 1024, requestTimeout: 30_000, headersTimeout: 15_000, keepAliveTimeout: 5_000 },
    (req, res) => routes.handle(req, res),
  );
  // Malformed or oversize requests never reach the routes: answer them in JSON too.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    // On a viewer's connection the answer would land in the middle of its stream: just end it.
    if (!socket.writable || routes.viewers.has(socket as Socket)) return socket.destroy();
    const [status, text] =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'request headers too large']
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'request timeout']
          : [400, 'malformed request'];
    const body = JSON.stringify({ error: text, code: codeOfStatus(status) });
    socket.end(
      `HTTP/1.1 ${status} ${text}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.listenPort, cfg.listenHost || undefined, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  engines.start(cfg.engineProbeMs);
  let closing: Promise<void> | null = null;
  // Graceful shutdown: turn unready (/readyz 503, new viewers 503), let current viewers play on
  // for the drain delay, end every client response and stop the engine sessions (bounded), then
  // stop accepting, flush the journal; the CLI bounds the whole of it. Listening until the
  // sessions are stopped lets a balancer see the 503s and send new viewers elsewhere instead of
  // guessing from refused connections. A viewer's response ends with its unsent bytes and then
  // a FIN; only viewers that have not drained within half the shutdown bound (they stopped
  // reading) are destroyed, and may see a reset.
  const close = () =>
    (closing ??= (async () => {
      draining = true;
      supervisor.draining = true;
      if (cfg.drainDelayMs > 0) await new Promise((r) => setTimeout(r, cfg.drainDelayMs));
      const drainUntil = Date.now() + (cfg.shutdownTimeoutMs - cfg.drainDelayMs) / 2;
      engines.stop();
      admin.close();
      await supervisor.close();
      hls.close();
      server.close();
      await drained(routes.viewers, drainUntil);
      server.closeAllConnections();
      await pool.destroy();
      metrics.close();
      await journal?.close();
    })());
  const reload = async () => {
    if (!cfg.channelsFile) return void log.info('SIGHUP: no channels file to reload (the playlist is read on every request)');
    try {
      const loaded = await loadChannels(cfg.channelsFile);
      for (const w of loaded.warnings) log.warn({ file: cfg.channelsFile }, w);
      routes.setChannels(loaded.channels);
      log.info({ channels: loaded.channels.size }, 'SIGHUP: channels file reloaded; running channels keep their ids');
    } catch (e) {
      log.error({ file: cfg.channelsFile, err: (e as Error).message }, 'SIGHUP: channels file not reloaded; the old one stays');
    }
  };
  return { server, supervisor, events, engines, port, close, reload };
}

/** Resolves once every socket in `viewers` has closed, or at `until`. */
async function drained(viewers: ReadonlySet<Socket>, until: number): Promise<void> {
  const waits = [...viewers].filter((s) => !s.destroyed).map((s) => new Promise<void>((r) => s.once('close', () => r())));
  if (waits.length === 0) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.all(waits), new Promise<void>((r) => (timer = setTimeout(r, Math.max(0, until - Date.now()))))]);
  clearTimeout(timer);
}

/** Refreshes the gauges from live state before each scrape; `counted` is what the byte counters
 *  already hold (they take deltas, and finished streams' bytes live in sup.bytesDone). */
function collect(sup: Supervisor, engines: EnginePool, metrics: Metrics, counted: { in: number; out: number }): void {
  const byState: Record<string, number> = { starting: 0, live: 0, recovering: 0, draining: 0 };
  let bytesIn = sup.bytesDone.in;
  let bytesOut = sup.bytesDone.out;
  let maxLag = 0;
  let ringBytes = 0;
  for (const s of sup.streams.values()) {
    byState[s.state] = (byState[s.state] ?? 0) + 1;
    ringBytes += s.egress.ring.cap * TS;
    for (const c of s.egress.clients) maxLag = Math.max(maxLag, s.egress.lagBytes(c));
    bytesIn += s.stats.bytesIn;
    bytesOut += s.egress.bytesOut;
  }
  metrics.setStreams(byState);
  metrics.setClients(sup.clients);
  metrics.setMaxClientLag(maxLag);
  metrics.setRings(sup.rings);
  metrics.setRingBytes(ringBytes);
  for (const e of engines.engines) metrics.setEngineUp(e.url, e.healthy);
  metrics.addBytes(Math.max(0, bytesIn - counted.in), Math.max(0, bytesOut - counted.out));
  counted.in = Math.max(counted.in, bytesIn);
  counted.out = Math.max(counted.out, bytesOut);
}
