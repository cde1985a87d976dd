/**
 * Runs the real `synmux` CLI as child processes for the tunnel and proxy
 * tests, and the client-side helpers those end-to-end tests share (HTTP
 * requests, curl, SOCKS5).
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { ROOT, skipReason } from '../helpers'
import { running, stopAll } from '../procs'
import { encodePublicKey, generateKeyPair, writePrivateKeyFile, type KeyPair } from 'synmux'

export const CLI = path.join(ROOT, 'dist', 'cjs', 'cli', 'index.js')

export interface Proc {
  child: ChildProcess
  log: string[]
  /** Resolves with the first log line matching `re` (already seen or later). */
  waitFor(re: RegExp, ms?: number): Promise<string>
  stop(): Promise<void>
}


/** Starts `synmux <args>` (with `env` added to the environment); lines of stderr are collected in `log`. */
export function synmux(args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
  const log: string[] = []
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = []
  let buf = ''
  const onText = (d: Buffer) => {
    buf += d
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 1)
      log.push(line)
      for (const w of [...waiters]) if (w.re.test(line)) (waiters.splice(waiters.indexOf(w), 1), w.resolve(line))
    }
  }
  child.stderr!.on('data', onText)
  child.stdout!.on('data', onText)
  const p: Proc = {
    child,
    log,
    waitFor(re, ms = 10_000) {
      const seen = log.find((l) => re.test(l))
      if (seen) return Promise.resolve(seen)
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`timed out waiting for ${re}; log:\n${log.join('\n')}`)), ms)
        waiters.push({ re, resolve: (l) => (clearTimeout(t), resolve(l)) })
      })
    },
    stop() {
      running.delete(p)
      if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
      // SIGTERM drains (up to --drain-timeout, 30 s): a test that leaves connections open does not wait for that.
      return new Promise((r) => {
        const t = setTimeout(() => child.kill('SIGKILL'), 1500)
        child.once('exit', () => (clearTimeout(t), r()))
        child.kill('SIGTERM')
      })
    },
  }
  running.add(p)
  return p
}

/** Stops every process started by {@link synmux} (and not stopped yet). */
export { stopAll }

/** The keys of a secure-channel tunnel (PROTOCOL.md 20), as files, and the flags that name them. */
export interface SecureKeys {
  dir: string
  serverKeyFile: string
  clientKeyFile: string
  /** The server's authorized-keys file (the client key, named by `name`). */
  authorizedFile: string
  /** Public keys, base64. */
  serverPublic: string
  clientPublic: string
  /** Raw keys, for API clients and hand-made peers. */
  serverKeys: KeyPair
  clientKeys: KeyPair
  /** `--key ... --authorized-keys ...` for `synmux server`. */
  server: string[]
  /** `--key ... --server-key ...` for `synmux client`. */
  client: string[]
  /** A further client key (authorized or not): its `--key ... --server-key ...` flags and key pair. */
  another(name?: string | null): { args: string[]; keys: KeyPair; file: string }
}

/**
 * Fresh secure-channel keys in a temp dir (mode 600, as `synmux keygen`
 * writes them): a server key, a client key authorized as `name`.
 */
export function secureKeys(name = 'test-client'): SecureKeys {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synmux-keys-'))
  const serverKeys = generateKeyPair()
  const clientKeys = generateKeyPair()
  const serverKeyFile = path.join(dir, 'server.key')
  const clientKeyFile = path.join(dir, 'client.key')
  writePrivateKeyFile(serverKeyFile, serverKeys.privateKey)
  writePrivateKeyFile(clientKeyFile, clientKeys.privateKey)
  const authorizedFile = path.join(dir, 'authorized_keys')
  fs.writeFileSync(authorizedFile, `# test\n${encodePublicKey(clientKeys.publicKey)} ${name}\n`)
  const serverPublic = encodePublicKey(serverKeys.publicKey)
  let n = 0
  return {
    dir,
    serverKeyFile,
    clientKeyFile,
    authorizedFile,
    serverPublic,
    clientPublic: encodePublicKey(clientKeys.publicKey),
    serverKeys,
    clientKeys,
    server: ['--key', serverKeyFile, '--authorized-keys', authorizedFile],
    client: ['--key', clientKeyFile, '--server-key', serverPublic],
    another(other: string | null = null) {
      const keys = generateKeyPair()
      const file = path.join(dir, `client-${++n}.key`)
      writePrivateKeyFile(file, keys.privateKey)
      if (other !== null) fs.appendFileSync(authorizedFile, `${encodePublicKey(keys.publicKey)} ${other}\n`)
      return { args: ['--key', file, '--server-key', serverPublic], keys, file }
    },
  }
}

/** A fresh pre-shared key file (mode 600) in a temp dir (for --insecure-plaintext and --tls). */
export function keyFile(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synmux-key-'))
  const file = path.join(dir, 'key')
  fs.writeFileSync(file, `synmux-psk-v1:${crypto.randomBytes(32).toString('base64')}\n`, { mode: 0o600 })
  return file
}

/** A free TCP port on 127.0.0.1 (bound, read, released). */
/**
 * The kernel's range for ephemeral ports (outgoing connections and
 * `listen(0)`): Linux's `ip_local_port_range`, else the IANA range that
 * macOS and Windows use.
 */
