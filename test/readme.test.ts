/**
 * The README runs as written. Every code block is classified by an HTML
 * comment on the line before its fence (`<!-- readme-test: KIND ... -->`),
 * or by default (a `js` block is a program):
 *
 * - `run` (default for `js`): a whole program; it must exit 0. An `sh`
 *   block marked `run` is run with bash in the same directory (and its
 *   own network namespace), and compared with an `output` block after it.
 * - `server`: a program that keeps serving; started in the background and
 *   ready at its first line of output, for the `client` blocks after it.
 * - `client`: a program run while the last `server` block runs.
 * - `output` (a `text` block): what the program before it prints, line by
 *   line in order (numbers such as timings may differ; `...` skips lines);
 *   `output of synmux <args>` is the output of that command.
 * - `fragment: why` / `commands: why`: not run, with the reason.
 *
 * Programs run as a user's would: in a directory of their own with synmux
 * (and undici) installed, as CommonJS (`.cjs`) or, when they `import`, as an
 * ES module (`.mjs`); each in a private network namespace with
 * `net.ipv4.tcp_fastopen=3` (fixed ports such as 8080 are free there and no
 * TFO cookie is cached yet, as on a fresh machine). All programs are also
 * type-checked together by tsc (`checkJs`, `strict`) against synmux's
 * published types; JavaScript has no type annotations, so an unannotated
 * parameter or variable is `any` there (`noImplicitAny` off), every other
 * strict check applies (`strictNullChecks` included).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { canUseNetns, ROOT, skipReason } from './helpers'

const KINDS = ['run', 'server', 'client', 'output', 'fragment', 'commands'] as const
type Kind = (typeof KINDS)[number]

interface Block {
  /** 1-based line of the opening fence. */
  line: number
  lang: string
  code: string
  kind: Kind
  /** The annotation's rest: a reason, or `of synmux ...` for output. */
  note: string
}

/** Splits the README into code blocks with their classification. */
export function readmeBlocks(text: string): Block[] {
  const lines = text.split('\n')
  const blocks: Block[] = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i]!)
    if (!open) continue
    const start = i
    const body: string[] = []
    for (i++; i < lines.length && lines[i] !== '```'; i++) body.push(lines[i]!)
    let j = start - 1
    while (j >= 0 && lines[j]!.trim() === '') j--
    const mark = j >= 0 ? /^<!--\s*readme-test:\s*([a-z]+)\b:?\s*(.*?)\s*-->$/.exec(lines[j]!.trim()) : null
    const lang = open[1] ?? ''
    let kind: Kind | undefined
    if (mark) {
      if (!(KINDS as readonly string[]).includes(mark[1]!)) throw new Error(`README.md:${start + 1}: unknown readme-test kind '${mark[1]}'`)
      kind = mark[1] as Kind
    } else if (lang === 'js') {
      kind = 'run'
    } else {
      throw new Error(`README.md:${start + 1}: a \`${lang || 'plain'}\` block needs a <!-- readme-test: ... --> comment saying what it is`)
    }
    blocks.push({ line: start + 1, lang, code: body.join('\n') + '\n', kind, note: mark?.[2] ?? '' })
  }
  return blocks
}

const blocks = readmeBlocks(fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8'))
const programs = blocks.filter((b) => b.lang === 'js' && (b.kind === 'run' || b.kind === 'server' || b.kind === 'client'))
const isEsm = (b: Block) => /^import\s/m.test(b.code)
const fileOf = (b: Block) => `readme-${String(b.line).padStart(4, '0')}.${isEsm(b) ? 'mjs' : 'cjs'}`

/** Lines as compared: numbers (timings) and runs of spaces do not matter. */
const norm = (line: string) => line.replace(/\d+\.\d+/g, 'N').replace(/\s+/g, ' ').trim()

/** Every line of `expected` (but `...` and blank ones) appears in `actual`, in order. */
function expectOutput(actual: string, expected: string, where: string): void {
  const have = actual.split('\n').map(norm)
  let at = 0
  for (const want of expected.split('\n').map(norm)) {
    if (want === '' || want === '...') continue
    const found = have.indexOf(want, at)
    if (found < 0) throw new Error(`${where}: the README shows\n  ${want}\nbut the program printed (from line ${at + 1}):\n${have.slice(at).join('\n')}`)
    at = found + 1
  }
}

const needNetns = skipReason(!canUseNetns() ? 'README programs run in private network namespaces: needs root and `ip netns`' : false)

let work = ''

/** A private network namespace with lo up and TFO on for clients and servers; deleted by the returned function. */
function netns(): { name: string; del: () => void } {
  const name = `smxr-${process.pid}-${crypto.randomBytes(3).toString('hex')}`
  execFileSync('ip', ['netns', 'add', name])
  execFileSync('ip', ['-n', name, 'link', 'set', 'lo', 'up'])
  execFileSync('ip', ['netns', 'exec', name, 'sysctl', '-qw', 'net.ipv4.tcp_fastopen=3'])
  return {
    name,
    del: () => {
      try {
        execFileSync('ip', ['netns', 'del', name])
      } catch {
        // already gone
      }
    },
  }
}

interface Ran {
  code: number | null
  stdout: string
  stderr: string
}

function start(ns: string, args: string[]): ChildProcess {
  return spawn('ip', ['netns', 'exec', ns, ...args], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] })
}

