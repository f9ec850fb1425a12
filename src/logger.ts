// pino, bunyan-compatible JSON like the original's slog output; pino-pretty for a person at a
// terminal. Logs go to stderr so that stdout carries only what scripts read (the
// "listening on" line, OpenAPI documents).
import pino, { type Logger, type LevelWithSilent } from 'pino';

export const LOG_LEVELS: readonly LevelWithSilent[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/** LOG_LEVEL in the environment overrides the configured level. */
export function effectiveLevel(configured: string, env: NodeJS.ProcessEnv = process.env): LevelWithSilent {
  const level = env.LOG_LEVEL?.trim() || configured;
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new Error(`log level "${level}" is not one of ${LOG_LEVELS.join(', ')}`);
  }
  return level as LevelWithSilent;
}

export function createLogger(level: LevelWithSilent, name = 'sled-agent'): Logger {
  if (process.stderr.isTTY) {
    return pino({
      name,
      level,
      timestamp: pino.stdTimeFunctions.isoTime,
      transport: { target: 'pino-pretty', options: { destination: 2, translateTime: 'SYS:standard' } },
    });
  }
  return pino({ name, level, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ dest: 2, sync: false }));
}
