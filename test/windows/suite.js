// The Windows suite. Runs in Windows Node (node.exe, under wine on Linux CI,
// natively on a Windows runner) against a staged copy of the package:
// dist/ + prebuilds/ + package.json + node_modules/node-gyp-build, no build/,
// so the addon can only come from prebuilds/win32-x64 through node-gyp-build.
//
//   SYNMUX_STAGE=<package dir> node test/windows/suite.js
//
// Optional: SYNMUX_BLACKHOLE_PORT — a loopback port whose SYNs are dropped
// (a full listen queue), for the timeout and abort-during-ConnectEx tests.
// SYNMUX_EXPECT_TFO_REFUSED=1 (set under wine, where setsockopt(TCP_FASTOPEN)
// fails) makes the fallback-reason checks strict; SYNMUX_EXPECT_PREBUILD=1
// requires the addon to come from prebuilds/win32-x64.
//
// Prints one line per test and `windows: N passed, N failed, N skipped`.
'use strict'
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const net = require('node:net')
const path = require('node:path')
const util = require('node:util')

const stage = process.env.SYNMUX_STAGE || path.join(__dirname, '..', '..')
const synmux = require(stage)
const { native, nativeLoadError } = require(path.join(stage, 'dist', 'cjs', 'tfo', 'native.js'))
const expectRefused = process.env.SYNMUX_EXPECT_TFO_REFUSED === '1'
const blackholePort = Number(process.env.SYNMUX_BLACKHOLE_PORT || 0)

const tests = []
const test = (name, fn, opts = {}) => tests.push({ name, fn, ...opts })

function withTimeout(p, ms, what) {
  let t
  return Promise.race([
    p,
    new Promise((_, rej) => {
      t = setTimeout(() => rej(new Error(`${what}: timed out after ${ms} ms`)), ms)
    }),
  ]).finally(() => clearTimeout(t))
}

/** A synmux TFO server that answers each connection with "<bytes> <sha256>" once the client ends. */
async function digestServer(options = {}) {
  const seen = []
  const server = synmux.createServer(options, (c) => {
    const h = crypto.createHash('sha256')
    let n = 0
    c.on('data', (d) => {
      n += d.length
      h.update(d)
    })
    c.on('end', () => {
      seen.push(n)
      c.end(`${n} ${h.digest('hex')}`)
    })
    c.on('error', () => {})
  })
  await new Promise((res, rej) => {
    server.once('error', rej)
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', res)
  })
  return { server, port: server.address().port, seen, close: () => new Promise((r) => server.close(r)) }
}

function readAll(socket) {
  return new Promise((res, rej) => {
    const chunks = []
    socket.on('data', (d) => chunks.push(d))
    socket.on('error', rej)
    socket.on('close', () => res(Buffer.concat(chunks).toString()))
  })
}

/**
 * A loopback port that refuses connections. Not a just-closed ephemeral
 * port: ConnectEx binds its socket to an ephemeral port first, and one that
 * happens to equal the target port connects to itself (TCP simultaneous open).
 */
let refusedPortCache
async function refusedPort() {
  if (refusedPortCache) return refusedPortCache
  for (const port of [9, 1, 7, 13, 19, 1023]) {
    const code = await new Promise((res) => {
      const s = net.connect(port, '127.0.0.1')
      s.on('connect', () => {
        s.destroy()
        res('open')
      })
      s.on('error', (e) => res(e.code))
    })
    if (code === 'ECONNREFUSED') return (refusedPortCache = port)
  }
  throw new Error('no refused low port found on 127.0.0.1')
}

/** connectWithData that must fail: a socket that connects anyway is destroyed, not leaked. */
async function mustFail(options, data) {
  const r = await synmux.connectWithData(options, data).then(
    (socket) => {
      socket.destroy()
      return new Error(`connected to ${options.host}:${options.port} (local port ${socket.localPort})`)
    },
    (e) => ({ rejected: e }),
  )
  if (r instanceof Error) throw r
  return r.rejected
}

function payload(size) {
  const b = Buffer.alloc(size)
  for (let i = 0; i < size; i++) b[i] = (i * 31 + (i >> 8)) & 0xff
  return b
}

function expectedDigest(buf) {
  return `${buf.length} ${crypto.createHash('sha256').update(buf).digest('hex')}`
}

// ---------------------------------------------------------------------------

