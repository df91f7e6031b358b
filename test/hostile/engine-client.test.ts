/**
 * The engine client against its own small hostile HTTP server: answers that never end (chunked,
 * close-delimited), that say they are huge, that drip, that are not 200, and URLs whose scheme
 * must not be followed. Every call must end in a coded EngineError within its time bound while
 * holding at most the cap in memory.
 */
import t, { type Test } from 'tap';
import http from 'node:http';
import { once } from 'node:events';
import { engineJson, rewriteOrigin, startSession, stopSession } from '../../src/main/engine/engine-client';
import { EngineError } from '../../src/main/errors';
import { MAX_FOREIGN_TEXT } from '../../src/shared/engine-api';

const CAP = 64 * 1024;
const chunk = Buffer.alloc(16 * 1024, 'a');

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** A real server; `closed` counts responses whose connection went away before they ended. */
async function serve(t: Test, handler: Handler): Promise<{ origin: string; closed: () => number }> {
  let closed = 0;
  const srv = http.createServer((req, res) => {
    res.on('close', () => {
      if (!res.writableFinished) closed++;
    });
    handler(req, res);
  });
  const sockets = new Set<import('node:net').Socket>();
  srv.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    srv.close();
  });
  return { origin: `http://127.0.0.1:${(srv.address() as { port: number }).port}`, closed: () => closed };
}

/** Writes `chunk` as fast as the client reads, until it goes away. */
const endless: Handler = (_req, res) => {
  const pump = () => {
    while (!res.destroyed && res.write(chunk));
  };
  res.on('drain', pump);
  res.write('{"response": "');
  pump();
};

async function refusal(p: Promise<unknown>): Promise<EngineError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof EngineError) return e;
    throw e;
  }
  throw new Error('the call succeeded');
}

t.test('endless answers are abandoned at the cap', async (t) => {
  for (const framing of ['chunked', 'close-delimited'] as const) {
    const srv = await serve(t, (req, res) => {
      if (framing === 'close-delimited') res.writeHead(200, { connection: 'close' }).flushHeaders();
      else res.writeHead(200, { 'content-type': 'application/json' });
      if (framing === 'close-delimited') (res as unknown as { useChunkedEncodingByDefault: boolean }).useChunkedEncodingByDefault = false;
      endless(req, res);
    });
    const t0 = Date.now();
    const e = await refusal(engineJson(`${srv.origin}/x`, { timeoutMs: 10_000, maxBytes: CAP }));
    t.equal(e.kind, 'bad-answer', `${framing}: a bad answer`);
    t.equal(e.code, 'ACEMUX_ERR_ENGINE_BAD_ANSWER', `${framing}: coded`);
    t.match(e.message, /engine answer over 65536 bytes/, `${framing}: saying why`);
    t.ok(Date.now() - t0 < 2000, `${framing}: at once, not at the timeout (${Date.now() - t0} ms)`);
    const gone = await new Promise<boolean>((resolve) => {
      const end = Date.now() + 2000;
      const poll = () => (srv.closed() > 0 ? resolve(true) : Date.now() > end ? resolve(false) : setTimeout(poll, 20));
      poll();
    });
    t.ok(gone, `${framing}: the connection was dropped, so the engine stops sending`);
  }
});

t.test('a Content-Length over the cap is refused before reading', async (t) => {
  const srv = await serve(t, (_req, res) => {
    res.writeHead(200, { 'content-length': String(50_000_000) });
    res.write(chunk);
  });
  const e = await refusal(engineJson(`${srv.origin}/x`, { timeoutMs: 5000, maxBytes: CAP }));
  t.equal(e.kind, 'bad-answer');
  t.match(e.message, /over 65536 bytes/);
});

t.test('exactly the cap is fine; one byte more is not', async (t) => {
  const body = (n: number) => JSON.stringify({ response: 'x'.repeat(n - 28), error: null });
  t.equal(body(CAP).length, CAP);
  const srv = await serve(t, (req, res) => res.end(body(req.url === '/at' ? CAP : CAP + 1)));
  const ok = (await engineJson(`${srv.origin}/at`, { timeoutMs: 5000, maxBytes: CAP })) as { response: string };
  t.equal(ok.response.length, CAP - 28);
  t.equal((await refusal(engineJson(`${srv.origin}/over`, { timeoutMs: 5000, maxBytes: CAP }))).kind, 'bad-answer');
});

