/**
 * The event journal: every AceEvent the EventLog records, persisted as MessagePack records in
 * size-rotated files `events-<n>.mpk` (n grows; the highest is the one being appended to), read
 * back newest-first for the admin API's history pages.
 *
 * Frame: [u32 LE payload length][u32 LE crc32(payload)][payload = MessagePack map of the event].
 * Invariants:
 * - J0 No payload is larger than MAX_RECORD (16 KiB): a bigger event is shrunk before it is
 *   encoded (long strings cut like foreignText, then only its headline fields kept), so no event,
 *   whatever an engine sent, can make a record a reader would refuse.
 * - J1 A frame is readable only if its header is whole, its length is non-zero and within the
 *   rest of the file, and its crc matches. Past an unreadable stretch (damage), reading resumes at
 *   the next offset where a whole frame with a matching crc starts whose payload opens like a
 *   MessagePack map of at most MAX_RESYNC bytes: every complete record is kept, and a length is
 *   only believed together with its crc.
 * - J2 On open, the newest file is truncated after its last readable frame (a torn tail from a
 *   crash, or garbage), so appends continue right after it and stay readable. Nothing readable
 *   is ever cut. Older files are never modified.
 * - J3 Frames are written in append order by one write chain; a frame never straddles two files.
 *   Rotation happens between frames, before a frame that would push the file past maxFileBytes
 *   (a single frame larger than that gets a file of its own).
 * - J4 Seq numbers grow across files and restarts: `lastSeq` is recovered on open, and the
 *   EventLog must continue from it (its constructor takes the starting seq). Paging by `before` relies on that order.
 *
 * Not on the data path: append is called per event (per decision or session), never per packet.
 * It encodes synchronously and leaves the I/O to a write chain, so it never blocks the loop.
 * Records are plain MessagePack maps (no msgpackr record extension), so any msgpack reader can
 * read a journal file.
 */
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { Packr } from 'msgpackr';
import { Pager, type AceEvent, type Page, type PageQuery } from '../supervision/events';
import { foreignText } from '../../shared/engine-api';

export interface JournalOptions {
  /** Rotate before a file would exceed this; default 4 MiB. */
  maxFileBytes?: number;
  /** Files kept, the one being written included; the oldest beyond this are deleted. Default 8. */
  maxFiles?: number;
  /** A failed write or rotation (disk full, …). The batch is dropped; later appends try again. */
  onError?: (err: Error) => void;
}

const HEADER = 8;
/** The largest payload written (J0). Events are a few hundred bytes; foreign text is cut to 512. */
export const MAX_RECORD = 16 * 1024;
/** The largest frame looked for past damage (J1), and read by the first-frame fast path: earlier
 *  versions wrote payloads up to 1 MiB. */
const MAX_RESYNC = 1 << 20;
/** The fields an event keeps when even its cut-down form is too big (J0). */
const HEADLINE = ['seq', 'time', 'kind', 'stream', 'id', 'engine', 'reason', 'fault', 'action', 'note'];
const NAME = /^events-(\d+)\.mpk$/;

const packr = new Packr({ useRecords: false });

/** A copy of `v` with every string cut to MAX_FOREIGN_TEXT, arrays to 32 items, depth to 4. */
function cut(v: unknown, depth: number): unknown {
  if (typeof v === 'string') return foreignText(v);
  if (v === null || typeof v !== 'object') return v;
  if (depth >= 4) return '[…]';
  if (Array.isArray(v)) return v.slice(0, 32).map((x) => cut(x, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>).slice(0, 64)) out[foreignText(k, 64)] = cut(x, depth + 1);
  return out;
}

/** The event's MessagePack payload, at most MAX_RECORD bytes (J0). */
export function encodePayload(e: AceEvent): Buffer {
  const whole = packr.pack(e);
  if (whole.length <= MAX_RECORD) return whole;
  const truncated = whole.length;
  const shorter = packr.pack({ ...(cut(e, 0) as AceEvent), truncated });
  if (shorter.length <= MAX_RECORD) return shorter;
  const headline: Record<string, unknown> = { truncated };
  for (const k of HEADLINE) if (k in e) headline[k] = cut(e[k], 3);
  return packr.pack(headline); // ≤ 10 fields of ≤ 512 characters (≤ 2 KiB each in UTF-8)
}

/** One event as a whole frame, in a buffer of its own (pack() returns a view of a reused one). */
export function encodeFrame(e: AceEvent): Buffer {
  const payload = encodePayload(e);
  const frame = Buffer.allocUnsafe(HEADER + payload.length);
  frame.writeUInt32LE(payload.length, 0);
  frame.writeUInt32LE(crc32(payload), 4);
  payload.copy(frame, HEADER);
  return frame;
}

