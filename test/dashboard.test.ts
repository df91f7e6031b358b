import t from 'tap';
import { CHROMIUM, CHROMIUM_ARGS, noChromium } from './helpers/chromium';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dashboardHtml } from '../src/main/ops/dashboard';

/** Browser-side checks are expressions evaluated in the page (this project compiles without the DOM lib). */
const text = (sel: string) => `document.querySelector(${JSON.stringify(sel)})?.textContent`;
const A = 'a'.repeat(8) + '0123456789abcdef0123456789abcdef';
const B = 'b'.repeat(40);

t.test('the page is self-contained and cached', async (t) => {
  const html = dashboardHtml();
  t.equal(dashboardHtml(), html, 'same string from the cache');
  t.match(html, /^<!doctype html>/i);
  t.match(html, "new EventSource(withKey('/api/live'))");
  t.match(html, "'X-API-Key': key", 'controls send the key as a header');
  t.notMatch(html, /<(script|link|img|iframe)[^>]+(src|href)=/i, 'loads nothing');
  const urls = html.match(/https?:\/\/[^\s'"<>)]+/g) ?? [];
  t.same(urls, ['http://www.w3.org/2000/svg'], 'the only URL is the SVG namespace, which is never fetched');
  t.notMatch(html, /innerHTML|outerHTML|insertAdjacentHTML|document\.write/, 'server data never becomes markup');
});

t.test('looks in the checkout first, then beside dashboard.js; reads once', async (t) => {
  const fs = await import('node:fs');
  const load = (answers: Array<string | NodeJS.ErrnoException>) => {
    const asked: string[] = [];
    const mod = t.mockRequire('../src/main/ops/dashboard', {
      'node:fs': {
        ...fs,
        readFileSync: (path: string) => {
          asked.push(path);
          const a = answers.shift()!;
          if (typeof a !== 'string') throw a;
          return a;
        },
      },
    }) as typeof import('../src/main/ops/dashboard');
    return { mod, asked };
  };
  const err = (code: string) => Object.assign(new Error(code), { code });

  const fallback = load([err('ENOENT'), '<html>beside</html>']);
  t.equal(fallback.mod.dashboardHtml(), '<html>beside</html>');
  t.equal(fallback.mod.dashboardHtml(), '<html>beside</html>');
  t.equal(fallback.asked.length, 2, 'two paths tried, then cached');
  t.match(fallback.asked[0], /src[/\\]main[/\\]ops[/\\]dashboard\.html$/);
  t.match(fallback.asked[1], /dashboard\.html$/);

  const none = load([err('ENOENT'), err('ENOENT')]);
  t.throws(() => none.mod.dashboardHtml(), /dashboard\.html not found/);
  const denied = load([err('EACCES')]);
  t.throws(() => denied.mod.dashboardHtml(), /EACCES/, 'other errors are not hidden');
});

/** A stream status shaped like routes.ts describe(). */
function stream(id: string, tick: number, clients: number) {
  return {
    clients,
    stream_id: id,
    stat_url: null,
    state: tick < 2 ? 'starting' : 'live',
    selector: 'id',
    engine: 'http://engine:6878',
    pid: 'acemux-1',
    uptime_s: tick * 0.3,
    bytes_in: tick * 60_000,
    bytes_out: tick * 60_000 * clients,
    bitrate: 1_400_000,
    video_codec: 'h264',
    join_points: tick,
    junk_bytes: 0,
    null_packets: 0,
    ring_bytes: 6_160_384,
    skips: 0,
    cuts: 0,
    engine_stat: null,
    client_list: Array.from({ length: clients }, (_, i) => ({
      id: i + 1,
      remote: `10.0.0.${i + 1}:5000`,
      since: new Date().toISOString(),
      bytes: tick * 60_000,
      lag_bytes: 188 * i,
      skips: 0,
      user_agent: i === 0 ? 'VLC/3.0.20 LibVLC/3.0.20' : null,
    })),
  };
}

const skip = noChromium;

t.test('renders and updates from the live feed in headless Chromium', { timeout: 60_000, skip }, async (t) => {
  const { chromium } = await import('playwright-core');

  const liveUrls: string[] = [];
  const eventUrls: string[] = [];
  const feeds = new Set<ServerResponse>();
  let tick = 0;
  const snapshot = () => {
    tick++;
    const streams = [stream(A, tick, 1 + (tick % 4))];
    if (tick >= 3 && tick < 8) streams.push(stream(B, tick - 2, 2));
    return {
      time: Date.now(),
      streams,
      engines: [
        { url: 'http://engine:6878', healthy: true, version: '3.2.3', streams: streams.length },
        { url: 'http://engine2:6878', healthy: false, streams: 0, lastError: 'connect ECONNREFUSED' },
      ],
      // 30 events, oldest first as EventLog.last() gives them; the newest is seq tick + 29.
      events: Array.from({ length: 30 }, (_, i) => ({
        seq: tick + i,
        time: Date.now() - (30 - i) * 1000,
        kind: i % 5 === 4 ? 'client-cut' : 'stream-start',
        stream: `id=${A}`,
        reason: i % 5 === 4 ? '<img src=x onerror="window.pwned=1">' : undefined,
        remote: '10.0.0.9:4000',
        lag_bytes: 4 << 20,
        bytes: 1 << 30,
        id: A,
      })),
    };
  };
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(dashboardHtml());
    } else if (url.pathname === '/api/events') {
      eventUrls.push(`${req.url} key:${req.headers['x-api-key']}`);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          events: [
            {
              seq: 1,
              time: Date.now() - 3_600_000,
              kind: 'give-up',
              stream: `id=${B}`,
              reason: 'no engine answered',
              attempts: 8,
              switches: 2,
            },
          ],
          next: null,
        }),
      );
    } else if (url.pathname === '/api/history') {
      // Ten minutes of samples, five seconds apart, at 1 Mb/s: more than a minute of sparkline.
      const now = Date.now();
      const samples = Array.from({ length: 120 }, (_, i) => [now - (120 - i) * 5000, i * 625_000, i * 625_000, 1]);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ sample_ms: 5000, streams: { [`id=${A}`]: samples } }));
    } else if (url.pathname === '/api/live') {
      liveUrls.push(req.url!);
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      res.write(': hello\n\n');
      feeds.add(res);
      res.on('close', () => feeds.delete(res));
    } else {
      res.writeHead(404).end();
    }
  });
  const timer = setInterval(() => {
    if (feeds.size === 0) return;
    const data = `event: snapshot\ndata: ${JSON.stringify(snapshot())}\n\n`;
    for (const f of feeds) f.write(data);
  }, 300);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  t.teardown(async () => {
    clearInterval(timer);
    await browser.close();
    for (const f of feeds) f.destroy();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  const errors: string[] = [];
  const foreign: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('request', (r) => !r.url().startsWith(origin) && foreign.push(r.url()));

  await page.goto(`${origin}/?key=s3cret`);
  const count = page.locator(`[data-testid="clients-${A}"]`);
  await count.waitFor({ timeout: 10_000 });
  t.equal(liveUrls[0], '/api/live?key=s3cret', 'the key is passed through to the feed');
  t.equal(await page.getAttribute('[data-testid="conn"]', 'data-state'), 'live', 'connection indicator says live');

  const first = (await count.textContent())!;
  t.match(first, /^[1-4]$/, 'client count rendered');
  await page.waitForFunction(`${text(`[data-testid="clients-${A}"]`)} !== ${JSON.stringify(first)}`, undefined, { timeout: 5_000 });
  t.not(await count.textContent(), first, 'client count updates');

  const row = page.locator(`[data-testid="stream-${A}"]`);
  t.match(await row.textContent(), /aaaaaaaa…cdef/, 'id shortened');
  t.match(await row.locator('.badge').textContent(), /^(starting|live)$/);
  await page.waitForFunction(`${text(`[data-testid="stream-${A}"] .badge`)} === 'live'`, undefined, { timeout: 5_000 });
  t.match(await row.textContent(), /1\.40 Mb\/s/, 'bitrate formatted');
  t.match(await row.textContent(), /h264/);

  // A second stream comes and goes.
  await page.locator(`[data-testid="clients-${B}"]`).waitFor({ timeout: 5_000 });
  t.equal(await page.locator('tr.stream').count(), 2);
  await page.locator(`[data-testid="stream-${B}"]`).waitFor({ state: 'detached', timeout: 5_000 });
  t.equal(await page.locator('tr.stream').count(), 1, 'a stream that ended leaves the table');

  // The sparkline reaches back ten minutes (seeded from /api/history), not one.
  const points = (await row.locator('svg.spark polyline').getAttribute('points'))!.split(' ');
  t.ok(points.length >= 100, `sparkline drawn from the history (${points.length} points)`);
  const xs = points.map((p) => Number(p.split(',')[0]));
  t.ok(xs[0]! < 2 && xs.at(-1)! > 118, `the line spans the ten minutes there are (x ${xs[0]}…${xs.at(-1)} of 120)`);
  t.match(await row.locator('svg.spark title').textContent(), /over the last (9m 5\ds|10m 0\ds)/, 'the title says over how long');

  // Clicking a row shows its clients, with their players.
  await row.click();
  await page.locator('tr.detail:not([hidden])').waitFor({ timeout: 2_000 });
  const detail = (await page.locator('tr.detail:not([hidden])').textContent())!;
  t.match(detail, /10\.0\.0\.1:5000/);
  t.match(detail, /VLC\/3\.0\.20 LibVLC/, 'the User-Agent is shown');

  // Engines and events.
  const engines = await page.locator('#engines li').allTextContents();
  t.equal(engines.length, 2);
  t.match(engines[0], /up.*engine:6878.*3\.2\.3/);
  t.match(engines[1], /down.*engine2:6878.*ECONNREFUSED/);
  const shown = await page.locator('#events li').allTextContents();
  t.equal(shown.length, 20, 'the newest 20 events');
  const ns = (await page
    .locator('#events li')
    .evaluateAll((lis) => lis.map((li) => Number((li as unknown as { dataset: { seq: string } }).dataset.seq)))) as number[];
  t.same(
    ns,
    [...ns].sort((a, b) => b - a),
    'newest first',
  );
  t.equal(ns[0] - ns[19], 19, 'consecutive');
  for (const line of shown) t.notMatch(line, new RegExp(A), 'no line repeats the 40-character id');
  t.notMatch(shown.join('\n'), /\b(?:reason|remote|lag_bytes|bytes|id|stream)=/, 'no raw key=value text');
  const cut = shown.find((l) => /client-cut/.test(l))!;
  t.match(
    cut,
    /Cut client 10\.0\.0\.9:4000 \(<img src=x onerror="window\.pwned=1">\), 4\.00 MiB behind, after 1\.00 GiB\./,
    'a sentence with the facts; markup shows as text',
  );
  t.match(
    shown.find((l) => /stream-start/.test(l))!,
    /aaaaaaaa…cdef.*Starting with id aaaaaaaa…cdef\./,
  );

  // Paging back through the journal, and back to the live list.
  const oldest = ns[19];
  await page.click('[data-testid="older"]');
  await page.locator('#events li[data-kind="give-up"]').waitFor({ timeout: 5_000 });
  const asked = /^\/api\/events\?limit=50&before=(\d+) key:(.*)$/.exec(eventUrls[0] ?? '');
  t.ok(asked && Number(asked[1]) >= oldest, `asks for what is older than the oldest shown (${eventUrls[0]})`);
  t.equal(asked?.[2], 's3cret', 'the key from ?key= goes out as X-API-Key');
  t.equal(await page.locator('#events li').count(), 21, 'the older page is appended');
  t.match(
    await page.locator('#events li[data-kind="give-up"]').textContent(),
    /bbbbbbbb…bbbb.*Gave up after 8 attempts and 2 switches: no engine answered\./,
  );
  t.ok(await page.locator('[data-testid="older"]').isDisabled(), 'nothing older: the button rests');
  await page.click('[data-testid="latest"]');
  await page.waitForFunction(
    `document.querySelectorAll('#events li').length === 20 && !document.querySelector('#events li[data-kind="give-up"]')`,
    undefined,
    { timeout: 5_000 },
  );
  t.ok(await page.locator('[data-testid="latest"]').isHidden(), 'back to live');
  t.equal(await page.evaluate('window.pwned'), undefined, 'and never runs');
  t.equal(await page.locator('#events img').count(), 0);
  t.match(await page.locator('#t-engines').textContent(), /1 \/ 2/);

  // The server goes away: the indicator says so.
  for (const f of feeds) f.destroy();
  server.closeAllConnections();
  await page.waitForFunction(`document.querySelector('[data-testid="conn"]').dataset.state !== 'live'`, undefined, { timeout: 5_000 });
  t.not(await page.getAttribute('[data-testid="conn"]', 'data-state'), 'live', 'connection loss shown');

  // On a phone-sized screen the table still fits its card (it scrolls inside, not the page).
  await page.setViewportSize({ width: 380, height: 800 });
  const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - document.documentElement.clientWidth');
  t.ok(overflow <= 0, `no horizontal page scroll at 380 px (${overflow})`);

  t.same(foreign, [], 'no request leaves the origin');
  t.same(
    errors.filter((e) => !/api\/live|ERR_|Failed to load resource/.test(e)),
    [],
    'no script errors',
  );
});

