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
  t.equal(c.maxStreams, 100, 'a stream cap protects the engine by default');
  t.equal(c.maxClientsPerIp, 0, 'no per-address cap: media servers fetch many channels from one address');
  t.equal(loadConfig(['--max-streams', '0'], {}).maxStreams, 0, '0 = unlimited');
  t.equal(loadConfig([], { ACEMUX_PUBLIC_METRICS: '1' }).publicMetrics, true);
  t.equal(loadConfig(['--public-status', 'false'], {}).publicStatus, false);
  t.throws(() => loadConfig(['--public-status', 'maybe'], {}), ConfigError);
});

t.test('ACEXY_* names are aliases, ACEMUX_* win, flags win over both', async (t) => {
  const env = {
    ACEXY_HOST: 'engine',
    ACEXY_PORT: '7000',
    ACEXY_LISTEN_ADDR: '127.0.0.1:9000',
    ACEXY_NO_RESPONSE_TIMEOUT: '2s',
    ACEXY_EMPTY_TIMEOUT: '1m',
    ACEXY_BUFFER_SIZE: '4MiB',
    ACEXY_LOG_LEVEL: 'DEBUG',
    ACEXY_SCHEME: 'https',
  };
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
  t.same(parseListen('8080'), { host: '', port: 8080 }, 'a bare port');
  t.same(parseListen('0.0.0.0:80'), { host: '0.0.0.0', port: 80 });
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

t.test("acexy's Go flags: -name v, -name=v, --name v; each maps or warns once", async (t) => {
  const warned: string[] = [];
  const c = loadConfig(
    [
      '-addr',
      '127.0.0.1:9001',
      '-scheme=https',
      '--acestream-host',
      'eng',
      '--acestream-port=7001',
      '-no-response-timeout',
      '2s',
      '-empty-timeout=1m',
      '-buffer-size',
      '4MB',
    ],
    {},
    (w) => warned.push(w),
  );
  t.equal(c.listenHost, '127.0.0.1');
  t.equal(c.listenPort, 9001);
  t.same(c.engines, ['https://eng:7001']);
  t.equal(c.engineTimeoutMs, 2000);
  t.equal(c.firstDataTimeoutMs, 60000);
  t.equal(c.ringBytes, ringDataBytes(4_000_000), '-buffer-size is the ring size (rounded down to whole packets, a power of two)');
  t.same(warned, [], 'options with an acemux equivalent do not warn');
  t.equal(loadConfig(['-addr', ':9002'], { ACEMUX_LISTEN: ':9003' }).listenPort, 9002, 'an acexy flag is a flag: it wins over ACEMUX_*');

  const hls = (argv: string[], env: Record<string, string> = {}) => {
    const w: string[] = [];
    loadConfig(argv, env, (m) => w.push(m));
    return w;
  };
  for (const argv of [['-m3u8'], ['--m3u8'], ['-m3u8=true'], ['-m3u8=1']]) {
    const w = hls(argv);
    t.equal(w.length, 1, `${argv.join(' ')}: one warning`);
    t.match(w[0], /HLS is always served.*\/ace\/manifest\.m3u8/, 'says HLS needs no switch, and where it is');
  }
  t.same(hls(['-m3u8=false']), [], '-m3u8=false is what acemux does: no warning');
  t.same(hls([], { ACEXY_M3U8: 'false' }), []);
  t.match(hls([], { ACEXY_M3U8: 'TRUE' }), [/^ACEXY_M3U8: .*HLS/]);
  t.equal(hls(['-m3u8', '-m3u8'], { ACEXY_M3U8: 'true' }).length, 1, 'the flag wins over the variable, one warning');
  t.match(hls(['-m3u8-stream-timeout', '60s']), [/^-m3u8-stream-timeout: .*ignored.*--grace/]);
  t.match(hls([], { ACEXY_M3U8_STREAM_TIMEOUT: '60s' }), [/^ACEXY_M3U8_STREAM_TIMEOUT: .*ignored/]);

  const bad: Array<[string[], Record<string, string>, RegExp]> = [
    [['-m3u8=maybe'], {}, /-m3u8: "maybe" is not a boolean/],
    [[], { ACEXY_M3U8: 'yes' }, /ACEXY_M3U8: "yes" is not a boolean/],
    [['-m3u8-stream-timeout', 'long'], {}, /-m3u8-stream-timeout: "long" is not a duration/],
    [[], { ACEXY_M3U8_STREAM_TIMEOUT: '60' }, /ACEXY_M3U8_STREAM_TIMEOUT: "60" is not a duration/],
    [['-m3u8-stream-timeout'], {}, /-m3u8-stream-timeout needs a value/],
    [['-addr'], {}, /-addr needs a value/],
    [['-buffer-size', 'big'], {}, /--ring-size|buffer-size/],
    [['-listen', ':1'], {}, /unknown option -listen/],
    [['-constructor', '1'], {}, /unknown option -constructor/],
  ];
  for (const [argv, env, re] of bad) t.throws(() => loadConfig(argv, env), re, argv.join(' ') || JSON.stringify(env));
  t.match(helpText(), /acexy -addr/);
});

t.test('ACEMUX_* wins over a differing ACEXY_* alias, with one warning', async (t) => {
  const warned: string[] = [];
  const c = loadConfig([], { ACEMUX_LISTEN: ':8080', ACEXY_LISTEN_ADDR: ':9000' }, (w) => warned.push(w));
  t.equal(c.listenPort, 8080);
  t.equal(warned.length, 1);
  t.match(warned[0], /ACEMUX_LISTEN=:8080 and ACEXY_LISTEN_ADDR=:9000 are both set and differ: using ACEMUX_LISTEN/);
  const same: string[] = [];
  loadConfig([], { ACEMUX_LISTEN: ':8080', ACEXY_LISTEN_ADDR: '8080', ACEMUX_LOG_LEVEL: 'info', ACEXY_LOG_LEVEL: 'INFO' }, (w) =>
    same.push(w),
  );
  t.same(same, [], 'the same value written two ways is no conflict');
  const broken: string[] = [];
  t.equal(
    loadConfig([], { ACEMUX_LISTEN: ':8080', ACEXY_LISTEN_ADDR: 'nowhere' }, (w) => broken.push(w)).listenPort,
    8080,
    'an unused alias is not validated',
  );
  t.match(broken, [/ACEXY_LISTEN_ADDR=nowhere are both set and differ/], 'but it is named');
  const flag: string[] = [];
  t.equal(loadConfig(['--listen', ':7000'], { ACEMUX_LISTEN: ':8080', ACEXY_LISTEN_ADDR: ':9000' }, (w) => flag.push(w)).listenPort, 7000);
  t.same(flag, [], 'a flag settles it: nothing to warn about');
});

t.test("the README's ring figures are the code's", async (t) => {
  const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');
  const row = readme.split('\n').find((l) => l.startsWith('| `--ring-size`'));
  t.ok(row, 'the README has a --ring-size row');
  const m =
    /\| `([^`]+)` \| per-stream ring[^|]*?→ (\d+) packets = ([\d,]+) bytes \(~(\d+(?:\.\d+)?) s at 4 Mb\/s, ~(\d+(?:\.\d+)?) s at 10 Mb\/s\)/.exec(
      row!,
    );
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
  t.equal(loadConfig(['--ring-size', '3MiB'], {}).batchBytes, 256 * 1024, 'batch size: 256 KiB when the ring allows');
  t.equal(loadConfig([], {}).batchBytes, Math.floor(real / 8), 'the default ring (1.5 MiB) allows only 1/8 of itself');
  t.equal(loadConfig(['--ring-size', '1MiB'], {}).batchBytes, Math.floor((4096 * TS) / 8), 'and at most 1/8 of a small ring');
});

t.test('rings grow to --ring-seconds of the bitrate, up to --ring-max (ring.ts I7)', async (t) => {
  const c = loadConfig([], {});
  t.equal(c.ringBytes, 8192 * TS, 'starts at 8192 packets');
  t.equal(c.ringMaxBytes, 65536 * TS, 'grows to 65536 at most');
  t.equal(c.ringSeconds, 3);
  t.ok(c.lagLimitFollowsRing, 'the default lag limit follows the ring as it grows');
  t.notOk(loadConfig(['--lag-limit', '1MiB'], {}).lagLimitFollowsRing, 'a set one stays put');
  t.equal(loadConfig(['--ring-seconds', '2.5'], {}).ringSeconds, 2.5);
  t.equal(loadConfig([], { ACEMUX_RING_SECONDS: '1500ms' }).ringSeconds, 1.5, 'a duration works too');
  t.equal(loadConfig(['--ring-seconds', '0'], {}).ringSeconds, 0, '0: never grows');
  t.equal(loadConfig(['--ring-size', '24MiB'], {}).ringMaxBytes, 131072 * TS, 'never below the initial size');
  t.equal(loadConfig(['--ring-max', '24MiB'], { ACEMUX_RING_SIZE: '3MiB' }).ringMaxBytes, 131072 * TS);
  t.throws(() => loadConfig(['--ring-seconds', 'soon'], {}), /ring-seconds/);
  t.throws(() => loadConfig(['--ring-seconds', '601'], {}), /ring-seconds/);
  t.throws(() => loadConfig(['--ring-max', '2GiB'], {}), /ring-max/);
});
