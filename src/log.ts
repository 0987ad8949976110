// Structured JSON logs on stderr (pino). Never log user-data or key material: callers pass
// names and ids, not records.
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string = process.env.UNCLOUD_METADATA_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { svc: 'uncloud-metadata' } }, pino.destination(2));
}

/** A logger that drops everything, for tests that do not look at logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
