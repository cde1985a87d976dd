/**
 * Joining a lane (PROTOCOL.md 14.2): the client opens a transport and sends
 * HELLO JOIN for the session; the server answers JOINED (with AUTH_PSK:
 * both proofs, and the client's AUTH before the lane carries anything).
 * @packageDocumentation
 */
import type { Duplex } from 'node:stream'
import { Capability, FRAME_HEADER_SIZE, FrameType, HelloExtension, HelloKind, ResumeRefused } from '../wire/constants.js'
import { encodeFrame } from '../wire/frames.js'
import { type Hello, encodeHello, u16 } from '../wire/hello.js'
import { AUTH_SIZE, awaitAuth, clientProof, newNonce, proofMatches, serverProof } from '../wire/auth.js'
import { MuxError } from '../errors.js'
import { decodeRedirect } from '../wire/redirect.js'
import { Splitter } from './splitter.js'

/** What both ends of a JOIN need: our HELLO of the session, the key, the limits. @internal */
export interface JoinSpec {
  /** Lane index. */
  index: number
  /** Our HELLO of the session (its capabilities and limits are repeated). */
  own: Hello
  /** The PSK (AUTH_PSK) or null. */
  key: Buffer | null
  /** Largest frame payload we accept. */
  maxFrameSize: number
  /** JOIN handshake time limit (ms). */
  handshakeTimeout: number
}

/** The JOIN or JOINED HELLO of lane `index` of session `sessionId`. */
function joinHello(role: 'client' | 'server', spec: JoinSpec, sessionId: Buffer, ext: Array<[number, Buffer]>): Buffer {
  const own = spec.own
  return encodeHello({
    kind: HelloKind.JOIN,
    role,
    capabilities: own.capabilities & (Capability.STRIPE | Capability.RESUME | Capability.AUTH_PSK),
    sessionId,
    initialWindow: own.initialWindow,
    maxFrameSize: own.maxFrameSize,
    maxStreams: own.maxStreams,
    extensions: ext,
  })
}

/**
 * Client: runs the JOIN handshake of lane `spec.index` on `dx` for session
 * `sessionId`. `joined(rest, auth)` runs once JOINED is verified, with the
 * bytes that came after it and our AUTH frame to write first (with a key);
 * `failed(err)` after `dx` is destroyed (`SYNMUX_LANE_REFUSED`,
 * `SYNMUX_AUTH_FAILED`, `SYNMUX_HANDSHAKE_FAILED`,
 * `SYNMUX_HANDSHAKE_TIMEOUT`). Either runs in the event that decided, so
 * nothing the lane reads is missed. @internal
 */
export function clientJoin(dx: Duplex, spec: JoinSpec, sessionId: Buffer, done: { joined(rest: Buffer, auth: Buffer | null): void; failed(err: MuxError): void }): void {
  const { index, key } = spec
  const nonce = key !== null ? newNonce() : null
  const ext: Array<[number, Buffer]> = [[HelloExtension.LANE, u16(index)]]
  const rb = spec.own.extensions.get(HelloExtension.REPLAY_BUFFER)
  if (rb !== undefined) ext.push([HelloExtension.REPLAY_BUFFER, rb])
  if (nonce !== null) ext.push([HelloExtension.AUTH_NONCE, nonce])
  const hello = joinHello('client', spec, sessionId, ext)
  const sp = new Splitter(true, spec.maxFrameSize)
  const fail = (err: MuxError): void => {
    cleanup()
    dx.on('error', () => {})
    dx.destroy()
    done.failed(err)
  }
  const onData = (b: Buffer): void => {
    sp.push(b)
    let u
    try {
      u = sp.next()
    } catch (e) {
      return fail(e as MuxError)
    }
    if (u === null) return
    if (!('hello' in u)) return fail(new MuxError('SYNMUX_HANDSHAKE_FAILED', 'lane: a frame before the JOINED HELLO'))
    const h = u.hello
    if (h.kind === HelloKind.NEW) {
      const why = h.extensions.get(HelloExtension.RESUME_REFUSED)
      const e = new MuxError('SYNMUX_LANE_REFUSED', `the server refused lane ${index} (RESUME_REFUSED ${why?.[0] ?? '?'})`, { wireCode: why?.[0] ?? 0 })
      // The session lives on another server (PROTOCOL.md 13.10): the session sends its next lanes there.
      if (why?.[0] === ResumeRefused.ELSEWHERE) Object.assign(e, { redirect: decodeRedirect(h.extensions.get(HelloExtension.REDIRECT)) })
      return fail(e)
    }
    if (h.kind !== HelloKind.JOIN || h.role !== 'server' || !h.sessionId.equals(sessionId)) {
      return fail(new MuxError('SYNMUX_HANDSHAKE_FAILED', 'lane: unexpected answer to JOIN'))
    }
    const lv = h.extensions.get(HelloExtension.LANE)
    if (lv === undefined || lv.length !== 2 || lv.readUInt16BE(0) !== index) return fail(new MuxError('SYNMUX_HANDSHAKE_FAILED', 'lane: JOINED names another lane'))
    let auth: Buffer | null = null
    if (key !== null) {
      const ns = h.extensions.get(HelloExtension.AUTH_NONCE)
      const proof = h.extensions.get(HelloExtension.AUTH_PROOF)
      if (ns === undefined || ns.length !== AUTH_SIZE || !proofMatches(proof, serverProof(key, hello, ns))) {
        return fail(new MuxError('SYNMUX_AUTH_FAILED', `authentication failed: the server of lane ${index} does not hold our key`))
      }
      auth = encodeFrame({ type: FrameType.AUTH, proof: clientProof(key, u.raw, nonce!) })
    }
    cleanup()
    done.joined(sp.rest(), auth)
  }
  const onClose = (): void => fail(new MuxError('SYNMUX_LANE_REFUSED', `lane ${index}: the transport closed during JOIN`))
  const timer = spec.handshakeTimeout > 0 ? setTimeout(() => fail(new MuxError('SYNMUX_HANDSHAKE_TIMEOUT', `lane ${index}: no JOINED within ${spec.handshakeTimeout} ms`)), spec.handshakeTimeout) : null
  timer?.unref?.()
  const cleanup = (): void => {
    if (timer) clearTimeout(timer)
    dx.off('data', onData)
    dx.off('close', onClose)
  }
  dx.on('data', onData)
  dx.on('close', onClose)
  dx.on('error', () => {})
  const sock = dx as Duplex & { setNoDelay?: (v: boolean) => unknown }
  if (typeof sock.setNoDelay === 'function') sock.setNoDelay(true)
  dx.write(hello)
}

