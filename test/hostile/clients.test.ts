/**
 * Hostile clients against the real acemux and simulator: pipelining into streams, a flood from
 * one address, parameters that would open engine sessions, and the stream limit (issue 9,
 * defects 1 and 3).
 */
import t from 'tap';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startSim } from '../helpers/sim';
import { startAcemux } from '../helpers/acemux';
import { contentId, getJson, aligned, type Json } from '../helpers/client';
import { raw, call, play, until } from '../helpers/raw';

const get = (id: string) => `GET /ace/getstream?id=${id} HTTP/1.1\r\nHost: x\r\n\r\n`;
const clientsOf = async (origin: string, id: string) => {
  const r = await getJson(`${origin}/ace/status?id=${id}`);
  return r.status === 200 ? (r.body.clients as number) : 0;
};

t.test('pipelined stream requests on one connection make one viewer', async (t) => {
  const sim = await startSim(['--bitrate', '2000000']);
  const ace = await startAcemux(sim.origin, ['--grace', '200ms']);
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  const id = contentId(0x901);
  const reading = raw(ace.port, get(id).repeat(6), { bytes: 1_000_000, timeoutMs: 15_000 });
  let status: Json = null;
  await until(
    async () => {
      status = (await getJson(`${ace.origin}/ace/status?id=${id}`)).body;
      return status?.client_list?.[0]?.bytes > 200_000;
    },
    10_000,
    'a viewer with 200 kB',
  );
  t.equal(status.clients, 1, 'six pipelined requests, one viewer');
  const r = await reading;
  t.equal(r.end, 'enough', 'the one viewer plays');
  const text = r.data.toString('latin1');
  t.equal(text.split('HTTP/1.1 ').length - 1, 1, 'one response on the connection');
  const body = r.data.subarray(text.indexOf('\r\n\r\n') + 4);
  t.ok(aligned(body.subarray(0, Math.floor(body.length / 188) * 188)), 'one clean TS stream, not interleaved copies');
  t.equal((await sim.stats()).sessionsStarted, 1);
  await until(async () => (await clientsOf(ace.origin, id)) === 0, 5000, 'the viewer to leave');

  // Far more than a player would ever send: the connection is cut, nothing queues.
  const flood = await raw(ace.port, get(id).repeat(2000), { timeoutMs: 10_000 });
  t.not(flood.end, 'timeout', 'a connection pipelining thousands of requests is closed');
  t.ok((await clientsOf(ace.origin, id)) <= 1, 'it never held more than one slot');
  await until(async () => (await clientsOf(ace.origin, id)) === 0, 5000, 'no viewer left behind');
  const after = await play(`${ace.origin}/ace/getstream?id=${id}`, 1500);
  t.equal(after.status, 200, 'a normal viewer still plays');
  t.ok(after.bytes > 0);
});

t.test('garbage after a stream request ends that connection and never lands in a stream', async (t) => {
  const sim = await startSim(['--bitrate', '2000000']);
  const ace = await startAcemux(sim.origin, ['--grace', '200ms']);
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  const id = contentId(0x904);
  const r = await raw(ace.port, `${get(id)}NOT HTTP AT ALL\r\n\r\n`, { timeoutMs: 8000 });
  t.not(r.end, 'timeout', 'the connection ends');
  t.notMatch(r.data.toString('latin1'), /HTTP\/1\.1 400/, 'no error text written where a stream goes');
  const v = await play(`${ace.origin}/ace/getstream?id=${id}`, 1000);
  t.equal(v.status, 200, 'others play');
  t.ok(v.bytes > 0);
});

t.test('a stream request pipelined behind another request waits its turn', async (t) => {
  const sim = await startSim(['--bitrate', '2000000']);
  const ace = await startAcemux(sim.origin, ['--grace', '200ms']);
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  const id = contentId(0x902);
  const r = await raw(ace.port, `GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n${get(id)}${get(id)}`, { bytes: 200_000, timeoutMs: 15_000 });
  const text = r.data.toString('latin1');
  t.match(text, /^HTTP\/1\.1 200 OK\r\n[^]*acemux_streams/, 'the first answer comes first, whole');
  t.equal(text.split('HTTP/1.1 ').length - 1, 2, 'then one stream answer; the third request never starts');
  t.match(text, /HTTP\/1\.1 200 OK\r\n(?:[^\r]+\r\n)*content-type: video\/mp2t/i, 'the second is the stream');
});

t.test('per-address limit: a flood from one address never locks out others', async (t) => {
  const sim = await startSim(['--bitrate', '1000000']);
  // Without the per-address limit, 12 flooding clients would take all 10 slots of the stream.
  const ace = await startAcemux(sim.origin, ['--grace', '200ms', '--max-clients-per-ip', '3', '--max-clients-per-stream', '10']);
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  const id = contentId(0x903);
  const url = `${ace.origin}/ace/getstream?id=${id}`;
  const flood = await Promise.all(Array.from({ length: 12 }, () => play(url, 3000, '127.0.0.2')));
  const others = await Promise.all(['127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6'].map((a) => play(url, 1500, a)));
  const ok = flood.filter((r) => r.status === 200);
  const refused = flood.filter((r) => r.status === 429);
  t.equal(ok.length, 3, 'the flooding address gets its 3 viewers');
  t.equal(refused.length, 9, 'and 429 for the rest');
  t.equal(refused[0]!.body.code, 'ACEMUX_ERR_TOO_MANY');
  t.match(refused[0]!.body.error, /address/);
  t.same(
    others.map((r) => r.status),
    [200, 200, 200, 200],
    'every other address plays',
  );
  t.ok(others.every((r) => r.bytes > 0));
  await until(async () => (await clientsOf(ace.origin, id)) === 0, 8000, 'the flood to end');
  t.equal((await play(url, 800, '127.0.0.2')).status, 200, 'slots come back when viewers leave');
});

