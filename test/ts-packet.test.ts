import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  NULL_PACKET,
  NULL_PID,
  PAT_PID,
  PsiTracker,
  SYNC_BYTE,
  TS_PACKET_SIZE,
  adaptationLength,
  continuityCounter,
  crc32Mpeg2,
  discontinuityIndicator,
  fillNullPackets,
  hasAdaptationField,
  hasPayload,
  isKeyframeStart,
  payloadOffset,
  payloadUnitStart,
  pidOf,
  randomAccessIndicator,
  readPcr,
  setDiscontinuity,
} from '../src/shared/mpegts/ts-packet';

const SAMPLE_PATH = join(__dirname, '..', 'assets', 'sample.mpegts');
const sample = readFileSync(SAMPLE_PATH);
const N = sample.length / TS_PACKET_SIZE;

// ---- builders for crafted packets ------------------------------------------------------------

interface PacketSpec {
  pid: number;
  pusi?: boolean;
  cc?: number;
  /** Adaptation field bytes after the length byte (flags first); omitted = no AF. */
  af?: number[];
  /** Payload bytes; the rest of the packet is padded with 0xFF. Omitted = no payload. */
  payload?: number[];
}

function packet(spec: PacketSpec): Uint8Array {
  const p = new Uint8Array(TS_PACKET_SIZE).fill(0xff);
  p[0] = SYNC_BYTE;
  p[1] = (spec.pusi ? 0x40 : 0) | (spec.pid >> 8);
  p[2] = spec.pid & 0xff;
  p[3] = (spec.af ? 0x20 : 0) | (spec.payload ? 0x10 : 0) | ((spec.cc ?? 0) & 0x0f);
  let i = 4;
  if (spec.af) {
    // Without payload the AF must fill the packet; with payload it is exactly as long as given.
    const len = spec.payload ? spec.af.length : TS_PACKET_SIZE - 5;
    p[i++] = len;
    p.set(spec.af, i);
    i += len;
  }
  if (spec.payload) p.set(spec.payload, i);
  return p;
}

const PTS = [0x21, 0x00, 0x01, 0x00, 0x01];
/** Video PES start: header with a PTS (or the given header data), then the ES bytes. */
function pes(es: number[], headerData: number[] = PTS): number[] {
  const flags2 = headerData === PTS ? 0x80 : 0x00;
  return [0, 0, 1, 0xe0, 0, 0, 0x80, flags2, headerData.length, ...headerData, ...es];
}

function section(tableId: number, idExt: number, body: number[], version = 0, current = true): number[] {
  const len = 5 + body.length + 4;
  const s = [tableId, 0xb0 | (len >> 8), len & 0xff, idExt >> 8, idExt & 0xff, 0xc0 | (version << 1) | (current ? 1 : 0), 0, 0, ...body];
  const crc = crc32Mpeg2(Uint8Array.from(s), 0, s.length);
  return [...s, crc >>> 24, (crc >>> 16) & 0xff, (crc >>> 8) & 0xff, crc & 0xff];
}

function pat(programs: Array<[number, number]>): Uint8Array {
  const body = programs.flatMap(([prog, pid]) => [prog >> 8, prog & 0xff, 0xe0 | (pid >> 8), pid & 0xff]);
  return packet({ pid: PAT_PID, pusi: true, payload: [0, ...section(0x00, 1, body)] });
}

function pmt(pmtPid: number, program: number, pcrPid: number, es: Array<[number, number]>, version = 0): Uint8Array {
  const body = [0xe0 | (pcrPid >> 8), pcrPid & 0xff, 0xf0, 0x00];
  for (const [type, pid] of es) body.push(type, 0xe0 | (pid >> 8), pid & 0xff, 0xf0, 0x00);
  return packet({ pid: pmtPid, pusi: true, payload: [0, ...section(0x02, program, body, version)] });
}

// ---- basics --------------------------------------------------------------------------------

