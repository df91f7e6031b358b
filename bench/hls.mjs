// HLS vs MPEG-TS: the same channels and viewer count, one run over /ace/getstream (one long
// response per viewer) and one over HLS (viewers poll the playlist and fetch each new segment once,
// the way hls.js does: start three segments from the live edge, reload about every target
// duration). Reports acemux's CPU seconds per delivered GB for both, and the time a new viewer of a
// live channel needs to its first whole segment (playlist + segment), and that of a cold channel.
//
//   npm run build && node bench/hls.mjs [--quick] [--channels 4] [--viewers 25] [--seconds 20]
//
// The simulator plays the sample file (real H.264/AAC with keyframes and PCRs, so segments are
// cut as on a broadcast stream) at its own rate unless --bitrate says otherwise. The floor
// (bench/baselines/floor.c) then serves the same viewers at the rate they received, so both CPU
// figures are also given as a multiple of it (--no-floor leaves it out).

import { request } from 'node:http';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { mkdirSync } from 'node:fs';
import { startSim, startProxy, stop, sleep } from './lib/spawn.mjs';
import { buildFloor } from './lib/floor.mjs';
import { treeCpuSeconds } from './proc.mjs';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const quick = args.includes('--quick');
const CHANNELS = opt('channels', 4);
const VIEWERS = opt('viewers', 25);
const SECONDS = opt('seconds', quick ? 8 : 20);
const BITRATE = opt('bitrate', 0) || undefined;
const root = join(import.meta.dirname, '..');
const channelId = (i) => createHash('sha1').update(`acemux-bench-channel-${i}`).digest('hex');

/** GET into nothing; resolves with the body length (and status), or streams until `signal`. */
function get(port, path, ua, onData, signal) {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { 'user-agent': ua }, signal }, (res) => {
      let n = 0;
      const chunks = [];
      res.on('data', (d) => {
        n += d.length;
        if (onData) onData(d.length);
        else chunks.push(d);
      });
      res.on('end', () => resolve({ status: res.statusCode, bytes: n, body: onData ? null : Buffer.concat(chunks).toString() }));
      res.on('error', () => resolve({ status: res.statusCode, bytes: n, body: null }));
    });
    req.on('error', (e) => (e.name === 'AbortError' ? resolve({ status: 0, bytes: 0, body: null }) : reject(e)));
    req.end();
  });
}

const DEFAULT_TEMPLATE = `node dist/main/cli.js --listen 127.0.0.1:{port} --engine http://127.0.0.1:{enginePort} --state-dir '' --log-level warn`;

async function rig(name, fn, template = DEFAULT_TEMPLATE, bitrate = '0') {
  const logs = join(root, 'bench', 'out');
  const sim = await startSim({
    simPath: join(root, 'dist/sim/cli.js'),
    args: ['--prebuffer-ms', '0', '--burst-bytes', '0', ...(BITRATE ? ['--bitrate', String(BITRATE)] : [])],
    cwd: root,
    logPath: join(logs, `hls-bench.${name}.sim.log`),
  });
  const proxy = await startProxy({
    template,
    enginePort: sim.port,
    bitrate,
    cwd: root,
    logPath: join(logs, `hls-bench.${name}.proxy.log`),
  });
  try {
    return await fn(proxy);
  } finally {
    await stop(proxy.child);
    await stop(sim.child);
  }
}

/** Measures acemux's CPU over SECONDS while `bytes()` counts what viewers received. */
async function window(proxy, bytes) {
  const c0 = treeCpuSeconds(proxy.pid);
  const b0 = bytes();
  const t0 = Date.now();
  await sleep(SECONDS * 1000);
  const cpu = treeCpuSeconds(proxy.pid) - c0;
  const got = bytes() - b0;
  const s = (Date.now() - t0) / 1000;
  return { cpuS: +cpu.toFixed(2), MBps: +(got / 1e6 / s).toFixed(2), cpuSPerGB: got ? +(cpu / (got / 1e9)).toFixed(2) : null };
}

/** @param {string} [template] @param {string} [bitrate] */
async function tsRun(template, bitrate) {
  return rig(
    template ? 'floor' : 'ts',
    async (proxy) => {
      let bytes = 0;
      const ac = new AbortController();
      setMaxListeners(0, ac.signal); // one listener per viewer
      let started = 0;
      for (let c = 0; c < CHANNELS; c++) {
        for (let v = 0; v < VIEWERS; v++) {
          void get(
            proxy.port,
            `/ace/getstream?id=${channelId(c)}`,
            `ts-${c}-${v}`,
            (n) => {
              if (n && bytes >= 0) bytes += n;
            },
            ac.signal,
          ).then(
            () => {},
            () => {},
          );
          started++;
        }
      }
      await sleep(3000);
      const w = await window(proxy, () => bytes);
      ac.abort();
      return { viewers: started, ...w };
    },
    template,
    bitrate,
  );
}

