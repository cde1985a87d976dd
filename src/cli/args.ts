/**
 * Command-line flags: `--name value`, `--name=value`, repeatable flags, and
 * `--config file.json` whose keys mirror the flag names (flags win).
 * @internal
 * @packageDocumentation
 */
import fs from 'node:fs'

/** How one flag is read. */
export interface FlagSpec {
  /** Takes no value. */
  boolean?: boolean
  /** May be given several times (values collected in an array). */
  repeat?: boolean
}

/** A usage error: printed with the command's help, exit code 2. */
export class UsageError extends Error {}

/** Parsed flags: name -> value(s). */
export type Flags = Record<string, string | boolean | string[]>

/** Parses `argv` against `specs`; then merges `--config` (flags override it). */
export function parseFlags(argv: string[], specs: Record<string, FlagSpec>): Flags {
  const out: Flags = {}
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (!a.startsWith('--')) throw new UsageError(`unexpected argument '${a}'`)
    const eq = a.indexOf('=')
    const name = a.slice(2, eq < 0 ? undefined : eq)
    const spec = specs[name]
    if (!spec) throw new UsageError(`unknown option --${name}`)
    let value: string | boolean
    if (spec.boolean) {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`)
      value = true
    } else if (eq >= 0) value = a.slice(eq + 1)
    else {
      const v = argv[++i]
      if (v === undefined || v.startsWith('--')) throw new UsageError(`--${name} needs a value`)
      value = v
    }
    if (spec.repeat) out[name] = [...((out[name] as string[]) ?? []), ...String(value).split(',').filter(Boolean)]
    else if (name in out) throw new UsageError(`--${name} given twice`)
    else out[name] = value
  }
  const config = out.config
  if (typeof config === 'string') {
    let json: unknown
    try {
      json = JSON.parse(fs.readFileSync(config, 'utf8'))
    } catch (err) {
      throw new UsageError(`--config ${config}: ${(err as Error).message}`)
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new UsageError(`--config ${config}: expected a JSON object`)
    for (const [k, v] of Object.entries(json)) {
      const name = k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)
      const spec = specs[name]
      if (!spec || name === 'config') throw new UsageError(`--config ${config}: unknown key '${k}'`)
      if (name in out) continue
      if (spec.boolean) {
        if (typeof v !== 'boolean') throw new UsageError(`--config ${config}: '${k}' must be true or false`)
        out[name] = v
      } else if (spec.repeat) {
        const list = Array.isArray(v) ? v : [v]
        if (!list.every((x) => typeof x === 'string' || typeof x === 'number')) throw new UsageError(`--config ${config}: '${k}' must be a string or a list of strings`)
        out[name] = list.map(String)
      } else {
        if (typeof v !== 'string' && typeof v !== 'number') throw new UsageError(`--config ${config}: '${k}' must be a string or number`)
        out[name] = String(v)
      }
    }
  }
  return out
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
