import t from 'tap';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { Journal, encodeFrame, scanFrames, MAX_RECORD } from '../src/main/ops/journal';
import pino from 'pino';
import { Packr } from 'msgpackr';
import { EventLog, type AceEvent, type EventKind } from '../src/main/supervision/events';

const KINDS: EventKind[] = ['stream-start', 'retry', 'client-cut', 'failover'];
/** Events whose frames are all the same length while seq < 128 (so file arithmetic is exact). */
const ev = (seq: number, over: Partial<AceEvent> = {}): AceEvent => {
  const kind = KINDS[seq % KINDS.length];
  return { seq, time: 1_700_000_000_000 + seq, kind, stream: `s${seq % 3}`, note: 'x'.repeat(20 - kind.length), ...over };
};

async function files(dir: string): Promise<string[]> {
  return (await fsp.readdir(dir)).filter((f) => f.endsWith('.mpk')).sort((a, b) => Number(a.match(/\d+/)![0]) - Number(b.match(/\d+/)![0]));
}
const newest = async (dir: string) => join(dir, (await files(dir)).at(-1)!);
const seqs = (es: AceEvent[]) => es.map((e) => e.seq);
const range = (hi: number, lo: number) => Array.from({ length: hi - lo + 1 }, (_, i) => hi - i);

t.test('append then page: newest first, fields survive, next chains pages', async (t) => {
  const dir = t.testdir();
  const j = await Journal.open(dir);
  t.equal(j.lastSeq, 0);
  for (let s = 1; s <= 120; s++) j.append(ev(s, s === 7 ? { reason: 'lagging', nested: { a: [1, 2] }, big: 2 ** 40 } : {}));
  t.equal(j.lastSeq, 120, 'lastSeq follows appends at once');
  const p1 = await j.page({});
  t.same(seqs(p1.events), range(120, 71), 'default limit 50');
  t.equal(p1.next, 71);
  const p2 = await j.page({ before: p1.next!, limit: 60 });
  t.same(seqs(p2.events), range(70, 11));
  const p3 = await j.page({ before: p2.next!, limit: 60 });
  t.same(seqs(p3.events), range(10, 1));
  t.equal(p3.next, null, 'no further page');
  const seven = p3.events.find((e) => e.seq === 7)!;
  t.same(seven, ev(7, { reason: 'lagging', nested: { a: [1, 2] }, big: 2 ** 40 }), 'event round-trips');
  t.equal((await j.page({ limit: 120 })).next, null, 'exactly everything: no next');
  t.equal((await j.page({ limit: 10_000 })).events.length, 120, 'limit is capped at 500, which is more than we have');
  t.equal((await j.page({ limit: 0 })).events.length, 1, 'limit at least 1');
  await j.close();
  t.equal((await fsp.readdir(dir)).length, 1, 'one file');
});

t.test('filters and before across rotated files; rotation deletes the oldest', async (t) => {
  const dir = t.testdir();
  const frame = encodeFrame(ev(1)).length;
  // ~10 frames per file, 4 files kept
  const j = await Journal.open(dir, { maxFileBytes: frame * 10 + 5, maxFiles: 4 });
  for (let s = 1; s <= 100; s++) {
    j.append(ev(s));
    if (s % 7 === 0) await j.flush(); // batches of various sizes
  }
  await j.flush();
  const names = await files(dir);
  t.equal(names.length, 4, 'at most maxFiles files');
  t.same(names, ['events-7.mpk', 'events-8.mpk', 'events-9.mpk', 'events-10.mpk'], 'oldest deleted, numbering continues');
  for (const n of names) t.ok((await fsp.stat(join(dir, n))).size <= frame * 10 + 5, `${n} within maxFileBytes`);

  const all = await j.page({ limit: 500 });
  t.same(seqs(all.events), range(100, 61), 'the kept files hold the newest 40, in order');
  t.equal(all.next, null);

  const retries = await j.page({ kind: 'retry', limit: 4 });
  t.same(seqs(retries.events), [97, 93, 89, 85]);
  const older = await j.page({ kind: 'retry', limit: 4, before: retries.next! });
  t.same(seqs(older.events), [81, 77, 73, 69], 'paging continues across files');
  const rest = await j.page({ kind: 'retry', limit: 4, before: older.next! });
  t.same(seqs(rest.events), [65, 61], 'to the oldest kept');
  t.equal(rest.next, null);

  const s1 = await j.page({ stream: 's1', kind: 'client-cut', before: 90 });
  t.ok(s1.events.every((e) => e.stream === 's1' && e.kind === 'client-cut' && e.seq < 90));
  t.same(seqs(s1.events), [82, 70]);
  t.same((await j.page({ before: 61 })).events, [], 'nothing before the kept window');
  t.same((await j.page({ stream: 'nope' })).events, []);
  await j.close();
});

