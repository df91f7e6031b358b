#!/usr/bin/env node
/**
 * `node dist/main/healthcheck.js`: the container health check. Asks GET /livez on the address
 * acemux listens on; exit 0 healthy, 1 not.
 *
 * The container engine starts a health check as a process of its own: it shares the container's
 * environment but not the arguments given to `docker run image --listen …`. So the address is
 * found the way acemux finds it — loadConfig over acemux's own argv and environment, read from
 * /proc: acemux is PID 1 in the image (exec-form ENTRYPOINT), or PID 1's child under an init
 * (`docker run --init`). Run by hand with arguments, it uses its own argv and environment instead;
 * with neither, the environment alone (the defaults, as acemux would have them).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { loadConfig } from './config';

interface Target {
  argv: string[];
  env: Record<string, string | undefined>;
}

const nulSplit = (buf: Buffer) =>
  buf
    .toString('utf8')
    .split('\0')
    .filter((s, i, a) => s !== '' || i < a.length - 1);

/** acemux's own arguments and environment, from /proc; null when it is neither PID 1 nor its child. */
export function acemuxProcess(proc = '/proc'): Target | null {
  const read = (pid: string, file: string) => {
    try {
      return readFileSync(`${proc}/${pid}/${file}`);
    } catch {
      return null; // gone, or not ours to read
    }
  };
  const ofPid = (pid: string): Target | null => {
    const cmdline = read(pid, 'cmdline');
    if (!cmdline) return null;
    const argv = nulSplit(cmdline);
    // node [node options] …/main/cli.js [acemux options]; an init's own command line (which
    // names the same) is not it: its child is.
    if (!/^node/.test(basename(argv[0] ?? ''))) return null;
    const script = argv.findIndex((a, i) => i > 0 && basename(a) === 'cli.js' && basename(dirname(a)) === 'main');
    if (script < 0) return null;
    const environ = read(pid, 'environ');
    // Unreadable environ (another user): the container's environment is the same one.
    const env = environ
      ? Object.fromEntries(nulSplit(environ).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]))
      : process.env;
    return { argv: argv.slice(script + 1), env };
  };
  const first = ofPid('1');
  if (first) return first;
  let pids: string[];
  try {
    pids = readdirSync(proc).filter((p) => /^\d+$/.test(p) && p !== '1');
  } catch {
    return null;
  }
  for (const pid of pids) {
    // stat: "pid (comm) state ppid …"; comm may hold spaces and parentheses, so cut at the last ')'.
    const stat = read(pid, 'stat')?.toString() ?? '';
    if (stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1] !== '1') continue;
    const t = ofPid(pid);
    if (t) return t;
  }
  return null;
}

/** The URL of /livez for a listen address: the wildcard addresses are asked on loopback. */
export function livezUrl(host: string, port: number): string {
  const h = host === '' || host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${h.includes(':') ? `[${h}]` : h}:${port}/livez`;
}

async function main(): Promise<void> {
  const own = { argv: process.argv.slice(2), env: process.env };
  const target = own.argv.length > 0 ? own : (acemuxProcess() ?? own);
  let url: string;
  try {
    const cfg = loadConfig(target.argv, target.env);
    url = livezUrl(cfg.listenHost, cfg.listenPort);
  } catch (e) {
    process.stderr.write(`healthcheck: ${(e as Error).message}\n`);
    process.exit(1);
  }
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(4000) });
    process.stdout.write(`${url}: ${res.status}\n`);
    process.exit(res.ok ? 0 : 1);
  } catch (e) {
    process.stdout.write(`${url}: ${(e as Error).message}\n`);
    process.exit(1);
  }
}

if (require.main === module) void main();
