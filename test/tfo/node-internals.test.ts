/**
 * Windows TFO hands natively created SOCKETs to Node through Node's
 * internal `TCP` handle class (there is no supported API for it), reached in
 * one function of src/tfo/win-handle.ts. This test runs on every Node that
 * CI runs (20 here and in `npm test`, 22 and 24 in .ci/run, all three in the
 * workflow) and fails loudly on the first Node that removes a route, before
 * any Windows user meets it.
 */
import { createRequire } from 'node:module'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { ROOT } from '../helpers'

const req = createRequire(__filename)
const { tcpWrapRoutes } = req(path.join(ROOT, 'dist', 'cjs', 'tfo', 'win-handle.js')) as {
  tcpWrapRoutes(): { route: string | null; processBinding: boolean; netHandle: boolean }
}

describe(`Node internals the Windows code relies on (Node ${process.version})`, () => {
  const r = tcpWrapRoutes()

  it("process.binding('tcp_wrap') still gives a TCP class with open() (DEP0111, documentation-only)", () => {
    expect(r.processBinding, `process.binding('tcp_wrap') is gone or changed in Node ${process.version}: Windows now depends on the net-handle fallback alone`).toBe(true)
    expect(r.route).toBe('process.binding')
  })

  it('the fallback route (the constructor of a handle net creates) works too', () => {
    expect(r.netHandle, `Node ${process.version}: a net.Socket's handle constructor has no open(); the Windows fallback route is gone`).toBe(true)
  })
})
