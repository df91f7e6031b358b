// Engine simulator, tested as a real child process (see test/helpers/sim.ts). Needs a build first:
// `npx tsc -p tsconfig.json`.

import t from 'tap';
import http, { type IncomingMessage } from 'node:http';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { request } from 'undici';
import { SIM_CLI, type SimHandle, startSim } from './helpers/sim';
import { ccErrors, describeErrors } from './helpers/ts-check';

const ID1 = '0123456789abcdef0123456789abcdef01234567';
const ID2 = '89abcdef0123456789abcdef0123456789abcdef';
const IH3 = 'aaaaaaaaaabbbbbbbbbbccccccccccdddddddddd';
const SAMPLE_BYTES = statSync(resolve(__dirname, '../assets/sample.mpegts')).size;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Envelope {
  response: null | Record<string, unknown>;
  error: string | null;
}

async function getJson(url: string, headers: Record<string, string> = {}, timeoutMs = 5000) {
  const res = await request(url, { headers, signal: AbortSignal.timeout(timeoutMs) });
  return { status: res.statusCode, headers: res.headers, body: (await res.body.json()) as Envelope };
}

async function getstream(sim: SimHandle, query: string): Promise<Record<string, string>> {
  const { body } = await getJson(`${sim.origin}/ace/getstream?format=json&${query}`);
  if (!body.response) throw new Error(`getstream failed: ${body.error}`);
  return body.response as Record<string, string>;
}

/** A raw playback reader: records every 'data' event so chunk boundaries can be inspected. */
class Reader {
  status = 0;
  res: IncomingMessage | null = null;
  readonly chunks: Buffer[] = [];
  /** Arrival time of each chunk (performance.now()). */
  readonly chunkAt: number[] = [];
  bytes = 0;
  ended = false;
  error: Error | null = null;
  readonly startedAt = performance.now();
  headersAt = 0;
  readonly closed: Promise<void>;
  private readonly req: http.ClientRequest;
  private waiters: Array<() => void> = [];

