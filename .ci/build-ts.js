#!/usr/bin/env node
// Builds dist/: tsc emits CommonJS to dist/cjs; dist/esm is a thin ES module
// wrapper over it (one copy of the code and of every class, so `instanceof`
// holds whichever way a user loads synmux).
'use strict'
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')
const dist = path.join(root, 'dist')
fs.rmSync(dist, { recursive: true, force: true })
const tsc = require.resolve('typescript/bin/tsc', { paths: [root] })
execFileSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.json')], { stdio: 'inherit', cwd: root })

// tsc does not keep the executable bit; the bin must have it even where
// npm does not link it anew (e.g. a cached `npx` install of this folder).
fs.chmodSync(path.join(dist, 'cjs', 'cli', 'index.js'), 0o755)

const cjs = require(path.join(dist, 'cjs', 'index.js'))
const names = Object.keys(cjs).filter((n) => n !== 'default' && n !== '__esModule').sort()
fs.mkdirSync(path.join(dist, 'esm'), { recursive: true })
fs.writeFileSync(
  path.join(dist, 'esm', 'index.mjs'),
  "import cjs from '../cjs/index.js'\n" +
    `export const {\n${names.map((n) => `  ${n},`).join('\n')}\n} = cjs\n` +
    'export default cjs\n',
)
fs.writeFileSync(
  path.join(dist, 'esm', 'index.d.mts'),
  "export * from '../cjs/index.js'\nimport * as synmux from '../cjs/index.js'\nexport default synmux\n",
)
fs.writeFileSync(path.join(dist, 'esm', 'package.json'), '{ "type": "module" }\n')
