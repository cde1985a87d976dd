/**
 * Command-line flags, declared once in a table ({@link FlagTable}) that
 * drives both the parser and the help text: `node:util` `parseArgs` reads
 * `--name value`, `--name=value` and repeatable flags; `--config file.json`
 * supplies the same flags as JSON keys (camelCase or kebab-case; flags on
 * the command line win). Usage errors are {@link UsageError}s: the CLI
 * prints the reason and the help and exits 2.
 * @internal
 * @packageDocumentation
 */
import fs from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { SynmuxError } from '../common/errors.js'

/** synmux's version, from its package.json (this file is in dist/cjs/cli). */
export function packageVersion(): string {
  return (JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'package.json'), 'utf8')) as { version: string }).version
}

/** How one flag is read and described. */
export interface FlagDef {
  /** `'string'` takes a value; `'boolean'` takes none. */
  type: 'string' | 'boolean'
  /** May be given several times; each value may also be a comma-separated list (values collected in an array). */
  multiple?: boolean
  /** The value's placeholder in the help (`FILE`, `[host:]port`). */
  arg?: string
  /** One-line or longer description; wrapped in the help. */
  help: string
  /** Not read from `--config` (only `--config` itself). */
  noConfig?: boolean
}

/** Flags of one command, by name (without the leading `--`), in help order. */
export type FlagTable = Record<string, FlagDef>

/** A command's help: usage line, description, flags. */
export interface CommandSpec {
  name: string
  usage: string
  about: string
  flags: FlagTable
}

/** A usage error (`SYNMUX_USAGE`): printed with the command's help, exit code 2. */
export class UsageError extends SynmuxError<'SYNMUX_USAGE'> {
  constructor(message: string) {
    super('SYNMUX_USAGE', message)
    this.name = 'UsageError'
  }
}

/** Parsed flags: name -> value(s). */
export type Flags = Record<string, string | boolean | string[]>

/** Column where flag descriptions start in the help. */
const DESC_COL = 26
const WIDTH = 78

function wrap(text: string, width: number): string[] {
  const lines: string[] = []
  for (const para of text.split('\n')) {
    let line = ''
    for (const word of para.split(/\s+/).filter(Boolean)) {
      if (line && line.length + 1 + word.length > width) {
        lines.push(line)
        line = word
      } else line = line ? `${line} ${word}` : word
    }
    lines.push(line)
  }
  return lines
}

/** The `--name ARG` column of a flag. */
export function flagLabel(name: string, def: FlagDef): string {
  return `--${name}${def.type === 'string' ? ` ${def.arg ?? 'VALUE'}` : ''}`
}

/** Renders a command's help from its flag table (so it lists every flag). */
export function renderHelp(spec: CommandSpec): string {
  const out = [`Usage: ${spec.usage}`, '', ...wrap(spec.about, WIDTH), '']
  if (Object.keys(spec.flags).length > 0) {
    out.push('Options:')
    for (const [name, def] of Object.entries(spec.flags)) {
      const label = `  ${flagLabel(name, def)}`
      const desc = wrap(def.help, WIDTH - DESC_COL)
      const pad = ' '.repeat(DESC_COL)
      if (label.length <= DESC_COL - 2) out.push(label.padEnd(DESC_COL) + desc[0], ...desc.slice(1).map((l) => pad + l))
      else out.push(label, ...desc.map((l) => pad + l))
    }
  }
  return out.join('\n')
}

const camelToKebab = (k: string): string => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)

/**
 * Parses `argv` against `table` with `node:util` `parseArgs`, then merges
 * `--config` (flags win). Throws {@link UsageError} with the reason.
 */
