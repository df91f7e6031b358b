/**
 * Silent audio frames (src/workers/silence.ts): their headers say what the real frame's did, and
 * ffmpeg decodes a run of them to digital silence without a warning.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { audioCodecOf, readFrame, silentFrame, type AudioCodec } from '../src/workers/silence';

const haveFfmpeg = spawnSync('ffmpeg', ['-version']).error === undefined;

/** An ADTS header as an encoder would write it (with CRC: protection_absent 0), frame `length` long. */
function adts(profile: number, sfi: number, channels: number, length = 300, blocks = 0, mpeg2 = false): Uint8Array {
  return Uint8Array.from([
    0xff,
    0xf0 | (mpeg2 ? 8 : 0),
    (profile << 6) | (sfi << 2) | (channels >> 2),
    ((channels & 3) << 6) | (length >> 11),
    (length >> 3) & 0xff,
    ((length & 7) << 5) | 0x1f,
    0xfc | blocks,
  ]);
}

/** Decodes `frames` of `codec` with ffmpeg: its warnings, and the peak level astats measured. */
function decode(codec: AudioCodec, frame: Uint8Array, count: number): { warnings: string; peak: string; samples: number } {
  const dir = mkdtempSync(join(tmpdir(), 'acemux-silence-'));
  try {
    const file = join(dir, codec === 'aac' ? 'x.aac' : 'x.mp2');
    writeFileSync(file, Buffer.concat(Array.from({ length: count }, () => Buffer.from(frame))));
    const warn = spawnSync('ffmpeg', ['-hide_banner', '-nostdin', '-v', 'warning', '-i', file, '-f', 'null', '-'], { encoding: 'utf8' });
    const stats = spawnSync(
      'ffmpeg',
      ['-hide_banner', '-nostdin', '-i', file, '-af', 'astats=measure_perchannel=none,ashowinfo', '-f', 'null', '-'],
      { encoding: 'utf8' },
    );
    const peak = /Peak level dB: (\S+)/.exec(stats.stderr)?.[1] ?? '?';
    let samples = 0;
    for (const m of stats.stderr.matchAll(/nb_samples:(\d+)/g)) samples += Number(m[1]);
    // The raw-file demuxers guess a duration from the bit rate: that line is the demuxer's, not a decode problem.
    const warnings = warn.stderr
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.includes('Estimating duration from bitrate'))
      .join('\n');
    return { warnings, peak, samples };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

t.test('codecs by PMT stream type', async (t) => {
  t.equal(audioCodecOf(0x0f), 'aac');
  t.equal(audioCodecOf(0x03), 'mp2');
  t.equal(audioCodecOf(0x04), 'mp2');
  for (const st of [0x11, 0x81, 0x87, 0x06, 0x1b]) t.equal(audioCodecOf(st), null, `0x${st.toString(16)}: no fill`);
});

t.test('readFrame follows ADTS and layer II headers, and refuses the rest', async (t) => {
  t.same(readFrame('aac', adts(1, 3, 2, 371), 0), { length: 371, samples: 1024, rate: 48000 });
  t.same(readFrame('aac', adts(1, 4, 1, 200, 1), 0), { length: 200, samples: 2048, rate: 44100 });
  t.equal(readFrame('aac', adts(1, 13, 2), 0), null, 'reserved sampling index');
  t.equal(readFrame('aac', Uint8Array.from([0xff, 0xf2, 0x4c, 0x80, 0x2e, 0x7f, 0xfc]), 0), null, 'layer must be 0');
  t.equal(readFrame('aac', Uint8Array.from([0x47, 0xf1, 0x4c, 0x80, 0x2e, 0x7f, 0xfc]), 0), null, 'no syncword');
  // MPEG-1 layer II, 192 kb/s, 48 kHz: 576 bytes; 128 kb/s, 44.1 kHz, padded: 418 + 1.
  t.same(readFrame('mp2', Uint8Array.from([0xff, 0xfd, 0xa4, 0x04]), 0), { length: 576, samples: 1152, rate: 48000 });
  t.same(readFrame('mp2', Uint8Array.from([0xff, 0xfc, 0x82, 0xc4]), 0), { length: 418, samples: 1152, rate: 44100 });
  // MPEG-2 (LSF) layer II, 64 kb/s, 24 kHz: 384 bytes.
  t.same(readFrame('mp2', Uint8Array.from([0xff, 0xf5, 0x84, 0x44]), 0), { length: 384, samples: 1152, rate: 24000 });
  t.equal(readFrame('mp2', Uint8Array.from([0xff, 0xfb, 0x90, 0x44]), 0), null, 'layer III');
  t.equal(readFrame('mp2', Uint8Array.from([0xff, 0xfd, 0x04, 0x04]), 0), null, 'free format');
  t.equal(readFrame('mp2', Uint8Array.from([0xff, 0xfd, 0xac, 0x04]), 0), null, 'reserved sampling frequency');
});

t.test('a silent AAC frame copies profile, rate, channels and version, without CRC', async (t) => {
  const s = silentFrame('aac', adts(1, 3, 2, 371, 0, true), 0)!;
  t.ok(s);
  t.equal(s.samples, 1024);
  t.equal(s.rate, 48000);
  const f = s.bytes;
  t.equal(f[1]! & 0x0f, 0x09, 'MPEG-2 ID kept, layer 0, protection_absent 1');
  t.equal(f[2]! >> 6, 1, 'profile LC');
  t.equal((f[2]! >> 2) & 15, 3, '48 kHz');
  t.equal(((f[2]! & 1) << 2) | (f[3]! >> 6), 2, 'stereo');
  t.same(readFrame('aac', f, 0), { length: f.length, samples: 1024, rate: 48000 }, 'its frame_length is its size');
  // 7 header bytes; CPE: 3 + 4 + 1 + 2 × 22 bits, END: 3 → 55 bits → 7 bytes.
  t.equal(f.length, 14);
  t.equal(silentFrame('aac', adts(1, 3, 0), 0), null, 'channel_configuration 0 (a PCE) has no fill');
});

t.test('a silent layer II frame: the header without CRC or padding, then zeros', async (t) => {
  const s = silentFrame('mp2', Uint8Array.from([0xff, 0xfc, 0x82, 0xc4]), 0)!;
  t.equal(s.bytes.length, 417, '128 kb/s at 44.1 kHz, unpadded');
  t.same([...s.bytes.subarray(0, 4)], [0xff, 0xfd, 0x80, 0xc4]);
  t.ok(s.bytes.subarray(4).every((b) => b === 0));
  t.equal(s.samples, 1152);
});

t.test(
  'ffmpeg decodes runs of silent frames to silence, without a warning',
  { skip: haveFfmpeg ? false : 'ffmpeg not installed' },
  async (t) => {
    const cases: Array<[string, AudioCodec, Uint8Array, number]> = [
      ['AAC-LC stereo 48 kHz', 'aac', adts(1, 3, 2), 1024],
      ['AAC-LC mono 44.1 kHz', 'aac', adts(1, 4, 1), 1024],
      ['AAC-LC 3.0', 'aac', adts(1, 3, 3), 1024],
      ['AAC-LC 4.0', 'aac', adts(1, 3, 4), 1024],
      ['AAC-LC 5.0', 'aac', adts(1, 3, 5), 1024],
      ['AAC-LC 5.1 (SCE, CPE, CPE, LFE)', 'aac', adts(1, 3, 6), 1024],
      ['AAC-LC 7.1', 'aac', adts(1, 3, 7), 1024],
      ['AAC Main 32 kHz', 'aac', adts(0, 5, 2), 1024],
      ['MPEG-1 layer II stereo 48 kHz 192 kb/s', 'mp2', Uint8Array.from([0xff, 0xfd, 0xa4, 0x04]), 1152],
      ['MPEG-1 layer II mono 44.1 kHz 128 kb/s', 'mp2', Uint8Array.from([0xff, 0xfd, 0x80, 0xc4]), 1152],
      ['MPEG-1 layer II joint stereo 48 kHz 256 kb/s', 'mp2', Uint8Array.from([0xff, 0xfd, 0xc4, 0x64]), 1152],
      ['MPEG-2 layer II 24 kHz', 'mp2', Uint8Array.from([0xff, 0xf5, 0x84, 0x44]), 1152],
    ];
    for (const [name, codec, header, per] of cases) {
      const s = silentFrame(codec, header, 0);
      if (!t.ok(s, `${name}: a silent frame`)) continue;
      const d = decode(codec, s!.bytes, 50);
      t.equal(d.warnings, '', `${name}: no warning`);
      t.equal(d.peak, '-inf', `${name}: digital silence`);
      // The decoder may hold back its first frame (AAC priming); every other one comes out whole.
      t.ok(d.samples >= 49 * per && d.samples <= 50 * per, `${name}: ${d.samples} samples out of 50 frames`);
    }
  },
);
