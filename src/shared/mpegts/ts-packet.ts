/**
 * MPEG-TS packet helpers (ISO/IEC 13818-1). Pure functions on one 188-byte packet at
 * (buf, off); no I/O, no allocation, so they can run on every packet at ~100k packets/s.
 *
 * Invariants the callers guarantee (the TsFramer establishes them):
 * - off..off+187 lies inside buf and buf[off] === SYNC_BYTE. Nothing here re-checks bounds
 *   outside the packet; everything inside it is bounds-checked against off+188, because the
 *   content comes from the network and a bad length byte must not make us read a neighbour.
 *
 * Header layout used below:
 *   byte 0  0x47
 *   byte 1  TEI(1) PUSI(1) priority(1) PID[12:8](5)
 *   byte 2  PID[7:0]
 *   byte 3  scrambling(2) adaptation_field_control(2: 0x20 = AF present, 0x10 = payload) CC(4)
 *   byte 4  adaptation_field_length (if AF present), then flags byte:
 *           discontinuity 0x80, random_access 0x40, ES priority 0x20, PCR 0x10, OPCR 0x08, ...
 *           then the 6-byte PCR when the PCR flag is set.
 */

export const TS_PACKET_SIZE = 188;
export const SYNC_BYTE = 0x47;
export const NULL_PID = 0x1fff;
export const PAT_PID = 0;

export const VIDEO_CODECS = ['h264', 'hevc', 'mpeg2'] as const;
export type VideoCodec = (typeof VIDEO_CODECS)[number];
export type PsiKind = 'pat' | 'pmt';

export function pidOf(buf: Uint8Array, off: number): number {
  return ((buf[off + 1] & 0x1f) << 8) | buf[off + 2];
}

export function payloadUnitStart(buf: Uint8Array, off: number): boolean {
  return (buf[off + 1] & 0x40) !== 0;
}

export function hasAdaptationField(buf: Uint8Array, off: number): boolean {
  return (buf[off + 3] & 0x20) !== 0;
}

export function hasPayload(buf: Uint8Array, off: number): boolean {
  return (buf[off + 3] & 0x10) !== 0;
}

/** Continuity counter; it only advances on packets that carry a payload. */
export function continuityCounter(buf: Uint8Array, off: number): number {
  return buf[off + 3] & 0x0f;
}

/** adaptation_field_length (0..183), or -1 when the packet has no adaptation field. */
export function adaptationLength(buf: Uint8Array, off: number): number {
  return (buf[off + 3] & 0x20) !== 0 ? buf[off + 4] : -1;
}

/** Absolute offset of the payload in buf, or -1 if the packet has none (or a bogus AF length). */
export function payloadOffset(buf: Uint8Array, off: number): number {
  const afc = buf[off + 3] & 0x30;
  if ((afc & 0x10) === 0) return -1;
  const p = afc === 0x30 ? off + 5 + buf[off + 4] : off + 4;
  return p < off + TS_PACKET_SIZE ? p : -1;
}

/** Flags byte of a non-empty adaptation field, or 0 (no AF, or AF of length 0 = one stuffing byte). */
function afFlags(buf: Uint8Array, off: number): number {
  return (buf[off + 3] & 0x20) !== 0 && buf[off + 4] > 0 ? buf[off + 5] : 0;
}

export function randomAccessIndicator(buf: Uint8Array, off: number): boolean {
  return (afFlags(buf, off) & 0x40) !== 0;
}

export function discontinuityIndicator(buf: Uint8Array, off: number): boolean {
  return (afFlags(buf, off) & 0x80) !== 0;
}

/**
 * PCR in 27 MHz units (base * 300 + extension), or -1 if the packet carries none.
 * 42 bits fit exactly in a double (max ~2.6e12 < 2^53); the 33-bit base is assembled with
 * multiplications because `<<` would overflow int32.
 */
export function readPcr(buf: Uint8Array, off: number): number {
  if ((afFlags(buf, off) & 0x10) === 0 || buf[off + 4] < 7) return -1;
  const base =
    buf[off + 6] * 0x2000000 + // bits 32..25
    buf[off + 7] * 0x20000 + //   bits 24..17
    buf[off + 8] * 0x200 + //     bits 16..9
    buf[off + 9] * 2 + //         bits 8..1
    (buf[off + 10] >> 7); //      bit 0
  const ext = ((buf[off + 10] & 1) << 8) | buf[off + 11];
  return base * 300 + ext;
}

/**
 * Sets discontinuity_indicator, which tells the player that the clock jumps here (a splice after
 * a reconnect or failover). Only possible when the packet already has a non-empty adaptation
 * field — we never grow one, as that would shift the payload. Returns true if the bit is set.
 */
export function setDiscontinuity(buf: Uint8Array, off: number): boolean {
  if ((buf[off + 3] & 0x20) === 0 || buf[off + 4] === 0) return false;
  buf[off + 5] |= 0x80;
  return true;
}