/** Runs a command in `ns` to its end (killed after `ms`). */
function runIn(ns: string, args: string[], ms = 45_000): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = start(ns, args)
    let stdout = ''
    let stderr = ''
    child.stdout!.on('data', (d) => (stdout += d))
    child.stderr!.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), ms)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

/** Starts a server program in `ns`; resolves once it printed its first line. */
function startServer(ns: string, file: string): Promise<{ child: ChildProcess; output: () => string }> {
  return new Promise((resolve, reject) => {
    const child = start(ns, [process.execPath, file])
    let out = ''
    let ready = false
    const timer = setTimeout(() => reject(new Error(`${file}: printed nothing within 10 s:\n${out}`)), 10_000)
    const onData = (d: Buffer) => {
      out += d
      if (!ready && out.includes('\n')) {
        ready = true
        clearTimeout(timer)
        resolve({ child, output: () => out })
      }
    }
    child.stdout!.on('data', onData)
    child.stderr!.on('data', onData)
    child.on('close', (code) => {
      clearTimeout(timer)
      if (!ready) reject(new Error(`${file}: exited ${code} before it was ready:\n${out}`))
    })
  })
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    child.once('close', () => resolve())
    child.kill('SIGKILL')
  })
}

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'synmux-readme-'))
  // a user's project with synmux and undici installed
  fs.mkdirSync(path.join(work, 'node_modules', '@types'), { recursive: true })
  fs.symlinkSync(ROOT, path.join(work, 'node_modules', 'synmux'))
  fs.symlinkSync(path.join(ROOT, 'node_modules', 'undici'), path.join(work, 'node_modules', 'undici'))
  fs.symlinkSync(path.join(ROOT, 'node_modules', '@types', 'node'), path.join(work, 'node_modules', '@types', 'node'))
  fs.symlinkSync(path.join(ROOT, 'node_modules', 'undici-types'), path.join(work, 'node_modules', 'undici-types'))
  // and its command, as npm links it (so `npx synmux` runs this build, never a download)
  fs.mkdirSync(path.join(work, 'node_modules', '.bin'))
  fs.symlinkSync(path.join(ROOT, 'dist', 'cjs', 'cli', 'index.js'), path.join(work, 'node_modules', '.bin', 'synmux'))
  for (const b of programs) fs.writeFileSync(path.join(work, fileOf(b)), b.code)
})

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

