/**
 * What can be checked of the container setup without a Docker engine: the Dockerfile's shape and
 * the files it copies, the health check script (run here against a local server), compose.yaml's
 * services and variables, and that the built app runs with production dependencies only.
 */
import t from 'tap';
import { spawn, execFile } from 'node:child_process';
import { existsSync, readFileSync, promises as fsp } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './helpers/acemux';

// npm ci from a cold cache can take a while; this file may outlive .taprc's 120 s.
t.setTimeout(300_000);

const ROOT = join(__dirname, '..');
const read = (f: string) => readFileSync(join(ROOT, f), 'utf8');

interface Instr {
  op: string;
  args: string;
}
interface Stage {
  from: string;
  name: string;
  instrs: Instr[];
}

/** Dockerfile → stages of instructions (comments dropped, continuation lines joined). */
function parseDockerfile(text: string): Stage[] {
  const lines = text.split('\n').filter((l) => !/^\s*#/.test(l));
  const joined = lines.join('\n').replace(/\\\n\s*/g, ' ');
  const stages: Stage[] = [];
  for (const line of joined.split('\n')) {
    const m = /^\s*([A-Za-z]+)\s+(.*?)\s*$/.exec(line);
    if (!m) continue;
    const op = m[1].toUpperCase();
    if (op === 'FROM') {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(m[2])!;
      stages.push({ from: f[1], name: f[2] ?? String(stages.length), instrs: [] });
    } else {
      stages.at(-1)!.instrs.push({ op, args: m[2] });
    }
  }
  return stages;
}
const all = (s: Stage, op: string) => s.instrs.filter((i) => i.op === op).map((i) => i.args);
const one = (s: Stage, op: string) => {
  const a = all(s, op);
  if (a.length !== 1) throw new Error(`${s.name}: expected one ${op}, found ${a.length}`);
  return a[0];
};

/** Is `path` in the build context under a .dockerignore (last matching pattern wins; parents count)? */
function included(ignore: string, path: string): boolean {
  const rules = ignore
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const neg = l.startsWith('!');
      const pat = (neg ? l.slice(1) : l).replace(/^\/+|\/+$/g, '');
      const re = new RegExp('^' + pat.split('**').map((p) => p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')).join('.*') + '$');
      return { neg, re };
    });
  // Docker's rule: a pattern matches a path if it matches the path or one of its parents.
  const parts = path.split('/');
  const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let inc = true;
  for (const r of rules) if (prefixes.some((p) => r.re.test(p))) inc = r.neg;
  return inc;
}

/** Runs a health check's `node -e` script with the given env; resolves its exit code. */
function runCheck(argv: string[], env: Record<string, string>): Promise<number | null> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, argv.slice(1), { env: { ...process.env, ...env }, stdio: 'ignore' });
    p.on('exit', (code) => resolve(code));
  });
}

