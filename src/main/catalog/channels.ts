/**
 * The channels file (ACEMUX_CHANNELS): named channels, each with one or more AceStream ids that
 * are alternates for the same programme, tried in order. Two formats:
 *
 *   M3U   entries sharing a tvg-id (or, without one, a display name) are one channel; entries
 *         whose URL is not an AceStream link are skipped with a warning.
 *   JSON  {"channels":[{"name":"Sky","ids":["<hex>",{"infohash":"<hex>"}],"tvg_id":…,"logo":…,"group":…}]}
 *         or the bare array, or a map {"Sky":["<hex>",…]}.
 *
 * Invariants:
 * - Channels are keyed by slug (lowercase letters and digits, runs of anything else → '-'); two
 *   channels with one slug are one channel, ids appended in order. The first name, tvg-id, logo
 *   and group stand; later ones only fill gaps.
 * - Ids are lowercase, deduplicated per channel by (kind, hex), in file order.
 * - JSON is strict (a bad id is an error: the file is written by hand, a typo should stop the
 *   start), M3U is lenient (it is usually downloaded: skip and warn). Nothing at all is an error.
 */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { parseM3u, contentIdOf, type ContentId } from './m3u';
import { HEX40 } from '../../shared/engine-api';
import { ChannelsError } from '../errors';

export interface Channel {
  name: string;
  slug: string;
  ids: ContentId[];
  tvgId?: string;
  logo?: string;
  group?: string;
}

export type ChannelMap = Map<string, Channel>;
export type ChannelsFormat = 'm3u' | 'json';

export interface ChannelsResult {
  channels: ChannelMap;
  warnings: string[];
}

/**
 * Latin diacritics are dropped so "España" is "espana"; letters of other scripts are kept whole
 * (Cyrillic names would otherwise slug to nothing, and "й" is not "и") and reach the server
 * percent-encoded.
 */
export function slugOf(name: string): string {
  return name
    .normalize('NFKD')
    .replace(/(\p{Script=Latin})\p{M}+/gu, '$1')
    .normalize('NFC')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, '-')
    .replace(/^-+|-+$/g, '');
}

