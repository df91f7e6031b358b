// Incremental HTTP/1.1 response parser for the load client: status line + headers, then the body
// as ranges of the caller's buffer (no copies), chunked, content-length or close-delimited.

const HEAD = 0,
  RAW = 1,
  SIZE = 2,
  DATA = 3,
  CRLF = 4,
  DONE = 5;

export class ResponseParser {
  /**
   * @param {(status: number, headers: Record<string,string>) => void} onHead
   * @param {(buf: Buffer, start: number, end: number) => void} onBody
   */
  constructor(onHead, onBody) {
    this.onHead = onHead;
    this.onBody = onBody;
    this.state = HEAD;
    this.head = '';
    this.line = '';
    this.remaining = 0; // chunk bytes left, or content-length left (-1 = until close)
  }

  get done() {
    return this.state === DONE;
  }

  /** @param {Buffer} buf @param {number} start @param {number} end */
  feed(buf, start, end) {
    let i = start;
    if (this.state === HEAD) {
      const before = this.head.length;
      this.head += buf.toString('latin1', start, end);
      const at = this.head.indexOf('\r\n\r\n');
      if (at < 0) {
        if (this.head.length > 65536) throw new Error('response head too large');
        return;
      }
      i = start + (at + 4 - before);
      this.parseHead(this.head.slice(0, at));
      this.head = '';
    }
    while (i < end) {
      switch (this.state) {
        case RAW: {
          const n = this.remaining < 0 ? end - i : Math.min(this.remaining, end - i);
          this.onBody(buf, i, i + n);
          i += n;
          if (this.remaining >= 0 && (this.remaining -= n) === 0) this.state = DONE;
          break;
        }
        case SIZE: {
          const c = buf[i++];
          if (c === 10) {
            const size = parseInt(this.line, 16);
            this.line = '';
            if (!(size >= 0)) throw new Error('bad chunk size');
            if (size === 0) this.state = DONE;
            else {
              this.remaining = size;
              this.state = DATA;
            }
          } else if (c !== 13) this.line += String.fromCharCode(c);
          break;
        }
        case DATA: {
          const n = Math.min(this.remaining, end - i);
          this.onBody(buf, i, i + n);
          i += n;
          if ((this.remaining -= n) === 0) this.state = CRLF;
          break;
        }
        case CRLF:
          if (buf[i++] === 10) this.state = SIZE;
          break;
        default: // DONE: ignore trailers / anything after the body
          return;
      }
    }
  }

  /** @param {string} text */
  parseHead(text) {
    const lines = text.split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
    if (!m) throw new Error(`bad status line: ${JSON.stringify(lines[0].slice(0, 80))}`);
    /** @type {Record<string,string>} */
    const headers = {};
    for (let k = 1; k < lines.length; k++) {
      const c = lines[k].indexOf(':');
      if (c > 0) headers[lines[k].slice(0, c).trim().toLowerCase()] = lines[k].slice(c + 1).trim();
    }
    if (/\bchunked\b/i.test(headers['transfer-encoding'] ?? '')) this.state = SIZE;
    else {
      this.state = RAW;
      this.remaining = headers['content-length'] !== undefined ? Number(headers['content-length']) : -1;
      if (this.remaining === 0) this.state = DONE;
    }
    this.onHead(Number(m[1]), headers);
  }
}