t.test('a frame larger than maxFileBytes gets a file of its own', async (t) => {
  const dir = t.testdir();
  const j = await Journal.open(dir, { maxFileBytes: 100 });
  j.append(ev(1, { note: 'y'.repeat(500) }));
  j.append(ev(2));
  j.append(ev(3, { note: 'z'.repeat(500) }));
  await j.close();
  t.same(await files(dir), ['events-1.mpk', 'events-2.mpk', 'events-3.mpk']);
  const r = await Journal.open(dir, { maxFileBytes: 100 });
  t.same(seqs((await r.page({})).events), [3, 2, 1]);
  await r.close();
});

t.test('close and reopen: history and seq continue', async (t) => {
  const dir = t.testdir();
  const frame = encodeFrame(ev(1)).length;
  const opts = { maxFileBytes: frame * 8, maxFiles: 8 };
  const a = await Journal.open(dir, opts);
  for (let s = 1; s <= 20; s++) a.append(ev(s));
  await a.close();
  a.append(ev(21));
  t.equal(a.dropped, 1, 'appends after close are counted, not written');

  const b = await Journal.open(dir, opts);
  t.equal(b.lastSeq, 20, 'lastSeq recovered from disk');
  for (let s = 21; s <= 30; s++) b.append(ev(s));
  t.same(seqs((await b.page({ limit: 500 })).events), range(30, 1));
  await b.close();

  const c = await Journal.open(dir, opts);
  t.equal(c.lastSeq, 30);
  t.same(seqs((await c.page({ before: 25, limit: 3 })).events), [24, 23, 22]);
  await c.close();
});

t.test('lastSeq is found in an older file when the newest is empty', async (t) => {
  const dir = t.testdir();
  const frame = encodeFrame(ev(1)).length;
  const j = await Journal.open(dir, { maxFileBytes: frame * 2 });
  for (let s = 1; s <= 4; s++) j.append(ev(s));
  await j.close();
  await fsp.writeFile(join(dir, 'events-9.mpk'), Buffer.from([1, 2, 3])); // a torn first frame
  await fsp.writeFile(join(dir, 'unrelated.txt'), 'ignored');
  const r = await Journal.open(dir, { maxFileBytes: frame * 2 });
  t.equal(r.lastSeq, 4);
  t.equal((await fsp.stat(join(dir, 'events-9.mpk'))).size, 0, 'garbage truncated away');
  r.append(ev(5));
  t.same(seqs((await r.page({})).events), [5, 4, 3, 2, 1]);
  await r.close();
});

