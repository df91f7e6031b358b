/**
 * Operator surfaces under attack (issue 9, defects 6, 10, 13, 14): what the API key guards, the
 * opt-outs, the dashboard's cookie, cross-origin admin calls, key guessing, malformed escapes and
 * live-feed viewers that stop reading.
 */
import t from 'tap';
import { createServer, type IncomingMessage } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { startSim } from '../helpers/sim';
import { startAcemux } from '../helpers/acemux';
import { contentId } from '../helpers/client';
import { call, play, until } from '../helpers/raw';
import { Admin, LIVE_BEHIND } from '../../src/main/http/admin';
import { KeyGuard, FAILS_PER_WINDOW, FAIL_WINDOW_MS } from '../../src/main/http/guard';
import type { Supervisor } from '../../src/main/supervision/supervisor';
import type { EnginePool } from '../../src/main/engine/engines';

const FAST = ['--grace', '300ms', '--engine-probe', '300ms'];

t.test('with an API key: status, metrics, dashboard and API need it; streams and probes do not', async (t) => {
  const sim = await startSim(['--bitrate', '1000000']);
  const ace = await startAcemux(sim.origin, FAST, { ACEMUX_API_KEY: 'k3y' });
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  for (const path of ['/', '/dashboard']) {
    const page = await call(ace.origin + path);
    t.equal(page.status, 200, `${path} without the key: the page shell, which asks for the key`);
    t.notMatch(page.text, /k3y/, 'and holds no secret');
  }
  t.equal((await call(`${ace.origin}/?key=wrong`)).status, 401, 'a wrong ?key= on the page is refused');
  for (const path of ['/ace/status', '/ace/status?id=' + contentId(1), '/metrics', '/api/streams', '/api/live']) {
    const r = await call(ace.origin + path);
    t.equal(r.status, 401, `${path} without the key: 401`);
    t.equal(r.body?.code, 'ACEMUX_ERR_UNAUTHORIZED');
    t.equal(r.headers['www-authenticate'], 'Bearer');
  }
  for (const path of ['/ace/status', '/metrics', '/api/streams']) {
    t.equal((await call(ace.origin + path, { headers: { authorization: 'Bearer k3y' } })).status, 200, `${path} with the key`);
  }
  t.equal((await call(`${ace.origin}/livez`)).status, 200, 'probes stay open');
  t.equal(
    (await play(`${ace.origin}/ace/getstream?id=${contentId(2)}`, 600)).status,
    200,
    'streams need the stream token, not the API key',
  );

  // The dashboard trades ?key= for an HttpOnly, SameSite=Strict cookie, once.
  const first = await call(`${ace.origin}/?key=k3y`);
  t.equal(first.status, 303);
  t.equal(first.headers.location, '/', 'the key leaves the address bar');
  const setCookie = String(first.headers['set-cookie']);
  t.match(setCookie, /HttpOnly/);
  t.match(setCookie, /SameSite=Strict/);
  t.notMatch(setCookie, /k3y/, 'the cookie is not the key');
  const jar = setCookie.split(';')[0]!;
  const page = await call(`${ace.origin}/`, { headers: { cookie: jar } });
  t.equal(page.status, 200);
  t.match(page.text, /<html/i);
  t.equal((await call(`${ace.origin}/api/streams`, { headers: { cookie: jar } })).status, 200, 'the cookie opens the API the page calls');
  t.equal(
    (await call(`${ace.origin}/api/streams`, { headers: { cookie: 'acemux_session=forged' } })).status,
    401,
    'a forged cookie does not',
  );
  const live = await new Promise<IncomingMessage>((resolve) => {
    const s = connect(ace.port, '127.0.0.1', () => s.write(`GET /api/live HTTP/1.1\r\nHost: x\r\nCookie: ${jar}\r\n\r\n`));
    s.once('data', (d) => {
      t.match(d.toString(), /^HTTP\/1\.1 200[^]*text\/event-stream[^]*event: snapshot/, 'the live feed with the cookie');
      s.destroy();
      resolve(null as never);
    });
  });
  void live;
});

