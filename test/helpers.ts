/**
 * Test helpers shared by the TFO tests: real sockets on loopback, fresh
 * loopback addresses (fresh TFO cookie state), and a runner for scripts in
 * a private network namespace (own sysctls, own netstat counters).
 */
import { execFileSync, spawn } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'

export const ROOT = path.join(__dirname, '..')
export const FIXTURES = path.join(__dirname, 'fixtures')

export const sha256 = (b: Uint8Array): string => crypto.createHash('sha256').update(b).digest('hex')

export const isLinux = process.platform === 'linux'
export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0

/** Linux net.ipv4.tcp_fastopen of this namespace, or undefined. */
export function tfoSetting(): number | undefined {
  try {
    return Number(fs.readFileSync('/proc/sys/net/ipv4/tcp_fastopen', 'utf8'))
  } catch {
    return undefined
  }
}

/** Server TFO is on here (bit 2 or 0x400). */
export const serverTfoOn = (): boolean => ((tfoSetting() ?? 0) & 0x402) !== 0

/** Prints why a test is skipped: a skip is never silent. */
export function skipReason(reason: string | false): string | false {
  if (reason) console.warn(`[skip] ${reason}`)
  return reason
}

/**
 * A loopback address nobody has used in this run: Linux caches TFO cookies
 * per destination address, so a fresh one means "first connection, no cookie".
 */
export function freshLoopback(): string {
  const b = crypto.randomBytes(3)
  return `127.${1 + (b[0]! % 250)}.${b[1]}.${1 + (b[2]! % 250)}`
}

export function listen(server: net.Server, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, host, () => {
      server.off('error', reject)
      resolve((server.address() as net.AddressInfo).port)
    })
  })
}

export function close(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()))
}

export function readAll(socket: net.Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.once('end', () => resolve(Buffer.concat(chunks)))
    socket.once('error', reject)
  })
}

/** Open descriptors of this process. */
export function fdCount(): number {
  return fs.readdirSync('/proc/self/fd').length
}

/** TcpExt counters of the current network namespace. */
export function netstat(): Record<string, number> {
  const lines = fs.readFileSync('/proc/net/netstat', 'utf8').split('\n')
  const out: Record<string, number> = {}
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const keys = lines[i]!.split(/\s+/)
    const vals = lines[i + 1]!.split(/\s+/)
    if (keys[0] !== 'TcpExt:') continue
    keys.slice(1).forEach((k, j) => (out[k] = Number(vals[j + 1])))
  }
  return out
}

export const canUseNetns = (): boolean => {
  if (!isLinux || !isRoot) return false
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/**
 * `runInNetns` set-up for a dead end: a veth whose peer stays down, with
 * 198.18.5.1/24 on our side, so ARP for 198.18.5.2 is never answered (a
 * SYN to it is never answered) and nothing else is routed.
 */
export const DEAD_END_VETH: string[][] = [
  ['link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1'],
  ['addr', 'add', '198.18.5.1/24', 'dev', 'v0'],
  ['link', 'set', 'v0', 'up'],
]

/**
 * Runs `node fixtures/<script>` inside a new network namespace with only `lo`
 * (up) and the given sysctl value, then deletes the namespace. The script
 * prints one JSON line as its result.
 */
export async function runInNetns(
  script: string,
  opts: { tcpFastOpen: number; env?: Record<string, string>; setup?: string[][] },
): Promise<any> {
  const ns = `smxt-${process.pid}-${crypto.randomBytes(3).toString('hex')}`
  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' })
  ip('netns', 'add', ns)
  try {
    ip('-n', ns, 'link', 'set', 'lo', 'up')
    ip('netns', 'exec', ns, 'sysctl', '-qw', `net.ipv4.tcp_fastopen=${opts.tcpFastOpen}`)
    for (const cmd of opts.setup ?? []) ip('-n', ns, ...cmd)
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn('ip', ['netns', 'exec', ns, process.execPath, path.join(FIXTURES, script)], {
        cwd: ROOT,
        env: { ...process.env, ...opts.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      let stdout = ''
      let stderr = ''
      child.stdout.on('data', (d) => (stdout += d))
      child.stderr.on('data', (d) => (stderr += d))
      child.on('error', reject)
      child.on('close', (code) =>
        code === 0 ? resolve(stdout) : reject(new Error(`${script} exited ${code}: ${stderr}${stdout}`)),
      )
    })
    const line = out.trim().split('\n').pop()!
    return JSON.parse(line)
  } finally {
    try {
      ip('netns', 'del', ns)
    } catch {
      // already gone
    }
  }
}

/** Runs a fixture script as a plain child process (no namespace) and parses its JSON line. */
export function runNode(script: string, env: Record<string, string> = {}): Promise<any> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(FIXTURES, script)], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`${script} exited ${code}: ${stderr}${stdout}`))
      resolve(JSON.parse(stdout.trim().split('\n').pop()!))
    })
  })
}