t.test('a torn tail is cut; everything before it and every later append is readable', async (t) => {
  for (const damage of ['truncate mid-record', 'garbage bytes', 'truncate mid-header', 'absurd length', 'zero-filled tail'] as const) {
    await t.test(damage, async (t) => {
      const dir = t.testdir();
      const j = await Journal.open(dir);
      for (let s = 1; s <= 10; s++) j.append(ev(s));
      await j.close();
      const path = await newest(dir);
      const size = (await fsp.stat(path)).size;
      const frame = encodeFrame(ev(10)).length;
      if (damage === 'truncate mid-record') await fsp.truncate(path, size - 5);
      if (damage === 'truncate mid-header') await fsp.truncate(path, size - frame + 3);
      if (damage === 'garbage bytes') await fsp.appendFile(path, Buffer.from('not a frame at all, just noise'));
      if (damage === 'absurd length') await fsp.appendFile(path, Buffer.from([0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 1, 2]));
      if (damage === 'zero-filled tail') await fsp.appendFile(path, Buffer.alloc(4096)); // what a crash can leave
      const keep = damage.startsWith('truncate') ? 9 : 10;

      const r = await Journal.open(dir);
      t.equal(r.lastSeq, keep, 'lastSeq is the last whole record');
      t.equal((await fsp.stat(path)).size, keep * frame, 'the file is cut at the last good frame');
      for (let s = keep + 1; s <= keep + 5; s++) r.append(ev(s));
      t.same(seqs((await r.page({})).events), range(keep + 5, 1), 'earlier intact, new appends readable after it');
      await r.close();
      const again = await Journal.open(dir);
      t.equal(again.lastSeq, keep + 5);
      await again.close();
    });
  }
});

t.test('a corrupt byte mid-file costs that record only: reading resumes at the next whole frame', async (t) => {
  const dir = t.testdir();
  const frame = encodeFrame(ev(1)).length;
  const j = await Journal.open(dir, { maxFileBytes: frame * 10 });
  for (let s = 1; s <= 30; s++) j.append(ev(s)); // files 1: 1–10, 2: 11–20, 3: 21–30
  await j.close();
  t.same(await files(dir), ['events-1.mpk', 'events-2.mpk', 'events-3.mpk']);
  const middle = join(dir, 'events-2.mpk');
  const buf = await fsp.readFile(middle);
  buf[frame * 4 + 8 + 3] ^= 0x40; // a payload byte of the 5th record (seq 15): crc mismatch
  await fsp.writeFile(middle, buf);
  t.equal(scanFrames(buf).frames.length, 9, 'every frame but the damaged one');

  const r = await Journal.open(dir, { maxFileBytes: frame * 10 });
  t.equal((await fsp.stat(middle)).size, buf.length, 'older files are never rewritten');
  t.equal(r.lastSeq, 30);
  const all = await r.page({ limit: 500 });
  t.same(seqs(all.events), [...range(30, 16), ...range(14, 1)], 'seq 15 unreadable, the rest intact');
  await r.close();
});

t.test('a record with a good crc but not an event is skipped', async (t) => {
  const dir = t.testdir();
  const j = await Journal.open(dir);
  j.append(ev(1));
  await j.close();
  const { crc32 } = await import('node:zlib');
  const payload = Buffer.from([0xa3, 0x61, 0x62, 0x63]); // msgpack "abc"
  const bad = Buffer.alloc(8);
  bad.writeUInt32LE(payload.length, 0);
  bad.writeUInt32LE(crc32(payload), 4);
  const undecodable = Buffer.from([0x92, 0x01]); // an array of 2 with one element: truncated msgpack
  const bad2 = Buffer.alloc(8);
  bad2.writeUInt32LE(undecodable.length, 0);
  bad2.writeUInt32LE(crc32(undecodable), 4);
  await fsp.appendFile(join(dir, 'events-1.mpk'), Buffer.concat([bad, payload, bad2, undecodable]));
  const r = await Journal.open(dir);
  t.equal(r.lastSeq, 1);
  r.append(ev(2));
  t.same(seqs((await r.page({})).events), [2, 1]);
  await r.close();
});

t.test('reopening with fewer maxFiles deletes the oldest unread', async (t) => {
  const dir = t.testdir();
  const frame = encodeFrame(ev(1)).length;
  const j = await Journal.open(dir, { maxFileBytes: frame * 2, maxFiles: 8 });
  for (let s = 1; s <= 10; s++) j.append(ev(s));
  await j.close();
  t.equal((await files(dir)).length, 5);
  const r = await Journal.open(dir, { maxFileBytes: frame * 2, maxFiles: 2 });
  t.same(await files(dir), ['events-4.mpk', 'events-5.mpk']);
  t.same(seqs((await r.page({})).events), [10, 9, 8, 7]);
  await r.close();
});

