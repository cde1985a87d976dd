// Summary statistics for benchmark samples (milliseconds): n, min, median, p90, max.
export function summarize(samples) {
  const s = [...samples].sort((a, b) => a - b)
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))]
  const r = (x) => +x.toFixed(3)
  return { n: s.length, min: r(s[0]), median: r(q(0.5)), p90: r(q(0.9)), max: r(s.at(-1)) }
}