t.test('header accessors and the null packet', async (t) => {
  t.equal(NULL_PACKET.length, 188, 'the null packet is one whole packet');
  t.equal(pidOf(NULL_PACKET, 0), 0x1fff, 'on the null PID, as pidOf reads it');
  t.same([...NULL_PACKET.subarray(0, 4)], [0x47, 0x1f, 0xff, 0x10]);
  t.ok(
    NULL_PACKET.subarray(4).every((b) => b === 0xff),
    '184 bytes of 0xFF',
  );

  const buf = new Uint8Array(10 + 3 * TS_PACKET_SIZE);
  t.equal(fillNullPackets(buf, 10, 3), 10 + 3 * TS_PACKET_SIZE, 'returns the end offset');
  t.equal(buf[9], 0);
  for (let k = 0; k < 3; k++) {
    const off = 10 + k * TS_PACKET_SIZE;
    t.same(buf.subarray(off, off + TS_PACKET_SIZE), NULL_PACKET);
    t.equal(pidOf(buf, off), NULL_PID);
    t.ok(hasPayload(buf, off));
    t.notOk(hasAdaptationField(buf, off));
    t.notOk(payloadUnitStart(buf, off));
    t.equal(adaptationLength(buf, off), -1);
    t.equal(payloadOffset(buf, off), off + 4);
    t.equal(continuityCounter(buf, off), 0);
    t.equal(readPcr(buf, off), -1);
    t.notOk(setDiscontinuity(buf, off), 'no adaptation field: nothing to set');
  }
  t.same(buf.subarray(10, 10 + TS_PACKET_SIZE), NULL_PACKET, 'untouched by setDiscontinuity');

  const p = packet({ pid: 0x123, pusi: true, cc: 9, af: [0x00, 1, 2], payload: [7] });
  t.equal(pidOf(p, 0), 0x123);
  t.equal(continuityCounter(p, 0), 9);
  t.equal(adaptationLength(p, 0), 3);
  t.equal(payloadOffset(p, 0), 8);
  t.equal(p[payloadOffset(p, 0)], 7);
  const afOnly = packet({ pid: 0x123, af: [0x00] });
  t.equal(adaptationLength(afOnly, 0), 183);
  t.equal(payloadOffset(afOnly, 0), -1, 'AF only: no payload');
  const bogus = packet({ pid: 0x123, af: [0x00], payload: [] });
  bogus[4] = 183; // claims payload but the AF leaves no room for it
  t.equal(payloadOffset(bogus, 0), -1, 'bogus AF length does not point outside the packet');
});

t.test('PCR: 33-bit base arithmetic, discontinuity flag', async (t) => {
  // base = 2^33 - 1, ext = 299: the largest PCR, needs more than 32 bits.
  const max = packet({ pid: 0x100, af: [0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], payload: [] });
  max[10] = 0xff; // base bit 0 set, 6 reserved bits, ext bit 8 set
  max[11] = 299 - 256;
  t.equal(readPcr(max, 0), (2 ** 33 - 1) * 300 + 299);
  const one = packet({ pid: 0x100, af: [0x10, 0, 0, 0, 0, 0x80 | 0x7e, 5], payload: [] });
  t.equal(readPcr(one, 0), 300 + 5);
  const noFlag = packet({ pid: 0x100, af: [0x00, 0, 0, 0, 0, 0x80, 5], payload: [] });
  t.equal(readPcr(noFlag, 0), -1, 'PCR flag clear');
  const short = packet({ pid: 0x100, af: [0x10, 0, 0], payload: [] });
  t.equal(readPcr(short, 0), -1, 'AF too short to hold a PCR');
  const empty = packet({ pid: 0x100, af: [], payload: [1] });
  t.equal(adaptationLength(empty, 0), 0);
  t.notOk(setDiscontinuity(empty, 0), 'empty AF (length 0) has no flags byte');
  t.notOk(randomAccessIndicator(empty, 0));

  t.ok(setDiscontinuity(one, 0));
  t.ok(discontinuityIndicator(one, 0));
  t.equal(readPcr(one, 0), 305, 'PCR still readable');
});

t.test('CRC-32/MPEG-2 check value', async (t) => {
  t.equal(crc32Mpeg2(Buffer.from('123456789'), 0, 9), 0x0376e6e7);
});

// ---- the real sample -----------------------------------------------------------------------