t.test('an older file that starts with a foreign record is still indexed and paged', async (t) => {
  const dir = t.testdir();
  const frame = encodeFrame(ev(1)).length;
  const j = await Journal.open(dir, { maxFileBytes: frame * 3 });
  for (let s = 1; s <= 6; s++) j.append(ev(s)); // events-1: 1–3, events-2: 4–6
  await j.close();
  const { crc32 } = await import('node:zlib');
  const payload = Buffer.from([0x93, 1, 2, 3]); // msgpack [1, 2, 3]: valid, but not an event
  const head = Buffer.alloc(8);
  head.writeUInt32LE(payload.length, 0);
  head.writeUInt32LE(crc32(payload), 4);
  const first = join(dir, 'events-1.mpk');
  await fsp.writeFile(first, Buffer.concat([head, payload, await fsp.readFile(first)]));
  const r = await Journal.open(dir, { maxFileBytes: frame * 3 });
  t.same(seqs((await r.page({ before: 4 })).events), [3, 2, 1], 'the skip index found seq 1 past the foreign record');
  await r.close();
});

t.test('append does not block: writes happen later, in order, in batches', async (t) => {
  const dir = t.testdir();
  const j = await Journal.open(dir);
  for (let s = 1; s <= 1000; s++) j.append(ev(s));
  t.equal((await fsp.stat(join(dir, 'events-1.mpk'))).size, 0, 'nothing written synchronously');
  await j.flush();
  let total = 0;
  for (let s = 1; s <= 1000; s++) total += encodeFrame(ev(s)).length;
  t.equal((await fsp.stat(join(dir, 'events-1.mpk'))).size, total);
  const { events } = await j.page({ limit: 500 });
  t.same(seqs(events), range(1000, 501));
  await j.close();
  t.equal(await j.close(), undefined, 'close twice is harmless');
});

t.test('a failed write is reported and the journal recovers in a fresh file', async (t) => {
  const dir = t.testdir();
  const errors: Error[] = [];
  const j = await Journal.open(dir, { onError: (e) => errors.push(e) });
  j.append(ev(1));
  await j.flush();
  // Pull the file handle out from under it: the next write fails.
  const internal = j as unknown as { fh: { close(): Promise<void> } };
  await internal.fh.close();
  j.append(ev(2));
  await j.flush();
  t.equal(errors.length, 1, 'reported once');
  j.append(ev(3));
  await j.flush();
  t.same(await files(dir), ['events-1.mpk', 'events-2.mpk'], 'rotated past the failure');
  t.same(seqs((await j.page({})).events), [3, 1], 'the failed batch is lost, nothing else');
  await j.close();
  t.equal(errors.length, 1, 'the writes after the rotation failed nothing');
});

t.test('without a journal, the in-memory log pages the same way', async (t) => {
  const log = new EventLog(pino({ level: 'silent' }), 0, 200);
  for (let i = 0; i < 30; i++) log.record(i % 3 === 0 ? 'retry' : 'reconnect', { stream: i % 2 ? 'a' : 'b' });
  const p1 = log.page({ limit: 10 });
  t.same(
    p1.events.map((e) => e.seq),
    [30, 29, 28, 27, 26, 25, 24, 23, 22, 21],
    'newest first',
  );
  t.equal(p1.next, 21);
  const retries = log.page({ kind: 'retry', before: 20, limit: 3 });
  t.same(
    retries.events.map((e) => e.seq),
    [19, 16, 13],
  );
  t.same(
    log.page({ kind: 'retry', before: retries.next!, limit: 3 }).events.map((e) => e.seq),
    [10, 7, 4],
  );
  const a = log.page({ kind: 'retry', stream: 'a', before: 5 });
  t.same([a.events.map((e) => e.seq), a.next], [[4], null], 'both filters at once; seq 1 is stream b');
  t.equal(log.page({ limit: 30 }).next, null, 'exactly everything: no next');
});

