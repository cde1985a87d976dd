// docs/PROTOCOL.md and the code must agree: the worked example in the spec
// is generated from a real session (SYNMUX_UPDATE_SPEC=1 rewrites it), and
// the spec's tables list exactly the codes and types the code uses.
import { describe, it, expect } from 'vitest'
import fs from 'node:fs'
import path from 'node:path'
import { Session, FrameType, FrameFlag, GoawayCode, RefuseCode, ResetCode, HelloExtension, Capability, MUX_DEFAULTS, decodeHello, decodeFrame, frameTypeName } from 'synmux'
import { LockstepLink } from './helpers.mjs'

const root = path.resolve(import.meta.dirname, '../..')
const specPath = path.join(root, 'docs/PROTOCOL.md')
const spec = fs.readFileSync(specPath, 'utf8')

const hex = (b) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(' ')
const line = (bytes, comment) => {
  const h = typeof bytes === 'string' ? bytes : hex(bytes)
  return h.length <= 48 ? `${h.padEnd(48)} ${comment}` : `${h}\n${' '.repeat(48)} ${comment}`
}
const num = (n) => n.toLocaleString('en-US')

const capNames = (caps) => Object.entries(Capability).filter(([, bit]) => caps & bit).map(([name]) => name).join(', ') || 'none'
const extName = (t) => Object.entries(HelloExtension).find(([, v]) => v === t)?.[0] ?? `0x${t.toString(16)}`

function renderExtensions(b, end) {
  const out = []
  for (let off = 59; off < end; ) {
    const t = b[off]
    const len = b.readUInt16BE(off + 1)
    const v = b.subarray(off + 3, off + 3 + len)
    out.push(line(b.subarray(off, off + 3 + len), `extension ${extName(t)}: ${len === 4 ? num(v.readUInt32BE(0)) : `${len} bytes`}`))
    off += 3 + len
  }
  return out
}

function renderHello(b) {
  const { hello, size } = decodeHello(b)
  const idBytes = b.subarray(15, 47)
  const idText = idBytes.every((x) => x === 0) ? '00 x 32' : 'a5 x 32'
  return [
    line(b.subarray(0, 6), 'magic "SYNMUX"'),
    line(b.subarray(6, 7), 'version 1'),
    line(b.subarray(7, 8), 'kind NEW'),
    line(b.subarray(8, 10), `body length ${b.readUInt16BE(8)}`),
    line(b.subarray(10, 11), `role ${hello.role}`),
    line(b.subarray(11, 15), `capabilities: ${capNames(hello.capabilities)}`),
    line(idText, hello.role === 'client' ? 'session id: zero (the server picks it)' : 'session id: 32 random bytes (shown as a5)'),
    line(b.subarray(47, 51), `initial window ${num(hello.initialWindow)}`),
    line(b.subarray(51, 55), `max frame size ${num(hello.maxFrameSize)}`),
    line(b.subarray(55, 59), `max streams ${num(hello.maxStreams)}`),
    ...renderExtensions(b, size),
  ]
}

function renderFrame(b, f) {
  const h = b.subarray(0, 9)
  const p = b.subarray(9)
  const eomBit = f.type === FrameType.OPEN ? FrameFlag.OPEN_EOM : FrameFlag.EOM
  const names = [
    f.flags & FrameFlag.FIN ? 'FIN' : '',
    f.type === FrameType.OPEN && f.flags & FrameFlag.MESSAGES ? 'MESSAGES' : '',
    (f.type === FrameType.OPEN || f.type === FrameType.OPENED || f.type === FrameType.DATA) && f.flags & eomBit ? 'EOM' : '',
  ].filter(Boolean)
  const flags = names.length ? `, ${names.join(', ')}` : ''
  const out = [line(h, `${frameTypeName(f.type)}: length ${p.length}${flags}, stream ${f.streamId}`)]
  switch (f.type) {
    case FrameType.OPEN: {
      const t = f.target
      const tl = p.length - f.data.length
      out.push(line(p.subarray(0, tl), t ? `  target: host name (${t.host.length}) "${t.host}", port ${t.port}` : '  target: none'))
      if (f.data.length) out.push(line(f.data, `  data "${f.data}"`))
      break
    }
    case FrameType.OPENED:
    case FrameType.DATA:
      if (p.length) out.push(line(p, `  data "${p}"`))
      break
    case FrameType.PING:
    case FrameType.PONG:
      out.push(line(p, `  opaque (PING number ${p.readUInt32BE(4)})`))
      break
    case FrameType.ACK:
      out.push(line(p, `  ${f.received} session bytes received`))
      break
    case FrameType.GOAWAY:
      out.push(line(p, `  last stream ${f.lastStreamId}, code ${f.code} (NORMAL), no reason`))
      break
    default:
      out.push(line(p, '  payload'))
  }
  return out
}

