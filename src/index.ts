/**
 * synmux: TCP Fast Open for Node.js, and a 1-RTT connection multiplexer and
 * tunnel built on it.
 *
 * @packageDocumentation
 */
export * from './tfo/index.js'
export * from './mux/index.js'
export * from './tunnel/index.js'
export * from './proxy/index.js'
export * from './secure/index.js'
