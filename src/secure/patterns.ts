/**
 * Noise handshake patterns (Noise Protocol Framework rev 34: one-way 7.4,
 * fundamental 7.5, deferred 18.1) and the `pskN` modifiers (9.4), and the
 * parser of protocol names (section 8).
 * Not part of the public API.
 * @packageDocumentation
 */
import { CIPHERS, HASHES, type CipherFunctions, type HashFunctions } from './primitives.js'

/** A token of a message pattern. */
export type Token = 'e' | 's' | 'ee' | 'es' | 'se' | 'ss' | 'psk'

/** A handshake pattern: pre-messages and message patterns (messages alternate, initiator first). */
export interface HandshakePattern {
  readonly name: string
  /** Keys in the initiator's pre-message (`-> s`). */
  readonly initiatorPre: readonly Token[]
  /** Keys in the responder's pre-message (`<- s`). */
  readonly responderPre: readonly Token[]
  readonly messages: readonly (readonly Token[])[]
  /** One-way pattern: only the initiator sends transport messages. */
  readonly oneWay: boolean
  /** Whether a `psk` token occurs (then `e` also calls MixKey, spec 9.2). */
  readonly psk: boolean
}

// Each pattern as the spec writes it: pre-messages, `...`, messages.
const TABLE: Record<string, string> = {
  N: '<- s; ...; -> e, es',
  K: '-> s; <- s; ...; -> e, es, ss',
  X: '<- s; ...; -> e, es, s, ss',
  NN: '-> e; <- e, ee',
  NK: '<- s; ...; -> e, es; <- e, ee',
  NX: '-> e; <- e, ee, s, es',
  XN: '-> e; <- e, ee; -> s, se',
  XK: '<- s; ...; -> e, es; <- e, ee; -> s, se',
  XX: '-> e; <- e, ee, s, es; -> s, se',
  KN: '-> s; ...; -> e; <- e, ee, se',
  KK: '-> s; <- s; ...; -> e, es, ss; <- e, ee, se',
  KX: '-> s; ...; -> e; <- e, ee, se, s, es',
  IN: '-> e, s; <- e, ee, se',
  IK: '<- s; ...; -> e, es, s, ss; <- e, ee, se',
  IX: '-> e, s; <- e, ee, se, s, es',
  NK1: '<- s; ...; -> e; <- e, ee, es',
  NX1: '-> e; <- e, ee, s; -> es',
  X1N: '-> e; <- e, ee; -> s; <- se',
  X1K: '<- s; ...; -> e, es; <- e, ee; -> s; <- se',
  XK1: '<- s; ...; -> e; <- e, ee, es; -> s, se',
  X1K1: '<- s; ...; -> e; <- e, ee, es; -> s; <- se',
  X1X: '-> e; <- e, ee, s, es; -> s; <- se',
  XX1: '-> e; <- e, ee, s; -> es, s, se',
  X1X1: '-> e; <- e, ee, s; -> es, s; <- se',
  K1N: '-> s; ...; -> e; <- e, ee; -> se',
  K1K: '-> s; <- s; ...; -> e, es; <- e, ee; -> se',
  KK1: '-> s; <- s; ...; -> e; <- e, ee, se, es',
  K1K1: '-> s; <- s; ...; -> e; <- e, ee, es; -> se',
  K1X: '-> s; ...; -> e; <- e, ee, s, es; -> se',
  KX1: '-> s; ...; -> e; <- e, ee, se, s; -> es',
  K1X1: '-> s; ...; -> e; <- e, ee, s; -> se, es',
  I1N: '-> e, s; <- e, ee; -> se',
  I1K: '<- s; ...; -> e, es, s; <- e, ee; -> se',
  IK1: '<- s; ...; -> e, s; <- e, ee, se, es',
  I1K1: '<- s; ...; -> e, s; <- e, ee, es; -> se',
  I1X: '-> e, s; <- e, ee, s, es; -> se',
  IX1: '-> e, s; <- e, ee, se, s; -> es',
  I1X1: '-> e, s; <- e, ee, s; -> se, es',
}

const tokens = (text: string): Token[] => text.split(',').map((t) => t.trim()).filter(Boolean) as Token[]

/** The pattern named `name` (`IK`, `IKpsk1`, `XXpsk0+psk3`, ...), or `null` if unknown. */
export function handshakePattern(name: string): HandshakePattern | null {
  const m = /^([NKXI]1?[NKX]?1?)((?:psk\d)(?:\+psk\d)*)?$/.exec(name)
  if (!m) return null
  const spec = TABLE[m[1]!]
  if (spec === undefined) return null
  const parts = spec.split(';').map((p) => p.trim())
  const dots = parts.indexOf('...')
  const pre = dots < 0 ? [] : parts.slice(0, dots)
  const msgs = dots < 0 ? parts : parts.slice(dots + 1)
  const initiatorPre = tokens(pre.find((p) => p.startsWith('->'))?.slice(2) ?? '')
  const responderPre = tokens(pre.find((p) => p.startsWith('<-'))?.slice(2) ?? '')
  const messages = msgs.map((p) => tokens(p.slice(2)))
  const modifiers = m[2] ? m[2].split('+').map((p) => Number(p.slice(3))) : []
  for (const n of modifiers) {
    if (n === 0) messages[0]!.unshift('psk')
    else if (n <= messages.length) messages[n - 1]!.push('psk')
    else return null
  }
  return { name, initiatorPre, responderPre, messages, oneWay: m[1]!.length === 1, psk: modifiers.length > 0 }
}

/** A parsed protocol name `Noise_<pattern>_25519_<cipher>_<hash>`. */
export interface NoiseProtocol {
  readonly name: string
  readonly pattern: HandshakePattern
  readonly cipher: CipherFunctions
  readonly hash: HashFunctions
}

/** Parses a protocol name; `null` if it is not one this implementation supports. */
export function noiseProtocol(name: string): NoiseProtocol | null {
  const m = /^Noise_([A-Za-z0-9+]+)_25519_(ChaChaPoly|AESGCM)_(SHA256|SHA512|BLAKE2s|BLAKE2b)$/.exec(name)
  if (!m) return null
  const pattern = handshakePattern(m[1]!)
  if (!pattern) return null
  return { name, pattern, cipher: CIPHERS[m[2] as CipherFunctions['name']], hash: HASHES[m[3] as HashFunctions['name']] }
}