/**
 * Waits for a condition read through locators. acemux serves the page with a CSP without
 * 'unsafe-eval', so string predicates (waitForFunction, evaluate) cannot run in it; locators can.
 */
async function until(what: string, check: () => Promise<boolean>, ms = 10_000, seen?: () => Promise<unknown>): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check().catch(() => false))) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${seen ? `; saw ${JSON.stringify(await seen())}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

t.test('against the real acemux: names, key field, stop, disconnect, next alternate, filters', { timeout: 90_000, skip }, async (t) => {
  const { chromium } = await import('playwright-core');
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { startSim } = await import('./helpers/sim');
  const { startAcemux } = await import('./helpers/acemux');
  const { fetchStream, getJson, contentId } = await import('./helpers/client');

  const [alt1, alt2, news] = [contentId(0x81), contentId(0x82), contentId(0x83)];
  const dir = mkdtempSync(join(tmpdir(), 'acemux-dash-'));
  const channels = join(dir, 'channels.m3u');
  writeFileSync(
    channels,
    `#EXTM3U\n#EXTINF:-1 tvg-id="sport1",Sport 1\nacestream://${alt1}\n#EXTINF:-1 tvg-id="sport1",Sport 1 backup\nacestream://${alt2}\n`,
  );
  const playlist = join(dir, 'playlist.m3u');
  writeFileSync(playlist, `#EXTM3U\n#EXTINF:-1 group-title="News",News Twenty-Four\nacestream://${news}\n`);
  const KEY = 'k3y';
  const sim = await startSim(['--bitrate', '2000000']);
  const ace = await startAcemux(
    sim.origin,
    ['--channels', channels, '--playlist', playlist, '--grace', '300ms', '--stat-interval', '500ms', '--engine-probe', '500ms'],
    { ACEMUX_API_KEY: KEY },
  );
  const api = async (path: string) => (await getJson(`${ace.origin}${path}${path.includes('?') ? '&' : '?'}key=${KEY}`)).body;

  const play = (path: string, ua: string) => fetchStream(`${ace.origin}${path}`, { ms: 60_000, headers: { 'user-agent': ua } });
  const mpv = play('/ace/channel/sport-1', 'mpv 0.35.1');
  const vlc = play('/ace/channel/sport-1', 'VLC/3.0.20 LibVLC/3.0.20');
  const kodi = play(`/ace/getstream?id=${news}`, 'Kodi/21.0');

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  t.teardown(async () => {
    await browser.close();
    await ace.stop(); // ends the players still reading
    await Promise.all([mpv, vlc, kodi]);
    await sim.stop();
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const textOf = async (sel: string) => (await page.locator(sel).first().textContent()) ?? '';
  const notice = () => textOf('[data-testid="notice"]');
  const events = () => page.locator('#events li').allTextContents();

  // No key yet: the page says so instead of showing nothing.
  await page.goto(`${ace.origin}/`);
  await until('the key to be asked for', async () => (await textOf('[data-testid="conn"]')) === 'API key needed');
  t.match(await notice(), /API key is missing or wrong/);

  // Enter it: the feed comes up.
  await page.fill('[data-testid="key"]', KEY);
  await page.click('[data-testid="key-save"]');
  const sport = page.locator('tr.stream[data-key="channel=sport-1"]');
  const newsRow = page.locator(`tr.stream[data-key="id=${news}"]`);
  await sport.waitFor({ timeout: 15_000 });
  await newsRow.waitFor({ timeout: 15_000 });

  // The key is kept for this tab: a reload without it still connects.
  await page.goto(`${ace.origin}/`);
  await sport.waitFor({ timeout: 10_000 });
  t.equal(await page.getAttribute('[data-testid="conn"]', 'data-state'), 'live', 'the key came from sessionStorage');

  // Names, not ids: the channel's name, and the playlist's #EXTINF title for a bare id.
  t.equal(await sport.locator('.name b').textContent(), 'Sport 1');
  t.equal(await newsRow.locator('.name b').textContent(), 'News Twenty-Four');
  await until('two clients on Sport 1', async () => (await sport.locator('td:nth-child(3)').textContent()) === '2');
  // An HLS viewer of the same channel is counted beside the TS clients (one engine session).
  const m3u8 = await fetch(`${ace.origin}/ace/manifest.m3u8?id=${news}`);
  t.equal(m3u8.status, 200, 'an HLS viewer of News');
  await until('the HLS viewer shown', async () => (await newsRow.locator('td:nth-child(3)').textContent()) === '1 + 1 HLS');

  // Engine figures: peers and download speed from the engine's stat.
  await until('peers', async () => Number(await sport.locator('td:nth-child(7)').textContent()) > 0);
  t.match(await sport.locator('td:nth-child(8)').textContent(), /[kM]b\/s$/, 'engine download speed shown');
  t.match(await textOf('#engines li'), /peers?, .*b\/s down/, 'and summed per engine');

  // Events name the stream and never print its 40-character id.
  await until('a live event for Sport 1', async () => (await events()).some((l) => /Sport 1/.test(l) && /Live: first data/.test(l)));
  const lines = await events();
  for (const l of lines) for (const id of [alt1, alt2, news]) t.notMatch(l, new RegExp(id), 'no full id in an event line');
  t.notOk(
    lines.some((l) => /…rt-1/.test(l)),
    'no cut channel names',
  );

  // Open the channel: each client's player is shown.
  await sport.click();
  const sportDetail = page.locator('tr.stream[data-key="channel=sport-1"] + tr.detail');
  await sportDetail.locator('[data-testid^="client-"]').nth(1).waitFor({ timeout: 5_000 });
  const clientText = await sportDetail.textContent();
  t.match(clientText, /VLC\/3\.0\.20/);
  t.match(clientText, /mpv 0\.35\.1/);
  t.equal(
    await sportDetail.locator('[data-testid="play"]').getAttribute('href'),
    '/player?channel=sport-1',
    'a play button: the channel in the browser player',
  );

  // Next alternate.
  await sportDetail.locator('[data-testid="next"]').click();
  await until('the switch to be confirmed', async () => /switching to the next alternate/.test(await notice()));
  const afterNext = await api('/api/streams/channel%3Dsport-1');
  t.equal(afterNext.stream_id, alt2, 'the stream now plays the second id');
  t.equal(afterNext.faults.failover, 1, 'counted as a failover');
  await until('the operator event', async () => (await events()).some((l) => /Operator switched to the next alternate/.test(l)));
  await until('the fault count', async () => (await sport.locator('td:nth-child(9)').textContent()) === '1');
  t.equal(await sport.locator('.name b').textContent(), 'Sport 1', 'same row, same name after the switch');
  t.equal(await page.locator('tr.stream[data-key="channel=sport-1"]').count(), 1);

  // Disconnect the VLC client: only it goes.
  const vlcRow = sportDetail.locator('[data-testid^="client-"]', { hasText: 'VLC/3.0.20' });
  await vlcRow.locator('button[data-testid^="disconnect-"]').click();
  const cut = await vlc;
  t.not(cut.ended, 'closed-by-us', 'the VLC client was cut by acemux');
  await until('the disconnect to be confirmed', async () => /Disconnected .* from Sport 1\./.test(await notice()));
  await until('one client left', async () => (await sport.locator('td:nth-child(3)').textContent()) === '1');
  t.match(await sportDetail.textContent(), /mpv 0\.35\.1/, 'the other client stays');

  // Stop the news stream: the first click only arms the button.
  await newsRow.click();
  const stop = page.locator(`tr.stream[data-key="id=${news}"] + tr.detail [data-testid="stop"]`);
  await stop.click();
  t.equal(await stop.textContent(), 'Click again to stop');
  t.equal((await api('/api/streams')).streams.length, 2, 'one click stops nothing');
  await stop.click();
  const stopped = await kodi;
  t.not(stopped.ended, 'closed-by-us', 'the news client was ended by the stop');
  await until('the stop to be confirmed', async () => /Stopped News Twenty-Four\./.test(await notice()));
  await newsRow.waitFor({ state: 'detached', timeout: 5_000 });

  // Filters: by kind, then by stream (through /api/events, with the key).
  // Read in one call: the list is replaced while the filtered page arrives.
  const kinds = () => page.locator('#events li .badge').allTextContents();
  await page.selectOption('[data-testid="filter-kind"]', 'stream-stop');
  await until(
    'only stream-stop events',
    async () => {
      const k = await kinds();
      return k.length > 0 && k.every((x) => x === 'stream-stop');
    },
    10_000,
    events,
  );
  t.match(await textOf('#events li'), /News Twenty-Four.*Stopped: stopped by operator\./);
  await page.selectOption('[data-testid="filter-kind"]', '');
  await page.selectOption('[data-testid="filter-stream"]', 'channel=sport-1');
  await until("only Sport 1's events", async () => {
    const names = await page.locator('#events li .evstream').allTextContents();
    return names.length >= 3 && names.length === (await page.locator('#events li').count()) && names.every((n) => n === 'Sport 1');
  });
  const got = await kinds();
  t.ok(got.includes('failover') && got.includes('client-cut') && got.includes('stream-start'), `the channel's history: ${got.join(', ')}`);

  // The history the sparklines are seeded from: 5 s samples of the running stream.
  await until('a history sample', async () => ((await api('/api/history')).streams['channel=sport-1']?.length ?? 0) >= 1, 8_000);
  const [sample] = (await api('/api/history')).streams['channel=sport-1'];
  t.equal(sample.length, 4, '[time, bytes out, bytes in, clients]');
  t.ok(sample[1] > 0 && sample[2] > 0, 'bytes counted');

  t.same(errors, [], 'no script errors');
});
