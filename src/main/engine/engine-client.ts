/**
 * The engine's JSON API, as the supervisor uses it: start a session (getstream, middleware mode),
 * stop it, probe the engine. Playback itself is read by the stream actor, not here.
 *
 * Every call is bounded: engines hold answers while they think (a bad id answers after ~4 s, an
 * unknown infohash after ~28 s), and command_url can hang. Failures become EngineError with the
 * HTTP status the route should answer: 502 for an engine that answered wrongly or is unreachable,
 * 504 for one that did not answer in time.
 *
 * Invariants (a hostile or broken engine must not be able to hurt the process):
 *  C1 No answer is held in memory past its cap (maxBytes, --engine-max-answer): the body is read
 *     incrementally and dropped with the connection the moment it passes the cap.
 *  C2 Only http:/https: URLs from an answer are followed, and only to the engine we called.
 *  C3 Text from the engine (its error strings) is cut by foreignText before it goes anywhere.
 */
import type { Readable } from 'node:stream';
import { request, type Dispatcher } from 'undici';
import { EngineError } from '../errors';
import { parseEnvelope, foreignText } from '../../shared/engine-api';

export interface EngineSession {
  engine: string;
  pid: string;
  playbackUrl: string;
  statUrl: string | null;
  commandUrl: string | null;
}

/** Default bound on one engine API answer (getstream, stat, version, stop): real ones are < 2 KiB. */
export const DEFAULT_MAX_ANSWER = 64 * 1024;

/**
 * The engine writes its URLs with whatever Host it was called by; behind Docker or NAT that may
 * not be reachable from here, so point them back at the origin we called. Only http: and https:
 * URLs are followed: any other scheme (file:, data:, javascript:…) is refused, never rewritten,
 * since WHATWG URL cannot turn a non-special scheme into http: and would leave it pointing nowhere
 * (it used to end up at 127.0.0.1:80).
 */
export function rewriteOrigin(url: string, engine: string, what = 'URL'): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new EngineError(`engine answered a ${what} that is not a URL: ${JSON.stringify(foreignText(url, 80))}`, 502, 'bad-answer');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new EngineError(
      `engine answered a ${what} with the scheme ${JSON.stringify(foreignText(u.protocol, 20))}; only http and https are followed`,
      502,
      'bad-answer',
    );
  }
  const e = new URL(engine);
  u.protocol = e.protocol;
  u.host = e.host;
  u.username = u.password = '';
  return u.toString();
}

export interface JsonOptions {
  timeoutMs: number;
  /** Past this many bytes the answer is abandoned (bad-answer); see readCapped. */
  maxBytes: number;
  dispatcher?: Dispatcher;
}

/**
 * One engine API call: GET, bounded in time (headers, gaps and the whole answer) and in size.
 * The size cap is also what keeps JSON.parse from stalling the event loop: parsing is linear, and
 * at the default 64 KiB it takes about a millisecond at worst (measured on the 2-core VM under
 * load: 0.06 ms for one long string, ~1.2 ms for object-dense JSON; a 50 MB answer took 0.7 s
 * and froze every viewer), so no streaming parser or worker is needed.
 */
export async function engineJson(url: string, o: JsonOptions): Promise<unknown> {
  let res;
  try {
    res = await request(url, {
      method: 'GET',
      headers: { 'accept-encoding': 'identity', accept: 'application/json' },
      headersTimeout: o.timeoutMs,
      bodyTimeout: o.timeoutMs,
      signal: AbortSignal.timeout(o.timeoutMs),
      dispatcher: o.dispatcher,
    });
  } catch (e) {
    throw classify(e, url);
  }
  if (res.statusCode !== 200) {
    res.body.destroy(); // never read an error page: its size is the engine's choice
    throw new EngineError(`engine answered HTTP ${res.statusCode}`, 502, 'bad-answer');
  }
  const text = await readCapped(res.body, o.maxBytes, res.headers['content-length'], url);
  try {
    return JSON.parse(text);
  } catch {
    throw new EngineError('engine answered with something that is not JSON', 502, 'bad-answer');
  }
}

/**
 * Reads a body chunk by chunk and gives up (destroying the body, so the socket goes too) as soon
 * as it passes `max` bytes, or at once when Content-Length already says it will: an endless
 * answer costs at most `max` bytes of memory.
 */
