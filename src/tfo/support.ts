/**
 * What TFO this machine supports right now: the addon and the OS setting.
 * @packageDocumentation
 */
import fs from 'node:fs'
import os from 'node:os'
import { native, nativeLoadError } from './native.js'
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
export const SUPPORTED_PLATFORMS: readonly NodeJS.Platform[] = ['linux']

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
    return {
      platform,
      addon: false,
      client: false,
      server: false,
      reason: 'addon-unavailable',
      detail: `the native addon did not load (${nativeLoadError?.message ?? 'unknown error'}); connections use plain net. Reinstall with \`npm install --build-from-source\` if no prebuilt binary fits this machine`,
    }
  }
  return linuxSupport()
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
