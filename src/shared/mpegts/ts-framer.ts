import { SYNC_BYTE, TS_PACKET_SIZE } from './ts-packet';

/**
 * Re-frames an unaligned byte stream (HTTP body chunks of any size) into whole 188-byte packets.
 *
 * Hot path: runs of aligned packets are handed out as (chunk, off, count) straight from the
 * caller's chunk — no copy, no allocation. Only a packet that straddles a chunk boundary goes
 * through the internal carry buffer and is emitted as (carry, 0, 1). The receiver must finish with
 * the bytes inside the callback (copy them out): neither the chunk nor the carry outlives it.
 *
 * Sync rule: a packet is emitted once the byte after it has been seen and is 0x47. When it is not,
 * the packet is suspect — a truncated packet (bytes lost mid-packet, the usual corruption), junk
 * that happens to start with 0x47, or a good packet followed by junk. We hunt from just after its
 * sync byte for an offset k where 0x47 repeats at k+188 (scan() tells how +376 is used when it is
 * in the chunk). If k falls inside the suspect, the suspect overlaps a real packet and is dropped
 * as junk; otherwise it is kept. Out of sync (at the start, after reset() or such a loss) the same
 * hunt runs and everything before k is junk. Apart from the +376 tie-break, which needs the bytes
 * in one chunk, the result does not depend on how the stream is cut into chunks.
 *
 * Carry: normally at most one partial packet, with its successor's sync byte peeked in the next
 * chunk. To judge a suspect that straddles chunks, it also holds up to 187 bytes that follow it,
 * hence 2 × 188 bytes. Invariant: carryLen > 0 implies carry[0] === 0x47 and carry starts a packet
 * (in sync) or a sync candidate (not in sync).
 *
 * Consequences: the last packet of a chunk waits for the next chunk (flush() at end of stream);
 * after junk, sync needs two packets in a row, so a lone packet squeezed between two junk runs
 * goes with them; junk of 188+ bytes that starts with 0x47 looks like a packet followed by junk.
 */
export class TsFramer {
  /** Packets emitted. */
  packets = 0;
  /** Bytes dropped while hunting for sync. */
  junkBytes = 0;
  /** Times sync was regained after dropping junk. */
  resyncs = 0;

  private readonly carry = new Uint8Array(2 * TS_PACKET_SIZE);
  private carryLen = 0;
  private synced = false;
  private droppedSinceSync = false;

  constructor(private readonly onPackets: (src: Uint8Array, off: number, count: number) => void) {}

  /** Forget buffered bytes and require fresh sync: what follows comes from a new connection. */
  reset(): void {
    this.carryLen = 0;
    this.synced = false;
    this.droppedSinceSync = false;
  }

  /** End of stream: emit an in-sync packet still waiting for the byte after it; drop the rest. */
  flush(): void {
    let len = this.carryLen;
    if (this.synced && len >= TS_PACKET_SIZE) {
      this.carryLen = 0;
      this.emit(this.carry, 0, 1);
      len -= TS_PACKET_SIZE;
    }
    this.drop(len);
    this.reset();
  }

  /** Feeds chunk[from, to): a caller's reused read buffer needs no view per read. */
  push(chunk: Uint8Array, from = 0, to = chunk.length): void {
    const n = to;
    let i = this.carryLen > 0 ? this.drainCarry(chunk, from, n) : from;
    while (i < n) {
      if (!this.synced) {
        const k = this.scan(chunk, i, n);
        this.drop(k - i);
        if (k + TS_PACKET_SIZE >= n) return this.keep(chunk, k, n); // confirm with the next chunk
        this.lock();
        i = k;
      }
      // In sync and chunk[i] === 0x47: emit every packet whose successor's sync byte is in view.
      let j = i;
      while (j + TS_PACKET_SIZE < n && chunk[j + TS_PACKET_SIZE] === SYNC_BYTE) j += TS_PACKET_SIZE;
      if (j > i) this.emit(chunk, i, (j - i) / TS_PACKET_SIZE);
      if (j + TS_PACKET_SIZE >= n) return this.keep(chunk, j, n); // the last one waits for its successor
      // The packet at j is suspect.
      const k = this.scan(chunk, j + 1, n);
      const overlaps = k < j + TS_PACKET_SIZE;
      if (overlaps && k + TS_PACKET_SIZE >= n) return this.keep(chunk, j, n); // decide with more bytes
      this.synced = false;
      if (overlaps) this.drop(k - j);
      else {
        this.emit(chunk, j, 1);
        this.drop(k - j - TS_PACKET_SIZE);
      }
      i = k;
    }
  }

