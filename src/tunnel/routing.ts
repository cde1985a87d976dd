/**
 * The hook through which a {@link TunnelServer} shares its sessions with
 * other processes (`synmux server --workers`) or other servers
 * (`--instance-id`): `src/tunnel/cluster/` implements it. A server without
 * one holds every session itself.
 * @packageDocumentation
 */
import type net from 'node:net'
import type { SessionPlacement } from '../mux/registry/registry.js'
import type { ReplayChecker } from '../secure/replay.js'
import type { FailureLimiter, FailureLimiterOptions } from './ratelimit.js'
import type { AdmissionPeers } from './handshakes.js'

/** How a tunnel server routes sessions (see the module comment). */
export interface ServerRouting {
  /** The session registry's placement: how session ids are made, where a RESUME or JOIN read in clear goes. */
  readonly placement: SessionPlacement
  /**
   * Secure channel: where a first flight goes, decided from its early data
   * (its HELLO) once the client key is authorized and before the replay
   * guard judges it: `null` keeps it here; a function hands the connection
   * on, called with every byte read from it (the channel lets go of it).
   */
  divert(earlyData: Buffer, socket: net.Socket): ((head: Buffer) => void) | null
  /** Secure channel: whether to act on a fresh first flight's early data (else the client sends it again as records). */
  acceptEarlyData?(earlyData: Buffer): boolean
  /** The replay guard all the server's processes share (PROTOCOL.md 20.7). */
  readonly replayGuard?: ReplayChecker
  /** The per-source limit on failed handshakes, shared by the server's processes. */
  failureLimiter?(options?: FailureLimiterOptions): FailureLimiter
  /** The unauthenticated connections the server's other processes hold (the caps count them all). */
  readonly admission?: AdmissionPeers
}