test('the win32-x64 prebuild loads through node-gyp-build from the staged package', () => {
  assert.equal(process.platform, 'win32')
  assert.equal(nativeLoadError, null, nativeLoadError && nativeLoadError.message)
  assert.ok(native, 'addon loaded')
  const file = require(path.join(stage, 'node_modules', 'node-gyp-build')).path(stage)
  // test-windows.js stages no build/, so there it must be the prebuild; on a
  // Windows runner after `npm ci` it may be build/Release (MSVC).
  if (process.env.SYNMUX_EXPECT_PREBUILD === '1') assert.match(file, /prebuilds[\\/]win32-x64[\\/]synmux\.node$/)
  assert.equal(native.info.platform, 'win32')
  assert.equal(native.info.clientMethod, 'ConnectEx')
  assert.equal(typeof native.connectEx, 'function')
  console.log(`  # ${path.relative(stage, file)}`)
})

test("Node's TCP handle class is reached through process.binding('tcp_wrap'), and the fallback route works too", () => {
  // The Windows hand-over depends on these Node internals (src/tfo/win-handle.ts):
  // fail loudly on the Node release that removes them.
  const { tcpWrapRoutes } = require(path.join(stage, 'dist', 'cjs', 'tfo', 'win-handle.js'))
  const r = tcpWrapRoutes()
  assert.equal(r.processBinding, true, `process.binding('tcp_wrap') is gone in Node ${process.version}`)
  assert.equal(r.route, 'process.binding')
  assert.equal(r.netHandle, true, `Node ${process.version}: the net handle fallback route is gone`)
})

test('fastOpenSupport() reports the OS answer to TCP_FASTOPEN', () => {
  const s = synmux.fastOpenSupport()
  console.log(`  # ${util.inspect(s, { breakLength: Infinity })}`)
  assert.equal(s.platform, 'win32')
  assert.equal(s.addon, true)
  assert.match(s.detail, /Windows \d+\.\d+\.\d+/)
  if (expectRefused) {
    assert.equal(s.client, false)
    assert.equal(s.reason, 'disabled-by-os')
    assert.match(s.detail, /refused/)
  }
})

for (const size of [0, 1024, 1024 * 1024]) {
  test(`connectWithData through ConnectEx delivers ${size} B exactly once`, async () => {
    const srv = await digestServer()
    try {
      const data = payload(size)
      const socket = await withTimeout(synmux.connectWithData({ host: '127.0.0.1', port: srv.port }, data), 10000, 'connect')
      assert.ok(socket instanceof net.Socket)
      assert.equal(socket.remoteAddress, '127.0.0.1')
      assert.equal(socket.remotePort, srv.port)
      assert.ok(socket.localPort > 0)
      const report = socket.fastOpen
      console.log(`  # fastOpen ${JSON.stringify(report)}`)
      if (size === 0) {
        assert.equal(report.reason, 'no-data')
      } else if (expectRefused) {
        // Only the ConnectEx path reports the OS refusing TCP_FASTOPEN.
        assert.deepEqual(report, { attempted: false, accepted: false, reason: 'disabled-by-os' })
      } else {
        assert.equal(report.accepted, report.attempted ? null : false)
      }
      const reply = readAll(socket)
      socket.end()
      assert.equal(await withTimeout(reply, 20000, 'reply'), expectedDigest(data))
      assert.deepEqual(srv.seen, [size])
    } finally {
      await srv.close()
    }
  })
}

test('string data and a second write after connect arrive in order', async () => {
  const srv = await digestServer()
  try {
    const socket = await synmux.connectWithData({ host: '127.0.0.1', port: srv.port, noDelay: true }, 'héllo ')
    const reply = readAll(socket)
    socket.end('world')
    assert.equal(await reply, expectedDigest(Buffer.from('héllo world')))
  } finally {
    await srv.close()
  }
})

test('a ConnectEx socket behaves as a net.Socket: echo, pause/resume, half-close', async () => {
  const server = synmux.createServer({ allowHalfOpen: true }, (c) => {
    c.pipe(c)
  })
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  try {
    const socket = await synmux.connectWithData({ host: '127.0.0.1', port: server.address().port, allowHalfOpen: true }, 'ping')
    socket.pause()
    await new Promise((r) => setTimeout(r, 50))
    const reply = readAll(socket)
    socket.resume()
    socket.end('-pong')
    assert.equal(await withTimeout(reply, 10000, 'echo'), 'ping-pong')
  } finally {
    await new Promise((r) => server.close(r))
  }
})

