/**
 * What a strict demuxer checks in a captured MPEG-TS body (ISO/IEC 13818-1 2.4.3.3), so tests
 * can assert it without a player: continuity counters on every PID, and PES units delivered whole.
 */
import { pidOf, NULL_PID } from '../../src/shared/mpegts/ts-packet';

const TS = 188;

/**
 * Continuity errors per PID (null packets excluded). A payload packet must carry last + 1, or
 * last once more (a duplicate, allowed once); a packet without payload repeats last; a packet
 * with discontinuity_indicator set may carry anything and restarts the count.
 */
export function ccErrors(buf: Uint8Array): Map<number, number> {
  const last = new Int16Array(8192).fill(-1);
  const dup = new Uint8Array(8192);
  const errors = new Map<number, number>();
  for (let o = 0; o + TS <= buf.length; o += TS) {
    const pid = pidOf(buf, o);
    if (pid === NULL_PID) continue;
    const cc = buf[o + 3]! & 15;
    const payload = (buf[o + 3]! & 0x10) !== 0;
    const disc = (buf[o + 3]! & 0x20) !== 0 && buf[o + 4]! > 0 && (buf[o + 5]! & 0x80) !== 0;
    const prev = last[pid]!;
    let ok = true;
    if (prev >= 0 && !disc) {
      if (!payload) ok = cc === prev;
      else if (cc === prev) ok = dup[pid] === 0;
      else ok = cc === ((prev + 1) & 15);
    }
    dup[pid] = payload && prev >= 0 && cc === prev && !disc ? 1 : 0;
    if (!ok) errors.set(pid, (errors.get(pid) ?? 0) + 1);
    last[pid] = cc;
  }
  return errors;
}

/** "pid 0x100: 3, pid 0x0: 1", or "none". */
export function describeErrors(m: Map<number, number>): string {
  return m.size === 0 ? 'none' : [...m].map(([pid, n]) => `pid 0x${pid.toString(16)}: ${n}`).join(', ');
}

/**
 * PES units with a PES_packet_length that did not get exactly that many bytes before the next
 * unit start on their PID (a truncated access unit). The last unit of each PID is not judged:
 * the capture may have ended inside it.
 */
export function truncatedPes(buf: Uint8Array): Map<number, number> {
  const want = new Map<number, number>();
  const got = new Map<number, number>();
  const bad = new Map<number, number>();
  for (let o = 0; o + TS <= buf.length; o += TS) {
    const pid = pidOf(buf, o);
    const afc = buf[o + 3]! & 0x30;
    if (pid === NULL_PID || (afc & 0x10) === 0) continue;
    const p = afc === 0x30 ? o + 5 + buf[o + 4]! : o + 4;
    if (p >= o + TS) continue;
    if (buf[o + 1]! & 0x40) {
      const w = want.get(pid);
      if (w !== undefined && w > 0 && got.get(pid) !== w) bad.set(pid, (bad.get(pid) ?? 0) + 1);
      const isPes = p + 6 <= o + TS && buf[p] === 0 && buf[p + 1] === 0 && buf[p + 2] === 1;
      const len = isPes ? (buf[p + 4]! << 8) | buf[p + 5]! : 0;
      want.set(pid, len > 0 ? len + 6 : 0); // 0: unbounded (video), ends at the next unit start
      got.set(pid, o + TS - p);
    } else if (want.has(pid)) {
      got.set(pid, got.get(pid)! + o + TS - p);
    }
  }
  return bad;
}
