/**
 * HLS end to end: the real simulator, the real acemux, ffmpeg and ffprobe reading what it serves,
 * and every playlist checked against RFC 8216 by m3u8-parser (test/helpers/hls.ts).
 */
import t, { type Test } from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSim, type SimHandle } from '../helpers/sim';
import { startAcemux, type Acemux } from '../helpers/acemux';
import { contentId, sleep, aligned } from '../helpers/client';
import { PlaylistChecker, get, run } from '../helpers/hls';

const dir = mkdtempSync(join(tmpdir(), 'acemux-hls-'));
const source = join(dir, 'source.m3u');
writeFileSync(source, `#EXTM3U\n#EXTINF:-1,One\nacestream://${contentId(9)}\n#EXTINF:-1,Web\nhttp://example.com/x.ts\n`);

let sim: SimHandle;
let ace: Acemux;
t.before(async () => {
  sim = await startSim();
  ace = await startAcemux(sim.origin, [
    '--hls-segment',
    '2s',
    '--grace',
    '1s',
    '--max-streams',
    '4',
    '--engine-timeout',
    '3s',
    '--hls-window',
    '3',
    '--playlist',
    source,
  ]);
});
t.teardown(async () => {
  await ace?.stop();
  await sim?.stop();
});

const manifest = (id: string) => `${ace.origin}/ace/manifest.m3u8?id=${id}`;

/** Polls the playlist as a player would, through the checker, until `until` says stop. */
async function watch(url: string, checker: PlaylistChecker, until: () => boolean, everyMs = 1000, ua = 'rfc-checker'): Promise<void> {
  while (!until()) {
    const r = await get(url, ua);
    if (r.status !== 200) throw new Error(`playlist answered ${r.status}: ${r.body}`);
    checker.check(r.body.toString());
    await sleep(everyMs);
  }
}

async function ffprobeSegment(t: Test, url: string, name: string): Promise<void> {
  const seg = await get(url);
  t.equal(seg.status, 200, `${name}: 200`);
  await probeSegment(t, seg.body, name);
}

async function probeSegment(t: Test, body: Buffer, name: string): Promise<void> {
  t.ok(body.length > 188 && aligned(body), `${name}: whole 188-byte packets`);
  t.equal(((body[1]! & 0x1f) << 8) | body[2]!, 0, `${name}: first packet is the PAT`);
  const file = join(dir, `${name}.ts`);
  writeFileSync(file, body);
  const probe = await run('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_type:format=format_name', '-of', 'json', file]);
  t.equal(probe.stderr, '', `${name}: ffprobe reports no error`);
  const info = JSON.parse(probe.stdout.toString());
  t.equal(info.format.format_name, 'mpegts', `${name}: ffprobe sees MPEG-TS`);
  t.same(info.streams.map((s: { codec_type: string }) => s.codec_type).sort(), ['audio', 'video'], `${name}: video and audio`);
  const frames = await run('ffprobe', [
    '-v',
    'error',
    '-select_streams',
    'v:0',
    '-read_intervals',
    '%+#1',
    '-show_entries',
    'frame=key_frame,pict_type',
    '-of',
    'csv=p=0',
    file,
  ]);
  t.match(frames.stdout.toString().split('\n')[0], /^1,I/, `${name}: the first video frame decoded is a keyframe`);
}

