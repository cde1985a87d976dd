/**
 * The base class of every error synmux raises for its own reasons: one
 * class with a stable `code`, extended by each layer's error class
 * ({@link MuxError}, {@link SecureError}, {@link TunnelError}), so that
 * `err instanceof SynmuxError` and `err.code` work wherever an error came
 * from. Argument errors stay Node's `TypeError`/`RangeError` with Node's
 * codes (arg-errors.ts), and system errors keep the shape Node's `net`
 * gives them (`ECONNREFUSED`, ...).
 * @packageDocumentation
 */

/**
 * An error of synmux. `code` is stable (each layer's class lists its
 * codes: `MuxErrorCode`, `SecureErrorCode`, `TunnelErrorCode`; a method
 * called at the wrong time is `ERR_INVALID_STATE`, as in Node); `message`
 * is for people.
 */
export class SynmuxError<Code extends string = string> extends Error {
  /** Stable error code. */
  readonly code: Code

  constructor(code: Code, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'SynmuxError'
    this.code = code
  }
}

/** A method called at the wrong time: a {@link SynmuxError} with `code` `ERR_INVALID_STATE`. @internal */
export function invalidState(message: string): SynmuxError<'ERR_INVALID_STATE'> {
  return new SynmuxError('ERR_INVALID_STATE', message)
}
