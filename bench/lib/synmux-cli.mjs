// The synmux CLI as the benches drive it: which CLI this checkout has (read
// from its --help, so a bench runs unchanged before and after a flag lands),
// the keys a mode needs, and the server/client flags for that mode.
//
// Modes:
//   secure     the secure channel (Noise, X25519 keys): `synmux keygen FILE`,
//              server --key FILE --authorized-keys FILE, client --key FILE
//              --server-key BASE64. Only on a CLI whose server help names
//              --authorized-keys.
//   plaintext  clear text authenticated by a pre-shared key: --key PSK, plus
//              --insecure-plaintext where the CLI has that flag (on a CLI
//              without it, a PSK key alone already means clear text).
//   tls        TLS with a throwaway self-signed certificate pinned by the
//              client (--tls-cert/--tls-key, --tls --fingerprint) and the PSK.
import { execFileSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { cliPath } from './proc.mjs'

export const MODES = ['secure', 'plaintext', 'tls']

const help = (...args) => {
  try {
    return execFileSync(process.execPath, [cliPath, ...args, '--help'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (e) {
    return `${e.stdout ?? ''}${e.stderr ?? ''}`
  }
}

/**
 * What the CLI offers, from `synmux server --help`, `client --help` and
 * `keygen --help`: { modes, defaultMode, flags: {insecurePlaintext, workers, ...}, keygen }.
 */
export function detectCli() {
  if (!fs.existsSync(cliPath)) throw new Error(`${cliPath} is missing: run npm run build (or npm ci) first`)
  const server = help('server')
  const client = help('client')
  const keygen = help('keygen')
  const flags = {
    authorizedKeys: /--authorized-keys\b/.test(server),
    serverKey: /--server-key\b/.test(client),
    insecurePlaintext: /--insecure-plaintext\b/.test(server) && /--insecure-plaintext\b/.test(client),
    tls: /--tls-cert\b/.test(server) && /--fingerprint\b/.test(client),
    workers: /--workers\b/.test(server),
  }
  const keygenForm = {
    // `synmux keygen FILE` writes a private key and prints its public key
    privateKeyFile: /keygen FILE/.test(keygen),
    // `synmux keygen --psk` prints a PSK; without the flag (older CLI) `synmux keygen` does
    pskFlag: /--psk\b/.test(keygen),
  }
  const modes = [...(flags.authorizedKeys && flags.serverKey && keygenForm.privateKeyFile ? ['secure'] : []), 'plaintext', ...(flags.tls ? ['tls'] : [])]
  return { modes, defaultMode: modes.includes('secure') ? 'secure' : 'plaintext', flags, keygen: keygenForm }
}

function keygen(args) {
  return execFileSync(process.execPath, [cliPath, 'keygen', ...args], { encoding: 'utf8' }).trim()
}

/**
 * Makes the keys of `mode` in `dir` and returns the flags:
 * { mode, serverArgs, clientArgs, description }.
 */
export function synmuxMode(mode, dir, cli = detectCli()) {
  if (!cli.modes.includes(mode)) throw new Error(`--synmux-mode ${mode}: this CLI offers ${cli.modes.join(', ')} (read from its --help)`)
  const psk = () => {
    const file = path.join(dir, 'psk')
    if (!fs.existsSync(file)) fs.writeFileSync(file, keygen(cli.keygen.pskFlag ? ['--psk'] : []) + '\n', { mode: 0o600 })
    return file
  }
  if (mode === 'secure') {
    const serverKey = path.join(dir, 'server.key')
    const clientKey = path.join(dir, 'client.key')
    const authorized = path.join(dir, 'synmux_authorized_keys')
    for (const f of [serverKey, clientKey]) fs.rmSync(f, { force: true })
    const serverPub = keygen([serverKey])
    const clientPub = keygen([clientKey])
    fs.writeFileSync(authorized, `${clientPub} bench\n`)
    return {
      mode,
      serverArgs: ['--key', serverKey, '--authorized-keys', authorized],
      clientArgs: ['--key', clientKey, '--server-key', serverPub],
      description: 'secure channel (Noise handshake with X25519 keys from synmux keygen, AEAD records), the CLI default',
    }
  }
  if (mode === 'plaintext') {
    const extra = cli.flags.insecurePlaintext ? ['--insecure-plaintext'] : []
    return {
      mode,
      serverArgs: ['--key', psk(), ...extra],
      clientArgs: ['--key', psk(), ...extra],
      description: cli.flags.insecurePlaintext
        ? 'clear text, authenticated by a pre-shared key (--insecure-plaintext: not encrypted)'
        : "clear text, authenticated by a pre-shared key (this CLI's only mode without TLS; not encrypted)",
    }
  }
  // tls: a throwaway self-signed P-256 certificate, pinned by its SHA-256
  const cert = path.join(dir, 'tls.crt')
  const key = path.join(dir, 'tls.key')
  if (!fs.existsSync(cert)) {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=synmux-bench', '-days', '2', '-keyout', key, '-out', cert], { stdio: 'ignore' })
  }
  const fingerprint = new crypto.X509Certificate(fs.readFileSync(cert)).fingerprint256
  return {
    mode,
    serverArgs: ['--key', psk(), '--tls-cert', cert, '--tls-key', key],
    clientArgs: ['--key', psk(), '--tls', '--fingerprint', fingerprint],
    description: 'TLS (self-signed P-256 certificate pinned by the client, Node defaults: TLS 1.3, AES-128-GCM or ChaCha20) plus the pre-shared key',
  }
}

/** `--name value` as a string, or `dflt`. */
export function strArg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`)
  return i < 0 ? dflt : process.argv[i + 1]
}

/** Splits a flag string such as "--workers 2 --max-streams 100" into argv words (no shell quoting). */
export function splitArgs(s) {
  return String(s ?? '').split(/\s+/).filter(Boolean)
}