t.test('ffmpeg decodes 20 s of HLS; every playlist keeps the RFC rules; segments are valid TS', async (t) => {
  const id = contentId(1);
  const checker = new PlaylistChecker();
  const t0 = Date.now();
  const first = await get(manifest(id), 'first-viewer');
  t.equal(first.status, 200, 'the first playlist request of a new stream waits and answers 200');
  t.equal(first.headers['content-type'], 'application/vnd.apple.mpegurl');
  t.equal(first.headers['cache-control'], 'no-cache', 'a live playlist is revalidated each time');
  const p0 = checker.check(first.body.toString());
  t.ok(p0.segments.length >= 1, `never an empty playlist (${p0.segments.length} segment(s) after ${Date.now() - t0} ms)`);

  const splice = spliceRun();
  let done = false;
  const ff = run(
    'ffmpeg',
    ['-nostdin', '-v', 'error', '-i', manifest(id), '-t', '20', '-map', '0:v:0', '-map', '0:a:0', '-f', 'framecrc', '-'],
    50_000,
  ).finally(() => (done = true));
  const watching = watch(manifest(id), checker, () => done);
  const r = await ff;
  await watching;
  t.equal(r.code, 0, 'ffmpeg exits 0');
  t.equal(r.stderr, '', 'ffmpeg reports no error while decoding');
  const lines = r.stdout
    .toString()
    .split('\n')
    .filter((l) => /^\d+,/.test(l));
  const video = lines.filter((l) => l.startsWith('0,')).length;
  const audio = lines.filter((l) => l.startsWith('1,')).length;
  t.ok(video >= 20 * 25 * 0.95, `video decoded: ${video} frames (25 fps × 20 s)`);
  t.ok(audio >= 20 * 46 * 0.95, `audio decoded: ${audio} frames`);
  t.same(checker.problems, [], `${checker.playlists} playlists keep the RFC rules`);
  t.ok(checker.seen.size >= 8, `the window slid over ${checker.seen.size} segments`);

  const st = await get(`${ace.origin}/ace/status?id=${id}`);
  const hls = JSON.parse(st.body.toString()).hls;
  t.ok(hls.viewers >= 2, `/ace/status counts HLS viewers (${hls.viewers}: ffmpeg and the checker)`);
  t.ok(hls.segments_served >= 10 && hls.bytes_out > 1e6, `and segments (${hls.segments_served}) and bytes (${hls.bytes_out}) served`);
  const metrics = (await get(`${ace.origin}/metrics`)).body.toString();
  t.match(metrics, /^acemux_hls_viewers [1-9]/m, 'metrics: HLS viewers');
  t.match(metrics, /^acemux_hls_segments_served_total [1-9]/m, 'metrics: segments served');
  t.match(metrics, /^acemux_hls_bytes_out_total [1-9]/m, 'metrics: HLS bytes');
  const admin = JSON.parse((await get(`${ace.origin}/api/streams`)).body.toString());
  t.ok(
    admin.streams.some((s: { hls: { viewers: number } | null }) => s.hls && s.hls.viewers >= 1),
    'the admin API shows HLS viewers',
  );

  const last = checker.check((await get(manifest(id))).body.toString());
  const seg = last.segments[last.segments.length - 1]!;
  await ffprobeSegment(t, `${ace.origin}/ace/${seg.uri}`, 'newest');
  await ffprobeSegment(t, `${ace.origin}/ace/${last.segments[0]!.uri}`, 'oldest');
  const again = await get(`${ace.origin}/ace/${seg.uri}`);
  t.equal(again.headers['cache-control'], 'public, max-age=86400, immutable', 'segments are immutable');
  t.equal(again.headers['content-type'], 'video/mp2t');
  const head = await get(`${ace.origin}/ace/${seg.uri}`, 'x', 'HEAD');
  t.equal(head.status, 200, 'HEAD of a segment');
  t.equal(head.headers['content-length'], String(again.body.length), 'HEAD says the length');

  // Out of the window: the first segment, once the playlist has moved a window past it (it stays
  // servable for one more window after it stops being listed, RFC 8216 6.2.2).
  const gone = [...checker.seen.values()][0]!;
  while (checker.check((await get(manifest(id))).body.toString()).mediaSequence < gone.seq + 2 * 3 + 1) await sleep(500);
  const old = await get(`${ace.origin}/ace/${gone.uri}`);
  t.equal(old.status, 404, 'a segment that left the window answers 404');
  t.equal(JSON.parse(old.body.toString()).code, 'ACEMUX_ERR_NOT_FOUND');
  t.match(JSON.parse(old.body.toString()).error, /left the window/);
  const future = await get(`${ace.origin}/ace/${seg.uri.replace(/\/(\d+)\.ts$/, (_, n) => `/${Number(n) + 1000}.ts`)}`);
  t.equal(future.status, 404, 'a segment that does not exist yet answers 404');
  t.equal((await get(`${ace.origin}/ace/hls/000000000000/1.ts`)).status, 404, 'an unknown stream handle answers 404');

  // Meanwhile another stream was spliced (spliceRun): check what its playlists showed.
  const { checker: checkerS, body: splicedBody } = await splice;
  t.ok(checkerS.discontinuities >= 1, `EXT-X-DISCONTINUITY seen (${checkerS.discontinuities})`);
  t.same(checkerS.problems, [], `${checkerS.playlists} playlists keep the RFC rules across the splice`);
  const spliced = [...checkerS.seen.values()].find((s) => s.discontinuity)!;
  const before = checkerS.seen.get(spliced.seq - 1);
  t.ok(before && spliced.dseq === before.dseq + 1, 'the discontinuity sequence number rises by one at the splice');
  if (before && before.pdt !== null && spliced.pdt !== null) t.ok(spliced.pdt >= before.pdt, 'program date-time never goes back');
  // The spliced segment still starts decodable, so a player resumes at once.
  t.ok(splicedBody, 'the segment after the splice was served');
  if (splicedBody) await probeSegment(t, splicedBody, 'spliced');
});

