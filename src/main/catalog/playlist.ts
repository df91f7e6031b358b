/**
 * /playlist.m3u: a source playlist (file or URL) with every AceStream link pointed at this proxy,
 * so a player given one URL plays every channel through acemux.
 *
 * Invariants:
 * - Only URL lines that contentIdOf recognises change; every other line (the #EXTM3U header and
 *   its attributes, #EXTINF with all attributes, #EXTVLCOPT, plain http links, blank lines) is
 *   kept byte for byte. Output lines end in \n and the first line is #EXTM3U.
 * - A source is bounded in time (timeoutMs for the whole fetch) and size (8 MiB): it is fetched
 *   while a player waits, and a runaway one must not hold the request or the heap.
 * - The base written into links is either the operator's ACEMUX_PUBLIC_URL or a Host header that
 *   is nothing but host[:port]; anything else in Host could inject text into the playlist.
 */
import { readFile, stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Agent, interceptors, request, type Dispatcher } from 'undici';
import { contentIdOf, splitLines } from './m3u';
import { isTimeout } from '../engine/engine-client';
import { PlaylistError } from '../errors';

export const MAX_SOURCE_BYTES = 8 << 20;

// Playlist URLs are often shortened or hosted behind redirects (raw file hosts, pastebins).
let dispatcher: Dispatcher | undefined;
const redirecting = (): Dispatcher => (dispatcher ??= new Agent().compose(interceptors.redirect({ maxRedirections: 5 })));

/** The playlist text from a file path, a file: URL or an http(s) URL. */
export async function loadSource(source: string, timeoutMs: number): Promise<string> {
  if (/^https?:\/\//i.test(source)) return fetchSource(source, timeoutMs);
  const path = /^file:/i.test(source) ? fileURLToPath(source) : source;
  try {
    const st = await stat(path);
    if (st.size > MAX_SOURCE_BYTES) throw new PlaylistError(`playlist ${path} is larger than ${MAX_SOURCE_BYTES} bytes`);
    return await readFile(path, 'utf8');
  } catch (e) {
    if (e instanceof PlaylistError) throw e;
    throw new PlaylistError(`playlist ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

async function fetchSource(url: string, timeoutMs: number): Promise<string> {
  const where = redact(url);
  try {
    const res = await request(url, {
      method: 'GET',
      dispatcher: redirecting(),
      headers: { accept: 'audio/x-mpegurl, application/vnd.apple.mpegurl, text/plain, */*', 'accept-encoding': 'identity' },
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal: AbortSignal.timeout(timeoutMs),
    });
    // Destroying an undici body unread makes it emit an abort error: swallow that one.
    const discard = () => { res.body.on('error', () => {}); res.body.destroy(); };
    if (res.statusCode !== 200) {
      discard();
      throw new PlaylistError(`playlist ${where} answered HTTP ${res.statusCode}`);
    }
    const declared = Number(res.headers['content-length']);
    if (declared > MAX_SOURCE_BYTES) {
      discard();
      throw new PlaylistError(`playlist ${where} is larger than ${MAX_SOURCE_BYTES} bytes (${declared})`);
    }
    // Content-Length may be absent or wrong (chunked): count what actually arrives.
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length;
      if (size > MAX_SOURCE_BYTES) {
        discard();
        throw new PlaylistError(`playlist ${where} is larger than ${MAX_SOURCE_BYTES} bytes`);
      }
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks, size).toString('utf8');
  } catch (e) {
    if (e instanceof PlaylistError) throw e;
    const err = e as { code?: string; message?: string };
    if (isTimeout(e)) {
      throw new PlaylistError(`playlist ${where} did not arrive within ${timeoutMs} ms`);
    }
    throw new PlaylistError(`playlist ${where} could not be fetched (${err.code ?? err.message ?? 'error'})`);
  }
}

/** A URL for messages: credentials and query (which may hold tokens) left out. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(bad URL)';
  }
}

/** Points every AceStream link at `${base}/ace/getstream` (or, with `hls`, at the stream's HLS
 *  playlist `${base}/ace/manifest.m3u8`), leaving all else as it was. */
export function rewritePlaylist(text: string, base: string, opts: { token?: string; hls?: boolean } = {}): string {
  const root = base.replace(/\/+$/, '');
  const token = opts.token ? `&token=${encodeURIComponent(opts.token)}` : '';
  const lines = splitLines(text);
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  while (lines.length > 0 && lines[0]!.trim() === '') lines.shift();
  const out = lines.map((line) => {
    if (line.trimStart().startsWith('#')) return line;
    const id = contentIdOf(line);
    return id ? `${root}/ace/${opts.hls ? 'manifest.m3u8' : 'getstream'}?${id.name}=${id.value}${token}` : line;
  });
  if (!/^#EXTM3U\b/i.test(out[0]?.trim() ?? '')) out.unshift('#EXTM3U');
  return out.join('\n') + '\n';
}

const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,253})|\[[0-9A-Fa-f:.]{2,45}\])(?::(\d{1,5}))?$/;

/**
 * The origin players should use for links: ACEMUX_PUBLIC_URL if set, else http://<Host> when
 * Host is a plain host[:port], else the fallback (the listen address).
 */
export function publicBase(hostHeader: string | undefined, publicUrl: string | undefined, fallback: string): string {
  const pub = publicUrl?.trim();
  if (pub) return pub.replace(/\/+$/, '');
  const host = hostHeader?.trim() ?? '';
  const m = HOST.exec(host);
  if (m && (m[1] === undefined || (Number(m[1]) >= 1 && Number(m[1]) <= 65535))) return `http://${host}`;
  return fallback.replace(/\/+$/, '');
}
