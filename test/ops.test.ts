/**
 * Operations, end to end against the real acemux and simulator: probes, /metrics, the admin API
 * and its key, stream tokens, limits, the rewritten playlist, the journal across a restart,
 * graceful shutdown, and the dashboard rendering a live stream in headless Chromium.
 */
import t from 'tap';
import { CHROMIUM, CHROMIUM_ARGS } from './helpers/chromium';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { startSim } from './helpers/sim';
import { startAcemux, freePort } from './helpers/acemux';
import { fetchStream, getJson, sleep, contentId, type Json } from './helpers/client';

const FAST = ['--grace', '300ms', '--engine-probe', '300ms', '--stat-interval', '500ms'];

/** GET/POST/DELETE with headers, JSON answer. */
function call(
  url: string,
  method = 'GET',
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Json; headers: Record<string, unknown>; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, agent: false }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        let body: unknown = null;
        try {
          body = JSON.parse(text);
        } catch {
          /* not JSON */
        }
        resolve({ status: res.statusCode!, body, headers: res.headers as Record<string, unknown>, text });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('probes: /livez always, /readyz follows engine health', async (t) => {
  const sim = await startSim();
  const ace = await startAcemux(sim.origin, FAST);
  const dead = await startAcemux(`http://127.0.0.1:${await freePort()}`, FAST);
  t.teardown(async () => {
    await ace.stop();
    await dead.stop();
    await sim.stop();
  });
  t.equal((await call(`${ace.origin}/livez`)).status, 200);
  await sleep(800);
  const ready = await call(`${ace.origin}/readyz`);
  t.equal(ready.status, 200);
  t.equal(ready.body.ready, true);
  t.equal((await call(`${dead.origin}/livez`)).status, 200, 'alive without an engine');
  const notReady = await call(`${dead.origin}/readyz`);
  t.equal(notReady.status, 503, 'not ready without a healthy engine');
  t.equal(notReady.body.engines[0].healthy, false);
});

