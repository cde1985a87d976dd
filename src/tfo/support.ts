/**
 * What TFO this machine supports right now: the addon and the OS setting.
 * @packageDocumentation
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { native, nativeLoadError } from './native.js'
import { refusedReason, WINDOWS_CLIENT_BUILD, WINDOWS_SERVER_BUILD, windowsBuild } from './connect-win.js'
import { windowsHandleError } from './win-handle.js'
import type { FastOpenReason, FastOpenSupport } from './types.js'

const LINUX_SYSCTL = '/proc/sys/net/ipv4/tcp_fastopen'

/** Linux `net.ipv4.tcp_fastopen`, or undefined when unreadable. @internal */
export function linuxSetting(): number | undefined {
  try {
    const v = Number.parseInt(fs.readFileSync(LINUX_SYSCTL, 'utf8').trim(), 10)
    return Number.isFinite(v) ? v : undefined
  } catch {
    return undefined
  }
}

/** The platforms with a native TFO implementation. @internal */
export const SUPPORTED_PLATFORMS: readonly NodeJS.Platform[] = ['linux', 'darwin', 'win32']

/** macOS `net.inet.tcp.fastopen` (0x1 server, 0x2 client), or undefined when unreadable. @internal */
export function darwinSetting(): number | undefined {
  if (process.platform !== 'darwin' || !native?.fastOpenSetting) return undefined
  try {
    const v = native.fastOpenSetting()
    return typeof v === 'number' ? v : undefined
  } catch {
    return undefined
  }
}

/**
 * Reports whether client and server TCP Fast Open are available, and why
 * not. Reads the OS setting on every call (it can change at run time).
 *
 * @example
 * ```js
 * const { fastOpenSupport } = require('synmux')
 * console.log(fastOpenSupport())
 * // { platform: 'linux', addon: true, client: true, server: true, setting: 3, detail: '...' }
 * ```
 */
export function fastOpenSupport(): FastOpenSupport {
  const platform = process.platform
  if (!SUPPORTED_PLATFORMS.includes(platform)) {
    return {
      platform,
      addon: native !== null,
      client: false,
      server: false,
      reason: 'unsupported-platform',
      detail: `synmux has no TCP Fast Open for ${platform} ${os.release()}; connections use plain net`,
    }
  }
  if (!native) {
    return { platform, addon: false, client: false, server: false, reason: 'addon-unavailable', detail: addonDetail() }
  }
  if (platform === 'darwin') return darwinSupport()
  if (platform === 'win32') return windowsSupport()
  return linuxSupport()
}

/** The first line of an error message, trimmed (node-gyp-build's span several lines). */
function firstLine(message: string): string {
  return message.split('\n', 1)[0]!.trim()
}

/**
 * Why the addon is missing, on one line: the install-time failure that
 * scripts/install.js recorded when it could neither find a prebuilt binary
 * nor compile one, else the load error.
 */
function addonDetail(): string {
  const install = installFailure()
  const why = install ?? `the native addon did not load (${firstLine(nativeLoadError?.message ?? 'unknown error')})`
  return `${why}; connections use plain net. With Python 3, make and a C++ compiler installed, \`npm rebuild synmux\` compiles it`
}

/** What scripts/install.js wrote to build/install-fallback.json, as one sentence, or undefined. */
function installFailure(): string | undefined {
  try {
    const file = path.join(__dirname, '..', '..', '..', 'build', 'install-fallback.json')
    const r = JSON.parse(fs.readFileSync(file, 'utf8')) as { target?: unknown; reason?: unknown }
    if (typeof r.target !== 'string' || typeof r.reason !== 'string') return undefined
    return `no prebuilt binary fits ${r.target} and compiling the addon at install failed (${firstLine(r.reason)})`
  } catch {
    return undefined
  }
}

function darwinSupport(): FastOpenSupport {
  const setting = darwinSetting()
  if (setting === undefined) {
    return {
      platform: 'darwin',
      addon: true,
      client: true,
      server: true,
      detail: 'sysctl net.inet.tcp.fastopen is unreadable; assuming the default (client and server on)',
    }
  }
  const client = (setting & 0x2) !== 0
  const server = (setting & 0x1) !== 0
  const parts = [`net.inet.tcp.fastopen=${setting}`]
  if (!client) parts.push('client TFO is off')
  if (!server) parts.push('server TFO is off (a server gets no SYN data)')
  if (!client || !server) parts.push('enable both with: sudo sysctl -w net.inet.tcp.fastopen=3')
  else parts.push('client and server TFO are on (the kernel may still back off after failures)')
  const out: FastOpenSupport = { platform: 'darwin', addon: true, client, server, setting, detail: parts.join('; ') }
  if (!client) out.reason = 'disabled-by-os'
  return out
}

function windowsSupport(): FastOpenSupport {
  const build = windowsBuild()
  const release = os.release()
  const handleError = windowsHandleError()
  if (handleError !== undefined) {
    return { platform: 'win32', addon: true, client: false, server: false, reason: 'handle-unavailable', detail: handleError }
  }
  // The truth is whether this Windows accepts TCP_FASTOPEN: ask it.
  let refused: string | undefined
  const n = native!
  try {
    const s = n.socket(4)
    try {
      n.setFastOpenConnect(s)
    } catch (err) {
      refused = (err as NodeJS.ErrnoException).code ?? 'UNKNOWN'
    } finally {
      n.close(s)
    }
  } catch (err) {
    refused = (err as NodeJS.ErrnoException).code ?? 'UNKNOWN'
  }
  const client = refused === undefined && build >= WINDOWS_CLIENT_BUILD
  const server = refused === undefined && build >= WINDOWS_SERVER_BUILD
  const parts = [`Windows ${release}`]
  if (refused !== undefined) parts.push(`setsockopt(TCP_FASTOPEN) was refused (${refused}): data is sent right after the handshake`)
  else parts.push('setsockopt(TCP_FASTOPEN) is accepted')
  if (build < WINDOWS_CLIENT_BUILD) parts.push('client TFO needs Windows 10 1607 (build 14393) or later')
  else if (build < WINDOWS_SERVER_BUILD) parts.push('server TFO needs Windows 10 1703 (build 15063) or later')
  parts.push('Windows cannot report whether a SYN carried data (fastOpen.accepted stays null)')
  parts.push('enable with: netsh int tcp set global fastopen=enabled (and fastopenfallback=disabled)')
  const out: FastOpenSupport = { platform: 'win32', addon: true, client, server, detail: parts.join('; ') }
  if (!client) out.reason = refused !== undefined ? refusedReason() : 'kernel-too-old'
  return out
}

function linuxSupport(): FastOpenSupport {
  const setting = linuxSetting()
  if (setting === undefined) {
    return {
      platform: 'linux',
      addon: true,
      client: true,
      server: true,
      detail: `${LINUX_SYSCTL} is unreadable; assuming the kernel default`,
    }
  }
  const client = (setting & 0x1) !== 0 || (setting & 0x4) !== 0
  const server = (setting & 0x2) !== 0 || (setting & 0x400) !== 0
  const parts = [`net.ipv4.tcp_fastopen=${setting}`]
  if (!client) parts.push('client TFO is off')
  if (!server) parts.push('server TFO is off (a server gets no SYN data)')
  if (!client || !server) parts.push('enable both with: sudo sysctl -w net.ipv4.tcp_fastopen=3')
  else parts.push('client and server TFO are on')
  const out: FastOpenSupport = { platform: 'linux', addon: true, client, server, setting, detail: parts.join('; ') }
  if (!client) out.reason = 'disabled-by-os' satisfies FastOpenReason
  return out
}
