/**
 * The command line's flags: one table per command (src/cli/flags.ts) drives
 * both node:util parseArgs and the help, and this test reads that table
 * from the build and checks that every command's help (`synmux <cmd>
 * --help`, the real CLI) and the README list every flag; `synmux
 * --version`; usage errors exit 2 with the reason; `--config` keys in
 * camelCase or as the flags are written.
 */
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { ROOT } from '../helpers'
import { runCli, secureKeys } from './cli'

interface FlagDef {
  type: 'string' | 'boolean'
  arg?: string
}
const { COMMANDS } = createRequire(__filename)(path.join(ROOT, 'dist', 'cjs', 'cli', 'flags.js')) as { COMMANDS: Record<string, { flags: Record<string, FlagDef> }> }
const README = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8')

describe('help lists every flag', () => {
  for (const [cmd, spec] of Object.entries(COMMANDS)) {
    it(`synmux ${cmd} --help`, async () => {
      const names = Object.keys(spec.flags)
      expect(names.length).toBeGreaterThan(0)
      const r = await runCli([cmd, '--help'])
      expect(r.code).toBe(0)
      for (const [name, def] of Object.entries(spec.flags)) {
        const label = def.type === 'string' ? `--${name} ${def.arg}` : `--${name}`
        expect(r.stdout, label).toMatch(new RegExp(`^  ${label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}( |$)`, 'm'))
      }
    })
  }

  it('the README documents every flag of server and client', () => {
    for (const cmd of ['server', 'client']) for (const name of Object.keys(COMMANDS[cmd]!.flags)) expect(README, `${cmd} --${name}`).toContain(`--${name}`)
  })

  it('synmux --help names every command; client mentions its three ways in (forwards, SOCKS5, HTTP proxy)', async () => {
    const r = await runCli(['--help'])
    for (const cmd of Object.keys(COMMANDS)) expect(r.stdout).toMatch(new RegExp(`^  ${cmd} `, 'm'))
    expect(r.stdout).toMatch(/client .*port forwards, a SOCKS5 proxy\s+and an HTTP proxy/s)
    expect(r.stdout).toMatch(/--version/)
  })

  it('synmux --version prints the package version', async () => {
    const version = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version
    const r = await runCli(['--version'])
    expect(r).toMatchObject({ code: 0, stdout: `synmux ${version}\n` })
  })
})

