/**
 * A small leveled logger: one line per event on stderr. Each call takes a
 * message and, optionally, structured fields (`session`, `stream`,
 * `target`, byte counts, ...): a text logger appends them as `key=value`,
 * a JSON logger (`synmux --log-format json`) writes them as properties.
 * @packageDocumentation
 */

/** Log levels, most severe first. */
export type LogLevel = 'silent' | 'error' | 'warn' | 'info' | 'debug'
const RANK: Record<LogLevel, number> = { silent: 0, error: 1, warn: 2, info: 3, debug: 4 }

/**
 * Structured fields of a log line. The tunnel uses `session` (the session
 * id, 16 hex digits), `stream` (the stream id), `target` (`host:port`),
 * `from` (the local peer), `up`/`down` (bytes), `ms` (duration) and
 * `reason` (why a connection closed).
 */
export type LogFields = Record<string, string | number | boolean | undefined>

/** What the tunnel logs through. `fields` may be ignored by an implementation. */
export interface Logger {
  error(msg: string, fields?: LogFields): void
  warn(msg: string, fields?: LogFields): void
  info(msg: string, fields?: LogFields): void
  debug(msg: string, fields?: LogFields): void
  /**
   * Optional: whether lines of `level` are written now. Where a logger
   * says `false`, the tunnel skips building those lines (per-connection
   * `debug` lines on the hot path); a logger without it gets every line.
   */
  enabled?(level: Exclude<LogLevel, 'silent'>): boolean
}

/** Whether `log` writes lines of `level` (a logger without `enabled()` writes them all). */
export function logs(log: Logger, level: Exclude<LogLevel, 'silent'>): boolean {
  return log.enabled === undefined || log.enabled(level)
}

/** Whether `v` names a log level. */
export function isLogLevel(v: unknown): v is LogLevel {
  return typeof v === 'string' && Object.hasOwn(RANK, v)
}

/** A field's value in a text line: quoted when it holds a space, a quote or an `=`. */
function textValue(v: string | number | boolean): string {
  const s = String(v)
  return s === '' || /[\s"=]/.test(s) ? JSON.stringify(s) : s
}

/**
 * `msg key=value ...`: fields that are undefined, and text fields whose
 * value the message already says (`target` in `refused 10.0.0.1:22: ...`),
 * are left out.
 */
export function formatText(msg: string, fields?: LogFields): string {
  if (!fields) return msg
  let out = msg
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined || (typeof v === 'string' && v.length > 0 && msg.includes(v))) continue
    out += ` ${k}=${textValue(v)}`
  }
  return out
}

/**
 * A logger writing `<ISO time> <level> <component>: <msg> [key=value ...]`
 * lines to `write` (default stderr).
 */
export function createLogger(level: LogLevel = 'info', component = 'synmux', write: (line: string) => void = (l) => process.stderr.write(l + '\n')): Logger {
  const at = RANK[level]
  const line = (lv: Exclude<LogLevel, 'silent'>, msg: string, fields?: LogFields) => {
    if (RANK[lv] <= at) write(`${new Date().toISOString()} ${lv} ${component}: ${formatText(msg, fields)}`)
  }
  return {
    error: (m, f) => line('error', m, f),
    warn: (m, f) => line('warn', m, f),
    info: (m, f) => line('info', m, f),
    debug: (m, f) => line('debug', m, f),
    enabled: (lv) => RANK[lv] <= at,
  }
}

/** A logger that drops everything. */
export const silentLogger: Logger = createLogger('silent')