t.test('sample: framing, PSI, nulls', async (t) => {
  t.equal(N, 8993);
  const psi = new PsiTracker();
  let pats = 0;
  let pmts = 0;
  let nulls = 0;
  let firstPmtSeen = -1;
  for (let k = 0; k < N; k++) {
    const off = k * TS_PACKET_SIZE;
    if (sample[off] !== SYNC_BYTE) t.fail(`no sync byte in packet ${k}`);
    const kind = psi.feed(sample, off);
    if (kind === 'pat') pats++;
    if (kind === 'pmt') {
      pmts++;
      if (firstPmtSeen < 0) firstPmtSeen = k;
    }
    if (pidOf(sample, off) === NULL_PID) {
      nulls++;
      if (Buffer.compare(sample.subarray(off, off + TS_PACKET_SIZE), NULL_PACKET) !== 0) {
        // Only the CC may differ from ours (it is ignored on the null PID).
        t.equal(sample[off + 3] & 0xf0, 0x10, 'null packet is payload-only');
      }
    }
  }
  t.equal(pats, 97);
  t.equal(pmts, 97);
  t.equal(nulls, 1209);
  t.equal(psi.programNumber, 1);
  t.equal(psi.pmtPid, 0x1000);
  t.equal(psi.pcrPid, 0x100);
  t.equal(psi.videoPid, 0x100);
  t.equal(psi.videoCodec, 'h264');
  t.same(psi.streams, [
    { pid: 0x100, streamType: 0x1b },
    { pid: 0x101, streamType: 0x0f },
  ]);
  t.equal(psi.version, 1, 'the repeated PMT never counts as a change');
});

/** Byte offsets of the video packets that isKeyframeStart accepts, with the codec from the PMT. */
function keyframes(buf: Uint8Array, codecOverride?: 'hevc'): number[] {
  const psi = new PsiTracker();
  const out: number[] = [];
  for (let off = 0; off < buf.length; off += TS_PACKET_SIZE) {
    psi.feed(buf, off);
    if (pidOf(buf, off) === psi.videoPid && payloadUnitStart(buf, off)) {
      if (isKeyframeStart(buf, off, codecOverride ?? psi.videoCodec)) out.push(off);
    }
  }
  return out;
}

t.test('sample: keyframes', async (t) => {
  const found = keyframes(sample);
  t.equal(found.length, 10, 'GOP 25 at 25 fps over 9.6 s');

  // The same keyframes from the NAL units alone: clear every random_access_indicator first.
  const noRai = Buffer.from(sample);
  let cleared = 0;
  for (let off = 0; off < noRai.length; off += TS_PACKET_SIZE) {
    if (pidOf(noRai, off) === 0x100 && randomAccessIndicator(noRai, off)) {
      noRai[off + 5] &= ~0x40;
      cleared++;
    }
  }
  t.equal(cleared, 10, 'this muxer marks video keyframes with RAI (audio PES starts too)');
  t.same(keyframes(noRai), found, 'NAL scan finds the same packets');
  // Read with the wrong table, the H.264 access units (AUD 0x09 first) are never HEVC IRAPs.
  t.same(keyframes(noRai, 'hevc'), []);

  const probe = spawnSync(
    'ffprobe',
    ['-v', 'error', '-select_streams', 'v', '-show_entries', 'packet=flags,pos', '-of', 'csv=p=0', SAMPLE_PATH],
    { encoding: 'utf8' },
  );
  if (probe.error || probe.status !== 0) {
    t.comment('ffprobe not available: cross-check skipped');
    return;
  }
  // Lines are "flags,pos" (field order as ffprobe prints them); pos is the PES start packet.
  const ffKeys = probe.stdout
    .trim()
    .split('\n')
    .map((l) => l.split(','))
    .filter((f) => f.some((x) => x.startsWith('K')))
    .map((f) => Number(f.find((x) => /^\d+$/.test(x))));
  t.equal(ffKeys.length, found.length, 'ffprobe counts the same number of K flags');
  t.same(ffKeys, found, 'at the same byte positions');
});

