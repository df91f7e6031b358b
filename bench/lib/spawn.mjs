// Starting and stopping the simulator and the proxy under test. Each child runs in its own
// process group so that the whole group (and anything it forked) is killed; every child is
// killed when the harness exits, errors or is interrupted.

import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import net from 'node:net';
import { createInterface } from 'node:readline';

/** @type {Set<import('node:child_process').ChildProcess>} */
const children = new Set();

function killAllNow() {
  for (const c of children) {
    try {
      process.kill(-(/** @type {number} */ (c.pid)), 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}
process.on('exit', killAllNow);
for (const sig of /** @type {const} */ (['SIGINT', 'SIGTERM', 'SIGHUP'])) {
  process.on(sig, () => {
    process.stderr.write(`\nbench: ${sig}, stopping children\n`);
    killAllNow();
    process.exit(130);
  });
}

/**
 * Split a shell-free command template into argv (whitespace-separated; '…' and "…" group) and
 * substitute {placeholders}.
 * @param {string} template @param {Record<string, string|number>} vars
 */
export function expandTemplate(template, vars) {
  const argv = [];
  const re = /"([^"]*)"|'([^']*)'|(\S+)/g;
  for (let m; (m = re.exec(template));) argv.push(m[1] ?? m[2] ?? m[3]);
  return argv.map((a) => a.replace(/\{(\w+)\}/g, (all, k) => (k in vars ? String(vars[k]) : all)));
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {net.AddressInfo} */ (srv.address());
      srv.close(() => resolve(port));
    });
  });
}

/** @param {number} ms */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Spawn argv in its own process group with stdout/stderr appended to logPath (or piped).
 * @param {string[]} argv @param {{cwd:string, logPath:string, pipeStdout?:boolean}} o
 */
function launch(argv, o) {
  const fd = openSync(o.logPath, 'a');
  const child = spawn(argv[0], argv.slice(1), {
    cwd: o.cwd,
    detached: true,
    stdio: ['ignore', o.pipeStdout ? 'pipe' : fd, fd],
  });
  closeSync(fd);
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** @param {number} port @param {number} timeoutMs @param {import('node:child_process').ChildProcess} child */
async function waitForPort(port, timeoutMs, child) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`exited (${child.exitCode ?? child.signalCode}) before listening`);
    const ok = await new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`not listening on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

/**
 * Start the engine simulator on a random port; it announces {"event":"listening",...,"port":N}.
 * @param {{simPath:string, args:string[], cwd:string, logPath:string}} o
 */
export async function startSim(o) {
  const child = launch([process.execPath, o.simPath, '--port', '0', ...o.args], { ...o, pipeStdout: true });
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('simulator did not announce its port within 10 s')), 10000);
    const rl = createInterface({ input: /** @type {import('node:stream').Readable} */ (child.stdout) });
    rl.on('line', (line) => {
      try {
        const ev = JSON.parse(line);
        if (ev.event === 'listening') {
          clearTimeout(timer);
          resolve(ev.port);
        }
      } catch {
        /* not JSON: ignore */
      }
    });
    child.once('exit', (code) => reject(new Error(`simulator exited (${code}); see ${o.logPath}`)));
  });
  child.stdout?.resume(); // keep draining its later output
  return { child, pid: /** @type {number} */ (child.pid), port: /** @type {number} */ (port) };
}

/**
 * Start the proxy under test from a command template with {port} and {enginePort}.
 * @param {{template:string, enginePort:number, bitrate?:string, cwd:string, logPath:string}} o
 */
export async function startProxy(o) {
  const port = await freePort();
  const argv = expandTemplate(o.template, { port, enginePort: o.enginePort, engineHost: '127.0.0.1', bitrate: o.bitrate ?? '4000000' });
  const child = launch(argv, o);
  try {
    await waitForPort(port, 20000, child);
  } catch (err) {
    await stop(child);
    throw new Error(`proxy "${argv.join(' ')}" ${/** @type {Error} */ (err).message}; see ${o.logPath}`, { cause: err });
  }
  return { child, pid: /** @type {number} */ (child.pid), port, argv };
}

/** SIGTERM the child's process group, SIGKILL after 2 s. @param {import('node:child_process').ChildProcess} child */
export async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  const kill = (/** @type {NodeJS.Signals} */ sig) => {
    try {
      process.kill(-(/** @type {number} */ (child.pid)), sig);
    } catch {
      /* gone */
    }
  };
  kill('SIGTERM');
  const timer = setTimeout(() => kill('SIGKILL'), 2000);
  await exited;
  clearTimeout(timer);
  kill('SIGKILL'); // leftovers in the group
}