/** A spec-correct null packet: PID 0x1FFF, payload only, CC 0, 184 bytes of 0xFF. Treat as read-only. */
export const NULL_PACKET: Uint8Array = new Uint8Array(TS_PACKET_SIZE).fill(0xff);
NULL_PACKET.set([SYNC_BYTE, 0x1f, 0xff, 0x10]);

/** Writes `count` null packets at buf[off..]; returns the offset just after them. */
export function fillNullPackets(buf: Uint8Array, off: number, count: number): number {
  for (let i = 0; i < count; i++, off += TS_PACKET_SIZE) buf.set(NULL_PACKET, off);
  return off;
}

// CRC-32/MPEG-2 (poly 0x04C11DB7, init ~0, MSB first, no final xor). Run over a whole PSI section
// including its CRC field it yields 0, which is how sections are validated.
const CRC_TABLE = new Uint32Array(256);
for (let i = 0; i < 256; i++) {
  let c = i << 24;
  for (let k = 0; k < 8; k++) c = c & 0x80000000 ? (c << 1) ^ 0x04c11db7 : c << 1;
  CRC_TABLE[i] = c >>> 0;
}

export function crc32Mpeg2(buf: Uint8Array, start: number, end: number): number {
  let crc = 0xffffffff;
  for (let i = start; i < end; i++) crc = (crc << 8) ^ CRC_TABLE[((crc >>> 24) ^ buf[i]) & 0xff];
  return crc >>> 0;
}

/**
 * Start (absolute offset) of the PSI section beginning in this packet with the given table_id,
 * or -1 unless the section is complete in this packet, current, and its CRC checks out.
 * Sections spanning packets are ignored: a PAT/PMT fits in one packet in practice.
 */
function sectionStart(buf: Uint8Array, off: number, tableId: number): number {
  if ((buf[off + 1] & 0xc0) !== 0x40) return -1; // transport error, or no section start
  const p = payloadOffset(buf, off);
  if (p < 0) return -1;
  const s = p + 1 + buf[p]; // skip pointer_field (tail of a previous section)
  const end = off + TS_PACKET_SIZE;
  if (s + 12 > end || buf[s] !== tableId || (buf[s + 1] & 0x80) === 0) return -1;
  const sectionEnd = s + 3 + (((buf[s + 1] & 0x0f) << 8) | buf[s + 2]);
  if (sectionEnd > end || (buf[s + 5] & 1) === 0) return -1; // incomplete, or not yet current
  return s;
}

function sectionEndOf(buf: Uint8Array, s: number): number {
  return s + 3 + (((buf[s + 1] & 0x0f) << 8) | buf[s + 2]);
}

/** The 4 CRC bytes at the end of a section as a number: a cheap "same table as before?" test. */
function storedCrc(buf: Uint8Array, sectionEnd: number): number {
  return ((buf[sectionEnd - 4] << 24) | (buf[sectionEnd - 3] << 16) | (buf[sectionEnd - 2] << 8) | buf[sectionEnd - 1]) >>> 0;
}

function videoCodecOf(streamType: number): VideoCodec | null {
  switch (streamType) {
    case 0x1b:
      return 'h264';
    case 0x24:
      return 'hevc';
    case 0x02:
      return 'mpeg2';
    default:
      return null;
  }
}

export interface ElementaryStream {
  readonly pid: number;
  readonly streamType: number;
}

/**
 * Follows PAT → PMT of the first program. Feed it every packet; other PIDs cost two compares.
 * Repeated, unchanged tables (every ~100 ms) are recognised by their CRC bytes and not reparsed;
 * a changed table is CRC-checked before it is believed, so one corrupt packet cannot move the
 * video PID. Allocates only when the PMT actually changes (the `streams` array).
 */
export class PsiTracker {
  programNumber = -1;
  pmtPid = -1;
  pcrPid = -1;
  videoPid = -1;
  videoCodec: VideoCodec | null = null;
  streams: readonly ElementaryStream[] = [];
  /** 0 until the first PMT; bumps whenever the PMT (or the PID it lives on) changes. */
  version = 0;
  private patCrc = -1;
  private pmtCrc = -1;

  /** 'pat' / 'pmt' when the packet starts a PAT / PMT section (a clean join point begins there). */
  feed(buf: Uint8Array, off: number): PsiKind | null {
    const pid = ((buf[off + 1] & 0x1f) << 8) | buf[off + 2];
    if (pid === PAT_PID) {
      if ((buf[off + 1] & 0x40) === 0) return null;
      this.parsePat(buf, off);
      return 'pat';
    }
    if (pid !== this.pmtPid || (buf[off + 1] & 0x40) === 0) return null;
    this.parsePmt(buf, off);
    return 'pmt';
  }

  /** Forget everything (a different stream follows); `version` keeps counting. */
  reset(): void {
    this.programNumber = this.pmtPid = this.patCrc = -1;
    this.clearPmt();
  }

