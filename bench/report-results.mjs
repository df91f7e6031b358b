#!/usr/bin/env node
// Writes bench/RESULTS.md from one bench run's results.json, so the published figures are always
// those of a recorded run, never typed by hand.
//   node bench/report-results.mjs [<run dir> | <results.json>] [--out bench/RESULTS.md] [--notes bench/RESULTS-notes.md]
// Without an input it takes the newest bench/out/*/results.json. The page is: how the run was
// made, its tables (lib/report.mjs, as run.mjs prints them), the targets of issue 4 judged from
// the same figures, then the hand-written analysis kept in the notes file (profiles and
// measurements the bench does not take).

import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { renderMarkdown } from './lib/report.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The newest run under bench/out that wrote a results.json. @param {string} outDir */
function newestRun(outDir) {
  if (!existsSync(outDir)) return null;
  const runs = readdirSync(outDir)
    .map((d) => join(outDir, d, 'results.json'))
    .filter((f) => existsSync(f))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  return runs[0] ?? null;
}

/** @param {any} x @param {number} [d] */
const f = (x, d = 1) => (typeof x === 'number' ? x.toFixed(d) : '–');

/**
 * The targets (issue 15's CPU and memory against the floor, issue 4's latency, joins, isolation
 * and client memory), each judged from the run's figures; a scenario missing from the run (a
 * --quick single-scenario run, say) leaves its row unjudged.
 * @param {any} results
 */
export function renderTargets(results) {
  const ours = results.runs[0];
  const sc = (/** @type {string} */ name) => ours?.scenarios[name];
  const ok = (/** @type {any} */ s) => s && !s.error;
  /** @type {Array<[string, string, string, boolean | null]>} */
  const rows = [];
  const fan = sc('fanout-20x10');
  const floorFan = results.runs.find((/** @type {any} */ r) => r.floor)?.scenarios['fanout-20x10'];
  const whole = fan?.wholeRun;
  rows.push([
    'CPU per GB, 20 × 10 at 4 Mb/s, whole run including starts',
    '≤ 1.15× the floor',
    ok(fan) && typeof whole?.cpuVsFloor === 'number'
      ? `${f(whole.cpuSPerGB, 2)} vs ${f(floorFan.wholeRun.cpuSPerGB, 2)} s/GB = **${f(whole.cpuVsFloor, 2)}×**`
      : 'not in this run (needs the floor)',
    typeof whole?.cpuVsFloor === 'number' ? whole.cpuVsFloor <= 1.15 : null,
  ]);
  rows.push([
    'CPU per GB, steady state (the 20 × 10 window)',
    '≤ 1.05× the floor',
    ok(fan) && typeof fan.cpuVsFloor === 'number'
      ? `${f(fan.cpuSPerGB, 2)} vs ${f(floorFan.cpuSPerGB, 2)} s/GB = **${f(fan.cpuVsFloor, 2)}×**`
      : 'not in this run (needs the floor)',
    ok(fan) && typeof fan.cpuVsFloor === 'number' ? fan.cpuVsFloor <= 1.05 : null,
  ]);
  const ch = sc('churn')?.extra;
  rows.push([
    'CPU per stream start, pooled ring',
    '≤ 5 ms',
    ch && typeof ch.startCostMs === 'number'
      ? `**${f(ch.startCostMs, 2)} ms** (${f(ch.cpuMsPerStart, 2)} ms per start with its 1.5 s of streaming − the floor's ${f(ch.floorCpuMsPerStart, 2)} ms; cold rings ${f(ch.coldRings?.startCostMs, 2)} ms)`
      : 'not in this run (needs churn and the floor)',
    ch && typeof ch.startCostMs === 'number' ? ch.startCostMs <= 5 : null,
  ]);
  rows.push([
    'RSS per running 4 Mb/s stream, beyond the idle process',
    '≤ 3 MB',
    ch && typeof ch.perRunningStreamMiB === 'number'
      ? `**${f(ch.perRunningStreamMiB * 1.048576, 2)} MB** (${f(ch.perRunningStreamMiB, 2)} MiB; 10 streams ${f(ch.tenStreamsMiB)} MiB − idle ${f(ch.idleMiB)} MiB)`
      : 'not in this run',
    ch && typeof ch.perRunningStreamMiB === 'number' ? ch.perRunningStreamMiB * 1.048576 <= 3 : null,
  ]);
  const p99s = ['fanout-20x10', 'joins', 'memory'].filter((n) => ok(sc(n))).map((n) => [n, sc(n).latencyMs?.p99]);
  rows.push([
    'added latency at 4 Mb/s',
    'p99 ≤ 50 ms',
    p99s.length ? p99s.map(([n, p]) => `${f(p)} ms (${n})`).join(', ') : 'not in this run',
    p99s.length ? p99s.every(([, p]) => typeof p === 'number' && p <= 50) : null,
  ]);
  const j = sc('joins');
  rows.push([
    "joining client's first byte",
    'p99 ≤ 50 ms, aligned',
    ok(j)
      ? `p99 ${f(j.firstByteMs?.p99)} ms, ${j.firstByteMisaligned}/${j.firstByteAligned + j.firstByteMisaligned} misaligned`
      : 'not in this run',
    ok(j) ? j.firstByteMs?.p99 <= 50 && j.firstByteMisaligned === 0 : null,
  ]);
  const st = sc('stalled-client')?.extra;
  const withP99 = st?.withStall.latencyMs?.p99;
  const withoutP99 = st?.withoutStall.latencyMs?.p99;
  rows.push([
    'stalled client among 10',
    "others' p99 within 10 ms of no-stall",
    st ? `${f(withP99)} ms with vs ${f(withoutP99)} ms without` : 'not in this run',
    st ? withP99 - withoutP99 <= 10 : null,
  ]);
  const m = sc('memory')?.extra;
  rows.push([
    'memory per idle client beyond the ring',
    '≤ 64 KB',
    m
      ? `**${m.perClientKiB} KiB** (slope of RSS over ${m.points.map((/** @type {any} */ p) => p.clients).join(', ')} clients)`
      : 'not in this run',
    m ? m.perClientKiB * 1024 <= 64_000 : null,
  ]);
  const ramp = sc('ramp')?.extra;
  const base = results.runs[1]?.floor ? undefined : results.runs[1];
  const baseRamp = base?.scenarios.ramp?.extra;
  const lines = [
    `## Against the targets (issues 15 and 4), ${ours.label}`,
    '',
    '| measure | target | measured | verdict |',
    '|---|---|---|---|',
    ...rows.map(
      ([what, target, measured, met]) => `| ${what} | ${target} | ${measured} | ${met === null ? '–' : met ? 'met' : '**not met**'} |`,
    ),
    '',
  ];
  if (ramp)
    lines.push(
      `The ramp served **${ramp.maxClientsPassed}** clients at 4 Mb/s with p99 ≤ 100 ms${baseRamp ? ` (${base.label}: ${baseRamp.maxClientsPassed})` : ''}.`,
      '',
    );
  return lines.join('\n');
}

