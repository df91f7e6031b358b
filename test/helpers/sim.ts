// Starts the engine simulator as a real child process (`node dist/sim/cli.js`, so run
// `npx tsc -p tsconfig.json` first) and drives its /sim/ control API.
//
//   const sim = await startSim(['--bitrate', '0']);
//   t.teardown(() => sim.stop());
//   await sim.setFaults({ global: { stallAfterBytes: 50000 } });

import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { request } from 'undici';
import type { FaultSet } from '../../src/sim/faults';
import type { SimStats } from '../../src/sim/engine-sim';

export type { FaultSet, SimStats };

export interface SimHandle {
  port: number;
  /** http://127.0.0.1:PORT */
  origin: string;
  proc: ChildProcess;
  stats(): Promise<SimStats>;
  /** Merges into the current faults (POST /sim/faults). */
  setFaults(f: FaultSet): Promise<void>;
  /** DELETE /sim/faults. */
  resetFaults(): Promise<void>;
  /** Simulated engine restart (POST /sim/restart): playback sockets cut, sessions forgotten. */
  restart(): Promise<void>;
  /** SIGTERM and wait for exit (SIGKILL after 3 s). Safe to call twice. */
  stop(): Promise<void>;
}

export const SIM_CLI = resolve(__dirname, '../../dist/sim/cli.js');

// A test that crashes must not leave simulators behind.
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

export async function startSim(args: string[] = [], startTimeoutMs = 10_000): Promise<SimHandle> {
  const proc = spawn(process.execPath, [SIM_CLI, '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  live.add(proc);
  const exited = new Promise<void>((ok) => proc.once('exit', () => ok()));
  void exited.then(() => live.delete(proc));

  const port = await new Promise<number>((ok, fail) => {
    let out = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      fail(new Error(`simulator did not start in ${startTimeoutMs} ms: ${stderr}`));
    }, startTimeoutMs);
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      try {
        const msg = JSON.parse(out.slice(0, nl)) as { event?: string; port?: number };
        if (msg.event !== 'listening' || typeof msg.port !== 'number') throw new Error(`unexpected line ${out}`);
        ok(msg.port);
      } catch (err) {
        fail(err as Error);
      }
    });
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      fail(new Error(`simulator exited (${code ?? signal}) before listening: ${stderr}`));
    });
  });

  const origin = `http://127.0.0.1:${port}`;
  const call = async (method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<unknown> => {
    const res = await request(origin + path, {
      method,
      body: body === undefined ? undefined : JSON.stringify(body),
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
    });
    const json = (await res.body.json()) as { error?: string };
    if (res.statusCode !== 200) throw new Error(`${method} ${path}: ${res.statusCode} ${json.error ?? ''}`);
    return json;
  };

  return {
    port,
    origin,
    proc,
    stats: async () => (await call('GET', '/sim/stats')) as SimStats,
    setFaults: async (f) => void (await call('POST', '/sim/faults', f)),
    resetFaults: async () => void (await call('DELETE', '/sim/faults')),
    restart: async () => void (await call('POST', '/sim/restart')),
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(t);
      }
    },
  };
}
