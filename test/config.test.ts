import t from 'tap';
import { loadConfig, parseDuration, parseSize, parseListen, helpText } from '../src/main/config';
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
  const env = { ACEXY_HOST: 'engine', ACEXY_PORT: '7000', ACEXY_LISTEN_ADDR: '127.0.0.1:9000', ACEXY_NO_RESPONSE_TIMEOUT: '2s', ACEXY_EMPTY_TIMEOUT: '1m', ACEXY_BUFFER_SIZE: '4MiB', ACEXY_LOG_LEVEL: 'DEBUG', ACEXY_SCHEME: 'https' };
  const c = loadConfig([], env);
  t.same(c.engines, ['https://engine:7000']);
  t.equal(c.listenHost, '127.0.0.1');
  t.equal(c.listenPort, 9000);
  t.equal(c.engineTimeoutMs, 2000);
  t.equal(c.firstDataTimeoutMs, 60000);
  t.equal(c.ringBytes, 4 << 20);
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
