/**
 * Integration: the real acemux process against the real engine simulator process, on loopback.
 */
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { startSim } from './helpers/sim';
import { startAcemux, runCli } from './helpers/acemux';
import { fetchStream, getJson, aligned, sleep, contentId } from './helpers/client';
import { until } from './helpers/wait';
import { PsiTracker, isKeyframeStart, payloadUnitStart, pidOf } from '../src/shared/mpegts/ts-packet';

const TS = 188;

/** Offset of the first packet that is not a null packet (keepalive precedes the first data). */
function firstData(b: Buffer): number {
  let off = 0;
  while (off + TS <= b.length && pidOf(b, off) === 0x1fff) off += TS;
  return off;
}

/** Cut before the last video PES start, so the capture ends on whole pictures. */
function wholePictures(b: Buffer, videoPid = 0x100): Buffer {
  let last = 0;
  for (let off = 0; off + TS <= b.length; off += TS) if (pidOf(b, off) === videoPid && b[off + 1]! & 0x40) last = off;
  return b.subarray(0, last);
}

/** b's packets appear in ref, contiguously, starting at a packet boundary. */
function isSubstreamOf(ref: Buffer, b: Buffer): boolean {
  const probe = b.subarray(0, Math.min(b.length, 40 * TS));
  for (let off = 0; off + probe.length <= ref.length; off += TS) {
    if (ref.compare(probe, 0, probe.length, off, off + probe.length) === 0) {
      const n = Math.min(b.length, ref.length - off);
      return ref.compare(b, 0, n, off, off + n) === 0;
    }
  }
  return false;
}

t.test('fan-out: 12 channels × 3 clients, identical aligned bytes, one engine session each', async (t) => {
  const sim = await startSim(['--bitrate', '2000000']);
  const ace = await startAcemux(sim.origin, ['--grace', '1500ms']);
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  const M = 12; // more than acexy's 10 connections per engine, which hang the 11th stream
  const N = 3;
  const runs = [];
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) runs.push(fetchStream(`${ace.origin}/ace/getstream?id=${contentId(m + 1)}`, { ms: 2500 }));
  const got = await Promise.all(runs);
  // Read at once: the checks below take long on a loaded machine, and the grace period runs.
  const inGrace = await sim.stats();
  for (const r of got) {
    t.equal(r.status, 200);
    t.equal(r.headers['content-type'], 'video/mp2t');
  }
  const least = Math.min(...got.map((r) => r.body.length));
  t.ok(least > 100_000, `every client received data (least: ${least} bytes)`);
  t.ok(
    got.every((r) => aligned(r.body.subarray(0, r.body.length - (r.body.length % TS)))),
    'every body packet-aligned from byte 0',
  );
  t.ok(
    got.every((r) => pidOf(r.body, firstData(r.body)) === 0),
    'every client starts at a PAT (after keepalive null packets, if any)',
  );
  for (let m = 0; m < M; m++) {
    const mine = got.slice(m * N, m * N + N).sort((a, b) => b.body.length - a.body.length);
    t.ok(
      mine.slice(1).every((r) => isSubstreamOf(mine[0]!.body, r.body)),
      `channel ${m}: all clients got the same bytes`,
    );
  }
  // Different channels are different engine sessions, with distinct bytes... of the same sample:
  // what tells them apart here is the simulator's session count.
  const st = await sim.stats();
  t.equal(st.getstreamRequests, M, 'one getstream per channel');
  t.equal(st.sessionsStarted, M);
  t.equal(st.playbackOpened, M, 'one upstream connection per channel');
  t.equal(st.secondReaders, 0);
  t.equal(inGrace.stopCommands, 0, 'no stop during the grace period');
  let after = st;
  await until(async () => (after = await sim.stats()).stopCommands >= M, 'a stop for every channel', 8000, 100);
  t.equal(after.stopCommands, M, 'stop sent for every channel after the grace period');
  t.equal(after.sessionsActive, 0);
  t.equal((await getJson(`${ace.origin}/ace/status`)).body.streams, 0);
});

