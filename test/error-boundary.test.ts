/**
 * The request error boundary (Routes.handle): a throw inside a route handler becomes a logged 500
 * for that request; the process and every stream in it carry on. The throw is a real one: acemux
 * runs from a copy of dist/ laid out without dashboard.html (and without src/ beside it), so
 * `GET /` cannot find its page.
 */
import t from 'tap';
import { cpSync, mkdtempSync, rmSync, symlinkSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSim } from './helpers/sim';
import { startAcemux } from './helpers/acemux';
import { fetchStream, getJson, aligned, contentId } from './helpers/client';
import { until } from './helpers/wait';

const TS = 188;
const ROOT = join(__dirname, '..');

t.test('a throw in a handler is a logged 500; the process and its streams live on', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'acemux-nodash-'));
  cpSync(join(ROOT, 'dist'), join(dir, 'dist'), { recursive: true });
  rmSync(join(dir, 'dist', 'main', 'ops', 'dashboard.html'));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  t.notOk(existsSync(join(dir, 'src')), 'no sources beside the copy');
  const sim = await startSim(['--bitrate', '2000000']);
  const ace = await startAcemux(sim.origin, [], {}, join(dir, 'dist', 'main', 'cli.js'));
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  let bytes = 0;
  const playing = fetchStream(`${ace.origin}/ace/getstream?id=${contentId(0xb0)}`, { ms: 4000, onData: (d) => (bytes += d.length) });
  await until(() => bytes > 100_000, 'the stream flowing before the failing request');

  for (const path of ['/', '/dashboard']) {
    const r = await getJson(`${ace.origin}${path}`);
    t.equal(r.status, 500, `GET ${path}: 500`);
    t.same(r.body, { error: 'internal error', code: 'ACEMUX_ERR_INTERNAL' }, `GET ${path}: the fixed body, no stack or path`);
  }
  await until(() => ace.logs.filter((l) => l.includes('request handler failed')).length >= 2, 'two logged handler failures');
  const logged = ace.logs.find((l) => l.includes('request handler failed'))!;
  t.match(logged, /dashboard\.html not found/, 'the log carries the error');
  t.match(JSON.parse(logged), { level: 50, method: 'GET', url: '/' }, 'logged at error level with the request');

  const atFailure = bytes;
  t.equal((await getJson(`${ace.origin}/livez`)).status, 200, 'still answering');
  await until(() => bytes > atFailure + 100_000, 'the stream still flowing after the failures');
  const r = await playing;
  t.equal(r.ended, 'closed-by-us', 'the stream was never cut');
  t.ok(aligned(r.body.subarray(0, r.body.length - (r.body.length % TS))), 'and stayed packet-aligned');
  t.equal(ace.proc.exitCode, null, 'the process is alive');
});
