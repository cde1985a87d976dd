/**
 * Error construction shared by the TFO layer: Node-style system errors and
 * argument errors with stable codes.
 * @packageDocumentation
 */
import util from 'node:util'

let codeToErrno: Map<string, number> | undefined

/** libuv's (negative) errno for an error name, as Node reports it on this OS. */
export function uvErrno(code: string): number | undefined {
  if (!codeToErrno) {
    codeToErrno = new Map()
    for (const [errno, [name]] of util.getSystemErrorMap()) codeToErrno.set(name, errno)
  }
  return codeToErrno.get(code)
}

/** A system error as Node's `net` creates it: `code`, `errno`, `syscall`, `address`, `port`. */
export interface SystemError extends Error {
  code: string
  errno?: number
  syscall?: string
  address?: string
  port?: number
}

/**
 * Normalises an error thrown by the addon (or a plain code) into the shape
 * Node's own `net` errors have, e.g. `connect ECONNREFUSED 127.0.0.1:1`.
 * @internal
 */
export function systemError(
  from: { code?: string; syscall?: string } | string,
  syscall?: string,
  address?: string,
  port?: number,
): SystemError {
  const code = typeof from === 'string' ? from : (from.code ?? 'UNKNOWN')
  const sc = syscall ?? (typeof from === 'string' ? 'connect' : (from.syscall ?? 'connect'))
  const where = address !== undefined ? ` ${address}${port !== undefined ? `:${port}` : ''}` : ''
  const err = new Error(`${sc} ${code}${where}`) as SystemError
  err.code = code
  const errno = uvErrno(code)
  if (errno !== undefined) err.errno = errno
  err.syscall = sc
  if (address !== undefined) err.address = address
  if (port !== undefined) err.port = port
  return err
}

export { invalidArgType, invalidArgValue, outOfRange } from '../common/arg-errors.js'

/** The error an aborted operation rejects with (as Node's `AbortError`). @internal */
export function abortError(signal: AbortSignal): Error {
  const err = new Error('The operation was aborted', { cause: signal.reason })
  err.name = 'AbortError'
  ;(err as Error & { code: string }).code = 'ABORT_ERR'
  return err
}
