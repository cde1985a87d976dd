/**
 * Runs before every test file (vitest `setupFiles`): whatever `synmux`
 * processes a file started and did not stop — a test that failed or timed
 * out before its own clean-up, a `beforeAll` that threw — are stopped when
 * the file ends. A process left behind outlives the test run (vitest does
 * not kill its workers' children), keeps its ports, and kept a CI run
 * from ever finishing.
 */
import { afterAll } from 'vitest'
import { stopAll } from './procs'

afterAll(stopAll)
