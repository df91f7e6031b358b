// The benchmark scenarios. Each starts its own simulator + proxy (Rig.with), warms up, measures,
// and returns the standard figures (Rig#summarize) plus scenario-specific `extra`.
// Durations: [quick, full] seconds.

import { Rig } from './lib/rig.mjs';
import { sleep } from './lib/spawn.mjs';

/** @typedef {import('./lib/rig.mjs').Ctx} Ctx */

const MBIT4 = 4_000_000;
/** Simulator flags shared by all scenarios: synthetic stamped packets, no cold-start delay, no initial burst. */
const simArgs = (/** @type {number} */ bitrate) => [
  '--synthetic',
  '--bitrate',
  String(bitrate),
  '--prebuffer-ms',
  '0',
  '--burst-bytes',
  '0',
];
/** @param {Ctx} ctx @param {number} quick @param {number} full */
const T = (ctx, quick, full) => (ctx.quick ? quick : full);

/**
 * Plain fan-out: `channels` × `perChannel` clients reading normally.
 * @param {Ctx} ctx @param {string} name @param {number} channels @param {number} perChannel @param {number} bitrate
 */
async function fanout(ctx, name, channels, perChannel, bitrate) {
  return Rig.with(ctx, name, simArgs(bitrate), async (rig) => {
    // The whole run counts from just before the clients open: the streams' starts, the warm-up
    // and the window (the proxy's own boot, idle, is not a stream's cost).
    const cpu0 = rig.proxyCpu();
    const t0 = performance.now();
    rig.open('steady', channels, perChannel);
    await rig.settle(10000);
    await sleep(T(ctx, 1, 3) * 1000);
    const w = await rig.measure(T(ctx, 3, 20));
    const cpuS = rig.proxyCpu() - cpu0;
    const totalBytes = Object.values(w.groups).reduce((n, g) => n + g.totalBytes, 0);
    // Unthrottled: expect every byte the simulator sent during the window, once per client.
    const expectedBps = bitrate ? (channels * perChannel * bitrate) / 8 : undefined;
    const r3 = (/** @type {number} */ x) => Math.round(x * 1000) / 1000;
    return {
      ...rig.summarize(w, { channels, bitrateBps: bitrate, expectedBps, perChannel }),
      wholeRun: {
        seconds: r3((performance.now() - t0) / 1000),
        proxyCpuS: r3(cpuS),
        deliveredGB: r3(totalBytes / 1e9),
        cpuSPerGB: totalBytes > 0 ? r3(cpuS / (totalBytes / 1e9)) : null,
      },
    };
  });
}

