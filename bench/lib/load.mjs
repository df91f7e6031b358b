// Parent side of the load client: forks N client.mjs workers, spreads connections over them,
// and merges their reports into one object per connection group.

import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Histogram } from './histogram.mjs';

const WORKER = fileURLToPath(new URL('../client.mjs', import.meta.url));

/**
 * @typedef {{group:string, port:number, path:string, stallAfterMs?:number, closeAfterMs?:number}} ConnSpec
 * @typedef {ReturnType<typeof mergeGroups>[string]} GroupReport
 */

export class LoadClient {
  /** @param {import('node:child_process').ChildProcess[]} workers */
  constructor(workers) {
    this.workers = workers;
    this.assigned = workers.map(() => 0);
    this.seq = 0;
    /** @type {Map<number, (msg:any) => void>} */
    this.waiting = new Map();
    for (const w of workers) {
      w.on('message', (/** @type {any} */ msg) => {
        const cb = this.waiting.get(msg.id);
        if (cb) cb(msg);
      });
    }
  }

  /** @param {number} n  number of worker processes */
  static async start(n) {
    const workers = await Promise.all(
      Array.from({ length: n }, async () => {
        const w = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
        await new Promise((resolve, reject) => {
          w.once('message', resolve);
          w.once('error', reject);
          w.once('exit', (code) => reject(new Error(`load worker exited (${code})`)));
        });
        w.removeAllListeners('exit');
        w.removeAllListeners('error');
        return w;
      }),
    );
    return new LoadClient(workers);
  }

  get pids() {
    return this.workers.map((w) => /** @type {number} */ (w.pid));
  }

  /** Open connections, each on the worker with the fewest so far. @param {ConnSpec[]} specs */
  open(specs) {
    /** @type {ConnSpec[][]} */
    const batches = this.workers.map(() => []);
    for (const spec of specs) {
      let k = 0;
      for (let j = 1; j < this.workers.length; j++) if (this.assigned[j] < this.assigned[k]) k = j;
      this.assigned[k]++;
      batches[k].push(spec);
    }
    batches.forEach((conns, k) => conns.length && this.workers[k].send({ t: 'open', conns }));
  }

  /** @param {string} group */
  close(group) {
    for (const w of this.workers) w.send({ t: 'close', group });
  }

  /** @param {string} t @returns {Promise<any[]>} */
  request(t) {
    return Promise.all(
      this.workers.map(
        (w) =>
          new Promise((resolve, reject) => {
            const id = ++this.seq;
            const timer = setTimeout(() => reject(new Error(`load worker did not answer ${t}`)), 10000);
            this.waiting.set(id, (msg) => {
              clearTimeout(timer);
              this.waiting.delete(id);
              resolve(msg);
            });
            w.send({ t, id });
          }),
      ),
    );
  }

  /** Close every connection and forget all counters (between scenarios). */
  async reset() {
    await this.request('reset');
    this.assigned.fill(0);
  }

  /** Start a measurement window in every worker. */
  async mark() {
    await this.request('mark');
  }

  /** Merged per-group counters since the last mark (lifetime counters since start). */
  async report() {
    const msgs = await this.request('report');
    return mergeGroups(msgs.map((m) => m.groups));
  }

  async stop() {
    await Promise.all(
      this.workers.map(
        (w) =>
          new Promise((resolve) => {
            if (w.exitCode !== null || w.signalCode !== null) return resolve(undefined);
            const timer = setTimeout(() => w.kill('SIGKILL'), 2000);
            w.once('exit', () => {
              clearTimeout(timer);
              resolve(undefined);
            });
            try {
              w.send({ t: 'exit' });
            } catch {
              w.kill('SIGKILL');
            }
          }),
      ),
    );
  }
}

/** @param {Record<string, any>[]} parts */
function mergeGroups(parts) {
  /** @type {Record<string, any>} */
  const out = {};
  for (const part of parts) {
    for (const [name, g] of Object.entries(part)) {
      const fb = Histogram.fromJSON(g.fb);
      const lat = Histogram.fromJSON(g.lat);
      const o = out[name];
      if (!o) {
        out[name] = { ...g, fb, lat };
        continue;
      }
      for (const [k, v] of Object.entries(g)) if (typeof v === 'number' && k !== 'minConnBytes') o[k] += v;
      o.fb.merge(fb);
      o.lat.merge(lat);
      o.errorSample ||= g.errorSample;
      if (g.minConnBytes !== null) o.minConnBytes = o.minConnBytes === null ? g.minConnBytes : Math.min(o.minConnBytes, g.minConnBytes);
    }
  }
  return /** @type {Record<string, {bytes:number, totalBytes:number, seqJumps:number, lostPackets:number, resyncs:number, skippedBytes:number, opened:number, closed:number, errors:number, errorSample:string, ended:number, firstBytes:number, fbAligned:number, fbMisaligned:number, conns:number, waiting:number, minConnBytes:number|null, fb:Histogram, lat:Histogram}>} */ (
    out
  );
}
