/**
 * X25519 static keys of the secure channel: generation, the private key
 * file (mode 0600), the public key as one base64 line, and the
 * authorized-keys file (docs/PROTOCOL.md 20.8).
 * @packageDocumentation
 */
import fs from 'node:fs'
import path from 'node:path'
import { invalidArgType } from '../common/arg-errors.js'
import { badInput, SecureError } from './errors.js'
import { dh, generateX25519, x25519Public } from './primitives.js'

/** A static key pair (raw 32-byte X25519 keys). */
export interface KeyPair {
  /** The private key: keep it secret. */
  readonly privateKey: Buffer
  /** The public key: give it to peers (`encodePublicKey`). */
  readonly publicKey: Buffer
}

/** The tag of the private key line in a key file. */
export const PRIVATE_KEY_TAG = 'synmux-private-key-v1:'
/** Bytes of an X25519 key. */
export const X25519_KEY_BYTES = 32

const B64_32 = /^[A-Za-z0-9+/]{43}=$/

function checkBytes(name: string, value: unknown): Buffer {
  if (!(value instanceof Uint8Array)) throw invalidArgType(name, 'a Buffer or Uint8Array', value)
  if (value.length !== X25519_KEY_BYTES) throw badInput(RangeError, 'SYNMUX_SECURE_BAD_KEY', `${name} must be ${X25519_KEY_BYTES} bytes, not ${value.length}`)
  return Buffer.from(value)
}

function checkString(name: string, value: unknown): string {
  if (typeof value !== 'string') throw invalidArgType(name, 'of type string', value)
  return value
}

/** Decodes 44 characters of base64 into 32 bytes, or throws. */
function base64Key(text: string, what: string): Buffer {
  if (!B64_32.test(text)) {
    const bytes = /^[A-Za-z0-9+/]+={0,2}$/.test(text) ? Buffer.from(text, 'base64').length : -1
    if (bytes >= 0 && bytes !== X25519_KEY_BYTES) throw badInput(RangeError, 'SYNMUX_SECURE_BAD_KEY', `${what} must encode ${X25519_KEY_BYTES} bytes, not ${bytes}`)
    throw badInput(TypeError, 'SYNMUX_SECURE_BAD_KEY', `${what} must be 44 characters of base64 (make a key with: synmux keygen)`)
  }
  return Buffer.from(text, 'base64')
}

/** A new X25519 key pair from the system's CSPRNG. */
export function generateKeyPair(): KeyPair {
  const { privateKey, publicKey } = generateX25519()
  return { privateKey, publicKey }
}

/** The public key of a private key. @throws TypeError/RangeError (`SYNMUX_SECURE_BAD_KEY`). */
export function derivePublicKey(privateKey: Uint8Array): Buffer {
  return x25519Public(checkBytes('privateKey', privateKey))
}

/** A public key as one line of base64 (44 characters), as `synmux keygen` prints it. */
export function encodePublicKey(publicKey: Uint8Array): string {
  return checkBytes('publicKey', publicKey).toString('base64')
}

/**
 * Decodes a base64 public key (surrounding whitespace ignored). Refuses a
 * key that cannot be used in X25519 (a low-order point).
 * @throws TypeError/RangeError with code `SYNMUX_SECURE_BAD_KEY`.
 */
export function decodePublicKey(text: string): Buffer {
  const key = base64Key(checkString('text', text).trim(), 'A public key')
  if (dh(Buffer.alloc(32, 0x42), key) === null) throw badInput(RangeError, 'SYNMUX_SECURE_BAD_KEY', 'This public key is not usable (a low-order X25519 point)')
  return key
}

/** A private key file's text: a comment with the public key, then `synmux-private-key-v1:<base64>`. */
export function encodePrivateKey(privateKey: Uint8Array): string {
  const key = checkBytes('privateKey', privateKey)
  return `# synmux private key (X25519). Keep it secret: mode 0600.\n# public key: ${x25519Public(key).toString('base64')}\n${PRIVATE_KEY_TAG}${key.toString('base64')}\n`
}

/**
 * Decodes a private key file's text (blank and `#` lines ignored; exactly
 * one key line).
 * @throws TypeError/RangeError with code `SYNMUX_SECURE_BAD_KEY`.
 */
export function decodePrivateKey(text: string): Buffer {
  const lines = checkString('text', text)
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
  if (lines.length !== 1 || !lines[0]!.startsWith(PRIVATE_KEY_TAG)) {
    throw badInput(TypeError, 'SYNMUX_SECURE_BAD_KEY', `A private key file holds one line '${PRIVATE_KEY_TAG}<base64>' (make one with: synmux keygen FILE)`)
  }
  return base64Key(lines[0]!.slice(PRIVATE_KEY_TAG.length), 'The private key')
}

/**
 * Writes a private key file with mode 0600. Refuses to replace an
 * existing file unless `overwrite` is set (Node's `EEXIST` error).
 */
export function writePrivateKeyFile(file: string, privateKey: Uint8Array, options: { overwrite?: boolean } = {}): void {
  checkString('file', file)
  const text = encodePrivateKey(privateKey)
  const fd = fs.openSync(file, options.overwrite ? 'w' : 'wx', 0o600)
  try {
    if (process.platform !== 'win32') fs.fchmodSync(fd, 0o600)
    fs.writeSync(fd, text)
  } finally {
    fs.closeSync(fd)
  }
}

/**
 * The permission bits that must be clear on a private key file: group's
 * and others'. In systemd's credentials directory (`$CREDENTIALS_DIRECTORY`,
 * where `LoadCredential=` puts the key) only others': systemd writes each
 * credential with mode 0400 and gives the service's user read access with
 * a POSIX ACL entry, whose mask shows in the group bits (`stat` says 0440)
 * although the file's group has no access at all.
 */
