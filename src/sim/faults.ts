// Fault injection for the engine simulator.
//
// Invariants:
// - Faults are data only: the simulator snapshots the effective Fault for a content at the moment a
//   request arrives (getstream, playback connection, stat, command), so changing faults never alters a
//   request already in progress, and per-connection faults (stall, drop) fire at most once per
//   playback connection.
// - A per-content entry overrides the global entry field by field; setting merges, it never replaces.

export interface Fault {
  /** Answer getstream with this error (JSON envelope, or 500 in redirect mode). */
  getstreamError?: string;
  /** Delay before answering getstreamError (ms, default 0). */
  errorDelayMs?: number;
  /** Never answer getstream at all. */
  getstreamHang?: boolean;
  /** Delay every getstream answer (ms). */
  getstreamDelayMs?: number;
  /** Answer playback with this HTTP status and a short text body. */
  playbackStatus?: number;
  /** Accept playback, never send response headers (an offline channel). */
  hangBeforeHeaders?: boolean;
  /** Hold playback headers this long (ms), then burst and pace. */
  slowStartMs?: number;
  /** Stop sending after N body bytes; the socket stays open. */
  stallAfterBytes?: number;
  /** With stallAfterBytes: the session resumes this long after the stall began (its stalled
   *  connection carries on where it stopped; a newer connection waits until then). */
  stallForMs?: number;
  /** Close the playback socket after N body bytes. */
  dropAfterBytes?: number;
  /** Answer stat_url with this error. */
  statError?: string;
  /** Never answer command_url. */
  cmdHang?: boolean;
  // A hostile engine (test/hostile/): answers with no end, of any size, or with bad content.
  /** Answer getstream / stat / get_version (global only) / command with a body that never ends. */
  getstreamEndless?: boolean;
  statEndless?: boolean;
  versionEndless?: boolean;
  cmdEndless?: boolean;
  /** Pad a valid getstream answer to this many bytes (it opens no session). */
  getstreamPadBytes?: number;
  /** Repeat getstreamError / statError up to this many characters. */
  errorBytes?: number;
  /** Answer getstream with these URLs verbatim (e.g. file:///etc/passwd, data:,x). */
  playbackUrl?: string;
  statUrl?: string;
  commandUrl?: string;
  /** Pace playback at this many bytes per second (1 = a trickle), whatever the bitrate. */
  dripBps?: number;
  /** Playback body: random bytes instead of TS, at the same rate. */
  junk?: boolean;
  /** Replace every PAT with a null packet after this many body bytes (0 = TS without a PAT). */
  dropPatAfterBytes?: number;
  /** Replace every packet with a null packet after this many body bytes. */
  nullsAfterBytes?: number;
  /** Replace every packet that starts a PMT section with a null packet after this many body bytes. */
  dropPmtAfterBytes?: number;
}

export interface FaultSet {
  global?: Fault;
  /** Keyed by the 40-hex content id or infohash, lower case. */
  ids?: Record<string, Fault>;
}

const numberFields = [
  'errorDelayMs',
  'getstreamDelayMs',
  'playbackStatus',
  'slowStartMs',
  'stallAfterBytes',
  'stallForMs',
  'dropAfterBytes',
  'getstreamPadBytes',
  'errorBytes',
  'dripBps',
  'dropPatAfterBytes',
  'nullsAfterBytes',
  'dropPmtAfterBytes',
] as const;
const boolFields = [
  'getstreamHang',
  'hangBeforeHeaders',
  'cmdHang',
  'getstreamEndless',
  'statEndless',
  'versionEndless',
  'cmdEndless',
  'junk',
] as const;
const stringFields = ['getstreamError', 'statError', 'playbackUrl', 'statUrl', 'commandUrl'] as const;

/** Validates one fault object from untrusted JSON; unknown or mistyped fields throw. */
export function parseFault(raw: unknown): Fault {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new Error('fault must be an object');
  const out: Fault = {};
  for (const [k, v] of Object.entries(raw)) {
    if ((numberFields as readonly string[]).includes(k)) {
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new Error(`${k} must be a number >= 0`);
      (out as Record<string, unknown>)[k] = v;
    } else if ((boolFields as readonly string[]).includes(k)) {
      if (typeof v !== 'boolean') throw new Error(`${k} must be a boolean`);
      (out as Record<string, unknown>)[k] = v;
    } else if ((stringFields as readonly string[]).includes(k)) {
      if (typeof v !== 'string') throw new Error(`${k} must be a string`);
      (out as Record<string, unknown>)[k] = v;
    } else {
      throw new Error(`unknown fault field ${k}`);
    }
  }
  return out;
}

/** Validates a {global, ids} body from untrusted JSON. */
export function parseFaultSet(raw: unknown): FaultSet {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new Error('faults must be an object');
  const { global, ids, ...rest } = raw as Record<string, unknown>;
  if (Object.keys(rest).length) throw new Error(`unknown key ${Object.keys(rest)[0]}`);
  const out: FaultSet = {};
  if (global !== undefined) out.global = parseFault(global);
  if (ids !== undefined) {
    if (ids === null || typeof ids !== 'object' || Array.isArray(ids)) throw new Error('ids must be an object');
    out.ids = {};
    for (const [id, f] of Object.entries(ids)) out.ids[id.toLowerCase()] = parseFault(f);
  }
  return out;
}

/** Merges `add` into `base` (field by field), returning a new set. */
export function mergeFaultSets(base: FaultSet, add: FaultSet): FaultSet {
  const ids: Record<string, Fault> = { ...base.ids };
  for (const [id, f] of Object.entries(add.ids ?? {})) ids[id] = { ...ids[id], ...f };
  return { global: { ...base.global, ...add.global }, ids };
}

/** The effective fault for a content, looked up by any of its keys (content id, infohash). */
export function faultFor(set: FaultSet, keys: readonly string[]): Fault {
  let f: Fault = { ...set.global };
  for (const k of keys) {
    const own = set.ids?.[k.toLowerCase()];
    if (own) f = { ...f, ...own };
  }
  return f;
}
