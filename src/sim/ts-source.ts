// Endless MPEG-TS sources for the engine simulator: the looped sample file and a synthetic stream.
//
// Invariants:
// - A source emits whole 188-byte packets, one per next() call, written into a caller-owned buffer;
//   it allocates nothing per packet (the sample index and the synthetic templates are built once).
// - Looped sample, 'continuous' mode: loop n adds n × loopTicks90 to every PCR base, PTS and DTS
//   (mod 2^33), so time never goes backwards across the loop point; PCR extensions are untouched
//   because the shift is a whole number of 90 kHz ticks (= 300 PCR ticks each).
// - Looped sample, 'discontinuity' mode: timestamps keep their original values and the first
//   PCR-carrying packet of every new loop gets discontinuity_indicator = 1.
// - In both modes continuity counters are rewritten per PID, so they continue across the loop point:
//   a payload-carrying packet takes the PID's next counter, a packet without payload (adaptation
//   field only, e.g. a PCR-only packet) repeats the PID's last one (ISO/IEC 13818-1 2.4.3.3).
// - A source lives as long as an engine session: a second reader of the same session continues where
//   the first stopped (live-like), it does not restart the file.

import { readFileSync } from 'node:fs';
import { TS_PACKET_SIZE as TS_PACKET, crc32Mpeg2, pidOf, readPcr, setDiscontinuity } from '../shared/mpegts/ts-packet';
const TWO33 = 2 ** 33;

export interface TsSource {
  /** Writes the next packet into dst[off, off + 188). */
  next(dst: Buffer, off: number): void;
  /** If present, called at write time for every packet whose first byte that write carries. */
  stamp?(dst: Buffer, off: number, timeUs: number): void;
}

export type LoopMode = 'continuous' | 'discontinuity';

/** The sample file plus a per-packet index of the fields a loop has to patch. */
export class SampleTrack {
  readonly data: Buffer;
  readonly count: number;
  /** Index into the per-source CC table, per packet (one slot per PID). */
  readonly ccSlot: Uint8Array;
  readonly slots: number;
  /** Byte offset within the packet of the PCR base / PTS / DTS field, or -1. */
  readonly pcrOff: Int16Array;
  readonly ptsOff: Int16Array;
  readonly dtsOff: Int16Array;
  /** Original values of those fields (33-bit, exact in a double). */
  readonly pcrBase: Float64Array;
  readonly pts: Float64Array;
  readonly dts: Float64Array;
  /** Mux rate from the PCRs, bits per second. */
  readonly bitrate: number;
  /** Loop length in 90 kHz ticks: the file's byte length at its mux rate. */
  readonly loopTicks90: number;

  constructor(path: string) {
    const raw = readFileSync(path);
    const n = Math.floor(raw.length / TS_PACKET);
    if (n < 2) throw new Error(`${path}: not an MPEG-TS file`);
    this.data = raw.subarray(0, n * TS_PACKET);
    this.count = n;
    this.ccSlot = new Uint8Array(n);
    this.pcrOff = new Int16Array(n).fill(-1);
    this.ptsOff = new Int16Array(n).fill(-1);
    this.dtsOff = new Int16Array(n).fill(-1);
    this.pcrBase = new Float64Array(n);
    this.pts = new Float64Array(n);
    this.dts = new Float64Array(n);

    const slotOfPid = new Map<number, number>();
    let pcrPid = -1,
      firstPcr = -1,
      firstPcrPos = 0,
      lastPcr = -1,
      lastPcrPos = 0;
    const b = this.data;
    for (let i = 0; i < n; i++) {
      const o = i * TS_PACKET;
      if (b[o] !== 0x47) throw new Error(`${path}: lost sync at packet ${i}`);
      const pid = pidOf(b, o);
      const afc = (b[o + 3] >> 4) & 3;
      let p = o + 4;
      if (afc & 2) {
        const afLen = b[o + 4];
        if (afLen >= 7 && b[o + 5] & 0x10) {
          this.pcrOff[i] = 6;
          const base = readPcrBase(b, o + 6);
          this.pcrBase[i] = base;
          const pcr27 = readPcr(b, o);
          if (pcrPid < 0) {
            pcrPid = pid;
            firstPcr = pcr27;
            firstPcrPos = o;
          }
          if (pid === pcrPid) {
            lastPcr = pcr27;
            lastPcrPos = o;
          }
        }
        p = o + 5 + afLen;
      }
      let slot = slotOfPid.get(pid);
      if (slot === undefined) {
        slot = slotOfPid.size;
        slotOfPid.set(pid, slot);
      }
      if (slot > 255) throw new Error(`${path}: too many PIDs`);
      this.ccSlot[i] = slot;
      if (afc & 1) {
        // PES header at the start of a unit: 00 00 01, an audio/video/private stream id, flags.
        if (b[o + 1] & 0x40 && p + 19 <= o + TS_PACKET && b[p] === 0 && b[p + 1] === 0 && b[p + 2] === 1 && hasPesHeader(b[p + 3])) {
          const flags = b[p + 7] >> 6;
          if (flags & 2) {
            this.ptsOff[i] = p + 9 - o;
            this.pts[i] = readTs(b, p + 9);
          }
          if (flags === 3) {
            this.dtsOff[i] = p + 14 - o;
            this.dts[i] = readTs(b, p + 14);
          }
        }
      }
    }
    if (lastPcrPos <= firstPcrPos || lastPcr <= firstPcr) throw new Error(`${path}: needs at least two PCRs`);
    this.slots = slotOfPid.size;
    this.bitrate = ((lastPcrPos - firstPcrPos) * 8 * 27e6) / (lastPcr - firstPcr);
    // Assumes a constant-rate mux (the sample pads with null packets), so one loop lasts exactly its
    // bytes at the mux rate and PCR stays in step with the byte position across the loop point.
    this.loopTicks90 = Math.round((this.data.length * 8 * 90000) / this.bitrate);
  }
}

