/**
 * Shared by test/faults/*.test.ts (split by fault family so each file stays well under a
 * minute). Fault injection: the simulator's fault switches against the real acemux, one test per fault.
 * Each asserts what a player sees — bytes keep flowing (keepalive null packets through gaps) and
 * stay packet-aligned, or the response ends cleanly — and, from the simulator's counters, that
 * no engine session is left behind.
 */
import type { Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SimHandle } from '../helpers/sim';
import type { Acemux } from '../helpers/acemux';
import { fetchStream, getJson, aligned, sleep, type Received } from '../helpers/client';
import { pidOf } from '../../src/shared/mpegts/ts-packet';
import { ccErrors, describeErrors, truncatedPes } from '../helpers/ts-check';

export const TS = 188;
export const NULL_PID = 0x1fff;
export const FAST = [
  '--stall-timeout',
  '1500ms',
  '--first-data-timeout',
  '4s',
  '--playback-timeout',
  '1500ms',
  '--retry-base',
  '150ms',
  '--retry-cap',
  '800ms',
  '--grace',
  '400ms',
  '--keepalive',
  '200ms',
  '--stat-interval',
  '500ms',
  '--engine-timeout',
  '3s',
];
export const hasFfmpeg = !spawnSync('ffmpeg', ['-version']).error;

export interface Watched extends Received {
  maxGapMs: number;
}

/** Reads a stream for `ms`, recording the longest silence between two data events. */
export async function watch(url: string, ms: number): Promise<Watched> {
  let last = 0;
  let maxGapMs = 0;
  const r = await fetchStream(url, {
    ms,
    onData: (_d, at) => {
      if (last) maxGapMs = Math.max(maxGapMs, at - last);
      last = at;
    },
  });
  return { ...r, maxGapMs };
}

export const whole = (b: Buffer) => b.subarray(0, b.length - (b.length % TS));
export const firstData = (b: Buffer) => {
  let off = 0;
  while (off + TS <= b.length && pidOf(b, off) === NULL_PID) off += TS;
  return off;
};
export const countPid = (b: Buffer, pid: number) => {
  let n = 0;
  for (let off = 0; off + TS <= b.length; off += TS) if (pidOf(b, off) === pid) n++;
  return n;
};

/** What every test asserts of a played stream: continuous, aligned, starting clean. */
export function assertPlayed(t: Test, r: Watched, what: string): void {
  t.equal(r.status, 200, `${what}: 200`);
  t.ok(aligned(whole(r.body)), `${what}: packet-aligned throughout`);
  t.ok(r.maxGapMs < 1200, `${what}: never silent for long (longest gap ${r.maxGapMs} ms)`);
  const off = firstData(r.body);
  t.ok(off < r.body.length, `${what}: real data arrived`);
  t.equal(pidOf(r.body, off), 0, `${what}: the first data packet is a PAT`);
  t.equal(describeErrors(ccErrors(whole(r.body))), 'none', `${what}: no continuity error on any PID`);
  t.equal(describeErrors(truncatedPes(whole(r.body))), 'none', `${what}: no truncated PES`);
}

/** After the clients are gone and the grace period has passed, the engine holds no session of ours. */
export async function assertNoLeak(t: Test, ace: Acemux, ...sims: SimHandle[]): Promise<void> {
  await sleep(1500);
  for (const sim of sims) {
    const st = await sim.stats();
    t.equal(st.sessionsActive, 0, `no engine session left on ${sim.origin}`);
    t.equal(st.playbackActive, 0, 'no playback connection left');
  }
  t.equal((await getJson(`${ace.origin}/ace/status`)).body.streams, 0, 'no stream left in acemux');
}

export async function events(ace: Acemux, id?: string): Promise<Array<{ kind: string; [k: string]: unknown }>> {
  const r = await getJson(`${ace.origin}/ace/status${id ? `?id=${id}` : ''}`);
  return r.body.events ?? [];
}

/**
 * ffprobe demuxes the capture without an error and decodes most of its pictures. A splice can
 * leave one truncated picture (the old upstream ended mid-frame): a decoder conceals it.
 */
export function decodes(t: Test, body: Buffer, what: string, seconds: number): void {
  if (!hasFfmpeg) return void t.skip(`${what}: ffprobe not installed`, () => {});
  let last = 0;
  for (let off = 0; off + TS <= body.length; off += TS) if (pidOf(body, off) === 0x100 && body[off + 1]! & 0x40) last = off;
  const file = join(mkdtempSync(join(tmpdir(), 'acemux-')), 'splice.ts');
  writeFileSync(file, body.subarray(0, last));
  const demux = spawnSync('ffprobe', ['-v', 'error', '-show_packets', file]);
  t.equal(demux.status, 0, `${what}: ffprobe demuxes it`);
  t.equal(demux.stderr.toString().trim(), '', `${what}: without demux errors`);
  const frames = spawnSync('ffprobe', [
    '-v',
    'quiet',
    '-count_frames',
    '-select_streams',
    'v',
    '-show_entries',
    'stream=nb_read_frames',
    '-of',
    'csv=p=0',
    file,
  ]);
  const n = Number(frames.stdout.toString().trim().split(/\s+/)[0]);
  t.ok(n >= seconds * 25 * 0.6, `${what}: ${n} pictures decoded from ~${seconds} s`);
}
