import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, parseDuration, parseSize, parseListen, helpText, OPTIONS } from '../src/main/config';
import { ringCapacityPackets, ringDataBytes, TS } from '../src/shared/ring';
import { ConfigError } from '../src/main/errors';

t.test('defaults are acexy-compatible', async (t) => {
  const c = loadConfig([], {});
  t.equal(c.listenHost, '');
  t.equal(c.listenPort, 8080);
  t.same(c.engines, ['http://localhost:6878']);
  t.equal(c.graceMs, 5000);
  t.equal(c.lagLimitBytes, Math.floor(c.ringBytes / 2), 'lag limit defaults to half the ring');
  t.equal(c.maxStreams, 0, 'no hidden stream cap');
});

t.test('ACEXY_* names are aliases, ACEMUX_* win, flags win over both', async (t) => {
  const env = { ACEXY_HOST: 'engine', ACEXY_PORT: '7000', ACEXY_LISTEN_ADDR: '127.0.0.1:9000', ACEXY_NO_RESPONSE_TIMEOUT: '2s', ACEXY_EMPTY_TIMEOUT: '1m', ACEXY_BUFFER_SIZE: '4MiB', ACEXY_LOG_LEVEL: 'DEBUG', ACEXY_SCHEME: 'https' };
  const c = loadConfig([], env);
  t.same(c.engines, ['https://engine:7000']);
  t.equal(c.listenHost, '127.0.0.1');
  t.equal(c.listenPort, 9000);
  t.equal(c.engineTimeoutMs, 2000);
  t.equal(c.firstDataTimeoutMs, 60000);
  t.equal(c.ringBytes, 16384 * 188, 'ACEXY_BUFFER_SIZE=4MiB: the ring really allocated, 2^14 packets');
  t.equal(c.logLevel, 'debug');
  t.equal(loadConfig([], { ...env, ACEMUX_ENGINE_TIMEOUT: '3s' }).engineTimeoutMs, 3000);
  t.equal(loadConfig(['--engine-timeout', '4s'], { ...env, ACEMUX_ENGINE_TIMEOUT: '3s' }).engineTimeoutMs, 4000);
  t.equal(loadConfig(['--grace=250ms'], {}).graceMs, 250);
  t.same(loadConfig(['--engine', 'http://a:1', '--engine', 'http://b:2/'], {}).engines, ['http://a:1', 'http://b:2']);
  t.same(loadConfig([], { ACEMUX_ENGINES: 'http://a:1, http://b:2' }).engines, ['http://a:1', 'http://b:2']);
});

t.test('value parsers', async (t) => {
  t.equal(parseDuration('1m30s'), 90000);
  t.equal(parseDuration('500ms'), 500);
  t.equal(parseDuration('0'), 0);
  t.throws(() => parseDuration('5'), { name: 'ConfigError' }, 'a bare number is ambiguous');
  t.throws(() => parseDuration('5 parsecs'), { name: 'ConfigError' });
  t.equal(parseSize('4.2MiB'), Math.round(4.2 * 1048576));
  t.equal(parseSize('64KB'), 64000);
  t.equal(parseSize('1024'), 1024);
  t.throws(() => parseSize('lots'), { name: 'ConfigError' });
  t.same(parseListen(':8080'), { host: '', port: 8080 });
  t.same(parseListen('[::1]:81'), { host: '::1', port: 81 });
  t.throws(() => parseListen('host:99999'), { name: 'ConfigError' });
});

t.test('bad values name the option', async (t) => {
  const bad: Array<[string[], Record<string, string>, RegExp]> = [
    [[], { ACEXY_PORT: 'abc' }, /ACEXY_PORT/],
    [[], { ACEMUX_GRACE: 'soon' }, /ACEMUX_GRACE/],
    [['--ring-size', '1KiB'], {}, /ring-size/],
    [['--ring-pool', '-1'], {}, /ring-pool/],
    [['--ring-pool', '5000'], {}, /ring-pool/],
    [['--lag-limit', '100MiB'], {}, /lag-limit/],
    [['--lag-policy', 'ignore'], {}, /lag-policy/],
    [['--bogus', '1'], {}, /unknown option --bogus/],
    [['--grace'], {}, /needs a value/],
    [[], { ACEMUX_ENGINES: 'ftp://x' }, /http or https/],
    [[], { ACEXY_PORT: '70000' }, /not a port/],
  ];
  for (const [argv, env, re] of bad) t.throws(() => loadConfig(argv, env), re);
  t.match(helpText(), /ACEXY_LISTEN_ADDR/);
});

t.test("the README's ring figures are the code's", async (t) => {
  const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');
  const row = readme.split('\n').find((l) => l.startsWith('| `--ring-size`'));
  t.ok(row, 'the README has a --ring-size row');
  const m = /\| `([^`]+)` \| per-stream ring[^|]*?→ (\d+) packets = ([\d,]+) bytes \(~(\d+(?:\.\d+)?) s at 4 Mb\/s, ~(\d+(?:\.\d+)?) s at 10 Mb\/s\)/.exec(row!);
  t.ok(m, `the row states default, packets, bytes and seconds: ${row}`);
  const [, def, packets, bytes, s4, s10] = m!;
  const opt = OPTIONS.find((o) => o.key === 'ringBytes')!;
  t.equal(def, opt.def, 'the default the README names is the default');
  const real = ringDataBytes(parseSize(opt.def));
  t.equal(Number(packets), ringCapacityPackets(parseSize(opt.def)), 'packets');
  t.equal(Number(bytes!.replace(/,/g, '')), real, 'bytes');
  t.equal(loadConfig([], {}).ringBytes, real, 'the config holds the size really allocated');
  t.equal(real, Number(packets) * TS);
  t.ok(Math.abs(Number(s4) - (real * 8) / 4e6) < 0.5, `~${s4} s at 4 Mb/s`);
  t.ok(Math.abs(Number(s10) - (real * 8) / 10e6) < 0.5, `~${s10} s at 10 Mb/s`);
  const lag = readme.split('\n').find((l) => l.startsWith('| `--lag-limit`'));
  t.match(lag, /half the ring/);
  t.equal(loadConfig([], {}).lagLimitBytes, Math.floor(real / 2), 'the lag limit is half the real ring');
  t.equal(loadConfig([], {}).ringPoolIdle, 16);
  t.match(readme, /\| `--ring-pool` \| `ACEMUX_RING_POOL` \| `16` \|/, 'the README names the pool default');
  t.equal(loadConfig([], {}).batchBytes, 256 * 1024, 'batch size: 256 KiB when the ring allows');
  t.equal(loadConfig(['--ring-size', '1MiB'], {}).batchBytes, Math.floor((4096 * TS) / 8), 'and at most 1/8 of a small ring');
});
