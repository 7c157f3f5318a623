import pino from 'pino';
import { activeTraceIds } from './tracing';

/** A structured logger (pino). Services log JSON lines to stderr so stdout stays free. */
export type Logger = pino.Logger;

/** Log level when neither the config nor BATON_LOG_LEVEL sets one. */
export const DEFAULT_LOG_LEVEL = 'info';

/**
 * Creates the logger of one process, named after the piece it runs (`scheduler`, `agent`, ...).
 * A line logged inside a span carries its `trace_id` and `span_id`, so logs and traces line up.
 */
export function createLogger(name: string, level: string = process.env.BATON_LOG_LEVEL ?? DEFAULT_LOG_LEVEL): Logger {
  return pino({ name, level, base: { service: name, pid: process.pid }, mixin: activeTraceIds }, pino.destination(2));
}
