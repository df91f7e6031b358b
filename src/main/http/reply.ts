/** The one way routes answer with JSON: a short body, no caching, and never after headers went out. */
import type { ServerResponse } from 'node:http';
import { answerOf, codeOfStatus } from '../errors';

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

export const fail = (res: ServerResponse, status: number, error: string, headers?: Record<string, string>) =>
  sendJson(res, status, { error, code: codeOfStatus(status) }, headers);

/** Answers any thrown value through the error table (errors.ts): coded errors as they say, the rest 500. */
export function sendError(res: ServerResponse, e: unknown): void {
  const a = answerOf(e);
  sendJson(res, a.status, a.body, a.headers);
}