t.test('sample: PCR strictly increasing on the PCR PID; discontinuity keeps the PCR', async (t) => {
  const psi = new PsiTracker();
  for (let off = 0; off < sample.length && psi.pcrPid < 0; off += TS_PACKET_SIZE) psi.feed(sample, off);
  let last = -1;
  let count = 0;
  let increasing = true;
  let first = -1;
  let firstOff = 0;
  let lastOff = 0;
  for (let off = 0; off < sample.length; off += TS_PACKET_SIZE) {
    const pcr = readPcr(sample, off);
    if (pcr < 0) continue;
    t.equal(pidOf(sample, off), psi.pcrPid, 'PCR only on the PCR PID');
    if (pcr <= last) increasing = false;
    if (first < 0) [first, firstOff] = [pcr, off];
    last = pcr;
    lastOff = off;
    count++;
  }
  t.ok(increasing);
  t.equal(count, 243);
  const mbps = ((lastOff - firstOff) * 8) / ((last - first) / 27e6) / 1e6;
  t.ok(mbps > 1.2 && mbps < 1.6, `bitrate from PCRs ${mbps.toFixed(2)} Mb/s`);

  const copy = Buffer.from(sample.subarray(firstOff, firstOff + TS_PACKET_SIZE));
  t.notOk(discontinuityIndicator(copy, 0));
  t.ok(setDiscontinuity(copy, 0));
  t.ok(discontinuityIndicator(copy, 0));
  t.equal(readPcr(copy, 0), first);
  t.equal(copy[5], sample[firstOff + 5] | 0x80);
  copy[5] = sample[firstOff + 5];
  t.same(copy, sample.subarray(firstOff, firstOff + TS_PACKET_SIZE), 'only that one bit changed');
});

// ---- keyframe detection on crafted packets --------------------------------------------------

t.test('keyframes: codec tables are never mixed', async (t) => {
  const v = (es: number[], headerData?: number[]) => packet({ pid: 0x100, pusi: true, payload: pes(es, headerData) });
  const h264P = v([0, 0, 0, 1, 0x41, 0x9a, 0x02]); // H.264 non-IDR slice, nal_ref_idc 2
  t.notOk(isKeyframeStart(h264P, 0, 'h264'), 'H.264 P-slice is not a keyframe');
  t.equal(0x41 >> 1, 32, '(the same byte read as an HEVC header would be a VPS)');
  t.ok(isKeyframeStart(v([0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x67, 0x64]), 0, 'h264'), 'AUD then SPS');
  t.ok(isKeyframeStart(v([0, 0, 1, 0x65, 0x88]), 0, 'h264'), 'IDR slice');
  t.notOk(isKeyframeStart(v([0, 0, 1, 0x41, 0x9a, 0, 0, 1, 0x65]), 0, 'h264'), 'nothing after the picture counts');
  t.notOk(isKeyframeStart(v([0, 0, 1, 0x06, 0x05, 0x01, 0x47]), 0, 'h264'), 'SEI alone');

  const hevcIdr = v([0, 0, 0, 1, 0x46, 0x01, 0x50, 0, 0, 1, 19 << 1, 0x01, 0xaf]); // AUD, IDR_W_RADL
  t.ok(isKeyframeStart(hevcIdr, 0, 'hevc'), 'HEVC IDR (type 19)');
  t.notOk(isKeyframeStart(hevcIdr, 0, 'h264'), 'the same bytes are no H.264 keyframe');
  t.ok(isKeyframeStart(v([0, 0, 1, 0x40, 0x01, 0x0c]), 0, 'hevc'), 'HEVC VPS');
  t.ok(isKeyframeStart(v([0, 0, 1, 21 << 1, 0x01]), 0, 'hevc'), 'HEVC CRA');
  t.notOk(isKeyframeStart(v([0, 0, 1, 0x02, 0x01, 0xd0]), 0, 'hevc'), 'HEVC TRAIL_R');

  t.ok(isKeyframeStart(v([0, 0, 1, 0xb3, 0x2d, 0x02]), 0, 'mpeg2'), 'MPEG-2 sequence header');
  t.notOk(isKeyframeStart(v([0, 0, 1, 0x00, 0x00, 0x0f, 0, 0, 1, 0xb3]), 0, 'mpeg2'), 'picture first');
  t.notOk(isKeyframeStart(v([0, 0, 1, 0xb8, 0, 0, 0, 0]), 0, 'mpeg2'), 'GOP header only, then padding');
  t.notOk(isKeyframeStart(h264P, 0, null), 'unknown codec: only RAI could say');
});

