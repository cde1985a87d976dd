/**
 * Pre-shared keys: `synmux keygen` output and key files.
 * @packageDocumentation
 */
import crypto from 'node:crypto'
import fs from 'node:fs'
import { TunnelError } from './errors.js'

/** Key files start with this tag, then the base64 key. */
const TAG = 'synmux-psk-v1:'
/** Bytes of a generated key; keys shorter than this are refused. */
export const KEY_BYTES = 32

/** A new random key in key-file form (one line). */
export function generateKey(): string {
  return TAG + crypto.randomBytes(KEY_BYTES).toString('base64')
}

/**
 * Parses key-file text (surrounding whitespace and `#` comment lines are ignored).
 * @throws TunnelError `SYNMUX_BAD_KEY`
 */
export function parseKey(text: string): Buffer {
  const line = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
  if (line.length !== 1 || !line[0]!.startsWith(TAG)) {
    throw new TunnelError('SYNMUX_BAD_KEY', `A key file holds one line '${TAG}<base64>' (make one with: synmux keygen --psk > key)`)
  }
  const b64 = line[0]!.slice(TAG.length)
  const key = Buffer.from(b64, 'base64')
  if (!/^[A-Za-z0-9+/]+=*$/.test(b64) || key.length < KEY_BYTES) {
    throw new TunnelError('SYNMUX_BAD_KEY', `The key must be at least ${KEY_BYTES} bytes of base64`)
  }
  return key
}

/**
 * Reads a key file. Returns the key and a warning when the file is readable
 * by other users.
 */
export function readKeyFile(file: string): { key: Buffer; warning?: string } {
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (err) {
    throw new TunnelError('SYNMUX_BAD_KEY', `Cannot read key file ${file}: ${(err as Error).message}`, { cause: err })
  }
  const key = parseKey(text)
  if (process.platform !== 'win32') {
    const mode = fs.statSync(file).mode & 0o077
    if (mode !== 0) return { key, warning: `key file ${file} is readable by other users (chmod 600 ${file})` }
  }
  return { key }
}
