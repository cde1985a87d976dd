/**
 * The tunnel: allow list, keys, SOCKS5, and the tunnel client and server.
 * @packageDocumentation
 */
export { AllowList, embeddedIPv4, isPublicAddress, type AllowQuery } from './allow.js'
export { TunnelError, type TunnelErrorCode } from './errors.js'
export { generateKey, parseKey, readKeyFile, KEY_BYTES } from './keys.js'
export { FailureLimiter, type FailureLimiterOptions } from './ratelimit.js'
export { Socks5Parser, SocksReply, socksReply, type SocksRequest, type Socks5ParserOptions } from './socks5.js'
export { TunnelServer } from './server.js'
export { TUNNEL_MAX_STREAMS, type TunnelServerOptions, type TunnelServerStats, type TunnelClientInfo } from './server-options.js'
export type { ServerRouting } from './routing.js'
export { TUNNEL_RECORD_SIZE, TUNNEL_FRAME_SIZE, type TunnelServerSecureOptions, type TunnelClientSecureOptions } from './security.js'
export { TunnelClient } from './client.js'
export type { TunnelClientOptions, TunnelClientStats, TunnelClientTls, LocalListener } from './client-options.js'
export type { SocksOptions } from './socks-listener.js'
export { SessionPool, type SessionPoolOptions, type PoolStats, type PoolMemberStats, type PoolDeathInfo } from './pool.js'
