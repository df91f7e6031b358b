/**
 * The playback connection: one HTTP/1.1 GET whose body has no end, read from a plain socket.
 *
 * Why not undici here (it serves every other engine call): measured on the 2-core machine, reading
 * 20 paced 4 Mb/s playbacks cost 0.35 CPU s per 8 s through undici's dispatch() and 0.16 s through
 * a socket that reads into one reused buffer (net `onread`). undici copies each read into its
 * parser's memory and Node allocates a fresh buffer per read; in the actor thread that allocation
 * rate drove a major GC every ~1.5 s. A response head and a chunked body are all we need to parse.
 *
 * Invariants:
 *  U1 The handler sees every body byte once, in order, without chunked framing, as a range of a
 *     buffer that the next read reuses: valid only during the call (no view is made per read).
 *  U2 At most one of onEnd / onError, and no callback at all after close().
 *  U3 A bad status line, an oversize head (MAX_HEAD) or a bad chunk size is an error, never a hang;
 *     so is a missing head after headersTimeoutMs.
 */
import net from 'node:net';
import tls from 'node:tls';

export interface UpstreamHandler {
  /** The response head arrived. */
  onStart(status: number): void;
  /** Body bytes buf[from, to). */
  onData(buf: Buffer, from: number, to: number): void;
  /** The body ended where its framing said (or the connection closed a close-delimited body). */
  onEnd(): void;
  /** code: a socket error code (ECONNREFUSED…), HEADERS_TIMEOUT, BAD_RESPONSE or TRUNCATED. */
  onError(code: string, message: string): void;
}

const MAX_HEAD = 16 * 1024;
/** One read buffer per thread: every actor finishes with its bytes inside the callback (U1). */
const READ_BUF = Buffer.allocUnsafe(64 * 1024);
const CRLF2 = Buffer.from('\r\n\r\n');

const enum Body {
  Head, // still reading the response head
  Close, // everything until the connection closes
  Length,
  Chunked,
}

export class Upstream {
  private readonly socket: net.Socket;
  private body = Body.Head;
  private head: Buffer | null = null;
  private remaining = 0; // Length: bytes left
  private readonly chunks = new ChunkedDecoder((b, from, to) => {
    if (!this.closed) this.handler.onData(b, from, to); // the handler may close us mid-buffer (U2)
  });
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    url: URL,
    headersTimeoutMs: number,
    private readonly handler: UpstreamHandler,
  ) {
    const https = url.protocol === 'https:';
    const port = Number(url.port) || (https ? 443 : 80);
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const onread = { buffer: READ_BUF, callback: (n: number) => this.onRead(READ_BUF, n) };
    this.socket = https ? tls.connect({ host, port, servername: net.isIP(host) ? undefined : host }) : net.connect({ host, port, onread });
    if (https) this.socket.on('data', (d: Buffer) => this.onRead(d, d.length));
    this.socket.write(
      `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n`,
    );
    this.socket.on('end', () => this.onEof());
    this.socket.on('close', () => this.onEof());
    this.socket.on('error', (err: NodeJS.ErrnoException) => this.fail(err.code ?? 'ESOCKET', err.message));
    if (headersTimeoutMs > 0)
      this.timer = setTimeout(() => this.fail('HEADERS_TIMEOUT', `no response headers within ${headersTimeoutMs} ms`), headersTimeoutMs);
  }

  pause(): void {
    if (!this.closed) this.socket.pause();
  }

  resume(): void {
    if (!this.closed) this.socket.resume();
  }

  /** Drops the connection; nothing is reported after this (U2). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.socket.destroy();
  }

  private onRead(buf: Buffer, n: number): boolean {
    if (this.closed) return false;
    let from = 0;
    if (this.body === Body.Head) {
      from = this.readHead(buf, n);
      if (from < 0 || this.closed) return !this.closed;
    }
    if (from >= n) return true;
    if (this.body === Body.Close) this.handler.onData(buf, from, n);
    else if (this.body === Body.Length) {
      const take = Math.min(this.remaining, n - from);
      this.remaining -= take;
      this.handler.onData(buf, from, from + take);
      if (this.remaining === 0) this.end();
    } else if (this.body === Body.Chunked) {
      const err = this.chunks.push(buf, from, n);
      if (err !== null) this.fail('BAD_RESPONSE', err);
      else if (this.chunks.done) this.end();
    }
    return !this.closed;
  }

  /** Collects the head; returns where the body starts in buf, or -1 while the head is incomplete. */
  private readHead(buf: Buffer, n: number): number {
    const prev = this.head?.length ?? 0;
    const all = prev === 0 ? buf.subarray(0, n) : Buffer.concat([this.head!, buf.subarray(0, n)]);
    const at = all.indexOf(CRLF2, Math.max(0, prev - 3));
    if (at < 0) {
      if (all.length > MAX_HEAD) this.fail('BAD_RESPONSE', `response head over ${MAX_HEAD} bytes`);
      else this.head = Buffer.from(all); // a copy: buf is reused by the next read
      return -1;
    }
    this.head = null;
    const parsed = parseHead(all.toString('latin1', 0, at));
    if (typeof parsed === 'string') {
      this.fail('BAD_RESPONSE', parsed);
      return -1;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.body = parsed.chunked ? Body.Chunked : parsed.length >= 0 ? Body.Length : Body.Close;
    this.remaining = parsed.length;
    this.handler.onStart(parsed.status);
    if (this.body === Body.Length && this.remaining === 0) this.end();
    return at + 4 - prev;
  }

  private onEof(): void {
    if (this.closed) return;
    if (this.body === Body.Close) this.end();
    else if (this.body === Body.Head) this.fail('ECONNRESET', 'the engine closed the connection before a response');
    else this.fail('TRUNCATED', 'the engine closed the connection mid-body');
  }

  private end(): void {
    if (this.closed) return;
    this.close();
    this.handler.onEnd();
  }

  private fail(code: string, message: string): void {
    if (this.closed) return;
    this.close();
    this.handler.onError(code, message);
  }
}

