/**
 * Where the audio delivered on one PID ends, and the silent PES that carry it on to a new
 * upstream's first audio (stream-actor.ts A11).
 *
 * The actor shows it every packet it delivers on the PID (counters and timestamps already in
 * the output domain). The track walks the frame headers of the payload (one header read per
 * frame, bytes in between skipped), so it knows each PES's PTS and how many samples follow it:
 * the PES ends at PTS + samples / rate. A frame belongs to the PES its header starts in (the
 * PES's PTS is that of the first such frame). Frames need not be aligned to PES: after a
 * (re)connect, or a header that is not one, the track hunts for the next syncword; a PES whose
 * count was lost that way (or without a PTS) is of unknown length, and the actor falls back on
 * its estimate.
 */
import { TS } from '../shared/ring';
import { type AudioCodec, headerBytes, readFrame, silentFrame } from './silence';

const TWO33 = 2 ** 33;
/** A11: no fill longer than this (90 kHz): a gap that long is a broken timeline, not a splice. */
export const MAX_FILL = 2 * 90000;
/** Silent frames per PES, about what real streams carry. */
const FRAMES_PER_PES = 8;

export class AudioTrack {
  /** The last real header whole (what silent frames copy), and the one being collected. */
  private readonly last: Uint8Array;
  private haveLast = false;
  private readonly hdr: Uint8Array;
  private hn = 0;
  private readonly hlen: number;
  /** Payload bytes to skip before the next frame header, or hunting for a syncword. */
  private skip = 0;
  private hunting = true;
  /** The PES being delivered (none: since the last retraction or fill), its PTS (-1 unknown)
   *  and the samples whose headers it carried. */
  private inPes = false;
  private curPts = -1;
  private curSamples = 0;
  private rate = 0;
  private samples = 0;
  /** Where the last whole PES delivered ends (90 kHz, output domain), -1 unknown. */
  private doneEnd = -1;
  private streamId = 0xc0;

  constructor(readonly codec: AudioCodec) {
    this.hlen = headerBytes(codec);
    this.last = new Uint8Array(this.hlen);
    this.hdr = new Uint8Array(this.hlen);
  }

  /** How long the last real frame played (90 kHz), 0 before the first one. */
  frameTicks(): number {
    return this.rate > 0 ? (this.samples * 90000) / this.rate : 0;
  }

  /** A new upstream: the PID resumes on a unit start; its first frame is hunted for. */
  resync(): void {
    this.hn = 0;
    this.skip = 0;
    this.hunting = true;
    this.inPes = false;
    this.curPts = -1;
    this.curSamples = 0;
  }

  /** A packet delivered on the PID, at src[p]. */
  packet(src: Uint8Array, p: number): void {
    const b3 = src[p + 3]!;
    if ((b3 & 0x10) === 0) return;
    let b = (b3 & 0x20) !== 0 ? p + 5 + src[p + 4]! : p + 4;
    const end = p + TS;
    if ((src[p + 1]! & 0x40) !== 0) {
      this.finishPes();
      this.inPes = true;
      if (b + 9 > end || src[b] !== 0 || src[b + 1] !== 0 || src[b + 2] !== 1) {
        this.lose(); // not a PES we can read: this one's length is unknown
        return;
      }
      this.streamId = src[b + 3]!;
      // A PTS is due on a PES that starts a frame; without one this PES's length stays unknown.
      this.curPts = (src[b + 7]! & 0x80) !== 0 && b + 14 <= end ? readPts(src, b + 9) : -1;
      b += 9 + src[b + 8]!;
    }
    this.scan(src, b, end);
  }

  private scan(src: Uint8Array, i: number, end: number): void {
    while (i < end) {
      if (this.skip > 0) {
        const k = Math.min(this.skip, end - i);
        this.skip -= k;
        i += k;
        continue;
      }
      if (this.hunting) {
        if (src[i] !== 0xff) {
          i++;
          continue;
        }
        this.hunting = false; // a candidate: its header decides
        this.hn = 0;
      }
      this.hdr[this.hn++] = src[i++]!;
      if (this.hn < this.hlen) continue;
      this.hn = 0;
      const f = readFrame(this.codec, this.hdr, 0);
      if (f === null) {
        this.lose();
        continue;
      }
      this.last.set(this.hdr);
      this.haveLast = true;
      this.rate = f.rate;
      this.samples = f.samples;
      this.curSamples += f.samples;
      this.skip = f.length - this.hlen;
    }
  }

  /** Not a header where one was due: this PES's count is lost; hunt for the next syncword. */
  private lose(): void {
    this.curPts = -1;
    this.hunting = true;
    this.hn = 0;
    this.skip = 0;
  }

