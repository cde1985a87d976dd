// Key making must not hang the process (src/secure/primitives.ts, "Key
// objects"): on Node 20 a key object from crypto.generateKeyPair[Sync]()
// deadlocks its thread when a GC frees the generation job while the key's
// lock is held (export() allocating). Child processes with a GC forced
// every N allocations (N = 5, 7, ..., 41: where the GC lands depends on N)
// make keys every way synmux makes them — the public generateKeyPair()
// in a tight loop, then the pool made ahead in the thread pool, keys made
// on the spot with the pool empty and a key pair from raw bytes — and
// must all finish. Before the fix 8 of these 19 children hung.
import { describe, it, expect } from 'vitest'
import { spawn } from 'node:child_process'
import path from 'node:path'

const dist = path.resolve(import.meta.dirname, '../../dist/cjs')

const SCRIPT = `
const path = require('node:path')
const dist = ${JSON.stringify(dist)}
const { generateKeyPair } = require(dist)
const { takeEphemeral, refillEphemeral } = require(path.join(dist, 'secure/precompute.js'))
const { x25519KeyPair } = require(path.join(dist, 'secure/primitives.js'))
let t0 = Date.now()
let n = 0
while (Date.now() - t0 < 500) (generateKeyPair(), n++)
;(async () => {
  t0 = Date.now()
  while (Date.now() - t0 < 300) {
    x25519KeyPair(generateKeyPair().privateKey, false)
    refillEphemeral()
    for (let i = 0; i < 10; i++) takeEphemeral() // past the pool: made on the spot
    await new Promise((r) => setImmediate(r)) // the thread pool's pairs come in
    n++
  }
  console.log(JSON.stringify({ n }))
})()
`

/** Runs the script with --gc-interval=`every`; resolves with its exit code, or 'hung' (killed after 20 s). */
function run(every) {
  const child = spawn(process.execPath, [`--gc-interval=${every}`, '-e', SCRIPT], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (d) => (out += d))
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
  return new Promise((r) => child.on('close', (code, sig) => (clearTimeout(timer), r(sig === 'SIGKILL' ? 'hung' : code === 0 && JSON.parse(out).n > 0 ? 0 : code))))
}

describe('making keys under constant garbage collection', () => {
  it('never hangs the process (Node 20: a key object from generateKeyPair could deadlock on GC)', { timeout: 120_000 }, async () => {
    const intervals = Array.from({ length: 19 }, (_, i) => 5 + 2 * i)
    const results = {}
    for (let i = 0; i < intervals.length; i += 4) {
      const batch = intervals.slice(i, i + 4)
      const codes = await Promise.all(batch.map(run))
      batch.forEach((every, k) => (results[every] = codes[k]))
    }
    expect(Object.entries(results).filter(([, r]) => r !== 0)).toEqual([])
  })
})
