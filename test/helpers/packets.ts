import { TS } from '../../src/shared/ring';

/** Packets carrying their own sequence number in bytes 4..8, so any corruption or reordering shows. */
export function seqPackets(from: number, count: number): Buffer {
  const b = Buffer.alloc(count * TS, 0xff);
  for (let i = 0; i < count; i++) {
    b[i * TS] = 0x47;
    b.writeUInt32BE((from + i) >>> 0, i * TS + 4);
  }
  return b;
}