describe('README.md', () => {
  it('every code block says what it is; the programs are whole programs', () => {
    expect(programs.length).toBeGreaterThanOrEqual(12)
    for (const b of blocks) {
      if (b.kind === 'fragment' || b.kind === 'commands') expect(b.note, `README.md:${b.line}: ${b.kind} without a reason`).not.toBe('')
      if (b.kind === 'output') expect(b.lang, `README.md:${b.line}`).toBe('text')
      if (b.kind === 'client') expect(blocks.slice(0, blocks.indexOf(b)).some((x) => x.kind === 'server'), `README.md:${b.line}: a client without a server before it`).toBe(true)
      // CommonJS has no top-level await, ESM no require: a block is one or the other
      if (b.lang === 'js' && b.kind !== 'fragment') {
        if (isEsm(b)) expect(b.code, `README.md:${b.line}`).not.toMatch(/\brequire\(/)
        else expect(b.code, `README.md:${b.line}: top-level await needs an ES module (import)`).not.toMatch(/^(const .*= )?await /m)
      }
    }
  })

  it('the programs type-check under strict (tsc --checkJs against synmux’s types)', () => {
    fs.writeFileSync(
      path.join(work, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          allowJs: true,
          checkJs: true,
          strict: true,
          noImplicitAny: false,
          noEmit: true,
          module: 'node16',
          moduleResolution: 'node16',
          target: 'es2022',
          lib: ['es2022'],
          types: ['node'],
          skipLibCheck: true,
        },
        include: ['readme-*.cjs', 'readme-*.mjs'],
      }),
    )
    const tsc = require.resolve('typescript/bin/tsc', { paths: [ROOT] })
    let out = ''
    try {
      execFileSync(process.execPath, [tsc, '-p', work], { cwd: work, stdio: 'pipe' })
    } catch (err) {
      out = String((err as { stdout?: Buffer }).stdout ?? err)
    }
    // name the README line for each error
    const located = out.replace(/readme-0*(\d+)\.[cm]js\((\d+),(\d+)\)/g, (_m, line, l, c) => `README.md:${Number(line) + Number(l)}:${c}`)
    expect(located).toBe('')
  }, 120_000)

  // each runnable block (and its expected output), in README order
  let server: Block | undefined
  for (let k = 0; k < blocks.length; k++) {
    const b = blocks[k]!
    const next = blocks[k + 1]
    const expected = next?.kind === 'output' && next.note === '' ? next : undefined
    if (b.kind === 'server') server = b
    if (b.kind === 'fragment' || b.kind === 'commands') {
      it.skip(`README.md:${b.line}: ${b.kind} (${b.note})`, () => {})
      continue
    }
    if (b.kind === 'output' && b.note.startsWith('of synmux ')) {
      const args = b.note.slice('of synmux '.length).split(/\s+/)
      it.skipIf(needNetns)(`README.md:${b.line}: what \`synmux ${args.join(' ')}\` prints on a fresh machine`, async () => {
        const ns = netns()
        try {
          const r = await runIn(ns.name, [process.execPath, path.join(ROOT, 'dist', 'cjs', 'cli', 'index.js'), ...args])
          expect(r.code, r.stderr).toBe(0)
          expectOutput(r.stdout, b.code, `README.md:${b.line}`)
        } finally {
          ns.del()
        }
      }, 60_000)
      continue
    }
    if (b.kind === 'output') continue
    if (b.kind === 'run' && b.lang === 'sh') {
      // In a namespace of their own too: commands that start a server on a fixed port find it free.
      it.skipIf(needNetns)(`README.md:${b.line}: the commands run${expected ? ' and print what the README shows' : ''}`, async () => {
        const ns = netns()
        try {
          const r = await runIn(ns.name, ['bash', '-euo', 'pipefail', '-c', b.code])
          expect(r.code, `README.md:${b.line} exited ${r.code}:\n${r.stderr}${r.stdout}`).toBe(0)
          if (expected) expectOutput(r.stdout, expected.code, `README.md:${expected.line}`)
        } finally {
          ns.del()
        }
      }, 60_000)
      continue
    }
    if (b.kind === 'server') {
      // a server runs for its clients; on its own it must come up
      it.skipIf(needNetns)(`README.md:${b.line}: the server starts`, async () => {
        const ns = netns()
        try {
          const s = await startServer(ns.name, fileOf(b))
          await stop(s.child)
        } finally {
          ns.del()
        }
      }, 60_000)
      continue
    }
    const withServer = b.kind === 'client' ? server : undefined
    it.skipIf(needNetns)(`README.md:${b.line}: the program runs${withServer ? ` against the server at line ${withServer.line}` : ''}${expected ? ' and prints what the README shows' : ''}`, async () => {
      const ns = netns()
      let srv: Awaited<ReturnType<typeof startServer>> | undefined
      try {
        if (withServer) srv = await startServer(ns.name, fileOf(withServer))
        const r = await runIn(ns.name, [process.execPath, fileOf(b)])
        expect(r.code, `README.md:${b.line} exited ${r.code}:\n${r.stderr}${r.stdout}${srv ? `\nserver:\n${srv.output()}` : ''}`).toBe(0)
        if (expected) expectOutput(r.stdout, expected.code, `README.md:${expected.line}`)
      } finally {
        if (srv) await stop(srv.child)
        ns.del()
      }
    }, 60_000)
  }
})
