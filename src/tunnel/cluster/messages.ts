/**
 * The messages between the primary of `synmux server --workers N` and its
 * workers (over Node's cluster IPC; every one has a `synmux` field naming
 * it, so others — prom-client's — pass by).
 * @internal
 * @packageDocumentation
 */
import type { ReplayVerdict } from '../../secure/replay.js'
import type { TunnelServerStats } from '../server-options.js'

/** Worker → primary. */
export type WorkerMessage =
  /** Listening (every worker shares the primary's listening socket). */
  | { synmux: 'ready'; address: string; port: number; line: string }
  /** Hand this connection (sent with the message) to worker `to`; `head`: the bytes already read, base64. */
  | { synmux: 'handoff'; to: number; head: string }
  /** Judge a first flight (the keys and the ephemeral key base64, the timestamp in µs). */
  | { synmux: 'replay'; id: number; server: string; client: string; ephemeral: string; timestamp: number }
  /** A handshake from `source` failed (counted by every worker). */
  | { synmux: 'failed'; source: string }
  /** Changes to the unauthenticated connections this worker holds, by source, since the last such message. */
  | { synmux: 'held'; deltas: Array<[source: string, delta: number]> }
  /** Draining: this worker closed its listener. */
  | { synmux: 'unlistened' }
  /** Starting: what do the other workers count (failed handshakes, unauthenticated connections)? */
  | { synmux: 'sync?' }
  /** The sessions this worker holds now. */
  | { synmux: 'load'; sessions: number }
  /** The answer to `stats?`. */
  | { synmux: 'stats'; id: number; stats: TunnelServerStats; handedOff: number; adopted: number; redirected: number; balanced: number }

/** Primary → worker. */
export type PrimaryMessage =
  /** A connection another worker handed here (sent with the message). */
  | { synmux: 'handoff'; head: string }
  | { synmux: 'replay'; id: number; verdict: ReplayVerdict }
  | { synmux: 'failed'; source: string }
  /** Worker `worker` holds that many more (or fewer) unauthenticated connections, by source. */
  | { synmux: 'held'; worker: number; deltas: Array<[source: string, delta: number]> }
  /** Worker `worker` is gone: forget what it held. */
  | { synmux: 'gone'; worker: number }
  /** Worker `worker` holds `sessions` sessions now. */
  | { synmux: 'load'; worker: number; sessions: number }
  /** Every worker closed its listener: the listening socket is closed (new connections are refused). */
  | { synmux: 'unlistened' }
  /** The answer to `sync?`: failed handshakes by source (`[source, age ms, count]`), and each other worker's unauthenticated connections by source. */
  | { synmux: 'sync'; failures: Array<[string, number, number]>; held: Array<[worker: number, counts: Array<[string, number]>]>; loads: Array<[worker: number, sessions: number]> }
  | { synmux: 'stats?'; id: number }
  /** A signal the primary received, for the worker to act on (workers ignore the ones sent to them directly). */
  | { synmux: 'signal'; signal: 'SIGTERM' | 'SIGINT' | 'SIGHUP' }

/** The environment variable that tells a forked process it is worker `i` of `n` (`i/n`). */
export const WORKER_ENV = 'SYNMUX_CLUSTER_WORKER'
