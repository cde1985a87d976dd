/**
 * Argument errors shaped like Node's own (`code` ERR_INVALID_ARG_TYPE,
 * ERR_INVALID_ARG_VALUE, ERR_OUT_OF_RANGE), shared by every layer.
 * @internal
 * @packageDocumentation
 */
import util from 'node:util'

/** `TypeError` with `code: 'ERR_INVALID_ARG_TYPE'`. */
export function invalidArgType(name: string, expected: string, actual: unknown): TypeError {
  const shown = actual === null ? 'null' : Array.isArray(actual) ? 'an array' : typeof actual
  const err = new TypeError(`The "${name}" argument must be ${expected}. Received ${shown}`)
  ;(err as TypeError & { code: string }).code = 'ERR_INVALID_ARG_TYPE'
  return err
}

/** `TypeError` with `code: 'ERR_INVALID_ARG_VALUE'`. */
export function invalidArgValue(name: string, reason: string, actual: unknown): TypeError {
  const err = new TypeError(`The argument '${name}' ${reason}. Received ${util.inspect(actual)}`)
  ;(err as TypeError & { code: string }).code = 'ERR_INVALID_ARG_VALUE'
  return err
}

/** `RangeError` with the given code (default `ERR_OUT_OF_RANGE`). */
export function outOfRange(name: string, range: string, actual: unknown, code = 'ERR_OUT_OF_RANGE'): RangeError {
  const err = new RangeError(`The value of "${name}" is out of range. It must be ${range}. Received ${util.inspect(actual)}`)
  ;(err as RangeError & { code: string }).code = code
  return err
}

/** Checks an integer argument in `[min, max]`: `ERR_INVALID_ARG_TYPE` / `ERR_OUT_OF_RANGE`. Returns it. */
export function uintArg(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value)
  if (!Number.isInteger(value) || value < min || value > max) throw outOfRange(name, `an integer >= ${min} && <= ${max}`, value)
  return value
}
