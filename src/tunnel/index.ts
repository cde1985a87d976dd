/**
 * The tunnel: allow list, keys, SOCKS5, and the tunnel client and server.
 * @packageDocumentation
 */
export { AllowList, isPublicAddress, type AllowQuery } from './allow.js'
export { TunnelError, type TunnelErrorCode } from './errors.js'
export { generateKey, parseKey, readKeyFile, KEY_BYTES } from './keys.js'
export { FailureLimiter, type FailureLimiterOptions } from './ratelimit.js'
export { Socks5Parser, SocksReply, socksReply, type SocksRequest } from './socks5.js'