t.test('keyframes: PES header skipping, RAI, non-start packets', async (t) => {
  // Start-code-like bytes inside PES_header_data must not be read as NAL units.
  const tricky = packet({ pid: 0x100, pusi: true, payload: pes([0, 0, 1, 0x41, 0x9a], [0, 0, 1, 0x65, 0xff, 0xff]) });
  t.notOk(isKeyframeStart(tricky, 0, 'h264'));
  const longHeader = packet({ pid: 0x100, pusi: true, payload: pes([0, 0, 1, 0x65], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]) });
  t.ok(isKeyframeStart(longHeader, 0, 'h264'), 'found after a 7-byte header');

  const rai = packet({ pid: 0x100, pusi: true, af: [0x40], payload: pes([0, 0, 1, 0x41]) });
  t.ok(randomAccessIndicator(rai, 0));
  t.ok(isKeyframeStart(rai, 0, null), 'RAI is enough');
  const cont = packet({ pid: 0x100, pusi: false, payload: [0, 0, 1, 0x65] });
  t.notOk(isKeyframeStart(cont, 0, 'h264'), 'not a PES start');
  const notPes = packet({ pid: 0x100, pusi: true, payload: [0, 0, 2, 0xe0, 0, 0, 0x80, 0, 0, 0, 0, 1, 0x65] });
  t.notOk(isKeyframeStart(notPes, 0, 'h264'), 'no PES start code');
  const noOptional = packet({ pid: 0x100, pusi: true, payload: [0, 0, 1, 0xbe, 0, 0, 0xff, 0, 0, 1, 0x65] });
  t.notOk(isKeyframeStart(noOptional, 0, 'h264'), 'padding stream without optional header');
  const scrambled = packet({ pid: 0x100, pusi: true, payload: pes([0, 0, 1, 0x65]) });
  scrambled[3] |= 0x80;
  t.notOk(isKeyframeStart(scrambled, 0, 'h264'), 'scrambled payload is not parsed');
  const afOnly = packet({ pid: 0x100, pusi: true, af: [0x00] });
  t.notOk(isKeyframeStart(afOnly, 0, 'h264'), 'no payload');
  // Start code in the last bytes of the packet: its header byte is in the next packet.
  const edge = packet({ pid: 0x100, pusi: true, af: [0x00, ...new Array(160).fill(0xff)], payload: pes([0xff, 0xff, 0xff, 0xff]) });
  edge.set([0, 0, 1], TS_PACKET_SIZE - 3);
  t.notOk(isKeyframeStart(edge, 0, 'h264'), 'no read past the packet end');
});

// ---- PSI tracking on crafted tables ---------------------------------------------------------

