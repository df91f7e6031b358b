/**
 * The segmenter against a real ring fed with the sample file the way the actor feeds it (packets
 * written, join points indexed at a PAT followed by a keyframe), in one thread: cuts, durations,
 * splices, the pin and the store/playlist numbering — deterministic, no sockets.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRing, RingReader, RingWriter, TS } from '../../src/shared/ring';
import { PsiTracker, pidOf, isKeyframeStart, readPcr, setDiscontinuity, PAT_PID } from '../../src/shared/mpegts/ts-packet';
import { Segmenter, type Segment } from '../../src/main/hls/segmenter';
import { SegmentStore } from '../../src/main/hls/segment-store';
import { writePlaylist } from '../../src/main/hls/playlist-writer';
import { parsePlaylist } from '../helpers/hls';

const sample = readFileSync(join(__dirname, '..', '..', 'assets', 'sample.mpegts'));
const PACKETS = Math.floor(sample.length / TS);

/** Join points of the sample (packet indexes of a PAT followed by a keyframe), as the actor finds them. */
function joinPoints(): number[] {
  const psi = new PsiTracker();
  const out: number[] = [];
  let pat = -1;
  for (let i = 0; i < PACKETS; i++) {
    const p = i * TS;
    const pid = pidOf(sample, p);
    if (pid === PAT_PID || pid === psi.pmtPid) {
      if (psi.feed(sample, p) === 'pat') pat = i;
    } else if (pid === psi.videoPid && pat >= 0 && isKeyframeStart(sample, p, psi.videoCodec)) {
      out.push(pat);
      pat = -1;
    }
  }
  return out;
}
const JOINS = joinPoints();

/** Feeds `laps` copies of the sample (the second lap spliced when `splice`), polling as main does. */
function feed(opts: { laps: number; splice?: boolean; poll?: boolean; ringBytes?: number; growAt?: number[]; pollEvery?: number }) {
  const sab = createRing(opts.ringBytes ?? 1 << 20, 4, 8 << 20);
  const grows = [...(opts.growAt ?? [])];
  const w = new RingWriter(sab);
  const r = new RingReader(sab);
  const segs: Array<Omit<Segment, 'seq' | 'dseq'>> = [];
  const store = new SegmentStore(6, 2);
  const seg = new Segmenter(r, { targetS: 2, backfillMs: 12_000, epochMs: 0, onSegment: (s) => (segs.push(s), store.add(s)) });
  let refused = 0;
  let ms = 0;
  let chunks = 0;
  for (let lap = 0; lap < opts.laps; lap++) {
    const src = Buffer.from(sample.subarray(0, PACKETS * TS));
    // A splice: the actor starts the new upstream at a join point and marks the first PCR after it.
    const from = lap > 0 && opts.splice ? JOINS[2]! : 0;
    if (lap > 0 && opts.splice) {
      for (let i = from; i < PACKETS; i++)
        if (readPcr(src, i * TS) >= 0) {
          setDiscontinuity(src, i * TS);
          break;
        }
    }
    const base = w.position - from;
    const joins = new Set(JOINS.filter((j) => j >= from));
    for (let i = from; i < PACKETS; i += 50) {
      const n = Math.min(50, PACKETS - i);
      for (let k = i; k < i + n; k++) if (joins.has(k)) w.addJoin((base + k) | 0, ms);
      const wrote = w.write(src, i * TS, n);
      refused += n - wrote;
      ms += 5;
      w.publish(ms);
      if (opts.poll !== false && ++chunks % (opts.pollEvery ?? 1) === 0) seg.poll();
      if (grows.length > 0 && w.position >= grows[0]!) {
        grows.shift();
        w.grow(w.cap * 2); // ring.ts I7, between two polls as the actor's tick would
      }
    }
  }
  seg.poll();
  return { segs, store, seg, r, refused };
}

