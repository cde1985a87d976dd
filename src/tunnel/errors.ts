/**
 * Errors of the tunnel layer, each with a stable `code`.
 * @packageDocumentation
 */
import { SynmuxError } from '../common/errors.js'
import type { MuxErrorCode } from '../mux/errors.js'

/**
 * Stable codes of {@link TunnelError}. `SYNMUX_AUTH_FAILED` and
 * `SYNMUX_TOO_MANY_STREAMS` are the session's codes (`MuxErrorCode`): the
 * tunnel client gives the same failure the same code when it gives up or
 * finds no room.
 */
export type TunnelErrorCode =
  | 'SYNMUX_BAD_ALLOW_ENTRY'
  | 'SYNMUX_TARGET_NOT_ALLOWED'
  | 'SYNMUX_BAD_KEY'
  | 'SYNMUX_BAD_CONFIG'
  | 'SYNMUX_SOCKS_PROTOCOL'
  | 'SYNMUX_NO_SESSION'
  | 'SYNMUX_LISTEN_FAILED'
  | Extract<MuxErrorCode, 'SYNMUX_AUTH_FAILED' | 'SYNMUX_TOO_MANY_STREAMS'>

/** An error of the tunnel layer. */
export class TunnelError extends SynmuxError<TunnelErrorCode> {
  constructor(code: TunnelErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options)
    this.name = 'TunnelError'
  }
}

const LISTEN_ERRORS: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EACCES: 'permission denied',
  EADDRNOTAVAIL: 'address not available',
}

/** A listen failure as one clear line: `cannot listen on 127.0.0.1:8080 (SOCKS5): address already in use`. @internal */
export function listenError(err: NodeJS.ErrnoException, host: string, port: number, what?: string): TunnelError {
  const why = (err.code && LISTEN_ERRORS[err.code]) ?? err.message
  const at = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
  return new TunnelError('SYNMUX_LISTEN_FAILED', `cannot listen on ${at}${what ? ` (${what})` : ''}: ${why}${err.code ? ` (${err.code})` : ''}`, { cause: err })
}
