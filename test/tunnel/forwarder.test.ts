/**
 * The tunnel server's onward connects: a stream that goes away while its
 * onward SYN is unanswered gives up that connect at once — its connect
 * slot and its descriptor are freed, not held until the connect timeout.
 */
import { describe, expect, it } from 'vitest'
import { canUseNetns, DEAD_END_VETH, runInNetns, skipReason } from '../helpers'

const needNetns = skipReason(!canUseNetns() ? 'needs root and `ip netns` for a private network namespace' : false)

describe.skipIf(needNetns)('an abandoned onward connect', () => {
  it('a stream reset while the SYN goes unanswered frees the connect slot and the descriptor at once', async () => {
    const r = await runInNetns('abandon-connect.mjs', { tcpFastOpen: 3, setup: DEAD_END_VETH })
    expect(r.connecting).toBe(1)
    expect(r.fdsDuring).toBeGreaterThan(r.fdsBefore) // the connecting socket (and the wait on it)
    expect(r.after).toBe(0)
    expect(r.ms).toBeLessThan(1000) // the connect timeout is 10 s
    expect(r.fdsAfter).toBe(r.fdsBefore)
  })
})
