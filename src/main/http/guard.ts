/**
 * Who is asking, and may they. Everything that looks at the client rather than at the request
 * lives here:
 *  G1 `clientAddress(req, trusted)` is the one place that says which address a request comes
 *     from, for every limit at once: the socket's peer, or behind a trusted proxy the address
 *     X-Forwarded-For names (ACEMUX_TRUSTED_PROXIES; client-address.ts, C1–C4).
 *  G2 The per-address viewer limit counts a viewer from before its join to its socket's close;
 *     every `take()` that returned true is matched by exactly one `release()`.
 *  G3 The API key is accepted from `Authorization: Bearer`, `X-API-Key`, `?key=` (EventSource
 *     cannot set headers) or the dashboard's session cookie (an HMAC of the key, so the cookie
 *     never holds the key itself and changing the key revokes it). An address that presented a
 *     wrong key FAILS_PER_WINDOW times in FAIL_WINDOW_MS is refused (429) before its key is even
 *     compared, so guessing costs a window per few tries. The table of failing addresses is
 *     bounded (MAX_TRACKED).
 *  G4 A state-changing call from another origin is refused whether or not a key is set: a web
 *     page can make a browser POST anywhere (CSRF), and browsers say where the page came from in
 *     Sec-Fetch-Site or Origin. Clients that are not browsers send neither and pass.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { forbidden, tooMany, unauthorized } from '../errors';
import { clientAddress as forwardedAddress, NO_TRUSTED_PROXIES, type TrustedProxies } from './client-address';

/** G1. IPv4-mapped IPv6 written as IPv4 so both spellings count as one. */
export function clientAddress(req: IncomingMessage, trusted: TrustedProxies = NO_TRUSTED_PROXIES): string {
  return forwardedAddress(req, trusted) || 'unknown';
}

/** G2. At most `max` viewers per address; max 0 = no limit (and nothing counted). */
export class AddressLimit {
  private readonly counts = new Map<string, number>();

  constructor(readonly max: number) {}

  take(addr: string): boolean {
    if (this.max <= 0) return true;
    const n = this.counts.get(addr) ?? 0;
    if (n >= this.max) return false;
    this.counts.set(addr, n + 1);
    return true;
  }

  release(addr: string): void {
    if (this.max <= 0) return;
    const n = this.counts.get(addr) ?? 0;
    if (n <= 1) this.counts.delete(addr);
    else this.counts.set(addr, n - 1);
  }

  count(addr: string): number {
    return this.counts.get(addr) ?? 0;
  }
}

export const FAIL_WINDOW_MS = 60_000;
export const FAILS_PER_WINDOW = 10;
const MAX_TRACKED = 10_000;
export const SESSION_COOKIE = 'acemux_session';

function same(given: string, want: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(want);
  return a.length === b.length && timingSafeEqual(a, b);
}

function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export type KeySource = 'open' | 'header' | 'query' | 'cookie';

/** G3. */
export class KeyGuard {
  private readonly fails = new Map<string, { n: number; since: number }>();
  /** The dashboard's cookie value; '' without a key. */
  readonly session: string;

  /** Whose X-Forwarded-For names the client whose failures are counted (G1). */
  trustedProxies: TrustedProxies = NO_TRUSTED_PROXIES;

  constructor(
    private readonly key: string,
    private readonly now = Date.now,
  ) {
    this.session = key ? createHmac('sha256', key).update('acemux dashboard session').digest('base64url') : '';
  }

  get enabled(): boolean {
    return this.key !== '';
  }

  /** Where the right key came from; throws 429 (throttled address) or 401 (none or wrong). */
  check(req: IncomingMessage, url: URL): KeySource {
    if (!this.key) return 'open';
    const addr = clientAddress(req, this.trustedProxies);
    const now = this.now();
    const f = this.fails.get(addr);
    if (f && now - f.since >= FAIL_WINDOW_MS) this.fails.delete(addr);
    else if (f && f.n >= FAILS_PER_WINDOW)
      throw tooMany('too many wrong API keys from this address', Math.max(1, Math.ceil((f.since + FAIL_WINDOW_MS - now) / 1000)));
    const auth = req.headers.authorization;
    const header = req.headers['x-api-key'];
    const given: Array<[KeySource, string | undefined, string]> = [
      ['header', auth?.startsWith('Bearer ') ? auth.slice(7).trim() : undefined, this.key],
      ['header', typeof header === 'string' ? header : undefined, this.key],
      ['query', url.searchParams.get('key') ?? undefined, this.key],
      ['cookie', cookie(req, SESSION_COOKIE), this.session],
    ];
    let presented = false;
    for (const [source, value, want] of given) {
      if (!value) continue;
      presented = true;
      if (same(value, want)) return source;
    }
    if (!presented) throw unauthorized('missing API key');
    this.failed(addr, now);
    throw unauthorized('wrong API key');
  }

  private failed(addr: string, now: number): void {
    const f = this.fails.get(addr);
    if (f) {
      f.n++;
      return;
    }
    if (this.fails.size >= MAX_TRACKED) {
      for (const [a, e] of this.fails) if (now - e.since >= FAIL_WINDOW_MS) this.fails.delete(a);
      // Still full: forget the oldest entry (Map order is insertion order).
      if (this.fails.size >= MAX_TRACKED) this.fails.delete(this.fails.keys().next().value!);
    }
    this.fails.set(addr, { n: 1, since: now });
  }

  /** The dashboard's Set-Cookie: HttpOnly (no script reads it), SameSite=Strict (no other site sends it). */
  sessionCookie(): string {
    return `${SESSION_COOKIE}=${this.session}; Path=/; HttpOnly; SameSite=Strict`;
  }
}

/** G4. Throws 403 when a browser says the call comes from a page of another origin. */
export function refuseCrossOrigin(req: IncomingMessage): void {
  const site = req.headers['sec-fetch-site'];
  if (typeof site === 'string' && site !== 'same-origin' && site !== 'none')
    throw forbidden(`cross-origin request refused (Sec-Fetch-Site: ${site.slice(0, 32)})`);
  const origin = req.headers.origin;
  if (origin === undefined) return;
  let host: string | null = null;
  try {
    host = new URL(origin).host;
  } catch {
    // "null" (sandboxed pages, file:) or garbage: not this origin.
  }
  if (host === null || host !== (req.headers.host ?? '').toLowerCase())
    throw forbidden('cross-origin request refused (Origin does not match Host)');
}