  constructor(
    url: string,
    private readonly maxBytes = Infinity,
  ) {
    let done!: () => void;
    this.closed = new Promise((r) => (done = r));
    this.req = http.get(url, { agent: false, headers: { 'accept-encoding': 'identity' } }, (res) => {
      this.res = res;
      this.status = res.statusCode ?? 0;
      this.headersAt = performance.now();
      res.on('data', (d: Buffer) => {
        if (this.bytes >= this.maxBytes) return;
        this.chunks.push(d);
        this.chunkAt.push(performance.now());
        this.bytes += d.length;
        if (this.bytes >= this.maxBytes) this.req.destroy();
        this.wake();
      });
      res.on('end', () => (this.ended = true));
      res.on('error', () => {});
      res.on('close', () => {
        done();
        this.wake();
      });
      this.wake();
    });
    this.req.on('error', (err) => {
      this.error = err;
      done();
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Resolves once `cond` holds (checked on every event), rejects after timeoutMs. */
  async until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (!cond()) {
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`timed out (${this.bytes} bytes, status ${this.status})`);
      await new Promise<void>((r) => {
        const timer = setTimeout(r, Math.min(left, 100));
        this.waiters.push(() => {
          clearTimeout(timer);
          r();
        });
      });
    }
  }

  data(): Buffer {
    return Buffer.concat(this.chunks);
  }

  close(): void {
    this.req.destroy();
  }

  /** Whether `cond` came to hold in time: a missing event fails an assertion, not the whole test by timeout. */
  holdsWithin(cond: () => boolean, timeoutMs = 5000): Promise<boolean> {
    return this.until(cond, timeoutMs).then(
      () => true,
      () => false,
    );
  }

  /** Whether the connection closed within timeoutMs. */
  closesWithin(timeoutMs = 5000): Promise<boolean> {
    return Promise.race([this.closed.then(() => true), sleep(timeoutMs).then(() => false)]);
  }
}

/** Reads a whole stream (or its first maxBytes) and resolves when the connection ends. */
async function readAll(url: string, maxBytes = Infinity, timeoutMs = 15000): Promise<Reader> {
  const r = new Reader(url, maxBytes);
  await Promise.race([r.closed, sleep(timeoutMs).then(() => r.close())]);
  return r;
}

// ---- MPEG-TS parsing for checks ----

const pidOf = (b: Buffer, o: number) => ((b[o + 1] & 0x1f) << 8) | b[o + 2];
const hasPcr = (b: Buffer, o: number) => (b[o + 3] & 0x20) !== 0 && b[o + 4] >= 7 && (b[o + 5] & 0x10) !== 0;
const pcrBase = (b: Buffer, o: number) => b[o + 6] * 2 ** 25 + b[o + 7] * 2 ** 17 + b[o + 8] * 2 ** 9 + b[o + 9] * 2 + (b[o + 10] >> 7);

/** Number of 188-byte slots whose first byte is not the sync byte. */
function syncErrors(buf: Buffer): number {
  let bad = 0;
  for (let o = 0; o < buf.length; o += 188) if (buf[o] !== 0x47) bad++;
  return bad;
}

/** Continuity errors summed over every PID, packets without payload included (ts-check.ts). */
function ccBreaks(buf: Buffer): number {
  let n = 0;
  for (const v of ccErrors(buf).values()) n += v;
  return n;
}

function pcrs(buf: Buffer, pid = 0x100): Array<{ at: number; base: number; disc: boolean }> {
  const out = [];
  for (let o = 0; o + 188 <= buf.length; o += 188) {
    if (pidOf(buf, o) === pid && hasPcr(buf, o)) out.push({ at: o, base: pcrBase(buf, o), disc: (buf[o + 5] & 0x80) !== 0 });
  }
  return out;
}

const haveFfmpeg = spawnSync('ffprobe', ['-version']).status === 0 && spawnSync('ffmpeg', ['-version']).status === 0;

// ---------------------------------------------------------------------------------------------

t.test('cli rejects bad flags with exit code 2', async (t) => {
  const r = spawnSync(process.execPath, [SIM_CLI, '--bogus'], { encoding: 'utf8' });
  t.equal(r.status, 2);
  t.match(r.stderr, /usage/);
  const r2 = spawnSync(process.execPath, [SIM_CLI, '--loop-mode', 'sideways'], { encoding: 'utf8' });
  t.equal(r2.status, 2);
  const r3 = spawnSync(process.execPath, [SIM_CLI, '--tick-ms', '0'], { encoding: 'utf8' });
  t.equal(r3.status, 2);
  t.match(r3.stderr, /--tick-ms must be 1\.\.1000/);
});

t.test('service endpoints, getstream envelope, errors, redirect mode', async (t) => {
  const sim = await startSim(['--bitrate', '2000000']);
  t.teardown(() => sim.stop());

  const v = await getJson(`${sim.origin}/webui/api/service?method=get_version`);
  t.same(v.body, { result: { code: 3017000, platform: 'linux', version: '3.1.70' }, error: null });
  const st = await getJson(`${sim.origin}/server/api?api_version=3&method=get_status`);
  t.equal(st.status, 200);
  t.equal(st.body.error, null);

  const { body } = await getJson(`${sim.origin}/ace/getstream?format=json&id=${ID1}&pid=p1`, { host: 'engine.internal:6878' });
  t.equal(body.error, null);
  const r = body.response as Record<string, unknown>;
  t.match(r, {
    playback_url: /^http:\/\/engine\.internal:6878\/ace\/r\/[0-9a-f]{40}\/[0-9a-z]+$/,
    stat_url: /^http:\/\/engine\.internal:6878\/ace\/stat\//,
    command_url: /^http:\/\/engine\.internal:6878\/ace\/cmd\//,
    infohash: /^[0-9a-f]{40}$/,
    playback_session_id: /^[0-9a-f]{40}$/,
    is_live: 1,
    is_encrypted: 0,
    client_session_id: -1,
  });
  t.not(r.infohash, ID1, 'a content id maps to a different infohash');
  t.notOk('event_url' in r, 'no event_url without use_api_events');

  const again = await getstream(sim, `content_id=${ID1}&pid=p1&use_api_events=1`);
  t.equal(new URL(again.playback_url).pathname, new URL(r.playback_url as string).pathname, 'same pid + same content → same session');
  t.match(again.event_url, /\/ace\/event\//);
  t.match(again.playback_url, `http://127.0.0.1:${sim.port}/`, 'urls follow the Host header');

  const byIh = await getstream(sim, `infohash=${IH3}&sid=p3`);
  t.equal(byIh.infohash, IH3, 'infohash selector keeps the infohash; sid aliases pid');

  for (const q of ['', `id=${ID1}&infohash=${IH3}`, 'id=nothex', `url=http://x/y.acelive`]) {
    const e = await getJson(`${sim.origin}/ace/getstream/?format=json&${q}`);
    t.equal(e.status, 200, `error is HTTP 200 (${q || 'no selector'})`);
    t.equal(e.body.response, null);
    t.type(e.body.error, 'string');
  }

  const redirect = await request(`${sim.origin}/ace/getstream?id=${ID2}&pid=p2`);
  await redirect.body.dump();
  t.equal(redirect.statusCode, 302);
  t.match(String(redirect.headers.location), /\/ace\/r\/[0-9a-f]{40}\//);
  const redirectFail = await request(`${sim.origin}/ace/getstream?id=zz`);
  t.equal(redirectFail.statusCode, 500);
  await redirectFail.body.dump();

  const nf = await request(`${sim.origin}/no/such/path`);
  t.equal(nf.statusCode, 404);
  t.equal(nf.headers['content-type'], 'application/json');
  await nf.body.json();
  const s = await sim.stats();
  t.equal(s.getstreamRequests, 9);
  t.equal(s.sessionsStarted, 3);
});

t.test('playback: TS sync, unaligned chunks, pacing at the configured rate', async (t) => {
  const sim = await startSim(['--bitrate', '2000000']);
  t.teardown(() => sim.stop());
  const gs = await getstream(sim, `id=${ID1}&pid=a`);
  const r = new Reader(gs.playback_url);
  await r.until(() => r.status > 0);
  t.equal(r.status, 200);
  t.equal(r.res!.headers['content-type'], 'video/mp2t');
  t.notOk(r.res!.headers['content-encoding'], 'never compressed');
  t.equal(r.res!.headers['transfer-encoding'], undefined, 'close-delimited by default');

  await sleep(500);
  const b0 = r.bytes;
  const t0 = performance.now();
  await sleep(2000);
  const rate = ((r.bytes - b0) * 8) / ((performance.now() - t0) / 1000);
  r.close();
  t.ok(rate > 1.6e6 && rate < 2.4e6, `measured ${Math.round(rate)} b/s for 2000000`);

  const data = r.data();
  t.equal(syncErrors(data), 0, 'sync byte at every 188th byte');
  t.equal(ccBreaks(data), 0, 'continuity counters continuous');
  const unaligned = r.chunks.filter((c) => c.length % 188 !== 0).length;
  t.ok(unaligned > r.chunks.length / 2, `most reads are not packet multiples (${unaligned}/${r.chunks.length})`);
  // Reads can coalesce writes under load, so only check that sizes vary, not their bounds.
  t.ok(new Set(r.chunks.map((c) => c.length)).size > r.chunks.length / 2, 'read sizes vary');
  const s = await sim.stats();
  t.equal(s.playbackOpened, 1);
  t.ok(s.bytesSent >= data.length);
});

t.test("the bench's realistic chunks: 1-16,000-byte writes on a set cadence keep the rate and the sync", async (t) => {
  // A 200 ms cadence, so that its bursts stand out from scheduling noise on a busy machine.
  const sim = await startSim(['--synthetic', '--bitrate', '4000000', '--chunk-min', '1', '--chunk-max', '16000', '--tick-ms', '200']);
  t.teardown(() => sim.stop());
  const gs = await getstream(sim, `id=${ID1}&pid=a`);
  const r = new Reader(gs.playback_url);
  await r.until(() => r.bytes > 0);
  const b0 = r.bytes;
  const i0 = r.chunks.length;
  const t0 = performance.now();
  await sleep(2000);
  const rate = ((r.bytes - b0) * 8) / ((performance.now() - t0) / 1000);
  r.close();
  t.ok(rate > 3.2e6 && rate < 4.8e6, `measured ${Math.round(rate)} b/s for 4000000`);
  const data = r.data();
  t.equal(syncErrors(data), 0, 'sync byte at every 188th byte');
  t.equal(ccBreaks(data), 0, 'continuity counters continuous');
  const gaps = r.chunkAt.slice(i0 + 1).filter((at, i) => at - r.chunkAt[i0 + i]! > 100).length;
  t.ok(gaps >= 5, `data comes in bursts on the cadence: ${gaps} pauses over 100 ms in 2 s`);
});

t.test('prebuffer delay, burst, chunked bodies, default rate = sample mux rate', async (t) => {
  // A prebuffer long enough that a loaded machine still asks for stat and playback inside it.
  const sim = await startSim(['--prebuffer-ms', '1200', '--burst-bytes', '300000', '--chunked']);
  t.teardown(() => sim.stop());
  const askedAt = performance.now();
  const gs = await getstream(sim, `id=${ID1}&pid=a`);
  const statUrl = gs.stat_url;
  const early = await getJson(statUrl);
  const earlyMs = performance.now() - askedAt;
  // The engine answers {} for 200 ms after getstream: a slower round trip may see 'prebuf' already.
  const empty = JSON.stringify(early.body) === JSON.stringify({ response: {}, error: null });
  const late = earlyMs >= 200 && early.body.response?.status === 'prebuf';
  t.ok(empty || late, `stat is empty right after start, or prebuf when asked late (${Math.round(earlyMs)} ms)`);
  await sleep(220);
  const pre = await getJson(statUrl);
  t.match(pre.body.response, { status: 'prebuf', peers: 0 });

  const r = new Reader(gs.playback_url);
  await r.until(() => r.status > 0);
  // Held until 1200 ms after getstream, however late the request came (a loaded machine).
  t.ok(r.headersAt - askedAt >= 1190, `headers held while prebuffering (${Math.round(r.headersAt - askedAt)} ms after getstream)`);
  t.equal(r.res!.headers['transfer-encoding'], 'chunked');
  await r.until(() => r.bytes >= 300000, 1500);
  const burstMs = performance.now() - r.headersAt;
  t.ok(burstMs < 1000, `burst of 300000 bytes arrived at link speed (${Math.round(burstMs)} ms)`);
  const b0 = r.bytes;
  const t0 = performance.now();
  await sleep(1500);
  const rate = ((r.bytes - b0) * 8) / ((performance.now() - t0) / 1000);
  t.ok(rate > 1.4e6 * 0.8 && rate < 1.4e6 * 1.2, `paced at the sample's 1.4 Mb/s after the burst (${Math.round(rate)})`);

  const dl = await getJson(statUrl);
  const resp = dl.body.response as Record<string, unknown>;
  t.match(resp, { status: 'dl', peers: Number, speed_down: Number, speed_up: Number, uploaded: 0, total_progress: 0 });
  t.ok((resp.peers as number) > 0);
  t.equal((resp.downloaded as number) % 16384, 0, 'downloaded in 16 KiB steps');
  t.ok((resp.downloaded as number) > 0);
  t.match(resp.livepos, { pos: /^\d+$/, live_first: /^\d+$/, live_last: /^\d+$/, first_ts: /^\d+$/, last_ts: /^\d+$/ });
  r.close();
  t.equal(syncErrors(r.data()), 0, 'sync byte at every 188th byte');
});

t.test('continuous loop: PCR/PTS keep rising, CC continues, decodes cleanly', async (t) => {
  const sim = await startSim(['--bitrate', '0']);
  t.teardown(() => sim.stop());
  const gs = await getstream(sim, `id=${ID1}&pid=a`);
  const want = 2 * SAMPLE_BYTES + 188 * 2000; // well past two loop points
  const r = await readAll(gs.playback_url, want);
  const data = r.data().subarray(0, want);
  t.equal(data.length, want);
  t.equal(syncErrors(data), 0, 'sync byte at every 188th byte');
  t.equal(ccBreaks(data), 0, 'no CC break across loop points');
  const p = pcrs(data);
  let backwards = 0;
  for (let i = 1; i < p.length; i++) if (p[i].base <= p[i - 1].base) backwards++;
  t.equal(backwards, 0, `PCR increases monotonically over ${p.length} PCRs`);
  t.notOk(
    p.some((x) => x.disc),
    'no discontinuity flags in continuous mode',
  );
  // Across the loop point the PCR step matches the byte distance at the mux rate (1.4 Mb/s).
  const i = p.findIndex((x) => x.at >= SAMPLE_BYTES);
  const secs = (p[i].base - p[i - 1].base) / 90000;
  const expect = ((p[i].at - p[i - 1].at) * 8) / 1.4e6;
  t.ok(Math.abs(secs - expect) < 0.002, `PCR step at the loop ${secs.toFixed(4)} s ≈ ${expect.toFixed(4)} s`);

  if (!haveFfmpeg) {
    t.comment('ffprobe/ffmpeg not installed: decode check skipped');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'acemux-sim-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'two-loops.ts');
  writeFileSync(file, data.subarray(0, 2 * SAMPLE_BYTES)); // two whole loops: ~19 s, one loop point
  const probe = spawnSync('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name', '-of', 'json', file], { encoding: 'utf8' });
  t.equal(probe.stderr, '', 'ffprobe reports no errors');
  const codecs = (JSON.parse(probe.stdout) as { streams: Array<{ codec_name: string }> }).streams.map((s) => s.codec_name).sort();
  t.same(codecs, ['aac', 'h264']);
  const dec = spawnSync('ffmpeg', ['-v', 'error', '-i', file, '-f', 'null', '-'], { encoding: 'utf8' });
  t.equal(dec.status, 0);
  t.equal(dec.stderr, '', 'ffmpeg decodes across the loop point without errors or timestamp complaints');
});

t.test('continuity counters correct on every PID over several loops, in both loop modes', async (t) => {
  for (const mode of ['continuous', 'discontinuity']) {
    const sim = await startSim(['--bitrate', '0', '--loop-mode', mode]);
    t.teardown(() => sim.stop());
    const gs = await getstream(sim, `id=${ID1}&pid=a`);
    const want = 4 * SAMPLE_BYTES + 188 * 1000; // four loop points
    const data = (await readAll(gs.playback_url, want)).data().subarray(0, want);
    t.equal(data.length, want, `${mode}: read four loops`);
    const errors = ccErrors(data);
    t.equal(errors.size, 0, `${mode}: no continuity error on any PID, PCR-only packets included (${describeErrors(errors)})`);
    // The sample has PCR-only packets on its video PID: the check above covered them.
    let afOnly = 0;
    for (let o = 0; o + 188 <= data.length; o += 188) if ((data[o + 3]! & 0x30) === 0x20) afOnly++;
    t.ok(afOnly > 50, `${mode}: ${afOnly} packets without payload were checked`);
    await sim.stop();
  }
});

t.test('discontinuity loop mode: original timestamps, flag on the first PCR of each loop', async (t) => {
  const sim = await startSim(['--bitrate', '0', '--loop-mode', 'discontinuity']);
  t.teardown(() => sim.stop());
  const gs = await getstream(sim, `id=${ID1}&pid=a`);
  const want = SAMPLE_BYTES + 188 * 4000;
  const data = (await readAll(gs.playback_url, want)).data().subarray(0, want);
  t.equal(syncErrors(data), 0, 'sync byte at every 188th byte');
  t.equal(ccBreaks(data), 0, 'CC still continuous');
  const p = pcrs(data);
  const flagged = p.filter((x) => x.disc);
  t.equal(flagged.length, 1, 'exactly one flagged PCR packet in one loop point');
  const i = p.indexOf(flagged[0]);
  t.ok(flagged[0].at >= SAMPLE_BYTES, 'flag sits in the second loop');
  t.ok(p[i].base < p[i - 1].base, 'PCR jumps back at the flagged packet');
  t.equal(p[i].base, p[0].base, 'timestamps restart at their original values');
});

t.test('synthetic stream: PAT/PMT, consecutive sequence numbers, monotonic send times', async (t) => {
  const sim = await startSim(['--synthetic', '--bitrate', '0']);
  t.teardown(() => sim.stop());
  const gs = await getstream(sim, `id=${ID1}&pid=a`);
  const want = 188 * 12000;
  const data = (await readAll(gs.playback_url, want)).data().subarray(0, want);
  const nowUs = Number(process.hrtime.bigint()) / 1000;
  t.equal(syncErrors(data), 0, 'sync byte at every 188th byte');
  t.equal(ccBreaks(data), 0);
  let pat = 0,
    pmt = 0,
    other = 0,
    seqErrors = 0,
    timeBackwards = 0,
    expectSeq = 0,
    lastTime = 0,
    firstTime = 0;
  for (let o = 0; o < data.length; o += 188) {
    const pid = pidOf(data, o);
    if (pid === 0) {
      if (pat++ === 0) {
        t.equal(data.readUInt16BE(o + 13), 1, 'program 1');
        t.equal(data.readUInt16BE(o + 15) & 0x1fff, 0x1000, 'PAT points program 1 at PMT PID 0x1000');
      }
    } else if (pid === 0x1000) {
      if (pmt++ === 0) {
        t.equal(data.readUInt16BE(o + 13) & 0x1fff, 0x1ff0, 'PCR_PID 0x1FF0');
        t.equal(data[o + 17], 0x06, 'stream_type 0x06');
        t.equal(data.readUInt16BE(o + 18) & 0x1fff, 0x1ff0, 'ES on 0x1FF0');
      }
    } else if (pid !== 0x1ff0 || (data[o + 3] & 0xf0) !== 0x10 || data[o + 16] !== 0xff || data[o + 187] !== 0xff) {
      other++;
    } else {
      const seq = data.readUInt32BE(o + 4);
      if (seq !== expectSeq) seqErrors++;
      expectSeq = seq + 1;
      const time = data.readDoubleBE(o + 8);
      if (time < lastTime) timeBackwards++;
      if (!firstTime) firstTime = time;
      lastTime = time;
    }
  }
  t.equal(other, 0, 'every other packet is a payload-only 0x1FF0 data packet with 0xFF stuffing');
  t.ok(pat > 0 && pat === pmt, `PAT and PMT repeat together (${pat})`);
  t.equal(seqErrors, 0, `sequence numbers consecutive from 0 (${expectSeq})`);
  t.equal(timeBackwards, 0, 'send times never go backwards');
  t.ok(lastTime <= nowUs && firstTime > nowUs - 10e6, 'send times are this machine’s hrtime in µs');
  t.ok(lastTime > firstTime, 'several writes, several stamps');
  if (haveFfmpeg) {
    const dir = mkdtempSync(join(tmpdir(), 'acemux-sim-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'synthetic.ts');
    writeFileSync(file, data);
    const probe = spawnSync(
      'ffprobe',
      ['-v', 'error', '-show_entries', 'program=program_id,pmt_pid,pcr_pid:stream=id', '-of', 'json', file],
      { encoding: 'utf8' },
    );
    t.equal(probe.stderr, '', 'ffprobe accepts the PSI (CRCs included)');
    t.match(JSON.parse(probe.stdout), { programs: [{ program_id: 1, pmt_pid: 0x1000, pcr_pid: 0x1ff0, streams: [{ id: '0x1ff0' }] }] });
  }
});

t.test('pid semantics: takeover, eviction, second reader', async (t) => {
  const sim = await startSim(['--bitrate', '2000000']);
  t.teardown(() => sim.stop());
  const a = await getstream(sim, `id=${ID1}&pid=p1`);
  const r1 = new Reader(a.playback_url);
  await r1.until(() => r1.bytes > 20000);

  // A second concurrent reader of the same URL gets garbage instead of a status line.
  const r2 = await readAll(a.playback_url, Infinity, 3000);
  t.ok(r2.error, `second reader fails: ${r2.error?.message}`);
  t.equal(r2.status, 0);
  const before = r1.bytes;
  t.ok(await r1.holdsWithin(() => r1.bytes > before + 10000), 'the first reader keeps going');

  // The same content with another pid takes it over: the old reader is cut, its token is dead.
  const b = await getstream(sim, `id=${ID1}&pid=p2`);
  t.not(b.playback_url, a.playback_url);
  t.ok(await r1.closesWithin(), 'old playback connection cut on takeover');
  const old = await readAll(a.playback_url, Infinity, 2000);
  t.equal(old.status, 403, 'taken-over token answers 403');
  t.same((await getJson(a.stat_url)).body, { response: null, error: 'unknown playback session id' });
  t.same((await getJson(`${a.command_url}?method=stop`)).body, { response: null, error: 'unknown playback session id' });

  // That pid used for a different content evicts its older session.
  const c = await getstream(sim, `id=${ID2}&pid=p2`);
  t.equal((await getJson(b.stat_url)).body.error, 'unknown playback session id');
  const s = await sim.stats();
  t.equal(s.sessionsEvicted, 2);
  t.equal(s.secondReaders, 1);
  t.equal(s.sessionsActive, 1);
  t.equal(s.sessions[0].pid, 'p2');
  t.equal(s.sessions[0].content, ID2);
  t.match(c.playback_url, s.sessions[0].token);
});

t.test('stop command ends the session', async (t) => {
  const sim = await startSim(['--bitrate', '2000000']);
  t.teardown(() => sim.stop());
  const a = await getstream(sim, `id=${ID1}&pid=p1`);
  const r = new Reader(a.playback_url);
  await r.until(() => r.bytes > 10000);
  t.same((await getJson(`${a.command_url}?method=stop`)).body, { response: 'ok', error: null });
  t.ok(await r.closesWithin(), 'playback socket closed by stop');
  t.same((await getJson(a.stat_url)).body, { response: null, error: 'unknown playback session id' });
  t.same((await getJson(`${a.command_url}?method=stop`)).body, { response: null, error: 'unknown playback session id' });
  t.equal((await readAll(a.playback_url, Infinity, 2000)).status, 404, 'stopped token is unknown');
  const s = await sim.stats();
  t.match(s, { sessionsStopped: 1, stopCommands: 2, sessionsActive: 0, playbackActive: 0, statRequests: 1 });
});

t.test('faults', async (t) => {
  const sim = await startSim(['--bitrate', '2000000']);
  t.teardown(() => sim.stop());

  t.test('getstreamError after errorDelayMs, per id', async (t) => {
    await sim.setFaults({ ids: { [ID2]: { getstreamError: 'failed to load content', errorDelayMs: 300 } } });
    const t0 = performance.now();
    const e = await getJson(`${sim.origin}/ace/getstream?format=json&id=${ID2}&pid=x`);
    t.ok(performance.now() - t0 >= 280, 'error held back errorDelayMs');
    t.same(e.body, { response: null, error: 'failed to load content' });
    t.ok(await getstream(sim, `id=${ID1}&pid=y`), 'other ids unaffected');
    await sim.resetFaults();
  });

  t.test('getstreamHang and getstreamDelayMs', async (t) => {
    await sim.setFaults({ global: { getstreamHang: true } });
    await t.rejects(getJson(`${sim.origin}/ace/getstream?format=json&id=${ID1}&pid=h`, {}, 400), 'client timeout fires');
    await sim.setFaults({ global: { getstreamHang: false, getstreamDelayMs: 300 } });
    const t0 = performance.now();
    await getstream(sim, `id=${ID1}&pid=h`);
    t.ok(performance.now() - t0 >= 280, 'answer delayed');
    await sim.resetFaults();
  });

  t.test('playbackStatus', async (t) => {
    const a = await getstream(sim, `id=${ID1}&pid=s`);
    await sim.setFaults({ global: { playbackStatus: 500 } });
    const r = await readAll(a.playback_url, Infinity, 2000);
    t.equal(r.status, 500);
    t.match(r.data().toString(), /500/);
    await sim.resetFaults();
  });

  t.test('stallAfterBytes keeps the socket open', async (t) => {
    await sim.setFaults({ global: { stallAfterBytes: 50000 } });
    const a = await getstream(sim, `id=${ID1}&pid=st`);
    const r = new Reader(a.playback_url);
    await r.until(() => r.bytes >= 50000);
    await sleep(600);
    t.equal(r.bytes, 50000, 'exactly stallAfterBytes, then nothing');
    t.notOk(r.ended || r.error, 'connection still open');
    const s = await sim.stats();
    t.equal(s.sessions.find((x) => x.pid === 'st')?.playback, 'stalled');
    const st = (await getJson(a.stat_url)).body.response as Record<string, number>;
    t.equal(st.speed_down, 0, 'stat shows no download speed while stalled');
    r.close();
    await sim.resetFaults();
  });

  t.test('dropAfterBytes closes the socket', async (t) => {
    await sim.setFaults({ global: { dropAfterBytes: 30000 } });
    const a = await getstream(sim, `id=${ID1}&pid=dr`);
    const r = await readAll(a.playback_url, Infinity, 3000);
    t.equal(r.bytes, 30000);
    t.equal(r.status, 200);
    await sim.resetFaults();
    const again = await readAll(a.playback_url, 40000, 3000);
    t.ok(again.bytes >= 40000, 'after reset the same session plays on');
  });

  t.test('slowStartMs and hangBeforeHeaders', async (t) => {
    await sim.setFaults({ global: { slowStartMs: 600 } });
    const a = await getstream(sim, `id=${ID1}&pid=sl`);
    const r = new Reader(a.playback_url);
    await r.until(() => r.bytes > 0, 3000);
    t.ok(r.headersAt - r.startedAt >= 550, `headers after ${Math.round(r.headersAt - r.startedAt)} ms`);
    r.close();

    await sim.setFaults({ global: { slowStartMs: 0, hangBeforeHeaders: true } });
    const b = await getstream(sim, `id=${ID2}&pid=hb`);
    const h = new Reader(b.playback_url);
    await sleep(600);
    t.equal(h.status, 0, 'no headers');
    t.match((await getJson(b.stat_url)).body.response, { status: 'prebuf', peers: 0 }, 'looks like a dead channel');
    h.close();
    await sim.resetFaults();
  });

  t.test('statError, cmdHang, bad fault bodies', async (t) => {
    const a = await getstream(sim, `id=${ID1}&pid=c`);
    await sim.setFaults({ ids: { [ID1]: { statError: 'boom', cmdHang: true } } });
    t.same((await getJson(a.stat_url)).body, { response: null, error: 'boom' });
    await t.rejects(getJson(`${a.command_url}?method=stop`, {}, 400), 'command hangs');
    await sim.resetFaults();
    t.same((await getJson(`${a.command_url}?method=stop`)).body, { response: 'ok', error: null });
    await t.rejects(sim.setFaults({ global: { stallAfterBytes: 'many' } } as never), /400/);
    await t.rejects(sim.setFaults({ nope: {} } as never), /400/);
  });
});

t.test('restart forgets sessions and cuts playback, counters survive', async (t) => {
  const sim = await startSim(['--bitrate', '2000000']);
  t.teardown(() => sim.stop());
  const a = await getstream(sim, `id=${ID1}&pid=p1`);
  const r = new Reader(a.playback_url);
  await r.until(() => r.bytes > 10000);
  await sim.restart();
  t.ok(await r.closesWithin(), 'playback cut');
  t.equal((await getJson(a.stat_url)).body.error, 'unknown playback session id');
  t.equal((await readAll(a.playback_url, Infinity, 2000)).status, 404);
  const s = await sim.stats();
  t.match(s, { getstreamRequests: 1, sessionsStarted: 1, playbackOpened: 1, sessionsActive: 0, playbackActive: 0, restarts: 1 });
  const b = await getstream(sim, `id=${ID1}&pid=p1`);
  t.not(b.playback_url, a.playback_url, 'a fresh session after restart');
});

t.test('idle sessions expire; SIGTERM exits cleanly', async (t) => {
  const sim = await startSim(['--idle-session-ms', '300']);
  t.teardown(() => sim.stop());
  const a = await getstream(sim, `id=${ID1}&pid=p1`);
  const r = new Reader(a.playback_url);
  await r.until(() => r.bytes > 0);
  await sleep(500);
  t.equal((await sim.stats()).sessionsActive, 1, 'a read session does not expire');
  r.close();
  await sleep(700);
  const s = await sim.stats();
  t.match(s, { sessionsExpired: 1, sessionsActive: 0 });
  t.equal((await getJson(a.stat_url)).body.error, 'unknown playback session id');
  await sim.stop();
  t.equal(sim.proc.exitCode, 0);
});
