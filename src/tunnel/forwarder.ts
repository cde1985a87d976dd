/**
 * What the tunnel server does with each stream: the target is resolved
 * and checked against the allow list, connected onward with the OPEN's
 * bytes in the SYN (at most `maxConnectsPerSession` connects of a session
 * at once, the others wait), OPENED answered with the target's first
 * response bytes if they come quickly, and the stream relayed until both
 * sides are done. A stream that cannot be served is refused (and counted
 * by reason).
 * @packageDocumentation
 */
import dns from 'node:dns'
import type { LineBudget } from '../common/log-budget.js'
import { logs, type Logger } from '../common/log.js'
import type { Session } from '../mux/session/session.js'
import type { MuxStream } from '../mux/stream/stream.js'
import { RefuseCode } from '../mux/wire/constants.js'
import type { DecodedTarget } from '../mux/wire/target.js'
import { acceptWhenReady, fixedLookup, onwardOptions, refuseOr, type AllowedAddress } from '../net/onward.js'
import { refuseCodeFor, refuseName } from '../net/refusal.js'
import { relay, type RelayCounts } from '../net/relay.js'
import { Cancel } from '../tfo/cancel.js'
import { connectCancellable } from '../tfo/connect.js'
import type { FastOpenSocket } from '../tfo/socket.js'
import type { AllowList } from './allow.js'
import { ConnectSlots } from './slots.js'

/** Who a session belongs to (secure channel: its client key and name), with its byte counts. @internal */
export interface Owner {
  key: string | null
  name: string | null
  source: string
  bytesUp: number
  bytesDown: number
}

/** What a {@link Forwarder} needs of the server. @internal */
export interface ForwarderOptions {
  /** The allow list now (the server may replace it). */
  allow: () => AllowList
  lookup?: typeof dns.lookup | undefined
  maxConnectsPerSession?: number | undefined
  connectTimeout?: number | undefined
  firstResponseWait?: number | undefined
  log: Logger
  /** Lines about refused streams, per session (the server's budget, shared with its own refusal lines). */
  refusalLines: LineBudget
}

