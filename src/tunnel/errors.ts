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

/** An error of the tunnel layer. */
export class TunnelError extends Error {
  readonly code: TunnelErrorCode
  constructor(code: TunnelErrorCode, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'TunnelError'
    this.code = code
  }
}
