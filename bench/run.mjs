#!/usr/bin/env node
// Benchmark entry point.
//   node bench/run.mjs <scenario|all> [--quick] [--proxy "<template>"] [--compare "<template>"]
//                      [--out bench/out] [--sim dist/sim/cli.js] [--client-workers 2]
//                      [--chunks realistic|big] [--no-floor]
// Templates are shell-free argv strings with {port}, {enginePort} and {bitrate} placeholders.
// Every scenario also runs against the floor (bench/baselines/floor.c, compiled here with the
// system's cc), and every proxy's CPU per GB is reported as a ratio to it.
// Writes <out>/<timestamp>/{results.json, results.md, *.svg, logs/} and prints the markdown.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildFloor } from './lib/floor.mjs';
import { LoadClient } from './lib/load.mjs';
import { renderMarkdown } from './lib/report.mjs';
import { barChart, lineChart } from './lib/svg.mjs';
import { scenarios } from './scenarios.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DEFAULT_PROXY = 'node dist/main/cli.js --listen 127.0.0.1:{port} --engine http://127.0.0.1:{enginePort}';

/**
 * How the simulator chunks its playback bodies. realistic: what a harness saw from real engines'
 * sockets, random writes of 1–16,000 bytes on a 20 ms cadence (the bytes due each tick go out as
 * as many such writes as they make). big: the simulator's own default, 1,000–20,000 bytes every 15 ms.
 * @type {Record<string, string[]>}
 */
const CHUNKS = {
  realistic: ['--chunk-min', '1', '--chunk-max', '16000', '--tick-ms', '20'],
  big: [],
};

const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    quick: { type: 'boolean', default: false },
    proxy: { type: 'string', default: DEFAULT_PROXY },
    compare: { type: 'string' },
    out: { type: 'string', default: 'bench/out' },
    sim: { type: 'string', default: 'dist/sim/cli.js' },
    'client-workers': { type: 'string', default: '2' },
    chunks: { type: 'string', default: 'realistic' },
    'no-floor': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h' },
  },
});

const which = positionals[0];
if (opt.help || !which || (which !== 'all' && !(which in scenarios)) || !(opt.chunks in CHUNKS)) {
  console.error(
    `usage: node bench/run.mjs <all|${Object.keys(scenarios).join('|')}> [--quick] [--proxy "<cmd>"] [--compare "<cmd>"] [--out dir] [--sim path] [--client-workers n] [--chunks realistic|big] [--no-floor]`,
  );
  process.exit(opt.help ? 0 : 2);
}
const simPath = resolve(ROOT, opt.sim);
if (!existsSync(simPath)) {
  console.error(`bench: simulator ${relative(ROOT, simPath)} not found; build first (npm run build)`);
  process.exit(2);
}

/** A readable name for a command template. @param {string} t @param {string} fallback */
const labelOf = (t, fallback) => (/naive-pipe/.test(t) ? 'naive-pipe' : /dist\/main\/cli\.js/.test(t) ? 'acemux' : fallback);
const runs = [{ label: labelOf(opt.proxy, 'proxy'), command: opt.proxy, scenarios: /** @type {Record<string, any>} */ ({}) }];
if (opt.compare) runs.push({ label: labelOf(opt.compare, 'compare'), command: opt.compare, scenarios: {} });
if (runs.length === 2 && runs[0].label === runs[1].label) runs[1].label += '-2';
const proxies = runs.slice(); // the proxies compared with each other; the floor is not one of them

/** The commit under test, marked when the tree has uncommitted changes; null outside git. */
function commitOf() {
  try {
    const git = (/** @type {string[]} */ ...args) =>
      execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return git('rev-parse', '--short', 'HEAD') + (git('status', '--porcelain', '--untracked-files=no') ? ' + uncommitted changes' : '');
  } catch {
    return null;
  }
}

const startedAt = new Date().toISOString();
const loadavgStart = os.loadavg().map((x) => Math.round(x * 100) / 100);
const outDir = resolve(ROOT, opt.out, startedAt.replace(/[:.]/g, '-'));
const logDir = join(outDir, 'logs');
mkdirSync(logDir, { recursive: true });
const floorBin = opt['no-floor'] ? null : buildFloor(ROOT, outDir);
/** The floor's run: flagged, so that scenarios and reports never go by its label. */
const floorRun = floorBin
  ? {
      label: 'floor',
      floor: true,
      command: `${floorBin} --port {port} --bitrate {bitrate}`,
      scenarios: /** @type {Record<string, any>} */ ({}),
    }
  : null;
if (floorRun) runs.push(floorRun);
const names = which === 'all' ? Object.keys(scenarios).filter((n) => !(/** @type {any} */ (scenarios[n]).notInAll)) : [which];

let failures = 0;
const t0 = Date.now();
const load = await LoadClient.start(Number(opt['client-workers']));
for (const name of names) {
  for (const run of runs) {
    const ts = Date.now();
    process.stderr.write(`bench: ${name} on ${run.label} ... `);
    try {
      const ctx = {
        root: ROOT,
        simPath,
        template: run.command,
        label: run.label,
        logDir,
        quick: Boolean(opt.quick),
        load,
        floor: run === floorRun,
        simExtra: CHUNKS[opt.chunks],
      };
      run.scenarios[name] = { scenario: name, description: scenarios[name].description, ...(await scenarios[name].run(ctx)) };
      process.stderr.write(`done in ${((Date.now() - ts) / 1000).toFixed(1)} s\n`);
    } catch (err) {
      failures++;
      run.scenarios[name] = { scenario: name, error: /** @type {Error} */ (err).message };
      process.stderr.write(`FAILED: ${/** @type {Error} */ (err).message}\n`);
    }
  }
}

