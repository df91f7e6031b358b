/**
 * M3U playlists as IPTV lists write them, and the AceStream links inside them. No I/O here.
 *
 *   #EXTM3U url-tvg="…"
 *   #EXTINF:-1 tvg-id="sky.uk" tvg-name="Sky, HD" group-title="Sport",Sky Sports, Main Event
 *   #EXTVLCOPT:http-user-agent=…
 *   acestream://<40 hex>
 *
 * Invariants:
 * - An entry is one URL line; the #EXTINF before it (if any) names it, and every other # line
 *   since the previous entry rides along in `extra`, in order. An #EXTINF with no URL after it
 *   (the next line is another #EXTINF, or the file ends) is dropped with its extras.
 * - Attribute names are lowercased (lists write tvg-ID and tvg-id alike); values are kept as
 *   written. The first of two same-named attributes wins.
 * - The display name is everything after the first comma that is outside quotes, trimmed, so
 *   names may contain commas and quoted values may contain commas and spaces.
 * - contentIdOf lowercases the hex: ids are compared, deduplicated and rewritten in one spelling.
 */
import { HEX40 } from '../../shared/engine-api';

export interface M3uEntry {
  name: string;
  attrs: Record<string, string>;
  url: string;
  /** The raw #EXTINF line, '' when the URL had none. */
  extinf: string;
  /** Other # lines between the previous entry and this URL (#EXTVLCOPT, #EXTGRP, comments). */
  extra: string[];
  /** 1-based line of the URL, for messages. */
  line: number;
}

export interface Playlist {
  /** The raw #EXTM3U line, '' when the file had none. */
  header: string;
  headerAttrs: Record<string, string>;
  entries: M3uEntry[];
}

export interface ContentId {
  /** The engine's parameter: `id` is a content id, `infohash` a torrent infohash. */
  name: 'id' | 'infohash';
  value: string;
}

/** Splits on any line ending and drops a leading BOM. */
export function splitLines(text: string): string[] {
  return (text.charCodeAt(0) === 0xfeff ? text.slice(1) : text).split(/\r\n|\r|\n/);
}

const ATTR_NAME = /([A-Za-z0-9_.:-]+)=/y;

/** Reads `key="v" key='v' key=v` pairs from s at i; stops at a comma outside quotes, or junk. */
function scanAttrs(s: string, i: number, attrs: Record<string, string>): number {
  for (;;) {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
    ATTR_NAME.lastIndex = i;
    const m = ATTR_NAME.exec(s);
    if (!m) return i;
    const key = m[1]!.toLowerCase();
    i = ATTR_NAME.lastIndex;
    let value: string;
    const q = s[i];
    const close = q === '"' || q === "'" ? s.indexOf(q, i + 1) : -1;
    if (close >= 0) {
      value = s.slice(i + 1, close);
      i = close + 1;
    } else {
      // Unquoted, or a quote never closed: up to whitespace or the comma, so the name survives.
      let j = i;
      while (j < s.length && s[j] !== ' ' && s[j] !== '\t' && s[j] !== ',') j++;
      value = s.slice(q === '"' || q === "'" ? i + 1 : i, j);
      i = j;
    }
    if (!(key in attrs)) attrs[key] = value;
  }
}

/** `#EXTINF:<duration> <attrs>,<name>` → its parts; duration is NaN when missing or junk. */
export function parseExtinf(line: string): { duration: number; attrs: Record<string, string>; name: string } {
  const s = line.slice(line.indexOf(':') + 1);
  const d = /^\s*([-+]?\d+(?:\.\d+)?)/.exec(s);
  const attrs: Record<string, string> = {};
  const i = scanAttrs(s, d ? d[0].length : 0, attrs);
  // Not at a comma: junk between the attributes and the name; the name still follows a comma.
  const comma = s[i] === ',' ? i : s.indexOf(',', i);
  const name = comma >= 0 ? s.slice(comma + 1) : Object.keys(attrs).length ? '' : s.slice(i);
  return { duration: d ? Number(d[1]) : NaN, attrs, name: name.trim() };
}

export function parsePlaylist(text: string): Playlist {
  const lines = splitLines(text);
  let header = '';
  const headerAttrs: Record<string, string> = {};
  const entries: M3uEntry[] = [];
  let extinf = '';
  let extra: string[] = [];
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]!.trim();
    if (line === '') continue;
    if (/^#EXTM3U\b/i.test(line)) {
      // A second header (concatenated lists) is ignored; the first one's attributes stand.
      if (!header) {
        header = line;
        scanAttrs(line, 7, headerAttrs);
      }
      continue;
    }
    if (/^#EXTINF:/i.test(line)) {
      extinf = line;
      extra = [];
      continue;
    }
    if (line.startsWith('#')) {
      extra.push(line);
      continue;
    }
    const info = extinf ? parseExtinf(extinf) : { attrs: {}, name: '' };
    entries.push({ name: info.name, attrs: info.attrs, url: line, extinf, extra, line: n + 1 });
    extinf = '';
    extra = [];
  }
  return { header, headerAttrs, entries };
}

export function parseM3u(text: string): M3uEntry[] {
  return parsePlaylist(text).entries;
}

/** Query parameter names engines and players use, in the order they are looked for. */
const PARAMS: ReadonlyArray<[string, ContentId['name']]> = [
  ['id', 'id'],
  ['content_id', 'id'],
  ['infohash', 'infohash'],
];

function fromQuery(q: URLSearchParams): ContentId | null {
  for (const [param, name] of PARAMS) {
    const v = q.get(param);
    if (v !== null) return HEX40.test(v) ? { name, value: v.toLowerCase() } : null;
  }
  return null;
}

/**
 * The AceStream content a link names, or null:
 *   acestream://<hex>            acestream://?infohash=<hex>   acestream://?content_id=<hex>
 *   http(s)://host[:port]/ace/getstream?id=<hex>   (also content_id=, infohash=; /ace/manifest.m3u8)
 */
export function contentIdOf(url: string): ContentId | null {
  const s = url.trim();
  const ace = /^acestream:\/\/(?:([0-9a-f]{40})\/?|\/?\?(.*))$/i.exec(s);
  if (ace) return ace[1] ? { name: 'id', value: ace[1].toLowerCase() } : fromQuery(new URLSearchParams(ace[2]));
  if (!/^https?:\/\//i.test(s)) return null;
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return null;
  }
  if (!/^\/ace\/(?:getstream|manifest\.m3u8)\/?$/i.test(u.pathname)) return null;
  return fromQuery(u.searchParams);
}