test('createServer: the listener is made natively and accepts plain and synmux clients', async () => {
  const srv = await digestServer()
  try {
    const state = srv.server.fastOpen
    console.log(`  # server.fastOpen ${JSON.stringify(state)}`)
    assert.equal(state.queue, 256)
    if (expectRefused) {
      assert.equal(state.enabled, false)
      assert.match(state.reason, /^setsockopt E[A-Z]+$/)
    } else {
      assert.ok(state.enabled || /setsockopt/.test(state.reason), state.reason)
    }
    assert.deepEqual(srv.server.address(), { address: '127.0.0.1', family: 'IPv4', port: srv.port })
    const plain = net.connect(srv.port, '127.0.0.1')
    const r1 = readAll(plain)
    plain.end('plain')
    assert.equal(await r1, expectedDigest(Buffer.from('plain')))
    const tfo = await synmux.connectWithData({ host: '127.0.0.1', port: srv.port }, 'tfo')
    const r2 = readAll(tfo)
    tfo.end()
    assert.equal(await r2, expectedDigest(Buffer.from('tfo')))
  } finally {
    await srv.close()
  }
})

test('createServer without a host listens dual-stack on :: like net', async () => {
  const server = synmux.createServer((c) => c.end('hi'))
  await new Promise((r) => server.listen(0, r))
  try {
    const addr = server.address()
    assert.equal(addr.address, '::')
    const viaV4 = readAll(net.connect(addr.port, '127.0.0.1'))
    const viaV6 = readAll(net.connect(addr.port, '::1'))
    assert.equal(await viaV4, 'hi')
    assert.equal(await viaV6, 'hi')
  } finally {
    await new Promise((r) => server.close(r))
  }
})

test('createServer: a port in use fails exactly as net does (EADDRINUSE from listen)', async () => {
  const a = await digestServer()
  try {
    const b = synmux.createServer()
    const err = await new Promise((res) => {
      b.once('error', res)
      b.listen(a.port, '127.0.0.1')
    })
    assert.equal(err.code, 'EADDRINUSE')
    assert.equal(err.syscall, 'listen')
  } finally {
    await a.close()
  }
})

test('enableFastOpen on an already-listening server says why it cannot apply', async () => {
  const server = net.createServer()
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  try {
    synmux.enableFastOpen(server)
    assert.equal(server.fastOpen.enabled, false)
    assert.match(server.fastOpen.reason, /^handle-unavailable/)
  } finally {
    await new Promise((r) => server.close(r))
  }
})

test('createConnection works through plain net and says why (no ConnectEx without data)', async () => {
  const srv = await digestServer()
  try {
    const socket = synmux.createConnection({ host: '127.0.0.1', port: srv.port })
    await new Promise((r, j) => socket.once('connect', r).once('error', j))
    const reply = readAll(socket)
    socket.end('abc')
    assert.equal(await reply, expectedDigest(Buffer.from('abc')))
    assert.deepEqual(socket.fastOpen, { attempted: false, accepted: false, reason: 'unsupported-platform' })
  } finally {
    await srv.close()
  }
})

test('a refused port rejects with a Node-style ECONNREFUSED from connect', async () => {
  const port = await refusedPort()
  const err = await mustFail({ host: '127.0.0.1', port }, 'x')
  assert.equal(err.code, 'ECONNREFUSED')
  assert.equal(err.syscall, 'connect')
  assert.equal(util.getSystemErrorName(err.errno), 'ECONNREFUSED')
  assert.equal(err.address, '127.0.0.1')
  assert.equal(err.port, port)
  assert.equal(err.message, `connect ECONNREFUSED 127.0.0.1:${port}`)
})

test('200 refused ConnectEx connects in a row all reject cleanly', async () => {
  const port = await refusedPort()
  const other = []
  for (let i = 0; i < 200; i++) {
    const e = await mustFail({ host: '127.0.0.1', port }, 'x')
    if (e.code !== 'ECONNREFUSED') other.push(e.code || e.message)
  }
  assert.deepEqual(other, [])
  // The process still works: a live connection afterwards.
  const live = await digestServer()
  try {
    const s = await synmux.connectWithData({ host: '127.0.0.1', port: live.port }, 'ok')
    const r = readAll(s)
    s.end()
    assert.equal(await r, expectedDigest(Buffer.from('ok')))
  } finally {
    await live.close()
  }
})

test('an aborted signal rejects with AbortError before any socket exists', async () => {
  const ac = new AbortController()
  ac.abort()
  const err = await mustFail({ host: '127.0.0.1', port: 9, signal: ac.signal }, 'x')
  assert.equal(err.name, 'AbortError')
})

