/**
 * A small leveled logger: one line per event on stderr.
 * @packageDocumentation
 */

/** Log levels, most severe first. */
export type LogLevel = 'silent' | 'error' | 'warn' | 'info' | 'debug'
const RANK: Record<LogLevel, number> = { silent: 0, error: 1, warn: 2, info: 3, debug: 4 }

/** What the tunnel logs through. */
export interface Logger {
  error(msg: string): void
  warn(msg: string): void
  info(msg: string): void
  debug(msg: string): void
}

/** Whether `v` names a log level. */
export function isLogLevel(v: unknown): v is LogLevel {
  return typeof v === 'string' && v in RANK
}

/** A logger writing `<time> <level> <component>: <msg>` lines to `write` (default stderr). */
export function createLogger(level: LogLevel = 'info', component = 'synmux', write: (line: string) => void = (l) => process.stderr.write(l + '\n')): Logger {
  const at = RANK[level]
  const line = (lv: Exclude<LogLevel, 'silent'>, msg: string) => {
    if (RANK[lv] <= at) write(`${new Date().toISOString()} ${lv} ${component}: ${msg}`)
  }
  return {
    error: (m) => line('error', m),
    warn: (m) => line('warn', m),
    info: (m) => line('info', m),
    debug: (m) => line('debug', m),
  }
}

/** A logger that drops everything. */
export const silentLogger: Logger = createLogger('silent')
