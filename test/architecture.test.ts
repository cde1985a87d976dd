/**
 * The architecture of src/ (docs/ARCHITECTURE.md), checked on the source:
 * every relative import of every file (static, type-only, re-exports,
 * dynamic `import()` and `require()`) is read with TypeScript's own
 * pre-processor, and
 * - no import goes from a lower layer to a higher one, nor across two
 *   folders of the same layer (layers, lowest first: common; tfo and
 *   secure; mux; net; tunnel; proxy; cli; the package entry index.ts),
 * - no file takes part in an import cycle (file by file, all of src/),
 * - no file is over 600 lines (a file past that holds several concerns).
 */
import fs from 'node:fs'
import path from 'node:path'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'

const SRC = path.resolve(import.meta.dirname, '../src')

/** Each folder's layer: a file may import only from its own folder or from a lower layer. */
const LAYER: Record<string, number> = { common: 0, tfo: 1, secure: 1, mux: 2, net: 3, tunnel: 4, proxy: 5, cli: 6, 'index.ts': 7 }
const MAX_LINES = 600

function sources(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .map((f) => path.join(dir, f))
    .sort()
}

/** The src files a file imports (relative specifiers, resolved to the .ts file). */
function importsOf(file: string): string[] {
  const info = ts.preProcessFile(fs.readFileSync(file, 'utf8'), true, true)
  const out = new Set<string>()
  for (const ref of info.importedFiles) {
    const spec = ref.fileName
    if (!spec.startsWith('.')) continue
    const base = path.resolve(path.dirname(file), spec)
    const candidates = [base.replace(/\.js$/, '.ts'), `${base}.ts`, path.join(base, 'index.ts')]
    const hit = candidates.find((c) => fs.existsSync(c) && fs.statSync(c).isFile())
    if (hit === undefined) throw new Error(`${rel(file)}: cannot resolve '${spec}'`)
    out.add(hit)
  }
  return [...out]
}

const rel = (f: string): string => path.relative(SRC, f).split(path.sep).join('/')
const folderOf = (f: string): string => rel(f).split('/')[0]!

/** Strongly connected components of more than one file (or a file importing itself): the cycles. */
function cycles(graph: Map<string, string[]>): string[][] {
  let index = 0
  const idx = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const on = new Set<string>()
  const out: string[][] = []
  const visit = (v: string): void => {
    idx.set(v, index)
    low.set(v, index++)
    stack.push(v)
    on.add(v)
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v)!, low.get(w)!))
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!))
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = []
      let w: string
      do {
        w = stack.pop()!
        on.delete(w)
        scc.push(w)
      } while (w !== v)
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(scc.map(rel).sort())
    }
  }
  for (const v of graph.keys()) if (!idx.has(v)) visit(v)
  return out
}

describe('architecture of src/', () => {
  const files = sources(SRC)
  const graph = new Map(files.map((f) => [f, importsOf(f)]))

  it('every folder of src/ has a layer', () => {
    const folders = [...new Set(files.map(folderOf))].sort()
    expect(folders.filter((f) => LAYER[f] === undefined)).toEqual([])
  })

  it('no import goes up a layer or across folders of one layer', () => {
    const bad: string[] = []
    for (const [from, tos] of graph) {
      const a = folderOf(from)
      for (const to of tos) {
        const b = folderOf(to)
        if (a !== b && !(LAYER[b]! < LAYER[a]!)) bad.push(`${rel(from)} -> ${rel(to)} (${a} is layer ${LAYER[a]}, ${b} is layer ${LAYER[b]})`)
      }
    }
    expect(bad).toEqual([])
  })

  it('no import cycle', () => {
    expect(cycles(graph)).toEqual([])
  })

  it(`no file over ${MAX_LINES} lines`, () => {
    const long = files.map((f) => [rel(f), fs.readFileSync(f, 'utf8').split('\n').length - 1] as const).filter(([, n]) => n > MAX_LINES)
    expect(long.map(([f, n]) => `${f}: ${n} lines`)).toEqual([])
  })

  it('the checks see every kind of import', () => {
    // What the pre-processor must find for the checks above to mean anything.
    const probe = "import a from './a.js'\nimport type { B } from './b.js'\nexport * from './c.js'\nconst d = await import('./d.js')\nconst e = require('./e.js')\n"
    expect(ts.preProcessFile(probe, true, true).importedFiles.map((r) => r.fileName)).toEqual(['./a.js', './b.js', './c.js', './d.js', './e.js'])
  })
})
