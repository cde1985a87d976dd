/**
 * TCP Fast Open for Node.js.
 * @packageDocumentation
 */
export { connectWithData, createConnection } from './connect.js'
export { createServer, enableFastOpen, DEFAULT_FAST_OPEN_QUEUE, type FastOpenServer } from './server.js'
export { FastOpenSocket } from './socket.js'
export { fastOpenSupport } from './support.js'
export { fastOpenInfo } from './info.js'
export type { SystemError } from './errors.js'
export type {
  FastOpenConnectOptions,
  FastOpenInfo,
  FastOpenReason,
  FastOpenReport,
  FastOpenServerOptions,
  FastOpenServerState,
  FastOpenSupport,
} from './types.js'
export { FastOpenAgent, FastOpenHttpsAgent, type FastOpenAgentOptions, type FastOpenHttpsAgentOptions } from './agent.js'
export {
  fastOpenConnector,
  type FastOpenConnector,
  type FastOpenConnectorOptions,
  type UndiciConnectCallback,
  type UndiciConnectOptions,
} from './undici.js'
export type { FastOpenTLSSocket } from './tls.js'
