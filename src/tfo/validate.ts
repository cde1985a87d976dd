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
  if (o.port === undefined) throw invalidArgType('options.port', 'of type number', o.port)
  if (typeof o.port !== 'number') throw invalidArgType('options.port', 'of type number', o.port)
  if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) {
    throw outOfRange('options.port', '>= 1 and <= 65535', o.port, 'ERR_SOCKET_BAD_PORT')
  }
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
  return { ...(o as unknown as FastOpenConnectOptions), host, family }
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
