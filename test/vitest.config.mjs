import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    root: new URL('..', import.meta.url).pathname,
    include: ['test/**/*.test.{ts,mts,js,mjs}'],
    exclude: ['test/windows/**', 'node_modules/**'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Tests import 'synmux' (the built package, as a user does): never
    // let vite inline or transform it.
    server: { deps: { external: [/\/dist\//, /synmux/] } },
  },
})
