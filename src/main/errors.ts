/**
 * Every error acemux raises on purpose, in one place (the manner of undici's core/errors and
 * fastify's FST_ERR_*): each has a stable `code`, a `name`, and where it reaches a client the HTTP
 * `status` (and `retryAfterS` for 503s). Routes answer any error through `answerOf()`, so the
 * mapping from error to HTTP lives here and nowhere else. An error that is not an AcemuxError is
 * a bug: it answers 500 with a fixed text and its stack goes to the log, never to the client.
 *
 * Texts that come from outside (an engine's error string, a playlist's body) are cut by
 * foreignText() (shared/engine-api.ts) before they become part of a message.
 */
import { foreignText } from '../shared/engine-api';

export type ErrorCode =
  | 'ACEMUX_ERR_CONFIG'
  | 'ACEMUX_ERR_CHANNELS'
  | 'ACEMUX_ERR_PLAYLIST'
  | 'ACEMUX_ERR_BAD_REQUEST'
  | 'ACEMUX_ERR_UNAUTHORIZED'
  | 'ACEMUX_ERR_FORBIDDEN'
  | 'ACEMUX_ERR_NOT_FOUND'
  | 'ACEMUX_ERR_METHOD'
  | 'ACEMUX_ERR_REQUEST_TIMEOUT'
  | 'ACEMUX_ERR_CONFLICT'
  | 'ACEMUX_ERR_TOO_LARGE'
  | 'ACEMUX_ERR_TOO_MANY'
  | 'ACEMUX_ERR_LIMIT'
  | 'ACEMUX_ERR_STREAM_GONE'
  | 'ACEMUX_ERR_ENGINE'
  | 'ACEMUX_ERR_ENGINE_UNREACHABLE'
  | 'ACEMUX_ERR_ENGINE_TIMEOUT'
  | 'ACEMUX_ERR_ENGINE_BAD_ANSWER'
  | 'ACEMUX_ERR_HLS_TIMEOUT'
  | 'ACEMUX_ERR_INTERNAL';

export class AcemuxError extends Error {
  override name = 'AcemuxError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** The HTTP status a client gets; 0 where the error never reaches one (config at start). */
    readonly status: number = 500,
    readonly retryAfterS?: number,
  ) {
    super(message);
  }
}

/** A bad flag, variable or value at start: the CLI exits with 2. */
export class ConfigError extends AcemuxError {
  override name = 'ConfigError';
  constructor(message: string) {
    super('ACEMUX_ERR_CONFIG', message, 0);
  }
}

/** A channels file that cannot be used: the CLI exits with 2. */
export class ChannelsError extends AcemuxError {
  override name = 'ChannelsError';
  constructor(message: string) {
    super('ACEMUX_ERR_CHANNELS', message, 0);
  }
}

/** The playlist source could not be read: 502 to the /playlist.m3u client. */
export class PlaylistError extends AcemuxError {
  override name = 'PlaylistError';
  constructor(message: string) {
    super('ACEMUX_ERR_PLAYLIST', message, 502);
  }
}

/** What a client asked for is wrong or not allowed. */
export class RequestError extends AcemuxError {
  override name = 'RequestError';
}

export const badRequest = (message: string) => new RequestError('ACEMUX_ERR_BAD_REQUEST', message, 400);
export const unauthorized = (message: string) => new RequestError('ACEMUX_ERR_UNAUTHORIZED', message, 401);
export const forbidden = (message: string) => new RequestError('ACEMUX_ERR_FORBIDDEN', message, 403);
export const notFound = (message: string) => new RequestError('ACEMUX_ERR_NOT_FOUND', message, 404);
export const methodNotAllowed = (method: string | undefined) => new RequestError('ACEMUX_ERR_METHOD', `method ${method} not allowed`, 405);
export const tooMany = (message: string, retryAfterS: number) => new RequestError('ACEMUX_ERR_TOO_MANY', message, 429, retryAfterS);

