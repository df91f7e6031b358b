/**
 * Pure helpers for the engine's JSON shapes (docs/ENGINE-API.md): the {response, error}
 * envelope every middleware call answers with, and stat_url figures. No I/O here.
 */
import type { EngineStat } from './messages';

export interface Envelope {
  response: unknown;
  error: string | null;
}

/** Engines answer errors as HTTP 200 with `error` set; anything else malformed is an error too. */
export function parseEnvelope(body: unknown): Envelope {
  if (typeof body !== 'object' || body === null) return { response: null, error: 'engine answered a non-object' };
  const b = body as Record<string, unknown>;
  const error = b.error === null || b.error === undefined ? null : String(b.error);
  return { response: b.response ?? null, error };
}

const num = (v: unknown): number => {
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : 0;
};

/** stat_url's response; `{}` right after start is "no figures yet" (null). */
export function parseStat(response: unknown): EngineStat | null {
  if (typeof response !== 'object' || response === null) return null;
  const r = response as Record<string, unknown>;
  if (typeof r.status !== 'string') return null;
  return { status: r.status.slice(0, 32), peers: num(r.peers), speedDown: num(r.speed_down), downloaded: num(r.downloaded) };
}

/** Content ids and infohashes are both 40 hex characters. */
export const HEX40 = /^[0-9a-fA-F]{40}$/;

/**
 * Text from outside (an engine's error string, a playlist's body) is never carried further than
 * MAX_FOREIGN_TEXT characters, so one hostile answer cannot grow a reply, a log line, /ace/status
 * or a journal record. Both threads cut with this.
 */
export const MAX_FOREIGN_TEXT = 512;

/** Cuts text that came from outside to MAX_FOREIGN_TEXT, saying how much was dropped. */
export function foreignText(text: string, max = MAX_FOREIGN_TEXT): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length - max} more characters)`;
}
