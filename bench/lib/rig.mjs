// One test rig: a fresh simulator + the proxy under test + the load client, and measurement windows
// over them. Everything a rig starts is stopped when its callback returns or throws.

import { createHash } from 'node:crypto';
import http from 'node:http';
import { join } from 'node:path';
import { Histogram } from './histogram.mjs';
import { startProxy, startSim, stop, sleep } from './spawn.mjs';
import { TreeSampler, treeCpuSeconds, treeMemory } from '../proc.mjs';

/**
 * @typedef {import('./load.mjs').LoadClient} LoadClient
 * @typedef {{root:string, simPath:string, template:string, label:string, logDir:string, quick:boolean, load:LoadClient, floor?:boolean, simExtra?:string[]}} Ctx
 *   floor: this run is the floor (bench/baselines/floor.c), not a proxy
 *   simExtra: simulator flags of the run (its chunking), appended to every scenario's own
 * @typedef {Awaited<ReturnType<LoadClient['report']>>} Groups
 * @typedef {{windowS:number, groups:Groups, proxyCpuS:number, simCpuS:number, clientCpuS:number, rssStart:number, rssEnd:number, upstreamBytes:number|null}} Window
 */

/** Content id of bench channel i: 40 hex, stable across runs. @param {number} i */
export const channelId = (i) => createHash('sha1').update(`acemux-bench-channel-${i}`).digest('hex');

export class Rig {
  /**
   * @param {Ctx} ctx
   * @param {{pid:number, port:number}} sim
   * @param {{pid:number, port:number}} proxy
   * @param {LoadClient} load
   */
  constructor(ctx, sim, proxy, load) {
    this.ctx = ctx;
    this.sim = sim;
    this.proxy = proxy;
    this.load = load;
    this.sampler = new TreeSampler(proxy.pid, 250);
  }

  /**
   * Run fn with a fresh simulator and proxy (the load client is shared: reset before and after);
   * stop everything afterwards.
   * @template {object} T
   * @param {Ctx} ctx @param {string} name  used for log file names @param {string[]} simArgs
   * @param {(rig: Rig) => Promise<T>} fn
   */
  static async with(ctx, name, simArgs, fn) {
    const log = (/** @type {string} */ what) => join(ctx.logDir, `${ctx.label}.${name}.${what}.log`);
    const sim = await startSim({ simPath: ctx.simPath, args: [...simArgs, ...(ctx.simExtra ?? [])], cwd: ctx.root, logPath: log('sim') });
    // The floor has no upstream: it needs the scenario's bitrate itself ({bitrate} in templates).
    const bitrate = simArgs[simArgs.indexOf('--bitrate') + 1] ?? '4000000';
    /** @type {Awaited<ReturnType<typeof startProxy>>|undefined} */
    let proxy;
    /** @type {Rig|undefined} */
    let rig;
    try {
      proxy = await startProxy({ template: ctx.template, enginePort: sim.port, bitrate, cwd: ctx.root, logPath: log('proxy') });
      await ctx.load.reset();
      rig = new Rig(ctx, sim, proxy, ctx.load);
      const result = await fn(rig);
      const { exitCode, signalCode } = proxy.child;
      if (exitCode !== null || signalCode !== null)
        Object.assign(result, { proxyDied: `exit ${exitCode ?? signalCode}; see logs/${ctx.label}.${name}.proxy.log` });
      return result;
    } finally {
      rig?.sampler.stop();
      await ctx.load.reset().catch(() => {});
      if (proxy) await stop(proxy.child);
      await stop(sim.child);
    }
  }

  /**
   * Open clients: `perChannel` on each of channels [first, first + channels).
   * @param {string} group @param {number} channels @param {number} perChannel
   * @param {{first?:number, stallAfterMs?:number, closeAfterMs?:number}} [o]
   */
  open(group, channels, perChannel, o = {}) {
    const specs = [];
    for (let k = 0; k < perChannel; k++)
      for (let c = 0; c < channels; c++)
        specs.push({
          group,
          port: this.proxy.port,
          path: `/ace/getstream?id=${channelId((o.first ?? 0) + c)}`,
          stallAfterMs: o.stallAfterMs,
          closeAfterMs: o.closeAfterMs,
        });
    this.load.open(specs);
    return specs.length;
  }