t.test('opt-outs: --public-metrics and --public-status open only those', async (t) => {
  const sim = await startSim();
  const ace = await startAcemux(sim.origin, [...FAST, '--public-metrics', 'true', '--public-status', '1'], { ACEMUX_API_KEY: 'k3y' });
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  t.equal((await call(`${ace.origin}/metrics`)).status, 200);
  t.equal((await call(`${ace.origin}/ace/status`)).status, 200);
  t.equal((await call(`${ace.origin}/api/live`)).status, 401, "the dashboard's feed still needs the key");
  t.equal((await call(`${ace.origin}/api/engines`)).status, 401, 'the API still needs the key');
});

t.test('cross-origin admin calls are refused, with or without a key', async (t) => {
  const sim = await startSim(['--bitrate', '1000000']);
  const ace = await startAcemux(sim.origin, FAST);
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  const id = contentId(0x31);
  const player = play(`${ace.origin}/ace/getstream?id=${id}`, 4000);
  await until(async () => (await call(`${ace.origin}/ace/status?id=${id}`)).status === 200, 10_000, 'the stream');
  const stop = `${ace.origin}/api/streams/${id}/stop`;
  const host = `127.0.0.1:${ace.port}`;
  const forms: Array<[string, Record<string, string>]> = [
    [
      'a form on another site',
      { origin: 'http://evil.example', 'sec-fetch-site': 'cross-site', 'content-type': 'application/x-www-form-urlencoded' },
    ],
    ['Origin only', { origin: 'http://evil.example' }],
    ['Sec-Fetch-Site only', { 'sec-fetch-site': 'same-site' }],
    ['a sandboxed page', { origin: 'null' }],
    ['another port of this host', { origin: 'http://127.0.0.1:1' }],
  ];
  for (const [what, headers] of forms) {
    const r = await call(stop, { method: 'POST', headers, body: 'x=1' });
    t.equal(r.status, 403, `${what}: 403`);
    t.equal(r.body.code, 'ACEMUX_ERR_FORBIDDEN');
  }
  t.equal(
    (await call(`${ace.origin}/api/streams/${id}`, { method: 'DELETE', headers: { origin: 'http://evil.example' } })).status,
    403,
    'DELETE too',
  );
  t.equal((await call(`${ace.origin}/ace/status?id=${id}`)).status, 200, 'the stream still runs');
  const same = await call(stop, { method: 'POST', headers: { origin: `http://${host}`, 'sec-fetch-site': 'same-origin' } });
  t.equal(same.status, 200, 'the same origin may');
  await player;
  t.equal((await call(stop, { method: 'POST' })).status, 404, 'a client that is not a browser (no Origin) may');
});

t.test('wrong keys are throttled per address; malformed escapes answer 400', async (t) => {
  const sim = await startSim();
  const ace = await startAcemux(sim.origin, FAST, { ACEMUX_API_KEY: 'k3y' });
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  const url = `${ace.origin}/api/streams`;
  const guess = (key: string, localAddress: string) => call(url, { headers: { 'x-api-key': key }, localAddress });
  for (let i = 0; i < FAILS_PER_WINDOW; i++) t.equal((await guess(`guess${i}`, '127.0.0.8')).status, 401);
  const throttled = await guess('guess-more', '127.0.0.8');
  t.equal(throttled.status, 429, 'then 429');
  t.equal(throttled.body.code, 'ACEMUX_ERR_TOO_MANY');
  t.ok(
    Number(throttled.headers['retry-after']) > 0 && Number(throttled.headers['retry-after']) <= FAIL_WINDOW_MS / 1000,
    'with Retry-After',
  );
  t.equal((await guess('k3y', '127.0.0.8')).status, 429, 'even the right key, while throttled: guessing gains nothing');
  t.equal((await guess('k3y', '127.0.0.9')).status, 200, 'other addresses are not affected');
  t.equal((await call(`${ace.origin}/metrics`, { localAddress: '127.0.0.8' })).status, 429, 'every keyed surface shares the throttle');

  for (const bad of ['%E0%A4%A', '%', '%zz', 'a%2']) {
    const r = await call(`${ace.origin}/api/streams/${bad}`, { headers: { 'x-api-key': 'k3y' } });
    t.equal(r.status, 400, `/api/streams/${bad}: 400`);
    t.equal(r.body.code, 'ACEMUX_ERR_BAD_REQUEST');
  }
});