/** @param {any} results @param {string} source @param {string} notes */
export function renderResultsPage(results, source, notes) {
  const m = results.meta;
  const command = m.argv
    ? `node bench/run.mjs ${m.argv.map((/** @type {string} */ a) => (/[\s"]/.test(a) ? JSON.stringify(a) : a)).join(' ')}`
    : 'node bench/run.mjs … (the run did not record its arguments)';
  const at = m.commit ? `acemux at commit \`${m.commit}\`` : 'acemux at an unrecorded commit';
  const tables = renderMarkdown(results).split('\n').slice(1).join('\n').trim(); // its own title line is replaced by ours
  return [
    '# Benchmark results',
    '',
    `<!-- Written by bench/report-results.mjs from ${source}. Do not edit by hand: edit bench/RESULTS-notes.md, or run the bench again. -->`,
    '',
    'Produced by:',
    '',
    '```sh',
    'npm run build',
    command,
    'node bench/report-results.mjs',
    '```',
    '',
    `on ${m.cpus} CPUs (Node ${m.node}), ${m.startedAt.slice(0, 10)}, ${at}${m.quick ? ', **quick run** (short windows)' : ''}. The load`,
    "client, the simulator and the proxy share the machine; the client's and the simulator's CPU are in the last column. How",
    'each figure is measured: [bench/README.md](README.md). Numbers move by ±15 % between runs on a shared machine; compare',
    'proxies within one run.',
    '',
    tables,
    '',
    renderTargets(results),
    notes.trim(),
    '',
  ].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values: opt, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      out: { type: 'string', default: 'bench/RESULTS.md' },
      notes: { type: 'string', default: 'bench/RESULTS-notes.md' },
    },
  });
  let input = positionals[0] ? resolve(positionals[0]) : newestRun(join(ROOT, 'bench', 'out'));
  if (input && existsSync(input) && statSync(input).isDirectory()) input = join(input, 'results.json');
  if (!input || !existsSync(input)) {
    console.error(`bench: no results.json ${positionals[0] ? `at ${positionals[0]}` : 'under bench/out/'}; run node bench/run.mjs first`);
    process.exit(2);
  }
  const results = JSON.parse(readFileSync(input, 'utf8'));
  // Runs recorded before the floor's run carried its flag knew it by its label only.
  for (const r of results.runs) r.floor ??= r.label === 'floor';
  const notesPath = resolve(ROOT, opt.notes);
  const notes = existsSync(notesPath) ? readFileSync(notesPath, 'utf8') : '';
  const out = resolve(ROOT, opt.out);
  writeFileSync(out, renderResultsPage(results, relative(ROOT, input), notes));
  console.error(`bench: wrote ${relative(process.cwd(), out)} from ${relative(process.cwd(), input)}`);
}
