/**
 * HLS checks for tests: every playlist a test sees goes through `PlaylistChecker`, which parses it
 * with m3u8-parser (a parser acemux does not use to write playlists) and holds it to RFC 8216's
 * live-playlist rules across the whole sequence of playlists of one stream.
 */
// m3u8-parser ships no types.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Parser } = require('m3u8-parser') as { Parser: new () => { push(t: string): void; end(): void; manifest: unknown } };
import { spawn } from 'node:child_process';

export interface ParsedSegment {
  seq: number;
  dseq: number;
  uri: string;
  duration: number;
  discontinuity: boolean;
  pdt: number | null;
}

export interface ParsedPlaylist {
  targetDuration: number;
  mediaSequence: number;
  discontinuitySequence: number;
  segments: ParsedSegment[];
}

export function parsePlaylist(text: string): ParsedPlaylist {
  const p = new Parser();
  p.push(text);
  p.end();
  const m = p.manifest as {
    mediaSequence?: number;
    discontinuitySequence?: number;
    targetDuration: number;
    segments: Array<{ uri: string; duration: number; discontinuity?: boolean; programDateTime?: number }>;
  };
  const ms: number = m.mediaSequence ?? 0;
  const ds: number = m.discontinuitySequence ?? 0;
  let d = ds;
  const segments = m.segments.map((s, i) => {
    if (s.discontinuity) d++;
    return {
      seq: ms + i,
      dseq: d,
      uri: s.uri,
      duration: s.duration,
      discontinuity: !!s.discontinuity,
      pdt: typeof s.programDateTime === 'number' ? s.programDateTime : null,
    };
  });
  return { targetDuration: m.targetDuration, mediaSequence: ms, discontinuitySequence: ds, segments };
}

/** Accumulates every playlist of one stream; `problems` lists each rule broken (empty = all kept). */
export class PlaylistChecker {
  readonly problems: string[] = [];
  readonly seen = new Map<number, ParsedSegment>();
  playlists = 0;
  private target = -1;
  private lastMs = -1;
  discontinuities = 0;

  check(text: string): ParsedPlaylist {
    const bad = (m: string) => this.problems.push(`playlist ${this.playlists}: ${m}`);
    this.playlists++;
    if (!text.startsWith('#EXTM3U\n')) bad('does not start with #EXTM3U');
    if (/#EXT-X-ENDLIST/.test(text)) bad('a live playlist has EXT-X-ENDLIST');
    const p = parsePlaylist(text);
    if (!(p.targetDuration >= 1)) bad('no EXT-X-TARGETDURATION');
    if (this.target >= 0 && p.targetDuration !== this.target) bad(`target duration changed ${this.target} → ${p.targetDuration}`);
    this.target = p.targetDuration;
    if (p.segments.length === 0) bad('no segment');
    if (p.mediaSequence < this.lastMs) bad(`media sequence went back ${this.lastMs} → ${p.mediaSequence}`);
    this.lastMs = p.mediaSequence;
    for (const s of p.segments) {
      if (Math.round(s.duration) > p.targetDuration) bad(`segment ${s.seq}: ${s.duration} s rounds above the target ${p.targetDuration}`);
      if (!(s.duration > 0)) bad(`segment ${s.seq}: duration ${s.duration}`);
      if (s.pdt === null) bad(`segment ${s.seq}: no EXT-X-PROGRAM-DATE-TIME`);
      const old = this.seen.get(s.seq);
      if (old) {
        if (old.uri !== s.uri) bad(`segment ${s.seq}: URI changed ${old.uri} → ${s.uri}`);
        if (old.dseq !== s.dseq) bad(`segment ${s.seq}: discontinuity sequence ${old.dseq} → ${s.dseq}`);
        if (old.duration !== s.duration) bad(`segment ${s.seq}: duration changed`);
      } else {
        this.seen.set(s.seq, s);
        if (s.discontinuity) this.discontinuities++;
      }
    }
    return p;
  }
}

/** Runs a tool to completion, collecting output (stdout as a Buffer). */
export function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => out.push(d));
    p.stderr.on('data', (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr });
    });
  });
}

/** GET with a user agent (an HLS viewer is an address and a user agent); body as a Buffer. */
export async function get(
  url: string,
  ua = 'acemux-test',
  method = 'GET',
): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
  const res = await fetch(url, { method, headers: { 'user-agent': ua } });
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: Object.fromEntries(res.headers), body };
}
