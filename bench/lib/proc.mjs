// Start-up plumbing shared by the benches: command-line options, waiting for
// a spawned process to say it is ready, and writing the JSON result.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

/** bench/ itself. */
export const benchDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

/** The package's CLI (built by `npm run build`). */
export const cliPath = path.join(benchDir, '..', 'dist', 'cjs', 'cli', 'index.js')

/** `--name value` as a number, or `dflt` when absent. */
export function numArg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`)
  if (i < 0) return dflt
  const v = Number(process.argv[i + 1])
  if (!Number.isFinite(v)) throw new RangeError(`--${name} wants a number, got ${process.argv[i + 1]}`)
  return v
}

/** `--name a,b,c` as a list of strings, or `dflt` when absent. */
export function listArg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`)
  return i < 0 ? dflt : String(process.argv[i + 1] ?? '').split(',').filter(Boolean)
}

/**
 * Resolves with the match of `re` once the child has printed it (stdout or
 * stderr, whichever is piped); rejects if the child exits first or nothing
 * matches within `timeoutMs`.
 */
export function waitReady(child, re, { timeoutMs = 30_000 } = {}) {
  return new Promise((resolve, reject) => {
    let buf = ''
    const done = (fn, v) => {
      clearTimeout(timer)
      child.stdout?.off('data', on)
      child.stderr?.off('data', on)
      child.off('exit', onExit)
      fn(v)
    }
    const on = (d) => {
      buf += d
      const m = re.exec(buf)
      if (m) done(resolve, m)
    }
    const onExit = (c, sig) => done(reject, new Error(`exited (${c ?? sig}) before ready: ${buf.slice(-2000)}`))
    const timer = setTimeout(() => done(reject, new Error(`not ready after ${timeoutMs} ms: ${buf.slice(-2000)}`)), timeoutMs)
    child.stdout?.on('data', on)
    child.stderr?.on('data', on)
    child.once('exit', onExit)
  })
}

/**
 * Writes bench/results/<name>.json and prints the same JSON. With
 * SYNMUX_BENCH_NO_RESULT_FILE=1 in the environment (a bench run by another
 * bench, bench/goals.mjs) it only prints.
 */
export function writeResult(name, result) {
  const json = JSON.stringify(result, null, 2) + '\n'
  if (!process.env.SYNMUX_BENCH_NO_RESULT_FILE) {
    const dir = path.join(benchDir, 'results')
    fs.mkdirSync(dir, { recursive: true })
    fs.writeFileSync(path.join(dir, `${name}.json`), json)
  }
  process.stdout.write(json)
}