function ephemeralRange(): [number, number] {
  try {
    const [lo, hi] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number)
    if (lo! > 0 && hi! >= lo!) return [lo!, hi!]
  } catch {}
  return [49152, 65535]
}
const EPHEMERAL = ephemeralRange()
/** Ports 10000-... up to the ephemeral range (or above it, where it starts too low to leave room). */
const PICK: [number, number] = EPHEMERAL[0] - 10000 >= 4096 ? [10000, EPHEMERAL[0] - 1] : [Math.max(EPHEMERAL[1] + 1, 10000), 65535]

/**
 * A port that is free on 127.0.0.1 now, for a `synmux` process to listen
 * on. Picked at random outside the kernel's ephemeral range and checked by
 * binding it: a port `listen(0)` handed out could be taken, before the
 * process binds it, as the local port of one of the thousands of
 * connections other tests (running in parallel) open — the clean-clone CI
 * failed with EADDRINUSE that way while a flood test ran.
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = PICK[0] + Math.floor(Math.random() * (PICK[1] - PICK[0] + 1))
    const s = net.createServer()
    const ok = await new Promise<boolean>((r) => {
      s.once('error', () => r(false))
      s.listen({ port, host: '127.0.0.1', exclusive: true }, () => r(true))
    })
    if (!ok) continue
    await new Promise((r) => s.close(r))
    return port
  }
}

/** A minimal SOCKS5 CONNECT client (RFC 1928, no auth) for the tests. */
export function socksConnect(proxyPort: number, host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port: proxyPort })
    const isIp = net.isIPv4(host)
    const addr = isIp ? Buffer.from([1, ...host.split('.').map(Number)]) : Buffer.concat([Buffer.from([3, host.length]), Buffer.from(host)])
    s.write(Buffer.concat([Buffer.from([5, 1, 0]), Buffer.from([5, 1, 0]), addr, Buffer.from([port >> 8, port & 255])]))
    let got = Buffer.alloc(0)
    const onData = (d: Buffer) => {
      got = Buffer.concat([got, d])
      if (got.length < 12) return
      s.off('data', onData)
      s.off('error', reject)
      if (got[0] !== 5 || got[1] !== 0 || got[3] !== 0) return reject(new Error(`SOCKS reply ${got.subarray(0, 12).toString('hex')}`))
      if (got.length > 12) s.unshift(got.subarray(12))
      resolve(s)
    }
    s.on('data', onData)
    s.once('error', reject)
  })
}

/** Runs `synmux <args>` (with `env` added to the environment) to completion: exit code, stdout, stderr. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return promisify(execFile)(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env } }).then(
    (r) => ({ code: 0, ...r }),
    (e) => ({ code: e.code as number, stdout: e.stdout as string, stderr: e.stderr as string }),
  )
}

/** Whether `cmd --version` runs (the command is installed). */
export function hasCommand(cmd: string): boolean {
  try {
    execFileSync(cmd, ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/**
 * The skip reason for a test that needs `cmd`, or false. .ci/run installs
 * what the tests need: under CI a missing command fails the test instead.
 */
export function needCommand(cmd: string, what = cmd): string | false {
  return skipReason(hasCommand(cmd) || process.env.CI ? false : `${what} is not installed (.ci/run installs it)`)
}

/** Whether curl is installed (.ci/run installs it); tests that need it skip with the reason otherwise. */
export const hasCurl: boolean = (() => {
  try {
    execFileSync('curl', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()

/** The skip reason for curl tests, or false. */
export const needCurl: string | false = hasCurl ? false : 'curl is not installed (.ci/run installs it)'

/** Runs curl with `args` (rejects on a non-zero exit). */
export function curl(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return promisify(execFile)('curl', args, { encoding: 'utf8' })
}

/** What {@link httpRequest} resolves with. */
export interface HttpResult {
  status: number
  headers: http.IncomingHttpHeaders
  rawHeaders: string[]
  body: Buffer
  trailers: string[]
  /** Status codes of the interim (1xx) responses. */
  info: number[]
}

/**
 * One HTTP request to 127.0.0.1:`port` with node:http, whole body read.
 * `path` is origin-form (`/x`) to a server or port forward, absolute-form
 * (`http://host/x`) to an HTTP proxy. Default method: POST with a body,
 * GET without; default agent: none (a connection of its own).
 */
export function httpRequest(
  port: number,
  path: string,
  opts: { method?: string; headers?: http.OutgoingHttpHeaders | string[]; body?: Buffer; agent?: http.Agent | false } = {},
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const info: number[] = []
    const method = opts.method ?? (opts.body ? 'POST' : 'GET')
    const req = http.request({ host: '127.0.0.1', port, method, path, headers: opts.headers ?? {}, agent: opts.agent ?? false }, (res) => {
      const c: Buffer[] = []
      res.on('data', (d: Buffer) => c.push(d))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(c), trailers: res.rawTrailers, info }))
      res.on('error', reject)
    })
    req.on('information', (i) => info.push(i.statusCode))
    req.on('error', reject)
    req.end(opts.body)
  })
}
