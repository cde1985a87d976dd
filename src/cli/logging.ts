/**
 * The CLI's logger: `--log-format text` (the tunnel's {@link createLogger},
 * ISO timestamps) or `json` (pino: one JSON object per line with `time`,
 * `level`, `component`, `msg` and the call's fields), at `--log-level`,
 * whose level a reload (SIGHUP) can change. pino is loaded only for json.
 * @internal
 * @packageDocumentation
 */
import { createLogger, isLogLevel, type LogFields, type Logger, type LogLevel } from '../common/log.js'
import { UsageError, type Flags } from './args.js'

/** The CLI's logger and the knob a reload turns. */
export interface CliLogger {
  log: Logger
  setLevel(level: LogLevel): void
}

/** `--log-level` of `flags` (default info); a UsageError when it names no level. */
export function levelOf(flags: Flags): LogLevel {
  const level = flags['log-level'] ?? 'info'
  if (!isLogLevel(level)) throw new UsageError('--log-level must be silent, error, warn, info or debug')
  return level
}

type Method = 'error' | 'warn' | 'info' | 'debug'
interface Pino {
  level: string
  isLevelEnabled(level: string): boolean
  error(obj: object, msg: string): void
  warn(obj: object, msg: string): void
  info(obj: object, msg: string): void
  debug(obj: object, msg: string): void
}

function jsonLogger(level: LogLevel, component: string): { log: Logger; setLevel(l: LogLevel): void } {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const pino = require('pino') as typeof import('pino')
  const p = pino(
    {
      level,
      base: { component },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label: string) => ({ level: label }) },
    },
    // Synchronous writes: lines keep their order with the rest of stderr and none is lost at exit.
    pino.destination({ dest: 2, sync: true }),
  ) as unknown as Pino
  const call = (m: Method) => (msg: string, fields?: LogFields) => p[m](fields ?? {}, msg)
  return {
    log: { error: call('error'), warn: call('warn'), info: call('info'), debug: call('debug'), enabled: (l) => p.isLevelEnabled(l) },
    setLevel: (l) => {
      p.level = l
    },
  }
}

/** The logger `--log-format` and `--log-level` ask for. */
export function cliLogger(flags: Flags, component: string): CliLogger {
  const format = flags['log-format'] ?? 'text'
  if (format !== 'text' && format !== 'json') throw new UsageError('--log-format must be text or json')
  const level = levelOf(flags)
  if (format === 'json') return jsonLogger(level, component)
  let inner = createLogger(level, component)
  // A stable object whose level can change (the session and listeners keep the reference).
  const log: Logger = {
    error: (m, f) => inner.error(m, f),
    warn: (m, f) => inner.warn(m, f),
    info: (m, f) => inner.info(m, f),
    debug: (m, f) => inner.debug(m, f),
    enabled: (l) => inner.enabled!(l),
  }
  return { log, setLevel: (l) => (inner = createLogger(l, component)) }
}