t.test('segments start at join points, are whole packets, and last about the target', async (t) => {
  const { segs, refused } = feed({ laps: 1 });
  t.equal(refused, 0, 'polled every 50 packets, the segmenter never holds the writer back');
  t.ok(segs.length >= 4, `${segs.length} segments from one lap of the sample`);
  const psi = new PsiTracker();
  for (const [i, s] of segs.entries()) {
    t.equal(s.data.length % TS, 0, `segment ${i}: whole packets`);
    t.equal(pidOf(s.data, 0), PAT_PID, `segment ${i}: starts with the PAT`);
    // The first video PES start in the segment is a keyframe.
    let key: boolean | null = null;
    for (let p = 0; p < s.data.length && key === null; p += TS) {
      const pid = pidOf(s.data, p);
      if (pid === PAT_PID || pid === psi.pmtPid) psi.feed(s.data, p);
      else if (pid === psi.videoPid && (s.data[p + 1]! & 0x40) !== 0) key = isKeyframeStart(s.data, p, psi.videoCodec);
    }
    t.equal(key, true, `segment ${i}: its first picture is a keyframe`);
    t.ok(Math.round(s.durationS) <= 2, `segment ${i}: ${s.durationS.toFixed(3)} s rounds to at most the target`);
  }
  t.ok(segs[0]!.durationS < 1.5, `the first segment is one GOP (${segs[0]!.durationS.toFixed(3)} s), so a cold start waits less`);
  const middle = segs.slice(1, -1);
  t.ok(middle.filter((s) => s.durationS > 1.9).length >= middle.length / 2, 'most later segments reach the 2 s target');
  t.notOk(
    segs.some((s) => s.discontinuity),
    'a continuous stream has no discontinuity',
  );
  const looped = feed({ laps: 2 }).segs;
  t.equal(looped.filter((s) => s.discontinuity).length, 1, 'a clock that jumps back without the splice mark is a discontinuity too');
  for (let i = 1; i < segs.length; i++) t.ok(segs[i]!.pdtMs >= segs[i - 1]!.pdtMs, `date-time ${i} never goes back`);
});

