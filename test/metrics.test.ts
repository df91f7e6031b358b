import t from 'tap';
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { Metrics } from '../src/main/ops/metrics';
import { startSim } from './helpers/sim';
import { startAcemux } from './helpers/acemux';
import { fetchStream, contentId } from './helpers/client';
import type { AceEvent, EventKind } from '../src/main/supervision/events';

let seq = 0;
const ev = (kind: EventKind, fields: Record<string, unknown> = {}): AceEvent => ({ seq: ++seq, time: Date.now(), kind, ...fields });

interface Family {
  help?: string;
  type?: string;
  samples: Array<{ name: string; labels: Record<string, string>; value: number }>;
}

/** A strict-enough parser of the Prometheus text format: every line is HELP, TYPE or a sample. */
function parse(text: string): Map<string, Family> {
  const fams = new Map<string, Family>();
  const fam = (n: string) => fams.get(n) ?? fams.set(n, { samples: [] }).get(n)!;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
    if (m) {
      fam(m[1]).help = m[2];
      continue;
    }
    m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (m) {
      fam(m[1]).type = m[2];
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    if (!m) throw new Error(`not Prometheus text: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[k] = v;
    // Values are Go floats: prom-client's default lag gauges read "Nan" before their first sample.
    if (!/^([+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]Inf|nan)$/i.test(m[3])) throw new Error(`bad value in ${line}`);
    const value = /^nan$/i.test(m[3]) ? NaN : Number(m[3].replace(/inf$/i, 'Infinity'));
    // A histogram's or summary's samples belong to the family without the suffix.
    const base = m[1].replace(/_(bucket|sum|count)$/, '');
    const owner = fams.has(m[1]) ? m[1] : base;
    fam(owner).samples.push({ name: m[1], labels, value });
  }
  return fams;
}

const value = (fams: Map<string, Family>, name: string, labels: Record<string, string> = {}) =>
  (fams.get(name) ?? fams.get(name.replace(/_(bucket|sum|count)$/, '')))?.samples.find(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  )?.value;

const OURS = [
  ['acemux_streams', 'gauge'],
  ['acemux_clients', 'gauge'],
  ['acemux_bytes_in_total', 'counter'],
  ['acemux_bytes_out_total', 'counter'],
  ['acemux_upstream_reconnects_total', 'counter'],
  ['acemux_failovers_total', 'counter'],
  ['acemux_retries_total', 'counter'],
  ['acemux_give_ups_total', 'counter'],
  ['acemux_client_cuts_total', 'counter'],
  ['acemux_events_total', 'counter'],
  ['acemux_engine_up', 'gauge'],
  ['acemux_client_max_lag_bytes', 'gauge'],
  ['acemux_first_byte_seconds', 'histogram'],
  ['acemux_stream_start_seconds', 'histogram'],
  ['acemux_event_loop_lag_seconds', 'gauge'],
  ['acemux_ring_capacity_bytes', 'gauge'],
] as const;

t.test('render is Prometheus text; every series is named by the conventions', async (t) => {
  const m = new Metrics();
  t.teardown(() => m.close());
  m.setEngineUp('http://e1:6878', true);
  m.setMaxClientLag(1000);
  const { contentType, body } = await m.render();
  t.match(contentType, /^text\/plain; version=0\.0\.4/);
  const fams = parse(body);
  for (const [name, type] of OURS) {
    const f = fams.get(name);
    t.ok(f, `${name} present`);
    t.equal(f?.type, type, `${name} is a ${type}`);
    t.ok(f?.help && f.help.length > 5, `${name} has help`);
  }
  for (const [name, f] of fams) {
    t.match(name, /^acemux_[a-z0-9]+(_[a-z0-9]+)*$/, `${name}: prefixed snake case`);
    t.ok(f.type && f.help, `${name} has HELP and TYPE`);
    if (f.type === 'counter') t.match(name, /_total$/, `${name}: counters end in _total`);
    if (f.type === 'histogram') t.match(name, /_(seconds|bytes)$/, `${name}: histograms name their unit`);
  }
  // No gauge borrows _total: prom-client's default nodejs_active_*_total gauges are dropped.
  for (const [name, f] of fams) if (f.type !== 'counter') t.notMatch(name, /_total$/, `${name}: a ${f.type} not named like a counter`);
  t.ok(fams.has('acemux_nodejs_active_handles'), 'the by-type gauges the totals summed stay');
  t.ok(fams.has('acemux_process_cpu_user_seconds_total'), 'default process metrics, prefixed');
  t.ok(fams.has('acemux_nodejs_heap_size_used_bytes'));
  const fb = fams
    .get('acemux_first_byte_seconds')!
    .samples.filter((s) => s.name.endsWith('_bucket'))
    .map((s) => s.labels.le);
  t.equal(fb[0], '0.001');
  t.equal(fb.at(-2), '10');
});

t.test('observeEvent increments the counters its kind and reason stand for', async (t) => {
  const m = new Metrics({ defaultMetrics: false });
  t.teardown(() => m.close());
  m.observeEvent(ev('reconnect', { stream: 'a' }));
  m.observeEvent(ev('reconnect', { stream: 'a' }));
  m.observeEvent(ev('failover', { stream: 'a' }));
  m.observeEvent(ev('retry'));
  m.observeEvent(ev('retry'));
  m.observeEvent(ev('retry'));
  m.observeEvent(ev('give-up'));
  m.observeEvent(ev('client-cut', { reason: 'lagging' }));
  m.observeEvent(ev('client-cut', { reason: 'lagging' }));
  m.observeEvent(ev('client-cut', { reason: 'stalled' }));
  m.observeEvent(ev('client-cut', {}));
  m.observeEvent(ev('engine-health', { engine: 'http://e1:6878', healthy: false }));
  m.observeEvent(ev('engine-health', { engine: 'http://e2:6878', healthy: true }));
  m.observeEvent(ev('engine-health', { detail: 'no engine named' }));
  m.observeEvent(ev('stream-start'));
  const f = parse((await m.render()).body);
  t.equal(value(f, 'acemux_upstream_reconnects_total'), 2);
  t.equal(value(f, 'acemux_failovers_total'), 1);
  t.equal(value(f, 'acemux_retries_total'), 3);
  t.equal(value(f, 'acemux_give_ups_total'), 1);
  t.equal(value(f, 'acemux_client_cuts_total', { reason: 'lagging' }), 2);
  t.equal(value(f, 'acemux_client_cuts_total', { reason: 'stalled' }), 1);
  t.equal(value(f, 'acemux_client_cuts_total', { reason: 'unknown' }), 1);
  t.equal(value(f, 'acemux_events_total', { kind: 'retry' }), 3);
  t.equal(value(f, 'acemux_events_total', { kind: 'engine-health' }), 3);
  t.equal(value(f, 'acemux_events_total', { kind: 'stream-start' }), 1);
  t.equal(value(f, 'acemux_engine_up', { engine: 'http://e1:6878' }), 0);
  t.equal(value(f, 'acemux_engine_up', { engine: 'http://e2:6878' }), 1);
  t.equal(f.get('acemux_engine_up')!.samples.length, 2, 'an event without an engine sets nothing');
});

t.test('the collector runs before each render; pushed values accumulate', async (t) => {
  const m = new Metrics({ defaultMetrics: false });
  t.teardown(() => m.close());
  let runs = 0;
  let live = 2;
  m.setCollector(() => {
    runs++;
    m.setStreams({ live, starting: runs === 1 ? 1 : undefined });
    m.setClients(live * 3);
    m.setMaxClientLag(live ? 500_000 : 0);
  });
  m.addBytes(1000, 5000);
  m.addBytes(24, -1);
  m.observeFirstByte(0.004);
  m.observeEvent(ev('stream-live', { stream: 'a', ms: 3200 }));
  m.observeEvent(ev('stream-live', { stream: 'a', ms: 900, recovered: true })); // a recovery is not a start
  let f = parse((await m.render()).body);
  t.equal(runs, 1);
  t.equal(value(f, 'acemux_streams', { state: 'live' }), 2);
  t.equal(value(f, 'acemux_streams', { state: 'starting' }), 1);
  t.equal(value(f, 'acemux_streams', { state: 'draining' }), 0, 'known states are present as 0');
  t.equal(value(f, 'acemux_clients'), 6);
  t.equal(value(f, 'acemux_bytes_in_total'), 1024);
  t.equal(value(f, 'acemux_bytes_out_total'), 5000, 'a negative delta is ignored');
  t.equal(value(f, 'acemux_client_max_lag_bytes'), 500_000);
  t.equal(value(f, 'acemux_first_byte_seconds_bucket', { le: '0.005' }), 1);
  t.equal(value(f, 'acemux_first_byte_seconds_bucket', { le: '0.001' }), 0);
  t.equal(value(f, 'acemux_stream_start_seconds_sum'), 3.2);
  t.ok(Number.isFinite(value(f, 'acemux_event_loop_lag_seconds')), 'the event-loop lag gauge is exported');

  live = 0;
  // Keep the loop busy for a moment so the lag gauge has something to show (not straight after
  // the render: the monitor's first interval after a reset is not recorded).
  await new Promise((r) => setTimeout(r, 30));
  const until = Date.now() + 60;
  while (Date.now() < until);
  await new Promise((r) => setTimeout(r, 30));
  f = parse((await m.render()).body);
  t.equal(runs, 2, 'once per render');
  t.equal(value(f, 'acemux_streams', { state: 'live' }), 0);
  t.equal(value(f, 'acemux_streams', { state: 'starting' }), 0, 'a state that emptied reads 0');
  t.equal(value(f, 'acemux_client_max_lag_bytes'), 0, 'the lag is the state now, not a count of scrapes');
  t.ok(value(f, 'acemux_event_loop_lag_seconds')! >= 0.03, 'a 60 ms block shows in the p99');
});

t.test('instances do not share a registry', async (t) => {
  const a = new Metrics();
  const b = new Metrics();
  t.teardown(() => (a.close(), b.close()));
  a.addBytes(7, 0);
  t.equal(value(parse((await a.render()).body), 'acemux_bytes_in_total'), 7);
  t.equal(value(parse((await b.render()).body), 'acemux_bytes_in_total'), 0);
});

const PROMTOOL = '/usr/bin/promtool';

/** promtool's lint: exit 0 and nothing said, or its complaints. */
function promtool(text: string): { code: number | null; said: string } {
  const r = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { code: r.status, said: `${r.stdout}${r.stderr}`.trim() };
}

t.test(
  'promtool check metrics accepts a live acemux /metrics',
  { skip: existsSync(PROMTOOL) ? false : `${PROMTOOL} is not installed (Debian: prometheus)` },
  async (t) => {
    t.equal(promtool('# TYPE x_total gauge\nx_total 1\n').code, 3, 'the check can fail: a gauge named like a counter');
    const sim = await startSim(['--bitrate', '2000000']);
    const ace = await startAcemux(sim.origin, ['--grace', '300ms']);
    t.teardown(async () => {
      await ace.stop();
      await sim.stop();
    });
    // Scraped while a client plays, so every family has samples: lag, first byte, stream start, bytes.
    let flowing!: () => void;
    const started = new Promise<void>((r) => (flowing = r));
    let got = 0;
    const playing = fetchStream(`${ace.origin}/ace/getstream?id=${contentId(0x51)}`, {
      ms: 4000,
      onData: (d) => (got += d.length) > 300_000 && flowing(),
    });
    await started;
    const scraped = (await fetchStream(`${ace.origin}/metrics`)).body.toString();
    await playing;
    t.match(scraped, /^acemux_first_byte_seconds_count 1$/m, 'scraped while a stream plays');
    t.match(scraped, /^acemux_clients 1$/m);
    const r = promtool(scraped);
    t.equal(r.code, 0, `promtool exit code (${r.said || 'no complaints'})`);
    t.equal(r.said, '');
  },
);
