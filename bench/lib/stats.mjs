// Summary statistics for benchmark samples (milliseconds): n, min, median, p90, max.
export function summarize(samples) {
  const s = [...samples].sort((a, b) => a - b)
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))]
  const r = (x) => +x.toFixed(3)
  return { n: s.length, min: r(s[0]), median: r(q(0.5)), p90: r(q(0.9)), max: r(s.at(-1)) }
}

/**
 * Median and quartiles of a list of numbers (any unit), for figures from
 * alternated runs: { n, min, q1, median, q3, max }, rounded to `digits`.
 * Quartiles by linear interpolation between order statistics.
 */
export function quartiles(samples, digits = 3) {
  const s = samples.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (s.length === 0) return { n: 0, min: null, q1: null, median: null, q3: null, max: null }
  const q = (p) => {
    const i = p * (s.length - 1)
    const lo = Math.floor(i)
    return s[lo] + (s[Math.min(lo + 1, s.length - 1)] - s[lo]) * (i - lo)
  }
  const r = (x) => +x.toFixed(digits)
  return { n: s.length, min: r(s[0]), q1: r(q(0.25)), median: r(q(0.5)), q3: r(q(0.75)), max: r(s.at(-1)) }
}
