/**
 * What every layer shares: the error base class and the logger.
 * @packageDocumentation
 */
export { SynmuxError } from './errors.js'
export { createLogger, type Logger, type LogLevel, type LogFields } from './log.js'
