/**
 * A loopback cluster for the test/cluster/*.test.ts files: the shipped HAProxy configuration
 * (deploy/haproxy/haproxy.cfg, only its addresses rewritten), N acemux nodes and M engine
 * simulators, plus a viewer that reconnects like a simple player.
 */
import type { Test } from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync, existsSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAcemux, freePort, type Acemux } from '../helpers/acemux';
import { startSim, type SimHandle } from '../helpers/sim';
import { until } from '../helpers/wait';

export const SHIPPED_CFG = join(__dirname, '..', '..', 'deploy', 'haproxy', 'haproxy.cfg');

/** The haproxy binary, or null (the tests then skip, saying so). */
export function haproxyBinary(): string | null {
  for (const p of ['/usr/sbin/haproxy', '/usr/local/sbin/haproxy']) if (existsSync(p)) return p;
  const w = spawnSync('sh', ['-c', 'command -v haproxy'], { encoding: 'utf8' });
  return w.status === 0 && w.stdout.trim() ? w.stdout.trim() : null;
}
export const SKIP_NO_HAPROXY =
  'haproxy is not installed (Debian/Ubuntu: apt-get install haproxy); the cluster tests need the real balancer';

/**
 * The shipped file with loopback addresses: nodeN:8080 → 127.0.0.1:<port N>, the two binds to
 * loopback ports. Throws if the file no longer has what is rewritten, so the test cannot drift to
 * testing a different configuration.
 */
export function renderConfig(nodePorts: number[], frontPort: number, statsPort: number): string {
  let text = readFileSync(SHIPPED_CFG, 'utf8');
  const swap = (from: RegExp, to: string, what: string) => {
    if (!from.test(text)) throw new Error(`deploy/haproxy/haproxy.cfg: no ${what} to rewrite`);
    text = text.replace(from, to);
  };
  swap(/bind :8080\b/, `bind 127.0.0.1:${frontPort}`, 'frontend bind :8080');
  swap(/bind :8404\b/, `bind 127.0.0.1:${statsPort}`, 'stats bind :8404');
  nodePorts.forEach((p, i) => swap(new RegExp(`\\bnode${i + 1}:8080\\b`, 'g'), `127.0.0.1:${p}`, `node${i + 1}:8080`));
  return text;
}

export interface Haproxy {
  port: number;
  statsPort: number;
  proc: ChildProcess;
  logs: string[];
  /** Server name → status (UP, DOWN, ...) in the stream backend, from the stats page's CSV. */
  states(): Promise<Map<string, string>>;
  stop(): Promise<void>;
}

export async function startHaproxy(bin: string, nodePorts: number[]): Promise<Haproxy> {
  const port = await freePort();
  const statsPort = await freePort();
  const file = join(mkdtempSync(join(tmpdir(), 'acemux-haproxy-')), 'haproxy.cfg');
  writeFileSync(file, renderConfig(nodePorts, port, statsPort));
  const proc = spawn(bin, ['-db', '-f', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: string[] = [];
  proc.stdout!.on('data', (d: Buffer) => logs.push(d.toString()));
  proc.stderr!.on('data', (d: Buffer) => logs.push(d.toString()));
  const exited = new Promise<void>((ok) => proc.once('exit', () => ok()));
  const states = async () => {
    const csv = await text(`http://127.0.0.1:${statsPort}/stats;csv`);
    const m = new Map<string, string>();
    for (const line of csv.split('\n')) {
      const f = line.split(',');
      if (f[0] === 'acemux_streams' && f[1] !== 'FRONTEND' && f[1] !== 'BACKEND') m.set(f[1]!, f[17]!);
    }
    return m;
  };
  await until(
    async () => {
      if (proc.exitCode !== null) throw new Error(`haproxy exited: ${logs.join('')}`);
      try {
        const s = await states();
        return s.size === nodePorts.length && [...s.values()].every((v) => v === 'UP');
      } catch {
        return false;
      }
    },
    'haproxy up with every node UP',
    15_000,
    100,
  );
  return {
    port,
    statsPort,
    proc,
    logs,
    states,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        await exited;
      }
    },
  };
}

