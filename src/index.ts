/**
 * synmux: TCP Fast Open for Node.js, and a 1-RTT connection multiplexer and
 * tunnel built on it.
 *
 * @packageDocumentation
 */
import { HttpGateway } from './proxy/gateway.js'
import { setDefaultGateway } from './tunnel/gateway.js'

export * from './common/index.js'
export * from './tfo/index.js'
export * from './mux/index.js'
export * from './net/index.js'
export * from './tunnel/index.js'
export * from './proxy/index.js'
export * from './secure/index.js'

// The composition root: a TunnelServer (tunnel layer) runs the HTTP gateway
// (proxy layer, above it) unless its options say otherwise.
setDefaultGateway((options) => new HttpGateway(options))
