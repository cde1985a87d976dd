/**
 * What a server session needs from the registry that finds sessions by id
 * (PROTOCOL.md 13): the registry implements it, so the session does not
 * import the registry.
 * @packageDocumentation
 */

/** The registry of a server session, as the session sees it. `S` is the session type. @internal */
export interface SessionDirectory<S = unknown> {
  /** The session became resumable (its id is known): RESUMEs and JOINs for it find it. */
  _register(session: S): void
  /** The session closed (`expired`: its detach timeout ran out). */
  _forget(session: S, expired: boolean): void
  /** A new session id (a routed one when the registry has a placement, PROTOCOL.md 18). */
  _newId?(): Buffer
}
