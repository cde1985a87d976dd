/**
 * REFUSED codes (PROTOCOL.md 11.2) as the tunnel and the HTTP proxy use
 * them: the code a failed onward connect maps to, a code's name in stats,
 * and whether a stream's error is a refusal.
 * @packageDocumentation
 */
import { RefuseCode } from '../mux/wire/constants.js'
import type { MuxError } from '../mux/errors.js'

/** Maps an onward connect error to a REFUSED code. */
export function refuseCodeFor(err: NodeJS.ErrnoException): number {
  switch (err.code) {
    case 'ECONNREFUSED':
      return RefuseCode.CONNECTION_REFUSED
    case 'ETIMEDOUT':
      return RefuseCode.TIMEOUT
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
    case 'ENETUNREACH':
    case 'EHOSTUNREACH':
    case 'EADDRNOTAVAIL':
      return RefuseCode.UNREACHABLE
    default:
      return RefuseCode.REFUSED
  }
}

/** REFUSED codes by their name in lower case (`not_allowed`), for stats. */
const REFUSE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(RefuseCode).map(([k, v]) => [v, k.toLowerCase()]))

/** A REFUSED code's name in stats (`not_allowed`, `too_many_streams`, ...; `code_<n>` for an unknown one). */
export const refuseName = (code: number): string => REFUSE_NAMES[code] ?? `code_${code}`

/** Whether a stream's error says the far side refused it (`SYNMUX_REFUSED`), or had no room for it (`SYNMUX_TOO_MANY_STREAMS`). */
export function isRefusal(err: unknown): err is MuxError {
  const code = (err as { code?: string } | null)?.code
  return code === 'SYNMUX_REFUSED' || code === 'SYNMUX_TOO_MANY_STREAMS'
}
