/** Hostile-client helpers: raw TCP exchanges and requests from a chosen local address. */
import { connect } from 'node:net';
import { request } from 'node:http';
import type { Json } from './client';

export interface RawResult {
  data: Buffer;
  /** How the connection ended: the server closed it cleanly (FIN), reset it, or we gave up waiting. */
  end: 'fin' | 'reset' | 'timeout' | 'enough';
}

export interface RawOptions {
  /** Give up (and close) after this long. */
  timeoutMs?: number;
  /** Stop (and close) once this many bytes arrived. */
  bytes?: number;
  /** Half-close our side after sending (a client that has nothing more to say). */
  halfClose?: boolean;
  localAddress?: string;
  /** Stop (and close) as soon as this says the answer is whole. */
  done?: (data: Buffer) => boolean;
}

/** Sends `payload` on a fresh connection and collects what comes back until the end. */
export function raw(port: number, payload: string | Buffer, o: RawOptions = {}): Promise<RawResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const s = connect({ port, host: '127.0.0.1', localAddress: o.localAddress, allowHalfOpen: true }, () => {
      s.write(payload);
      if (o.halfClose) s.end();
    });
    const finish = (end: RawResult['end']) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ data: Buffer.concat(chunks), end });
    };
    const timer = setTimeout(() => finish('timeout'), o.timeoutMs ?? 5000);
    s.on('data', (d: Buffer) => {
      chunks.push(d);
      size += d.length;
      if ((o.bytes !== undefined && size >= o.bytes) || o.done?.(Buffer.concat(chunks))) finish('enough');
    });
    s.on('end', () => finish('fin'));
    s.on('error', () => finish('reset'));
    s.on('close', () => finish('fin'));
  });
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  body: Json;
}

/** One request with headers; resolves with the whole (short) answer, JSON parsed when it is JSON. */
export function call(
  url: string,
  o: { method?: string; headers?: Record<string, string>; localAddress?: string; body?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: o.method ?? 'GET', headers: o.headers, agent: false, localAddress: o.localAddress }, (res) => {
      let text = '';
      res.setEncoding('latin1');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        let body: unknown = null;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON
        }
        resolve({ status: res.statusCode!, headers: res.headers, text, body });
      });
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

/** Opens a stream from `localAddress` and reads it until `ms` passed; resolves with status and bytes. */
export function play(url: string, ms: number, localAddress?: string): Promise<{ status: number; bytes: number; body: Json }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, localAddress }, (res) => {
      let bytes = 0;
      let text = '';
      const timer = setTimeout(() => req.destroy(), ms);
      res.on('data', (d: Buffer) => {
        bytes += d.length;
        if (res.statusCode !== 200) text += d.toString();
      });
      const done = () => {
        clearTimeout(timer);
        let body: unknown = null;
        try {
          body = JSON.parse(text);
        } catch {
          // a stream, not JSON
        }
        resolve({ status: res.statusCode!, bytes, body });
      };
      res.on('end', done);
      res.on('close', done);
    });
    req.on('error', (e) => reject(e));
    req.end();
  });
}

/** Polls `check` until it returns true, or fails after `ms`. */
export async function until(check: () => Promise<boolean> | boolean, ms = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}