const uriSeq = (uri) => Number(/\/(\d+)\.ts/.exec(uri)[1]);

/** One hls.js-like viewer until `stopAt`; `onSegment(ms to first segment)` once. */
async function hlsViewer(port, path, ua, run, count, onFirst) {
  const t0 = Date.now();
  let next = -1;
  while (run.on) {
    const pl = await get(port, path, ua);
    if (pl.status !== 200) throw new Error(`playlist ${pl.status}: ${pl.body}`);
    const target = Number(/#EXT-X-TARGETDURATION:(\d+)/.exec(pl.body)[1]);
    const uris = pl.body.split('\n').filter((l) => l && !l.startsWith('#'));
    if (next < 0) next = uriSeq(uris[Math.max(0, uris.length - 3)]);
    for (const u of uris) {
      if (uriSeq(u) < next) continue;
      const seg = await get(port, `/ace/${u}`, ua);
      if (seg.status === 200) count(seg.bytes);
      if (onFirst) {
        onFirst(Date.now() - t0);
        onFirst = null;
      }
      next = uriSeq(u) + 1;
    }
    await sleep(target * 1000);
  }
}

async function hlsRun() {
  return rig('hls', async (proxy) => {
    let bytes = 0;
    const count = (n) => (bytes += n);
    const cold = [];
    const run = { on: true };
    const viewers = [];
    for (let c = 0; c < CHANNELS; c++) {
      for (let v = 0; v < VIEWERS; v++) {
        viewers.push(
          hlsViewer(
            proxy.port,
            `/ace/manifest.m3u8?id=${channelId(c)}`,
            `hls-${c}-${v}`,
            run,
            count,
            v === 0 ? (ms) => cold.push(ms) : null,
          ),
        );
      }
    }
    await sleep(3000);
    const w = await window(proxy, () => bytes);
    // New viewers of live channels: time to the first whole segment.
    const warm = [];
    for (let k = 0; k < 10; k++) {
      const t0 = Date.now();
      const pl = await get(proxy.port, `/ace/manifest.m3u8?id=${channelId(k % CHANNELS)}`, `new-${k}`);
      const uris = pl.body.split('\n').filter((l) => l && !l.startsWith('#'));
      await get(proxy.port, `/ace/${uris[Math.max(0, uris.length - 3)]}`, `new-${k}`);
      warm.push(Date.now() - t0);
      await sleep(200);
    }
    const status = JSON.parse((await get(proxy.port, `/ace/status?id=${channelId(0)}`, 'bench')).body);
    run.on = false;
    await Promise.allSettled(viewers);
    const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
    return {
      viewers: viewers.length,
      ...w,
      coldFirstSegmentMs: { median: med(cold), max: Math.max(...cold) },
      liveFirstSegmentMs: { median: med(warm), max: Math.max(...warm) },
      hlsOfChannel0: {
        viewers: status.hls?.viewers,
        segments_served: status.hls?.segments_served,
        target_duration: status.hls?.target_duration,
      },
    };
  });
}

const ts = await tsRun();
const hls = await hlsRun();
// The floor at the rate each TS viewer received (the sample's own, or --bitrate).
const outDir = join(root, 'bench', 'out');
mkdirSync(outDir, { recursive: true });
const bin = args.includes('--no-floor') ? null : buildFloor(root, outDir);
const perViewerBps = Math.round((ts.MBps * 8e6) / ts.viewers);
const floor = bin ? await tsRun(`${bin} --port {port} --bitrate {bitrate}`, String(perViewerBps)) : null;
const vsFloor = (x) => (floor?.cpuSPerGB && x ? +(x / floor.cpuSPerGB).toFixed(2) : null);
const result = {
  channels: CHANNELS,
  viewersPerChannel: VIEWERS,
  seconds: SECONDS,
  ts: { ...ts, cpuVsFloor: vsFloor(ts.cpuSPerGB) },
  hls: { ...hls, cpuVsFloor: vsFloor(hls.cpuSPerGB) },
  floor: floor && { bitrateBps: perViewerBps, ...floor },
  hlsCpuPerGBvsTs: ts.cpuSPerGB && hls.cpuSPerGB ? +(hls.cpuSPerGB / ts.cpuSPerGB).toFixed(2) : null,
};
process.stdout.write(JSON.stringify(result, null, 2) + '\n');
