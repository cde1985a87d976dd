// bench/goals summary: each figure beside its anchors (from the same run),
// the goal from issue 15, whether it is met, and the figure the issue
// reported when it was filed (for orientation; a different run).

const med = (q) => (q && typeof q === 'object' ? q.median : (q ?? null))
const entry = (figure, unit, synmux, anchors, ratio, goal, met, issueReported) => ({ figure, unit, synmux, anchors, ratio, goal, met: met ?? null, issueReported })

export function summarize(results, skipped, ctx) {
  const out = []
  const r1 = results.connectionRate
  if (r1 && !r1.error) {
    const anchors = Object.fromEntries(Object.entries(r1.perSecond).filter(([k]) => k !== 'synmux').map(([k, v]) => [k, med(v)]))
    delete r1.cpuMsPerConnection['direct (no tunnel)'] // no tunnel processes: nothing to count
    const ratio = med(r1.ratioPerSecond['synmux / shadowsocks-libev'])
    out.push(entry(`new connections through the tunnel, open + 1 KiB request + 1 KiB response + close, ${ctx.concurrency} in flight`, 'per second', med(r1.perSecond.synmux), anchors, Object.fromEntries(Object.entries(r1.ratioPerSecond).map(([k, v]) => [k, med(v)])), 'ratio to shadowsocks-libev >= 1.0', ratio == null ? null : ratio >= 1, 'synmux 1,733/s; shadowsocks-libev 3,566/s, ssh -L 2,738/s'))
    const cpu = r1.cpuMsPerConnection
    out.push(entry('tunnel CPU per connection (client + server processes)', 'ms', med(cpu.synmux), Object.fromEntries(Object.entries(cpu).filter(([k]) => k !== 'synmux').map(([k, v]) => [k, med(v)])), null, '<= 0.3 ms', med(cpu.synmux) == null ? null : med(cpu.synmux) <= 0.3, 'synmux 0.74 ms; shadowsocks-libev 0.25 ms'))
  }
  const r2 = results.aboveRtt
  if (r2 && !r2.error) {
    const a = r2.aboveRttMs
    out.push(entry(`time above one RTT for a new tunnelled connection, ${ctx.rttMs} ms link (median)`, 'ms', a.synmux, Object.fromEntries(Object.entries(a).filter(([k]) => k !== 'synmux').map(([k, v]) => [k, v])), null, '<= 1 ms', a.synmux <= 1, 'synmux 4.7 ms; shadowsocks-libev 0.6 ms'))
  }
  const r3 = results.idleMemory
  if (r3 && !r3.error) {
    for (const [range, bySys] of Object.entries(r3.marginalKiBPerConnection ?? {})) {
      for (const side of ['client', 'server']) {
        const s = med(bySys.synmux?.[side])
        out.push(entry(`memory per idle tunnelled connection, ${side} side, marginal from ${range.replace('-', ' to ')} connections (RSS growth / connections added)`, 'KiB', s, Object.fromEntries(Object.entries(bySys).filter(([k]) => k !== 'synmux').map(([k, v]) => [k, med(v[side])])), null, '<= 16 KiB', s == null ? null : s <= 16, 'synmux 28-34 KiB per side; shadowsocks-libev 13-16 KiB'))
      }
    }
    for (const [n, bySys] of Object.entries(r3.kiBPerConnection)) {
      for (const side of ['client', 'server']) {
        const s = med(bySys.synmux?.[side])
        out.push(entry(`memory per idle tunnelled connection, ${side} side, ${n} connections (RSS)`, 'KiB', s, Object.fromEntries(Object.entries(bySys).filter(([k]) => k !== 'synmux').map(([k, v]) => [k, med(v[side])])), null, '<= 16 KiB', s == null ? null : s <= 16, 'synmux 28-34 KiB per side; shadowsocks-libev 13-16 KiB'))
      }
    }
  }
  const r4 = results.httpProxy
  if (r4 && !r4.error) {
    for (const [mode, label, reported] of [['close', 'ab -n N -c 50', 'synmux 2,094 req/s; squid 3,658'], ['keepAlive', 'ab -n N -c 50 -k', 'synmux 3,487 req/s; squid 6,246']]) {
      const s = r4[mode]
      const ratio = med(s.ratio['synmux / squid'])
      out.push(entry(`HTTP proxy through the tunnel, ${label.replace('N', String(ctx.abN))}`, 'requests per second', med(s.requestsPerSecond.synmux), Object.fromEntries(Object.entries(s.requestsPerSecond).filter(([k]) => k !== 'synmux').map(([k, v]) => [k, med(v)])), Object.fromEntries(Object.entries(s.ratio).map(([k, v]) => [k, med(v)])), 'ratio to squid >= 1.0', ratio == null ? null : ratio >= 1, reported))
    }
  }
  const r5 = results.streamThroughput
  if (r5 && !r5.error) {
    const q = r5.ratioPerRound
    const raw64 = med(q['synmux / raw @64KiB'])
    const raw1m = med(q['synmux / raw @1MiB'])
    const yam = med(q['synmux / yamux @64KiB'])
    out.push(entry('one mux stream / raw TCP, 64 KiB writes', 'ratio', raw64, { 'raw TCP MiB/s': r5.medianMiBps['raw@64KiB'], 'synmux MiB/s': r5.medianMiBps['synmux@64KiB'] }, null, '>= 0.9', raw64 == null ? null : raw64 >= 0.9, '0.70'))
    out.push(entry('one mux stream / raw TCP, 1 MiB writes', 'ratio', raw1m, { 'raw TCP MiB/s': r5.medianMiBps['raw@1MiB'], 'synmux MiB/s': r5.medianMiBps['synmux@1MiB'] }, null, '>= 0.9', raw1m == null ? null : raw1m >= 0.9, '0.59'))
    out.push(entry('one mux stream / @chainsafe/libp2p-yamux, 64 KiB writes', 'ratio', yam, { 'yamux MiB/s': r5.medianMiBps['yamux@64KiB'] }, null, '>= 3', yam == null ? null : yam >= 3, '1.57'))
  }
  const r6 = results.striping
  if (r6 && !r6.error) {
    const f = med(r6.fractionOfNxCap)
    const c = med(r6.congestedFractionOfHealthy)
    out.push(entry('striped, 4 lanes at 20 Mbit/s each: aggregate / (N x cap)', 'fraction', f, { 'plain TCP per lane, / (N x cap)': +(med(r6.fractionOfNxCap) / med(r6.fractionOfBaseline)).toFixed(3) }, null, '>= 0.95', f == null ? null : f >= 0.95, '0.94'))
    out.push(entry('striped, one congested lane: aggregate / healthy lanes', 'fraction', c, null, null, '>= 0.95', c == null ? null : c >= 0.95, '0.93'))
  }
  const r7 = results.workers
  if (r7 && !r7.error) {
    const [k, v] = Object.entries(r7.ratioPerSecond)[0] ?? []
    out.push(entry(`new-connection rate, ${k ?? 'workers'}`, 'ratio', med(v), { ...Object.fromEntries(Object.entries(r7.perSecond).map(([n, q]) => [n, med(q)])), ...(r7.ceiling ? { 'at most (all cores on client + server)': r7.ceiling.maxRatio } : {}) }, null, '>= 1.6', med(v) == null ? null : med(v) >= 1.6, 'not measured (no --workers)'))
  } else if (skipped.workers) {
    out.push(entry('new-connection rate, synmux server --workers 2 / --workers 1', 'ratio', null, null, null, '>= 1.6', null, 'not measured'))
    out.at(-1).skipped = skipped.workers
  }
  for (const [name, r] of Object.entries(results)) if (r.error) out.push({ figure: name, error: r.error })
  return out
}

const fmt = (v) => (v == null ? '–' : typeof v === 'number' ? String(v) : typeof v === 'object' ? Object.entries(v).map(([k, x]) => `${k} ${x ?? '–'}`).join('; ') : String(v))

/** The summary as a Markdown table (for the log and a closing note). */
export function table(result) {
  const lines = [
    `load average at start ${result.machine.loadAverageAtStart.join(' ')}, at end ${result.machine.loadAverageAtEnd.join(' ')}; synmux ${String(result.synmux.commit).slice(0, 7)} mode ${result.synmux.mode}${result.quick ? '; QUICK run' : ''}`,
    '',
    '| figure | synmux | anchors (same run) | ratio | goal | met |',
    '|---|---|---|---|---|---|',
  ]
  for (const e of result.summary) {
    if (e.error) lines.push(`| ${e.figure} | error: ${e.error.slice(0, 120)} | | | | |`)
    else lines.push(`| ${e.figure} (${e.unit}) | ${fmt(e.synmux)} | ${fmt(e.anchors)} | ${fmt(e.ratio)} | ${e.goal} | ${e.skipped ? `skipped: ${e.skipped}` : e.met == null ? '–' : e.met ? 'yes' : 'no'} |`)
  }
  return lines.join('\n')
}