export function text(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, timeout: 3000 }, (res) => {
      let b = '';
      res
        .setEncoding('utf8')
        .on('data', (d: string) => (b += d))
        .on('end', () => resolve(b))
        .on('error', reject);
    });
    req.on('error', reject).on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

export interface Node {
  name: string;
  port: number;
  acemux: Acemux;
}

export interface Cluster {
  haproxy: Haproxy;
  nodes: Node[];
  sims: SimHandle[];
  base: string;
  /** Starts node `name` again on its port (after a kill or a stop). */
  restart(name: string): Promise<Node>;
  /** Every simulator session, as [content, sim index, token]. */
  sessions(): Promise<Array<{ content: string; sim: number; token: string }>>;
  stop(): Promise<void>;
}

/** The acemux flags each node runs with, as deploy/compose.cluster.yaml sets them. */
export const NODE_FLAGS = ['--workers', '1', '--trusted-proxies', '127.0.0.1,::1', '--drain-delay', '2s', '--stat-interval', '0'];

export async function startCluster(o: { nodes: number; sims: number; simArgs: string[]; nodeFlags?: string[] }): Promise<Cluster> {
  const bin = haproxyBinary();
  if (!bin) throw new Error(SKIP_NO_HAPROXY);
  const sims = await Promise.all(Array.from({ length: o.sims }, () => startSim(o.simArgs)));
  const engines = sims.map((s) => s.origin);
  const ports = await Promise.all(Array.from({ length: o.nodes }, () => freePort()));
  const flags = o.nodeFlags ?? NODE_FLAGS;
  const start = async (i: number): Promise<Node> => ({
    name: `node${i + 1}`,
    port: ports[i]!,
    acemux: await startAcemux(engines, ['--listen', `127.0.0.1:${ports[i]}`, ...flags]),
  });
  const nodes = await Promise.all(ports.map((_, i) => start(i)));
  const haproxy = await startHaproxy(bin, ports);
  return {
    haproxy,
    nodes,
    sims,
    base: `http://127.0.0.1:${haproxy.port}`,
    restart: async (name) => {
      const i = nodes.findIndex((n) => n.name === name);
      nodes[i] = await start(i);
      return nodes[i]!;
    },
    sessions: async () => {
      const all = await Promise.all(sims.map((s) => s.stats()));
      return all.flatMap((st, sim) => st.sessions.map((x) => ({ content: x.content, sim, token: x.token })));
    },
    stop: async () => {
      await haproxy.stop();
      await Promise.all(nodes.map((n) => (n.acemux.proc.exitCode === null && n.acemux.proc.signalCode === null ? n.acemux.stop() : null)));
      await Promise.all(sims.map((s) => s.stop()));
    },
  };
}

/** Contents (lower-case 40 hex) with more than one engine session across the simulators. */
export function duplicates(sessions: Array<{ content: string }>): string[] {
  const n = new Map<string, number>();
  for (const s of sessions) n.set(s.content.toLowerCase(), (n.get(s.content.toLowerCase()) ?? 0) + 1);
  return [...n].filter(([, k]) => k > 1).map(([c]) => c);
}

/**
 * A player that reconnects at once when its stream ends or breaks (what ffmpeg -reconnect or a
 * set-top box does), recording which node served it, the longest silence while connected, and how
 * long each reconnection took from the loss to the first byte again.
 */
export class Viewer {
  node = '';
  nodes: string[] = [];
  bytes = 0;
  connects = 0;
  /** Longest time between two chunks on one connection, ms. */
  maxGapMs = 0;
  /** Loss → first byte again, ms, per reconnection. */
  reconnectMs: number[] = [];
  ends: Array<{ at: number; how: 'end' | 'error'; status: number }> = [];
  statuses: number[] = [];
  private lostAt = 0;
  private lastData = 0;
  private req: ReturnType<typeof request> | null = null;
  private closed = false;
  reconnect = true;

