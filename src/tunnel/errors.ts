/**
 * Errors of the tunnel layer, each with a stable `code`.
 * @packageDocumentation
 */

/** Stable codes of {@link TunnelError}. */
export type TunnelErrorCode =
  | 'SYNMUX_BAD_ALLOW_ENTRY'
  | 'SYNMUX_TARGET_NOT_ALLOWED'
  | 'SYNMUX_BAD_KEY'
  | 'SYNMUX_BAD_CONFIG'
  | 'SYNMUX_SOCKS_PROTOCOL'
  | 'SYNMUX_AUTH_FAILED'
  | 'SYNMUX_NO_SESSION'
  | 'SYNMUX_TOO_MANY_STREAMS'
  | 'SYNMUX_LISTEN_FAILED'

/** An error of the tunnel layer. */
export class TunnelError extends Error {
  readonly code: TunnelErrorCode
  constructor(code: TunnelErrorCode, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'TunnelError'
    this.code = code
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