async function readCapped(body: Readable, max: number, length: string | string[] | undefined, url: string): Promise<string> {
  const tooBig = () => new EngineError(`engine answer over ${max} bytes from ${new URL(url).host}; abandoned`, 502, 'bad-answer');
  if (typeof length === 'string' && Number(length) > max) {
    body.destroy();
    throw tooBig();
  }
  const parts: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > max) {
        body.destroy();
        throw tooBig();
      }
      parts.push(chunk);
    }
  } catch (e) {
    if (e instanceof EngineError) throw e;
    throw classify(e, url);
  }
  return Buffer.concat(parts, size).toString('utf8');
}

/** An undici request that ran out of time (our AbortSignal.timeout, or its own header/body timers). */
export function isTimeout(e: unknown): boolean {
  const err = e as { name?: string; code?: string };
  return (
    err.name === 'TimeoutError' ||
    err.name === 'AbortError' ||
    err.code === 'UND_ERR_HEADERS_TIMEOUT' ||
    err.code === 'UND_ERR_BODY_TIMEOUT'
  );
}

function classify(e: unknown, url: string): EngineError {
  const err = e as { code?: string; message?: string };
  const where = new URL(url).host;
  if (isTimeout(e)) {
    return new EngineError(`engine at ${where} did not answer in time`, 504, 'timeout');
  }
  return new EngineError(`engine at ${where} is unreachable (${err.code ?? err.message ?? 'error'})`, 502, 'unreachable');
}

/**
 * getstream in middleware mode. `selector` keeps the caller's parameter name (id and infohash are
 * not interchangeable); `extra` are the caller's other parameters, passed through; the pid is ours.
 * An answer whose URLs we refuse (a scheme other than http/https) still opened a session on the
 * engine: it is stopped when its command_url is usable, so a hostile answer leaks nothing.
 */
export async function startSession(
  engine: string,
  selector: { name: string; value: string },
  extra: ReadonlyArray<[string, string]>,
  pid: string,
  timeoutMs: number,
  maxAnswerBytes = DEFAULT_MAX_ANSWER,
): Promise<EngineSession> {
  const q = new URLSearchParams();
  q.set(selector.name, selector.value);
  for (const [k, v] of extra) q.append(k, v);
  q.set('format', 'json');
  q.set('pid', pid);
  const url = `${engine}/ace/getstream?${q}`;
  const env = parseEnvelope(await engineJson(url, { timeoutMs, maxBytes: maxAnswerBytes }));
  if (env.error !== null) throw new EngineError(`engine: ${env.error}`, 502, 'engine');
  const r = env.response as Record<string, unknown> | null;
  if (!r || typeof r.playback_url !== 'string') throw new EngineError('engine answered without a playback_url', 502, 'bad-answer');
  let commandUrl: string | null = null;
  try {
    const opt = (v: unknown, what: string) => (typeof v === 'string' && v ? rewriteOrigin(v, engine, what) : null);
    commandUrl = opt(r.command_url, 'command_url');
    return {
      engine,
      pid,
      playbackUrl: rewriteOrigin(r.playback_url, engine, 'playback_url'),
      statUrl: opt(r.stat_url, 'stat_url'),
      commandUrl,
    };
  } catch (e) {
    if (commandUrl) void stopSession(commandUrl, timeoutMs, maxAnswerBytes);
    throw e;
  }
}

/**
 * command_url?method=stop, bounded; never throws (a stop that fails leaves the engine to expire
 * it). Returns what the engine said when it was not "ok", cut to foreignText's length.
 */
export async function stopSession(commandUrl: string, timeoutMs: number, maxAnswerBytes = DEFAULT_MAX_ANSWER): Promise<string | null> {
  const u = new URL(commandUrl);
  u.searchParams.set('method', 'stop');
  try {
    const env = parseEnvelope(await engineJson(u.toString(), { timeoutMs, maxBytes: maxAnswerBytes }));
    return env.error === null ? null : foreignText(env.error);
  } catch (e) {
    return (e as Error).message;
  }
}

/** get_version: the usual liveness probe. */
export async function engineVersion(engine: string, timeoutMs: number, maxAnswerBytes = DEFAULT_MAX_ANSWER): Promise<string> {
  const body = (await engineJson(`${engine}/webui/api/service?method=get_version`, { timeoutMs, maxBytes: maxAnswerBytes })) as {
    result?: { version?: unknown };
  };
  const v = body?.result?.version;
  if (typeof v !== 'string') throw new EngineError('engine answered get_version without a version', 502, 'bad-answer');
  return foreignText(v, 64);
}