t.test('/metrics in Prometheus text format', async (t) => {
  const sim = await startSim(['--bitrate', '2000000']);
  const ace = await startAcemux(sim.origin, FAST);
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  const playing = fetchStream(`${ace.origin}/ace/getstream?id=${contentId(0x31)}`, { ms: 2500 });
  await sleep(1500);
  const m = await call(`${ace.origin}/metrics`);
  t.equal(m.status, 200);
  t.match(String(m.headers['content-type']), /text\/plain/);
  const lines = m.text.split('\n');
  const value = (name: string) =>
    Number(
      lines
        .find((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'))
        ?.split(' ')
        .pop(),
    );
  t.equal(value('acemux_clients'), 1);
  t.ok(value('acemux_bytes_out_total') > 100_000, 'bytes out counted');
  t.ok(value('acemux_bytes_in_total') > 100_000, 'bytes in counted');
  t.equal(value('acemux_first_byte_seconds_count'), 1, 'first-byte histogram observed the one client');
  t.ok(
    lines.some((l) => l.startsWith('acemux_streams{state="live"} 1')),
    'streams by state',
  );
  t.ok(
    lines.some((l) => l.startsWith('acemux_engine_up{')),
    'engine health',
  );
  t.ok(
    lines.some((l) => l.startsWith('acemux_event_loop_lag_seconds')),
    'event-loop lag',
  );
  t.ok(
    lines.some((l) => /^acemux_client_max_lag_bytes \d+$/.test(l)),
    'worst client lag gauge',
  );
  const ours = [...new Set(lines.filter((l) => l.startsWith('# TYPE acemux_')).map((l) => l.split(' ')))];
  for (const [, , name, type] of ours) {
    if (type === 'counter') t.match(name, /_total$/, `${name}: counters end in _total`);
  }
  await playing;
});

t.test('admin API: key required; list, detail, disconnect, next alternate, stop, engines, events', async (t) => {
  const sim = await startSim(['--bitrate', '2000000']);
  const [a, b] = [contentId(0x41), contentId(0x42)];
  const file = join(mkdtempSync(join(tmpdir(), 'acemux-ch-')), 'channels.m3u');
  writeFileSync(file, `#EXTM3U\n#EXTINF:-1 tvg-id="one",One\nacestream://${a}\n#EXTINF:-1 tvg-id="one",One HD\nacestream://${b}\n`);
  const ace = await startAcemux(sim.origin, [...FAST, '--channels', file], { ACEMUX_API_KEY: 's3cret' });
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  const api = (path: string, method = 'GET') => call(`${ace.origin}/api${path}`, method, { authorization: 'Bearer s3cret' });
  t.equal((await call(`${ace.origin}/api/streams`)).status, 401, 'no key: 401');
  t.equal((await call(`${ace.origin}/api/streams`, 'GET', { authorization: 'Bearer nope' })).status, 401, 'wrong key: 401');
  t.equal((await call(`${ace.origin}/api/streams`, 'GET', { 'x-api-key': 's3cret' })).status, 200, 'X-API-Key works');
  t.equal((await call(`${ace.origin}/ace/status`)).status, 401, 'with a key set, /ace/status needs it too (--public-status opens it)');
  t.equal((await call(`${ace.origin}/ace/status`, 'GET', { 'x-api-key': 's3cret' })).status, 200);
  const open = await call(`${ace.origin}/ace/status`, 'GET', { 'x-api-key': 's3cret' });
  t.match(open.body, { streams: 0, events: Array }, 'and answers the status itself');

  const one = fetchStream(`${ace.origin}/ace/channel/one`, { ms: 8000 });
  const two = fetchStream(`${ace.origin}/ace/channel/one`, { ms: 8000 });
  const plain = fetchStream(`${ace.origin}/ace/getstream?id=${contentId(0x43)}`, { ms: 8000 });
  await sleep(1200);
  const list = await api('/streams');
  t.equal(list.body.streams.length, 2);
  const detail = await api('/streams/one');
  t.equal(detail.status, 200);
  t.equal(detail.body.clients, 2);
  t.equal(detail.body.stream_id, a);
  t.equal((await api('/streams/ffffffffffffffffffffffffffffffffffffffff')).status, 404);
  const actor = await api('/streams/one/actor');
  t.equal(actor.status, 200, "the actor's own view, over comlink");
  t.equal(actor.body.entry, 'flowing');
  t.equal(actor.body.upstream.connected, true);
  t.equal(actor.body.psi.videoCodec, 'h264');
  t.same(
    actor.body.psi.streams.map((e: { streamType: number }) => e.streamType),
    [0x1b, 0x0f],
    'PMT: H.264 + AAC',
  );
  t.ok(actor.body.stats.bytesIn > 0);

  const victim = detail.body.client_list[0].id;
  t.equal((await api(`/streams/one/clients/${victim}`, 'DELETE')).status, 200, 'disconnect a client');
  t.equal((await api('/streams/one/clients/99999', 'DELETE')).status, 404);
  await sleep(200);
  t.equal((await api('/streams/one')).body.clients, 1);

  const next = await api('/streams/one/next', 'POST');
  t.equal(next.status, 200, 'move to the next alternate');
  t.equal(next.body.now, b);
  await sleep(1500);
  t.equal((await api('/streams/one')).body.stream_id, b, 'now playing the alternate');
  t.equal((await api(`/streams/${contentId(0x43)}/next`, 'POST')).status, 409, 'no alternates: 409');

  const stop = await api(`/streams/${contentId(0x43)}`, 'DELETE');
  t.equal(stop.status, 200);
  const ended = await plain;
  t.equal(ended.ended, 'ended-by-server', "the stopped stream's client response ended cleanly");

  const engines = await api('/engines');
  t.equal(engines.body.engines[0].url, sim.origin);
  t.equal(engines.body.engines[0].healthy, true);

  const ev = await api('/events?limit=5');
  t.equal(ev.status, 200);
  t.ok(ev.body.events.length === 5, 'a page of 5');
  t.ok(ev.body.events[0].seq > ev.body.events[4].seq, 'newest first');
  const older = await api(`/events?limit=5&before=${ev.body.next}`);
  t.ok(
    older.body.events.every((e: { seq: number }) => e.seq < ev.body.events[4].seq),
    'paging goes back',
  );
  const cuts = await api('/events?kind=client-cut');
  t.ok(cuts.body.events.length >= 1 && cuts.body.events.every((e: { kind: string }) => e.kind === 'client-cut'), 'filter by kind');
  t.equal((await api('/events?limit=-1')).status, 400);
  t.equal((await api('/nope')).status, 404);
  t.equal((await api('/engines', 'POST')).status, 405);
  await Promise.all([one, two]);
});

t.test('stream token and limits', async (t) => {
  const sim = await startSim();
  const ace = await startAcemux(sim.origin, [...FAST, '--max-clients-per-stream', '1', '--max-clients', '2'], {
    ACEMUX_STREAM_TOKEN: 'tok',
  });
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  const url = (n: number) => `${ace.origin}/ace/getstream?id=${contentId(n)}`;
  t.equal((await getJson(url(1))).status, 401, 'no token: 401');
  t.equal((await getJson(`${url(1)}&token=bad`)).status, 401);
  const first = fetchStream(`${url(1)}&token=tok`, { ms: 2000 });
  await sleep(500);
  const full = await getJson(`${url(1)}&token=tok`);
  t.equal(full.status, 503, 'per-stream limit');
  t.ok(Number(full.headers['retry-after']) > 0);
  const second = fetchStream(`${url(2)}&token=tok`, { ms: 1500 });
  await sleep(300);
  const total = await getJson(`${url(3)}&token=tok`);
  t.equal(total.status, 503, 'total client limit');
  t.match(total.body.error, /client limit/);
  t.equal((await first).status, 200);
  t.equal((await second).status, 200);
});

t.test('/playlist.m3u rewrites the source playlist to acemux links', async (t) => {
  const sim = await startSim();
  const dir = mkdtempSync(join(tmpdir(), 'acemux-pl-'));
  const src = join(dir, 'source.m3u');
  const id = contentId(0x51);
  writeFileSync(
    src,
    `#EXTM3U url-tvg="http://epg"\r\n#EXTINF:-1 tvg-id="x.1" tvg-logo="http://logo/x.png" group-title="Sport, HD",Channel X\r\nacestream://${id}\r\n#EXTINF:-1,Plain\r\nhttp://example.invalid/plain.ts\r\n#EXTINF:-1,Engine link\r\nhttp://10.1.2.3:6878/ace/getstream?id=${id}\r\n`,
  );
  const ace = await startAcemux(sim.origin, [...FAST, '--playlist', src]);
  const pub = await startAcemux(sim.origin, [...FAST, '--playlist', src], { ACEMUX_PUBLIC_URL: 'https://tv.example.org/' });
  t.teardown(async () => {
    await ace.stop();
    await pub.stop();
    await sim.stop();
  });
  const r = await call(`${ace.origin}/playlist.m3u`);
  t.equal(r.status, 200);
  t.match(String(r.headers['content-type']), /mpegurl/);
  const lines = r.text.split('\n');
  t.equal(lines[0], '#EXTM3U url-tvg="http://epg"');
  t.equal(lines[1], '#EXTINF:-1 tvg-id="x.1" tvg-logo="http://logo/x.png" group-title="Sport, HD",Channel X', 'attributes kept');
  t.equal(lines[2], `${ace.origin}/ace/getstream?id=${id}`, 'acestream:// rewritten with the request Host');
  t.equal(lines[4], 'http://example.invalid/plain.ts', 'other links untouched');
  t.equal(lines[6], `${ace.origin}/ace/getstream?id=${id}`, 'engine links rewritten');
  const p = await call(`${pub.origin}/playlist.m3u`);
  t.equal(p.text.split('\n')[2], `https://tv.example.org/ace/getstream?id=${id}`, 'ACEMUX_PUBLIC_URL wins');
  const none = await startAcemux(sim.origin, FAST);
  t.teardown(() => none.stop());
  t.equal((await call(`${none.origin}/playlist.m3u`)).status, 404, 'none configured: 404');
  // With a stream token the playlist is asked for it before its source is even read.
  const locked = await startAcemux(sim.origin, [...FAST, '--playlist', 'http://127.0.0.1:1/unreachable.m3u'], {
    ACEMUX_STREAM_TOKEN: 'tok',
  });
  t.teardown(() => locked.stop());
  t.equal((await call(`${locked.origin}/playlist.m3u`)).status, 401, 'no token: 401, not the source fetch failing');
  t.equal((await call(`${locked.origin}/playlist.m3u?token=tok`)).status, 502, 'with the token the source is fetched (and fails here)');
});

t.test('the event journal survives a restart; SIGTERM shuts down cleanly', async (t) => {
  const sim = await startSim();
  const state = mkdtempSync(join(tmpdir(), 'acemux-journal-'));
  const first = await startAcemux(sim.origin, [...FAST, '--state-dir', state]);
  const playing = fetchStream(`${first.origin}/ace/getstream?id=${contentId(0x61)}`, { ms: 20_000 });
  await sleep(1500);
  const t0 = Date.now();
  const code = await first.stop(); // SIGTERM
  const r = await playing;
  t.equal(code, 0, 'exit code 0');
  t.ok(Date.now() - t0 < 10_000, `exited within the bound (${Date.now() - t0} ms)`);
  t.equal(r.ended, 'ended-by-server', 'the client response was ended cleanly');
  t.ok((await sim.stats()).stopCommands >= 1, 'the engine session was stopped');
  const second = await startAcemux(sim.origin, [...FAST, '--state-dir', state]);
  t.teardown(async () => {
    await second.stop();
    await sim.stop();
  });
  const ev = await call(`${second.origin}/api/events?limit=100`);
  const kinds = ev.body.events.map((e: { kind: string }) => e.kind);
  t.ok(
    kinds.includes('stream-start') && kinds.includes('client-session') && kinds.includes('stream-stop'),
    `history from before the restart: ${kinds.join(',')}`,
  );
  const last = Math.max(...ev.body.events.map((e: { seq: number }) => e.seq));
  const fresh = fetchStream(`${second.origin}/ace/getstream?id=${contentId(0x62)}`, { ms: 500 });
  await fresh;
  await sleep(200);
  const after = await call(`${second.origin}/api/events?limit=1`);
  t.ok(after.body.events[0].seq > last, 'event numbers continue after the restart');
});

t.test(
  'dashboard renders a running stream and its client count in headless Chromium',
  { skip: existsSync(CHROMIUM) ? false : 'chromium not installed (CI installs it)', timeout: 90_000 },
  async (t) => {
    const { chromium } = await import('playwright-core');
    const sim = await startSim(['--bitrate', '2000000']);
    const ace = await startAcemux(sim.origin, FAST, { ACEMUX_API_KEY: 'k' });
    const id = contentId(0x71);
    const players = [
      fetchStream(`${ace.origin}/ace/getstream?id=${id}`, { ms: 9000 }),
      fetchStream(`${ace.origin}/ace/getstream?id=${id}`, { ms: 9000 }),
    ];
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: CHROMIUM_ARGS,
    });
    t.teardown(async () => {
      await browser.close();
      await ace.stop();
      await sim.stop();
    });
    const page = await browser.newPage();
    await page.goto(`${ace.origin}/?key=k`);
    const sel = `[data-testid="clients-${id}"]`;
    await page.waitForSelector(sel, { timeout: 10_000 });
    await page.waitForFunction(`document.querySelector(${JSON.stringify(sel)})?.textContent?.trim() === '2'`, undefined, {
      timeout: 10_000,
    });
    t.equal((await page.textContent(sel))?.trim(), '2', 'two clients shown');
    t.match(await page.textContent('body'), /live/i, 'the stream state is shown');
    await Promise.all(players);
  },
);
