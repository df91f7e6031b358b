/** A player stand-in: a real HTTP client that reads a stream body for a while and keeps the bytes. */
import { request, type IncomingMessage } from 'node:http';

export interface Received {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
  /** ms from request start to the first body byte (-1 if none). */
  firstByteMs: number;
  ended: 'closed-by-us' | 'ended-by-server' | 'error';
}

export interface ReadOptions {
  /** Stop after this many ms of body, or ... */
  ms?: number;
  /** ... after this many bytes. */
  bytes?: number;
  method?: string;
  /** Stop reading (TCP window closes) after this many bytes, and keep the socket open. */
  stallAfterBytes?: number;
  onData?: (chunk: Buffer, at: number) => void;
  /** Request headers, e.g. a player's User-Agent. */
  headers?: Record<string, string>;
}

export function fetchStream(url: string, o: ReadOptions = {}): Promise<Received> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const chunks: Buffer[] = [];
    let size = 0;
    let firstByteMs = -1;
    let timer: NodeJS.Timeout | null = null;
    const req = request(url, { method: o.method ?? 'GET', agent: false, headers: o.headers }, (res) => {
      const finish = (ended: Received['ended']) => {
        if (timer) clearTimeout(timer);
        resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks), firstByteMs, ended });
      };
      if (o.ms !== undefined)
        timer = setTimeout(() => {
          req.destroy();
          finish('closed-by-us');
        }, o.ms);
      res.on('data', (d: Buffer) => {
        if (firstByteMs < 0) firstByteMs = Date.now() - t0;
        chunks.push(d);
        size += d.length;
        o.onData?.(d, Date.now());
        if (o.stallAfterBytes !== undefined && size >= o.stallAfterBytes) res.pause();
        if (o.bytes !== undefined && size >= o.bytes) {
          req.destroy();
          finish('closed-by-us');
        }
      });
      res.on('end', () => finish('ended-by-server'));
      res.on('error', () => finish('error'));
      res.on('aborted', () => finish('error'));
    });
    req.on('error', (e) => (size > 0 ? undefined : reject(e)));
    req.end();
  });
}

/** Whatever JSON a server sent: the tests assert its shape, so `any` is the honest type. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;

export async function getJson(url: string, method = 'GET'): Promise<{ status: number; body: Json; headers: IncomingMessage['headers'] }> {
  const r = await fetchStream(url, { method });
  return { status: r.status, headers: r.headers, body: r.body.length ? JSON.parse(r.body.toString()) : null };
}

/** True when every 188th byte from 0 is a sync byte and the length is whole packets. */
export function aligned(b: Buffer): boolean {
  if (b.length % 188 !== 0) return false;
  for (let i = 0; i < b.length; i += 188) if (b[i] !== 0x47) return false;
  return true;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A random 40-hex content id. */
export function contentId(n: number): string {
  return n.toString(16).padStart(8, '0').repeat(5);
}
