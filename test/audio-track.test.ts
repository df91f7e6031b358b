/**
 * Where the delivered audio ends and the silence that carries it on (src/workers/audio-track.ts):
 * frames counted across packets and PES, a PES taken back, and the fill's TS packets.
 */
import t from 'tap';
import { AudioTrack, MAX_FILL } from '../src/workers/audio-track';
import { readFrame } from '../src/workers/silence';
import { ccErrors, describeErrors, truncatedPes } from './helpers/ts-check';

const TS = 188;
const PID = 0x101;
const FRAME = 1920; // 1024 samples at 48 kHz, in 90 kHz ticks

/** An ADTS frame of `length` bytes (stereo AAC-LC, 48 kHz, no CRC); the body is junk. */
function adtsFrame(length: number): Buffer {
  const f = Buffer.alloc(length, 0x5a);
  f.set([0xff, 0xf1, 0x4c, 0x80 | (length >> 11), (length >> 3) & 0xff, ((length & 7) << 5) | 0x1f, 0xfc]);
  return f;
}

function ptsBytes(v: number): number[] {
  return [
    0x21 | ((Math.floor(v / 2 ** 30) & 7) << 1),
    Math.floor(v / 2 ** 22) & 0xff,
    ((Math.floor(v / 2 ** 15) & 0x7f) << 1) | 1,
    Math.floor(v / 2 ** 7) & 0xff,
    ((v % 128) << 1) | 1,
  ];
}

function readPts(b: Uint8Array, q: number): number {
  return ((b[q]! >> 1) & 7) * 2 ** 30 + b[q + 1]! * 2 ** 22 + (b[q + 2]! >> 1) * 2 ** 15 + b[q + 3]! * 2 ** 7 + (b[q + 4]! >> 1);
}

/** One PES (bounded) of these frames in TS packets, counters from cc + 1. */
function pes(pts: number, frames: Buffer[], cc: number): Buffer {
  const body = Buffer.concat(frames);
  const head = Buffer.from([0, 0, 1, 0xc0, 0, 0, 0x80, 0x80, 5, ...ptsBytes(pts)]);
  head.writeUInt16BE(8 + body.length, 4);
  const all = Buffer.concat([head, body]);
  const out: Buffer[] = [];
  for (let at = 0; at < all.length; at += 184) {
    const p = Buffer.alloc(TS, 0xff);
    const n = Math.min(184, all.length - at);
    p[0] = 0x47;
    p[1] = (at === 0 ? 0x40 : 0) | (PID >> 8);
    p[2] = PID & 0xff;
    cc = (cc + 1) & 15;
    if (n === 184) {
      p[3] = 0x10 | cc;
      all.copy(p, 4, at, at + n);
    } else {
      p[3] = 0x30 | cc;
      p[4] = 183 - n;
      if (p[4] > 0) p[5] = 0;
      all.copy(p, 5 + p[4]!, at, at + n);
    }
    out.push(p);
  }
  return Buffer.concat(out);
}

function feed(track: AudioTrack, ts: Buffer): void {
  for (let p = 0; p < ts.length; p += TS) track.packet(ts, p);
}

t.test('the end of the delivered audio: PTS of the last whole PES plus its frames', async (t) => {
  const track = new AudioTrack('aac');
  // Frames of uneven sizes, so headers straddle packet boundaries.
  const sizes = [371, 180, 5 + 7 + 172, 300, 9, 250, 420, 183, 190, 211];
  const first = pes(90000, sizes.map(adtsFrame), 0);
  const second = pes(90000 + 10 * FRAME, sizes.slice(0, 3).map(adtsFrame), (first.length / TS) & 15);
  feed(track, first);
  feed(track, second);
  t.equal(track.retract(false), 90000 + 13 * FRAME, 'the last PES is whole: it counts (3 frames)');
  const t2 = new AudioTrack('aac');
  feed(t2, first);
  feed(t2, second.subarray(0, TS)); // the second PES is in flight
  t.equal(t2.retract(true), 90000 + 10 * FRAME, 'a PES taken back does not count; the one before does (10 frames)');
  t.equal(t2.retract(false), 90000 + 10 * FRAME, 'a second retraction with nothing delivered since: the same end');
});

t.test('a header that is not one: that PES has no known end; the next PES start counts again', async (t) => {
  const track = new AudioTrack('aac');
  const bad = adtsFrame(200);
  bad[1] = 0x00; // no syncword
  feed(track, pes(0, [adtsFrame(200), bad, adtsFrame(200)], 0));
  t.equal(track.retract(false), -1, 'unknown');
  feed(track, pes(10 * FRAME, [adtsFrame(200), adtsFrame(100)], 3));
  t.equal(track.retract(false), 12 * FRAME, 'counting resumed');
});