/** @type {Record<string, {description: string, run: (ctx: Ctx) => Promise<Record<string, any>>}>} */
export const scenarios = {
  'fanout-20x10': {
    description: '20 channels × 10 clients at 4 Mb/s (200 clients, 100 MB/s expected)',
    run: (ctx) => fanout(ctx, 'fanout-20x10', 20, 10, MBIT4),
  },

  'fanout-1x50-unthrottled': {
    description: '1 channel × 50 clients, simulator unthrottled (as fast as the proxy reads)',
    run: (ctx) => fanout(ctx, 'fanout-1x50-unthrottled', 1, 50, 0),
  },

  joins: {
    description: '1 channel at 4 Mb/s, 5 steady clients; a client joins every 100–250 ms, reads 2 s, leaves',
    run: (ctx) =>
      Rig.with(ctx, 'joins', simArgs(MBIT4), async (rig) => {
        rig.open('steady', 1, 5);
        await rig.settle(10000);
        await sleep(T(ctx, 1, 3) * 1000);
        const readMs = 2000;
        let joiners = 0;
        const w = await rig.measure(T(ctx, 5.5, 20), async (ms) => {
          const stopJoining = Date.now() + ms - readMs - 200; // every joiner is gone before the window ends
          while (Date.now() < stopJoining) {
            rig.open('joiner', 1, 1, { closeAfterMs: readMs });
            joiners++;
            await sleep(100 + Math.random() * 150);
          }
          await sleep(Math.max(0, stopJoining + readMs + 200 - Date.now()));
        });
        const s = rig.summarize(w, {
          channels: 1,
          bitrateBps: MBIT4,
          expectedBps: (5 * MBIT4) / 8,
          expectGroups: ['steady'],
          fbGroups: ['joiner'],
          latGroups: ['steady'],
        });
        const j = w.groups.joiner;
        const jl = j ? j.lat.summary(1000) : null;
        return {
          ...s,
          extra: {
            joiners,
            joinersWithData: j?.firstBytes ?? 0,
            joinerErrors: j?.errors ?? 0,
            joinerLatencyMs: jl,
            joinerMBps: j ? Math.round((j.bytes / 1e6 / w.windowS) * 1000) / 1000 : 0,
          },
        };
      }),
  },

  'stalled-client': {
    description: '1 channel × 10 clients at 8 Mb/s, one stops reading after 2 s; the other 9 measured, vs. a run without it',
    run: async (ctx) => {
      const bitrate = 8_000_000;
      const expectedBps = (9 * bitrate) / 8;
      const opts = { channels: 1, bitrateBps: bitrate, expectedBps, expectGroups: ['steady'], fbGroups: ['steady'], latGroups: ['steady'] };
      const stalled = await Rig.with(ctx, 'stalled-client', simArgs(bitrate), async (rig) => {
        rig.open('steady', 1, 9);
        rig.open('stalled', 1, 1, { stallAfterMs: 2000 });
        await rig.settle(10000);
        await sleep(2500); // the stall starts at 2 s; measure from 2.5 s to the end (10 s quick, 40 s full)
        const w = await rig.measure(T(ctx, 7.5, 37.5));
        return {
          ...rig.summarize(w, opts),
          rssGrowthMiB: Math.round(((w.rssEnd - w.rssStart) / 2 ** 20) * 10) / 10,
          stalledConnected: w.groups.stalled?.conns ?? 0,
        };
      });
      const control = await Rig.with(ctx, 'stalled-client-control', simArgs(bitrate), async (rig) => {
        rig.open('steady', 1, 9);
        await rig.settle(10000);
        await sleep(T(ctx, 0.5, 3) * 1000);
        return rig.summarize(await rig.measure(T(ctx, 3, 20)), opts);
      });
      const { rssGrowthMiB, stalledConnected, ...main } = stalled;
      const pick = (/** @type {any} */ s) => ({
        deliveredPct: s.deliveredPct,
        latencyMs: s.latencyMs,
        minClientMBps: s.minClientMBps,
        seqJumps: s.seqJumps,
        cpuSPerGB: s.cpuSPerGB,
        peakRssMiB: s.peakRssMiB,
      });
      return {
        ...main,
        extra: { withStall: pick(stalled), withoutStall: pick(control), rssGrowthMiB, stalledClientStillConnected: stalledConnected > 0 },
      };
    },
  },

  ramp: {
    description: '10 channels at 4 Mb/s; clients grow ×1.5 per step (quick: ×2) until latency p99 > 100 ms or delivery < 95 %',
    run: (ctx) =>
      Rig.with(ctx, 'ramp', simArgs(MBIT4), async (rig) => {
        const channels = 10;
        const deadline = Date.now() + T(ctx, 12, 150) * 1000;
        const cap = T(ctx, 1600, 3000);
        const growth = T(ctx, 2, 1.5);
        /** @type {Record<string, any>[]} */
        const steps = [];
        let clients = 0,
          target = T(ctx, 50, 20),
          maxPassed = 0,
          stepMs = 0,
          stopReason = 'time budget';
        /** @type {Record<string, any>|null} */
        let lastPass = null,
          last = null;
        while (Date.now() + stepMs * 1.25 < deadline) {
          // stop when the next step would not fit
          const stepStart = Date.now();
          const add = Math.ceil((target - clients) / channels);
          rig.open('steady', channels, add, { first: 0 });
          clients += add * channels;
          const settled = await rig.settle(5000);
          await sleep(T(ctx, 500, 2000));
          const s = rig.summarize(await rig.measure(T(ctx, 1.5, 5)), { channels, bitrateBps: MBIT4, expectedBps: (clients * MBIT4) / 8 });
          const pass = settled && s.errors === 0 && (s.latencyMs.p99 ?? Infinity) <= 100 && (s.deliveredPct ?? 0) >= 95;
          steps.push({
            clients,
            pass,
            deliveredPct: s.deliveredPct,
            latencyMs: s.latencyMs,
            cpuSPerGB: s.cpuSPerGB,
            proxyCpuPct: s.proxyCpuPct,
            clientCpuPct: s.clientCpuPct,
            rssMiB: s.rssMiB,
          });
          last = s;
          stepMs = Date.now() - stepStart;
          if (!pass) {
            stopReason = !settled
              ? 'clients without first byte'
              : s.errors
                ? 'client errors'
                : (s.latencyMs.p99 ?? Infinity) > 100
                  ? 'latency p99 > 100 ms'
                  : 'delivered < 95 %';
            break;
          }
          lastPass = s;
          maxPassed = clients;
          if (clients >= cap) {
            stopReason = 'client cap';
            break;
          }
          target = Math.round(clients * growth);
        }
        return { ...(lastPass ?? last), extra: { maxClientsPassed: maxPassed, stopReason, steps } };
      }),
  },

  memory: {
    description: 'proxy RSS idle, with 1 stream, 1→400 clients on it (least-squares slope per client), then 10 streams',
    run: (ctx) =>
      Rig.with(ctx, 'memory', simArgs(MBIT4), async (rig) => {
        const pause = T(ctx, 500, 2000);
        const mib = () => Math.round((rig.memory().rss / 2 ** 20) * 10) / 10;
        await sleep(pause);
        const idleMiB = mib();
        rig.open('steady', 1, 1);
        await rig.settle(10000);
        await sleep(pause);
        const oneStreamMiB = mib();
        const points = [{ clients: 1, rssMiB: oneStreamMiB }];
        let clients = 1;
        for (const n of ctx.quick ? [100, 200] : [100, 200, 300, 400]) {
          rig.open('steady', 1, n - clients);
          clients = n;
          await rig.settle(10000);
          await sleep(pause);
          points.push({ clients, rssMiB: mib() });
        }
        const w = await rig.measure(T(ctx, 1.5, 5));
        const atMost = mib();
        rig.open('steady', 9, 1, { first: 1 });
        await rig.settle(10000);
        await sleep(pause);
        const tenStreamsMiB = mib();
        const s = rig.summarize(w, { channels: 1, bitrateBps: MBIT4, expectedBps: (clients * MBIT4) / 8 });
        return {
          ...s,
          extra: {
            idleMiB,
            oneStreamMiB,
            points,
            // One RSS reading moves by a few MiB as V8 resizes its young generation; a slope over
            // several client counts is far steadier than a difference of two readings.
            perClientKiB: Math.round(slope(points.map((p) => [p.clients, p.rssMiB * 1024]))),
            tenStreamsMiB,
            perStreamKiB: Math.round(((tenStreamsMiB - atMost) * 1024) / 9),
          },
        };
      }),
  },
  churn: {
    description:
      '500 stream starts and stops at 4 Mb/s (10 new channels every 0.5 s, each read 1.5 s, grace 200 ms): RSS over time and CPU per start, pooled rings vs. --ring-pool 0 (every ring cold); RSS per running stream',
    run: async (ctx) => {
      const starts = T(ctx, 100, 500);
      const pooled = await withEnv({ ACEMUX_GRACE: '200ms' }, () => churn(ctx, 'churn', starts, true));
      const { extra, ...row } = pooled;
      if (ctx.floor) return { ...row, extra }; // it has no rings: the second run would be the same
      const cold = await withEnv({ ACEMUX_GRACE: '200ms', ACEMUX_RING_POOL: '0' }, () => churn(ctx, 'churn-cold-rings', starts, false));
      return { ...row, extra: { ...extra, coldRings: cold.extra } };
    },
  },

  // The cluster (issue 14): the same clients through HAProxy in front of 1, 2 and 3 acemux nodes
  // (bench/cluster.mjs, the shipped deploy/haproxy/haproxy.cfg). The "proxy" is the whole
  // cluster, so CPU s/GB counts every node and HAProxy. Always acemux (ignores --proxy); not in `all`.
  'cluster-direct': {
    description: "the cluster scenarios' clients on one acemux node with no HAProxy (the baseline for the extra hop)",
    notInAll: true,
    run: (/** @type {Ctx} */ ctx) =>
      fanout(
        {
          ...ctx,
          template: ownTemplate(
            ctx,
            'node dist/main/cli.js --listen 127.0.0.1:{port} --engine http://127.0.0.1:{enginePort} --state-dir "" --log-level warn',
          ),
        },
        'cluster-direct',
        10,
        5,
        MBIT4,
      ),
  },
  ...Object.fromEntries(
    [1, 2, 3].map((n) => [
      `cluster-${n}`,
      {
        description: `10 channels × 5 clients at 4 Mb/s through HAProxy and ${n} acemux node${n > 1 ? 's' : ''} (25 MB/s expected)`,
        notInAll: true,
        run: (/** @type {Ctx} */ ctx) =>
          fanout(
            { ...ctx, template: ownTemplate(ctx, `node bench/cluster.mjs --nodes ${n} --port {port} --engine-port {enginePort}`) },
            `cluster-${n}`,
            10,
            5,
            MBIT4,
          ),
      },
    ]),
  ),
};

