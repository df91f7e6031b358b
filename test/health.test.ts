/**
 * The container health check (dist/main/healthcheck.js) and degraded parts: how the check finds
 * acemux's address, that it fails when nothing answers, and that an unusable journal directory
 * shows in /readyz (still 200), /ace/status and the dashboard. The same in a real container:
 * test/container/image.test.ts.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acemuxProcess, livezUrl } from '../src/main/healthcheck';
import { startAcemux, freePort } from './helpers/acemux';

const HEALTHCHECK = join(__dirname, '..', 'dist', 'main', 'healthcheck.js');
const CHROMIUM = '/usr/bin/chromium';

/** A fake /proc: pid → [argv, env, ppid]. */
function fakeProc(procs: Record<string, [string[], Record<string, string>, number]>): string {
  const dir = mkdtempSync(join(tmpdir(), 'acemux-proc-'));
  for (const [pid, [argv, env, ppid]] of Object.entries(procs)) {
    mkdirSync(join(dir, pid));
    writeFileSync(join(dir, pid, 'cmdline'), argv.map((a) => a + '\0').join(''));
    writeFileSync(
      join(dir, pid, 'environ'),
      Object.entries(env)
        .map(([k, v]) => `${k}=${v}\0`)
        .join(''),
    );
    writeFileSync(join(dir, pid, 'stat'), `${pid} (node (x) y) S ${ppid} ${pid} ${pid} 0 -1`);
  }
  return dir;
}

function runCheck(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [HEALTHCHECK, ...args], { env: { ...process.env, ...env } });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('exit', (code) => resolve({ code, out }));
  });
}

t.test('the health check reads acemux’s argv and environment from /proc', async (t) => {
  const argv = ['node', '--max-old-space-size=256', 'dist/main/cli.js', '--listen', '127.0.0.1:9001', '--state-dir', ''];
  const asPid1 = fakeProc({
    '1': [argv, { ACEXY_LISTEN_ADDR: ':7000', HOME: '/home/node' }, 0],
    '40': [['node', 'dist/main/healthcheck.js'], {}, 0],
  });
  t.same(
    acemuxProcess(asPid1),
    { argv: ['--listen', '127.0.0.1:9001', '--state-dir', ''], env: { ACEXY_LISTEN_ADDR: ':7000', HOME: '/home/node' } },
    'PID 1, empty arguments kept',
  );

  // Under an init (docker run --init): acemux is PID 1's child; other processes are not it.
  const underInit = fakeProc({
    '1': [['/sbin/docker-init', '--', 'node', 'dist/main/cli.js'], {}, 0],
    '7': [['node', '/app/dist/main/cli.js'], { ACEMUX_LISTEN: ':9100' }, 1],
    '9': [['node', '/other/dist/main/cli.js', '--listen', ':1'], {}, 7],
  });
  t.same(acemuxProcess(underInit), { argv: [], env: { ACEMUX_LISTEN: ':9100' } });
  t.equal(
    acemuxProcess(fakeProc({ '1': [['/sbin/init'], {}, 0], '9': [['node', '/x/dist/main/cli.js'], {}, 5] })),
    null,
    'not PID 1 nor its child: not ours',
  );
  t.equal(acemuxProcess(fakeProc({ '1': [['node', 'cli.js'], {}, 0] })), null, 'a cli.js outside main/ is not acemux');
  t.equal(acemuxProcess(join(tmpdir(), 'no-such-proc-dir')), null);

  t.equal(livezUrl('', 8080), 'http://127.0.0.1:8080/livez', 'every interface: asked on loopback');
  t.equal(livezUrl('0.0.0.0', 80), 'http://127.0.0.1:80/livez');
  t.equal(livezUrl('::', 80), 'http://[::1]:80/livez');
  t.equal(livezUrl('10.1.2.3', 81), 'http://10.1.2.3:81/livez', 'a bound address is asked there');
  t.equal(livezUrl('fe80::1', 82), 'http://[fe80::1]:82/livez');
});

