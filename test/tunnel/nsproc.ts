/**
 * Node processes for the tests that run several of them, each inside a
 * network namespace or not: their log lines, their stdout's JSON lines one
 * by one, and a way to write a line to their stdin.
 */
import { spawn, type ChildProcess } from 'node:child_process'

/** A process started by {@link launch}. */
export interface Launched {
  child: ChildProcess
  log: string[]
  /** The first log line (stdout or stderr) matching `re`, already seen or later; rejects if the process exits first. */
  waitFor(re: RegExp, ms?: number): Promise<string>
  /** The next JSON line on stdout. */
  json(ms?: number): Promise<any>
  /** Writes a line to its stdin. */
  send(line: string): void
}

/** Runs `node <args>`, inside network namespace `ns` if given. */
export function launch(ns: string | null, args: string[]): Launched {
  const child = ns === null ? spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] }) : spawn('ip', ['netns', 'exec', ns, process.execPath, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
  const log: string[] = []
  const out: string[] = []
  const waiters = new Set<() => void>()
  const lines = (into: string[] | null) => {
    let buf = ''
    return (d: Buffer) => {
      buf += d
      for (let i; (i = buf.indexOf('\n')) >= 0; ) {
        const l = buf.slice(0, i)
        buf = buf.slice(i + 1)
        log.push(l)
        into?.push(l)
        for (const w of [...waiters]) w()
      }
    }
  }
  child.stdout!.on('data', lines(out))
  child.stderr!.on('data', lines(null))
  child.stdin!.on('error', () => {})
  // ('close': after its output has all been read, unlike 'exit')
  const exited = new Promise<never>((_, reject) => child.once('close', (code) => reject(new Error(`${args[0]} exited ${code}:\n${log.slice(-20).join('\n')}`))))
  exited.catch(() => {})
  const when = <T>(get: () => T | undefined, what: string, ms: number): Promise<T> =>
    Promise.race([
      exited,
      new Promise<T>((resolve, reject) => {
        const check = () => {
          const v = get()
          if (v === undefined) return
          waiters.delete(check)
          clearTimeout(t)
          resolve(v)
        }
        const t = setTimeout(() => (waiters.delete(check), reject(new Error(`timed out waiting for ${what}:\n${log.slice(-30).join('\n')}`))), ms)
        waiters.add(check)
        check()
      }),
    ])
  return {
    child,
    log,
    waitFor: (re, ms = 10_000) => when(() => log.find((l) => re.test(l)), String(re), ms),
    json: (ms = 50_000) => when(() => (out.length > 0 ? JSON.parse(out.shift()!) : undefined), 'a JSON line', ms),
    send: (line) => child.stdin!.write(line + '\n'),
  }
}