test('timeout while ConnectEx is pending (SYNs dropped) rejects ETIMEDOUT', async () => {
  const t0 = Date.now()
  const err = await mustFail({ host: '127.0.0.1', port: blackholePort, timeout: 400 }, 'x')
  assert.equal(err.code, 'ETIMEDOUT')
  assert.equal(err.syscall, 'connect')
  assert.ok(Date.now() - t0 < 5000)
}, { skip: !blackholePort && 'no SYNMUX_BLACKHOLE_PORT' })

test('abort while ConnectEx is pending cancels it (CancelIoEx) and rejects AbortError', async () => {
  const ac = new AbortController()
  const p = synmux.connectWithData({ host: '127.0.0.1', port: blackholePort, signal: ac.signal }, 'x')
  setTimeout(() => ac.abort(), 200)
  const err = await withTimeout(
    p.then(
      (socket) => {
        socket.destroy()
        assert.fail('connected')
      },
      (e) => e,
    ),
    5000,
    'abort',
  )
  assert.equal(err.name, 'AbortError')
  // The cancelled operation's completion arrives and is dropped quietly.
  await new Promise((r) => setTimeout(r, 200))
}, { skip: !blackholePort && 'no SYNMUX_BLACKHOLE_PORT' })

test('native arguments are checked at the boundary (TypeError/RangeError, no crash)', () => {
  const n = native
  assert.throws(() => n.socket(), { name: 'TypeError', code: 'ERR_MISSING_ARGS' })
  assert.throws(() => n.socket('4'), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
  assert.throws(() => n.socket(5), { name: 'RangeError' })
  assert.throws(() => n.close(-1), { name: 'RangeError' })
  assert.throws(() => n.close(1.5), { name: 'RangeError' })
  assert.throws(() => n.close(424242), { code: 'ENOTSOCK', syscall: 'close' })
  const s = n.socket(4)
  try {
    assert.throws(() => n.connectEx(s, '127.0.0.1', 80, 'str', () => {}), { name: 'TypeError' })
    assert.throws(() => n.connectEx(s, 'nope', 80, Buffer.alloc(0), () => {}), { code: 'ERR_INVALID_IP_ADDRESS' })
    assert.throws(() => n.connectEx(s, '127.0.0.1', 0, Buffer.alloc(0), () => {}), { name: 'RangeError' })
    assert.throws(() => n.connectEx(s, '127.0.0.1', 80, Buffer.alloc(0), null), { name: 'TypeError' })
    // ConnectEx on an unbound socket: WSAEINVAL, reported, not thrown away.
    assert.throws(() => n.connectEx(s, '127.0.0.1', 80, Buffer.alloc(0), () => {}), { code: 'EINVAL', syscall: 'connect' })
    assert.throws(() => n.setV6Only(s, 1), { name: 'TypeError' })
    assert.throws(() => n.bind(s, '127.0.0.1', 70000), { name: 'RangeError' })
    assert.throws(() => n.waitWritable(s, () => {}), { code: 'ENOTSUP' })
    assert.throws(() => n.connectData(s, '127.0.0.1', 80, Buffer.alloc(1)), { code: 'ENOTSUP' })
    assert.equal(n.tcpInfo(s).established, false)
  } finally {
    n.close(s)
  }
})

// ---------------------------------------------------------------------------

async function main() {
  let passed = 0
  let failed = 0
  let skipped = 0
  const t0 = Date.now()
  for (const t of tests) {
    if (t.skip) {
      skipped++
      console.log(`- skip ${t.name} (${t.skip})`)
      continue
    }
    const s = Date.now()
    try {
      await withTimeout(Promise.resolve().then(t.fn), 60000, t.name)
      passed++
      console.log(`ok ${t.name} (${Date.now() - s} ms)`)
    } catch (err) {
      failed++
      console.log(`not ok ${t.name}\n  ${String((err && err.stack) || err).split('\n').join('\n  ')}`)
    }
  }
  console.log(`# ${process.version} ${process.platform} ${require('node:os').release()}, ${Date.now() - t0} ms`)
  // Nothing may keep the process alive now (a leaked socket, a ConnectEx
  // whose completion never came): report it as a failure, then exit anyway.
  await new Promise((r) => setTimeout(r, 100))
  const alive = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap' && r !== 'Timeout')
  if (alive.length) {
    failed++
    console.log(`not ok nothing is left running after the suite\n  still active: ${alive.join(', ')}`)
  } else {
    passed++
    console.log('ok nothing is left running after the suite')
  }
  console.log(`windows: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`)
  process.exit(failed ? 1 : 0)
}

main()