function renderFlight(n, from, bytes, withHello) {
  const who = from === 'a' ? 'client → server' : 'server → client'
  const lines = [`# flight ${n}, ${who}: ${bytes.length} bytes`]
  let off = 0
  if (withHello) {
    const { size } = decodeHello(bytes)
    const masked = Buffer.from(bytes.subarray(0, size))
    if (from === 'b') masked.fill(0xa5, 15, 47)
    lines.push(...renderHello(masked))
    off = size
  }
  while (off < bytes.length) {
    const { frame, size } = decodeFrame(bytes, off, undefined, true)
    lines.push(...renderFrame(bytes.subarray(off, off + size), frame))
    off += size
  }
  return lines.join('\n')
}

async function workedExample() {
  const link = new LockstepLink()
  const client = new Session(link.a, { role: 'client', keepAliveInterval: 0 })
  const server = new Session(link.b, { role: 'server', keepAliveInterval: 0 })
  server.on('stream', (s) => {
    s.resume()
    s.end('OK')
  })
  const st = client.open({ target: { host: 'example.com', port: 80 }, data: 'GET /', end: true })
  let body = ''
  st.on('data', (d) => (body += d))
  st.on('open', () => client.close())
  const parts = []
  const seenHello = { a: false, b: false }
  const endNoted = { a: false, b: false }
  let flight = 0
  for (let i = 0; i < 8; i++) {
    await link.settle()
    const from = i % 2 === 0 ? 'a' : 'b'
    const pending = link.pending(from)
    link.deliver(from)
    if (pending.length > 0) {
      parts.push(renderFlight(++flight, from, pending, !seenHello[from]))
      seenHello[from] = true
    }
    if (link.ended[from] && !endNoted[from]) {
      endNoted[from] = true
      parts.push(`# the ${from === 'a' ? 'client' : 'server'} ends its side of the transport`)
    }
  }
  await Promise.all([client.closed(), server.closed()])
  return { text: parts.join('\n\n'), body, clientErr: client.error, serverErr: server.error, rtt: client.rtt }
}