/** Plays a SampleTrack in an endless loop. */
export class SampleSource implements TsSource {
  private index = 0;
  private loop = 0;
  /** What the current loop adds to timestamps, 'continuous' mode (90 kHz ticks). */
  private shift = 0;
  private discPending = false;
  private readonly cc: Uint8Array;

  constructor(
    private readonly track: SampleTrack,
    private readonly mode: LoopMode,
  ) {
    this.cc = new Uint8Array(track.slots);
  }

  next(dst: Buffer, off: number): void {
    const t = this.track;
    const i = this.index;
    t.data.copy(dst, off, i * TS_PACKET, (i + 1) * TS_PACKET);
    const slot = t.ccSlot[i];
    if (dst[off + 3] & 0x10) {
      dst[off + 3] = (dst[off + 3] & 0xf0) | this.cc[slot];
      this.cc[slot] = (this.cc[slot] + 1) & 15;
    } else {
      // No payload: the counter does not advance, so this packet repeats the last one sent.
      dst[off + 3] = (dst[off + 3] & 0xf0) | ((this.cc[slot] + 15) & 15);
    }
    if (this.loop > 0) {
      if (this.mode === 'continuous') {
        const shift = this.shift;
        if (t.pcrOff[i] >= 0) writePcrBase(dst, off + t.pcrOff[i], (t.pcrBase[i] + shift) % TWO33);
        if (t.ptsOff[i] >= 0) writeTs(dst, off + t.ptsOff[i], (t.pts[i] + shift) % TWO33);
        if (t.dtsOff[i] >= 0) writeTs(dst, off + t.dtsOff[i], (t.dts[i] + shift) % TWO33);
      } else if (this.discPending && t.pcrOff[i] >= 0) {
        setDiscontinuity(dst, off);
        this.discPending = false;
      }
    }
    if (++this.index === t.count) {
      this.index = 0;
      this.loop++;
      this.shift = (this.loop * t.loopTicks90) % TWO33;
      this.discPending = true;
    }
  }
}

// Synthetic stream layout (for benchmarks): PAT → PMT on 0x1000 → one stream_type 0x06 ES on 0x1FF0.
const SYN_PMT_PID = 0x1000;
export const SYN_DATA_PID = 0x1ff0;

/**
 * Generates PAT + PMT every ~100 ms of stream and otherwise data packets `47 1F F0 1x` whose payload
 * carries [4..8) a per-session sequence number (uint32 BE, from 0) and [8..16) the send time
 * (float64 BE, microseconds of process.hrtime), stamped when the write carrying the packet's first
 * byte is issued.
 */
export class SyntheticSource implements TsSource {
  private static templates?: { pat: Buffer; pmt: Buffer; data: Buffer };
  private seq = 0;
  private ccPat = 0;
  private ccPmt = 0;
  private ccData = 0;
  private phase = 0;
  private readonly cycle: number;

  /** nominalBitrate fixes how many packets make 100 ms of stream. */
  constructor(nominalBitrate: number) {
    this.cycle = Math.max(3, Math.round((0.1 * nominalBitrate) / (TS_PACKET * 8)));
  }

