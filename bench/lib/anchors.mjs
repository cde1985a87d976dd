// The anchors synmux is measured against: shadowsocks-libev, OpenSSH's
// `ssh -L` and squid (and ApacheBench to load the HTTP proxies), installed
// from Debian by the bench itself, each configured the way the JSON says,
// started inside the bench's own network namespaces. Never as a system
// service: the daemons Debian's postinst starts (or would start where
// services may start) are stopped and disabled after the install.
import { execFileSync, spawnSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'

export const PACKAGES = ['shadowsocks-libev', 'openssh-server', 'openssh-client', 'squid', 'apache2-utils']
/** The system services those packages bring (name of the init script / systemd unit). */
const SERVICES = ['shadowsocks-libev', 'ssh', 'squid']

export const SS_CIPHER = 'chacha20-ietf-poly1305'
export const SSH_CIPHER = 'aes128-gcm@openssh.com'

const which = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).stdout.trim() || null
const installed = (pkg) => spawnSync('dpkg', ['-s', pkg], { stdio: 'ignore' }).status === 0

function stopServices(log) {
  const systemd = fs.existsSync('/run/systemd/system')
  for (const svc of SERVICES) {
    if (systemd) {
      spawnSync('systemctl', ['disable', '--now', svc], { stdio: 'ignore' })
      if (svc === 'ssh') spawnSync('systemctl', ['disable', '--now', 'ssh.socket'], { stdio: 'ignore' })
    } else if (fs.existsSync(`/etc/init.d/${svc}`)) {
      spawnSync(`/etc/init.d/${svc}`, ['stop'], { stdio: 'ignore' })
      spawnSync('update-rc.d', [svc, 'disable'], { stdio: 'ignore' })
    }
  }
  // Whatever still listens on the anchors' standard ports in this namespace is reported, not killed.
  const ss = spawnSync('ss', ['-Hltnp'], { encoding: 'utf8' }).stdout ?? ''
  const busy = ss.split('\n').filter((l) => /:(22|3128|8388)\s/.test(l) && /sshd|squid|ss-server/.test(l))
  if (busy.length) log(`warning: still listening after stopping the services:\n${busy.join('\n')}`)
  return busy
}

/**
 * Installs the anchors from Debian when missing (root and apt-get needed),
 * then stops and disables the system services they start. Returns
 * { installed: [...], missing: [...], versions, notes }. `packages`: a
 * subset of PACKAGES (default all).
 */
export function ensureAnchors({ log = () => {}, install = true, packages = PACKAGES } = {}) {
  const notes = []
  const need = packages.filter((p) => !installed(p))
  if (need.length && install) {
    if (process.getuid?.() !== 0 || !which('apt-get')) {
      notes.push(`not installed (needs root and apt-get): ${need.join(', ')}`)
    } else {
      log(`apt-get install ${need.join(' ')}`)
      const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
      const opt = { stdio: ['ignore', 'ignore', 'pipe'], env, encoding: 'utf8' }
      let r = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...need], opt)
      if (r.status !== 0) {
        spawnSync('apt-get', ['update', '-qq'], opt)
        r = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...need], opt)
      }
      if (r.status !== 0) notes.push(`apt-get install ${need.join(' ')} failed: ${String(r.stderr).trim().slice(-500)}`)
    }
  }
  const busy = process.getuid?.() === 0 ? stopServices(log) : []
  if (busy.length) notes.push(`system daemons still listening: ${busy.join('; ')}`)
  const missing = packages.filter((p) => !installed(p))
  return { packages, missing, versions: versions(), notes }
}

function firstLine(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' })
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n').map((l) => l.trim()).find(Boolean) ?? null
}

/** Installed versions (Debian package versions, exact). */
export function versions() {
  const v = {}
  for (const p of PACKAGES) {
    const r = spawnSync('dpkg-query', ['-W', '-f', '${Version}', p], { encoding: 'utf8' })
    v[p] = r.status === 0 ? r.stdout.trim() : null
  }
  return v
}

export const has = {
  ss: () => !!(which('ss-server') && which('ss-tunnel') && which('ss-local')),
  ssh: () => !!(sshdPath() && which('ssh') && which('ssh-keygen')),
  squid: () => !!squidPath(),
  ab: () => !!which('ab'),
}

export const sshdPath = () => ['/usr/sbin/sshd', '/usr/bin/sshd'].find((f) => fs.existsSync(f)) ?? null
export const squidPath = () => ['/usr/sbin/squid', '/usr/bin/squid'].find((f) => fs.existsSync(f)) ?? null

/**
 * The open-file limit every daemon runs with (under prlimit): 65536 where
 * this process may raise its hard limit (CAP_SYS_RESOURCE), else its hard
 * limit. A relay holds two descriptors per tunnelled connection, so this
 * caps the idle connections a bench can hold (see maxRelayedConnections).
 */
export const NOFILE = (() => {
  const m = /Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/.exec(fs.readFileSync('/proc/self/limits', 'utf8'))
  const hard = !m || m[2] === 'unlimited' ? 1 << 20 : Number(m[2])
  if (hard >= 65536) return 65536
  return spawnSync('prlimit', ['--nofile=65536:65536', '--', 'true'], { stdio: 'ignore' }).status === 0 ? 65536 : hard
})()
/** Connections a relay (two descriptors each) can hold within NOFILE, with room for its own. */
export const maxRelayedConnections = () => Math.floor((NOFILE - 200) / 2)
const limited = (cmd, args) => ['prlimit', [`--nofile=${NOFILE}:${NOFILE}`, '--', cmd, ...args]]