t.test('stream identity: only engine parameters count, parsed once, canonically', async (t) => {
  const sim = await startSim(['--bitrate', '1000000']);
  // A recording stand-in in front of the engine: which getstream queries reach it.
  const asked: URLSearchParams[] = [];
  const front = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    if (u.pathname === '/ace/getstream') asked.push(u.searchParams);
    const up = httpRequest(`${sim.origin}${req.url}`, { method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode!, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    res.on('close', () => up.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
  const engine = `http://127.0.0.1:${(front.address() as AddressInfo).port}`;
  const ace = await startAcemux(engine, ['--grace', '300ms']);
  t.teardown(async () => {
    await ace.stop();
    front.closeAllConnections();
    front.close();
    await sim.stop();
  });
  const x = contentId(0x911);
  const players = Array.from({ length: 40 }, (_, i) => play(`${ace.origin}/ace/getstream?id=${x}&x=${i}&_=${i * 7}`, 2000));
  await until(async () => (await clientsOf(ace.origin, x)) === 40, 10_000, '40 viewers');
  t.equal((await getJson(`${ace.origin}/ace/status`)).body.streams, 1, '40 spellings with extra parameters: one stream');
  t.equal(asked.length, 1, 'one engine session');
  t.equal(asked[0]!.get('x'), null, "parameters that are not the engine's are not sent to it");
  t.equal(asked[0]!.get('_'), null);
  await Promise.all(players);

  const y = contentId(0x912);
  const a = play(`${ace.origin}/ace/getstream?id=${y}&transcode_audio=1&preferred_audio_language=ENG`, 2500);
  await until(async () => (await clientsOf(ace.origin, y)) === 1, 10_000, 'first spelling');
  const b = play(
    `${ace.origin}/ace/getstream?preferred_audio_language=eng&transcode_mp3=0&content_id=${y.toUpperCase()}&transcode_audio=%31&cb=9`,
    1500,
  );
  await until(async () => (await clientsOf(ace.origin, y)) === 2, 10_000, 'second spelling on the same stream');
  t.equal(
    asked.filter((q) => (q.get('id') ?? '').toLowerCase() === y).length,
    1,
    'two spellings of one request share a stream and its engine session',
  );
  const sent = asked.at(-1)!;
  t.equal(sent.get('transcode_audio'), '1', 'engine parameters are passed on');
  t.equal(sent.get('preferred_audio_language'), 'eng', 'canonically');
  t.equal(sent.get('transcode_mp3'), null, '0 is the same as absent');
  await Promise.all([a, b]);

  // An escaped "&" is a value, never another parameter: refused, not mistaken for a second one.
  const z = contentId(0x913);
  const smuggled = await call(`${ace.origin}/ace/getstream?id=${z}&preferred_audio_language=eng%26transcode_audio%3D1`);
  t.equal(smuggled.status, 400);
  t.equal(smuggled.body.code, 'ACEMUX_ERR_BAD_REQUEST');
  const bad = await call(`${ace.origin}/ace/getstream?id=${z}&transcode_ac3=yes`);
  t.equal(bad.status, 400);
  t.match(bad.body.error, /transcode_ac3 must be 0 or 1/);
  t.equal((await call(`${ace.origin}/ace/getstream?id=${z}&transcode_audio=1&transcode_audio=1`)).status, 400, 'each parameter once');
});

t.test('stream limit: past it 503 with Retry-After, coded', async (t) => {
  const sim = await startSim(['--bitrate', '1000000']);
  const ace = await startAcemux(sim.origin, ['--grace', '200ms', '--max-streams', '2']);
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  const ids = [contentId(0x921), contentId(0x922)];
  const players = ids.map((id) => play(`${ace.origin}/ace/getstream?id=${id}`, 2500));
  await until(async () => (await getJson(`${ace.origin}/ace/status`)).body.streams === 2, 10_000, 'two streams');
  const third = await call(`${ace.origin}/ace/getstream?id=${contentId(0x923)}`);
  t.equal(third.status, 503);
  t.equal(third.body.code, 'ACEMUX_ERR_LIMIT');
  t.match(third.body.error, /stream limit reached \(2\)/);
  t.ok(Number(third.headers['retry-after']) > 0, 'Retry-After set');
  const more = await play(`${ace.origin}/ace/getstream?id=${ids[0]}`, 800);
  t.equal(more.status, 200, 'viewers of a running stream are not limited by it');
  await Promise.all(players);
});
