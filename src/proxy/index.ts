/**
 * The HTTP proxy: {@link HttpProxy} on the client side (a forward proxy for
 * browsers, every request over the one session) and {@link HttpGateway} on
 * the server side (pooled keep-alive onward connections, allow list
 * applied). {@link TunnelServer} runs a gateway by default.
 * @packageDocumentation
 */
export { HttpProxy, createHttpProxy, type HttpProxyOptions, type HttpProxyStats, type StreamOpener } from './client.js'
export { HttpGateway, type HttpGatewayOptions, type HttpGatewayLimits, type HttpGatewayStats, type AllowedAddress } from './gateway.js'
export { GATEWAY_HOST, GATEWAY_PORT, isGatewayTarget } from '../tunnel/gateway.js'