/** The end of the whole frame at `at`, or -1 (J1). `resync`: also ask for a map-like start. */
function frameAt(buf: Buffer, at: number, resync: boolean): number {
  const len = buf.readUInt32LE(at);
  const start = at + HEADER;
  // Zero length is damage too: a crash can leave a zero-filled tail, whose crc would match.
  if (len === 0 || start + len > buf.length) return -1;
  if (resync) {
    const b = buf[start]!;
    if (len > MAX_RESYNC || !((b >= 0x80 && b <= 0x8f) || b === 0xde || b === 0xdf)) return -1;
  }
  return crc32(buf.subarray(start, start + len)) === buf.readUInt32LE(at + 4) ? start + len : -1;
}

/**
 * The readable frames of `buf` as [start, end) payload offsets, and `good`, the end of the last
 * one (J1, J2). Past damage the scan looks for the next whole frame, one offset at a time; the
 * cheap checks (length, first byte) reject almost every offset before any crc is computed.
 */
export function scanFrames(buf: Buffer): { frames: Array<[number, number]>; good: number } {
  const frames: Array<[number, number]> = [];
  let at = 0;
  let good = 0;
  let damaged = false;
  while (at + HEADER < buf.length) {
    const end = frameAt(buf, at, damaged);
    if (end < 0) {
      damaged = true;
      at++;
      continue;
    }
    frames.push([at + HEADER, end]);
    at = good = end;
    damaged = false;
  }
  return { frames, good };
}

function decode(buf: Buffer, [start, end]: [number, number]): AceEvent | null {
  try {
    const e = packr.unpack(buf.subarray(start, end)) as AceEvent;
    return e !== null && typeof e === 'object' && typeof e.seq === 'number' ? e : null;
  } catch {
    return null; // crc matched but not an event: written by something else; skip the record
  }
}

/** Seq of the first and the last decodable event among `frames`. */
function seqRange(buf: Buffer, frames: Array<[number, number]>): { first: number | null; last: number | null } {
  let first: number | null = null;
  let last: number | null = null;
  for (let j = 0; j < frames.length && first === null; j++) first = decode(buf, frames[j])?.seq ?? null;
  for (let j = frames.length - 1; j >= 0 && last === null; j--) last = decode(buf, frames[j])?.seq ?? null;
  return { first, last };
}