/**
 * shadowsocks-libev: ss-server beside the target, ss-tunnel (a port
 * forward, like synmux --forward and ssh -L) or ss-local (SOCKS5; the one
 * of the two with --fast-open) beside the application.
 */
export function shadowsocks(dir) {
  const password = crypto.randomBytes(18).toString('base64')
  const common = ['-k', password, '-m', SS_CIPHER, '-t', '3600', '-n', String(NOFILE), '--no-delay']
  return {
    password,
    cipher: SS_CIPHER,
    server: ({ host, port, fastOpen = true }) => limited('ss-server', ['-s', host, '-p', String(port), ...common, ...(fastOpen ? ['--fast-open'] : [])]),
    tunnel: ({ server, serverPort, listen, port, target }) => limited('ss-tunnel', ['-s', server, '-p', String(serverPort), '-b', listen, '-l', String(port), '-L', target, ...common]),
    local: ({ server, serverPort, listen, port, fastOpen = true }) => limited('ss-local', ['-s', server, '-p', String(serverPort), '-b', listen, '-l', String(port), ...common, ...(fastOpen ? ['--fast-open'] : [])]),
    config: `${SS_CIPHER}; ss-server --fast-open --no-delay (onward TFO like synmux), ss-tunnel/ss-local --no-delay, -t 3600, -n ${NOFILE}`,
  }
}

/**
 * OpenSSH: an sshd for the run (its own host key and config in `dir`, root
 * login with a throwaway ed25519 key), and the `ssh -N -L` command line.
 */
export function openssh(dir) {
  for (const k of ['ssh_host', 'ssh_client']) {
    const f = path.join(dir, k)
    if (!fs.existsSync(f)) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', f])
  }
  const authorized = path.join(dir, 'ssh_authorized_keys')
  fs.copyFileSync(path.join(dir, 'ssh_client.pub'), authorized)
  fs.mkdirSync('/run/sshd', { recursive: true }) // privilege separation directory
  return {
    cipher: SSH_CIPHER,
    server: ({ host, port }) => {
      const conf = path.join(dir, `sshd_config_${port}`)
      fs.writeFileSync(conf, [
        `ListenAddress ${host}`, `Port ${port}`, `HostKey ${path.join(dir, 'ssh_host')}`,
        `AuthorizedKeysFile ${authorized}`, 'PermitRootLogin prohibit-password', 'PasswordAuthentication no',
        'KbdInteractiveAuthentication no', 'StrictModes no', 'UsePAM no', 'AllowTcpForwarding yes',
        'PidFile none', `Ciphers ${SSH_CIPHER}`, 'Compression no', 'UseDNS no', 'MaxStartups 100', '',
      ].join('\n'))
      return limited(sshdPath(), ['-D', '-e', '-f', conf])
    },
    forward: ({ server, port, forwards }) => limited('ssh', [
      '-N', ...forwards.flatMap((f) => ['-L', f]), '-p', String(port), '-i', path.join(dir, 'ssh_client'),
      '-c', SSH_CIPHER, '-o', 'Compression=no', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
      '-o', 'BatchMode=yes', '-o', 'ExitOnForwardFailure=yes', '-o', 'LogLevel=ERROR', `root@${server}`,
    ]),
    config: `${SSH_CIPHER}, ed25519 keys, no compression; one SSH connection set up before measuring, each tunnelled connection a direct-tcpip channel`,
  }
}

/**
 * squid as a plain forward proxy: its own config file in `dir`, memory only,
 * caching off (synmux's HTTP proxy does not cache), no access log, loopback.
 */
export function squid(dir) {
  fs.chmodSync(dir, 0o777) // squid drops to the proxy user and writes its cache log here
  return {
    server: ({ host, port }) => {
      const conf = path.join(dir, `squid_${port}.conf`)
      fs.writeFileSync(conf, [
        `http_port ${host}:${port}`, 'http_access allow localhost', 'http_access deny all',
        'cache deny all', 'cache_mem 8 MB', 'access_log none', 'cache_store_log none',
        `cache_log ${path.join(dir, `squid_${port}.log`)}`, `pid_filename ${path.join(dir, `squid_${port}.pid`)}`,
        `coredump_dir ${dir}`, 'visible_hostname synmux-bench', 'shutdown_lifetime 1 seconds', `max_filedescriptors ${NOFILE}`,
        'workers 1', 'dns_v4_first on', 'netdb_filename none', 'logfile_rotate 0', '',
      ].join('\n'))
      return limited(squidPath(), ['-N', '-f', conf])
    },
    config: 'squid, one worker, memory only, cache deny all, access_log none, default keep-alive (client and server persistent connections on)',
  }
}

export const anchorVersionLines = () => ({
  'ss-server': firstLine('ss-server', ['-h']),
  ssh: firstLine('ssh', ['-V']),
  squid: squidPath() ? firstLine(squidPath(), ['-v']) : null,
  ab: firstLine('ab', ['-V']),
})