  private finishPes(): void {
    if (!this.inPes) return;
    this.inPes = false;
    this.doneEnd = this.curPts >= 0 && this.rate > 0 ? (this.curPts + Math.round((this.curSamples * 90000) / this.rate)) % TWO33 : -1;
    this.curPts = -1;
    this.curSamples = 0;
  }

  /**
   * The upstream is abandoned; `open`: its PES in flight is taken back (stream-actor.ts A5).
   * Returns where the audio delivered on the PID ends (90 kHz, output), or -1 when unknown.
   */
  retract(open: boolean): number {
    if (open) {
      this.inPes = false;
      this.curPts = -1;
      this.curSamples = 0;
    } else this.finishPes();
    return this.doneEnd;
  }

  /**
   * Silent PES on `pid` carrying the audio on from `from` (where the delivered audio ends) to
   * `to` (the next real PES's PTS), both 90 kHz output, in whole frames (a remainder under one
   * frame stays a gap); `cc` is the last counter delivered on the PID. Whole TS packets, or null
   * when there is nothing to fill, the gap is past MAX_FILL, or no silent frame is known.
   */
  fill(pid: number, from: number, to: number, cc: number): { packets: Buffer; count: number; cc: number } | null {
    if (!this.haveLast || from < 0 || to < 0) return null;
    const gap = (((to - from) % TWO33) + TWO33) % TWO33;
    if (gap > MAX_FILL) return null; // also a new audio that starts before the old one ends
    const s = silentFrame(this.codec, this.last, 0);
    if (s === null) return null;
    const tick = (s.samples * 90000) / s.rate;
    const frames = Math.floor(gap / tick + 0.01); // PTS are whole ticks: a frame of 44.1 kHz is not
    if (frames === 0) return null;
    const out: Buffer[] = [];
    let count = 0;
    for (let k = 0; k < frames; k += FRAMES_PER_PES) {
      const n = Math.min(FRAMES_PER_PES, frames - k);
      const pes = Buffer.alloc(14 + n * s.bytes.length);
      pes[2] = 1;
      pes[3] = this.streamId;
      pes.writeUInt16BE(8 + n * s.bytes.length, 4);
      pes[6] = 0x84; // '10', data_alignment_indicator: a frame starts the payload
      pes[7] = 0x80; // PTS only
      pes[8] = 5;
      writePts(pes, 9, (from + Math.round(k * tick)) % TWO33);
      for (let j = 0; j < n; j++) pes.set(s.bytes, 14 + j * s.bytes.length);
      const ts = packetize(pes, pid, cc);
      cc = (cc + ts.length / TS) & 15;
      count += ts.length / TS;
      out.push(ts);
    }
    this.doneEnd = (from + Math.round(frames * tick)) % TWO33;
    this.resync();
    return { packets: Buffer.concat(out), count, cc };
  }
}

/** The PES in whole TS packets, counters from cc + 1; the last one padded by its adaptation field. */
function packetize(pes: Buffer, pid: number, cc: number): Buffer {
  const count = Math.ceil(pes.length / 184);
  const out = Buffer.alloc(count * TS, 0xff);
  let at = 0;
  for (let k = 0; k < count; k++) {
    const p = k * TS;
    const left = pes.length - at;
    cc = (cc + 1) & 15;
    out[p] = 0x47;
    out[p + 1] = (k === 0 ? 0x40 : 0) | (pid >> 8);
    out[p + 2] = pid & 0xff;
    let body = p + 4;
    if (left >= 184) out[p + 3] = 0x10 | cc;
    else {
      out[p + 3] = 0x30 | cc;
      const af = 183 - left; // adaptation_field_length: flags byte, then stuffing
      out[p + 4] = af;
      if (af > 0) out[p + 5] = 0; // no flags; 0xff stuffing follows
      body = p + 5 + af;
    }
    const n = Math.min(left, 184);
    pes.copy(out, body, at, at + n);
    at += n;
  }
  return out;
}

function readPts(src: Uint8Array, q: number): number {
  return ((src[q]! >> 1) & 7) * 2 ** 30 + src[q + 1]! * 2 ** 22 + (src[q + 2]! >> 1) * 2 ** 15 + src[q + 3]! * 2 ** 7 + (src[q + 4]! >> 1);
}

function writePts(b: Uint8Array, q: number, v: number): void {
  b[q] = 0x21 | ((Math.floor(v / 2 ** 30) & 7) << 1); // '0010', PTS[32..30], marker
  b[q + 1] = Math.floor(v / 2 ** 22) & 0xff;
  b[q + 2] = ((Math.floor(v / 2 ** 15) & 0x7f) << 1) | 1;
  b[q + 3] = Math.floor(v / 2 ** 7) & 0xff;
  b[q + 4] = ((v % 128) << 1) | 1;
}
