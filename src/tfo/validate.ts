/**
 * Argument validation: every public entry point checks its input here,
 * before any socket exists.
 * @internal
 * @packageDocumentation
 */
import net from 'node:net'
import { invalidArgType, invalidArgValue, outOfRange } from './errors.js'
import type { FastOpenConnectOptions, FastOpenServerOptions } from './types.js'

/** Validated, normalised connect options. */
export interface ConnectPlan extends FastOpenConnectOptions {
  host: string
  port: number
  family: 0 | 4 | 6
}

function optNumber(o: Record<string, unknown>, key: string, min: number, max: number, code?: string): void {
  const v = o[key]
  if (v === undefined) return
  if (typeof v !== 'number') throw invalidArgType(`options.${key}`, 'of type number', v)
  if (!Number.isInteger(v) || v < min || v > max) throw outOfRange(`options.${key}`, `>= ${min} and <= ${max}`, v, code)
}

function optBoolean(o: Record<string, unknown>, key: string): void {
  const v = o[key]
  if (v !== undefined && typeof v !== 'boolean') throw invalidArgType(`options.${key}`, 'of type boolean', v)
}

/** Validates connect options; throws TypeError/RangeError with a `code`. */
export function validateConnectOptions(options: unknown): ConnectPlan {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw invalidArgType('options', 'of type object', options)
  }
  const o = options as Record<string, unknown>
  const host = o.host === undefined ? 'localhost' : o.host
  if (typeof host !== 'string') throw invalidArgType('options.host', 'of type string', host)
  if (host.length === 0 || host.length > 253 + 2 + 45) throw invalidArgValue('options.host', 'must be a host name or IP address', host)
  if (typeof o.path === 'string') throw noUnixSockets(o.path)
  const port = validatePort(o.port, 'options.port')
  const family = o.family === undefined ? 0 : o.family
  if (family !== 0 && family !== 4 && family !== 6) throw invalidArgValue('options.family', 'must be 0, 4 or 6', family)
  if (o.localAddress !== undefined && (typeof o.localAddress !== 'string' || net.isIP(o.localAddress) === 0)) {
    throw invalidArgValue('options.localAddress', 'must be an IP address', o.localAddress)
  }
  optNumber(o, 'localPort', 0, 65535, 'ERR_SOCKET_BAD_PORT')
  optNumber(o, 'timeout', 0, 2 ** 31 - 1)
  optNumber(o, 'keepAliveInitialDelay', 0, 2 ** 31 - 1)
  optBoolean(o, 'noDelay')
  optBoolean(o, 'keepAlive')
  optBoolean(o, 'fastOpen')
  optBoolean(o, 'allowHalfOpen')
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw invalidArgType('options.signal', 'an instance of AbortSignal', o.signal)
  if (o.lookup !== undefined && typeof o.lookup !== 'function') throw invalidArgType('options.lookup', 'of type function', o.lookup)
  return { ...(o as unknown as FastOpenConnectOptions), host, port, family }
}

/** Converts the `data` argument to bytes; throws for anything but string/Buffer/Uint8Array. */
export function toBytes(data: unknown, name = 'data'): Buffer {
  if (data === undefined || data === null) return Buffer.alloc(0)
  if (typeof data === 'string') return Buffer.from(data, 'utf8')
  if (Buffer.isBuffer(data)) return data
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  throw invalidArgType(name, 'of type string or an instance of Buffer or Uint8Array', data)
}

/** Validates the TFO queue length of a server. */
export function validateQueue(queue: unknown, name: string): number | false {
  if (queue === false) return false
  if (typeof queue !== 'number') throw invalidArgType(name, 'of type number or false', queue)
  if (!Number.isInteger(queue) || queue < 1 || queue > 65535) throw outOfRange(name, '>= 1 and <= 65535', queue)
  return queue
}

/** Validates server options. */
export function validateServerOptions(options: unknown): FastOpenServerOptions {
  if (options === undefined) return {}
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw invalidArgType('options', 'of type object', options)
  }
  const o = options as Record<string, unknown>
  if (o.fastOpen !== undefined) validateQueue(o.fastOpen, 'options.fastOpen')
  return o as FastOpenServerOptions
}

/** A decimal port string, as `net` accepts it (`'8080'`). */
const PORT_STRING = /^[0-9]{1,5}$/

/**
 * Validates a port as `net` does: a number or a decimal string, 1–65535.
 * Throws `TypeError` `ERR_INVALID_ARG_TYPE` for another type and
 * `RangeError` `ERR_SOCKET_BAD_PORT` for a value out of range.
 */
export function validatePort(value: unknown, name: string): number {
  if (typeof value !== 'number' && typeof value !== 'string') throw invalidArgType(name, 'of type number or string', value)
  const port = typeof value === 'number' ? value : PORT_STRING.test(value) ? Number(value) : NaN
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw outOfRange(name, '>= 1 and <= 65535', value, 'ERR_SOCKET_BAD_PORT')
  }
  return port
}

/**
 * The error for a Unix domain socket or named pipe path (`net` treats a
 * non-numeric string as one): TCP Fast Open exists only for TCP.
 */
function noUnixSockets(path: string): TypeError {
  return invalidArgValue(
    'path',
    'is not supported: synmux connects over TCP only (TCP Fast Open has no Unix domain sockets or named pipes; use net.createConnection for those, or pass a port number)',
    path,
  )
}

/**
 * Normalises `createConnection`'s arguments the way `net.createConnection`
 * does: `(options[, listener])`, `(port[, host][, listener])`, `port` a
 * number or a decimal string; a non-numeric string is a path, which is
 * rejected (see {@link noUnixSockets}). The options are validated by
 * {@link validateConnectOptions} afterwards.
 */
export function normalizeConnectArgs(args: readonly unknown[]): { options: unknown; listener: (() => void) | undefined } {
  if (args.length === 0) throw invalidArgType('options', 'of type object, or a port', undefined)
  const first = args[0]
  let options: unknown = first
  let listener = args[1]
  if (typeof first === 'string' && !PORT_STRING.test(first)) throw noUnixSockets(first)
  if (typeof first === 'number' || typeof first === 'string') {
    const o: { port: number | string; host?: string } = { port: first }
    if (typeof args[1] === 'string' || (args[1] === undefined && args.length > 2)) {
      if (args[1] !== undefined) o.host = args[1] as string
      listener = args[2]
    }
    options = o
  }
  if (listener !== undefined && typeof listener !== 'function') throw invalidArgType('connectListener', 'of type function', listener)
  return { options, listener: listener as (() => void) | undefined }
}
