// docs/PROTOCOL.md section 20 and the code must agree: the worked example is
// generated from a real run (test/secure/example.mjs; SYNMUX_UPDATE_SPEC=1
// rewrites it), and the tables name exactly the codes and values the code uses.
import { describe, it, expect } from 'vitest'
import fs from 'node:fs'
import path from 'node:path'
import { SECURE_PROTOCOL, SECURE_PROLOGUE, MESSAGE1_TYPE, EarlyRejectCode, MAX_EARLY_DATA, MAX_RECORD_PLAINTEXT, MIN_REKEY_INTERVAL } from 'synmux'
import { workedExample } from './example.mjs'

const specPath = path.resolve(import.meta.dirname, '../../docs/PROTOCOL.md')
const spec = fs.readFileSync(specPath, 'utf8')
const section = spec.slice(spec.indexOf('## 20. Secure channel'))

describe('PROTOCOL.md section 20', () => {
  it('holds the worked example exactly as a real run produces it', async () => {
    const block = `<!-- secure-example:start -->\n\`\`\`\n${await workedExample()}\n\`\`\`\n<!-- secure-example:end -->`
    const re = /<!-- secure-example:start -->[\s\S]*?<!-- secure-example:end -->/
    if (process.env.SYNMUX_UPDATE_SPEC === '1') fs.writeFileSync(specPath, spec.replace(re, block))
    expect(spec.match(re)?.[0]).toBe(block)
  })

  it('names the protocol, prologue, type byte and limits the code uses', () => {
    expect(section).toContain(`**\`${SECURE_PROTOCOL}\`**`)
    expect(section).toContain(`\`${SECURE_PROLOGUE.toString()}\``)
    expect(section).toContain(`type \`0x0${MESSAGE1_TYPE}\``)
    expect(section).toContain(`default ${MAX_EARLY_DATA.toLocaleString('en-US')}`)
    expect(section).toContain(`1 ... ${MAX_RECORD_PLAINTEXT.toLocaleString('en-US')}`)
    expect(section).toContain(`${MIN_REKEY_INTERVAL.toLocaleString('en-US')} ≤ v`)
  })

  it('lists every reject reason with its code', () => {
    const names = { CLOCK: 'clock', REPLAYED: 'replayed', NOT_NEWER: 'not-newer', BUSY: 'busy', DECLINED: 'declined', DISABLED: 'disabled' }
    for (const [k, v] of Object.entries(EarlyRejectCode)) {
      if (v === 0) continue
      expect(section).toMatch(new RegExp(`\\| ${v} \\| \`${names[k]}\` \\|`))
    }
  })

  it('lists every SecureError code', () => {
    const src = fs.readFileSync(path.resolve(import.meta.dirname, '../../src/secure/errors.ts'), 'utf8')
    const codes = [...src.matchAll(/\| '(SYNMUX_SECURE_[A-Z_]+)'/g)].map((m) => m[1])
    expect(codes.length).toBe(11)
    for (const c of codes) expect(section).toContain(`\`${c}\``)
  })
})