/**
 * Server: answers the JOIN `h` (raw `raw`, `rest` read after it) of lane
 * `spec.index` with JOINED; with a key, checks the client's AUTH first.
 * Then `joined(leftover)` with the bytes after the JOIN (or AUTH);
 * `authFailed(why)` once `dx` is destroyed. @internal
 */
export function answerJoin(dx: Duplex, h: Hello, raw: Buffer, rest: Buffer, spec: JoinSpec, done: { joined(leftover: Buffer): void; authFailed(why: string): void }): void {
  const { index, key } = spec
  const ext: Array<[number, Buffer]> = [[HelloExtension.LANE, u16(index)]]
  let peerNonce: Buffer | undefined
  if (key !== null) {
    peerNonce = h.extensions.get(HelloExtension.AUTH_NONCE)
    if (!(h.capabilities & Capability.AUTH_PSK) || peerNonce === undefined || peerNonce.length !== AUTH_SIZE) {
      dx.destroy()
      done.authFailed('JOIN without authentication')
      return
    }
    const ns = newNonce()
    ext.push([HelloExtension.AUTH_NONCE, ns], [HelloExtension.AUTH_PROOF, serverProof(key, raw, ns)])
  }
  const rb = spec.own.extensions.get(HelloExtension.REPLAY_BUFFER)
  if (rb !== undefined) ext.unshift([HelloExtension.REPLAY_BUFFER, rb])
  const hello = joinHello('server', spec, spec.own.sessionId, ext)
  dx.on('error', () => {})
  dx.write(hello)
  if (key === null) {
    done.joined(rest)
    return
  }
  awaitAuth(dx, rest, clientProof(key, hello, peerNonce!), spec.handshakeTimeout, (leftover) => done.joined(leftover), (why) => {
    dx.destroy()
    done.authFailed(`lane ${index}: ${why}`)
  })
}

/**
 * Server: whether the AUTH frame `f` a lane carries proves the key, for
 * the HELLOs of the session (`ownRaw` ours, `peer` the client's). The
 * session checks it too and fails on a wrong one; the lane answers PINGs
 * only once it holds. @internal
 */
export function authProves(key: Buffer | null, ownRaw: Buffer | null, peer: Hello | null, f: Buffer): boolean {
  if (key === null || ownRaw === null || peer === null) return false
  const nonce = peer.extensions.get(HelloExtension.AUTH_NONCE)
  if (nonce === undefined || nonce.length !== AUTH_SIZE || f.length !== FRAME_HEADER_SIZE + AUTH_SIZE) return false
  return proofMatches(f.subarray(FRAME_HEADER_SIZE), clientProof(key, ownRaw, nonce))
}