/** A local server whose /livez answers `status`, for running health checks against. */
async function livez(status: number): Promise<{ port: number; hits: string[]; close(): Promise<void> }> {
  const hits: string[] = [];
  const s = createServer((req, res) => {
    hits.push(req.url!);
    res.writeHead(req.url === '/livez' ? status : 404).end();
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return { port: (s.address() as AddressInfo).port, hits, close: () => new Promise((r) => s.close(() => r())) };
}

t.test('Dockerfile: two stages, non-root runtime, health check, signal, command', async (t) => {
  const stages = parseDockerfile(read('Dockerfile'));
  t.same(stages.map((s) => [s.from, s.name]), [['node:24-slim', 'build'], ['node:24-slim', 'runtime']]);
  const [build, run] = stages;

  const buildRuns = all(build, 'RUN').join('\n');
  t.match(buildRuns, /npm ci\b/, 'build installs everything');
  t.notMatch(buildRuns, /--omit=dev/);
  t.match(buildRuns, /npm run build/);

  t.match(all(run, 'RUN').join('\n'), /npm ci --omit=dev/, 'runtime installs production dependencies only');
  const copies = all(run, 'COPY');
  t.ok(copies.some((c) => /^--from=build \/app\/dist \.\/dist$/.test(c)), 'dist from the build stage');
  t.ok(copies.some((c) => /^assets \.\/assets$/.test(c)), 'assets');
  t.equal(one(run, 'USER'), 'node', 'runs as node');
  const user = run.instrs.findIndex((i) => i.op === 'USER');
  t.ok(run.instrs.slice(user).every((i) => i.op !== 'RUN' || !/chown|npm/.test(i.args)), 'nothing needing root after USER');
  t.equal(one(run, 'EXPOSE'), '8080');
  t.match(one(run, 'ENV'), /(^|\s)ACEMUX_LISTEN=:8080(\s|$)/);
  t.equal(one(run, 'STOPSIGNAL'), 'SIGTERM');
  t.same(JSON.parse(one(run, 'CMD')), ['node', 'dist/main/cli.js']);
  t.same(all(build, 'USER'), [], 'the build stage needs no user switch');

  // The files it names exist (dist after `npm run build`, which `npm test` runs first).
  t.ok(existsSync(join(ROOT, 'dist', 'main', 'cli.js')), 'dist/main/cli.js is built');
  t.ok(existsSync(join(ROOT, 'assets', 'sample.mpegts')), 'assets/sample.mpegts');
  const ignore = read('.dockerignore');
  for (const stage of stages) {
    for (const c of all(stage, 'COPY')) {
      if (c.startsWith('--from=')) {
        const src = c.split(/\s+/)[1].replace(/^\/app\//, '');
        t.ok(existsSync(join(ROOT, src)), `${src} exists (made or copied in the build stage)`);
        continue;
      }
      const parts = c.split(/\s+/);
      for (const src of parts.slice(0, -1)) {
        t.ok(existsSync(join(ROOT, src)), `${stage.name}: COPY ${src} exists`);
        t.ok(included(ignore, src), `${src} is in the build context`);
      }
    }
  }
  for (const f of ['node_modules/undici/package.json', 'dist/main/cli.js', '.git/HEAD', 'test/container.test.ts', '.env'])
    t.notOk(included(ignore, f), `${f} stays out of the build context`);
  t.ok(included(ignore, 'src/main/cli.ts'));

  // The health check: its script really asks /livez, on ACEMUX_LISTEN's port, and fails otherwise.
  const hc = one(run, 'HEALTHCHECK');
  const m = /^((?:--[a-z-]+=\S+\s+)*)CMD\s+(\[.*\])$/.exec(hc);
  t.ok(m, 'HEALTHCHECK [options] CMD [exec form]');
  t.match(m![1], /--interval=\d+s/);
  t.match(m![1], /--timeout=\d+s/);
  const argv = JSON.parse(m![2]) as string[];
  t.same(argv.slice(0, 2), ['node', '-e'], 'the health check runs node (slim images have no curl)');
  t.match(argv[2], /127\.0\.0\.1/);
  t.match(argv[2], /':8080'/, 'port 8080 unless ACEMUX_LISTEN says otherwise');
  const ok = await livez(200);
  const bad = await livez(503);
  t.teardown(() => Promise.all([ok.close(), bad.close()]));
  t.equal(await runCheck(argv, { ACEMUX_LISTEN: `:${ok.port}` }), 0, 'healthy when /livez is 200');
  t.same(ok.hits, ['/livez']);
  t.equal(await runCheck(argv, { ACEMUX_LISTEN: `0.0.0.0:${bad.port}` }), 1, 'unhealthy on 503');
  t.equal(await runCheck(argv, { ACEMUX_LISTEN: `:${await freePort()}` }), 1, 'unhealthy when nothing listens');
});

t.test('compose.yaml: an engine and acemux, wired by ACEXY_HOST/ACEXY_PORT', async (t) => {
  const y = read('compose.yaml');
  // Top-level service blocks: two-space keys under `services:` up to the next top-level key.
  const services = /^services:\n((?:(?: {2}.*)?\n)*)/m.exec(y)![1];
  const blocks = new Map<string, string>();
  for (const part of services.split(/^(?= {2}[a-z][\w-]*:\s*$)/m)) {
    const name = /^ {2}([a-z][\w-]*):/.exec(part)?.[1];
    if (name) blocks.set(name, part);
  }
  t.same([...blocks.keys()], ['acestream', 'acemux'], 'two services');
  const engine = blocks.get('acestream')!;
  const app = blocks.get('acemux')!;
  t.match(engine, /^ {4}image: \S*acestream\S*$/m, 'an engine image');
  t.match(engine, /ALLOW_REMOTE_ACCESS: "yes"/, 'the engine listens beyond its loopback');
  t.notMatch(engine, /^ {4}ports:/m, 'the engine is not published');
  t.match(engine, /6878/);
  t.match(app, /^ {4}build: \.$/m, 'acemux is built from here');
  t.match(app, /^ {6}ACEXY_HOST: acestream$/m, 'ACEXY_HOST names the engine service');
  t.match(app, /^ {6}ACEXY_PORT: "6878"$/m);
  t.match(app, /^ {4}depends_on:\n(?: {6}#.*\n)* {6}acestream:/m, 'acemux depends on the engine');
  t.match(app, /^ {4}ports:\n {6}- "8080:8080"$/m, 'port 8080 published');
  t.match(app, /^ {4}restart: unless-stopped$/m);
  t.match(app, /^ {4}stop_grace_period: (1[1-9]|[2-9]\d)s$/m, 'grace beyond acemux\'s own 10 s shutdown bound');
  const hc = /^ {6}test: (\[.*\])$/m.exec(app);
  t.ok(hc, 'acemux has a health check');
  const argv = JSON.parse(hc![1]) as string[];
  t.same(argv.slice(0, 2), ['CMD', 'node']);
  t.match(argv[3], /http:\/\/127\.0\.0\.1:8080\/livez/);
  const ehc = /^ {6}test: (\[.*\])$/m.exec(engine);
  t.ok(ehc, 'the engine has a health check');
  t.match(ehc![1], /127\.0\.0\.1:6878/);
  // Mounted state is where the image prepares it.
  t.match(app, /:\/var\/lib\/acemux$/m);
  t.match(read('Dockerfile'), /chown node:node \/var\/lib\/acemux/);
});

t.test('the built app runs with production dependencies only', { timeout: 240_000 }, async (t) => {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'acemux-prod-'));
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }));
  for (const f of ['package.json', 'package-lock.json']) await fsp.copyFile(join(ROOT, f), join(dir, f));
  await fsp.cp(join(ROOT, 'dist'), join(dir, 'dist'), { recursive: true });
  await fsp.cp(join(ROOT, 'assets'), join(dir, 'assets'), { recursive: true });
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  await promisify(execFile)(npm, ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: dir, timeout: 180_000 });
  t.notOk(existsSync(join(dir, 'node_modules', 'typescript')), 'no dev dependencies installed');
  t.notOk(existsSync(join(dir, 'node_modules', 'tap')));

  const port = await freePort();
  const proc = spawn(process.execPath, ['dist/main/cli.js', '--listen', `127.0.0.1:${port}`, '--engine', 'http://127.0.0.1:9'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: string[] = [];
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  t.teardown(() => {
    if (proc.exitCode === null) proc.kill('SIGKILL');
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not listening after 15 s:\n${out.join('')}`)), 15_000);
    proc.stdout!.on('data', (d: Buffer) => {
      out.push(d.toString());
      if (out.join('').includes('acemux listening')) {
        clearTimeout(timer);
        resolve();
      }
    });
    proc.stderr!.on('data', (d: Buffer) => out.push(d.toString()));
    void exited.then((code) => reject(new Error(`exited with ${code}:\n${out.join('')}`)));
  });

  const res = await fetch(`http://127.0.0.1:${port}/ace/status`);
  t.equal(res.status, 200);
  // acexy's answer; acemux may add fields of its own beside it.
  t.match(await res.json(), { streams: 0 });

  const t0 = Date.now();
  proc.kill('SIGTERM');
  const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 10_000))]);
  t.equal(code, 0, `exit 0 on SIGTERM (${Date.now() - t0} ms)`);
});
