/**
 * Work a handshake can have done before it starts, so that a first flight
 * and its answer wait for as little public-key arithmetic as possible:
 *
 * - **Ephemeral key pairs made ahead** in Node's thread pool (returned
 *   DER-encoded and imported here: see primitives.ts on Node 20). Each pair is
 *   taken once and never reused (the pool hands it over and forgets it);
 *   with the pool empty, a pair is made on the spot as before.
 * - **The static-static DH** (`ss`) remembered per pair of static keys, as
 *   WireGuard keeps `precomputed_static_static` per peer: the same two
 *   static keys always give the same output, and holding it is no more
 *   sensitive than holding the local static private key it comes from.
 * - **Static public keys imported once** (a remote static key recurs in
 *   every handshake with that peer; ephemeral keys are imported each time).
 *
 * Every table is bounded (a process that meets more distinct keys than
 * that just computes again). Not part of the public API.
 * @packageDocumentation
 */
import crypto from 'node:crypto'
import { dh, generateX25519, importX25519Private, PKCS8_PREFIX, SPKI_PREFIX, x25519PublicKey, type DhKeyPair } from './primitives.js'

/** Ephemeral key pairs kept ready (per process). */
const POOL_SIZE = 8
/** Remembered static-static DH outputs / imported static public keys (per process). */
const MAX_REMEMBERED = 4096

const DER = { publicKeyEncoding: { type: 'spki', format: 'der' }, privateKeyEncoding: { type: 'pkcs8', format: 'der' } } as const

const pool: DhKeyPair[] = []
let making = 0

/** Makes pairs in the thread pool until POOL_SIZE are ready or on their way (a channel calls it when it is set up). */
export function refillEphemeral(): void {
  while (pool.length + making < POOL_SIZE) {
    making++
    // Encoded in the thread pool: a key object from generateKeyPair() can hang Node 20 (primitives.ts, "Key objects").
    crypto.generateKeyPair('x25519', DER, (err, spki: Buffer, pkcs8: Buffer) => {
      making--
      if (err) return
      const privateKey = Buffer.from(pkcs8.subarray(PKCS8_PREFIX.length))
      const publicKey = Buffer.from(spki.subarray(SPKI_PREFIX.length))
      pool.push({ privateKey, publicKey, keyObject: importX25519Private(privateKey) })
    })
  }
}

/**
 * An ephemeral X25519 key pair for one handshake: one made ahead when the
 * pool has one (then the pool is topped up in the background), else a
 * new one now. The caller owns it; it is never handed out again.
 */
export function takeEphemeral(): DhKeyPair {
  const e = pool.shift()
  refillEphemeral()
  return e ?? generateX25519()
}

const staticStatic = new Map<string, Buffer>()
const staticPublic = new Map<string, crypto.KeyObject>()

function remember<V>(m: Map<string, V>, k: string, v: V): V {
  if (m.size >= MAX_REMEMBERED) m.delete(m.keys().next().value as string)
  m.set(k, v)
  return v
}

/** `DH(s, rs)` for two static keys, computed once per pair (null: an invalid remote key, never remembered); `rs` is imported through the same table as {@link dhRemoteStatic}'s (a responder's `se` uses it too). */
export function dhStaticStatic(local: DhKeyPair, remote: Uint8Array): Buffer | null {
  const id = Buffer.from(local.publicKey).toString('base64') + Buffer.from(remote).toString('base64')
  const known = staticStatic.get(id)
  if (known !== undefined) return known
  const out = dhRemoteStatic(local, remote)
  return out === null ? null : remember(staticStatic, id, out)
}

/** `DH(local, rs)` where `rs` is a remote static key: its import is done once. */
export function dhRemoteStatic(local: DhKeyPair, remote: Uint8Array): Buffer | null {
  const id = Buffer.from(remote).toString('base64')
  let publicKey = staticPublic.get(id)
  if (publicKey === undefined) {
    try {
      publicKey = remember(staticPublic, id, x25519PublicKey(remote))
    } catch {
      return null
    }
  }
  return dh(local, publicKey)
}
