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
 * - With a channels file, a link whose id a channel lists becomes that channel's link, and with no
 *   source playlist the channels file itself is the playlist.
 * - The base written into links is either the operator's ACEMUX_PUBLIC_URL or a Host header that
 *   is nothing but host[:port]; anything else in Host could inject text into the playlist.
 */
import { readFile, stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Agent, interceptors, request, type Dispatcher } from 'undici';
import { contentIdOf, splitLines, type ContentId } from './m3u';
import type { Channel } from './channels';
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
    const discard = () => {
      res.body.on('error', () => {});
      res.body.destroy();
    };
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

/** A channel's link on this proxy: /ace/channel/<slug>, so a player gets its alternates and failover. */
function channelLink(root: string, slug: string, token: string | undefined, hls = false): string {
  return `${root}/ace/channel/${encodeURIComponent(slug)}${hls ? '.m3u8' : ''}${token ? `?token=${encodeURIComponent(token)}` : ''}`;
}

/** Maps a content id to the slug of the channel (from the channels file) that lists it. */
export function channelIndex(channels: Iterable<Channel>): (id: ContentId) => string | undefined {
  const bySelector = new Map<string, string>();
  for (const ch of channels)
    for (const id of ch.ids) if (!bySelector.has(`${id.name}=${id.value}`)) bySelector.set(`${id.name}=${id.value}`, ch.slug);
  return (id) => bySelector.get(`${id.name}=${id.value}`);
}

/**
 * Points every AceStream link at this proxy, leaving all else as it was: at the channel's
 * /ace/channel/<slug> when `channelOf` knows the id (every alternate entry of a channel then plays
 * the channel, with failover), else at /ace/getstream. With `hls`, at the same streams' HLS
 * playlists instead: /ace/channel/<slug>.m3u8 and /ace/manifest.m3u8.
 */
export function rewritePlaylist(
  text: string,
  base: string,
  opts: { token?: string; channelOf?: (id: ContentId) => string | undefined; hls?: boolean } = {},
): string {
  const root = base.replace(/\/+$/, '');
  const token = opts.token ? `&token=${encodeURIComponent(opts.token)}` : '';
  const lines = splitLines(text);
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  while (lines.length > 0 && lines[0]!.trim() === '') lines.shift();
  const out = lines.map((line) => {
    if (line.trimStart().startsWith('#')) return line;
    const id = contentIdOf(line);
    if (!id) return line;
    const slug = opts.channelOf?.(id);
    return slug !== undefined
      ? channelLink(root, slug, opts.token, opts.hls)
      : `${root}/ace/${opts.hls ? 'manifest.m3u8' : 'getstream'}?${id.name}=${id.value}${token}`;
  });
  if (!/^#EXTM3U\b/i.test(out[0]?.trim() ?? '')) out.unshift('#EXTM3U');
  return out.join('\n') + '\n';
}

/** Attribute values and names go between quotes and before a line end: neither may end them early. */
const attr = (v: string) => v.replace(/["\r\n]+/g, ' ').trim();

/** With a channels file and no source playlist: one entry per channel, in file order. */
export function channelsPlaylist(channels: Iterable<Channel>, base: string, opts: { token?: string; hls?: boolean } = {}): string {
  const root = base.replace(/\/+$/, '');
  const out = ['#EXTM3U'];
  for (const ch of channels) {
    const attrs = [
      ['tvg-id', ch.tvgId],
      ['tvg-logo', ch.logo],
      ['group-title', ch.group],
    ]
      .filter(([, v]) => v)
      .map(([k, v]) => ` ${k}="${attr(v!)}"`)
      .join('');
    out.push(`#EXTINF:-1${attrs},${ch.name.replace(/[\r\n]+/g, ' ').trim()}`, channelLink(root, ch.slug, opts.token, opts.hls));
  }
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