t.test('a 5 MB event is cut before it is written; a restart keeps every event and never reuses a seq', async (t) => {
  const dir = t.testdir();
  const a = await Journal.open(dir);
  for (let s = 1; s <= 10; s++) a.append(ev(s));
  const huge = 'E'.repeat(5_000_000);
  const bigEvent = ev(11, { kind: 'retry', detail: huge, nested: { error: huge, list: Array.from({ length: 1000 }, (_, i) => i) } });
  a.append(bigEvent);
  for (let s = 12; s <= 15; s++) a.append(ev(s));
  await a.close();
  const path = await newest(dir);
  const size = (await fsp.stat(path)).size;
  t.ok(size < 15 * 100 + MAX_RECORD + 8, `the file holds a cut-down record, not 5 MB (${size} bytes)`);
  const { frames } = scanFrames(await fsp.readFile(path));
  t.equal(frames.length, 15, 'every record is a readable frame');
  t.ok(
    frames.every(([s, e]) => e - s <= MAX_RECORD),
    'no payload above the cap',
  );

  const b = await Journal.open(dir); // the restart
  t.equal((await fsp.stat(path)).size, size, 'recovery cut nothing');
  t.equal(b.lastSeq, 15, 'lastSeq recovered past the big event');
  const page = await b.page({ limit: 500 });
  t.same(seqs(page.events), range(15, 1), 'all 15 events, the big one included');
  const big = page.events.find((e) => e.seq === 11)!;
  t.equal(big.kind, 'retry');
  t.equal(big.truncated, new Packr({ useRecords: false }).pack(bigEvent).length, 'the record says how big the event was');
  t.same(
    (big.nested as { list: number[] }).list,
    Array.from({ length: 32 }, (_, i) => i),
    'long lists cut too',
  );
  t.ok(
    typeof big.detail === 'string' && (big.detail as string).length < 600 && (big.detail as string).startsWith('EEE'),
    'its text cut, not dropped',
  );
  for (let s = 16; s <= 18; s++) b.append(ev(s));
  await b.close();
  const c = await Journal.open(dir);
  t.equal(c.lastSeq, 18, 'new seq numbers continue above the old');
  t.same(seqs((await c.page({ limit: 500 })).events), range(18, 1), 'no seq reused, none lost');
  await c.close();
});

t.test('an event too big even with its texts cut keeps its headline fields; an old 1.5 MB record stays readable', async (t) => {
  const dir = t.testdir();
  const wide: Record<string, string> = {};
  for (let i = 0; i < 60; i++) wide[`f${i}`] = 'w'.repeat(2000);
  const a = await Journal.open(dir);
  a.append(ev(1));
  a.append(ev(2, { kind: 'give-up', reason: 'r'.repeat(3000), ...wide }));
  await a.close();
  const { crc32 } = await import('node:zlib');
  // What an earlier version wrote for a 1.5 MB engine error: one frame far above today's cap.
  const payload = new Packr({ useRecords: false }).pack(ev(3, { detail: 'x'.repeat(1_500_000) }));
  const head = Buffer.alloc(8);
  head.writeUInt32LE(payload.length, 0);
  head.writeUInt32LE(crc32(payload), 4);
  await fsp.appendFile(await newest(dir), Buffer.concat([head, payload]));
  const b = await Journal.open(dir);
  t.equal(b.lastSeq, 3, 'the big old record counts: seq 3 is not handed out again');
  b.append(ev(4));
  const page = await b.page({ limit: 10 });
  t.same(seqs(page.events), [4, 3, 2, 1]);
  const two = page.events.find((e) => e.seq === 2)!;
  t.equal(two.kind, 'give-up');
  t.ok(typeof two.truncated === 'number' && two.truncated > 100_000, 'it says how big it was');
  t.equal(two.f0, undefined, 'the wide fields are gone');
  t.ok((two.reason as string).length < 600, 'the headline text is cut');
  await b.close();
});