  /**
   * First offset >= i that starts a sync candidate: 0x47 there and at +188, or a 0x47 too close to
   * the end (n) to check. n if there is none.
   * When +376 is inside the chunk but is not 0x47, the candidate is weak: a coincidence in junk, or
   * two good packets before more junk. A strong candidate (0x47 at +188 and +376) starting inside
   * the weak one's packet proves the coincidence and wins; otherwise the weak one stands, since
   * rejecting it outright throws away good packets just before junk. On a corruption fuzz (36k
   * packets, 3.6k truncations/junk runs) rejecting lost 2-3.5x more packets than this tie-break,
   * and ignoring +376 lost and invented a few percent more.
   */
  private scan(chunk: Uint8Array, i: number, n: number): number {
    let weak = -1;
    for (let k = i; k < n; k++) {
      if (weak >= 0 && k >= weak + TS_PACKET_SIZE) return weak;
      if (chunk[k] !== SYNC_BYTE) continue;
      if (k + TS_PACKET_SIZE >= n) return k; // (never with a weak one: it has +376 in the chunk)
      if (chunk[k + TS_PACKET_SIZE] !== SYNC_BYTE) continue;
      if (k + 2 * TS_PACKET_SIZE >= n || chunk[k + 2 * TS_PACKET_SIZE] === SYNC_BYTE) return k;
      if (weak < 0) weak = k;
    }
    return n; // (a weak one was returned at weak + 188 at the latest)
  }

  /**
   * Settles the carried bytes using the chunk: the same rule as push(), on the carry followed by
   * chunk[from, n). Returns the chunk index to go on from (in sync: a packet start; else: hunt there).
   * Runs once per chunk; only resync work loops, and copies are plain loops of < 376 bytes
   * (no subarray views allocated).
   */
  private drainCarry(chunk: Uint8Array, from: number, n: number): number {
    const w = this.carry;
    let pos = from;
    for (;;) {
      let len = this.carryLen;
      if (len < TS_PACKET_SIZE) {
        const stop = Math.min(TS_PACKET_SIZE - len, n - pos) + pos;
        while (pos < stop) w[len++] = chunk[pos++];
        this.carryLen = len;
        if (len < TS_PACKET_SIZE) return n;
      }
      const after = len > TS_PACKET_SIZE ? w[TS_PACKET_SIZE] : pos < n ? chunk[pos] : -1;
      if (after < 0) return n; // wait for the byte after the packet
      if (after === SYNC_BYTE) {
        // (More than 188 bytes are held only for a suspect, whose byte 188 is not 0x47.)
        if (!this.synced) this.lock();
        this.carryLen = 0;
        this.emit(w, 0, 1);
        return pos;
      }
      // Suspect: find a candidate inside it whose +188 byte (in the carry or the chunk) is 0x47.
      let m = 1;
      for (; m < TS_PACKET_SIZE; m++) {
        if (w[m] !== SYNC_BYTE) continue;
        const x = m + TS_PACKET_SIZE;
        const b = x < len ? w[x] : pos + x - len < n ? chunk[pos + x - len] : -1;
        if (b === SYNC_BYTE) break;
        if (b < 0) {
          // Not yet decidable: hold what the chunk has left (fits: x < 2 * 188) and wait.
          while (pos < n) w[len++] = chunk[pos++];
          this.carryLen = len;
          return n;
        }
      }
      const wasSynced = this.synced;
      this.synced = false;
      if (m < TS_PACKET_SIZE) {
        this.drop(m); // overlaps the candidate at m: junk or truncated
        this.shift(m);
        continue;
      }
      // Nothing overlaps it: a good packet followed by junk, or a failed candidate.
      if (wasSynced) this.emit(w, 0, 1);
      else this.drop(TS_PACKET_SIZE);
      let q = TS_PACKET_SIZE;
      while (q < len && w[q] !== SYNC_BYTE) q++;
      this.drop(q - TS_PACKET_SIZE);
      this.shift(q);
      if (this.carryLen === 0) return pos;
    }
  }

  /** Removes the first `count` carried bytes. */
  private shift(count: number): void {
    const len = this.carryLen;
    if (count < len) this.carry.copyWithin(0, count, len);
    this.carryLen = count < len ? len - count : 0;
  }

  private keep(chunk: Uint8Array, from: number, n: number): void {
    const carry = this.carry;
    let len = 0;
    while (from < n) carry[len++] = chunk[from++];
    this.carryLen = len;
  }

  private drop(bytes: number): void {
    if (bytes === 0) return;
    this.junkBytes += bytes;
    this.droppedSinceSync = true;
  }

  private lock(): void {
    this.synced = true;
    if (this.droppedSinceSync) this.resyncs++;
    this.droppedSinceSync = false;
  }

  private emit(src: Uint8Array, off: number, count: number): void {
    this.packets += count;
    this.onPackets(src, off, count);
  }
}