function forbiddenModeBits(file: string): number {
  const dir = process.env.CREDENTIALS_DIRECTORY
  if (dir) {
    try {
      if (path.dirname(fs.realpathSync(file)) === fs.realpathSync(dir)) return 0o007
    } catch {
      // not there (the open below says why)
    }
  }
  return 0o077
}

/**
 * Reads a private key file. Refuses (code `SYNMUX_SECURE_KEY_PERMISSIONS`)
 * a file that group or others may read or write, as ssh does (not checked
 * on Windows; in systemd's `$CREDENTIALS_DIRECTORY` the group bits, which
 * there show the ACL that lets the service's user read it, are not
 * checked); a malformed file throws `SYNMUX_SECURE_BAD_KEY`.
 */
export function readPrivateKeyFile(file: string): Buffer {
  checkString('file', file)
  let fd: number
  try {
    fd = fs.openSync(file, 'r')
  } catch (err) {
    throw new SecureError('SYNMUX_SECURE_BAD_KEY', `Cannot read private key file ${file}: ${(err as Error).message}`, { cause: err })
  }
  try {
    const st = fs.fstatSync(fd)
    if (!st.isFile()) throw new SecureError('SYNMUX_SECURE_BAD_KEY', `Private key file ${file} is not a regular file`)
    if (process.platform !== 'win32' && (st.mode & forbiddenModeBits(file)) !== 0) {
      throw new SecureError('SYNMUX_SECURE_KEY_PERMISSIONS', `Private key file ${file} is accessible by others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}); run: chmod 600 ${file}`)
    }
    if (st.size > 4096) throw new SecureError('SYNMUX_SECURE_BAD_KEY', `Private key file ${file} is too large to be a key file`)
    return decodePrivateKey(fs.readFileSync(fd, 'utf8'))
  } finally {
    fs.closeSync(fd)
  }
}

/**
 * The keys a server accepts, each with a name (for logs and stats). Its
 * `authorize` is ready for the server's `authorize` option.
 */
export class AuthorizedKeys {
  readonly #names = new Map<string, string>()

  /** @param entries `[public key, name]` pairs. */
  constructor(entries: Iterable<readonly [Uint8Array, string]> = []) {
    for (const [key, name] of entries) this.#names.set(checkBytes('key', key).toString('base64'), name)
  }

  /** Number of keys. */
  get size(): number {
    return this.#names.size
  }

  /** The name of a key, or `null` if it is not authorized. */
  get(publicKey: Uint8Array): string | null {
    if (!(publicKey instanceof Uint8Array) || publicKey.length !== X25519_KEY_BYTES) return null
    return this.#names.get(Buffer.from(publicKey).toString('base64')) ?? null
  }

  /** Whether a key is authorized. */
  has(publicKey: Uint8Array): boolean {
    return this.get(publicKey) !== null
  }

  /** `[base64 key, name]` pairs. */
  entries(): IterableIterator<[string, string]> {
    return this.#names.entries()
  }

  /** `get`, bound: pass it as the server's `authorize` option. */
  readonly authorize = (publicKey: Uint8Array): string | null => this.get(publicKey)
}

/** Longest name of a key in an authorized-keys file. */
export const MAX_KEY_NAME = 64

/**
 * Parses an authorized-keys file: one `<base64 public key> <name>` per
 * line; `#` starts a comment (anywhere on a line); blank lines are
 * ignored. The name is the rest of the line (1–64 characters, no control
 * characters). A key may appear once.
 * @throws TypeError with code `SYNMUX_SECURE_BAD_AUTHORIZED_KEYS` naming the line.
 */
export function parseAuthorizedKeys(text: string): AuthorizedKeys {
  const lines = checkString('text', text).split(/\r?\n/)
  const entries: [Buffer, string][] = []
  const seen = new Map<string, number>()
  const fail = (n: number, why: string): never => {
    throw badInput(TypeError, 'SYNMUX_SECURE_BAD_AUTHORIZED_KEYS', `authorized keys, line ${n}: ${why}`)
  }
  lines.forEach((raw, i) => {
    const n = i + 1
    const hash = raw.indexOf('#')
    const line = (hash >= 0 ? raw.slice(0, hash) : raw).trim()
    if (!line) return
    const m = /^(\S+)(?:\s+(.*))?$/.exec(line)!
    const b64 = m[1]!
    const name = (m[2] ?? '').trim()
    if (!B64_32.test(b64)) fail(n, `'${b64.slice(0, 60)}' is not a public key (44 characters of base64)`)
    if (!name) fail(n, 'the key needs a name after it, e.g. "<key> laptop"')
    if (name.length > MAX_KEY_NAME) fail(n, `the name is longer than ${MAX_KEY_NAME} characters`)
    if (/[\u0000-\u001f\u007f]/.test(name)) fail(n, 'the name holds a control character')
    const first = seen.get(b64)
    if (first !== undefined) fail(n, `the key is already on line ${first}`)
    seen.set(b64, n)
    entries.push([Buffer.from(b64, 'base64'), name])
  })
  return new AuthorizedKeys(entries)
}

/** Reads and parses an authorized-keys file (see {@link parseAuthorizedKeys}). */
export function readAuthorizedKeysFile(file: string): AuthorizedKeys {
  checkString('file', file)
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (err) {
    throw new SecureError('SYNMUX_SECURE_BAD_AUTHORIZED_KEYS', `Cannot read authorized keys file ${file}: ${(err as Error).message}`, { cause: err })
  }
  return parseAuthorizedKeys(text)
}