  next(dst: Buffer, off: number): void {
    const tpl = (SyntheticSource.templates ??= buildTemplates());
    if (this.phase === 0) {
      tpl.pat.copy(dst, off);
      dst[off + 3] = 0x10 | this.ccPat;
      this.ccPat = (this.ccPat + 1) & 15;
    } else if (this.phase === 1) {
      tpl.pmt.copy(dst, off);
      dst[off + 3] = 0x10 | this.ccPmt;
      this.ccPmt = (this.ccPmt + 1) & 15;
    } else {
      tpl.data.copy(dst, off);
      dst[off + 3] = 0x10 | this.ccData;
      this.ccData = (this.ccData + 1) & 15;
      dst.writeUInt32BE(this.seq, off + 4);
      this.seq = (this.seq + 1) >>> 0;
    }
    if (++this.phase === this.cycle) this.phase = 0;
  }

  stamp(dst: Buffer, off: number, timeUs: number): void {
    if (dst[off + 1] === SYN_DATA_PID >> 8 && dst[off + 2] === (SYN_DATA_PID & 0xff)) dst.writeDoubleBE(timeUs, off + 8);
  }
}

function buildTemplates(): { pat: Buffer; pmt: Buffer; data: Buffer } {
  const pat = psiPacket(0x0000, [
    0x00,
    0xb0,
    13,
    0x00,
    0x01,
    0xc1,
    0x00,
    0x00, // table 0, length 13, tsid 1, v0 current
    0x00,
    0x01,
    0xe0 | (SYN_PMT_PID >> 8),
    SYN_PMT_PID & 0xff, // program 1 → PMT PID
  ]);
  const pmt = psiPacket(SYN_PMT_PID, [
    0x02,
    0xb0,
    18,
    0x00,
    0x01,
    0xc1,
    0x00,
    0x00, // table 2, length 18, program 1
    0xe0 | (SYN_DATA_PID >> 8),
    SYN_DATA_PID & 0xff,
    0xf0,
    0x00, // PCR_PID, no program info
    0x06,
    0xe0 | (SYN_DATA_PID >> 8),
    SYN_DATA_PID & 0xff,
    0xf0,
    0x00, // private data ES
  ]);
  const data = Buffer.alloc(TS_PACKET, 0xff);
  data.set([0x47, SYN_DATA_PID >> 8, SYN_DATA_PID & 0xff, 0x10]);
  return { pat, pmt, data };
}

function psiPacket(pid: number, section: number[]): Buffer {
  const p = Buffer.alloc(TS_PACKET, 0xff);
  p.set([0x47, 0x40 | (pid >> 8), pid & 0xff, 0x10, 0x00]); // PUSI, payload only, pointer_field 0
  const sec = Buffer.from(section);
  sec.copy(p, 5);
  p.writeUInt32BE(crc32Mpeg2(sec, 0, sec.length), 5 + sec.length);
  return p;
}

function hasPesHeader(streamId: number): boolean {
  return (streamId >= 0xc0 && streamId <= 0xef) || streamId === 0xbd || (streamId >= 0xfa && streamId <= 0xfd);
}

/** 33-bit PCR base at b[p..p+5); bit 7 of b[p+4] is its LSB. */
function readPcrBase(b: Uint8Array, p: number): number {
  return b[p] * 2 ** 25 + b[p + 1] * 2 ** 17 + b[p + 2] * 2 ** 9 + b[p + 3] * 2 + (b[p + 4] >> 7);
}

function writePcrBase(b: Buffer, p: number, v: number): void {
  b[p] = Math.floor(v / 2 ** 25) & 0xff;
  b[p + 1] = Math.floor(v / 2 ** 17) & 0xff;
  b[p + 2] = Math.floor(v / 2 ** 9) & 0xff;
  b[p + 3] = Math.floor(v / 2) & 0xff;
  b[p + 4] = ((v % 2) << 7) | (b[p + 4] & 0x7f); // keep the 6 reserved bits and the extension's MSB
}

/** 33-bit PES timestamp in its 5-byte marker-bit layout. */
function readTs(b: Uint8Array, p: number): number {
  return ((b[p] >> 1) & 7) * 2 ** 30 + b[p + 1] * 2 ** 22 + (b[p + 2] >> 1) * 2 ** 15 + b[p + 3] * 2 ** 7 + (b[p + 4] >> 1);
}

function writeTs(b: Buffer, p: number, v: number): void {
  b[p] = (b[p] & 0xf0) | ((Math.floor(v / 2 ** 30) & 7) << 1) | 1; // keep the '0010'/'0011'/'0001' prefix
  b[p + 1] = Math.floor(v / 2 ** 22) & 0xff;
  b[p + 2] = ((Math.floor(v / 2 ** 15) & 0x7f) << 1) | 1;
  b[p + 3] = Math.floor(v / 2 ** 7) & 0xff;
  b[p + 4] = ((v % 128) << 1) | 1;
}
