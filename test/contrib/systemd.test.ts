/**
 * contrib/systemd: both units pass `systemd-analyze verify` with no
 * warning at all (verify exits 0 on a misspelt or invalid setting, so any
 * output fails the test; a unit with such a typo is checked to produce
 * some), their sandboxing scores an exposure of at most 2.0 in
 * `systemd-analyze security --offline` (the client as instance `office`);
 * and their ExecStart, ExecReload and stop run as written against the
 * real CLI on the secure default (the specifiers %d and %i filled in as
 * systemd does, the private keys written there as LoadCredential= writes
 * them and $CREDENTIALS_DIRECTORY set, /etc/synmux moved to a temporary
 * directory): it starts, `kill -HUP $MAINPID` reloads it (the server
 * re-reads its authorized keys), SIGTERM stops it with exit code 0. No running systemd is
 * needed (verify and security --offline read the unit files);
 * `synmux` in ExecStart is pointed at this build for verify, which checks
 * that the command exists.
 */
import { execFile, execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'
import { ROOT } from '../helpers'
import { encodePublicKey } from 'synmux'
import { CLI, freePort, needCommand, runCli, secureKeys, stopAll, synmux } from '../tunnel/cli'

const UNITS = path.join(ROOT, 'contrib', 'systemd')
// Debian's systemd package (.ci/run installs it)
const noAnalyze = needCommand('systemd-analyze')
// Debian's acl package (.ci/run installs it): a credential with the ACL entry systemd gives it
const noSetfacl = needCommand('setfacl', 'setfacl (Debian package acl)')

/**
 * A credential in `dir` as systemd's LoadCredential= writes it: mode 0400
 * and, where the file system has ACLs (tmpfs), read access for the
 * service's user by an ACL entry, whose mask `stat` shows as group bits
 * (0440) though the group has none. The service runs as this test's user
 * here; the entry names another (nobody), as it would name the dynamic user.
 */
function credential(dir: string, id: string, from: string): string {
  const file = path.join(dir, id)
  fs.copyFileSync(from, file)
  fs.chmodSync(file, 0o400)
  if (!noSetfacl) execFileSync('setfacl', ['-m', 'u:65534:r', file])
  return file
}

const run = (cmd: string, args: string[]) =>
  promisify(execFile)(cmd, args, { encoding: 'utf8' }).then(
    (r) => ({ code: 0, out: r.stdout + r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
  )

/** The units in a temp dir, ExecStart's `synmux` pointed at this build; the client template also as instance `office`. */
function staged(): { dir: string; server: string; client: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synmux-units-'))
  for (const f of ['synmux-server.service', 'synmux-client@.service']) {
    const text = fs.readFileSync(path.join(UNITS, f), 'utf8')
    expect(text).toMatch(/^ExecStart=synmux /m)
    fs.writeFileSync(path.join(dir, f), text.replace(/^ExecStart=synmux /m, `ExecStart=${CLI} `))
  }
  fs.copyFileSync(path.join(dir, 'synmux-client@.service'), path.join(dir, 'synmux-client@office.service'))
  return { dir, server: path.join(dir, 'synmux-server.service'), client: path.join(dir, 'synmux-client@office.service') }
}

afterAll(() => stopAll())

describe('systemd-analyze', { skip: !!noAnalyze }, () => {
  it('verify: both units, no warning', async () => {
    const { server, client } = staged()
    for (const unit of [server, client, path.join(path.dirname(client), 'synmux-client@.service')]) {
      const r = await run('systemd-analyze', ['verify', '--man=no', unit])
      expect(r, unit).toEqual({ code: 0, out: '' })
    }
  })

  it('verify catches a misspelt or invalid setting (so a clean run means something)', async () => {
    const { dir, server } = staged()
    const bad = path.join(dir, 'synmux-bad.service')
    fs.writeFileSync(bad, fs.readFileSync(server, 'utf8').replace('ProtectSystem=strict', 'ProtectSystem=strictt').replace('NoNewPrivileges=yes', 'NoNewPrivilege=yes'))
    const r = await run('systemd-analyze', ['verify', '--man=no', bad])
    expect(r.out).toMatch(/Failed to parse protect system value/)
    expect(r.out).toMatch(/Unknown key 'NoNewPrivilege'/)
  })

  it('security --offline: exposure at most 2.0 (DynamicUser, no capabilities, ProtectSystem=strict, ...)', async () => {
    const { server, client } = staged()
    for (const unit of [server, client]) {
      const r = await run('systemd-analyze', ['security', '--offline=true', '--man=no', '--no-pager', unit])
      const m = /Overall exposure level for .*: (\d+\.\d+)/.exec(r.out)
      expect(m, r.out).not.toBe(null)
      expect(Number(m![1]), unit).toBeLessThanOrEqual(2.0)
      for (const want of ['User=/DynamicUser=', 'NoNewPrivileges=', 'CapabilityBoundingSet=~CAP_NET_ADMIN', 'ProtectSystem=']) expect(r.out).toMatch(new RegExp(`✓ ${want.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`))
    }
  })
})

describe('the units\' commands, as systemd runs them', () => {
  /** Unit `file`'s `key=` lines. */
  const directive = (file: string, key: string) => [...fs.readFileSync(path.join(UNITS, file), 'utf8').matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!)

  it('ExecStart starts, ExecReload (kill -HUP $MAINPID) reloads, SIGTERM stops with exit 0; LimitNOFILE and TimeoutStopSec cover the defaults', async () => {
    expect(directive('synmux-server.service', 'ExecReload')).toEqual(['/bin/kill -HUP $MAINPID'])
    expect(directive('synmux-client@.service', 'ExecReload')).toEqual(['/bin/kill -HUP $MAINPID'])
    for (const f of ['synmux-server.service', 'synmux-client@.service']) {
      // --drain-timeout defaults to 30 s: systemd must not SIGKILL sooner
      expect(parseInt(directive(f, 'TimeoutStopSec')[0]!)).toBeGreaterThan(30)
      expect(Number(directive(f, 'LimitNOFILE')[0])).toBeGreaterThanOrEqual(20_000)
      expect(directive(f, 'DynamicUser')).toEqual(['yes'])
    }
    // The secure default: the server's private key and the client's as credentials (%d: each unit's
    // own directory, $CREDENTIALS_DIRECTORY), the authorized keys and the server's public key in /etc/synmux.
    const keys = secureKeys('office')
    const etc = fs.mkdtempSync(path.join(os.tmpdir(), 'synmux-etc-'))
    const creds = { server: fs.mkdtempSync(path.join(os.tmpdir(), 'synmux-creds-')), client: fs.mkdtempSync(path.join(os.tmpdir(), 'synmux-creds-')) }
    credential(creds.server, 'key', keys.serverKeyFile)
    credential(creds.client, 'key', keys.clientKeyFile)
    fs.copyFileSync(keys.authorizedFile, path.join(etc, 'authorized_keys'))
    const port = await freePort()
    fs.writeFileSync(path.join(etc, 'server.json'), JSON.stringify({ listen: `127.0.0.1:${port}`, allow: ['127.0.0.1:1'] }))
    fs.writeFileSync(path.join(etc, 'client-office.json'), JSON.stringify({ server: `127.0.0.1:${port}`, serverKey: keys.serverPublic, socks: `127.0.0.1:${await freePort()}` }))
    // systemd's specifiers: %d the credentials directory, %i the instance
    const args = (file: string, d: string) => directive(file, 'ExecStart')[0]!.replace(/%d/g, d).replace(/%i/g, 'office').replace(/\/etc\/synmux\//g, `${etc}/`).split(' ').slice(1)
    const server = synmux(args('synmux-server.service', creds.server), { CREDENTIALS_DIRECTORY: creds.server })
    await server.waitFor(/listening on 127\.0\.0\.1:\d+, secure channel with 1 authorized key,/)
    const client = synmux(args('synmux-client@.service', creds.client), { CREDENTIALS_DIRECTORY: creds.client })
    await client.waitFor(/session to .* up/)
    await server.waitFor(/session from 127\.0\.0\.1 \(office\) established/)
    // A key added to /etc/synmux/authorized_keys counts after `systemctl reload` (read there, not copied at start).
    fs.appendFileSync(path.join(etc, 'authorized_keys'), `${encodePublicKey(keys.another(null).keys.publicKey)} phone\n`)
    for (const p of [server, client]) {
      // ExecReload: kill -HUP $MAINPID
      await run('/bin/kill', ['-HUP', String(p.child.pid)])
      await p.waitFor(/SIGHUP: reloaded/)
      expect(p.child.exitCode).toBe(null)
    }
    expect(await server.waitFor(/SIGHUP: reloaded/)).toMatch(/: log level info, 2 authorized keys$/)
    expect(server.log.some((l) => /SIGHUP: 2 authorized keys loaded from .*\/authorized_keys$/.test(l))).toBe(true)
    for (const p of [client, server]) {
      const exit = new Promise((r) => p.child.once('exit', r))
      p.child.kill('SIGTERM')
      expect(await exit).toBe(0)
    }
  })

  it('a private key in $CREDENTIALS_DIRECTORY with systemd\'s ACL (stat: 0440) is read; the same file elsewhere, or one others may read, is refused', { skip: !!noSetfacl }, async () => {
    const keys = secureKeys()
    const creds = fs.mkdtempSync(path.join(os.tmpdir(), 'synmux-creds-'))
    const key = credential(creds, 'key', keys.serverKeyFile)
    expect(fs.statSync(key).mode & 0o777).toBe(0o440)
    const port = await freePort()
    const args = ['server', '--listen', `127.0.0.1:${port}`, '--key', key, '--authorized-keys', keys.authorizedFile, '--allow', '127.0.0.1:1']
    // outside a credentials directory the group bits count, whatever set them
    for (const dir of ['', fs.mkdtempSync(path.join(os.tmpdir(), 'synmux-creds-'))]) {
      const r = await runCli(args, { CREDENTIALS_DIRECTORY: dir })
      expect(r.code, r.stderr).toBe(1)
      expect(r.stderr).toMatch(/Private key file .*\/key is accessible by others \(mode 0440\); run: chmod 600/)
    }
    // in it, others' bits still do
    const open = credential(creds, 'open', keys.serverKeyFile)
    fs.chmodSync(open, 0o404)
    const r = await runCli([...args.slice(0, 4), open, ...args.slice(5)], { CREDENTIALS_DIRECTORY: creds })
    expect(r.code, r.stderr).toBe(1)
    expect(r.stderr).toMatch(/Private key file .*\/open is accessible by others \(mode 0404\)/)
    const server = synmux(args, { CREDENTIALS_DIRECTORY: creds })
    await server.waitFor(/listening on 127\.0\.0\.1:\d+, secure channel with 1 authorized key,/)
    await server.stop()
  })
})