/** .m3u/.m3u8 and .json by name; otherwise JSON if it opens with { or [, else M3U. */
export function formatOf(path: string, text: string): ChannelsFormat {
  const ext = extname(path).toLowerCase();
  if (ext === '.m3u' || ext === '.m3u8') return 'm3u';
  if (ext === '.json') return 'json';
  return /^\uFEFF?\s*[{[]/.test(text) ? 'json' : 'm3u';
}

export async function loadChannels(path: string): Promise<ChannelsResult> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new ChannelsError(`channels file ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return parseChannels(text, formatOf(path, text));
}

export function parseChannels(text: string, format: ChannelsFormat): ChannelsResult {
  const out: ChannelsResult = { channels: new Map(), warnings: [] };
  if (format === 'm3u') fromM3u(text, out);
  else fromJson(text, out);
  if (out.channels.size === 0) {
    throw new ChannelsError(
      `channels file has no channels${out.warnings.length ? ` (${out.warnings.length} entries skipped: ${out.warnings[0]}${out.warnings.length > 1 ? ', …' : ''})` : ''}`,
    );
  }
  return out;
}

/** Adds a channel under its slug, merging with one already there. */
function add(map: ChannelMap, c: Omit<Channel, 'slug'>, slug: string): void {
  let ch = map.get(slug);
  if (!ch) {
    ch = { name: c.name, slug, ids: [] };
    map.set(slug, ch);
  }
  for (const id of c.ids) {
    if (!ch.ids.some((x) => x.name === id.name && x.value === id.value)) ch.ids.push(id);
  }
  if (!ch.tvgId && c.tvgId) ch.tvgId = c.tvgId;
  if (!ch.logo && c.logo) ch.logo = c.logo;
  if (!ch.group && c.group) ch.group = c.group;
}

function fromM3u(text: string, out: ChannelsResult): void {
  // Group first (by tvg-id, else name), then slug the group's first name: alternates listed as
  // "Sky HD" and "Sky SD" under one tvg-id are one channel called "Sky HD".
  const groups = new Map<string, Omit<Channel, 'slug'>>();
  for (const e of parseM3u(text)) {
    const id = contentIdOf(e.url);
    if (!id) {
      out.warnings.push(`channels file line ${e.line}: not an AceStream link, skipped`);
      continue;
    }
    const tvgId = e.attrs['tvg-id']?.trim() ?? '';
    const name = e.name || e.attrs['tvg-name']?.trim() || tvgId;
    if (!slugOf(name)) {
      out.warnings.push(`channels file line ${e.line}: no channel name, skipped`);
      continue;
    }
    const key = tvgId ? `tvg:${tvgId}` : `name:${name}`;
    const g = groups.get(key);
    if (g) {
      g.ids.push(id);
      continue;
    }
    groups.set(key, { name, ids: [id], tvgId, logo: e.attrs['tvg-logo']?.trim(), group: e.attrs['group-title']?.trim() });
  }
  for (const g of groups.values()) add(out.channels, g, slugOf(g.name));
}

/**
 * Where JSON.parse gave up, as a line number. Node 20's messages do not always carry a position
 * ("Unexpected token ']'"), so a small scanner finds the first offset that is not JSON.
 */
function jsonErrorLine(s: string): number {
  let i = 0;
  const fail = (): never => {
    throw i;
  };
  const ws = () => {
    while (i < s.length && ' \t\r\n'.includes(s[i]!)) i++;
  };
  const str = () => {
    for (i++; ; i++) {
      if (i >= s.length || s[i]! < ' ') fail();
      if (s[i] === '\\') i++;
      else if (s[i] === '"') {
        i++;
        return;
      }
    }
  };
  const list = (close: string, item: () => void) => {
    i++;
    ws();
    if (s[i] === close) {
      i++;
      return;
    }
    for (;;) {
      item();
      ws();
      if (s[i] === close) {
        i++;
        return;
      }
      if (s[i] !== ',') fail();
      i++;
    }
  };
  const ATOM = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null/y;
  const value = (): void => {
    ws();
    if (s[i] === '{')
      return list('}', () => {
        ws();
        if (s[i] !== '"') fail();
        str();
        ws();
        if (s[i] !== ':') fail();
        i++;
        value();
      });
    if (s[i] === '[') return list(']', value);
    if (s[i] === '"') return str();
    ATOM.lastIndex = i;
    if (!ATOM.exec(s)) fail();
    i = ATOM.lastIndex;
  };
  // A throw (ours, or a stack overflow on absurd nesting) leaves i where the scan stopped.
  try {
    value();
    ws();
    if (i < s.length) fail();
  } catch {
    /* i is the answer */
  }
  return s.slice(0, Math.min(i, s.length)).split('\n').length;
}

function fromJson(text: string, out: ChannelsResult): void {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch (e) {
    throw new ChannelsError(`channels file line ${jsonErrorLine(body)}: not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  let list: unknown[];
  if (Array.isArray(doc)) list = doc;
  else if (isObj(doc) && Array.isArray(doc.channels) && (doc.channels.length === 0 || doc.channels.some(isObj))) list = doc.channels;
  else if (isObj(doc)) {
    // The map form: a name per key, its ids (or one id) as the value.
    list = Object.entries(doc).map(([name, ids]) => ({ name, ids: Array.isArray(ids) ? ids : [ids] }));
  } else {
    throw new ChannelsError('channels file: expected {"channels":[…]}, an array of channels or an object of name → ids');
  }
  list.forEach((item, i) => {
    if (!isObj(item)) throw new ChannelsError(`channels file: channel ${i + 1} is not an object`);
    const name = typeof item.name === 'string' ? item.name.trim() : '';
    if (!name) throw new ChannelsError(`channels file: channel ${i + 1} has no name`);
    const where = `channel "${name}"`;
    const slug = slugOf(name);
    if (!slug) throw new ChannelsError(`${where}: the name has no letters or digits to make a URL from`);
    if (!Array.isArray(item.ids) || item.ids.length === 0) throw new ChannelsError(`${where}: "ids" must be a non-empty array`);
    const ids = item.ids.map((v, k) => idOf(v, `${where}: id ${k + 1}`));
    const str = (key: string, ...alts: string[]): string | undefined => {
      for (const k of [key, ...alts]) {
        const v = item[k];
        if (v === undefined || v === null) continue;
        if (typeof v !== 'string') throw new ChannelsError(`${where}: "${k}" must be a string`);
        return v.trim() || undefined;
      }
      return undefined;
    };
    add(out.channels, { name, ids, tvgId: str('tvg_id', 'tvgId', 'tvg-id'), logo: str('logo'), group: str('group') }, slug);
  });
}

/** "<hex>", an AceStream link, or {"id"|"content_id"|"infohash": "<hex>"}. */
function idOf(v: unknown, where: string): ContentId {
  if (typeof v === 'string') {
    if (HEX40.test(v.trim())) return { name: 'id', value: v.trim().toLowerCase() };
    const link = contentIdOf(v);
    if (link) return link;
    throw new ChannelsError(`${where} is not 40 hex characters (nor an AceStream link): "${v.slice(0, 60)}"`);
  }
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o);
    const key = keys.length === 1 ? keys[0]! : '';
    const name = key === 'infohash' ? 'infohash' : key === 'id' || key === 'content_id' ? 'id' : null;
    if (!name) throw new ChannelsError(`${where} must be a string or an object with one key: id, content_id or infohash`);
    const hex = o[key];
    if (typeof hex !== 'string' || !HEX40.test(hex.trim())) throw new ChannelsError(`${where} (${key}) is not 40 hex characters`);
    return { name, value: hex.trim().toLowerCase() };
  }
  throw new ChannelsError(`${where} must be a string or an object with one key: id, content_id or infohash`);
}