await load.stop();

/** a ÷ b, null when either is missing. @param {any} a @param {any} b */
const ratio = (a, b) => (typeof a === 'number' && typeof b === 'number' && b !== 0 ? Math.round((a / b) * 1000) / 1000 : null);
/** @type {Record<string, any>|undefined} */
let ratios;
if (proxies.length === 2) {
  ratios = {};
  for (const name of names) {
    const [a, b] = proxies.map((r) => r.scenarios[name]);
    if (a.error || b.error) continue;
    ratios[name] = {
      deliveredMBps: ratio(a.deliveredMBps, b.deliveredMBps),
      cpuSPerGB: ratio(a.cpuSPerGB, b.cpuSPerGB),
      peakRssMiB: ratio(a.peakRssMiB, b.peakRssMiB),
      firstByteP99: ratio(a.firstByteMs?.p99, b.firstByteMs?.p99),
      latencyP99: ratio(a.latencyMs?.p99, b.latencyMs?.p99),
      latencyMax: ratio(a.latencyMs?.max, b.latencyMs?.max),
      maxClientsPassed: ratio(a.extra?.maxClientsPassed, b.extra?.maxClientsPassed),
    };
  }
}

// Every CPU figure of a proxy also as a multiple of the floor's in the same scenario of this run.
if (floorRun)
  for (const name of names) {
    const fl = floorRun.scenarios[name];
    if (!fl || fl.error) continue;
    for (const run of proxies) {
      const s = run.scenarios[name];
      if (!s || s.error) continue;
      s.cpuVsFloor = ratio(s.cpuSPerGB, fl.cpuSPerGB);
      if (s.wholeRun) s.wholeRun.cpuVsFloor = ratio(s.wholeRun.cpuSPerGB, fl.wholeRun?.cpuSPerGB);
      if (name === 'churn' && s.extra) {
        // Each start brings ~1.5 s of one client's streaming: the floor pays that part too, so
        // the difference is what starting (and stopping) a stream costs.
        const base = fl.extra?.cpuMsPerStart;
        const less = (/** @type {any} */ x) =>
          typeof x === 'number' && typeof base === 'number' ? Math.round((x - base) * 100) / 100 : null;
        s.extra.floorCpuMsPerStart = base;
        s.extra.startCostMs = less(s.extra.cpuMsPerStart);
        if (s.extra.coldRings) s.extra.coldRings.startCostMs = less(s.extra.coldRings.cpuMsPerStart);
      }
      if (name === 'stalled-client' && s.extra && fl.extra)
        for (const k of /** @type {const} */ (['withStall', 'withoutStall']))
          s.extra[k].cpuVsFloor = ratio(s.extra[k].cpuSPerGB, fl.extra[k].cpuSPerGB);
    }
  }

const results = {
  meta: {
    startedAt,
    argv: process.argv.slice(2),
    commit: commitOf(),
    quick: Boolean(opt.quick),
    node: process.version,
    cpus: os.cpus().length,
    loadavgStart,
    loadavgEnd: os.loadavg().map((x) => Math.round(x * 100) / 100),
    sim: relative(ROOT, simPath),
    chunks: opt.chunks,
    simExtra: CHUNKS[opt.chunks],
    floor: floorRun ? floorRun.command : null,
    scenarios: names,
    totalS: Math.round((Date.now() - t0) / 100) / 10,
  },
  runs,
  ...(ratios ? { ratios } : {}),
};
writeFileSync(join(outDir, 'results.json'), JSON.stringify(results, null, 2) + '\n');
const md = renderMarkdown(results);
writeFileSync(join(outDir, 'results.md'), md + '\n');

const ok = names.filter((n) => runs.every((r) => !r.scenarios[n].error));
if (ok.length)
  writeFileSync(
    join(outDir, 'cpu-per-gb.svg'),
    barChart({
      title: 'Proxy CPU seconds per delivered GB (lower is better)',
      yLabel: 'CPU s / GB',
      categories: ok,
      series: runs.map((r) => ({ name: r.label, values: ok.map((n) => r.scenarios[n].cpuSPerGB) })),
    }),
  );
if (ok.includes('ramp'))
  writeFileSync(
    join(outDir, 'ramp-latency.svg'),
    lineChart({
      title: 'Ramp: added latency p99 vs clients (10 channels, 4 Mb/s)',
      xLabel: 'clients',
      yLabel: 'latency p99 (ms)',
      hline: { y: 100, label: 'pass limit 100 ms' },
      series: runs.map((r) => ({
        name: r.label,
        points: r.scenarios.ramp.extra.steps.map(
          (/** @type {any} */ s) => /** @type {[number, number]} */ ([s.clients, s.latencyMs.p99 ?? 0]),
        ),
      })),
    }),
  );

console.log(md);
console.error(
  `bench: ${relative(process.cwd(), outDir)} (${results.meta.totalS} s)${failures ? `, ${failures} scenario(s) failed` : ''}; bench/RESULTS.md from it: node bench/report-results.mjs`,
);
process.exit(failures ? 1 : 0);
