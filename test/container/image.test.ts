/**
 * The container, built and run for real with podman: the Dockerfile built unmodified (on a local
 * stand-in for node:24-slim when no registry is reachable, see base-image.sh), run against the
 * engine simulator on the host, and compose.yaml brought up with podman-compose against a
 * stand-in engine image that carries the compose file's engine image name.
 *
 * Skipped when podman is not installed; CI runs test/container/setup.sh (as root) first, so it
 * always runs there. Builds use podman's layer cache: a warm run rebuilds nothing unless src/
 * or the lock file changed. The images it leaves: docker.io/library/node:24-slim (when made
 * locally), localhost/acemux:latest (compose.yaml's name for acemux) and the engine stand-in.
 */
import t, { type Test } from 'tap';
import { execFile, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { aligned, contentId, fetchStream } from '../helpers/client';
import { freePort } from '../helpers/acemux';
import { startSim, type SimHandle } from '../helpers/sim';

const ROOT = join(__dirname, '..', '..');
const IMAGE = 'localhost/acemux:latest';
/** The engine image compose.yaml names; the test builds a stand-in under that name. */
const ENGINE_IMAGE = /^ {2}acestream:\n(?: {4}.*\n|\s*\n)*? {4}image: (\S+)$/m.exec(readFileSync(join(ROOT, 'compose.yaml'), 'utf8'))![1];
/** The shutdown bound (ACEMUX_SHUTDOWN_TIMEOUT's default). */
const SHUTDOWN_BOUND_MS = 8000;
const TAG = `acemux-ctest-${process.pid}`;

// A cold run makes the base image and builds both images (minutes); tap's 120 s is for a file of
// ordinary tests. A warm run takes under a minute.
t.setTimeout(900_000);

const hasPodman = !spawnSync('podman', ['--version']).error;
const skip = hasPodman ? false : 'podman is not installed: run test/container/setup.sh as root (CI does) to run the container test';

interface Ran {
  code: number | null;
  out: string;
  err: string;
}
function sh(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeout?: number } = {}): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, timeout: opts.timeout ?? 120_000, maxBuffer: 64 << 20 },
      (e, out, err) => {
        resolve({ code: e ? (typeof e.code === 'number' ? e.code : -1) : 0, out: String(out), err: String(err) });
      },
    );
  });
}
const podman = (...args: string[]) => sh('podman', args);
/** A command that must succeed: its output, or a throw that shows what it said. */
async function must(cmd: string, args: string[], opts?: Parameters<typeof sh>[2]): Promise<string> {
  const r = await sh(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}:\n${r.err.slice(-3000)}\n${r.out.slice(-2000)}`);
  return r.out;
}

/** Polls `url` until it answers `status` (containers start in about a second). */
async function until(url: string, status = 200, ms = 30_000): Promise<unknown> {
  const end = Date.now() + ms;
  let last = '';
  while (Date.now() < end) {
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
      const body = await r.json();
      if (r.status === status) return body;
      last = `${r.status} ${JSON.stringify(body)}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} did not answer ${status} within ${ms} ms (last: ${last})`);
}

/** `podman run -d` of the acemux image on the host's network; returns the container's name. */
async function runAcemux(name: string, args: string[], env: Record<string, string>, extra: string[] = []): Promise<string> {
  await must('podman', [
    'run',
    '-d',
    '--name',
    `${TAG}-${name}`,
    '--network',
    'host',
    ...Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]),
    ...extra,
    IMAGE,
    ...args,
  ]);
  return `${TAG}-${name}`;
}

/** Plays a stream for a few seconds through `origin`; returns what ffprobe decoded from it. */
async function play(t: Test, origin: string, id: string): Promise<void> {
  const r = await fetchStream(`${origin}/ace/getstream?id=${id}`, { bytes: 188 * 4000 });
  t.equal(r.status, 200, 'the stream answers 200');
  const whole = r.body.subarray(0, r.body.length - (r.body.length % 188));
  t.ok(whole.length >= 188 * 4000 && aligned(whole), `188-aligned TS (${whole.length} bytes)`);
  const file = join(mkdtempSync(join(tmpdir(), 'acemux-ctest-')), 'capture.ts');
  writeFileSync(file, whole);
  const probe = spawnSync('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name', '-of', 'csv=p=0', file], { encoding: 'utf8' });
  t.equal(probe.status, 0, `ffprobe reads it ${probe.stderr}`);
  t.same([...new Set(probe.stdout.split('\n').filter(Boolean))].sort(), ['aac', 'h264'], 'ffprobe decodes H.264 + AAC');
}

/** Uid of the container's PID 1 (acemux itself), from its /proc status. */
async function pid1Uid(name: string): Promise<number> {
  const status = await must('podman', ['exec', name, 'cat', '/proc/1/status']);
  return Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
}

t.test('the container', { skip, timeout: 600_000 }, async (t) => {
  const containers: string[] = [];
  const volumes: string[] = [];
  let sim: SimHandle | null = null;
  let hangingSim: SimHandle | null = null;
  t.teardown(async () => {
    if (containers.length) await podman('rm', '-f', '-t', '0', ...containers);
    if (volumes.length) await podman('volume', 'rm', '-f', ...volumes);
    await sim?.stop();
    await hangingSim?.stop();
  });

  await t.test('builds: the base image, the Dockerfile unmodified, the engine stand-in', async (t) => {
    let t0 = Date.now();
    await must('sh', [join(__dirname, 'base-image.sh')], { timeout: 600_000 });
    t.comment(`base image ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    // For npm ci inside the build: the host's CA bundle as npm's cafile, as anyone behind a
    // TLS-inspecting proxy does (mounted for the build's RUN steps only, never in the image).
    const mounts: string[] = [];
    const ca = '/etc/ssl/certs/ca-certificates.crt';
    if (existsSync(ca)) {
      const npmrc = join(mkdtempSync(join(tmpdir(), 'acemux-ctest-')), 'npmrc');
      writeFileSync(npmrc, 'cafile=/run/host-ca.crt\nupdate-notifier=false\n');
      mounts.push('-v', `${ca}:/run/host-ca.crt:ro`, '-v', `${npmrc}:/usr/local/etc/npmrc:ro`);
    }
    t0 = Date.now();
    await must('nice', ['-n', '10', 'podman', 'build', '--format', 'docker', ...mounts, '-t', IMAGE, '-f', 'Dockerfile', '.'], {
      timeout: 900_000,
    });
    t.comment(`acemux image built in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    // The stand-in engine: the simulator and its sample, nothing of acemux's proxy.
    const ctx = mkdtempSync(join(tmpdir(), 'acemux-ctest-engine-'));
    cpSync(join(__dirname, 'engine-standin', 'Containerfile'), join(ctx, 'Containerfile'));
    for (const d of ['dist/sim', 'dist/shared'])
      cpSync(join(ROOT, d), join(ctx, d), { recursive: true, filter: (f) => !f.endsWith('.map') });
    cpSync(join(ROOT, 'assets'), join(ctx, 'assets'), { recursive: true });
    t0 = Date.now();
    await must('nice', ['-n', '10', 'podman', 'build', '--format', 'docker', '-t', ENGINE_IMAGE, ctx], { timeout: 600_000 });
    t.comment(`engine stand-in ${ENGINE_IMAGE} built in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  });

  // Without the images every check below would only repeat the build's failure.
  if ([IMAGE, ENGINE_IMAGE].some((i) => spawnSync('podman', ['image', 'exists', i]).status !== 0)) return;

  await t.test('the image holds what acemux needs and nothing else', async (t) => {
    const image = JSON.parse(await must('podman', ['image', 'inspect', IMAGE]))[0];
    const cfg = image.Config;
    t.same(image.Healthcheck?.Test, ['CMD', 'node', 'dist/main/healthcheck.js'], 'HEALTHCHECK kept (docker format)');
    t.equal(cfg.StopSignal, 'SIGTERM');
    t.same(cfg.Entrypoint, ['node', 'dist/main/cli.js'], 'arguments after the image name go to acemux');
    t.notOk(cfg.Cmd?.length, 'no default arguments');
    t.equal(cfg.User, 'node');
    t.notOk(
      (cfg.Env as string[]).some((e) => e.startsWith('ACEMUX_LISTEN=')),
      'no ACEMUX_LISTEN: it would hide ACEXY_LISTEN_ADDR',
    );
    const ls = await must('podman', [
      'run',
      '--rm',
      '--entrypoint',
      'sh',
      IMAGE,
      '-c',
      'ls /app/dist; echo --; find /app -name "*.map" -not -path "*/node_modules/*"; echo --; ls /app/assets 2>&1; ls /app/node_modules/typescript 2>&1; echo --; stat -c %u /var/lib/acemux',
    ]);
    const [dist, maps, absent, owner] = ls.split('--\n');
    t.same(dist.split('\n').filter(Boolean), ['main', 'shared', 'workers'], 'dist holds no simulator');
    t.equal(maps.trim(), '', 'no source maps');
    t.match(absent, /\/app\/assets'?: No such file[^]*typescript'?: No such file/, 'no sample stream, no dev dependencies');
    t.equal(owner.trim(), '1000', 'the state directory belongs to uid 1000');
  });

  // compose comes up meanwhile: acemux's first engine probe may run before the engine listens,
  // and the next one is 10 s later; by the time its subtest runs, that has passed.
  const project = TAG.replace(/-/g, '');
  const composeEnv = { ACEMUX_HOST_PORT: String(await freePort()) };
  const hasCompose = !spawnSync('podman-compose', ['--version']).error;
  t.teardown(async () => {
    if (!hasCompose) return;
    await sh('podman-compose', ['-p', project, '-f', 'compose.yaml', 'down', '-v'], { env: composeEnv });
    await podman('network', 'rm', '-f', `${project}_default`); // podman-compose 1.0.3 leaves it
  });
  const composeUp = hasCompose ? sh('podman-compose', ['-p', project, '-f', 'compose.yaml', 'up', '-d'], { env: composeEnv }) : null;

  sim = await startSim();
  // An engine whose stop command never answers: with the engine stop bound above the shutdown
  // bound, shutdown takes the whole of the latter.
  hangingSim = await startSim(['--faults', JSON.stringify({ global: { cmdHang: true } })]);
  const [pEnv, pArg, pAcexy, pRo, pSlow, pInit] = await Promise.all([
    freePort(),
    freePort(),
    freePort(),
    freePort(),
    freePort(),
    freePort(),
  ]);
  const volume = `${TAG}-state`;
  volumes.push(volume);
  const roDir = mkdtempSync(join(tmpdir(), 'acemux-ctest-ro-')); // root's, mode 0700: not uid 1000's
  const started = await Promise.all([
    runAcemux('env', [], { ACEMUX_LISTEN: `127.0.0.1:${pEnv}`, ACEMUX_ENGINES: sim.origin }, ['-v', `${volume}:/var/lib/acemux`]),
    runAcemux('arg', ['--engine', sim.origin, '--listen', `127.0.0.1:${pArg}`], {}),
    runAcemux('acexy', [], { ACEXY_LISTEN_ADDR: `127.0.0.1:${pAcexy}`, ACEXY_HOST: '127.0.0.1', ACEXY_PORT: String(sim.port) }),
    runAcemux('ro', ['--listen', `127.0.0.1:${pRo}`, '--engine', sim.origin], {}, ['-v', `${roDir}:/var/lib/acemux`]),
    runAcemux('slow', ['--listen', `127.0.0.1:${pSlow}`, '--engine', hangingSim.origin, '--stop-timeout', '30s'], {}),
    runAcemux('init', ['--listen', `127.0.0.1:${pInit}`, '--engine', sim.origin], {}, ['--init']),
  ]);
  containers.push(...started);
  const [cEnv, cArg, cAcexy, , cSlow, cInit] = started;

  // Stopped now, checked with the other SIGTERM case: its 8 s pass while the tests below run.
  await until(`http://127.0.0.1:${pSlow}/livez`);
  const slowClient = fetchStream(`http://127.0.0.1:${pSlow}/ace/getstream?id=${contentId(0xc5)}`, { ms: 30_000 });
  await until(`http://127.0.0.1:${pSlow}/ace/status?id=${contentId(0xc5)}`);
  const slowStop = (async () => {
    const t0 = Date.now();
    await must('podman', ['stop', '-t', '10', cSlow]);
    const took = Date.now() - t0;
    return { took, code: JSON.parse(await must('podman', ['inspect', cSlow]))[0].State.ExitCode as number };
  })();

  await t.test('listens where told, by ACEMUX_LISTEN, by --listen, by ACEXY_LISTEN_ADDR; the health check follows', async (t) => {
    for (const [name, port, how] of [
      [cEnv, pEnv, 'ACEMUX_LISTEN'],
      [cArg, pArg, '--listen (docker run image --engine … --listen …)'],
      [cAcexy, pAcexy, 'ACEXY_LISTEN_ADDR'],
    ] as const) {
      await until(`http://127.0.0.1:${port}/livez`);
      t.equal((await podman('healthcheck', 'run', name)).code, 0, `${how}: healthy`);
      // What the engine's health check runs, with its output: it asked the right port.
      t.match(
        await must('podman', ['exec', name, 'node', 'dist/main/healthcheck.js']),
        `http://127.0.0.1:${port}/livez: 200`,
        `${how}: the check asks port ${port}`,
      );
      t.equal(await pid1Uid(name), 1000, `${how}: acemux runs as uid 1000`);
    }
    // Under an init (docker run --init), acemux is PID 1's child, and the check finds it there.
    await until(`http://127.0.0.1:${pInit}/livez`);
    t.match(
      await must('podman', ['exec', cInit, 'node', 'dist/main/healthcheck.js']),
      `http://127.0.0.1:${pInit}/livez: 200`,
      '--init: the check finds acemux below the init',
    );
    t.equal((await podman('healthcheck', 'run', cInit)).code, 0, '--init: healthy');

    const ready = (await until(`http://127.0.0.1:${pAcexy}/readyz`)) as { engines: Array<{ url: string }> };
    t.same(
      ready.engines.map((e) => e.url),
      [sim!.origin],
      'ACEXY_HOST/ACEXY_PORT name the engine',
    );

    // A hung acemux is unhealthy: the check's fetch is bounded (4 s, inside HEALTHCHECK's 5 s).
    await must('podman', ['kill', '--signal', 'STOP', cArg]);
    const hung = await podman('healthcheck', 'run', cArg);
    await must('podman', ['kill', '--signal', 'CONT', cArg]);
    t.not(hung.code, 0, 'a stopped process: unhealthy');
    t.equal((await podman('healthcheck', 'run', cArg)).code, 0, 'healthy again once it runs');
  });

  await t.test('a stream plays and ffprobe decodes it', async (t) => {
    await until(`http://127.0.0.1:${pEnv}/readyz`);
    await play(t, `http://127.0.0.1:${pEnv}`, contentId(0xc1));
  });

  await t.test('a state directory uid 1000 cannot write: serving, ready, and degraded', async (t) => {
    const ready = (await until(`http://127.0.0.1:${pRo}/readyz`)) as { degraded: Array<{ part: string; reason: string }> };
    t.equal(ready.degraded[0]?.part, 'journal', '/readyz is 200 and says the journal is degraded');
    t.match(ready.degraded[0]?.reason, /EACCES/);
    const status = (await (await fetch(`http://127.0.0.1:${pRo}/ace/status`)).json()) as { degraded: Array<{ part: string }> };
    t.equal(status.degraded[0]?.part, 'journal', '/ace/status says so too');
    t.same(
      ((await until(`http://127.0.0.1:${pEnv}/readyz`)) as { degraded: unknown[] }).degraded,
      [],
      'a writable volume: nothing degraded',
    );
  });

  type EventPage = { events: Array<{ seq: number; kind: string }> };
  await t.test('SIGTERM with a client playing: exit 0 within the bound; the journal survives a restart on the volume', async (t) => {
    const origin = `http://127.0.0.1:${pEnv}`;
    const before = (await (await fetch(`${origin}/api/events?limit=500`)).json()) as EventPage;
    t.ok(before.events.length > 0, `events were journalled (${before.events.length})`);
    const client = fetchStream(`${origin}/ace/getstream?id=${contentId(0xc2)}`, { ms: 20_000 });
    await until(`${origin}/ace/status?id=${contentId(0xc2)}`);
    const t0 = Date.now();
    await must('podman', ['stop', '-t', '10', cEnv]);
    const took = Date.now() - t0;
    const state = JSON.parse(await must('podman', ['inspect', cEnv]))[0].State;
    t.equal(state.ExitCode, 0, `exit 0 after SIGTERM (${took} ms)`);
    t.ok(took < SHUTDOWN_BOUND_MS, `stopped within the ${SHUTDOWN_BOUND_MS} ms bound (${took} ms)`);
    t.not((await client).ended, 'closed-by-us', 'the client was ended by the shutdown');

    const slow = await slowStop;
    t.equal(slow.code, 1, `a shutdown that takes the whole bound exits 1 by itself, not 137 by SIGKILL (${slow.took} ms)`);
    t.ok(slow.took >= SHUTDOWN_BOUND_MS - 500 && slow.took < 10_000, `at the bound, before docker stop's 10 s (${slow.took} ms)`);
    t.not((await slowClient).ended, 'closed-by-us', 'its client was ended too');

    const again = await runAcemux('env2', [], { ACEMUX_LISTEN: `127.0.0.1:${pEnv}`, ACEMUX_ENGINES: sim!.origin }, [
      '-v',
      `${volume}:/var/lib/acemux`,
    ]);
    containers.push(again);
    await until(`${origin}/livez`);
    const after = (await (await fetch(`${origin}/api/events?limit=500`)).json()) as EventPage;
    const seqs = new Set(after.events.map((e: { seq: number }) => e.seq));
    const kept = before.events.filter((e: { seq: number }) => seqs.has(e.seq));
    t.equal(kept.length, before.events.length, 'every event from before the restart is still there');
    t.ok(
      after.events.some((e: { kind: string }) => e.kind === 'client-session'),
      'with the session the shutdown ended',
    );
    // J4: the new process numbers its events after the journal's last one.
    const last = Math.max(...after.events.map((e: { seq: number }) => e.seq));
    await fetchStream(`${origin}/ace/getstream?id=${contentId(0xc4)}`, { bytes: 188 * 100 });
    const next = (await (await fetch(`${origin}/api/events?limit=500`)).json()) as EventPage;
    const fresh = next.events.filter((e: { seq: number }) => e.seq > last);
    t.ok(
      fresh.some((e: { kind: string }) => e.kind === 'stream-start'),
      `the new stream's events continue the sequence after ${last}`,
    );
  });

  await t.test('compose.yaml comes up and serves a stream', async (t) => {
    if (!composeUp) return void t.fail('podman-compose is not installed (test/container/setup.sh installs it)');
    const up = await composeUp;
    t.equal(up.code, 0, `podman-compose up ${up.code === 0 ? '' : up.err.slice(-2000)}`);
    const hostPort = composeEnv.ACEMUX_HOST_PORT;
    const origin = `http://127.0.0.1:${hostPort}`;
    const ready = (await until(`${origin}/readyz`)) as { engines: Array<{ url: string; healthy: boolean }> };
    t.same(ready.engines, [{ url: 'http://acestream:6878', healthy: true }], 'acemux reaches the engine service by its name');
    await play(t, origin, contentId(0xc3));
    t.equal(
      (await podman('healthcheck', 'run', `${project}_acemux_1`)).code,
      0,
      'the image’s health check passes under compose (default :8080)',
    );
    t.equal(
      (await podman('healthcheck', 'run', `${project}_acestream_1`)).code,
      0,
      'the engine’s health check (curl get_version on 6878) passes',
    );
    const vols = await must('podman', ['volume', 'ls', '--format', '{{.Name}}']);
    t.match(vols, `${project}_acemux-data`, 'the journal is on a named volume');
    // docker-compose 1.29 (Compose v1) reads the file too, when it is installed.
    if (!spawnSync('docker-compose', ['version']).error) {
      const v1 = await sh('docker-compose', ['-f', 'compose.yaml', 'config', '-q'], { env: composeEnv });
      t.equal(v1.code, 0, `docker-compose v1 accepts compose.yaml ${v1.err}`);
    }
  });
});