/** An HLS playlist asked for before the stream had a first segment, still without one at the deadline. */
export const hlsTimeout = (message: string) => new AcemuxError('ACEMUX_ERR_HLS_TIMEOUT', message, 504);

/** A request the supervisor cannot take now (a stream, client or engine limit): 503 with Retry-After. */
export class LimitError extends AcemuxError {
  override name = 'LimitError';
  constructor(message: string, retryAfterS: number) {
    super('ACEMUX_ERR_LIMIT', message, 503, retryAfterS);
  }
}

/** The stream ended before or while the client was attaching. */
export class StreamGoneError extends AcemuxError {
  override name = 'StreamGoneError';
  constructor(message: string) {
    super('ACEMUX_ERR_STREAM_GONE', message, 502);
  }
}

export type EngineErrorKind = 'engine' | 'unreachable' | 'timeout' | 'bad-answer';
const ENGINE_CODES: Record<EngineErrorKind, ErrorCode> = {
  engine: 'ACEMUX_ERR_ENGINE',
  unreachable: 'ACEMUX_ERR_ENGINE_UNREACHABLE',
  timeout: 'ACEMUX_ERR_ENGINE_TIMEOUT',
  'bad-answer': 'ACEMUX_ERR_ENGINE_BAD_ANSWER',
};

/**
 * An engine call failed. `kind` is what the supervisor's policy reads: the engine refused
 * (`engine`: its own error text), could not be reached, did not answer in time, or answered with
 * something we cannot use.
 */
export class EngineError extends AcemuxError {
  override name = 'EngineError';
  constructor(
    message: string,
    override readonly status: 502 | 504,
    readonly kind: EngineErrorKind,
  ) {
    super(ENGINE_CODES[kind], foreignText(message), status);
  }
}

export interface Answer {
  status: number;
  body: { error: string; code: ErrorCode };
  headers: Record<string, string>;
}

/** The one table from error to HTTP answer. Anything unexpected is a 500 with a fixed text. */
export function answerOf(e: unknown): Answer {
  if (e instanceof AcemuxError && e.status >= 400) {
    const headers: Record<string, string> = {};
    if (e.retryAfterS !== undefined) headers['retry-after'] = String(e.retryAfterS);
    // A refused method may carry a body we will not read: answer and close.
    if (e.status === 405) Object.assign(headers, { allow: 'GET, HEAD', connection: 'close' });
    if (e.status === 401) headers['www-authenticate'] = 'Bearer';
    return { status: e.status, body: { error: e.message, code: e.code }, headers };
  }
  return { status: 500, body: { error: 'internal error', code: 'ACEMUX_ERR_INTERNAL' }, headers: {} };
}

const CODE_OF_STATUS: Record<number, ErrorCode> = {
  400: 'ACEMUX_ERR_BAD_REQUEST',
  401: 'ACEMUX_ERR_UNAUTHORIZED',
  403: 'ACEMUX_ERR_FORBIDDEN',
  404: 'ACEMUX_ERR_NOT_FOUND',
  405: 'ACEMUX_ERR_METHOD',
  408: 'ACEMUX_ERR_REQUEST_TIMEOUT',
  409: 'ACEMUX_ERR_CONFLICT',
  429: 'ACEMUX_ERR_TOO_MANY',
  431: 'ACEMUX_ERR_TOO_LARGE',
  502: 'ACEMUX_ERR_ENGINE',
  503: 'ACEMUX_ERR_LIMIT',
  504: 'ACEMUX_ERR_ENGINE_TIMEOUT',
};

/** The code of a refusal answered by its status alone (reply.ts fail(), the HTTP parser's errors). */
export const codeOfStatus = (status: number): ErrorCode => CODE_OF_STATUS[status] ?? 'ACEMUX_ERR_INTERNAL';

/** True for errors a client caused or an engine caused; false for bugs (which get logged with a stack). */
export const isExpected = (e: unknown): e is AcemuxError => e instanceof AcemuxError && e.status >= 400;