/** The first event's seq, reading only its frame; anything unusual falls back to a full scan. */
async function firstSeqOf(path: string): Promise<number | null> {
  let head: Buffer;
  try {
    const fh = await fsp.open(path, 'r');
    try {
      const h = Buffer.alloc(HEADER);
      await fh.read(h, 0, HEADER, 0);
      const len = h.readUInt32LE(0);
      head = Buffer.alloc(HEADER + Math.min(len, MAX_RESYNC));
      await fh.read(head, 0, head.length, 0);
    } finally {
      await fh.close();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const { frames } = scanFrames(head);
  const e = frames.length > 0 ? decode(head, frames[0]) : null;
  if (e) return e.seq;
  const buf = await readOrEmpty(path);
  return seqRange(buf, scanFrames(buf).frames).first;
}

async function readOrEmpty(path: string): Promise<Buffer> {
  try {
    return await fsp.readFile(path);
  } catch (err) {
    // Rotation may delete a file between listing and reading it.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return Buffer.alloc(0);
    throw err;
  }
}

interface FileInfo {
  n: number;
  /** Seq of the file's first readable event; null while it has none (lets paging skip files). */
  firstSeq: number | null;
}

export class Journal {
  /** The highest seq written or queued; recovered from disk on open (J4). */
  lastSeq = 0;
  /** Events appended after close() (shutdown ordering), not persisted. */
  dropped = 0;

  private readonly maxFileBytes: number;
  private readonly maxFiles: number;
  private readonly onError: (err: Error) => void;
  /** Oldest first; the last one is being appended to. */
  private readonly files: FileInfo[];
  private fh: FileHandle;
  private size: number;
  private queue: Array<{ frame: Buffer; seq: number }> = [];
  /** The write chain (J3): resolves when everything queued before it is on disk. */
  private tail: Promise<void> = Promise.resolve();
  private scheduled = false;
  private closed = false;

  private constructor(
    private readonly dir: string,
    opts: JournalOptions,
    files: FileInfo[],
    fh: FileHandle,
    size: number,
    lastSeq: number,
  ) {
    this.maxFileBytes = opts.maxFileBytes ?? 4 * 1024 * 1024;
    this.maxFiles = Math.max(1, opts.maxFiles ?? 8);
    this.onError = opts.onError ?? (() => {});
    this.files = files;
    this.fh = fh;
    this.size = size;
    this.lastSeq = lastSeq;
  }

  static async open(dir: string, opts: JournalOptions = {}): Promise<Journal> {
    await fsp.mkdir(dir, { recursive: true });
    const ns = (await fsp.readdir(dir))
      .map((f) => NAME.exec(f))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
    if (ns.length === 0) ns.push(1);
    const path = (n: number) => join(dir, `events-${n}.mpk`);
    // Beyond maxFiles (it was lowered): the oldest go unread.
    for (const n of ns.splice(0, Math.max(0, ns.length - Math.max(1, opts.maxFiles ?? 8)))) await fsp.rm(path(n), { force: true });

    // The newest file is scanned whole, for J2 and lastSeq. Older ones are read only up to their
    // first event (paging's skip index), unless lastSeq is still unknown because every newer
    // file is empty: then the next older one is scanned for its last event.
    const files: FileInfo[] = [];
    let lastSeq: number | null = null;
    let size = 0;
    for (let i = ns.length - 1; i >= 0; i--) {
      let info: { first: number | null; last: number | null };
      if (i === ns.length - 1 || lastSeq === null) {
        const buf = await readOrEmpty(path(ns[i]));
        const { frames, good } = scanFrames(buf);
        if (i === ns.length - 1) {
          if (good < buf.length) await fsp.truncate(path(ns[i]), good); // J2
          size = good;
        }
        info = seqRange(buf, frames);
        lastSeq = info.last;
      } else {
        info = { first: await firstSeqOf(path(ns[i])), last: null };
      }
      files.unshift({ n: ns[i], firstSeq: info.first });
    }
    const fh = await fsp.open(path(ns[ns.length - 1]), 'a');
    return new Journal(dir, opts, files, fh, size, lastSeq ?? 0);
  }

  /** Queues one event; the write happens on the next turn of the loop, batched with its peers. */
  append(e: AceEvent): void {
    if (this.closed) {
      this.dropped++;
      return;
    }
    this.queue.push({ frame: encodeFrame(e), seq: e.seq });
    this.lastSeq = Math.max(this.lastSeq, e.seq);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.enqueueWrite());
    }
  }

  /** Resolves once everything appended so far is on disk (or has failed and been reported). */
  flush(): Promise<void> {
    if (this.queue.length > 0) this.enqueueWrite();
    return this.tail;
  }

  async page(q: PageQuery = {}): Promise<Page> {
    const pager = new Pager(q);
    await this.flush();
    const files = this.files.slice(); // rotation may shift the list while we read
    for (let i = files.length - 1; i >= 0 && !pager.full; i--) {
      const f = files[i];
      if (f.firstSeq === null || f.firstSeq >= pager.before) continue;
      const buf = await readOrEmpty(this.path(f.n));
      const { frames } = scanFrames(buf);
      for (let j = frames.length - 1; j >= 0 && !pager.full; j--) {
        const e = decode(buf, frames[j]);
        if (e) pager.offer(e);
      }
    }
    return pager.page();
  }

  /** Writes what is queued, syncs and closes; appends after this are counted in `dropped`. */
  close(): Promise<void> {
    if (this.closed) return this.tail;
    this.closed = true;
    this.enqueueWrite();
    this.tail = this.tail.then(async () => {
      try {
        await this.fh.datasync();
      } catch (err) {
        this.onError(err as Error);
      }
      await this.fh.close();
    });
    return this.tail;
  }

  private path(n: number): string {
    return join(this.dir, `events-${n}.mpk`);
  }

  /** Moves the queue onto the write chain, so writes stay in append order (J3). */
  private enqueueWrite(): void {
    this.scheduled = false;
    if (this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    this.tail = this.tail.then(() => this.write(batch)).catch((err: Error) => this.onError(err));
  }

  private async write(batch: Array<{ frame: Buffer; seq: number }>): Promise<void> {
    let i = 0;
    while (i < batch.length) {
      // The longest run of frames that fits in the current file; at least one if it is empty.
      const run: Buffer[] = [];
      let bytes = 0;
      while (i < batch.length && (this.size + bytes === 0 || this.size + bytes + batch[i].frame.length <= this.maxFileBytes)) {
        run.push(batch[i].frame);
        bytes += batch[i].frame.length;
        i++;
      }
      if (run.length === 0) {
        await this.rotate();
        continue;
      }
      const cur = this.files[this.files.length - 1];
      if (cur.firstSeq === null) cur.firstSeq = batch[i - run.length].seq;
      const data = run.length === 1 ? run[0] : Buffer.concat(run, bytes);
      // On failure a partial frame may remain; skip to a fresh file so later frames stay readable.
      try {
        await this.fh.write(data);
      } catch (err) {
        this.size = Infinity;
        throw err;
      }
      this.size += bytes;
    }
  }

  private async rotate(): Promise<void> {
    const n = this.files[this.files.length - 1].n + 1;
    const fh = await fsp.open(this.path(n), 'a');
    const old = this.fh;
    this.fh = fh;
    this.size = 0;
    this.files.push({ n, firstSeq: null });
    // The new file is already in use: a failing close of the old one loses nothing.
    await old.close().catch((err: Error) => this.onError(err));
    await this.prune();
  }

  /** Deletes the oldest files beyond maxFiles. */
  private async prune(): Promise<void> {
    while (this.files.length > this.maxFiles) {
      const f = this.files.shift()!;
      await fsp.rm(this.path(f.n), { force: true });
    }
  }
}