t.test('the fill: whole silent frames in whole TS packets, counters and timestamps running on', async (t) => {
  const track = new AudioTrack('aac');
  t.equal(track.fill(PID, 0, 10 * FRAME, 5), null, 'no frame seen yet: nothing to copy');
  const real = pes(1000, [adtsFrame(300), adtsFrame(300)], 0);
  feed(track, real);
  const end = track.retract(false);
  t.equal(end, 1000 + 2 * FRAME);
  const to = end + 21 * FRAME + 700; // 21 frames and a remainder
  const fill = track.fill(PID, end, to, 7)!;
  t.ok(fill);
  t.equal(fill.packets.length, fill.count * TS, 'whole packets');
  const stream = Buffer.concat([real, fill.packets]);
  // The fill continues the PID's counters: from 7 (the last delivered) on.
  t.equal(fill.packets[3]! & 15, 8, 'first counter follows the last delivered');
  t.equal(fill.cc, (7 + fill.count) & 15, 'the last counter is reported');
  t.equal(describeErrors(truncatedPes(stream)), 'none', 'every PES whole');
  // Parse the fill back: PES by PES, PTS and frames.
  let next = end;
  let frames = 0;
  const fp = fill.packets;
  let pesBuf: number[] = [];
  const flush = () => {
    if (pesBuf.length === 0) return;
    const b = Buffer.from(pesBuf);
    t.same([...b.subarray(0, 3)], [0, 0, 1], 'PES start code');
    t.equal(b[3], 0xc0, 'the stream id of the real PES');
    t.equal(b.readUInt16BE(4), b.length - 6, 'PES_packet_length');
    t.equal(readPts(b, 9), next, 'PTS where the audio before it ends');
    let i = 9 + 5;
    while (i < b.length) {
      const f = readFrame('aac', b, i)!;
      t.ok(f, 'an ADTS frame');
      i += f.length;
      frames++;
      next += FRAME;
    }
    t.equal(i, b.length, 'frames fill the PES exactly');
    pesBuf = [];
  };
  for (let p = 0; p < fp.length; p += TS) {
    t.equal(fp[p], 0x47);
    t.equal(((fp[p + 1]! & 0x1f) << 8) | fp[p + 2]!, PID);
    const body = fp[p + 3]! & 0x20 ? p + 5 + fp[p + 4]! : p + 4;
    if (fp[p + 1]! & 0x40) flush();
    pesBuf.push(...fp.subarray(body, p + TS));
  }
  flush();
  t.equal(frames, 21, 'whole frames only: the remainder under one frame stays');
  t.equal(describeErrors(ccErrors(Buffer.concat([pes(0, [adtsFrame(100)], 6), fill.packets]))), 'none', 'no continuity error');
  t.equal(track.retract(false), end + 21 * FRAME, 'the fill is delivered audio: the end moves past it');
});

t.test('no fill for a gap under a frame, a new audio that overlaps, or a gap past the cap', async (t) => {
  const track = new AudioTrack('aac');
  feed(track, pes(0, [adtsFrame(300)], 0));
  const end = track.retract(false);
  t.equal(track.fill(PID, end, end + FRAME - 100, 0), null, 'under a frame');
  t.equal(track.fill(PID, end, end - 5 * FRAME, 0), null, 'the new audio starts before the old ends');
  t.equal(track.fill(PID, end, end + MAX_FILL + FRAME, 0), null, 'more than MAX_FILL');
  t.ok(track.fill(PID, end, end + MAX_FILL, 0), 'MAX_FILL itself');
  t.ok(track.fill(PID, 2 ** 33 - 2 * FRAME, 3 * FRAME, 0), 'across the 2^33 wrap');
});

t.test('layer II: frames counted from their headers, and filled with silent ones', async (t) => {
  const track = new AudioTrack('mp2');
  const frame = () => {
    const f = Buffer.alloc(576, 0x33); // MPEG-1 layer II, 192 kb/s, 48 kHz, stereo, with CRC
    f.set([0xff, 0xfc, 0xa4, 0x04]);
    return f;
  };
  feed(track, pes(5000, [frame(), frame(), frame()], 0));
  const end = track.retract(false);
  t.equal(end, 5000 + 3 * 2160, '1152 samples a frame');
  const fill = track.fill(PID, end, end + 4 * 2160 + 100, 2)!;
  t.ok(fill);
  t.equal(describeErrors(truncatedPes(fill.packets)), 'none');
  t.equal(track.retract(false), end + 4 * 2160, 'four silent frames');
  const body = fill.packets.subarray(4 + 14, 4 + 14 + 4);
  t.same([...body], [0xff, 0xfd, 0xa4, 0x04], 'the first silent frame: the real header without CRC');
});

t.test('frames not aligned to PES: found by their syncword, counted where their header starts', async (t) => {
  const track = new AudioTrack('aac');
  track.resync();
  // The PES starts with the last 50 bytes of a frame from before the (re)connect, then 2 frames.
  const tail = Buffer.alloc(50, 0x5a);
  const split = adtsFrame(300);
  feed(track, pes(1000, [tail, adtsFrame(300), split.subarray(0, 100)], 0));
  feed(track, pes(1000 + 2 * FRAME, [split.subarray(100), adtsFrame(200)], 4));
  t.equal(track.retract(false), 1000 + 3 * FRAME, 'the second PES counts the frame whose header it starts with only');
  const t2 = new AudioTrack('aac');
  t2.resync();
  feed(t2, pes(1000, [tail, adtsFrame(300), split.subarray(0, 100)], 0));
  t.equal(t2.retract(false), 1000 + 2 * FRAME, 'the first: the frame found and the one split across the PES');
});
