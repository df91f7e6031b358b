import t, { type Test } from 'tap';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Upstream, ChunkedDecoder, parseHead, type UpstreamHandler } from '../src/workers/upstream';

// ---- the chunked decoder, cut at every byte ----

const body = Buffer.from('hello, chunked world: ' + 'x'.repeat(300));
function chunkedWire(parts: number[], ext = false, trailer = false): Buffer {
  const out: string[] = [];
  let at = 0;
  for (const n of parts) {
    out.push(n.toString(16) + (ext ? ';name=value' : '') + '\r\n' + body.toString('latin1', at, at + n) + '\r\n');
    at += n;
  }
  out.push('0\r\n' + (trailer ? 'X-Trailer: 1\r\n' : '') + '\r\n');
  return Buffer.from(out.join(''), 'latin1');
}

/** Feeds `wire` to a decoder in pieces of `cut` bytes; says what went wrong, or null. */
function decodeInCuts(wire: Buffer, cut: number): string | null {
  const got: Buffer[] = [];
  const d = new ChunkedDecoder((b, from, to) => got.push(Buffer.from(b.subarray(from, to))));
  for (let i = 0; i < wire.length; i += cut) {
    const err = d.push(wire, i, Math.min(wire.length, i + cut));
    if (err !== null) return `error at byte ${i}: ${err}`;
  }
  if (!d.done) return 'the last chunk did not end the body';
  const out = Buffer.concat(got);
  return out.equals(body) ? null : `decoded ${out.length} bytes that differ from the ${body.length} sent`;
}

t.test('ChunkedDecoder: the same bytes out whatever the cuts, extensions and trailers', async (t) => {
  let cases = 0;
  let firstFailure: string | null = null;
  for (const [ext, trailer] of [
    [false, false],
    [true, false],
    [false, true],
    [true, true],
  ] as const) {
    const wire = chunkedWire([10, 1, 200, 111], ext, trailer);
    for (let cut = 1; cut < wire.length && firstFailure === null; cut += 7, cases++) {
      const why = decodeInCuts(wire, cut);
      if (why !== null) firstFailure = `ext=${ext} trailer=${trailer} cut=${cut}: ${why}`;
    }
  }
  t.equal(firstFailure, null, `every cut decodes to the body (${cases} cases)`);
  t.ok(cases > 200, 'the cases ran');
});

t.test('ChunkedDecoder: upper-case hex, and bytes after the end are ignored', async (t) => {
  const got: Buffer[] = [];
  const d = new ChunkedDecoder((b, from, to) => got.push(Buffer.from(b.subarray(from, to))));
  const wire = Buffer.from('A\r\n0123456789\r\n0\r\n\r\nGARBAGE');
  t.equal(d.push(wire, 0, wire.length), null);
  t.ok(d.done);
  t.equal(Buffer.concat(got).toString(), '0123456789');
});

t.test('ChunkedDecoder: malformed framing is an error', async (t) => {
  for (const [wire, msg] of [
    ['zz\r\n', /bad chunk size/],
    ['\r\n', /bad chunk size/],
    [';ext\r\n', /bad chunk size/],
    ['1234567890abc\r\n', /too large/],
    ['3\r\nabcX\r\n', /missing CRLF/],
  ] as const) {
    const d = new ChunkedDecoder(() => {});
    const b = Buffer.from(wire);
    t.match(d.push(b, 0, b.length), msg, JSON.stringify(wire));
  }
});

t.test('parseHead', async (t) => {
  t.same(parseHead('HTTP/1.1 200 OK\r\nContent-Type: video/mp2t'), { status: 200, chunked: false, length: -1 });
  t.same(parseHead('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5'), { status: 200, chunked: true, length: -1 });
  t.same(parseHead('HTTP/1.0 404 Not Found\r\ncontent-length: 12'), { status: 404, chunked: false, length: 12 });
  t.same(parseHead('HTTP/1.1 200'), { status: 200, chunked: false, length: -1 });
  t.match(parseHead('ICY 200 OK'), /bad status line/);
  t.match(parseHead('HTTP/1.1 200 OK\r\nno colon here'), /bad header line/);
  t.match(parseHead('HTTP/1.1 200 OK\r\nContent-Length: -3'), /bad content-length/);
});