/** A stream whose first playback connection drops after ~4 s of the sample: the actor reconnects
 *  and splices. Watches its playlists until a discontinuity has been listed for a while. */
async function spliceRun(): Promise<{ checker: PlaylistChecker; body: Buffer | null }> {
  const id = contentId(2);
  await sim.setFaults({ ids: { [id]: { dropAfterBytes: 700_000 } } });
  const checker = new PlaylistChecker();
  const t0 = Date.now();
  let body: Buffer | null = null;
  await watch(
    manifest(id),
    checker,
    () => {
      const spliced = [...checker.seen.values()].find((x) => x.discontinuity);
      if (spliced && body === null) {
        void sim.resetFaults();
        body = Buffer.alloc(0);
        void get(`${ace.origin}/ace/${spliced.uri}`, 'splice-checker').then((r) => (body = r.status === 200 ? r.body : null));
      }
      return (checker.discontinuities >= 1 && checker.playlists >= 10) || Date.now() - t0 > 18_000;
    },
    1000,
    'splice-checker',
  );
  return { checker, body };
}

t.test('errors, methods and HEAD as for getstream', async (t) => {
  const bad = await get(`${ace.origin}/ace/manifest.m3u8?id=xyz`);
  t.equal(bad.status, 400, 'a bad id is refused');
  t.match(JSON.parse(bad.body.toString()).error, /40 hexadecimal/);
  t.equal(JSON.parse(bad.body.toString()).code, 'ACEMUX_ERR_BAD_REQUEST', 'a coded error');
  t.equal((await get(`${ace.origin}/ace/manifest.m3u8`)).status, 400, 'no id is refused');
  t.equal((await get(`${ace.origin}/ace/manifest.m3u8?id=${contentId(3)}&pid=1`)).status, 400, 'pid is ours');
  const post = await get(manifest(contentId(3)), 'x', 'POST');
  t.equal(post.status, 405, 'POST: 405');
  t.equal(post.headers.allow, 'GET, HEAD');
  t.equal((await get(`${ace.origin}/ace/hls/000000000000/1.ts`, 'x', 'DELETE')).status, 405, 'DELETE of a segment: 405');
  const before = (await sim.stats()).sessionsStarted;
  const head = await get(manifest(contentId(4)), 'x', 'HEAD');
  t.equal(head.status, 200, 'HEAD answers like the playlist would');
  t.equal(head.headers['content-type'], 'application/vnd.apple.mpegurl');
  t.equal((await sim.stats()).sessionsStarted, before, 'HEAD starts nothing');
  t.equal((await get(`${ace.origin}/ace/channel/nope.m3u8`)).status, 404, 'a channel without a channels file: 404');
});

t.test('a stream with no segment yet: 504 coded after --engine-timeout, never an empty playlist', async (t) => {
  const id = contentId(5);
  await sim.setFaults({ ids: { [id]: { hangBeforeHeaders: true } } });
  const t0 = Date.now();
  const r = await get(manifest(id));
  const ms = Date.now() - t0;
  t.equal(r.status, 504, 'no first segment: 504');
  t.equal(JSON.parse(r.body.toString()).code, 'ACEMUX_ERR_HLS_TIMEOUT');
  t.ok(ms >= 2900 && ms < 9000, `after about --engine-timeout (${ms} ms)`);
});