describe('usage errors: exit 2, the reason, then the help', () => {
  const keys = secureKeys()
  // Every check before the one a case is about passes: the secure default's keys are all given.
  const client = ['client', '--server', '127.0.0.1:1', ...keys.client]
  const cases: [string[], RegExp][] = [
    [['server', '--listen', '1', ...keys.server, '--bogus'], /^synmux server: unknown option --bogus$/m],
    [['server', '--listen', '1', ...keys.server, '-x'], /^synmux server: unknown option -x$/m],
    [['server', '--listen'], /^synmux server: --listen needs a value$/m],
    [['server', '--listen', '--key', keys.serverKeyFile], /^synmux server: --listen needs a value \(a value that starts with '-' is written --listen=--key\)$/m],
    [['server', '--listen', '1', '--listen', '2'], /^synmux server: --listen given twice$/m],
    [['server', 'listen', '1'], /^synmux server: unexpected argument 'listen'$/m],
    [[...client, '--tls=yes', '--socks', '1'], /^synmux client: --tls takes no value$/m],
    [[...client, '--socks', '1', '--log-format', 'xml'], /--log-format must be text or json/],
    [[...client, '--socks-auth', 'a:b'], /--socks-auth needs --socks/],
    [[...client, '--socks-wait', '--forward', '1=a:1'], /--socks-wait needs --socks/],
    [[...client, '--socks', '1', '--socks-auth', 'nocolon'], /--socks-auth: expected USER:PASS/],
    [[...client, '--socks', '1', '--drain-timeout', '-1'], /--drain-timeout needs a value/],
    [[...client, '--socks', '1', '--drain-timeout', '1.5'], /--drain-timeout must be an integer from 0 to 86400/],
    [[...client, '--socks', '1', '--metrics', 'x:y'], /--metrics: expected \[host:\]port, got 'x:y'/],
    [['server', '--listen', '1', ...keys.server, '--ipv6-source-prefix', '0'], /--ipv6-source-prefix must be an integer from 1 to 128/],
    [['server', '--listen', '1', ...keys.server, '--ipv6-source-prefix', '129'], /--ipv6-source-prefix must be an integer from 1 to 128/],
    [['server', '--listen', '1', ...keys.server, '--workers', '0'], /--workers must be an integer from 1 to 255/],
    [['server', '--listen', '1', ...keys.server, '--workers', '256'], /--workers must be an integer from 1 to 255/],
    [['server', '--listen', '1', '--key', keys.serverKeyFile, '--tls-cert', 'c', '--tls-key', 'k', '--workers', '2'], /--workers above 1 needs the secure channel or --insecure-plaintext: a TLS session cannot be handed between worker processes/],
    [['server', '--listen', '1', ...keys.server, '--instance-id', '1'], /--instance-id needs --advertise ip:port/],
    [['server', '--listen', '1', ...keys.server, '--instance-id', '65536', '--advertise', '10.0.0.1:9'], /--instance-id must be an integer from 1 to 65535/],
    [['server', '--listen', '1', ...keys.server, '--instance-id', '1', '--advertise', 'tunnel.example:9000'], /--advertise: an IP address is needed \(clients are sent to it\), not 'tunnel.example'/],
    [['server', '--listen', '1', ...keys.server, '--advertise', '10.0.0.1:9'], /--advertise needs --instance-id/],
    [['server', '--listen', '1', '--key', keys.serverKeyFile, '--insecure-plaintext', '--instance-id', '1', '--advertise', '10.0.0.1:9'], /--instance-id needs the secure channel/],
    [['demo', '--connections', '0'], /--connections must be an integer from 1 to 1000/],
    [['keygen', '--bits', '9'], /unknown option --bits/],
  ]
  for (const [args, re] of cases) {
    it(args.slice(0, 1).concat(args.slice(args[0] === 'client' ? client.length : 1)).join(' '), async () => {
      const r = await runCli(args)
      expect(r.code).toBe(2)
      expect(r.stderr).toMatch(re)
      expect(r.stderr).toMatch(new RegExp(`Usage: synmux ${args[0]}`))
    })
  }
})

describe('--config', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synmux-flags-'))
  const cfg = (o: object) => {
    const f = path.join(dir, `${Math.random().toString(36).slice(2)}.json`)
    fs.writeFileSync(f, JSON.stringify(o))
    return f
  }
  const keys = secureKeys()
  const secure = { key: keys.clientKeyFile, serverKey: keys.serverPublic }

  it('keys as the flags are written (kebab-case) or in camelCase; the command line wins', async () => {
    // Each reaches the check that comes after parsing: the value was read from the file.
    expect((await runCli(['client', '--config', cfg({ server: '127.0.0.1:1', ...secure, socks: 1, 'log-format': 'xml' })])).stderr).toMatch(/--log-format must be text or json/)
    expect((await runCli(['client', '--config', cfg({ server: '127.0.0.1:1', ...secure, socks: 1, logFormat: 'xml' })])).stderr).toMatch(/--log-format must be text or json/)
    expect((await runCli(['client', '--config', cfg({ server: '127.0.0.1:1', ...secure, socksWait: true })])).stderr).toMatch(/--socks-wait needs --socks/)
    expect((await runCli(['client', '--config', cfg({ server: '127.0.0.1:1', ...secure, socks: 1, logFormat: 'xml' }), '--log-format', 'yaml'])).stderr).toMatch(/--log-format must be text or json/)
  })

  it('an unknown key, a wrong type, or --config itself in the file: exit 2 naming the key', async () => {
    for (const [o, re] of [
      [{ bogus: 1 }, /unknown key 'bogus'/],
      [{ config: 'x' }, /unknown key 'config'/],
      [{ socksWait: 'yes' }, /'socksWait' must be true or false/],
      [{ server: { host: 'x' } }, /'server' must be a string or number/],
      [{ forward: [{}] }, /'forward' must be a string or a list of strings/],
    ] as const) {
      const r = await runCli(['client', '--config', cfg(o)])
      expect(r.code).toBe(2)
      expect(r.stderr).toMatch(re)
    }
    const r = await runCli(['client', '--config', path.join(dir, 'missing.json')])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/--config .*missing\.json: ENOENT/)
  })
})
