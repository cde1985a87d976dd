/**
 * The native layer's failure paths, each in a child process of its own
 * (a crash there must not take the test runner down): an exception thrown
 * from a callback the addon calls from libuv, a connect whose descriptor
 * table is full, the one-line `fastOpenSupport()` detail when no addon
 * fits, and the Node internal the Windows code depends on.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { FIXTURES, ROOT, isLinux, skipReason } from '../helpers'

const hasPrlimit = (() => {
  try {
    execFileSync('prlimit', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()

function node(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 30_000 })
}

describe.skipIf(skipReason(process.platform === 'win32' ? 'waitWritable is the POSIX wait (Windows completes ConnectEx through a thread-safe function)' : false))(
  'an exception thrown from the waitWritable callback (libuv poll callback)',
  () => {
    it("reaches 'uncaughtException'; the process survives and the addon keeps working", () => {
      const r = node([path.join(FIXTURES, 'wait-throw.mjs')])
      expect(r.signal, r.stderr).toBeNull()
      expect(r.status, r.stderr).toBe(0)
      expect(JSON.parse(r.stdout.trim().split('\n').pop()!)).toEqual({
        seen: ['thrown from the waitWritable callback'],
        second: 'connected',
      })
    })

    it('without a listener Node reports it like any uncaught exception (exit 1), not an abort', () => {
      const r = node([path.join(FIXTURES, 'wait-throw.mjs')], { SYNMUX_NO_HANDLER: '1' })
      expect(r.signal).toBeNull() // an abort would be SIGABRT
      expect(r.status).toBe(1)
      expect(r.stderr).toContain('Error: thrown from the waitWritable callback')
      expect(r.stderr).not.toContain('terminate called')
    })
  },
)

describe.skipIf(skipReason(!isLinux ? '/proc/self/fd and prlimit are Linux-only' : !hasPrlimit ? 'prlimit (util-linux) is not installed' : false))(
  'a full descriptor table (RLIMIT_NOFILE lowered with prlimit)',
  () => {
    for (const method of ['sendto', 'handle']) {
      it(`connectWithData (${method}) closes its socket when the wait for the handshake cannot start`, () => {
        const r = spawnSync('prlimit', ['--nofile=128:128', process.execPath, path.join(FIXTURES, 'emfile.mjs')], {
          cwd: ROOT,
          env: { ...process.env, SYNMUX_LINUX_TFO_METHOD: method },
          encoding: 'utf8',
          timeout: 30_000,
        })
        expect(r.status, r.stderr).toBe(0)
        const out = JSON.parse(r.stdout.trim().split('\n').pop()!)
        for (const round of out.rounds) {
          // sendto: nothing listens, so the handshake is not complete after
          // the connect call and the wait always starts (and fails with
          // EMFILE); handle: the refusal may come before a wait is needed.
          if (method === 'sendto') expect(round).toMatchObject({ code: 'EMFILE', syscall: 'connect' })
          expect(round.freed).toBe(true)
        }
        expect(out.after).toBeLessThanOrEqual(out.baseline)
      })
    }
  },
)

describe('fastOpenSupport() when no addon fits', () => {
  it('says why on one line (the loader error without its newline and stray parenthesis)', () => {
    // The package as installed, without build/ or prebuilds/: node-gyp-build's
    // own multi-line "No native build was found" error.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synmux-noaddon-'))
    try {
      fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(dir, 'package.json'))
      fs.cpSync(path.join(ROOT, 'dist'), path.join(dir, 'dist'), { recursive: true })
      fs.cpSync(path.join(ROOT, 'node_modules', 'node-gyp-build'), path.join(dir, 'node_modules', 'node-gyp-build'), { recursive: true })
      const r = spawnSync(process.execPath, ['-p', 'JSON.stringify(require("./").fastOpenSupport())'], { cwd: dir, encoding: 'utf8' })
      expect(r.status, r.stderr).toBe(0)
      const s = JSON.parse(r.stdout)
      expect(s).toMatchObject({ addon: false, client: false, server: false, reason: 'addon-unavailable' })
      expect(s.detail).toMatch(/^the native addon did not load \(No native build was found for platform=\S+ arch=\S+ .*\); connections use plain net\. /)
      expect(s.detail).not.toMatch(/[\r\n]/)
      expect(s.detail.split('(').length).toBe(s.detail.split(')').length)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