t.test('token, limits and the channel playlist apply to HLS; viewers come and go without leaking sessions', async (t) => {
  const sim3 = await startSim();
  const channels = join(dir, 'channels.json');
  writeFileSync(channels, JSON.stringify({ channels: [{ name: 'Sport One', ids: [contentId(7)] }] }));
  const ace3 = await startAcemux(sim3.origin, [
    '--stream-token',
    's3cret',
    '--max-streams',
    '1',
    '--hls-segment',
    '1s',
    '--hls-window',
    '3',
    '--grace',
    '500ms',
    '--channels',
    channels,
  ]);
  t.teardown(async () => {
    await ace3.stop();
    await sim3.stop();
  });
  const url = `${ace3.origin}/ace/channel/sport-one.m3u8`;
  t.equal((await get(url)).status, 401, 'no token: 401');
  const noToken = await get(`${ace3.origin}/ace/manifest.m3u8?id=${contentId(7)}`);
  t.equal(noToken.status, 401, 'no token on the manifest: 401');
  t.equal(JSON.parse(noToken.body.toString()).code, 'ACEMUX_ERR_UNAUTHORIZED', 'a coded error');
  t.equal((await get(`${url}?token=nope`)).status, 401, 'wrong token: 401');
  const ok = await get(`${url}?token=s3cret`, 'viewer-a');
  t.equal(ok.status, 200, 'the channel playlist with the token');
  const checker = new PlaylistChecker();
  const p = checker.check(ok.body.toString());
  const uri = p.segments[0]!.uri;
  t.match(uri, /^\.\.\/hls\/[0-9a-f]{12}\/\d+\.ts\?token=s3cret$/, 'segment URIs are relative and carry the token');
  const segUrl = new URL(uri, url).href;
  t.equal((await get(segUrl.replace(/\?.*/, ''))).status, 401, 'a segment without the token: 401');
  t.equal((await get(segUrl)).status, 200, 'a segment with it: 200');
  const limited = await get(`${ace3.origin}/ace/manifest.m3u8?id=${contentId(8)}&token=s3cret`);
  t.equal(limited.status, 503, 'a second stream past --max-streams: 503');
  t.ok(Number(limited.headers['retry-after']) > 0, 'with Retry-After');

  // Three viewers (address + user agent) of one channel: one engine session.
  const stop = { now: false };
  const viewers = ['viewer-a', 'viewer-b', 'viewer-c'].map(async (ua) => {
    const c = new PlaylistChecker();
    while (!stop.now) {
      const r = await get(`${url}?token=s3cret`, ua);
      const pl = c.check(r.body.toString());
      await get(new URL(pl.segments[pl.segments.length - 1]!.uri, url).href, ua);
      await sleep(500);
    }
    return c;
  });
  await sleep(3000);
  const st = JSON.parse((await get(`${ace3.origin}/ace/status?id=${contentId(7)}`)).body.toString());
  t.equal(st.hls.viewers, 3, 'three HLS viewers');
  t.equal(st.state, 'live', 'the stream is live on HLS viewers alone');
  t.equal((await sim3.stats()).sessionsStarted, 1, 'three viewers, one engine session');
  stop.now = true;
  for (const c of await Promise.all(viewers)) t.same(c.problems, [], 'each viewer saw RFC-clean playlists');
  const stoppedAt = Date.now();
  while ((await sim3.stats()).sessionsActive > 0 && Date.now() - stoppedAt < 15_000) await sleep(200);
  const ms = Date.now() - stoppedAt;
  const s = await sim3.stats();
  t.equal(s.sessionsActive, 0, `no engine session left once the viewers stopped fetching (${ms} ms)`);
  t.ok(ms >= 2500, 'the stream outlived the last fetch by about 3 target durations (+ grace)');
  t.equal(s.sessionsStarted, s.sessionsStopped + s.sessionsEvicted + s.sessionsExpired, 'every session we started was ended');
  t.equal(s.playbackActive, 0, 'no playback connection left');
  t.equal(JSON.parse((await get(`${ace3.origin}/ace/status?token=s3cret`)).body.toString()).streams, 0, 'no stream left in acemux');
  const after = JSON.parse((await get(`${ace3.origin}/ace/status?id=${contentId(7)}`)).body.toString());
  t.equal(after.error !== undefined, true, 'the stream is gone from /ace/status');
});

t.test('/playlist.m3u?format=hls points entries at HLS playlists', async (t) => {
  const ace4 = ace;
  const hls = (await get(`${ace4.origin}/playlist.m3u?format=hls`)).body.toString();
  t.match(hls, `${ace4.origin}/ace/manifest.m3u8?id=${contentId(9)}\n`, 'the AceStream entry becomes an HLS URL');
  t.match(hls, 'http://example.com/x.ts\n', 'other entries stay');
  t.match((await get(`${ace4.origin}/playlist.m3u`)).body.toString(), `/ace/getstream?id=${contentId(9)}`, 'the default stays TS');
  t.equal((await get(`${ace4.origin}/playlist.m3u?format=mp4`)).status, 400, 'an unknown format: 400');
});