t.test('joins: a late client starts at PAT + keyframe at once; a return within grace re-attaches', async (t) => {
  const sim = await startSim(['--bitrate', '2000000']);
  const ace = await startAcemux(sim.origin, ['--grace', '5s']);
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  const id = contentId(77);
  const url = `${ace.origin}/ace/getstream?id=${id}`;
  const first = fetchStream(url, { ms: 4000 });
  await sleep(1500);
  const late = await fetchStream(url, { ms: 1500 });
  t.equal(late.status, 200);
  t.ok(late.firstByteMs < 300, `first byte after ${late.firstByteMs} ms`);
  t.equal(pidOf(late.body, 0), 0, 'starts at a PAT');
  // The first video payload start after the PAT must be a keyframe.
  const psi = new PsiTracker();
  let verdict: boolean | null = null;
  for (let off = 0; off + TS <= late.body.length && verdict === null; off += TS) {
    psi.feed(late.body, off);
    if (pidOf(late.body, off) === psi.videoPid && payloadUnitStart(late.body, off))
      verdict = isKeyframeStart(late.body, off, psi.videoCodec);
  }
  t.equal(verdict, true, 'first picture is a keyframe');
  const status = await getJson(`${ace.origin}/ace/status?id=${id}`);
  t.equal(status.status, 200);
  t.equal(status.body.clients, 1, 'only the first client remains');
  t.equal(status.body.stream_id, id);
  t.match(status.body.stat_url, /^http:\/\/127\.0\.0\.1:\d+\/ace\/stat\//);
  t.equal(status.body.state, 'live');
  t.ok(status.body.bytes_in > 0 && status.body.bytes_out > 0);
  t.equal(status.body.video_codec, 'h264');
  await first;
  await sleep(500); // inside the 2 s grace
  const back = await fetchStream(url, { ms: 500 });
  t.equal(back.status, 200);
  t.equal(pidOf(back.body, firstData(back.body)), 0);
  const st = await sim.stats();
  t.equal(st.getstreamRequests, 1, 'the returning client re-attached to the same engine session');
  t.equal(st.stopCommands, 0);
});

t.test('a stalled client does not delay the others, and is cut', async (t) => {
  const sim = await startSim(['--bitrate', '16000000']);
  const ace = await startAcemux(sim.origin, ['--ring-size', '4MiB']); // 2^14 packets: 1.5 s at 16 Mb/s
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  const url = `${ace.origin}/ace/getstream?id=${contentId(5)}`;
  const gaps: number[] = [];
  const watch = () => {
    let last = 0;
    return (_: Buffer, at: number) => {
      if (last) gaps.push(at - last);
      last = at;
    };
  };
  const stalled = fetchStream(url, { ms: 9000, stallAfterBytes: 200_000 });
  await sleep(200);
  const others = [0, 1, 2].map(() => fetchStream(url, { ms: 8000, onData: watch() }));
  await sleep(6000);
  const mid = await getJson(`${ace.origin}/ace/status?id=${contentId(5)}`);
  const [, ...rest] = await Promise.all([stalled, ...others]);
  const expected = (16_000_000 / 8) * 8;
  for (const r of rest) t.ok(r.body.length > expected * 0.6, `a healthy client got ${r.body.length} of ~${expected} bytes`);
  const maxGap = Math.max(...gaps.slice(5));
  t.ok(maxGap < 1000, `longest pause for healthy clients: ${maxGap} ms`);
  // A paused client cannot notice its socket closing; acemux's own view says it was cut.
  t.equal(mid.body.clients, 3, 'the stalled client is gone while the others play on');
  t.ok(mid.body.cuts >= 1, 'counted as a cut');
  t.ok(
    ace.logs.some((l) => l.includes('client cut')),
    'the cut was logged',
  );
});

t.test('bad requests get clear statuses and JSON errors', async (t) => {
  const sim = await startSim();
  const ace = await startAcemux(sim.origin);
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  const id = contentId(1);
  const cases: Array<[string, string, number, RegExp]> = [
    ['GET', '/ace/getstream', 400, /missing id/],
    ['GET', `/ace/getstream?id=${id}&infohash=${id}`, 400, /exactly one/],
    ['GET', '/ace/getstream?id=xyz', 400, /40 hexadecimal/],
    ['GET', `/ace/getstream?id=${id}g`, 400, /40 hexadecimal/],
    ['GET', `/ace/getstream?id=${id}&pid=1`, 400, /owns engine player ids/],
    ['GET', `/ace/getstream?id=${id}&id=${id}`, 400, /more than once/],
    ['POST', `/ace/getstream?id=${id}`, 405, /not allowed/],
    ['DELETE', '/ace/status', 405, /not allowed/],
    ['GET', '/nope', 404, /no such path/],
    ['GET', '/ace/status?id=123', 400, /40 hexadecimal/],
    ['GET', `/ace/status?id=${id}`, 404, /not running/],
  ];
  for (const [method, path, status, re] of cases) {
    const r = await getJson(ace.origin + path, method);
    t.equal(r.status, status, `${method} ${path} → ${status}`);
    t.match(r.body?.error, re);
    t.equal(r.headers['content-type'], 'application/json');
  }
  const post = await getJson(`${ace.origin}/ace/getstream?id=${id}`, 'POST');
  t.equal(post.headers.allow, 'GET, HEAD');
  const head = await fetchStream(`${ace.origin}/ace/getstream/?infohash=${id}`, { method: 'HEAD' });
  t.equal(head.status, 200);
  t.equal(head.headers['content-type'], 'video/mp2t');
  t.equal((await sim.stats()).getstreamRequests, 0, 'HEAD and bad requests never reach the engine');
  // A request head larger than the limit: 431 in JSON, and the server lives on.
  const raw = await new Promise<string>((resolve) => {
    const s = connect(ace.port, '127.0.0.1', () => s.write(`GET /ace/status HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20000)}\r\n\r\n`));
    let out = '';
    s.on('data', (d) => (out += d));
    s.on('close', () => resolve(out));
    s.on('error', () => resolve(out));
  });
  t.match(raw, /^HTTP\/1\.1 431/);
  t.match(raw, /"error":"request headers too large"/);
  const after = await getJson(`${ace.origin}/ace/status`);
  t.equal(after.status, 200, 'still serving after the refused requests');
  t.match(after.body, { streams: 0, events: Array }, 'with its status, not an error');
});

t.test('engine failures are answered, never hung on', async (t) => {
  const sim = await startSim();
  const ace = await startAcemux(sim.origin, ['--engine-timeout', '1s', '--max-streams', '1']);
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  const bad = contentId(0xbad);
  const hang = contentId(0x4a9);
  await sim.setFaults({ ids: { [bad]: { getstreamError: 'failed to load content' }, [hang]: { getstreamHang: true } } });
  const e1 = await getJson(`${ace.origin}/ace/getstream?id=${bad}`);
  t.equal(e1.status, 502);
  t.match(e1.body.error, /failed to load content/, "the engine's own words");
  const t0 = Date.now();
  const e2 = await getJson(`${ace.origin}/ace/getstream?id=${hang}`);
  t.equal(e2.status, 504);
  t.ok(Date.now() - t0 < 3000, 'bounded by --engine-timeout');
  // The stream limit: one stream runs, the next is refused with Retry-After.
  const ok = fetchStream(`${ace.origin}/ace/getstream?id=${contentId(1)}`, { ms: 1500 });
  await sleep(500);
  const full = await getJson(`${ace.origin}/ace/getstream?id=${contentId(2)}`);
  t.equal(full.status, 503);
  t.ok(Number(full.headers['retry-after']) > 0);
  t.match(full.body.error, /stream limit/);
  t.equal((await ok).status, 200);
  // Failed starts left nothing behind.
  await sleep(300);
  t.equal((await getJson(`${ace.origin}/ace/status`)).body.streams, 1);

  const dead = await startAcemux('http://127.0.0.1:9', ['--engine-timeout', '2s']);
  t.teardown(() => dead.stop());
  const e3 = await getJson(`${dead.origin}/ace/getstream?id=${contentId(3)}`);
  t.equal(e3.status, 502);
  t.match(e3.body.error, /unreachable/);
});

// Engines send close-delimited or chunked bodies, with chunks cut anywhere in a packet.
for (const body of ['close-delimited', 'chunked'] as const)
  t.test(
    `ffprobe decodes 5 s of a proxied channel without errors (${body} playback body)`,
    { skip: spawnSync('ffprobe', ['-version']).error ? 'ffprobe not installed' : false },
    async (t) => {
      const sim = await startSim(body === 'chunked' ? ['--chunked'] : []);
      const ace = await startAcemux(sim.origin);
      t.teardown(async () => {
        await ace.stop();
        await sim.stop();
      });
      const r = await fetchStream(`${ace.origin}/ace/getstream?id=${contentId(9)}`, { ms: 5500 });
      const file = join(mkdtempSync(join(tmpdir(), 'acemux-')), 'five.ts');
      writeFileSync(file, wholePictures(r.body)); // a capture cut mid-picture would not decode cleanly
      const probe = JSON.parse(
        execFileSync('ffprobe', ['-v', 'error', '-show_entries', 'format=duration:stream=codec_name', '-of', 'json', file]).toString(),
      );
      t.same(probe.streams.map((s: { codec_name: string }) => s.codec_name).sort(), ['aac', 'h264']);
      t.ok(Number(probe.format.duration) >= 4, `duration ${probe.format.duration}s`);
      const decode = spawnSync('ffmpeg', ['-v', 'error', '-i', file, '-f', 'null', '-']);
      t.equal(decode.status, 0);
      t.equal(decode.stderr.toString().trim(), '', 'no decode errors');
    },
  );

t.test('CLI: --help, and a bad value is a clear startup error with a non-zero exit', async (t) => {
  const help = await runCli(['--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /ACEXY_LISTEN_ADDR/);
  const bad = await runCli([], { ACEXY_PORT: 'lots' });
  t.equal(bad.code, 2);
  t.match(bad.stderr, /ACEXY_PORT.*not a whole number/);
});
