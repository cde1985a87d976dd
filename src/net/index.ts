/**
 * Mux streams and sockets: the relay between them, and what the tunnel and
 * the HTTP proxy share on each side of a stream.
 * @packageDocumentation
 */
export { relay, type RelayCounts } from './relay.js'
export { IPV6_SOURCE_PREFIX, sourceOf } from './address.js'