/** tap matches a thrown error against an object's fields; its types only name Error shapes. */
const withStatus = (status: number) => ({ status }) as unknown as Error;

t.test('key throttle window ends; the failing-address table is bounded', async (t) => {
  let now = 1_000_000;
  const g = new KeyGuard('k', () => now);
  const req = (addr: string, key: string) =>
    ({ socket: { remoteAddress: addr }, headers: { 'x-api-key': key } }) as unknown as IncomingMessage;
  const u = new URL('http://x/api/streams');
  for (let i = 0; i < FAILS_PER_WINDOW; i++) t.throws(() => g.check(req('10.0.0.1', 'no'), u), withStatus(401));
  t.throws(() => g.check(req('10.0.0.1', 'k'), u), withStatus(429));
  t.throws(() => g.check(req('::ffff:10.0.0.1', 'k'), u), withStatus(429), 'IPv4-mapped IPv6 is the same address');
  now += FAIL_WINDOW_MS;
  t.equal(g.check(req('10.0.0.1', 'k'), u), 'header', 'a window later the address may try again');
  let refused = 0;
  for (let i = 0; i < 20_000; i++) {
    try {
      g.check(req(`10.1.${i >> 8}.${i & 255}`, 'no'), u);
    } catch {
      refused++;
    }
  }
  t.equal(refused, 20_000, 'every wrong key refused');
  t.ok((g as unknown as { fails: Map<string, unknown> }).fails.size <= 10_000, 'at most 10,000 addresses remembered');
});

t.test('/api/live viewers that stop reading are cut; readers are not', async (t) => {
  // The real Admin on a real socket, fed by a stand-in supervisor whose snapshots are large and
  // pushed every 5 ms, so the kernel's buffers fill in well under a second.
  const big = Array.from({ length: 20 }, (_, i) => ({ seq: i, kind: 'x', text: 'e'.repeat(2000) }));
  const sup = {
    streams: new Map(),
    events: { last: () => big, subscribe: () => () => {} },
    engineLoads: () => new Map(),
  } as unknown as Supervisor;
  const admin = new Admin(sup, { engines: [] } as unknown as EnginePool, null, new KeyGuard(''), { liveMs: 5 });
  let cut!: () => void;
  const stalledCut = new Promise<void>((r) => (cut = r));
  const server = createServer((req, res) => {
    if (req.headers['x-who'] === 'stalled') res.on('close', () => cut());
    void admin.handle(req, res, new URL(req.url!, 'http://x'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    admin.close();
    server.closeAllConnections();
    server.close();
  });
  const port = (server.address() as AddressInfo).port;
  const open = (who: 'reader' | 'stalled') => {
    const s = connect(port, '127.0.0.1', () => s.write(`GET /api/live HTTP/1.1\r\nHost: x\r\nX-Who: ${who}\r\n\r\n`));
    let bytes = 0;
    s.on('error', () => {});
    s.on('data', (d) => {
      bytes += d.length;
      if (who === 'stalled') s.pause();
    });
    return {
      s,
      get bytes() {
        return bytes;
      },
    };
  };
  const reader = open('reader');
  const stalled = open('stalled');
  const t0 = Date.now();
  await stalledCut;
  t.ok(Date.now() - t0 < 15_000, `the stalled viewer was cut after ${Date.now() - t0} ms (at most ${LIVE_BEHIND} snapshots behind)`);
  t.notOk(reader.s.destroyed, 'the reading viewer stays');
  const before = reader.bytes;
  await until(() => reader.bytes > before + 500_000, 5000, 'the reader to keep receiving');
  stalled.s.destroy();
  reader.s.destroy();
});