// ---- the reader over real sockets ----

interface Seen {
  status: number | null;
  data: Buffer[];
  end: number;
  errors: { code: string; message: string }[];
  done: Promise<void>;
}

function recorder(): { h: UpstreamHandler; seen: Seen } {
  let finish!: () => void;
  const seen: Seen = { status: null, data: [], end: 0, errors: [], done: new Promise((r) => (finish = r)) };
  const h: UpstreamHandler = {
    onStart: (s) => (seen.status = s),
    onData: (b, from, to) => seen.data.push(Buffer.from(b.subarray(from, to))), // a copy: the buffer is reused
    onEnd: () => {
      seen.end++;
      finish();
    },
    onError: (code, message) => {
      seen.errors.push({ code, message });
      finish();
    },
  };
  return { h, seen };
}

/** A server that answers every connection with `serve` once the request head has arrived. */
async function server(t: Test, serve: (sock: net.Socket, request: string) => void): Promise<URL> {
  const srv = net.createServer((sock) => {
    let req = '';
    sock.on('error', () => {});
    sock.on('data', (d) => {
      const had = req.includes('\r\n\r\n');
      req += d.toString('latin1');
      if (!had && req.includes('\r\n\r\n')) serve(sock, req);
    });
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  t.teardown(() => new Promise<void>((r) => srv.close(() => r())));
  return new URL(`http://127.0.0.1:${(srv.address() as net.AddressInfo).port}/content/abc?x=1`);
}

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('close-delimited body: the request is a plain GET, every byte arrives, close ends it', async (t) => {
  let request = '';
  const url = await server(t, (sock, req) => {
    request = req;
    sock.write('HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\n\r\nfirst-');
    setTimeout(() => sock.end('second'), 20);
  });
  const { h, seen } = recorder();
  new Upstream(url, 2000, h);
  await seen.done;
  t.match(request, /^GET \/content\/abc\?x=1 HTTP\/1\.1\r\nHost: 127\.0\.0\.1:\d+\r\nAccept-Encoding: identity\r\n/);
  t.equal(seen.status, 200);
  t.equal(Buffer.concat(seen.data).toString(), 'first-second');
  t.equal(seen.end, 1);
  t.same(seen.errors, []);
});

t.test('chunked body written in odd pieces, head split too', async (t) => {
  const wire = Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'), chunkedWire([50, 7, 250, 15])]);
  const url = await server(t, (sock) => {
    let at = 0;
    const step = () => {
      if (at >= wire.length) return;
      sock.write(wire.subarray(at, at + 13));
      at += 13;
      setTimeout(step, 1);
    };
    step();
  });
  const { h, seen } = recorder();
  new Upstream(url, 2000, h);
  await seen.done;
  t.same(Buffer.concat(seen.data), body);
  t.equal(seen.end, 1, 'the zero chunk ends it');
});

t.test('Content-Length body ends after its length', async (t) => {
  const url = await server(t, (sock) => sock.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabcdeEXTRA'));
  const { h, seen } = recorder();
  new Upstream(url, 2000, h);
  await seen.done;
  t.equal(Buffer.concat(seen.data).toString(), 'abcde');
  t.equal(seen.end, 1);
});

t.test('a status other than 200 is reported as it is', async (t) => {
  const url = await server(t, (sock) => sock.end('HTTP/1.1 410 Gone\r\nContent-Length: 0\r\n\r\n'));
  const { h, seen } = recorder();
  new Upstream(url, 2000, h);
  await seen.done;
  t.equal(seen.status, 410);
});

t.test('faults: no head in time, bad head, oversize head, bad chunk, truncated, refused', async (t) => {
  const cases: [string, (sock: net.Socket) => void, string, RegExp][] = [
    ['silent engine', () => {}, 'HEADERS_TIMEOUT', /no response headers within 150 ms/],
    ['not HTTP', (s) => s.write('SOMETHING ELSE\r\n\r\n'), 'BAD_RESPONSE', /bad status line/],
    ['oversize head', (s) => s.write('HTTP/1.1 200 OK\r\nX-Big: ' + 'a'.repeat(20000)), 'BAD_RESPONSE', /over 16384 bytes/],
    ['bad chunk size', (s) => s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nnope\r\n'), 'BAD_RESPONSE', /bad chunk size/],
    ['chunked cut short', (s) => s.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab'), 'TRUNCATED', /mid-body/],
    ['closed before answering', (s) => s.end(), 'ECONNRESET', /before a response/],
  ];
  for (const [name, serve, code, message] of cases) {
    const url = await server(t, serve);
    const { h, seen } = recorder();
    new Upstream(url, 150, h);
    await seen.done;
    t.equal(seen.errors.length, 1, name);
    t.equal(seen.errors[0]?.code, code, name);
    t.match(seen.errors[0]?.message, message, name);
    t.equal(seen.end, 0, name);
  }
  const { h, seen } = recorder();
  new Upstream(new URL('http://127.0.0.1:1/x'), 1000, h);
  await seen.done;
  t.equal(seen.errors[0]?.code, 'ECONNREFUSED');
});

t.test('pause holds the data back, resume lets it through; close silences it', async (t) => {
  let peer!: net.Socket;
  const url = await server(t, (sock) => {
    peer = sock;
    sock.write('HTTP/1.1 200 OK\r\n\r\nA');
  });
  const { h, seen } = recorder();
  const up = new Upstream(url, 2000, h);
  while (seen.data.length === 0) await tick(5);
  up.pause();
  peer.write('B');
  await tick(100);
  t.equal(Buffer.concat(seen.data).toString(), 'A', 'nothing while paused');
  up.resume();
  while (seen.data.length < 2) await tick(5);
  t.equal(Buffer.concat(seen.data).toString(), 'AB');
  up.close();
  peer.end('C');
  await tick(100);
  t.equal(Buffer.concat(seen.data).toString(), 'AB', 'nothing after close');
  t.equal(seen.end + seen.errors.length, 0, 'no end or error after close');
});

const hasOpenssl = !spawnSync('openssl', ['version']).error;
t.test(
  'https engines: certificates verified as by any Node TLS client, body read the same way',
  { skip: hasOpenssl ? false : 'openssl not installed' },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'acemux-tls-'));
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '2',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    const srv = tls.createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (sock) => {
      sock.on('error', () => {});
      sock.once('data', () => sock.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nc\r\nsecure-bytes\r\n0\r\n\r\n'));
    });
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    t.teardown(() => new Promise<void>((r) => srv.close(() => r())));
    const url = `https://127.0.0.1:${(srv.address() as net.AddressInfo).port}/content/x`;

    // Not trusted here: a clear certificate error, as undici gives for the engine API calls.
    const { h, seen } = recorder();
    new Upstream(new URL(url), 2000, h);
    await seen.done;
    t.equal(seen.errors[0]?.code, 'DEPTH_ZERO_SELF_SIGNED_CERT');

    // Trusted the way operators trust a private CA: NODE_EXTRA_CA_CERTS.
    const script = `const { Upstream } = require(${JSON.stringify(join(__dirname, '..', 'dist', 'workers', 'upstream.js'))});
    const out = []; new Upstream(new URL(process.argv[1]), 2000, { onStart: (s) => out.push('status ' + s), onData: (b, from, to) => out.push(b.toString('latin1', from, to)),
      onEnd: () => { out.push('end'); console.log(JSON.stringify(out)); }, onError: (c, m) => console.log(JSON.stringify([c, m])) });`;
    const child = spawn(process.execPath, ['-e', script, url], { env: { ...process.env, NODE_EXTRA_CA_CERTS: cert } });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    await once(child, 'close');
    t.same(JSON.parse(stdout), ['status 200', 'secure-bytes', 'end']);
  },
);
