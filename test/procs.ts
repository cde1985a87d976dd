/**
 * The child processes a test file started and has not stopped yet (the
 * `synmux` CLI, test/tunnel/cli.ts): test/setup.ts stops them when the
 * file ends. Its own module, importing nothing of synmux: the set-up file
 * runs before every test file, and some set the environment before they
 * load synmux (test/tfo/deferred.test.ts).
 */

/** Something that can be stopped. */
export interface Stoppable {
  stop(): Promise<void>
}

/** What is running now. */
export const running = new Set<Stoppable>()

/** Stops every process in {@link running}. */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((p) => p.stop()))
}