  constructor(
    readonly url: string,
    readonly headers: Record<string, string> = {},
  ) {}

  start(): this {
    this.open();
    return this;
  }

  get playing(): boolean {
    return this.lastData > 0 && this.lostAt === 0;
  }

  private open(): void {
    if (this.closed) return;
    this.connects++;
    const req = request(this.url, { agent: false, headers: this.headers }, (res) => {
      this.statuses.push(res.statusCode!);
      const lost = (how: 'end' | 'error') => {
        if (this.req !== req) return;
        this.req = null;
        this.ends.push({ at: Date.now(), how, status: res.statusCode! });
        this.lostAt ||= Date.now();
        this.lastData = 0;
        if (this.reconnect) setTimeout(() => this.open(), 50);
      };
      if (res.statusCode !== 200) {
        res.resume();
        res.on('end', () => lost('end'));
        return;
      }
      this.node = String(res.headers['x-acemux-node'] ?? '');
      this.nodes.push(this.node);
      res.on('data', (d: Buffer) => {
        const now = Date.now();
        if (this.lastData) this.maxGapMs = Math.max(this.maxGapMs, now - this.lastData);
        if (this.lostAt) {
          this.reconnectMs.push(now - this.lostAt);
          this.lostAt = 0;
        }
        this.lastData = now;
        this.bytes += d.length;
      });
      res.on('end', () => lost('end'));
      res.on('error', () => lost('error'));
      res.on('aborted', () => lost('error'));
    });
    req.on('error', () => {
      if (this.req !== req) return;
      this.req = null;
      this.lostAt ||= Date.now();
      if (this.reconnect) setTimeout(() => this.open(), 50);
    });
    this.req = req;
    req.end();
  }

  close(): void {
    this.closed = true;
    this.req?.destroy();
    this.req = null;
  }
}

export const contentIdOf = (n: number) => `c${n.toString(16).padStart(39, '0')}`.slice(0, 40);

/** Waits until every viewer has had a byte in the last second. */
export async function allPlaying(viewers: Viewer[], timeoutMs = 20_000): Promise<void> {
  await until(() => viewers.every((v) => v.playing), `all ${viewers.length} viewers playing`, timeoutMs, 100);
}

/**
 * Polls the simulators every 100 ms and keeps the longest time any channel had more than one
 * engine session. `stop()` ends the polling and answers that time (ms; a duplicate seen in one
 * poll only counts 0, so the figure is exact to one poll interval).
 */
export function watchOverlap(c: Cluster): { stop(): Promise<number> } {
  let worst = 0;
  let polling = true;
  const since = new Map<string, number>();
  const poll = (async () => {
    while (polling) {
      const now = Date.now();
      const dup = new Set(duplicates(await c.sessions()));
      for (const id of dup) if (!since.has(id)) since.set(id, now);
      for (const [id, t0] of since) {
        worst = Math.max(worst, now - t0);
        if (!dup.has(id)) since.delete(id);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    stop: async () => {
      polling = false;
      await poll;
      return worst;
    },
  };
}

/**
 * `perChannel` viewers of each of `ids` through HAProxy, all playing, closed at teardown; and the
 * node that plays the most channels, the one a failure test takes down so that it moves as many
 * channels as it can.
 */
export async function playAndPickVictim(
  t: Test,
  c: Cluster,
  ids: string[],
  perChannel: number,
): Promise<{ viewers: Viewer[]; nodeOf: Map<string, string>; victim: Node }> {
  const viewers = ids.flatMap((id) => Array.from({ length: perChannel }, () => new Viewer(`${c.base}/ace/getstream?id=${id}`).start()));
  t.teardown(() => viewers.forEach((v) => v.close()));
  await allPlaying(viewers);
  const nodeOf = new Map(viewers.map((v, i) => [ids[Math.floor(i / perChannel)]!, v.node]));
  const count = (n: string) => [...nodeOf.values()].filter((x) => x === n).length;
  const victim = c.nodes.reduce((a, b) => (count(b.name) > count(a.name) ? b : a));
  return { viewers, nodeOf, victim };
}
