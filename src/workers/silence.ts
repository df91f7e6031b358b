/**
 * Silent audio frames, built from the header of a real frame of the stream so a decoder takes
 * them for more of the same (stream-actor.ts A11 fills a splice's audio gap with them). Written
 * from the standards, two codecs:
 *  - AAC in ADTS (ISO/IEC 13818-7 / 14496-3; PMT stream type 0x0f): an ADTS header with
 *    protection_absent = 1, then one raw_data_block whose channel elements (SCE, CPE with
 *    common_window = 0, LFE, as channel_configuration lays them out) each carry a global_gain,
 *    ics_info with one long window and max_sfb = 0 (no bands: no sections, scale factors or
 *    spectral data) and no pulse, TNS or gain control, then ID_END and byte alignment: 1024
 *    samples of zero per frame.
 *  - MPEG-1/2 audio layer II (ISO/IEC 11172-3 / 13818-3; stream types 0x03, 0x04): the header
 *    without CRC and without padding, then zero bits: every subband's allocation is 0, so no
 *    scale factors and no samples follow (1152 samples of zero).
 * Anything else (AC-3, E-AC-3, LATM, AAC with channel_configuration 0, layers I and III, free
 * format) has no silent frame here: formatOf answers null.
 */

/** Codecs we can fill, by what the PMT says a PID carries. */
export type AudioCodec = 'aac' | 'mp2';

export function audioCodecOf(streamType: number): AudioCodec | null {
  if (streamType === 0x0f) return 'aac';
  if (streamType === 0x03 || streamType === 0x04) return 'mp2';
  return null;
}

/** Bytes of header needed to read a frame's length (ADTS without CRC; MPEG audio). */
export function headerBytes(codec: AudioCodec): number {
  return codec === 'aac' ? 7 : 4;
}

const AAC_RATES = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];
/** Layer II bit rates, kb/s, by bitrate_index: MPEG-1, then MPEG-2/2.5 (lower sampling frequencies). */
const MP2_KBPS_1 = [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384];
const MP2_KBPS_2 = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
const MPA_RATES = [44100, 48000, 32000];

/** One frame as its header tells it. */
export interface Frame {
  /** Whole frame, header included, in bytes. */
  length: number;
  /** Samples per channel it decodes to. */
  samples: number;
  /** Sampling rate, Hz. */
  rate: number;
}

/**
 * The frame whose header starts at h[at] (headerBytes(codec) bytes readable), or null when it
 * is no header of that codec we can follow.
 */
export function readFrame(codec: AudioCodec, h: Uint8Array, at: number): Frame | null {
  if (h[at] !== 0xff) return null;
  const b1 = h[at + 1]!;
  const b2 = h[at + 2]!;
  if (codec === 'aac') {
    if ((b1 & 0xf6) !== 0xf0) return null; // syncword, layer '00'
    const rate = AAC_RATES[(b2 >> 2) & 15];
    const length = ((h[at + 3]! & 3) << 11) | (h[at + 4]! << 3) | (h[at + 5]! >> 5);
    const headerLen = (b1 & 1) === 1 ? 7 : 9;
    if (rate === undefined || length <= headerLen) return null;
    return { length, samples: 1024 * ((h[at + 6]! & 3) + 1), rate };
  }
  if ((b1 & 0xe0) !== 0xe0) return null;
  const version = (b1 >> 3) & 3; // 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5
  if (version === 1 || ((b1 >> 1) & 3) !== 2) return null; // reserved, or not layer II
  const base = MPA_RATES[(b2 >> 2) & 3];
  const kbps = (version === 3 ? MP2_KBPS_1 : MP2_KBPS_2)[b2 >> 4];
  if (base === undefined || !kbps) return null; // reserved rate; free format or a bad index
  const rate = version === 3 ? base : version === 2 ? base / 2 : base / 4;
  return { length: Math.floor((144 * kbps * 1000) / rate) + ((b2 >> 1) & 1), samples: 1152, rate };
}

/** MSB-first bit writer, enough for a few dozen bits. */
class Bits {
  private readonly out: number[] = [];
  private acc = 0;
  private n = 0;

  put(value: number, bits: number): void {
    for (let i = bits - 1; i >= 0; i--) {
      this.acc = (this.acc << 1) | ((value >> i) & 1);
      if (++this.n === 8) {
        this.out.push(this.acc);
        this.acc = this.n = 0;
      }
    }
  }