t.test('PsiTracker: program choice, changes, corruption, spanning sections', async (t) => {
  const psi = new PsiTracker();
  t.equal(psi.feed(pmt(0x200, 5, 0x201, [[0x24, 0x201]]), 0), null, 'PMT before any PAT is unknown');
  t.equal(psi.version, 0);

  t.equal(
    psi.feed(
      pat([
        [0, 0x10],
        [5, 0x200],
        [6, 0x300],
      ]),
      0,
    ),
    'pat',
  );
  t.equal(psi.pmtPid, 0x200, 'skips the NIT entry, first program wins');
  t.equal(psi.programNumber, 5);
  t.equal(psi.feed(packet({ pid: 0x200, payload: [1, 2, 3] }), 0), null, 'PMT PID without section start');
  t.equal(psi.feed(pmt(0x200, 6, 0x301, [[0x02, 0x301]]), 0), 'pmt');
  t.equal(psi.version, 0, 'a PMT of another program on the same PID is ignored');

  t.equal(
    psi.feed(
      pmt(0x200, 5, 0x202, [
        [0x0f, 0x203],
        [0x24, 0x201],
        [0x1b, 0x204],
      ]),
      0,
    ),
    'pmt',
  );
  t.equal(psi.version, 1);
  t.equal(psi.videoCodec, 'hevc');
  t.equal(psi.videoPid, 0x201, 'first video stream wins');
  t.equal(psi.pcrPid, 0x202);
  t.equal(psi.streams.length, 3);

  const same = pmt(0x200, 5, 0x202, [
    [0x0f, 0x203],
    [0x24, 0x201],
    [0x1b, 0x204],
  ]);
  psi.feed(same, 0);
  t.equal(psi.version, 1, 'repeat does not bump');

  const corrupt = pmt(0x200, 5, 0x202, [[0x02, 0x205]], 1);
  corrupt[20] ^= 0x01;
  psi.feed(corrupt, 0);
  t.equal(psi.version, 1, 'bad CRC ignored');
  t.equal(psi.videoCodec, 'hevc');

  psi.feed(pmt(0x200, 5, 0x205, [[0x02, 0x205]], 1), 0);
  t.equal(psi.version, 2);
  t.equal(psi.videoCodec, 'mpeg2');
  t.equal(psi.videoPid, 0x205);

  psi.feed(pmt(0x200, 5, 0x206, [[0x0f, 0x206]], 2), 0);
  t.equal(psi.version, 3);
  t.equal(psi.videoPid, -1, 'no video stream');
  t.equal(psi.videoCodec, null);

  // A PMT section that does not fit in one packet is ignored (no partial parse).
  const many: Array<[number, number]> = [];
  for (let k = 0; k < 40; k++) many.push([0x1b, 0x400 + k]);
  const body = [0xe0 | 0x04, 0x00, 0xf0, 0x00];
  for (const [type, pid] of many) body.push(type, 0xe0 | (pid >> 8), pid & 0xff, 0xf0, 0x00);
  const big = section(0x02, 5, body, 3);
  t.ok(big.length > TS_PACKET_SIZE - 5);
  psi.feed(packet({ pid: 0x200, pusi: true, payload: [0, ...big.slice(0, TS_PACKET_SIZE - 5)] }), 0);
  t.equal(psi.version, 3, 'spanning section ignored');

  // pointer_field > 0: the section starts after the tail of a previous one.
  const ptr = packet({ pid: PAT_PID, pusi: true, payload: [3, 0xaa, 0xbb, 0xcc, ...section(0x00, 1, [0, 9, 0xe0 | 0x07, 0x00])] });
  t.equal(psi.feed(ptr, 0), 'pat');
  t.equal(psi.pmtPid, 0x700);
  t.equal(psi.programNumber, 9);
  t.equal(psi.videoPid, -1, 'PMT-derived state cleared');
  t.equal(psi.version, 4, 'moving the PMT counts as a change');
  psi.feed(pmt(0x700, 9, 0x701, [[0x1b, 0x701]]), 0);
  t.equal(psi.version, 5);
  t.equal(psi.videoCodec, 'h264');

  // Not current (current_next_indicator = 0), wrong table id, no program, or an error-flagged
  // packet: ignored.
  const next = packet({ pid: PAT_PID, pusi: true, payload: [0, ...section(0x00, 1, [0, 1, 0xe8, 0], 1, false)] });
  psi.feed(next, 0);
  const wrongTable = packet({ pid: PAT_PID, pusi: true, payload: [0, ...section(0x42, 1, [0, 1, 0xe8, 0])] });
  psi.feed(wrongTable, 0);
  psi.feed(pat([[0, 0x10]]), 0);
  const tei = pat([[1, 0x800]]);
  tei[1] |= 0x80;
  psi.feed(tei, 0);
  t.equal(psi.pmtPid, 0x700);
  t.equal(psi.feed(NULL_PACKET, 0), null);

  t.equal(psi.feed(packet({ pid: PAT_PID, payload: [1, 2, 3] }), 0), null, 'PAT continuation packet');
  t.equal(psi.feed(packet({ pid: PAT_PID, pusi: true, af: [0x00] }), 0), 'pat', 'PAT packet without payload');
  t.equal(psi.pmtPid, 0x700);
  psi.feed(pat([[9, 0x710]]), 0);
  t.equal(psi.pmtPid, 0x710, 'same program, PMT moved');
  t.equal(psi.version, 6);

  psi.reset();
  t.equal(psi.pmtPid, -1);
  t.equal(psi.videoCodec, null);
  t.same(psi.streams, []);
  psi.feed(ptr, 0);
  t.equal(psi.pmtPid, 0x700, 'the same PAT is parsed again after reset');
});

t.test('micro-measure (informational only)', async (t) => {
  const psi = new PsiTracker();
  const rounds = 20;
  let keys = 0;
  let pcrs = 0;
  const t0 = process.hrtime.bigint();
  for (let r = 0; r < rounds; r++) {
    for (let off = 0; off < sample.length; off += TS_PACKET_SIZE) {
      psi.feed(sample, off);
      if (pidOf(sample, off) === psi.videoPid && payloadUnitStart(sample, off) && isKeyframeStart(sample, off, psi.videoCodec)) keys++;
      if (readPcr(sample, off) >= 0) pcrs++;
    }
  }
  const ns = Number(process.hrtime.bigint() - t0) / (rounds * N);
  t.equal(keys, rounds * 10);
  t.equal(pcrs, rounds * 243);
  t.comment(`feed + keyframe + PCR per packet: ${ns.toFixed(1)} ns (~${(1e3 / ns).toFixed(1)} M packets/s)`);
});
