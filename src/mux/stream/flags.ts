/**
 * The bit flags of a stream's protocol state, kept in {@link MuxStream}'s
 * `f` and read and set by the session's parts.
 * @packageDocumentation
 */

/** Bit flags of a stream's state. @internal */
export const enum SF {
  /** OPEN (opener) or OPENED (acceptor) has been framed. */
  OPEN_SENT = 1 << 0,
  /** Opener: OPENED received. */
  REMOTE_OPENED = 1 << 1,
  /** Acceptor: the application (or the timer) answered. */
  ANSWERED = 1 << 2,
  /** In the session's open queue. */
  IN_OPEN_QUEUE = 1 << 3,
  /** In the session's round-robin ring. */
  IN_RING = 1 << 4,
  /** In the session's window queue. */
  IN_WINDOW_QUEUE = 1 << 5,
  /** `end()` reached `_final`: FIN to send. */
  FIN_QUEUED = 1 << 6,
  /** FIN framed. */
  FIN_SENT = 1 << 7,
  /** FIN received. */
  FIN_RECEIVED = 1 << 8,
  /** No longer in the session's stream map (closed, reset or refused). */
  DETACHED = 1 << 9,
  /** Created before the peer's HELLO arrived (pre-HELLO credit). */
  PRE_HELLO = 1 << 10,
  /** Acceptor: counted in the session's pending-open count. */
  PENDING = 1 << 11,
}