t.test('a dripping answer ends at the time bound, as a timeout', async (t) => {
  const srv = await serve(t, (_req, res) => {
    res.writeHead(200);
    const timer = setInterval(() => res.write('a'), 50);
    res.on('close', () => clearInterval(timer));
  });
  const t0 = Date.now();
  const e = await refusal(engineJson(`${srv.origin}/x`, { timeoutMs: 600, maxBytes: CAP }));
  t.equal(e.kind, 'timeout');
  t.equal(e.status, 504);
  t.ok(Date.now() - t0 < 3000, `within the bound (${Date.now() - t0} ms)`);
});

t.test('a non-200 answer is refused without reading its body', async (t) => {
  const srv = await serve(t, (req, res) => {
    res.writeHead(500);
    endless(req, res);
  });
  const e = await refusal(engineJson(`${srv.origin}/x`, { timeoutMs: 5000, maxBytes: CAP }));
  t.equal(e.kind, 'bad-answer');
  t.match(e.message, /HTTP 500/);
});

t.test('only http and https URLs are followed, always to the engine', async (t) => {
  const engine = 'http://10.0.0.5:6878';
  t.equal(rewriteOrigin('http://172.17.0.2:6878/ace/r/a/b?x=1', engine), 'http://10.0.0.5:6878/ace/r/a/b?x=1', 'host rewritten');
  t.equal(
    rewriteOrigin('https://user:pw@evil.example/ace/r/a', engine),
    'http://10.0.0.5:6878/ace/r/a',
    'scheme, host and credentials replaced',
  );
  for (const bad of [
    'file:///etc/passwd',
    'data:video/mp2t;base64,R0c=',
    'javascript:alert(1)',
    'gopher://h/x',
    'ftp://h/x',
    'ws://h/x',
    'blob:http://h/x',
  ]) {
    let e: unknown;
    try {
      rewriteOrigin(bad, engine, 'playback_url');
    } catch (err) {
      e = err;
    }
    t.ok(
      e instanceof EngineError && e.kind === 'bad-answer' && /only http and https are followed/.test(e.message),
      `${bad.split(':')[0]}: refused`,
    );
  }
  let e: unknown;
  try {
    rewriteOrigin('/ace/r/relative', engine, 'playback_url');
  } catch (err) {
    e = err;
  }
  t.ok(e instanceof EngineError && /not a URL/.test(e.message), 'a relative URL is refused');
});

t.test('a refused getstream answer stops the session it opened', async (t) => {
  let stops = 0;
  const srv = await serve(t, (req, res) => {
    if (req.url!.startsWith('/ace/cmd/')) {
      stops++;
      return res.end(JSON.stringify({ response: 'ok', error: null }));
    }
    const host = `http://${req.headers.host}`;
    res.end(
      JSON.stringify({
        response: { playback_url: 'file:///etc/passwd', stat_url: `${host}/ace/stat/a/b`, command_url: `${host}/ace/cmd/a/b` },
        error: null,
      }),
    );
  });
  const e = await refusal(startSession(srv.origin, { name: 'id', value: 'a'.repeat(40) }, [], 'p1', 5000));
  t.match(e.message, /playback_url with the scheme "file:"/);
  await new Promise((r) => setTimeout(r, 300));
  t.equal(stops, 1, 'its command_url got a stop');
});

t.test('engine text is cut wherever it goes', async (t) => {
  const huge = 'e'.repeat(60_000);
  const srv = await serve(t, (req, res) => res.end(JSON.stringify({ response: null, error: huge })));
  const e = await refusal(startSession(srv.origin, { name: 'id', value: 'a'.repeat(40) }, [], 'p1', 5000));
  t.equal(e.kind, 'engine');
  t.ok(e.message.length < MAX_FOREIGN_TEXT + 64, `the getstream error is cut (${e.message.length})`);
  const said = await stopSession(`${srv.origin}/ace/cmd/a/b`, 5000);
  t.ok(said !== null && said.length < MAX_FOREIGN_TEXT + 64, `the stop answer is cut (${said?.length})`);
});
