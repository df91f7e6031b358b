#!/usr/bin/env node
// Benchmark entry point.
//   node bench/run.mjs <scenario|all> [--quick] [--proxy "<template>"] [--compare "<template>"]
//                      [--out bench/out] [--sim dist/sim/cli.js] [--client-workers 2]
// Templates are shell-free argv strings with {port} and {enginePort} placeholders.
// Writes <out>/<timestamp>/{results.json, results.md, *.svg, logs/} and prints the markdown.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { LoadClient } from './lib/load.mjs';
import { renderMarkdown } from './lib/report.mjs';
import { barChart, lineChart } from './lib/svg.mjs';
import { scenarios } from './scenarios.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DEFAULT_PROXY = 'node dist/main/cli.js --listen 127.0.0.1:{port} --engine http://127.0.0.1:{enginePort}';

const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    quick: { type: 'boolean', default: false },
    proxy: { type: 'string', default: DEFAULT_PROXY },
    compare: { type: 'string' },
    out: { type: 'string', default: 'bench/out' },
    sim: { type: 'string', default: 'dist/sim/cli.js' },
    'client-workers': { type: 'string', default: '2' },
    help: { type: 'boolean', short: 'h' },
  },
});

const which = positionals[0];
if (opt.help || !which || (which !== 'all' && !(which in scenarios))) {
  console.error(
    `usage: node bench/run.mjs <all|${Object.keys(scenarios).join('|')}> [--quick] [--proxy "<cmd>"] [--compare "<cmd>"] [--out dir] [--sim path] [--client-workers n]`,
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
const names = which === 'all' ? Object.keys(scenarios).filter((n) => !(/** @type {any} */ (scenarios[n]).notInAll)) : [which];

let failures = 0;
const t0 = Date.now();
const load = await LoadClient.start(Number(opt['client-workers']));
for (const name of names) {
  for (const run of runs) {
    const ts = Date.now();
    process.stderr.write(`bench: ${name} on ${run.label} ... `);
    try {
      const ctx = { root: ROOT, simPath, template: run.command, label: run.label, logDir, quick: Boolean(opt.quick), load };
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
if (runs.length === 2) {
  ratios = {};
  for (const name of names) {
    const [a, b] = runs.map((r) => r.scenarios[name]);
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