  /** Wait (bounded) until every opened client has its first body byte or failed. @param {number} timeoutMs */
  async settle(timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const groups = await this.load.report();
      // Counted by the clients themselves: live connections without a body byte yet.
      if (Object.values(groups).every((g) => g.waiting === 0)) return true;
      await sleep(100);
    }
    return false;
  }

  memory() {
    return treeMemory(this.proxy.pid);
  }

  /** The simulator's total playback body bytes sent (GET /sim/stats → bytesSent), or null. */
  simBytesSent() {
    return new Promise((resolve) => {
      const req = http.get({ host: '127.0.0.1', port: this.sim.port, path: '/sim/stats', timeout: 2000 }, (res) => {
        let body = '';
        res
          .setEncoding('utf8')
          .on('data', (d) => (body += d))
          .on('end', () => {
            try {
              const n = JSON.parse(body).bytesSent;
              resolve(typeof n === 'number' ? n : null);
            } catch {
              resolve(null);
            }
          });
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(null));
    });
  }

  /** CPU seconds of the proxy's process tree so far. */
  proxyCpu() {
    return treeCpuSeconds(this.proxy.pid);
  }

  clientCpu() {
    return this.load.pids.reduce((s, pid) => s + treeCpuSeconds(pid), 0);
  }

  /** Measure for `seconds`: counters of the load client plus CPU of proxy, simulator and client. @param {number} seconds @returns {Promise<Window>} */
  async measure(seconds, during = async (/** @type {number} */ _ms) => sleep(_ms)) {
    await this.load.mark();
    const t0 = performance.now();
    const cpu0 = [treeCpuSeconds(this.proxy.pid), treeCpuSeconds(this.sim.pid), this.clientCpu()];
    const rssStart = this.memory().rss;
    const sim0 = await this.simBytesSent();
    await during(seconds * 1000);
    const groups = await this.load.report();
    const windowS = (performance.now() - t0) / 1000;
    const sim1 = await this.simBytesSent();
    const cpu1 = [treeCpuSeconds(this.proxy.pid), treeCpuSeconds(this.sim.pid), this.clientCpu()];
    return {
      windowS,
      groups,
      proxyCpuS: cpu1[0] - cpu0[0],
      simCpuS: cpu1[1] - cpu0[1],
      clientCpuS: cpu1[2] - cpu0[2],
      rssStart,
      rssEnd: this.memory().rss,
      upstreamBytes: sim0 === null || sim1 === null ? null : sim1 - sim0,
    };
  }

  /**
   * The standard figures of a window.
   * @param {Window} w
   * @param {{expectedBps?:number|null, perChannel?:number, expectGroups?:string[], fbGroups?:string[], latGroups?:string[], channels:number, bitrateBps:number}} o
   *   expectedBps: body bytes/s the expectGroups should receive in total; without it, and with
   *   perChannel, the simulator's measured output × perChannel (unthrottled runs).
   */
  summarize(w, o) {
    const upstreamBps = w.upstreamBytes === null ? null : w.upstreamBytes / w.windowS;
    if (o.expectedBps === undefined && o.perChannel && upstreamBps !== null) o = { ...o, expectedBps: upstreamBps * o.perChannel };
    const all = Object.keys(w.groups);
    const pick = (/** @type {string[]|undefined} */ names) => (names ?? all).map((n) => w.groups[n]).filter(Boolean);
    const sum = (/** @type {any[]} */ gs, /** @type {string} */ k) => gs.reduce((s, g) => s + g[k], 0);
    const merged = (/** @type {any[]} */ gs, /** @type {'fb'|'lat'} */ k) => gs.reduce((h, g) => h.merge(g[k]), new Histogram());
    const gsAll = pick(all);
    const bytes = sum(gsAll, 'bytes');
    const expectBytes = sum(pick(o.expectGroups), 'bytes');
    const fbGs = pick(o.fbGroups);
    const r3 = (/** @type {number} */ x) => Math.round(x * 1000) / 1000;
    const expectedMBps = o.expectedBps ? o.expectedBps / 1e6 : null;
    return {
      channels: o.channels,
      clients: sum(gsAll, 'conns'),
      bitrateBps: o.bitrateBps,
      windowS: r3(w.windowS),
      upstreamMBps: upstreamBps === null ? null : r3(upstreamBps / 1e6),
      expectedMBps: expectedMBps === null ? null : r3(expectedMBps),
      deliveredMBps: r3(bytes / 1e6 / w.windowS),
      deliveredPct: expectedMBps ? Math.round((expectBytes / 1e6 / w.windowS / expectedMBps) * 1000) / 10 : null,
      proxyCpuS: r3(w.proxyCpuS),
      proxyCpuPct: Math.round((w.proxyCpuS / w.windowS) * 1000) / 10,
      cpuSPerGB: bytes > 0 ? r3(w.proxyCpuS / (bytes / 1e9)) : null,
      peakRssMiB: r3((this.sampler.sample(), this.sampler.peakHwm) / 2 ** 20), // summed VmHWM of the tree
      rssMiB: r3(w.rssEnd / 2 ** 20),
      firstByteMs: merged(fbGs, 'fb').summary(1000),
      firstByteAligned: sum(fbGs, 'fbAligned'),
      firstByteMisaligned: sum(fbGs, 'fbMisaligned'),
      latencyMs: merged(pick(o.latGroups), 'lat').summary(1000),
      resyncs: sum(gsAll, 'resyncs'),
      skippedBytes: sum(gsAll, 'skippedBytes'),
      seqJumps: sum(gsAll, 'seqJumps'),
      lostPackets: sum(gsAll, 'lostPackets'),
      errors: sum(gsAll, 'errors'),
      ended: sum(gsAll, 'ended'),
      errorSample: gsAll.map((g) => g.errorSample).find(Boolean) ?? '',
      minClientMBps: minRate(pick(o.expectGroups), w.windowS),
      clientCpuS: r3(w.clientCpuS),
      clientCpuPct: Math.round((w.clientCpuS / w.windowS) * 1000) / 10,
      simCpuS: r3(w.simCpuS),
      simCpuPct: Math.round((w.simCpuS / w.windowS) * 1000) / 10,
    };
  }
}

/** Lowest per-client rate among clients present for the whole window. @param {any[]} gs @param {number} s */
function minRate(gs, s) {
  const mins = gs.map((g) => g.minConnBytes).filter((x) => x !== null);
  return mins.length ? Math.round((Math.min(...mins) / 1e6 / s) * 1000) / 1000 : null;
}
