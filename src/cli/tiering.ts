/**
 * V8 tuning for the long-running `synmux` processes, applied when this
 * module loads (the CLI imports it before anything else).
 *
 * A tunnel's per-connection code (accept, first flight, OPEN, onward
 * connect, relay) runs once per connection. At a few connections a second
 * V8's default interrupt budget keeps most of it in the interpreter for
 * thousands of connections, and the time a new connection spends above
 * one round trip is mostly that code. A smaller budget (`--interrupt-budget`,
 * bytes of bytecode a function runs before V8 considers optimizing it)
 * gets it optimized after tens of connections instead. Measured on
 * loopback (2-core VM, median of 400 connections, first response byte of
 * a new connection through `synmux client --forward` and `synmux server`):
 * 2.2–2.6 ms with the default, 1.7–2.1 ms with 4096; the rate at 64
 * connections in flight is unchanged within noise.
 *
 * A budget given on the command line or in `NODE_OPTIONS`, or
 * `SYNMUX_V8_DEFAULTS=1` in the environment, leaves V8's own settings.
 * @internal
 * @packageDocumentation
 */
import v8 from 'node:v8'

/** The interrupt budget the CLI runs with (V8's default is 67,584 in Node 20–24). */
export const INTERRUPT_BUDGET = 4096

const given = [...process.execArgv, ...(process.env['NODE_OPTIONS'] ?? '').split(/\s+/)].some((a) => a.startsWith('--interrupt-budget'))
if (!given && process.env['SYNMUX_V8_DEFAULTS'] !== '1') v8.setFlagsFromString(`--interrupt-budget=${INTERRUPT_BUDGET}`)
