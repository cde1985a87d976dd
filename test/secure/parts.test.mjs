// Records sealed from a list of parts (a session's frames, as one write):
// the same bytes as sealing their concatenation would carry, with records
// cut between parts where a part fits a record of its own (so a frame no
// larger than a record arrives in one record, in one piece), parts split
// only when larger than a record, and a record that spans reads opened in
// one piece.
import { describe, it, expect } from 'vitest'
import crypto from 'node:crypto'
import { CipherState, RecordSealer, RecordOpener } from 'synmux'

const KEY = crypto.randomBytes(32)
const pair = (max) => ({ sealer: new RecordSealer(new CipherState('ChaChaPoly', KEY), 2 ** 30, max), opener: new RecordOpener(new CipherState('ChaChaPoly', KEY), 2 ** 30) })

/** The plaintext lengths of the records in `wire` (lengths read from the headers). */
function recordSizes(wire) {
  const sizes = []
  for (let off = 0; off < wire.length; ) {
    const n = wire.readUInt16BE(off)
    sizes.push(n - 16)
    off += 2 + n
  }
  return sizes
}

describe('sealParts', () => {
  it('carries exactly the concatenation of the parts, whatever their sizes (random cases)', () => {
    for (let round = 0; round < 200; round++) {
      const max = 1 + crypto.randomInt(3000)
      const parts = Array.from({ length: crypto.randomInt(12) }, () => crypto.randomBytes(crypto.randomInt(3 * max)))
      const { sealer, opener } = pair(max)
      const wire = Buffer.concat(sealer.sealParts(parts))
      for (const s of recordSizes(wire)) expect(s).toBeLessThanOrEqual(max)
      // Fed to the opener in random cuts.
      const out = []
      for (let off = 0; off < wire.length; ) {
        const n = 1 + crypto.randomInt(4000)
        out.push(...opener.write(wire.subarray(off, off + n)))
        off += n
      }
      expect(Buffer.concat(out).equals(Buffer.concat(parts))).toBe(true)
    }
  })

  it('cuts records between parts: frames that fit a record are never split; larger parts are', () => {
    const { sealer } = pair(100)
    // header 9 + payload 91 = one full record; then a 9-byte header, a 95-byte payload (does not fit after it: new record), a 250-byte part (split).
    const parts = [Buffer.alloc(9), Buffer.alloc(91), Buffer.alloc(9), Buffer.alloc(95), Buffer.alloc(250)]
    const sizes = recordSizes(Buffer.concat(sealer.sealParts(parts)))
    expect(sizes).toEqual([100, 9, 95 + 5, 100, 100, 45])
  })

  it('a record that spans reads is opened in one piece', () => {
    const { sealer, opener } = pair(65_519)
    const frame = crypto.randomBytes(65_519)
    const wire = Buffer.concat(sealer.sealParts([frame.subarray(0, 9), frame.subarray(9)]))
    const pieces = [...opener.write(wire.subarray(0, 20_000)), ...opener.write(wire.subarray(20_000, 40_000)), ...opener.write(wire.subarray(40_000))]
    expect(pieces.length).toBe(1)
    expect(pieces[0].equals(frame)).toBe(true)
  })
})
