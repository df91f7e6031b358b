/** Structured JSON logs (pino), kept off the data path: nothing per packet or per write logs. */
import pino, { type Logger } from 'pino';
import type { LogLevel } from './config';

export function createLogger(level: LogLevel): Logger {
  return pino({ level, base: { name: 'acemux' }, timestamp: pino.stdTimeFunctions.isoTime });
}
