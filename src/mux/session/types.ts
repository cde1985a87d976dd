/**
 * The public types of a {@link Session}: what `open()` takes, what its
 * events carry, its counters.
 * @packageDocumentation
 */
import type { MuxError } from '../errors.js'
import type { MuxStream } from '../stream/stream.js'
import type { DecodedTarget, Target } from '../wire/target.js'
import type { LaneInfo } from '../lanes/lane.js'
import type { RedirectAddress } from '../wire/redirect.js'

/** Options of {@link Session.open}. */
export interface OpenOptions {
  /** Where the stream should lead (carried in OPEN); default none. */
  target?: Target | null
  /** First bytes, sent in the OPEN frame itself. */
  data?: Buffer | Uint8Array | string
  /** Half-close right after `data` (FIN rides in the OPEN). Default false. */
  end?: boolean
  /**
   * Open a message stream (PROTOCOL.md 15): each write is one message and
   * arrives whole as one `'message'` (see {@link MuxStream}); `data`, if
   * given, is the first message (it rides in the OPEN). Default false.
   */
  messages?: boolean
}

/** Second argument of the `'stream'` event. */
export interface StreamInfo {
  /** The target the opener named, or `null`. */
  target: DecodedTarget | null
  /** Whether the opener made it a message stream (`stream.messages`). */
  messages: boolean
}

/** Argument of the `'refused'` event: a peer's OPEN the session refused itself. */
export interface RefusedOpenInfo {
  /** The stream id of the OPEN. */
  streamId: number
  /** The REFUSED code sent (`RefuseCode`: TOO_MANY_STREAMS, TOO_MANY_PENDING, BUSY, ...). */
  code: number
  /** The reason sent with it. */
  reason: string
  /** The target the opener named, or `null`. */
  target: DecodedTarget | null
}

/** Argument of the `'goaway'` event. */
export interface GoawayInfo {
  /** GOAWAY code (`GoawayCode`). */
  code: number
  /** Highest stream id of ours the peer processed. */
  lastStreamId: number
  /** The peer's reason text. */
  reason: string
}

/** Lifecycle state of a {@link Session}. */
export type SessionState = 'handshaking' | 'open' | 'closing' | 'closed'

/** Counters of a {@link Session} (see {@link Session.stats}). */
export interface SessionStats {
  /** Open streams (both directions). */
  streams: number
  /** Peer-opened streams the application has not answered. */
  pendingOpens: number
  /** Bytes received and not yet read by the application, all streams. */
  bufferedBytes: number
  /** Transport bytes written / read. */
  bytesSent: number
  bytesReceived: number
  /** Session sequence (PROTOCOL.md 7): session-frame bytes sent / received. */
  sessionBytesSent: number
  sessionBytesReceived: number
  /** Highest ACK received from the peer. */
  peerAcked: number
  /** Frames written / read. */
  framesSent: number
  framesReceived: number
  /** Bytes of control frames owed to the peer and not yet written. */
  controlQueueBytes: number
  /** Bytes the streams have queued to send (framed as credit and the transport allow); within `maxSessionBuffer` plus one write per stream. */
  sendQueueBytes: number
  /** Smoothed RTT in ms (0 until measured). */
  rtt: number
  /** Resumption (PROTOCOL.md 13) is in effect. */
  resumable: boolean
  /** A transport is attached (false while a resumable session waits for a new one). */
  attached: boolean
  /** Times the session moved to a new transport. */
  resumes: number
  /** Sent session bytes the peer has not acknowledged, held for replay. */
  replayBytes: number
  /** Highest `replayBytes` ever (never above `replayLimit`). */
  replayMax: number
  /** The replay buffer limit (0 when not resumable). */
  replayLimit: number
  /** Session bytes sent again from the replay buffer after resumes. */
  replayedBytes: number
  /** Duplicate session bytes dropped on arrival (replays that crossed). */
  duplicateBytes: number
  /** Striping (PROTOCOL.md 14) is in effect on the current transport. */
  striped: boolean
  /** The lanes of a striped session (lane 0 first); empty when not striped. */
  lanes: LaneInfo[]
}

/** Events of a {@link Session}. */
export interface SessionEvents {
  /** A peer-opened stream; answer with accept()/write()/refuse(). */
  stream: [stream: MuxStream, info: StreamInfo]
  /** A peer's OPEN the session refused by itself, before any `'stream'` (a limit: max streams, max pending opens, the session buffer; a bad target; going away). */
  refused: [info: RefusedOpenInfo]
  /** The peer's HELLO arrived; `session.id` is set. */
  handshake: []
  /** The peer sent GOAWAY. */
  goaway: [info: GoawayInfo]
  /** The session failed (only emitted when a listener exists; always passed to `'close'`). */
  error: [err: MuxError]
  /** The session is closed; `err` if it failed. */
  close: [err?: MuxError]
  /** Resumable session: the transport was lost; streams are paused, not failed. */
  detached: [err: MuxError]
  /** Resumable session: it runs on a new transport; what was lost has been replayed. */
  resumed: []
  /** Client: a server said the session lives at `to` (REDIRECT, PROTOCOL.md 13.10); its resumes and lanes go there. */
  redirect: [to: RedirectAddress]
  /** Striped session: a lane joined, is leaving or is gone (`err`: why it died or could not join). */
  lane: [info: LaneInfo, err?: MuxError]
  /** An RTT sample in ms (a PING answered; emitted only while someone listens). */
  rtt: [ms: number]
}
