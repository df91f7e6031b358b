/**
 * The stream actor in-process, against a real HTTP server that plays the sample file from any
 * packet: what lands in the ring after a splice.
 */
import t, { type Test } from 'tap';
import { ccErrors, describeErrors, truncatedPes } from './helpers/ts-check';
import http from 'node:http';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MessageChannel } from 'node:worker_threads';
import { Agent } from 'undici';
import { StreamActor } from '../src/workers/stream-actor';
import { createRing, RingReader, ahead } from '../src/shared/ring';
import { pidOf, readPcr, discontinuityIndicator, PAT_PID, TS_PACKET_SIZE as TS } from '../src/shared/mpegts/ts-packet';
import type { ActorTask, Report } from '../src/shared/messages';

const sample = readFileSync(join(__dirname, '..', 'assets', 'sample.mpegts'));

/** GET /from/<packet>/<count>: that run of the sample, then the body ends. */
async function sampleServer(t: Test): Promise<string> {
  const srv = http.createServer((req, res) => {
    const [, , from, count] = (req.url ?? '').split('/').map(Number);
    res.writeHead(200, { 'content-type': 'video/mp2t' });
    res.end(sample.subarray(from! * TS, (from! + count!) * TS));
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  t.teardown(() => new Promise<void>((r) => srv.close(() => r())));
  return `http://127.0.0.1:${(srv.address() as { port: number }).port}`;
}

t.test(
  'a splice into the middle of a GOP: the ring resumes at PAT + keyframe, and only the first PCR packet after it is flagged',
  async (t) => {
    const origin = await sampleServer(t);
    const ring = createRing(4 << 20, 4);
    const { port1, port2 } = new MessageChannel();
    const inspect = new MessageChannel();
    const reports: Report[] = [];
    port2.on('message', (m: Report | number) => typeof m === 'object' && reports.push(m));
    const task: ActorTask = {
      streamId: 'test',
      ring,
      port: port1,
      epoch: Date.now(),
      batchBytes: 64 * 1024,
      keepaliveMs: 0,
      avHoldMs: 0,
      firstDataTimeoutMs: 5000,
      stallTimeoutMs: 5000,
      playbackHeadersTimeoutMs: 5000,
      statIntervalMs: 0,
      engineTimeoutMs: 5000,
      connect: { type: 'connect', playbackUrl: `${origin}/from/0/3000`, statUrl: null, splice: false },
      life: 0,
      inspectPort: inspect.port1,
    };
    const agent = new Agent();
    const actor = new StreamActor(task, agent);
    t.teardown(async () => {
      actor.stop();
      port2.close();
      inspect.port2.close();
      await agent.close();
    });
    const until = async (ok: () => boolean) => {
      for (let i = 0; i < 500 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
      t.ok(ok());
    };
    await until(() => reports.some((r) => r.type === 'upstream-fault' && r.fault === 'ended'));
    const reader = new RingReader(ring);
    const spliceAt = reader.head();

    // The sample has a PAT every ~94 packets and a keyframe every ~930: from packet 1000 the actor
    // sees PATs at 1029, 1123, … and PCR packets between them long before the keyframe at 1862.
    port2.postMessage({ type: 'connect', playbackUrl: `${origin}/from/1000/2000`, statUrl: null, splice: true });
    await until(() => ahead(reader.head(), spliceAt) > 1000);

    const [a, b] = reader.views(spliceAt, reader.head());
    const after = b ? Buffer.concat([a, b]) : Buffer.from(a);
    t.equal(pidOf(after, 0), PAT_PID, 'the splice starts at a PAT');
    const pcrs: number[] = [];
    for (let off = 0; off + TS <= after.length; off += TS) if (readPcr(after, off) >= 0) pcrs.push(off);
    t.ok(pcrs.length > 10, `PCR packets after the splice (${pcrs.length})`);
    t.ok(discontinuityIndicator(after, pcrs[0]!), 'the first PCR packet after the splice has discontinuity_indicator set');
    t.same(
      pcrs.slice(1).filter((off) => discontinuityIndicator(after, off)),
      [],
      'no later PCR packet is flagged',
    );

    // A5-A7 over everything the ring holds, both upstreams: what a player would read.
    const [c, d] = reader.views(0, reader.head());
    const all = d ? Buffer.concat([c, d]) : Buffer.from(c);
    t.equal(describeErrors(ccErrors(all)), 'none', 'continuity counters continue across the splice on every PID');
    t.equal(describeErrors(truncatedPes(all)), 'none', 'no PES cut short by the first upstream ending');
    const vpts = (buf: Buffer) => {
      const out: number[] = [];
      for (let off = 0; off + TS <= buf.length; off += TS) {
        if (pidOf(buf, off) !== 0x100 || !(buf[off + 1]! & 0x40)) continue;
        const q = off + (buf[off + 3]! & 0x20 ? 5 + buf[off + 4]! : 4) + 9;
        out.push(
          ((buf[q]! >> 1) & 7) * 2 ** 30 + buf[q + 1]! * 2 ** 22 + (buf[q + 2]! >> 1) * 2 ** 15 + buf[q + 3]! * 2 ** 7 + (buf[q + 4]! >> 1),
        );
      }
      return out;
    };
    // The first upstream ended at sample packet 3000, inside a picture: that picture never
    // reached the ring, every one before it did, whole.
    const isVideo = (q: number) => pidOf(sample, q * TS) === 0x100;
    const starts: number[] = [];
    for (let q = 0; q < 3000; q++) if (isVideo(q) && sample[q * TS + 1]! & 0x40) starts.push(q);
    let following = 3000;
    while (following * TS < sample.length && !(isVideo(following) && sample[following * TS + 1]! & 0x40)) following++;
    let cutShort = false;
    for (let q = 3000; q < following; q++) if (isVideo(q)) cutShort = true;
    const end = cutShort ? starts[starts.length - 1]! : 3000;
    let want = 0;
    for (let q = 0; q < end; q++) if (isVideo(q)) want++;
    let got = 0;
    for (let off = 0; off < spliceAt * TS; off += TS) if (pidOf(all, off) === 0x100) got++;
    t.ok(cutShort, 'the first upstream ends inside a picture (the case under test)');
    t.equal(got, want, 'the picture in flight when the first upstream ended was taken back, the ones before it kept');
    const before = vpts(all.subarray(0, spliceAt * TS));
    const next = vpts(after);
    const gap = (next[0]! - Math.max(...before)) / 90;
    t.ok(
      gap > 0 && gap <= 200,
      `video timestamps run on across the splice, no reset (first new PTS ${gap.toFixed(0)} ms after the last shown)`,
    );

    // A7: decode order never steps back across the splice (the next decode time follows the last one).
    const dts = (buf: Buffer) => {
      const out: number[] = [];
      for (let off = 0; off + TS <= buf.length; off += TS) {
        if (pidOf(buf, off) !== 0x100 || !(buf[off + 1]! & 0x40)) continue;
        const b = off + (buf[off + 3]! & 0x20 ? 5 + buf[off + 4]! : 4);
        const q = b + (buf[b + 7]! >> 6 === 3 ? 14 : 9);
        out.push(
          ((buf[q]! >> 1) & 7) * 2 ** 30 + buf[q + 1]! * 2 ** 22 + (buf[q + 2]! >> 1) * 2 ** 15 + buf[q + 3]! * 2 ** 7 + (buf[q + 4]! >> 1),
        );
      }
      return out;
    };
    const lastDts = dts(all.subarray(0, spliceAt * TS)).at(-1)!;
    const firstDts = dts(after)[0]!;
    t.ok(firstDts > lastDts, `decode times run on (the first new one ${((firstDts - lastDts) / 90).toFixed(0)} ms after the last)`);

    // A11: the audio runs on without a hole: each PES starts where the one before ends (PTS +
    // 1024 samples a frame), give or take under a frame, with silent frames where the cut left a gap.
    const units = audioUnits(all, 0x101);
    let silent = 0;
    const holes: string[] = [];
    for (let i = 1; i < units.length; i++) {
      const prev = units[i - 1]!;
      const hole = units[i]!.pts - (prev.pts + prev.frames.length * 1920);
      if (hole < 0 || hole >= 1920) holes.push(`${hole} ticks before PES ${i}`);
    }
    for (const u of units) silent += u.frames.filter((f) => f.length === 14).length;
    t.same(holes, [], `audio continuous across the splice (${units.length} PES)`);
    t.ok(silent > 0, `the gap is filled with silent frames (${silent})`);
  },
);

/** The PES of one PID, reassembled: PTS and the ADTS frames of each. */
function audioUnits(buf: Buffer, pid: number): Array<{ pts: number; frames: Buffer[] }> {
  const out: Array<{ pts: number; frames: Buffer[] }> = [];
  let cur: number[] | null = null;
  const flush = () => {
    if (cur === null) return;
    const b = Buffer.from(cur);
    const q = 9;
    const pts = ((b[q]! >> 1) & 7) * 2 ** 30 + b[q + 1]! * 2 ** 22 + (b[q + 2]! >> 1) * 2 ** 15 + b[q + 3]! * 2 ** 7 + (b[q + 4]! >> 1);
    const frames: Buffer[] = [];
    for (let i = 9 + b[8]!; i + 7 <= b.length;) {
      const len = ((b[i + 3]! & 3) << 11) | (b[i + 4]! << 3) | (b[i + 5]! >> 5);
      frames.push(b.subarray(i, i + len));
      i += len;
    }
    out.push({ pts, frames });
  };
  for (let off = 0; off + TS <= buf.length; off += TS) {
    if (pidOf(buf, off) !== pid || !(buf[off + 3]! & 0x10)) continue;
    if (buf[off + 1]! & 0x40) {
      flush();
      cur = [];
    }
    const body = off + (buf[off + 3]! & 0x20 ? 5 + buf[off + 4]! : 4);
    cur?.push(...buf.subarray(body, off + TS));
  }
  flush();
  return out;
}
