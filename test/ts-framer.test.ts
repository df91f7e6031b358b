import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TsFramer } from '../src/shared/mpegts/ts-framer';
import { SYNC_BYTE, TS_PACKET_SIZE } from '../src/shared/mpegts/ts-packet';

const sample = new Uint8Array(readFileSync(join(__dirname, '..', 'assets', 'sample.mpegts')));
const N = sample.length / TS_PACKET_SIZE;

/** Small seeded PRNG (mulberry32) so every run sees the same "random" chunking. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32;
  };
}

/**
 * Runs `input` through a framer cut at the given chunk boundaries. Every chunk is copied into one
 * reused scratch buffer and scribbled over after push(), as a socket reader would do: a framer that
 * kept a reference to a chunk would then deliver garbage.
 */
function frame(input: Uint8Array, cuts: Iterable<number>) {
  const out = new Uint8Array(input.length + TS_PACKET_SIZE);
  let outLen = 0;
  let calls = 0;
  let carryCalls = 0;
  const backing = new Uint8Array(input.length + 16);
  let chunk = backing;
  const framer = new TsFramer((src, off, count) => {
    calls++;
    if (src !== chunk) carryCalls++;
    if (count < 1) throw new Error('empty run');
    for (let k = 0; k < count; k++) if (src[off + k * TS_PACKET_SIZE] !== SYNC_BYTE) throw new Error('unsynced packet');
    out.set(src.subarray(off, off + count * TS_PACKET_SIZE), outLen);
    outLen += count * TS_PACKET_SIZE;
  });
  let pos = 0;
  let nth = 0;
  for (const end of [...cuts, input.length]) {
    if (nth++ % 2 === 0) {
      chunk = backing.subarray(0, end - pos);
      chunk.set(input.subarray(pos, end));
      framer.push(chunk);
    } else {
      // Every other chunk as a range of a bigger buffer whose bytes around it are sync bytes:
      // reading outside [from, to) would show.
      const from = 1 + (nth % 7);
      const to = from + end - pos;
      chunk = backing;
      backing.fill(SYNC_BYTE, 0, from);
      backing.set(input.subarray(pos, end), from);
      backing.fill(SYNC_BYTE, to, to + 16);
      framer.push(backing, from, to);
    }
    chunk.fill(0xaa, 0, end - pos + 24);
    pos = end;
  }
  framer.flush();
  return { out: out.subarray(0, outLen), framer, calls, carryCalls };
}

function randomCuts(len: number, seed: number, max: number): number[] {
  const rnd = prng(seed);
  const cuts: number[] = [];
  for (let p = 0; ;) {
    p += 1 + Math.floor(rnd() * max);
    if (p >= len) return cuts;
    cuts.push(p);
  }
}

