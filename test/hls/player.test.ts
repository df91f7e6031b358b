/**
 * The browser player (/player): hls.js served by acemux itself, playing in headless Chromium.
 * hls.js is an optional package: without it /player/hls.min.js answers a coded 404, the page says
 * so, and the playback test is skipped with that reason.
 */
import t from 'tap';
import { CHROMIUM, CHROMIUM_ARGS } from '../helpers/chromium';
import { existsSync } from 'node:fs';
import { startSim, type SimHandle } from '../helpers/sim';
import { startAcemux, type Acemux } from '../helpers/acemux';
import { contentId, sleep } from '../helpers/client';
import { get } from '../helpers/hls';

let hlsInstalled = true;
try {
  require.resolve('hls.js/dist/hls.min.js');
} catch {
  hlsInstalled = false;
}
// The page's CSP forbids eval, so checks run as functions (sent over CDP), not strings. The project
// compiles without the DOM lib: the page is reached through globalThis.
type PageGlobals = {
  playerState?: string;
  playerErrors?: string[];
  document: { querySelector(s: string): { currentTime: number; textContent: string } };
};
const noChromium = existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed`;

let sim: SimHandle;
let ace: Acemux;
t.before(async () => {
  sim = await startSim();
  ace = await startAcemux(sim.origin, ['--hls-segment', '2s', '--grace', '1s']);
});
t.teardown(async () => {
  await ace?.stop();
  await sim?.stop();
});

t.test('the page and the hls.js route', async (t) => {
  const page = await get(`${ace.origin}/player`);
  t.equal(page.status, 200);
  t.match(page.headers['content-security-policy'], "script-src 'self'", 'scripts only from acemux itself');
  t.match(page.body.toString(), '<script src="/player/hls.min.js"', 'hls.js comes from acemux, not a CDN');
  t.notMatch(page.body.toString(), /src="https?:/, 'nothing from elsewhere');
  const js = await get(`${ace.origin}/player/hls.min.js`);
  if (hlsInstalled) {
    t.equal(js.status, 200, 'hls.js served');
    t.match(js.headers['content-type'], /javascript/);
  } else {
    t.equal(js.status, 404, 'hls.js missing: 404');
    t.equal(JSON.parse(js.body.toString()).code, 'ACEMUX_ERR_NOT_FOUND');
    t.match(JSON.parse(js.body.toString()).error, /hls\.js is not installed/);
  }
  t.equal((await get(`${ace.origin}/player`, 'x', 'POST')).status, 405);
  const dash = (await get(`${ace.origin}/`)).body.toString();
  t.match(dash, 'href="/player"', 'the dashboard links to the player');
});

t.test('without hls.js the page says so', { skip: hlsInstalled ? 'hls.js is installed' : noChromium }, async (t) => {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  t.teardown(() => browser.close());
  const page = await browser.newPage();
  await page.goto(`${ace.origin}/player?id=${contentId(20)}`);
  await page.waitForFunction(() => (globalThis as unknown as PageGlobals).playerState === 'error', undefined, { timeout: 10_000 });
  t.match(await page.textContent('#state'), /hls\.js is not installed/, 'a clear message, not a silent failure');
});

const skipPlay = !hlsInstalled ? 'hls.js is not installed (add the npm package hls.js); skipping browser playback' : noChromium;

t.test('Chromium plays a channel over HLS with hls.js, across a splice', { skip: skipPlay, timeout: 55_000 }, async (t) => {
  const { chromium } = await import('playwright-core');
  const id = contentId(21);
  // The first playback connection drops after ~6 s of the sample: acemux reconnects and splices.
  await sim.setFaults({ ids: { [id]: { dropAfterBytes: 1_000_000 } } });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  t.teardown(() => browser.close());
  const page = await browser.newPage();
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(`${ace.origin}/player?id=${id}`);
  await page.waitForFunction(() => (globalThis as unknown as PageGlobals).playerState === 'playing', undefined, { timeout: 20_000 });
  const now = () => page.evaluate(() => (globalThis as unknown as PageGlobals).document.querySelector('video').currentTime);
  const t0 = await now();
  await page.waitForFunction((t) => (globalThis as unknown as PageGlobals).document.querySelector('video').currentTime >= t, t0 + 5, {
    timeout: 15_000,
  });
  t.pass('video.currentTime advanced 5 s');
  // Wait for the splice to be listed, then for playback to go on past it.
  let spliced = false;
  for (let i = 0; i < 30 && !spliced; i++) {
    spliced = (await get(`${ace.origin}/ace/manifest.m3u8?id=${id}`, 'test-poller')).body.toString().includes('#EXT-X-DISCONTINUITY\n');
    if (!spliced) await sleep(500);
  }
  t.ok(spliced, 'the playlist shows the splice');
  await sim.resetFaults();
  const t1 = await now();
  await page
    .waitForFunction((t) => (globalThis as unknown as PageGlobals).document.querySelector('video').currentTime >= t, t1 + 5, {
      timeout: 20_000,
    })
    .catch(async (e: Error) => {
      // Say what the player saw, not only that it timed out.
      throw new Error(`${e.message}; currentTime ${await now()}; player log:\n${await page.textContent('#log')}`);
    });
  t.pass(`and it kept advancing across the splice (${t0.toFixed(1)} → ${(await now()).toFixed(1)} s)`);
  t.same(await page.evaluate(() => (globalThis as unknown as PageGlobals).playerErrors), [], 'no error event');
  t.same(pageErrors, [], 'no page error');
});
