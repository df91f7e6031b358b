/** Runs the real acemux (dist/main/cli.js) as a child process on an ephemeral port. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Acemux {
  port: number;
  origin: string;
  proc: ChildProcess;
  logs: string[];
  stop(): Promise<number | null>;
}

/** ACEMUX_TEST_CLI runs the same tests against another build (e.g. one from before a change). */
export const CLI = process.env.ACEMUX_TEST_CLI ?? join(__dirname, '..', '..', 'dist', 'main', 'cli.js');

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

/**
 * Starts acemux against `engine` with extra flags on a port the kernel picks (no window between
 * finding a free port and binding it); resolves once it logs that it listens, and where. `cli` is
 * the script node runs: dist/main/cli.js, or a test's stand-in that calls its `main`.
 */
export async function startAcemux(
  engine: string | string[],
  flags: string[] = [],
  env: Record<string, string> = {},
  cli = CLI,
): Promise<Acemux> {
  const engines = Array.isArray(engine) ? engine : [engine];
  // Each run gets its own journal directory unless the test names one.
  const state = flags.includes('--state-dir') ? [] : ['--state-dir', mkdtempSync(join(tmpdir(), 'acemux-state-'))];
  return launch(['--listen', '127.0.0.1:0', ...engines.flatMap((e) => ['--engine', e]), ...state, ...flags], env, undefined, cli);
}

/** Starts the CLI with exactly these arguments (and env over the test's own), e.g. acexy's; `cwd` holds a default state dir. */
export async function launch(argv: string[], env: Record<string, string> = {}, cwd?: string, cli = CLI): Promise<Acemux> {
  const proc = spawn(process.execPath, [cli, ...argv], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], cwd });
  const logs: string[] = [];
  let buf = '';
  const ready = new Promise<number>((resolve, reject) => {
    proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        logs.push(line);
        if (line.includes('acemux listening')) resolve(Number(/"listen":"[^"]*:(\d+)"/.exec(line)?.[1]));
      }
    });
    proc.stderr!.on('data', (d: Buffer) => logs.push(d.toString()));
    proc.once('exit', (code) => reject(new Error(`acemux exited with ${code}: ${logs.join('\n')}`)));
  });
  const port = await ready;
  const stop = async () => {
    if (proc.exitCode !== null) return proc.exitCode;
    proc.kill('SIGTERM');
    return new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  };
  return { port, origin: `http://127.0.0.1:${port}`, proc, logs, stop };
}

/** Runs the CLI to completion (for --help and bad-config checks). */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}