  private clearPmt(): void {
    this.pcrPid = this.videoPid = this.pmtCrc = -1;
    this.videoCodec = null;
    this.streams = [];
  }

  private parsePat(buf: Uint8Array, off: number): void {
    const s = sectionStart(buf, off, 0x00);
    if (s < 0) return;
    const end = sectionEndOf(buf, s);
    const crc = storedCrc(buf, end);
    if (crc === this.patCrc || crc32Mpeg2(buf, s, end) !== 0) return;
    this.patCrc = crc;
    for (let i = s + 8; i + 4 <= end - 4; i += 4) {
      const program = (buf[i] << 8) | buf[i + 1];
      if (program === 0) continue; // network PID (NIT), not a program
      const pmtPid = ((buf[i + 2] & 0x1f) << 8) | buf[i + 3];
      if (program !== this.programNumber || pmtPid !== this.pmtPid) {
        this.programNumber = program;
        this.pmtPid = pmtPid;
        this.clearPmt();
        if (this.version > 0) this.version++; // derived fields just went stale
      }
      return;
    }
  }

  private parsePmt(buf: Uint8Array, off: number): void {
    const s = sectionStart(buf, off, 0x02);
    if (s < 0 || ((buf[s + 3] << 8) | buf[s + 4]) !== this.programNumber) return;
    const end = sectionEndOf(buf, s);
    const crc = storedCrc(buf, end);
    if (crc === this.pmtCrc || crc32Mpeg2(buf, s, end) !== 0) return;
    const streams: ElementaryStream[] = [];
    let videoPid = -1;
    let videoCodec: VideoCodec | null = null;
    const esEnd = end - 4;
    let i = s + 12 + (((buf[s + 10] & 0x0f) << 8) | buf[s + 11]); // skip program descriptors
    while (i + 5 <= esEnd) {
      const streamType = buf[i];
      const pid = ((buf[i + 1] & 0x1f) << 8) | buf[i + 2];
      streams.push({ pid, streamType });
      const codec = videoCodecOf(streamType);
      if (codec !== null && videoCodec === null) {
        videoPid = pid;
        videoCodec = codec;
      }
      i += 5 + (((buf[i + 3] & 0x0f) << 8) | buf[i + 4]);
    }
    this.pmtCrc = crc;
    this.pcrPid = ((buf[s + 8] & 0x1f) << 8) | buf[s + 9];
    this.videoPid = videoPid;
    this.videoCodec = videoCodec;
    this.streams = streams;
    this.version++;
  }
}

/**
 * True if this packet (expected: payload_unit_start on the video PID) begins a keyframe:
 * random_access_indicator is set, or the PES payload within THIS packet holds, after a
 * 00 00 01 start code, a random-access unit of `codec` — the codec named by the PMT. Mixing
 * the H.264 and HEVC tables is a known bug: an H.264 P-slice header 0x41 read as HEVC is
 * type 0x41>>1 = 32, a VPS. The scan stops at the first picture/slice, since slice data is
 * escaped so no later start code can belong to the same picture.
 */
export function isKeyframeStart(buf: Uint8Array, off: number, codec: VideoCodec | null): boolean {
  if ((buf[off + 1] & 0x40) === 0) return false;
  if ((afFlags(buf, off) & 0x40) !== 0) return true;
  if (codec === null || (buf[off + 3] & 0xc0) !== 0) return false; // unknown codec, or scrambled
  const p = payloadOffset(buf, off);
  const end = off + TS_PACKET_SIZE;
  // PES header: 00 00 01 stream_id len(2) flags(2) header_data_length, then optional fields.
  if (p < 0 || p + 9 > end || buf[p] !== 0 || buf[p + 1] !== 0 || buf[p + 2] !== 1) return false;
  if ((buf[p + 6] & 0xc0) !== 0x80) return false; // no optional PES header: not a video PES
  for (let i = p + 9 + buf[p + 8]; i + 3 < end; i++) {
    // A byte > 1 at i+2 rules out a start code at i, i+1 and i+2: jump ahead (most bytes are > 1).
    if (buf[i + 2] > 1) {
      i += 2;
      continue;
    }
    if (buf[i] !== 0 || buf[i + 1] !== 0 || buf[i + 2] !== 1) continue;
    const h = buf[i + 3];
    if (codec === 'h264') {
      const type = h & 0x1f;
      if (type === 5 || type === 7) return true; // IDR slice, SPS
      if (type >= 1 && type <= 4) return false; // non-IDR slice: picture reached
    } else if (codec === 'hevc') {
      const type = (h >> 1) & 0x3f;
      if ((type >= 16 && type <= 21) || type === 32) return true; // IRAP (BLA/IDR/CRA), VPS
      if (type <= 9) return false; // non-IRAP VCL NAL
    } else {
      if (h === 0xb3) return true; // sequence header
      if (h === 0x00) return false; // picture start without a sequence header first
    }
    i += 3;
  }
  return false;
}