t.test('the health check passes on acemux’s /livez and fails when nothing answers', async (t) => {
  const ace = await startAcemux(`http://127.0.0.1:${await freePort()}`);
  t.teardown(() => ace.stop());
  const ok = await runCheck(['--listen', `127.0.0.1:${ace.port}`]);
  t.equal(ok.code, 0, ok.out);
  t.match(ok.out, `http://127.0.0.1:${ace.port}/livez: 200`);
  const none = await runCheck(['--listen', `127.0.0.1:${await freePort()}`]);
  t.equal(none.code, 1, 'nothing listening: unhealthy');
  t.match(none.out, /fetch failed|ECONNREFUSED/);
  const bad = await runCheck(['--listen', 'nonsense']);
  t.equal(bad.code, 1, 'a configuration acemux would refuse: unhealthy');
  t.match(bad.out, /healthcheck: --listen: "nonsense" is not a listen address/);
});

t.test('an unusable journal directory: degraded, still serving and ready', async (t) => {
  // A path below a regular file cannot be a directory, not even for root.
  const file = join(mkdtempSync(join(tmpdir(), 'acemux-degraded-')), 'a-file');
  writeFileSync(file, '');
  const { startSim } = await import('./helpers/sim');
  const sim = await startSim();
  const bad = await startAcemux(sim.origin, ['--state-dir', join(file, 'journal'), '--engine-probe', '200ms']);
  const good = await startAcemux(sim.origin, ['--engine-probe', '200ms']);
  t.teardown(async () => {
    await bad.stop();
    await good.stop();
    await sim.stop();
  });

  const readyz = async (origin: string) => {
    // Ready once the first engine probe answers.
    for (let i = 0; ; i++) {
      const r = await fetch(`${origin}/readyz`);
      const body = (await r.json()) as { ready: boolean; degraded: Array<{ part: string; reason: string; since: number }> };
      if (r.status === 200 || i > 50) return { status: r.status, body };
      await new Promise((res) => setTimeout(res, 100));
    }
  };
  const r = await readyz(bad.origin);
  t.equal(r.status, 200, 'a journal failure does not take the node out of rotation');
  t.equal(r.body.ready, true);
  t.equal(r.body.degraded.length, 1);
  t.equal(r.body.degraded[0].part, 'journal');
  t.match(r.body.degraded[0].reason, /^disabled, cannot open .*journal: .*ENOTDIR/);
  t.type(r.body.degraded[0].since, 'number');
  t.same((await readyz(good.origin)).body.degraded, [], 'a working journal: nothing degraded');

  const status = (await (await fetch(`${bad.origin}/ace/status`)).json()) as { streams: number; degraded: Array<{ part: string }> };
  t.equal(status.streams, 0, 'acexy’s status answer is unchanged');
  t.equal(status.degraded[0].part, 'journal');
  t.same(((await (await fetch(`${good.origin}/ace/status`)).json()) as { degraded: unknown[] }).degraded, []);

  const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (apt-get install -y chromium); CI installs it`;
  t.test('the dashboard shows a badge', { skip }, async (t) => {
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
    t.teardown(() => browser.close());
    const page = await browser.newPage();
    await page.goto(`${bad.origin}/`);
    const badge = page.locator('[data-testid="degraded"]');
    await badge.waitFor({ state: 'visible', timeout: 10_000 });
    t.equal(await badge.textContent(), 'degraded: journal');
    t.match(await badge.getAttribute('title'), /^journal: disabled, cannot open/);
    await page.goto(`${good.origin}/`);
    await page.waitForFunction(`document.querySelector('[data-testid="conn"]').dataset.state === 'live'`, undefined, { timeout: 10_000 });
    t.equal(await page.locator('[data-testid="degraded"]').isVisible(), false, 'no badge when nothing is degraded');
  });
});
