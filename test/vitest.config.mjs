import { defineConfig } from 'vitest/config'

const root = new URL('..', import.meta.url).pathname
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

export default defineConfig({
  test: {
    root,
    include: ['test/**/*.test.{ts,mts,js,mjs}'],
    exclude: ['test/windows/**', 'node_modules/**'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Tests import 'synmux' (the built package, as a user does): never
    // let vite inline or transform it. Anchored at this checkout's dist/ (and
    // an installed copy), not at any path containing "synmux": a clone in a
    // directory named synmux-… would otherwise have its .ts tests externalized.
    server: { deps: { external: [new RegExp(`^${escape(root)}dist/`), /\/node_modules\/synmux\//] } },
  },
})
