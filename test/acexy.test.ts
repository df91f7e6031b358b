/**
 * Moving over from acexy: acemux started the way acexy's own docker-compose.yml and README start
 * acexy — its ACEXY_* environment with its documented values, then its Go-style flags — plays a
 * stream, and says once about each setting it does not do as acexy did.
 */
import t from 'tap';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSim } from './helpers/sim';
import { launch, freePort, runCli } from './helpers/acemux';
import { fetchStream, aligned, contentId } from './helpers/client';

/** acexy's docker-compose.yml environment, as its repository ships it (engine host and port aside). */
function acexyCompose(engine: URL, listen: string): Record<string, string> {
  return {
    ACEXY_LISTEN_ADDR: listen,
    ACEXY_SCHEME: 'http',
    ACEXY_HOST: engine.hostname,
    ACEXY_PORT: engine.port,
    ACEXY_M3U8_STREAM_TIMEOUT: '60s',
    ACEXY_M3U8: 'false',
    ACEXY_EMPTY_TIMEOUT: '60s',
    ACEXY_BUFFER_SIZE: '4MB',
    ACEXY_NO_RESPONSE_TIMEOUT: '10s',
    ACEXY_LOG_LEVEL: 'INFO',
  };
}

const warnings = (logs: string[]) =>
  logs.flatMap((l) => {
    try {
      const j = JSON.parse(l);
      return j.level === 40 ? [String(j.msg)] : [];
    } catch {
      return [];
    }
  });

t.test("acexy's compose environment: plays, one warning (the HLS timeout)", async (t) => {
  const sim = await startSim(['--bitrate', '2000000']);
  const port = await freePort();
  // acexy has no state directory: the journal goes to the working directory, as in the image.
  const ace = await launch([], acexyCompose(new URL(sim.origin), `127.0.0.1:${port}`), mkdtempSync(join(tmpdir(), 'acexy-cwd-')));
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  t.equal(ace.port, port, 'listens where ACEXY_LISTEN_ADDR says');
  const r = await fetchStream(`${ace.origin}/ace/getstream?id=${contentId(7)}`, { bytes: 200_000 });
  t.equal(r.status, 200);
  t.equal(r.headers['content-type'], 'video/mp2t');
  t.ok(aligned(r.body.subarray(0, r.body.length - (r.body.length % 188))), `aligned MPEG-TS (${r.body.length} bytes)`);
  const w = warnings(ace.logs);
  t.equal(w.length, 1, `one warning: ${JSON.stringify(w)}`);
  t.match(w[0], /ACEXY_M3U8_STREAM_TIMEOUT.*ignored/);
});

t.test("acexy's command-line flags: plays MPEG-TS and HLS, says once that -m3u8 needs no switch", async (t) => {
  const sim = await startSim(['--bitrate', '2000000']);
  const engine = new URL(sim.origin);
  const ace = await launch(
    [
      '-addr',
      '127.0.0.1:0',
      '-scheme',
      'http',
      '-acestream-host',
      engine.hostname,
      `-acestream-port=${engine.port}`,
      '-m3u8',
      '--m3u8-stream-timeout',
      '60s',
      '-empty-timeout=60s',
      '-buffer-size',
      '4.2MiB',
      '-no-response-timeout',
      '10s',
    ],
    {},
    mkdtempSync(join(tmpdir(), 'acexy-cwd-')),
  );
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  const r = await fetchStream(`${ace.origin}/ace/getstream?id=${contentId(8)}`, { bytes: 200_000 });
  t.equal(r.status, 200);
  t.ok(r.body.length >= 200_000 && r.body[0] === 0x47, 'MPEG-TS flows');
  const w = warnings(ace.logs);
  t.equal(w.length, 2, `two warnings, one per HLS setting: ${JSON.stringify(w)}`);
  t.equal(w.filter((m) => /^-m3u8: .*HLS is always served/.test(m)).length, 1, 'the HLS note, once');
  const hls = await fetch(`${ace.origin}/ace/manifest.m3u8?id=${contentId(8)}`);
  t.equal(hls.status, 200, 'what acexy users turned -m3u8 on for: the HLS playlist');
  t.match(await hls.text(), /^#EXTM3U\n[\s\S]*#EXTINF:/, 'a live playlist with segments');
  t.equal(w.filter((m) => /^--m3u8-stream-timeout: /.test(m)).length, 1);
});

t.test("acexy's -help prints the help, with acexy's names in it", async (t) => {
  const r = await runCli(['-help']);
  t.equal(r.code, 0);
  t.match(r.stdout, /^Usage: acemux/);
  t.match(r.stdout, /ACEXY_LISTEN_ADDR; acexy -addr/);
  const bad = await runCli(['-min-replicas', '2']);
  t.equal(bad.code, 2, 'an acexy orchestrator flag is refused');
  t.match(bad.stderr, /unknown option -min-replicas/);
});
