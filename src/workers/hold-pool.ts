/**
 * A1's side buffers: where an actor holds the packets from a PAT until a keyframe shows it a
 * clean join point. One is 1.5 MB (a GOP of a high-bitrate stream), needed only for the moments
 * between a (re)connect and its first keyframe. Allocated per actor, each start left 1.5 MB of
 * external memory to the worker isolate's GC: in a churn of 500 starts that meant ~1.8 ms of
 * GC on the actor thread and ~2.4 ms of V8's background threads per start. So an actor takes
 * one only while it holds, and gives it back as soon as the held packets are in the ring; a
 * thread keeps a few for the next entries.
 */
import { TS } from '../shared/ring';

/** Packets one hold can take; past it the actor stops waiting for a keyframe (A1). */
export const HOLD_PACKETS = 8192;
/** Idle buffers kept per thread: entries rarely overlap by more than a few. */
const MAX_IDLE = 4;

const idle: Buffer[] = [];

export function takeHold(): Buffer {
  return idle.pop() ?? Buffer.allocUnsafeSlow(HOLD_PACKETS * TS);
}

/** The caller must not touch the buffer afterwards. */
export function releaseHold(b: Buffer): void {
  if (idle.length < MAX_IDLE) idle.push(b);
}