export function parseFlags(argv: string[], table: FlagTable): Flags {
  // Lenient parse, then every token checked here: the reasons are ours
  // (stable across Node versions) and name the flag as the user wrote it.
  const { tokens } = parseArgs({
    args: argv,
    options: Object.fromEntries(Object.entries(table).map(([name, def]) => [name, { type: def.type, multiple: !!def.multiple }])),
    strict: false,
    allowPositionals: true,
    tokens: true,
  })
  const out: Flags = {}
  for (const t of tokens) {
    if (t.kind === 'positional') throw new UsageError(`unexpected argument '${t.value}'`)
    if (t.kind === 'option-terminator') throw new UsageError(`unexpected argument '--'`)
    const def = Object.hasOwn(table, t.name) ? table[t.name] : undefined
    if (!def || t.rawName !== `--${t.name}`) throw new UsageError(`unknown option ${t.rawName}`)
    let value: string | true
    if (def.type === 'boolean') {
      if (t.value !== undefined) throw new UsageError(`--${t.name} takes no value`)
      value = true
    } else {
      // parseArgs takes the next argument as the value even when it is a flag: `--listen --key k` is a missing value.
      if (t.value === undefined || (!t.inlineValue && t.value.startsWith('-'))) throw new UsageError(`--${t.name} needs a value${t.value?.startsWith('-') ? ` (a value that starts with '-' is written --${t.name}=${t.value})` : ''}`)
      value = t.value
    }
    if (def.multiple) out[t.name] = [...((out[t.name] as string[] | undefined) ?? []), ...String(value).split(',').filter(Boolean)]
    else if (t.name in out) throw new UsageError(`--${t.name} given twice`)
    else out[t.name] = value
  }
  if (typeof out.config === 'string') mergeConfig(out, out.config, table)
  return out
}

/** Reads `--config file` (a JSON object whose keys mirror the flags) into `out`, where no flag was given. */
function mergeConfig(out: Flags, file: string, table: FlagTable): void {
  let json: unknown
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'))
  } catch (err) {
    throw new UsageError(`--config ${file}: ${(err as Error).message}`)
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new UsageError(`--config ${file}: expected a JSON object`)
  for (const [k, v] of Object.entries(json)) {
    const name = camelToKebab(k)
    const def = Object.hasOwn(table, name) ? table[name] : undefined
    if (!def || def.noConfig) throw new UsageError(`--config ${file}: unknown key '${k}'`)
    if (name in out) continue
    if (def.type === 'boolean') {
      if (typeof v !== 'boolean') throw new UsageError(`--config ${file}: '${k}' must be true or false`)
      if (v) out[name] = true
    } else if (def.multiple) {
      const list = Array.isArray(v) ? v : [v]
      if (!list.every((x) => typeof x === 'string' || typeof x === 'number')) throw new UsageError(`--config ${file}: '${k}' must be a string or a list of strings`)
      out[name] = list.flatMap((x) => String(x).split(',')).filter(Boolean)
    } else {
      if (typeof v !== 'string' && typeof v !== 'number') throw new UsageError(`--config ${file}: '${k}' must be a string or number`)
      out[name] = String(v)
    }
  }
}

/** `[host:]port` -> { host, port }. */
export function parseHostPort(s: string, what: string, defaultHost?: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(s) ?? /^()()(\d+)$/.exec(s)
  if (!m) throw new UsageError(`${what}: expected [host:]port, got '${s}'`)
  const host = m[1] ?? m[2] ?? ''
  const port = Number(m[3])
  if (port < 0 || port > 65535) throw new UsageError(`${what}: port out of range in '${s}'`)
  if (!host && defaultHost === undefined) throw new UsageError(`${what}: a host is required in '${s}'`)
  return { host: host || defaultHost!, port }
}

/** An integer flag within [min, max], or undefined when not given. */
export function intFlag(flags: Flags, name: string, min: number, max: number): number | undefined {
  const v = flags[name]
  if (v === undefined) return undefined
  const n = Number(v)
  if (typeof v !== 'string' || v.trim() === '' || !Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}`)
  return n
}

/** `USER:PASS` -> { user, pass } (the user non-empty; the password may hold colons). */
export function userPass(flags: Flags, name: string): { user: string; pass: string } | undefined {
  const v = flags[name]
  if (v === undefined) return undefined
  const s = String(v)
  const colon = s.indexOf(':')
  if (colon <= 0) throw new UsageError(`--${name}: expected USER:PASS`)
  return { user: s.slice(0, colon), pass: s.slice(colon + 1) }
}
