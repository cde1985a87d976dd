/**
 * The options of a {@link LaneSet} (the session and the registry make
 * them), and reading where a HELLO says the session sequence stands.
 * @packageDocumentation
 */
import type { Duplex } from 'node:stream'
import { HelloExtension } from '../wire/constants.js'
import type { Hello } from '../wire/hello.js'
import type { MuxError } from '../errors.js'
import type { LaneInfo } from './lane.js'

/** The u64 at `off` of `b`. @internal */
export function readU64(b: Buffer, off: number): number {
  return b.readUInt32BE(off) * 0x1_0000_0000 + b.readUInt32BE(off + 4)
}

/** A HELLO's RECEIVED, or `absent` (a RESUMED with AUTH_PSK has none: R comes in the server's first ACK, PROTOCOL.md 13.4). @internal */
export function received(h: Hello, absent = 0): number {
  const v = h.extensions.get(HelloExtension.RECEIVED)
  return v !== undefined && v.length === 8 ? readU64(v, 0) : absent
}

/** Options of a {@link LaneSet}. @internal */
export interface LaneSetOptions {
  role: 'client' | 'server'
  /** The PSK (AUTH_PSK) or null. */
  key: Buffer | null
  /** Largest frame payload we accept. */
  maxFrameSize: number
  /** Client: lanes wanted, lane 0 included. */
  lanes: number
  /** Server: most lanes a session may have. */
  maxLanes: number
  /** Client: opens the transport of a new lane. */
  connect: (() => Duplex | Promise<Duplex>) | null
  /** JOIN handshake time limit (ms). */
  handshakeTimeout: number
  /** A violation of PROTOCOL.md 14 by the peer, or a limit it broke: the session fails with it (set by {@link LaneSet._hooks}). */
  onProtocolError?: (err: MuxError) => void
  /** Lane events, for the session's `'lane'` event (set by {@link LaneSet._hooks}). */
  onLane?: (info: LaneInfo, err?: MuxError) => void
  /** Server: the peer's HELLO was already read off lane 0 (a RESUME): it, and the bytes after it. */
  peerHello?: { hello: Hello; raw: Buffer; rest: Buffer }
  /** Server: our HELLO (RESUMED) was already written on lane 0 by the registry; `received`: where the peer's session frames start (our R). */
  ownHello?: { hello: Hello; raw: Buffer; received: number }
  /** Server: called once the set knows its session id (routing of JOINs). */
  register?: (id: Buffer, set: Duplex) => void
  /** Server: the set is gone. */
  unregister?: (id: Buffer, set: Duplex) => void
}