/** `host:port` (IPv6 in brackets), as logged. @internal */
export const targetText = (t: DecodedTarget): string => (t.kind === 'ipv6' ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`)

/** A session's id as logged: its first 8 bytes in hex. @internal */
export const sessionTag = (s: Session): string | undefined => s.id?.subarray(0, 8).toString('hex')

/** Adds one to `m[k]`. @internal */
export const bump = (m: Record<string, number>, k: string): void => {
  m[k] = (m[k] ?? 0) + 1
}

/** Serves the tunnel server's streams (see the file's summary). @internal */
export class Forwarder {
  readonly #o: ForwarderOptions
  readonly #stats = {
    connectsInProgress: 0,
    connects: 0,
    tfo: { attempted: 0, accepted: 0 },
    refused: 0,
    refusedBy: {} as Record<string, number>,
    bytesUp: 0,
    bytesDown: 0,
  }
  /** Byte counts of the relays running now (added to the totals in stats()); the relay's socket is the target, so its `up` is our `bytesDown`. */
  readonly #relays = new Set<{ first: number; counts: RelayCounts }>()
  /** Each session's connect slots. */
  readonly #slots = new WeakMap<Session, ConnectSlots>()

  constructor(options: ForwarderOptions) {
    this.#o = options
  }

  /** Counters (relays running now included). */
  stats(): { connectsInProgress: number; connects: number; tfo: { attempted: number; accepted: number }; refused: number; refusedBy: Record<string, number>; bytesUp: number; bytesDown: number } {
    let bytesUp = this.#stats.bytesUp
    let bytesDown = this.#stats.bytesDown
    for (const r of this.#relays) {
      bytesUp += r.first + r.counts.down
      bytesDown += r.counts.up
    }
    return { ...this.#stats, tfo: { ...this.#stats.tfo }, refusedBy: { ...this.#stats.refusedBy }, bytesUp, bytesDown }
  }

  /** Counts a refusal with REFUSED code `code` (one the session made by itself, or one of ours). */
  countRefusal(code: number): void {
    this.#stats.refused++
    bump(this.#stats.refusedBy, refuseName(code))
  }

  /** Refuses `stream` (to `target`) with `code`, counted and logged. */
  refuse(stream: MuxStream, target: DecodedTarget, code: number, why: string, session: Session): void {
    this.countRefusal(code)
    const more = this.#o.refusalLines.take(session)
    if (more !== null) this.#o.log.info(`refused ${targetText(target)}: ${why}${more}`, { session: sessionTag(session), stream: stream.id, target: targetText(target), code: refuseName(code) })
    refuseOr(stream, code, why)
  }

  /**
   * Serves `stream` of `session` to `target`: at most
   * `maxConnectsPerSession` onward connects of a session run at once; the
   * rest wait unanswered (the session's `maxPendingOpens` bounds how
   * many). A slot is released when the connect completes or fails, not
   * when the relay ends.
   */
  serve(stream: MuxStream, target: DecodedTarget, session: Session, owner: Owner, started: number): void {
    let slots = this.#slots.get(session)
    if (slots === undefined) this.#slots.set(session, (slots = new ConnectSlots(this.#o.maxConnectsPerSession ?? 64)))
    void slots
      .run(stream, async () => {
        this.#stats.connectsInProgress++
        try {
          return await this.#connect(stream, target, session)
        } finally {
          this.#stats.connectsInProgress--
        }
      })
      .then((c) => c && this.#relay(stream, c.onward, c.first, session, target, started, owner))
      .catch((err: Error) => {
        // A bug in one stream's handling must cost that stream, not the process.
        this.#o.log.error(`stream ${stream.id} to ${targetText(target)}: ${err.stack ?? err.message}`)
        stream.destroy()
      })
  }

  /** Resolves the target and keeps only the addresses the allow list permits. */
  async allowedAddresses(target: DecodedTarget): Promise<AllowedAddress[]> {
    if (target.kind !== 'hostname') return this.#allowedLiteral(target)
    const allow = this.#o.allow()
    if (!allow.mayAllowName(target.host, target.port)) return []
    const lookup = this.#o.lookup ?? dns.lookup
    const all = await new Promise<dns.LookupAddress[]>((resolve, reject) =>
      lookup(target.host, { all: true }, (err, addrs) => (err ? reject(err) : resolve(addrs as dns.LookupAddress[]))),
    )
    // (checked against the list as it is now: it may have been replaced while resolving)
    return all.filter((a) => this.#o.allow().match({ host: target.host, port: target.port, address: a.address }))
  }

  /** An IP literal target: itself, if the allow list permits it. */
  #allowedLiteral(target: DecodedTarget): AllowedAddress[] {
    return this.#o.allow().match({ host: target.host, port: target.port, address: target.host }) ? [{ address: target.host, family: target.kind === 'ipv6' ? 6 : 4 }] : []
  }

  /** Resolves, checks and connects onward (the part that holds a connect slot); `null` if refused or abandoned. */
  async #connect(stream: MuxStream, target: DecodedTarget, session: Session): Promise<{ onward: FastOpenSocket; first: Buffer } | null> {
    let addresses: AllowedAddress[]
    try {
      // (an IP literal is checked at once: no turn of the microtask queue before the onward SYN)
      addresses = target.kind === 'hostname' ? await this.allowedAddresses(target) : this.#allowedLiteral(target)
    } catch (err) {
      this.refuse(stream, target, refuseCodeFor(err as NodeJS.ErrnoException), (err as Error).message, session)
      return null
    }
    if (addresses.length === 0) {
      this.refuse(stream, target, RefuseCode.NOT_ALLOWED, 'not in the allow list', session)
      return null
    }
    if (stream.destroyed) return null
    // The OPEN's bytes (and any DATA that followed) go in the onward SYN.
    const chunks: Buffer[] = []
    for (let c: Buffer | null; (c = stream.read()) !== null; ) chunks.push(c)
    const first = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)
    // A stream that closes (reset, or its session gone) abandons its connect: the slot and the fd are freed at once.
    const abandon = new Cancel()
    const onClose = (): void => abandon.abort(new Error('the stream closed'))
    stream.once('close', onClose)
    let onward: FastOpenSocket
    try {
      onward = await connectCancellable(onwardOptions(target.host, target.port, target.kind === 'hostname' ? fixedLookup(addresses) : undefined, { allowHalfOpen: true, timeout: this.#o.connectTimeout ?? 10_000 }), first, abandon)
    } catch (err) {
      if (!stream.destroyed) this.refuse(stream, target, refuseCodeFor(err as NodeJS.ErrnoException), (err as NodeJS.ErrnoException).code ?? (err as Error).message, session)
      return null
    } finally {
      stream.off('close', onClose)
    }
    onward.setTimeout(0)
    if (stream.destroyed) {
      onward.destroy()
      return null
    }
    this.#stats.connects++
    if (first.length > 0 && onward.fastOpen.attempted) this.#stats.tfo.attempted++
    if (onward.fastOpen.accepted === true) this.#stats.tfo.accepted++
    if (logs(this.#o.log, 'debug')) {
      this.#o.log.debug(`connected ${targetText(target)} (${first.length} bytes in ${onward.fastOpen.accepted ? 'the SYN' : `the stream, ${onward.fastOpen.reason ?? ''}`})`, {
        session: sessionTag(session),
        stream: stream.id,
        target: targetText(target),
        tfo: onward.fastOpen.accepted === true,
      })
    }
    return { onward, first }
  }

  /** Answers OPENED (with the target's first bytes if they come quickly) and relays until both sides are done. */
  async #relay(stream: MuxStream, onward: FastOpenSocket, first: Buffer, session: Session, target: DecodedTarget, started: number, owner: Owner): Promise<void> {
    if (stream.destroyed) {
      onward.destroy()
      return
    }
    acceptWhenReady(stream, onward, { firstResponseWait: this.#o.firstResponseWait ?? 10 })
    const live = { first: first.length, counts: { up: 0, down: 0, reason: '' } }
    this.#relays.add(live)
    // (the relay's socket is the target: its `up` is from the target, its `down` toward it)
    const counts = await relay(stream, onward, live.counts, 'target').finally(() => this.#relays.delete(live))
    const up = first.length + counts.down
    this.#stats.bytesUp += up
    this.#stats.bytesDown += counts.up
    owner.bytesUp += up
    owner.bytesDown += counts.up
    if (!logs(this.#o.log, 'debug')) return
    this.#o.log.debug(`closed ${targetText(target)}`, {
      session: sessionTag(session),
      stream: stream.id,
      target: targetText(target),
      up,
      down: counts.up,
      ms: Math.round(performance.now() - started),
      reason: counts.reason,
    })
  }
}