  /** Pads to a byte boundary with zeros. */
  bytes(): number[] {
    if (this.n > 0) this.put(0, 8 - this.n);
    return this.out;
  }
}

const ID_SCE = 0;
const ID_CPE = 1;
const ID_LFE = 3;
const ID_END = 7;
/** Channel elements in raw_data_block order, per channel_configuration 1–7. */
const LAYOUTS: Record<number, number[]> = {
  1: [ID_SCE],
  2: [ID_CPE],
  3: [ID_SCE, ID_CPE],
  4: [ID_SCE, ID_CPE, ID_SCE],
  5: [ID_SCE, ID_CPE, ID_CPE],
  6: [ID_SCE, ID_CPE, ID_CPE, ID_LFE],
  7: [ID_SCE, ID_CPE, ID_CPE, ID_CPE, ID_LFE],
};

/** individual_channel_stream with common_window = 0 and no bands at all. */
function silentIcs(w: Bits): void {
  w.put(100, 8); // global_gain: any value, nothing is scaled by it
  w.put(0, 1); // ics_info: ics_reserved_bit
  w.put(0, 2); // window_sequence: ONLY_LONG_SEQUENCE
  w.put(0, 1); // window_shape
  w.put(0, 6); // max_sfb = 0: no section_data, scale_factor_data or spectral_data follow
  w.put(0, 1); // predictor_data_present
  w.put(0, 1); // pulse_data_present
  w.put(0, 1); // tns_data_present
  w.put(0, 1); // gain_control_data_present
}

function silentAac(h: Uint8Array, at: number): Uint8Array | null {
  const profile = h[at + 2]! >> 6;
  const sfi = (h[at + 2]! >> 2) & 15;
  const channels = ((h[at + 2]! & 1) << 2) | (h[at + 3]! >> 6);
  const layout = LAYOUTS[channels];
  if (layout === undefined || AAC_RATES[sfi] === undefined) return null;
  const w = new Bits();
  const tags = [0, 0, 0, 0];
  for (const id of layout) {
    w.put(id, 3);
    w.put(tags[id]!++, 4); // element_instance_tag: counted per element type
    if (id === ID_CPE) w.put(0, 1); // common_window
    silentIcs(w);
    if (id === ID_CPE) silentIcs(w);
  }
  w.put(ID_END, 3);
  const body = w.bytes();
  const length = 7 + body.length;
  const f = new Uint8Array(length);
  f[0] = 0xff;
  f[1] = 0xf0 | (h[at + 1]! & 0x08) | 1; // syncword, the stream's MPEG version, layer 0, no CRC
  f[2] = (profile << 6) | (sfi << 2) | (channels >> 2); // private_bit 0
  f[3] = ((channels & 3) << 6) | (length >> 11); // original/copy, home, copyright bits 0
  f[4] = (length >> 3) & 0xff;
  f[5] = ((length & 7) << 5) | 0x1f; // adts_buffer_fullness 0x7ff: variable rate
  f[6] = 0xfc; // number_of_raw_data_blocks_in_frame 0
  f.set(body, 7);
  return f;
}

function silentMp2(h: Uint8Array, at: number): Uint8Array | null {
  const b2 = h[at + 2]! & 0xfd; // no padding
  const head = [0xff, h[at + 1]! | 1, b2, h[at + 3]!]; // protection_bit 1: no CRC
  const frame = readFrame('mp2', Uint8Array.from(head), 0);
  if (frame === null) return null;
  const f = new Uint8Array(frame.length); // all allocations 0, then zero ancillary bits
  f.set(head, 0);
  return f;
}

/**
 * A silent frame like the real one whose header starts at h[at], and how long it plays; null
 * when this codec or layout has none here.
 */
export function silentFrame(codec: AudioCodec, h: Uint8Array, at: number): { bytes: Uint8Array; samples: number; rate: number } | null {
  const real = readFrame(codec, h, at);
  if (real === null) return null;
  const bytes = codec === 'aac' ? silentAac(h, at) : silentMp2(h, at);
  // An ADTS frame of several raw_data_blocks still gives 1 block of silence: 1024 samples.
  return bytes === null ? null : { bytes, samples: codec === 'aac' ? 1024 : 1152, rate: real.rate };
}
