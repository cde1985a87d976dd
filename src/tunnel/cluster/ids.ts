/**
 * Session ids that say where their session lives (PROTOCOL.md 13.10):
 * which worker process of a `synmux server --workers N`, and which server
 * of several (`--instance-id`, with the address it advertises), so that a
 * RESUME or JOIN that lands elsewhere is handed to the owning process or
 * answered with a REDIRECT. A client treats the id as opaque.
 *
 * | offset | size | field |
 * |---:|---:|---|
 * | 0 | 10 | random (CSPRNG) |
 * | 10 | 1 | `0x01`: a routed synmux session id, format 1 |
 * | 11 | 1 | worker index (0 ... 254) |
 * | 12 | 2 | instance id, u16 (0: the server runs no `--instance-id`) |
 * | 14 | 2 | advertised port (0: none) |
 * | 16 | 16 | advertised address: IPv6, an IPv4 one as `::ffff:a.b.c.d` (zero: none) |
 *
 * (Bytes 14–31 are a REDIRECT extension's value. The random bytes come
 * first: logs name a session by its first 8 bytes.)
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto'
import { SESSION_ID_SIZE } from '../../mux/wire/constants.js'
import { encodeRedirect, type RedirectAddress } from '../../mux/wire/redirect.js'

/** Byte 0 of a routed session id. */
export const ROUTED_ID = 0x01
/** The most worker processes ids can name. */
export const MAX_WORKERS = 255
/** Random bytes in a routed id (80 bits; ids are names, not secrets: a RESUME is honoured only for the client key that made the session). */
export const ROUTED_ID_RANDOM = 10

/** Where a session lives, as its id says. */
export interface IdRoute {
  worker: number
  /** 0: no instance. */
  instance: number
  /** The REDIRECT value of the instance's advertised address, or `null`. */
  redirect: Buffer | null
}

/** What a server puts in its ids: its worker index, instance id and advertised address. */
export interface IdOwner {
  worker: number
  instance: number
  advertise: RedirectAddress | null
}

/** A fresh routed id naming `owner`. */
export function makeSessionId(owner: IdOwner): Buffer {
  const id = Buffer.alloc(SESSION_ID_SIZE)
  randomBytes(ROUTED_ID_RANDOM).copy(id, 0)
  id[10] = ROUTED_ID
  id[11] = owner.worker
  id.writeUInt16BE(owner.instance, 12)
  if (owner.advertise !== null) encodeRedirect(owner.advertise).copy(id, 14)
  return id
}

/** What a routed id names, or `null` for any other id (a random one). */
export function readSessionId(id: Buffer): IdRoute | null {
  if (id.length !== SESSION_ID_SIZE || id[10] !== ROUTED_ID || id[11] === 0xff) return null
  const port = id.readUInt16BE(14)
  return { worker: id[11]!, instance: id.readUInt16BE(12), redirect: port === 0 ? null : Buffer.from(id.subarray(14, 32)) }
}
