/**
 * The real client address behind trusted proxies (HAProxy in front of a cluster, issue 14).
 *
 * X-Forwarded-For is whatever the client wrote, plus one address per proxy it passed. Only the
 * part appended by proxies we trust can be believed, so:
 *  C1 With no trusted proxies (the default) the header is ignored: the address is the socket's.
 *  C2 The socket peer must itself be trusted before any of the header is read.
 *  C3 The chain is walked right to left (nearest hop first); the first address that is not a
 *     trusted proxy is the client. If every hop is trusted, the leftmost one is.
 *  C4 A malformed entry ends the walk: the client is the last address we could still believe
 *     (the trusted hop that passed the garbage on), never the garbage.
 * Addresses come out normalised: IPv4-mapped IPv6 (::ffff:1.2.3.4) as plain IPv4.
 */
import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';
import { ConfigError } from '../errors';

export interface TrustedProxies {
  readonly list: BlockList;
  /** The entries as given (normalised), for logs and /api/. */
  readonly entries: readonly string[];
}

export const NO_TRUSTED_PROXIES: TrustedProxies = { list: new BlockList(), entries: [] };

/** "::ffff:10.0.0.1" → "10.0.0.1"; strips an IPv6 zone; '' when not an address. */
export function normalizeAddress(text: string): string {
  let a = text.trim();
  const zone = a.indexOf('%');
  if (zone > 0) a = a.slice(0, zone);
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  if (mapped) a = mapped[1]!;
  return isIP(a) ? a.toLowerCase() : '';
}

/** One X-Forwarded-For entry: a bare address, "[v6]:port", or "v4:port" (some proxies add ports). */
function forwardedEntry(text: string): string {
  const t = text.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(t);
  if (bracketed) return normalizeAddress(bracketed[1]!);
  const v4port = /^(\d+\.\d+\.\d+\.\d+):\d+$/.exec(t);
  if (v4port) return normalizeAddress(v4port[1]!);
  return normalizeAddress(t);
}

/**
 * "10.0.0.0/8, 192.168.1.5, ::1, fd00::/8" (ACEMUX_TRUSTED_PROXIES) → a matcher. A bad entry
 * is a ConfigError naming it.
 */
export function parseTrustedProxies(text: string): TrustedProxies {
  const list = new BlockList();
  const entries: string[] = [];
  for (const raw of text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const slash = raw.indexOf('/');
    const addr = normalizeAddress(slash >= 0 ? raw.slice(0, slash) : raw);
    const family = addr ? (isIP(addr) === 6 ? 'ipv6' : 'ipv4') : null;
    if (!family) throw new ConfigError(`"${raw}" is not an IP address or CIDR (e.g. 10.0.0.0/8, 192.168.1.5, fd00::/8)`);
    if (slash < 0) {
      list.addAddress(addr, family);
      entries.push(addr);
      continue;
    }
    const bitsText = raw.slice(slash + 1);
    const bits = Number(bitsText);
    const max = family === 'ipv6' ? 128 : 32;
    if (!/^\d+$/.test(bitsText) || bits > max) throw new ConfigError(`"${raw}": prefix length must be 0–${max}`);
    list.addSubnet(addr, bits, family);
    entries.push(`${addr}/${bits}`);
  }
  return { list, entries };
}

function trusts(t: TrustedProxies, addr: string): boolean {
  return t.entries.length > 0 && t.list.check(addr, isIP(addr) === 6 ? 'ipv6' : 'ipv4');
}

/** The client's address per C1–C4, and whether it came from X-Forwarded-For. */
function resolve(req: IncomingMessage, trusted: TrustedProxies): { addr: string; forwarded: boolean } {
  const peer = normalizeAddress(req.socket.remoteAddress ?? '') || (req.socket.remoteAddress ?? '');
  const header = req.headers['x-forwarded-for'];
  if (!peer || !trusts(trusted, peer) || header === undefined) return { addr: peer, forwarded: false }; // C1, C2
  const hops = (Array.isArray(header) ? header.join(',') : header).split(',');
  let believed = peer;
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = forwardedEntry(hops[i]!);
    if (!hop) break; // C4
    believed = hop;
    if (!trusts(trusted, hop)) break; // C3
  }
  return { addr: believed, forwarded: true };
}

/** The client's address per C1–C4. */
export function clientAddress(req: IncomingMessage, trusted: TrustedProxies = NO_TRUSTED_PROXIES): string {
  return resolve(req, trusted).addr;
}

/** What logs and /ace/status show: a forwarded address alone (the socket's port is the proxy's), else address:port. */
export function remoteLabel(req: IncomingMessage, trusted: TrustedProxies = NO_TRUSTED_PROXIES): string {
  const r = resolve(req, trusted);
  return r.forwarded ? r.addr : `${r.addr}:${req.socket.remotePort}`;
}
