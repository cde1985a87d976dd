import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

// The clone's root, as a file path (not a URL: a directory name with a space
// or '%' must work too), with forward slashes as vite writes module ids.
const root = fileURLToPath(new URL('..', import.meta.url))
const slashed = root.split(path.sep).join('/').replace(/\/$/, '')
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

export default defineConfig({
  test: {
    root,
    include: ['test/**/*.test.{ts,mts,js,mjs}'],
    exclude: ['test/windows/**', 'node_modules/**'],
    pool: 'forks',
    setupFiles: ['test/setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Tests import 'synmux' (the built package, as a user does): never let
    // vite inline or transform it. Only this clone's dist/ (and the bare
    // name) are external, whatever the clone's path or directory name is
    // (a pattern like /synmux/ would match every test file in a clone
    // named synmux and hand the .ts files to plain Node).
    server: { deps: { external: [new RegExp(`^${escape(slashed)}/dist/`), /^synmux$/, /\/node_modules\/synmux\//] } },
  },
})
