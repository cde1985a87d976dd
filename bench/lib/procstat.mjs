// CPU time and resident memory of running processes (and their
// descendants), read from /proc: what a tunnel's processes spent over a
// measurement, whatever language they are written in. Linux only.
import fs from 'node:fs'

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ: 100 on Linux). */
export const CLK_TCK = 100

function statFields(pid) {
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
  // the command name (field 2) may hold spaces and parentheses: split after its last ')'
  return s.slice(s.lastIndexOf(')') + 2).split(' ')
}

/** Every live pid with its parent pid. */
function parents() {
  const map = new Map()
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue
    try {
      map.set(Number(e), Number(statFields(e)[1]))
    } catch {
      // gone in between
    }
  }
  return map
}

/** `pids` and all their live descendants (a forking server: sshd, cluster workers). */
export function processTree(pids) {
  const all = new Set(pids.filter((p) => fs.existsSync(`/proc/${p}`)))
  const ppid = parents()
  let grew = true
  while (grew) {
    grew = false
    for (const [pid, parent] of ppid) {
      if (!all.has(pid) && all.has(parent)) {
        all.add(pid)
        grew = true
      }
    }
  }
  return [...all]
}

/** User + system CPU of one process in milliseconds (its own threads, not reaped children). */
export function cpuMs(pid) {
  const f = statFields(pid)
  // after the name: state(0) ppid(1) ... utime(11) stime(12)
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK
}

/** Resident set size of one process in bytes (VmRSS). */
export function rssBytes(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) * 1024 : 0
}

/**
 * CPU milliseconds and RSS bytes summed over the trees rooted at `pids`,
 * one entry per named group: `{ client: [pid], server: [pid] }` →
 * `{ client: { cpuMs, rssBytes, pids }, server: ... }`.
 */
export function sample(groups) {
  const out = {}
  for (const [name, pids] of Object.entries(groups)) {
    let cpu = 0
    let rss = 0
    const tree = processTree(pids)
    for (const pid of tree) {
      try {
        cpu += cpuMs(pid)
        rss += rssBytes(pid)
      } catch {
        // exited while we read
      }
    }
    out[name] = { cpuMs: cpu, rssBytes: rss, pids: tree }
  }
  return out
}

/** The CPU milliseconds each group spent between two samples, and in all. */
export function cpuDelta(before, after) {
  const out = {}
  let total = 0
  for (const k of Object.keys(after)) {
    const d = after[k].cpuMs - (before[k]?.cpuMs ?? 0)
    out[k] = d
    total += d
  }
  return { ...out, total }
}
