/**
 * The engine's JSON API, as the supervisor uses it: start a session (getstream, middleware mode),
 * stop it, probe the engine. Playback itself is read by the stream actor, not here.
 *
 * Every call is bounded: engines hold answers while they think (a bad id answers after ~4 s, an
 * unknown infohash after ~28 s), and command_url can hang. Failures become EngineError with the
 * HTTP status the route should answer: 502 for an engine that answered wrongly or is unreachable,
 * 504 for one that did not answer in time.
 */
import { request } from 'undici';
import { parseEnvelope } from '../../shared/engine-api';
import { EngineError } from '../errors';

export interface EngineSession {
  engine: string;
  pid: string;
  playbackUrl: string;
  statUrl: string | null;
  commandUrl: string | null;
}

/**
 * The engine writes its URLs with whatever Host it was called by; behind Docker or NAT that may
 * not be reachable from here, so point them back at the origin we called.
 */
function rewriteOrigin(url: string, engine: string): string {
  const u = new URL(url);
  const e = new URL(engine);
  u.protocol = e.protocol;
  u.host = e.host;
  return u.toString();
}

async function getJson(url: string, timeoutMs: number): Promise<unknown> {
  let res;
  try {
    res = await request(url, {
      method: 'GET',
      headers: { 'accept-encoding': 'identity', accept: 'application/json' },
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    throw classify(e, url);
  }
  let text: string;
  try {
    text = await res.body.text();
  } catch (e) {
    throw classify(e, url);
  }
  if (res.statusCode !== 200) throw new EngineError(`engine answered HTTP ${res.statusCode}`, 502, 'bad-answer');
  try {
    return JSON.parse(text);
  } catch {
    throw new EngineError('engine answered with something that is not JSON', 502, 'bad-answer');
  }
}

/** An undici request that ran out of time (our AbortSignal.timeout, or its own header/body timers). */
export function isTimeout(e: unknown): boolean {
  const err = e as { name?: string; code?: string };
  return err.name === 'TimeoutError' || err.name === 'AbortError' || err.code === 'UND_ERR_HEADERS_TIMEOUT' || err.code === 'UND_ERR_BODY_TIMEOUT';
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
 */
export async function startSession(
  engine: string,
  selector: { name: string; value: string },
  extra: ReadonlyArray<[string, string]>,
  pid: string,
  timeoutMs: number,
): Promise<EngineSession> {
  const q = new URLSearchParams();
  q.set(selector.name, selector.value);
  for (const [k, v] of extra) q.append(k, v);
  q.set('format', 'json');
  q.set('pid', pid);
  const url = `${engine}/ace/getstream?${q}`;
  const env = parseEnvelope(await getJson(url, timeoutMs));
  if (env.error !== null) throw new EngineError(`engine: ${env.error}`, 502, 'engine');
  const r = env.response as Record<string, unknown> | null;
  if (!r || typeof r.playback_url !== 'string') throw new EngineError('engine answered without a playback_url', 502, 'bad-answer');
  const opt = (v: unknown) => (typeof v === 'string' && v ? rewriteOrigin(v, engine) : null);
  return {
    engine,
    pid,
    playbackUrl: rewriteOrigin(r.playback_url, engine),
    statUrl: opt(r.stat_url),
    commandUrl: opt(r.command_url),
  };
}

/** command_url?method=stop, bounded; never throws (a stop that fails leaves the engine to expire it). */
export async function stopSession(commandUrl: string, timeoutMs: number): Promise<string | null> {
  const u = new URL(commandUrl);
  u.searchParams.set('method', 'stop');
  try {
    const env = parseEnvelope(await getJson(u.toString(), timeoutMs));
    return env.error;
  } catch (e) {
    return (e as Error).message;
  }
}

/** get_version: the usual liveness probe. */
export async function engineVersion(engine: string, timeoutMs: number): Promise<string> {
  const body = (await getJson(`${engine}/webui/api/service?method=get_version`, timeoutMs)) as { result?: { version?: unknown } };
  const v = body?.result?.version;
  if (typeof v !== 'string') throw new EngineError('engine answered get_version without a version', 502, 'bad-answer');
  return v;
}