describe('docs/PROTOCOL.md agrees with the code', () => {
  it('the worked example is what a real session sends', async () => {
    const ex = await workedExample()
    expect(ex.body).toBe('OK')
    expect(ex.clientErr).toBe(undefined)
    expect(ex.serverErr).toBe(undefined)
    const block = `<!-- worked-example:start -->\n\`\`\`\n${ex.text}\n\`\`\`\n<!-- worked-example:end -->`
    const re = /<!-- worked-example:start -->[\s\S]*<!-- worked-example:end -->/
    if (process.env.SYNMUX_UPDATE_SPEC === '1') fs.writeFileSync(specPath, spec.replace(re, block))
    expect(spec.match(re)?.[0]).toBe(block)
  })

  /** The rows (cells) of the first markdown table at or after `marker`, without header and separator. */
  const table = (marker) => {
    const start = spec.indexOf(marker)
    expect(start, marker).toBeGreaterThan(-1)
    const lines = spec.slice(start).split('\n')
    let i = lines.findIndex((l) => l.startsWith('|'))
    const rows = []
    for (; i < lines.length && lines[i].startsWith('|'); i++) rows.push(lines[i].split('|').slice(1, -1).map((c) => c.trim()))
    return rows.slice(2)
  }
  const codeRows = (heading) =>
    Object.fromEntries(
      table(heading)
        .filter((r) => /^\d+$/.test(r[0]))
        .map((r) => [r[1].split(/\s/)[0], Number(r[0])]),
    )

  it('frame types', () => {
    const rows = table('| type | name | kind |')
    const fromSpec = Object.fromEntries(rows.map((r) => [r[1], parseInt(r[0].replace(/`/g, ''), 16)]))
    expect(fromSpec).toEqual({ ...FrameType })
    for (const r of rows) expect(r[2]).toBe(parseInt(r[0].replace(/`/g, ''), 16) < 0x80 ? 'session' : 'link')
  })

  it('frame flags: the flags column lists exactly the flags the codec accepts (with MESSAGES in effect)', () => {
    const rows = table('| type | name | kind |')
    for (const r of rows) {
      const type = parseInt(r[0].replace(/`/g, ''), 16)
      const listed = r[5] === '—' ? [] : r[5].split(';').map((x) => x.trim().match(/^(\w+) `0x([0-9a-f]+)`$/)).map((m) => [m[1], parseInt(m[2], 16)])
      let mask = 0
      for (const [name, bit] of listed) {
        // The name is the FrameFlag constant (OPEN's EOM is FrameFlag.OPEN_EOM).
        expect(type === FrameType.OPEN && name === 'EOM' ? FrameFlag.OPEN_EOM : FrameFlag[name], `${r[1]} ${name}`).toBe(bit)
        mask |= bit
      }
      // Every listed flag decodes; the first unlisted bit is a protocol error.
      const frame = (flags) => {
        const payload = type === FrameType.OPEN ? Buffer.from([0]) : Buffer.alloc({ 3: 2, 5: 4, 6: 2, 7: 6, 0x80: 8, 0x81: 8, 0x82: 8, 0x83: 32, 0x84: 8 }[type] ?? 0, 0)
        if (type === FrameType.WINDOW) payload.writeUInt32BE(1)
        const h = Buffer.alloc(9)
        h.writeUIntBE(payload.length, 0, 3)
        h[3] = type
        h[4] = flags
        h.writeUInt32BE(type <= FrameType.RST ? 1 : 0, 5)
        return Buffer.concat([h, payload])
      }
      expect(decodeFrame(frame(mask), 0, undefined, true).frame.flags, r[1]).toBe(mask)
      const unlisted = [1, 2, 4, 8, 16, 32, 64, 128].find((bit) => !(mask & bit))
      expect(() => decodeFrame(frame(mask | unlisted), 0, undefined, true), r[1]).toThrow(expect.objectContaining({ code: 'SYNMUX_PROTOCOL_ERROR' }))
    }
  })

  it('GOAWAY, REFUSED and RST codes', () => {
    expect(codeRows('### 11.1 GOAWAY codes')).toEqual({ ...GoawayCode })
    expect(codeRows('### 11.2 REFUSED codes')).toEqual({ ...RefuseCode })
    expect(codeRows('### 11.3 RST codes')).toEqual({ ...ResetCode })
  })

  it('HELLO extensions and capabilities', () => {
    const ext = Object.fromEntries(table('| type | name | value | used by |').map((r) => [r[1], parseInt(r[0].replace(/`/g, ''), 16)]))
    expect(ext).toEqual({ ...HelloExtension })
    const caps = Object.fromEntries(table('| bit | name | meaning |').map((r) => [r[1], parseInt(r[0].replace(/`/g, ''), 16)]))
    expect(caps).toEqual({ ...Capability })
  })

  it('every SYNMUX_ error code the code can produce is documented, and nothing else', () => {
    const documented = new Set(table('| `code` | when | extra fields |').map((r) => r[0].replace(/`/g, '')))
    const dist = path.join(root, 'dist/cjs/mux')
    const produced = new Set()
    for (const f of fs.readdirSync(dist, { recursive: true }).filter((n) => n.endsWith('.js'))) {
      for (const m of fs.readFileSync(path.join(dist, f), 'utf8').matchAll(/'(SYNMUX_[A-Z_]+)'/g)) produced.add(m[1])
    }
    expect([...produced].sort()).toEqual([...documented].sort())
  })

  it('the limits table states the implementation defaults', () => {
    const rows = Object.fromEntries(table('| limit | default | where enforced | on violation |').map((r) => [r[0], r[1]]))
    const n = (s) => Number(s.split(' ')[0].replace(/,/g, ''))
    expect(n(rows['max frame size (payload)'])).toBe(MUX_DEFAULTS.maxFrameSize)
    expect(n(rows['initial window W0'])).toBe(MUX_DEFAULTS.initialWindow)
    expect(rows['max window (auto-tune cap)']).toBe(`${MUX_DEFAULTS.maxWindow / 2 ** 20} MiB`)
    expect(rows['max session buffer']).toBe(`${MUX_DEFAULTS.maxSessionBuffer / 2 ** 20} MiB`)
    expect(n(rows['max streams (peer-opened, concurrent)'])).toBe(MUX_DEFAULTS.maxStreams)
    expect(n(rows['max pending opens (unanswered by the application)'])).toBe(MUX_DEFAULTS.maxPendingOpens)
    expect(n(rows['max target length (host name bytes)'])).toBe(MUX_DEFAULTS.maxTargetLength)
    expect(rows['accept delay (auto-accept)']).toBe(`${MUX_DEFAULTS.acceptDelay} ms`)
    expect(rows['handshake timeout']).toBe(`${MUX_DEFAULTS.handshakeTimeout / 1000} s`)
    expect(rows['keepalive interval / timeout']).toBe(`${MUX_DEFAULTS.keepAliveInterval / 1000} s / ${MUX_DEFAULTS.keepAliveTimeout / 1000} s`)
    expect(rows['control queue (frames the peer made us owe it: PONG, REFUSED, WINDOW, ...)']).toBe(`${MUX_DEFAULTS.maxControlQueue / 2 ** 20} MiB`)
    expect(n(rows['max message (MAX_MESSAGE, message streams)'])).toBe(MUX_DEFAULTS.maxMessage)
  })
})
