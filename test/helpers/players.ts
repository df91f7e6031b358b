/**
 * Real players on an acemux URL, with what they say recorded against the wall clock:
 * - ffmpeg decodes everything to a null output with `showinfo`/`ashowinfo`, `-copyts` so the
 *   stream's own timestamps are printed: each frame line is stamped when it reaches us.
 * - mpv plays with `--vo=null --ao=null` (which still pace playback in real time) and reports
 *   `avsync`, `time-pos` and `paused-for-cache` through its JSON IPC socket.
 * Both logs keep every warning and error line, which the player tests assert empty.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { mkdtempSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Sample {
  at: number; // Date.now() when it reached us
  v: number;
}

export interface Player {
  name: 'ffmpeg' | 'mpv';
  /** Video frames (pts seconds for ffmpeg, time-pos for mpv) as they came. */
  video: Sample[];
  /** ffmpeg: audio frames (pts seconds). */
  audio: Sample[];
  /** mpv: avsync in seconds (audio minus video). */
  avsync: Sample[];
  /** mpv: paused-for-cache changes (1 = waiting for data). */
  cache: Sample[];
  /** Warning and error lines from the player's log. */
  problems: string[];
  /** mpv: its whole log file, once stopped. */
  log?: string[];
  exitedAt: number;
  exitCode: number | null;
  stop(): Promise<void>;
}

export const haveFfmpeg = spawnSync('ffmpeg', ['-version']).error === undefined;
export const haveMpv = spawnSync('mpv', ['--version']).error === undefined;

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

function lines(stream: NodeJS.ReadableStream, each: (line: string, at: number) => void): void {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (d: string) => {
    const at = Date.now();
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      each(buf.slice(0, i).replace(/\r$/, ''), at);
      buf = buf.slice(i + 1);
    }
  });
}

function base(name: Player['name'], proc: ChildProcess): Player {
  live.add(proc);
  const p: Player = {
    name,
    video: [],
    audio: [],
    avsync: [],
    cache: [],
    problems: [],
    exitedAt: 0,
    exitCode: null,
    stop: async () => {
      if (p.exitedAt) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    },
  };
  const exited = new Promise<void>((ok) =>
    proc.once('exit', (code) => {
      p.exitedAt = Date.now();
      p.exitCode = code;
      live.delete(proc);
      ok();
    }),
  );
  return p;
}

/** ffmpeg decoding audio and video to nothing, printing each frame's pts. */
export function startFfmpeg(url: string): Player {
  const proc = spawn(
    'ffmpeg',
    [
      '-hide_banner',
      '-nostdin',
      '-nostats',
      '-loglevel',
      'level+info',
      '-copyts',
      '-i',
      url,
      '-map',
      '0:v:0',
      '-map',
      '0:a:0',
      '-vf',
      'showinfo',
      '-af',
      'ashowinfo',
      '-f',
      'null',
      '-',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const p = base('ffmpeg', proc);
  lines(proc.stderr!, (line, at) => {
    const m = /Parsed_(a?)showinfo.* pts_time:\s*(-?[\d.]+)/.exec(line);
    if (m) (m[1] ? p.audio : p.video).push({ at, v: Number(m[2]) });
    // The null muxer's own timestamp complaints (-copyts across a reset) are not a player's.
    else if (/\[(warning|error|fatal)\]/.test(line) && !line.startsWith('[null @')) p.problems.push(line);
  });
  return p;
}

/** mpv's lines that say nothing wrong about the stream: IPC, shutdown, and audio running dry
 *  while no data comes (every outage does that; the freeze is measured separately). */
const MPV_BENIGN = /\[(ipc|input)\]|Interrupted|Quitting|signal|Audio device underrun/i;

/** mpv playing in real time with null outputs; properties over IPC. */
export async function startMpv(url: string): Promise<Player> {
  const dir = mkdtempSync(join(tmpdir(), 'acemux-mpv-'));
  const sock = join(dir, 'ipc');
  const logFile = join(dir, 'mpv.log');
  // --no-terminal silences stdout/stderr: the log file is where mpv's warnings and errors go.
  const proc = spawn(
    'mpv',
    [
      '--no-config',
      '--vo=null',
      '--ao=null',
      '--no-terminal',
      `--log-file=${logFile}`,
      `--input-ipc-server=${sock}`,
      '--idle=no',
      '--keep-open=no',
      ...(process.env.MPV_EXTRA ? process.env.MPV_EXTRA.split(' ') : []),
      url,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const p = base('mpv', proc);
  for (const s of [proc.stdout!, proc.stderr!])
    lines(s, (line) => {
      if (line.trim()) p.problems.push(line);
    });
  const stop = p.stop;
  p.stop = async () => {
    await stop();
    if (p.log) return;
    p.log = existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n') : [];
    for (const line of p.log) if (/^\[\s*[\d.]+\]\[[ewf]\]/.test(line) && !MPV_BENIGN.test(line)) p.problems.push(line);
  };
  const deadline = Date.now() + 10_000;
  while (!existsSync(sock)) {
    if (Date.now() > deadline || p.exitedAt) throw new Error('mpv did not open its IPC socket');
    await new Promise((r) => setTimeout(r, 50));
  }
  const ipc: Socket = connect(sock);
  ipc.on('error', () => {});
  const props = ['time-pos', 'avsync', 'paused-for-cache'];
  ipc.write(props.map((name, i) => JSON.stringify({ command: ['observe_property', i + 1, name] }) + '\n').join(''));
  lines(ipc, (line, at) => {
    let m: { event?: string; name?: string; data?: unknown };
    try {
      m = JSON.parse(line);
    } catch {
      return;
    }
    if (m.event !== 'property-change') return;
    if (m.name === 'time-pos' && typeof m.data === 'number') p.video.push({ at, v: m.data });
    else if (m.name === 'avsync' && typeof m.data === 'number') p.avsync.push({ at, v: m.data });
    else if (m.name === 'paused-for-cache' && typeof m.data === 'boolean') p.cache.push({ at, v: m.data ? 1 : 0 });
  });
  return p;
}

/** Longest wall-clock gap between consecutive samples that lie in [from, to] (ms). */
export function longestGap(s: Sample[], from: number, to: number): number {
  let gap = 0;
  let prev = -1;
  for (const x of s) {
    if (x.at < from) {
      prev = x.at;
      continue;
    }
    if (x.at > to) break;
    if (prev >= 0) gap = Math.max(gap, x.at - prev);
    prev = x.at;
  }
  return gap;
}

/** Waits until `s` has a sample after `after` (ms since epoch), or the timeout. */
export async function until(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}
