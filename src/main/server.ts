/**
 * Wires the process together: the HTTP acceptor (main thread), the actor pool (piscina worker
 * threads), the supervisor and the routes. `startServer` is what the CLI and tests call.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Piscina } from 'piscina';
import type { Logger } from 'pino';
import type { Config } from '../shared/config';
import { Supervisor } from './supervisor';
import { Routes } from './routes';
import { EventLog } from './events';
import { EnginePool } from './engines';
import { loadChannels, type ChannelMap } from './channels';

export interface Running {
  server: Server;
  supervisor: Supervisor;
  events: EventLog;
  engines: EnginePool;
  port: number;
  close(): Promise<void>;
}

export function actorPool(cfg: Config): Piscina {
  // The main thread writes to sockets; the actors need little CPU each, and every extra thread
  // adds its own wake-ups (measured: 2 actor threads cost 1.7× one on 2 cores for the same 20
  // streams). So: one thread per core beyond main's, at least one, at most four.
  const threads = cfg.workers || Math.max(1, Math.min(availableParallelism() - 1, 4));
  return new Piscina({
    filename: join(__dirname, '..', 'workers', 'actor-host.js'),
    minThreads: threads,
    maxThreads: threads,
    // Actors live as long as their stream: a thread must host many, and never queue one.
    concurrentTasksPerWorker: cfg.actorsPerWorker,
    idleTimeout: 2 ** 31 - 1,
    atomics: 'disabled',
  });
}

export async function startServer(cfg: Config, log: Logger): Promise<Running> {
  const pool = actorPool(cfg);
  // Load the actor module on every thread now, not on the first viewer's request.
  await Promise.all(Array.from({ length: pool.options.maxThreads * 2 }, () => pool.run({ warmup: true })));
  const events = new EventLog(log);
  const engines = new EnginePool(cfg.engines, events, cfg.engineTimeoutMs);
  const supervisor = new Supervisor(cfg, pool, engines, events);
  const channels: ChannelMap = cfg.channelsFile ? (await loadChannels(cfg.channelsFile)).channels : new Map();
  const routes = new Routes(supervisor, log, channels);
  const server = createServer({ maxHeaderSize: 16 * 1024, requestTimeout: 30_000, headersTimeout: 15_000, keepAliveTimeout: 5_000 }, (req, res) => routes.handle(req, res));
  // Malformed or oversize requests never reach the routes: answer them in JSON too.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) return socket.destroy();
    const [status, text] = err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'request headers too large'] : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'request timeout'] : [400, 'malformed request'];
    const body = JSON.stringify({ error: text });
    socket.end(`HTTP/1.1 ${status} ${text}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.listenPort, cfg.listenHost || undefined, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  engines.start(cfg.engineProbeMs);
  let closing: Promise<void> | null = null;
  const close = () => (closing ??= (async () => {
    server.close();
    engines.stop();
    await supervisor.close();
    server.closeAllConnections();
    await pool.destroy();
  })());
  return { server, supervisor, events, engines, port, close };
}