/** A scenario's own proxy command, except for the floor, which serves every scenario's clients itself. @param {Ctx} ctx @param {string} t */
const ownTemplate = (ctx, t) => (ctx.floor ? ctx.template : t);

/** Least-squares slope of y over x. @param {number[][]} xy */
function slope(xy) {
  const n = xy.length;
  const mx = xy.reduce((a, [x]) => a + x, 0) / n;
  const my = xy.reduce((a, [, y]) => a + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of xy) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

/**
 * Env vars for the proxy started inside fn (acemux reads ACEMUX_*; other proxies ignore them).
 * @template T @param {Record<string, string>} env @param {() => Promise<T>} fn @returns {Promise<T>}
 */
async function withEnv(env, fn) {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved))
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
  }
}

/**
 * Streams start and stop all the time: every 0.5 s, 10 clients open 10 channels never used
 * before, read 1.5 s and leave, so ~30 streams run and ~20 start per second. The CPU of the whole
 * window divided by the starts is the cost of a start plus ~1.5 s of streaming it brings; the
 * difference between pooled and cold rings is the cost of a cold ring.
 * @param {Ctx} ctx @param {string} name @param {number} starts @param {boolean} perStream  also measure RSS per running stream
 */
function churn(ctx, name, starts, perStream) {
  return Rig.with(ctx, name, simArgs(MBIT4), async (rig) => {
    const mib = () => Math.round((rig.memory().rss / 2 ** 20) * 10) / 10;
    await sleep(500);
    const idleMiB = mib();
    /** @type {Record<string, number>} */
    const running = {};
    if (perStream) {
      // 10 streams for longer than one lap of the ring at 4 Mb/s (6.2 s), so every ring page is resident.
      rig.open('running', 10, 1, { first: 100_000 });
      await rig.settle(10000);
      await sleep(T(ctx, 8, 10) * 1000);
      running.tenStreamsMiB = mib();
      running.perRunningStreamMiB = Math.round(((running.tenStreamsMiB - idleMiB) / 10) * 100) / 100;
      rig.load.close('running');
      await sleep(1500); // grace and stops: their rings go to the pool (or, cold, to the GC)
    }
    /** @type {Array<{s:number, starts:number, rssMiB:number}>} */
    const curve = [];
    const t0 = Date.now();
    let opened = 0;
    const windowS = starts / 20 + 4;
    const w = await rig.measure(windowS, async () => {
      while (opened < starts) {
        opened += rig.open('churn', 10, 1, { first: 1000 + opened, closeAfterMs: 1500 });
        if (opened % 50 === 0) curve.push({ s: Math.round((Date.now() - t0) / 100) / 10, starts: opened, rssMiB: mib() });
        await sleep(500);
      }
      await sleep(Math.max(0, t0 + windowS * 1000 - Date.now() - 50)); // the last ones close, grace passes, they stop
    });
    curve.push({ s: Math.round((Date.now() - t0) / 100) / 10, starts: opened, rssMiB: mib() });
    const g = w.groups.churn;
    const s = rig.summarize(w, { channels: starts, bitrateBps: MBIT4, expectGroups: ['churn'], fbGroups: ['churn'], latGroups: ['churn'] });
    return {
      ...s,
      extra: {
        starts: opened,
        startsWithData: g?.firstBytes ?? 0,
        errors: g?.errors ?? 0,
        cpuMsPerStart: Math.round((w.proxyCpuS * 1000 * 100) / opened) / 100,
        idleMiB,
        ...running,
        rssCurve: curve,
        rssGrowthMiB: Math.round((curve[curve.length - 1].rssMiB - curve[0].rssMiB) * 10) / 10,
      },
    };
  });
}