export interface ResponseHead {
  status: number;
  chunked: boolean;
  /** Content-Length, or -1 when absent. */
  length: number;
}

/** Parses a response head (without its final blank line); a string is the reason it is bad. */
export function parseHead(text: string): ResponseHead | string {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(lines[0]!);
  if (!m) return `bad status line ${JSON.stringify(lines[0]!.slice(0, 40))}`;
  let chunked = false;
  let length = -1;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon <= 0) return `bad header line ${JSON.stringify(line.slice(0, 40))}`;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'transfer-encoding') chunked = /(?:^|,)\s*chunked\s*$/i.test(value);
    else if (name === 'content-length') {
      if (!/^\d{1,15}$/.test(value)) return `bad content-length ${JSON.stringify(value.slice(0, 20))}`;
      length = Number(value);
    }
  }
  return { status: Number(m[1]), chunked, length: chunked ? -1 : length };
}

const enum Chunk {
  Size,
  Ext, // chunk extension or whitespace up to the end of the size line
  Data,
  DataEnd, // the CRLF after the data
  Trailer,
  Done,
}

/** Incremental chunked transfer decoding; cuts may fall anywhere, even inside a CRLF. */
export class ChunkedDecoder {
  private state = Chunk.Size;
  private size = 0;
  private digits = 0;
  private lineLen = 0;

  constructor(private readonly onData: (b: Buffer, from: number, to: number) => void) {}

  /** The last chunk and its trailers have been read. */
  get done(): boolean {
    return this.state === Chunk.Done;
  }

  /** Feeds buf[from, to); returns an error message, or null. */
  push(buf: Buffer, from: number, to: number): string | null {
    let i = from;
    while (i < to) {
      if (this.state === Chunk.Data) {
        const take = Math.min(this.size, to - i);
        this.onData(buf, i, i + take);
        i += take;
        this.size -= take;
        if (this.size === 0) this.state = Chunk.DataEnd;
        continue;
      }
      const c = buf[i++]!;
      switch (this.state) {
        case Chunk.Size: {
          const v = hexValue(c);
          if (v >= 0) {
            if (++this.digits > 12) return 'chunk size too large';
            this.size = this.size * 16 + v;
          } else if (c === 0x3b || c === 0x20 || c === 0x09 || c === 0x0d) {
            if (this.digits === 0) return 'bad chunk size';
            this.state = Chunk.Ext;
          } else if (c === 0x0a && this.digits > 0) this.sizeLineDone();
          else return 'bad chunk size';
          break;
        }
        case Chunk.Ext:
          if (c === 0x0a) this.sizeLineDone();
          break;
        case Chunk.DataEnd:
          if (c === 0x0a) {
            this.state = Chunk.Size;
            this.size = 0;
            this.digits = 0;
          } else if (c !== 0x0d) return 'missing CRLF after chunk data';
          break;
        case Chunk.Trailer:
          if (c === 0x0a) {
            if (this.lineLen === 0) {
              this.state = Chunk.Done;
              return null;
            }
            this.lineLen = 0;
          } else if (c !== 0x0d) this.lineLen++;
          break;
        case Chunk.Done:
          return null;
      }
    }
    return null;
  }

  private sizeLineDone(): void {
    if (this.size === 0) {
      this.state = Chunk.Trailer;
      this.lineLen = 0;
    } else this.state = Chunk.Data;
  }
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x61 + 10;
  return -1;
}
