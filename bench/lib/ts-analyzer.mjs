// Per-connection MPEG-TS body analysis: packet alignment, synthetic sequence numbers and latency.
// Counters go straight into the connection's GroupStats, so nothing is allocated per packet.
//
// Synthetic data packets (from the simulator's --synthetic mode) are on PID 0x1FF0; payload
// bytes [4..8) hold a uint32 BE sequence number, bytes [8..16) a float64 BE send time in µs of
// CLOCK_MONOTONIC (process.hrtime), the same clock this process reads.

import { Histogram } from './histogram.mjs';

const TS = 188;
const SYNC = 0x47;
const DATA_PID = 0x1ff0;

/** Counters shared by every connection of one group (e.g. "steady", "joiner", "stalled"). */
export class GroupStats {
  constructor() {
    // lifetime counters (not reset by mark)
    this.opened = 0;
    this.closed = 0;
    this.errors = 0;
    this.errorSample = '';
    this.ended = 0; // the server ended the body while we still wanted it
    this.totalBytes = 0; // body bytes since the group was opened (whole-run figures)
    this.firstBytes = 0;
    this.fbAligned = 0;
    this.fbMisaligned = 0;
    this.fb = new Histogram(); // connect start -> first body byte, µs
    // window counters (reset by mark)
    this.bytes = 0;
    this.seqJumps = 0;
    this.lostPackets = 0;
    this.resyncs = 0;
    this.skippedBytes = 0;
    this.lat = new Histogram(); // arrival - send time, µs
  }

  resetWindow() {
    this.bytes = this.seqJumps = this.lostPackets = this.resyncs = this.skippedBytes = 0;
    this.lat.reset();
  }
}

/**
 * First offset in [from, e) where 0x47 recurs every 188 bytes to the end of this read, with at
 * least two sync bytes seen (a lone 0x47 inside a payload must not pass for a packet start).
 * -1 when there is none in this read. @param {Buffer} buf @param {number} from @param {number} e
 */
function hunt(buf, from, e) {
  for (let j = buf.indexOf(SYNC, from); j >= 0 && j + TS < e; j = buf.indexOf(SYNC, j + 1)) {
    let k = j + TS;
    while (k < e && buf[k] === SYNC) k += TS;
    if (k >= e) return j;
  }
  return -1;
}

export class TsAnalyzer {
  /**
   * @param {GroupStats} g
   * @param {number} startUs  connect start, µs of process.hrtime
   */
  constructor(g, startUs) {
    this.g = g;
    this.startUs = startUs;
    this.bytes = 0; // whole body
    this.windowBytes = 0;
    this.carry = Buffer.allocUnsafe(TS);
    this.carryLen = 0;
    this.carryUs = 0; // arrival time of the carried packet's first byte
    this.packets = 0;
    this.synced = false;
    this.lastSeq = -1;
    this.fbState = 0; // 0 none yet, 1 first byte was 0x47 (awaiting the next boundary), 2 decided
  }

  /** @param {Buffer} buf @param {number} s @param {number} e @param {number} nowUs */
  feed(buf, s, e, nowUs) {
    const g = this.g;
    const n = e - s;
    if (n <= 0) return;
    g.bytes += n;
    g.totalBytes += n;
    this.windowBytes += n;
    if (this.bytes === 0) {
      g.firstBytes++;
      g.fb.record(nowUs - this.startUs);
      if (buf[s] === SYNC) this.fbState = 1;
      else this.decideFirst(false);
    }
    this.bytes += n;
    let i = s;
    if (this.carryLen > 0) {
      const take = Math.min(TS - this.carryLen, n);
      buf.copy(this.carry, this.carryLen, i, i + take);
      this.carryLen += take;
      i += take;
      if (this.carryLen < TS) return;
      this.carryLen = 0;
      this.packet(this.carry, 0, this.carryUs);
    }
    while (i < e) {
      if (buf[i] !== SYNC) {
        this.lostSync();
        const j = hunt(buf, i + 1, e);
        if (j < 0) {
          g.skippedBytes += e - i;
          return;
        }
        g.skippedBytes += j - i;
        i = j;
      }
      if (e - i >= TS) {
        this.packet(buf, i, nowUs);
        i += TS;
      } else {
        buf.copy(this.carry, 0, i, e);
        this.carryLen = e - i;
        this.carryUs = nowUs;
        return;
      }
    }
  }

  lostSync() {
    if (this.fbState === 1 && this.packets === 1) this.decideFirst(false);
    if (this.synced) {
      this.g.resyncs++;
      this.synced = false;
    }
  }

  /** @param {boolean} aligned */
  decideFirst(aligned) {
    this.fbState = 2;
    if (aligned) this.g.fbAligned++;
    else this.g.fbMisaligned++;
  }

  /**
   * One whole packet starting with 0x47 at b[p]. Latency is measured for the packet's first byte
   * (arrival of the read that carried it − the send time the simulator stamped when it wrote it).
   * @param {Buffer} b @param {number} p @param {number} arrivedUs
   */
  packet(b, p, arrivedUs) {
    const g = this.g;
    this.synced = true;
    if (++this.packets === 2 && this.fbState === 1) this.decideFirst(true);
    if ((((b[p + 1] & 0x1f) << 8) | b[p + 2]) !== DATA_PID) return;
    const seq = b.readUInt32BE(p + 4);
    if (this.lastSeq >= 0 && seq !== this.lastSeq + 1) {
      g.seqJumps++;
      if (seq > this.lastSeq) g.lostPackets += seq - this.lastSeq - 1;
    }
    this.lastSeq = seq;
    g.lat.record(arrivedUs - b.readDoubleBE(p + 8));
  }

  /** The connection is going away: settle a pending first-byte verdict. */
  finish() {
    if (this.fbState === 1) this.decideFirst(true);
  }
}