function* everyByte(len: number): Generator<number> {
  for (let p = 1; p < len; p++) yield p;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

t.test('the sample in random unaligned chunks comes out byte for byte', async (t) => {
  for (const seed of [1, 2, 3, 42]) {
    const cuts = randomCuts(sample.length, seed, 5000);
    const { out, framer, calls, carryCalls } = frame(sample, cuts);
    t.ok(equalBytes(out, sample), `seed ${seed}: ${cuts.length + 1} chunks`);
    t.equal(framer.packets, N);
    t.equal(framer.junkBytes, 0);
    t.equal(framer.resyncs, 0);
    t.ok(carryCalls <= cuts.length, 'at most one carried packet per chunk boundary');
    t.ok(calls - carryCalls <= cuts.length + 1, 'at most one zero-copy run per chunk');
  }
  const whole = frame(sample, []);
  t.ok(equalBytes(whole.out, sample));
  t.equal(whole.calls, 2, 'one aligned chunk: one call for 8992 packets...');
  t.equal(whole.carryCalls, 1, '...and the last one, held for look-ahead, at flush()');
});

t.test('1-byte chunks', async (t) => {
  const { out, framer, calls } = frame(sample, everyByte(sample.length));
  t.ok(equalBytes(out, sample));
  t.equal(framer.packets, N);
  t.equal(calls, N);
});

t.test('chunk boundaries at and around every packet boundary', async (t) => {
  const part = sample.subarray(0, 40 * TS_PACKET_SIZE);
  for (const delta of [-2, -1, 0, 1, 2, 187]) {
    const cuts: number[] = [];
    for (let k = 1; k < 40; k++) cuts.push(k * TS_PACKET_SIZE + delta);
    const { out, framer } = frame(part, cuts);
    t.ok(equalBytes(out, part), `delta ${delta}`);
    t.equal(framer.packets, 40);
  }
});

/**
 * Builds sample packets with junk runs inserted at packet boundaries: random bytes with plenty of
 * 0x47 (about 1 in 16), and runs shorter than a packet start with 0x47, like a truncated packet.
 *
 * Two coincidences are made impossible, because no framer can tell them from real packets:
 * - junk of 188+ bytes starting with 0x47 is a whole packet followed by junk (tested below);
 * - a 0x47 (not a real sync byte) with another 0x47 exactly 188 bytes later, one of them in
 *   junk: with only one byte of
 *   look-ahead (small chunks) that is a packet. The +376 check that catches these when the chunk
 *   is long enough is tested on its own below.
 */
function withJunk(packets: number, runs: Array<[atPacket: number, length: number]>, seed: number) {
  const rnd = prng(seed);
  const junkTotal = runs.reduce((s, [, l]) => s + l, 0);
  const buf = new Uint8Array(packets * TS_PACKET_SIZE + junkTotal);
  const isJunk = new Uint8Array(buf.length);
  const isSync = new Uint8Array(buf.length);
  const expected = sample.subarray(0, packets * TS_PACKET_SIZE);
  const junkStarts: number[] = [];
  let w = 0;
  for (let k = 0; k <= packets; k++) {
    for (const [at, len] of runs) {
      if (at !== k) continue;
      junkStarts.push(w);
      for (let j = 0; j < len; j++, w++) {
        buf[w] = (j === 0 && len < TS_PACKET_SIZE) || rnd() < 1 / 16 ? SYNC_BYTE : Math.floor(rnd() * 256);
        isJunk[w] = 1;
      }
    }
    if (k < packets) {
      buf.set(sample.subarray(k * TS_PACKET_SIZE, (k + 1) * TS_PACKET_SIZE), w);
      isSync[w] = 1;
      w += TS_PACKET_SIZE;
    }
  }
  for (let x = buf.length - 1 - TS_PACKET_SIZE; x >= 0; x--) {
    const y = x + TS_PACKET_SIZE;
    if (isSync[x] || buf[x] !== SYNC_BYTE || buf[y] !== SYNC_BYTE) continue;
    if (isJunk[y]) buf[y] = 0x46;
    else if (isJunk[x]) buf[x] = 0x46;
  }
  let lone = 0;
  for (let x = 0; x < buf.length; x++) if (isJunk[x] && buf[x] === SYNC_BYTE) lone++;
  return { buf, expected, junkTotal, junkStarts, lone };
}

t.test('junk at the start, between packets, across chunk boundaries', async (t) => {
  const runs: Array<[number, number]> = [
    // Runs are 2+ packets apart: after junk, sync is confirmed by two packets in a row.
    [0, 1000], // at the start, longer than a packet
    [2, 1], // a single byte (a lone 0x47)
    [4, 187],
    [6, 188],
    [9, 189],
    [20, 5],
    [22, 400],
    [35, 3000],
    [50, 77], // at the end: dropped, nothing follows it
  ];
  const { buf, expected, junkTotal, junkStarts, lone } = withJunk(50, runs, 7);
  t.ok(lone > 50, `junk holds ${lone} lone 0x47 bytes`);

  const check = (name: string, cuts: Iterable<number>) => {
    const { out, framer } = frame(buf, cuts);
    t.ok(equalBytes(out, expected), `${name}: every packet recovered exactly`);
    t.equal(framer.packets, 50, `${name}: packets`);
    // The trailing run ends the input unresolved: a 0x47 in its last 188 bytes may still be
    // waiting in the carry for confirmation rather than counted as junk.
    t.ok(framer.junkBytes <= junkTotal && framer.junkBytes >= junkTotal - TS_PACKET_SIZE, `${name}: junk bytes`);
    t.equal(framer.resyncs, runs.length - 1, `${name}: one resync per junk run that packets follow`);
  };
  check('one chunk', []);
  check('1-byte chunks', everyByte(buf.length));
  for (const seed of [5, 6, 7, 8]) check(`random chunks ≤ 300, seed ${seed}`, randomCuts(buf.length, seed, 300));
  check('random chunks ≤ 5000', randomCuts(buf.length, 9, 5000));
  // Chunk boundaries inside every junk run: right after its first byte, its middle, one before its end.
  const inside: number[] = [];
  junkStarts.forEach((s, r) => inside.push(s + 1, s + (runs[r][1] >> 1), s + runs[r][1] - 1));
  check(
    'cuts inside the junk',
    [...new Set(inside)].filter((c) => c > 0).sort((a, b) => a - b),
  );
});

t.test('+376 tie-break: a junk 0x47 pair loses to a better candidate inside its packet', async (t) => {
  // Junk 0x47 at 0 whose +188 is a 0x47 data byte of the real packet starting at 100; its +376
  // is not 0x47, while the real packet at 100 has 0x47 at +188 and +376.
  const good = new Uint8Array(sample.subarray(0, 5 * TS_PACKET_SIZE));
  good[88] = SYNC_BYTE;
  good[88 + TS_PACKET_SIZE] = 0x00; // keep the junk pair's +376 clear of 0x47
  const input = new Uint8Array(100 + good.length).fill(0x11, 0, 100);
  input[0] = SYNC_BYTE;
  input.set(good, 100);
  const { out, framer } = frame(input, []);
  t.ok(equalBytes(out, good), 'one chunk sees +376: exact');
  t.equal(framer.junkBytes, 100);
  t.equal(framer.resyncs, 1);
  // Chunks too small to show +376 fall back to +188 alone: the junk pair reads as a packet, and the
  // packet it overlaps is lost with it. Bytes are still all accounted for.
  const small = frame(input, randomCuts(input.length, 4, 150));
  t.equal(small.framer.packets * TS_PACKET_SIZE + small.framer.junkBytes, input.length);
  t.equal(small.framer.packets, 5);
});

t.test('a candidate in the carry is rejected and the next 0x47 inside it is tried', async (t) => {
  // 0x47 at 0 and at 100 (the real packet starts there); the chunk ends before either can be
  // confirmed, so both sit in the carry until the next chunk decides.
  const good = sample.subarray(0, 3 * TS_PACKET_SIZE);
  const input = new Uint8Array(100 + good.length);
  input.fill(0x22, 0, 100);
  input[0] = SYNC_BYTE;
  input[40] = SYNC_BYTE;
  input.set(good, 100);
  for (const cuts of [[150], [288], [289], [300], [150, 288, 289]]) {
    const { out, framer } = frame(input, cuts);
    t.ok(equalBytes(out, good), `cuts ${cuts}`);
    t.equal(framer.junkBytes, 100);
    t.equal(framer.resyncs, 1);
  }
  // A whole packet of junk in the carry with no other 0x47: all of it is dropped.
  const junk2 = new Uint8Array(TS_PACKET_SIZE + 5).fill(0x33);
  junk2[0] = SYNC_BYTE;
  const input2 = new Uint8Array(junk2.length + good.length);
  input2.set(junk2);
  input2.set(good, junk2.length);
  const r2 = frame(input2, [10]);
  t.ok(equalBytes(r2.out, good));
  t.equal(r2.framer.junkBytes, junk2.length);
});

t.test('truncated packets (bytes lost mid-packet) are dropped, the next packet is kept', async (t) => {
  // Packets 5 and 20 lose their last 100 / first-after-header 1 byte; packet 30 keeps only its sync byte.
  const cutAt: Array<[packet: number, keep: number]> = [
    [5, 88],
    [20, 187],
    [30, 1],
  ];
  const parts: Uint8Array[] = [];
  const expected: Uint8Array[] = [];
  let lost = 0;
  for (let k = 0; k < 40; k++) {
    const p = sample.subarray(k * TS_PACKET_SIZE, (k + 1) * TS_PACKET_SIZE);
    const cut = cutAt.find(([at]) => at === k);
    parts.push(cut ? p.subarray(0, cut[1]) : p);
    if (cut) lost += cut[1];
    else expected.push(p);
  }
  const input = Buffer.concat(parts);
  const want = Buffer.concat(expected);
  for (const [name, cuts] of [
    ['one chunk', []],
    ['1-byte chunks', everyByte(input.length)],
    ['random chunks', randomCuts(input.length, 3, 200)],
  ] as Array<[string, Iterable<number>]>) {
    const { out, framer } = frame(input, cuts);
    t.ok(equalBytes(out, want), `${name}: the 37 intact packets, exactly`);
    t.equal(framer.junkBytes, lost, `${name}: the truncated remains are junk`);
    t.equal(framer.resyncs, 3);
  }
});

t.test('limits, pinned down', async (t) => {
  const p = (k: number) => sample.subarray(k * TS_PACKET_SIZE, (k + 1) * TS_PACKET_SIZE);
  const junk = (len: number, first: number) => {
    const j = new Uint8Array(len).fill(0x11);
    j[0] = first;
    return j;
  };
  // Junk of 188+ bytes that starts with 0x47 right after a packet reads as a packet then junk.
  const long = Buffer.concat([p(0), p(1), junk(300, SYNC_BYTE), p(2), p(3), p(4), p(5)]);
  const a = frame(long, []);
  t.equal(a.framer.packets, 7, 'six packets plus the first 188 bytes of junk');
  t.ok(equalBytes(a.out.subarray(2 * TS_PACKET_SIZE, 3 * TS_PACKET_SIZE), long.subarray(2 * TS_PACKET_SIZE, 3 * TS_PACKET_SIZE)));
  t.equal(a.framer.junkBytes, 300 - TS_PACKET_SIZE);
  // A single packet squeezed between two junk runs cannot confirm sync and goes with the junk.
  const squeezed = Buffer.concat([p(0), p(1), junk(50, 0x11), p(2), junk(50, 0x11), p(3), p(4), p(5)]);
  const b = frame(squeezed, []);
  t.equal(b.framer.packets, 5);
  t.equal(b.framer.junkBytes, 100 + TS_PACKET_SIZE);
});

t.test('fuzz: bytes are conserved, and the rule is the same whether packets are carried or not', async (t) => {
  const rnd = prng(99);
  const parts: Uint8Array[] = [];
  const intact = new Set<string>();
  for (let k = 0; k < 600; k++) {
    const p = sample.subarray(k * TS_PACKET_SIZE, (k + 1) * TS_PACKET_SIZE);
    const r = rnd();
    if (r < 0.03) {
      parts.push(p.subarray(0, 1 + Math.floor(rnd() * 187))); // truncated
      continue;
    }
    if (r < 0.06) {
      const j = new Uint8Array(1 + Math.floor(rnd() * 400));
      for (let x = 0; x < j.length; x++) j[x] = rnd() < 0.03 ? SYNC_BYTE : Math.floor(rnd() * 256);
      parts.push(j); // junk before the packet
    }
    parts.push(p);
    intact.add(Buffer.from(p).toString('hex'));
  }
  const input = Buffer.concat(parts);
  const results = new Map<string, ReturnType<typeof frame>>();
  for (const [name, cuts] of [
    ['one chunk', []],
    ['1-byte chunks', everyByte(input.length)],
    ['random chunks ≤ 150', randomCuts(input.length, 1, 150)],
    ['random chunks ≤ 4000', randomCuts(input.length, 2, 4000)],
  ] as Array<[string, Iterable<number>]>) {
    const r = frame(input, cuts);
    results.set(name, r);
    t.equal(r.framer.packets * TS_PACKET_SIZE + r.framer.junkBytes, input.length, `${name}: every byte emitted or junk`);
    let bogus = 0;
    for (let q = 0; q < r.out.length; q += TS_PACKET_SIZE)
      if (!intact.has(Buffer.from(r.out.subarray(q, q + TS_PACKET_SIZE)).toString('hex'))) bogus++;
    t.comment(
      `${name}: ${r.framer.packets} packets (${bogus} not intact originals), ${r.framer.resyncs} resyncs, ${r.framer.junkBytes} junk bytes`,
    );
  }
  // Chunks of <= 150 bytes never show +376, so they must match 1-byte chunks exactly: the carry
  // path and the in-chunk path implement the same rule.
  const one = results.get('1-byte chunks')!;
  const small = results.get('random chunks ≤ 150')!;
  t.ok(equalBytes(small.out, one.out), 'carry path ≡ chunk path');
  t.equal(small.framer.junkBytes, one.framer.junkBytes);
});

t.test('sync lost inside a chunk, and junk without any 0x47', async (t) => {
  const good = sample.subarray(0, 6 * TS_PACKET_SIZE);
  const input = new Uint8Array(good.length + 10);
  input.set(good.subarray(0, 3 * TS_PACKET_SIZE));
  input.fill(0x00, 3 * TS_PACKET_SIZE, 3 * TS_PACKET_SIZE + 10);
  input.set(good.subarray(3 * TS_PACKET_SIZE), 3 * TS_PACKET_SIZE + 10);
  const { out, framer } = frame(input, [3 * TS_PACKET_SIZE + 5]);
  t.ok(equalBytes(out, good));
  t.equal(framer.junkBytes, 10);
  t.equal(framer.resyncs, 1);
});

t.test('reset() drops a partial packet and requires fresh sync', async (t) => {
  const got: number[] = [];
  const framer = new TsFramer((src, off, count) => {
    for (let k = 0; k < count; k++) got.push(src[off + k * TS_PACKET_SIZE + 3]);
  });
  framer.push(sample.subarray(0, 100)); // half a packet, never completed
  framer.reset();
  framer.push(sample.subarray(TS_PACKET_SIZE, 4 * TS_PACKET_SIZE));
  t.equal(framer.packets, 2, 'the last packet waits for the byte after it');
  framer.push(new Uint8Array(0));
  t.equal(framer.packets, 2, 'empty chunk is a no-op');
  framer.flush();
  t.equal(framer.packets, 3);
  t.same(
    got,
    [1, 2, 3].map((k) => sample[k * TS_PACKET_SIZE + 3]),
  );
  t.equal(framer.junkBytes, 0);
  framer.push(sample.subarray(0, 100));
  framer.flush();
  t.equal(framer.junkBytes, 100, 'flush drops a partial packet');
});

t.test('micro-measure (informational only)', async (t) => {
  let bytes = 0;
  const framer = new TsFramer((_src, _off, count) => {
    bytes += count * TS_PACKET_SIZE;
  });
  const chunks = randomCuts(sample.length, 11, 32768);
  const views: Uint8Array[] = [];
  let p = 0;
  for (const c of [...chunks, sample.length]) {
    views.push(sample.subarray(p, c));
    p = c;
  }
  const rounds = 50;
  const t0 = process.hrtime.bigint();
  for (let r = 0; r < rounds; r++) for (const v of views) framer.push(v);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  framer.flush();
  t.equal(bytes, rounds * sample.length);
  t.comment(
    `framer, unaligned ≤32 KB chunks: ${((rounds * sample.length) / s / 1e6).toFixed(0)} MB/s, ${((rounds * N) / s / 1e6).toFixed(1)} M packets/s`,
  );
});
