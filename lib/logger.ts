import pino from 'pino';

/** A structured logger (pino). Services log JSON lines to stderr so stdout stays free. */
export type Logger = pino.Logger;

/** Log level when neither the config nor BATON_LOG_LEVEL sets one. */
export const DEFAULT_LOG_LEVEL = 'info';

/** Creates the logger of one process, named after the piece it runs (`scheduler`, `agent`, ...). */
export function createLogger(name: string, level: string = process.env.BATON_LOG_LEVEL ?? DEFAULT_LOG_LEVEL): Logger {
  return pino({ name, level, base: { service: name, pid: process.pid } }, pino.destination(2));
}