t.test('a splice starts a segment flagged discontinuous; numbering stays consistent', async (t) => {
  const { segs, store } = feed({ laps: 2, splice: true });
  const flagged = segs.filter((s) => s.discontinuity);
  t.equal(flagged.length, 1, 'exactly one segment starts at the splice');
  const at = segs.indexOf(flagged[0]!);
  t.equal(pidOf(segs[at]!.data, 0), PAT_PID, 'and it starts at the PAT of the new upstream');
  const text = writePlaylist({ segments: store.listed(), targetDuration: store.targetDuration, uri: (n) => `${n}.ts` });
  const p = parsePlaylist(text);
  t.equal(p.targetDuration, 2, 'the target duration stayed 2');
  for (const s of p.segments)
    t.equal(s.dseq, store.get(s.seq)!.dseq, `segment ${s.seq}: the playlist's discontinuity numbering is the store's`);
  t.match(text, /#EXT-X-DISCONTINUITY\n/, 'the playlist shows it');
});

t.test('an unpolled segmenter pins what it has not copied (ring I2), and close() lets go', async (t) => {
  const { seg, r, refused } = feed({ laps: 2, poll: false, ringBytes: 256 * 1024 });
  t.ok(refused > 0, `the writer was refused ${refused} packets rather than overwrite uncopied bytes`);
  seg.close();
  const w = new RingWriter(r.sab);
  t.equal(w.write(sample, 0, 100), 100, 'after close() the writer is free');
  seg.close(); // idempotent
});

t.test('the store keeps a window, a tail of one more window, and waits for the first segment', async (t) => {
  const store = new SegmentStore(3, 2);
  const waited = store.waitFirst(1000);
  const timedOut = await new SegmentStore(3, 2).waitFirst(20);
  t.equal(timedOut, false, 'no segment before the timeout: false');
  const mk = (d: number, disc = false) => ({ data: Buffer.alloc(188), durationS: d, discontinuity: disc, pdtMs: 0 });
  store.add(mk(2, true));
  t.equal(await waited, true, 'a waiter wakes at the first segment');
  t.equal(store.get(0)!.discontinuity, false, 'the first segment of a store is never a discontinuity');
  for (let i = 0; i < 8; i++) store.add(mk(2, i === 4));
  t.same(
    store.listed().map((s) => s.seq),
    [6, 7, 8],
    'the window',
  );
  t.ok(store.get(3), 'a segment one window out is still servable');
  t.equal(store.get(2), undefined, 'older ones are gone');
  t.equal(store.get(99), undefined, 'future ones do not exist');
  store.add(mk(2.6));
  t.equal(store.targetDuration, 3, 'a longer segment raises the target duration (never lowers it)');
});

t.test('a stream with no PCR and no video is cut by arrival time at its PAT join points', async (t) => {
  const sab = createRing(1 << 20, 4);
  const w = new RingWriter(sab);
  const segs: Array<Omit<Segment, 'seq' | 'dseq'>> = [];
  const seg = new Segmenter(new RingReader(sab), { targetS: 2, backfillMs: 0, epochMs: 1000, onSegment: (s) => segs.push(s) });
  // The sample's own PAT, then filler (no PCR, no PES) — 100 ms of arrival time per PAT.
  const pat = sample.subarray(0, TS);
  const filler = Buffer.alloc(TS * 9, 0xff);
  for (let i = 0; i < 9; i++) filler.set([0x47, 0x1f, 0xf0, 0x10], i * TS); // PID 0x1FF0, payload only
  for (let ms = 0; ms <= 7000; ms += 100) {
    w.addJoin(w.position, ms);
    w.write(pat, 0, 1);
    w.write(filler, 0, 9);
    w.publish(ms);
    seg.poll();
  }
  t.ok(segs.length >= 2, `${segs.length} segments`);
  for (const s of segs.slice(0, -1)) t.ok(s.durationS >= 1.9 && s.durationS <= 2.1, `about the target (${s.durationS} s)`);
  t.equal(segs[0]!.pdtMs, 1000, "the date-time is the first join point's arrival");
  seg.close();
});

t.test('a segmenter made for a stream already live cuts what its ring still holds at once', async (t) => {
  const sab = createRing(4 << 20, 4);
  const w = new RingWriter(sab);
  const joins = new Set(JOINS);
  let ms = 0;
  for (let i = 0; i < PACKETS; i += 50) {
    const n = Math.min(50, PACKETS - i);
    for (let k = i; k < i + n; k++) if (joins.has(k)) w.addJoin(k, ms);
    w.write(sample, i * TS, n);
    ms += 50; // ~9 s of arrival for the sample's ~9.6 s of media
    w.publish(ms);
  }
  const r = new RingReader(sab);
  const segs: Array<Omit<Segment, 'seq' | 'dseq'>> = [];
  const seg = new Segmenter(r, { targetS: 2, backfillMs: 6000, epochMs: 0, onSegment: (s) => segs.push(s) });
  seg.poll();
  t.ok(segs.length >= 2, `${segs.length} segments at the first poll, none waited for`);
  t.equal(pidOf(segs[0]!.data, 0), PAT_PID, 'the first starts at a join point');
  const startMs = segs[0]!.pdtMs;
  t.ok(ms - startMs <= 6000 + 1000, `it starts within the backfill (${ms - startMs} ms of arrival behind the head)`);
  t.ok(startMs > 0, 'and not at the very start of a ring holding more than the backfill');
  const full = new Segmenter(r, { targetS: 2, backfillMs: 0, epochMs: 0, onSegment: () => t.fail('no backfill: nothing to cut yet') });
  full.poll();
  full.close();
  seg.close();
});

t.test('the segmenter reads on across ring growths: the same segments, byte for byte (ring I7)', async (t) => {
  // Polled every 7 chunks, so each growth finds up to 350 packets the segmenter has not copied yet.
  const plain = feed({ laps: 2, splice: true, pollEvery: 7 }).segs;
  const grown = feed({ laps: 2, splice: true, pollEvery: 7, growAt: [5000, 11_000] }); // past the old cap: W > C, so the growths move packets
  t.ok(grown.r.head() > 11_000, 'both growths happened');
  t.equal(grown.r.cap, 4096 * 4, 'grew twice: 4096 → 16384 packets');
  t.equal(grown.refused, 0);
  t.equal(grown.segs.length, plain.length, 'as many segments');
  t.ok(
    grown.segs.every((s, i) => s.data.equals(plain[i]!.data) && s.discontinuity === plain[i]!.discontinuity),
    "each one identical to the ungrown ring's",
  );
});
