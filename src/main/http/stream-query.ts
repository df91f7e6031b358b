/**
 * A stream request's query, parsed once into its canonical form: the selector and the engine
 * parameters that are part of the stream's identity.
 *
 *  Q1 Only parameters that change what the engine sends reach the engine and the stream key
 *     (ENGINE_PARAMS: the audio transcoding switches and the preferred audio language). Every
 *     other parameter is dropped, neither sent nor keyed: players and media servers add their own
 *     (cache busters, `hlc`, ...), and each new spelling must not open another engine session.
 *  Q2 Values are validated and written canonically (`transcode_audio=0` is the same as leaving it
 *     out, languages are lower case), so two spellings of one request share a key; the query is
 *     decoded exactly once (by URLSearchParams) and the key re-encodes it (supervisor streamKey),
 *     so `a=1%26b%3D2` can never read as `a=1&b=2`.
 *  Q3 Each parameter at most once; `pid`/`sid` are refused (acemux owns engine player ids: a
 *     client's pid would let two players steal one engine session from each other); `token` and
 *     `format` are acemux's own and never passed on.
 */
import { HEX40 } from '../../shared/engine-api';
import type { Selector } from '../supervision/supervisor';

const SELECTORS = ['id', 'infohash', 'content_id'] as const;
const OWNED = new Set(['format', 'token']);

const flag =
  (name: string) =>
  (v: string): string | null => {
    const t = v.trim().toLowerCase();
    if (t === '1' || t === 'true') return '1';
    if (t === '0' || t === 'false' || t === '') return null;
    throw new Error(`${name} must be 0 or 1`);
  };

/** Q1. Name → canonical value (null: same as absent), or a throw with what is wrong. */
export const ENGINE_PARAMS: ReadonlyMap<string, (v: string) => string | null> = new Map([
  ['transcode_audio', flag('transcode_audio')],
  ['transcode_mp3', flag('transcode_mp3')],
  ['transcode_ac3', flag('transcode_ac3')],
  [
    'preferred_audio_language',
    (v: string) => {
      const t = v.trim().toLowerCase();
      if (t === '') return null;
      if (!/^[a-z]{2,3}(-[a-z0-9]{1,8})?$/.test(t))
        throw new Error('preferred_audio_language must be a language code such as eng or pt-br');
      return t;
    },
  ],
]);

export type Parsed<S> = { sel: S; extra: Array<[string, string]> } | { error: string };

/**
 * Exactly one selector, 40 hex (none for a channel: its ids come from the channels file); the
 * engine parameters, canonical and sorted by name; everything else dropped (Q1–Q3).
 */
export function parseStreamQuery(q: URLSearchParams, channel: false): Parsed<Selector>;
export function parseStreamQuery(q: URLSearchParams, channel: true): Parsed<null>;
export function parseStreamQuery(q: URLSearchParams, channel: boolean): Parsed<Selector | null> {
  const seen = new Set<string>();
  let sel: Selector | null = null;
  const extra: Array<[string, string]> = [];
  for (const [k, v] of q) {
    if (seen.has(k)) return { error: `parameter "${k.slice(0, 64)}" given more than once` };
    seen.add(k);
    if ((SELECTORS as readonly string[]).includes(k)) {
      if (channel) return { error: `a channel plays the ids of the channels file; remove "${k}"` };
      if (sel) return { error: 'give exactly one of id or infohash' };
      if (!HEX40.test(v)) return { error: `${k} must be 40 hexadecimal characters` };
      sel = { name: k === 'infohash' ? 'infohash' : 'id', value: v };
    } else if (k === 'pid' || k === 'sid') {
      return { error: `"${k}" is set by acemux, which owns engine player ids; remove it` };
    } else if (!OWNED.has(k)) {
      const canonical = ENGINE_PARAMS.get(k);
      if (!canonical) continue; // Q1: not the engine's business, not part of the key
      try {
        const value = canonical(v);
        if (value !== null) extra.push([k, value]);
      } catch (e) {
        return { error: (e as Error).message };
      }
    }
  }
  if (!sel && !channel) return { error: 'missing id or infohash (40 hexadecimal characters)' };
  extra.sort((a, b) => (a[0] < b[0] ? -1 : 1));
  return { sel, extra };
}
