/**
 * `FastOpenSocket`: a `net.Socket` that knows whether its first bytes rode
 * in the SYN.
 * @packageDocumentation
 */
import net from 'node:net'
import { fdOf } from './handle.js'
import { native, type NativeTcpInfo } from './native.js'
import type { FastOpenReason, FastOpenReport } from './types.js'

/** Maps Linux `tcpi_fastopen_client_fail` to a reason. @internal */
export function clientFailReason(info: NativeTcpInfo): FastOpenReason {
  switch (info.clientFail) {
    case 1:
      return 'no-cookie'
    case 2:
      return 'not-acked'
    case 3:
      return 'syn-retransmitted'
    case 4: // macOS: the kernel's TFO heuristics / blackhole detection turned it off
      return 'disabled-by-os'
    default:
      return info.synDataSent ? 'not-acked' : 'unknown'
  }
}

interface ReportState {
  attempted: boolean
  accepted: boolean | null
  reason?: FastOpenReason
  /** The SYN left without data (nothing was written before it). */
  noData: boolean
}

const state = new WeakMap<FastOpenSocket, ReportState>()

/**
 * A `net.Socket` returned by {@link connectWithData} and
 * {@link createConnection}. It behaves exactly like any `net.Socket`; the
 * extra {@link FastOpenSocket.fastOpen} says what TFO did.
 */
export class FastOpenSocket extends net.Socket {
  constructor(options?: net.SocketConstructorOpts) {
    super(options)
    state.set(this, { attempted: false, accepted: false, reason: 'opted-out', noData: false })
  }

  /**
   * What happened to this connection's first bytes. `accepted` is `null`
   * while the handshake is still in progress; read it again after the
   * first response byte (it is then final).
   */
  get fastOpen(): FastOpenReport {
    const s = refresh(this)
    const r: { attempted: boolean; accepted: boolean | null; reason?: FastOpenReason } = {
      attempted: s.attempted,
      accepted: s.accepted,
    }
    if (s.reason !== undefined && s.accepted !== true) r.reason = s.reason
    return r
  }

  // The outcome is settled from the kernel while the descriptor exists: at
  // the first received chunk (the handshake is complete by then) and just
  // before the handle closes. No 'data' listener: stream mode is untouched.
  /** @internal */
  override push(chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk !== null) refresh(this)
    return super.push(chunk, encoding)
  }

  /** @internal */
  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    refresh(this)
    super._destroy(err, cb)
  }
}

/** Records that TFO was not used, and why. @internal */
export function markNotAttempted(socket: FastOpenSocket, reason: FastOpenReason): void {
  state.set(socket, { attempted: false, accepted: false, reason, noData: false })
}

/** Records that TFO was requested from the OS; the outcome is read later. @internal */
export function markAttempted(socket: FastOpenSocket): void {
  state.set(socket, { attempted: true, accepted: null, noData: false })
}

/** Records that the SYN was sent with no data. @internal */
export function markNoData(socket: FastOpenSocket): void {
  const s = state.get(socket)
  if (s) s.noData = true
}

/** Records a definite outcome (e.g. where the OS cannot be asked later). @internal */
export function markOutcome(socket: FastOpenSocket, accepted: boolean | null, reason?: FastOpenReason): void {
  const s = state.get(socket)
  if (!s) return
  s.accepted = accepted
  if (reason !== undefined) s.reason = reason
  else delete s.reason
}

/** Asks the kernel for the outcome while it is undecided; caches it once final. @internal */
export function refresh(socket: FastOpenSocket): ReportState {
  const s = state.get(socket)!
  if (!s.attempted || s.accepted !== null || !native) return s
  const fd = fdOf(socket)
  if (fd < 0) return s
  let info: NativeTcpInfo
  try {
    info = native.tcpInfo(fd)
  } catch {
    return s
  }
  if (info.connecting) return s
  s.accepted = info.synData
  if (!info.synData) s.reason = s.noData ? 'no-data' : clientFailReason(info)
  return s
}
