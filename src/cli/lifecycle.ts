/**
 * How `synmux server` and `synmux client` stop and reload:
 *
 * - SIGTERM, or a first SIGINT (Ctrl-C): drain. Stop accepting, let open
 *   connections finish for up to `--drain-timeout` seconds, then close what
 *   is left; exit 0 either way.
 * - A second SIGINT while draining: close everything at once, exit 130.
 *   (A second SIGTERM changes nothing: the drain already runs, and a
 *   service manager that wants it over sends SIGKILL.)
 * - SIGHUP: reload (re-read what can be re-read); never ends the process.
 * @internal
 * @packageDocumentation
 */
import type { Logger } from '../common/log.js'

/** What the signal handling drives. */
export interface Stoppable {
  /**
   * Optional: stops accepting, and resolves once new connections are
   * refused (when that takes others' help: the workers of `synmux server
   * --workers` share one listening socket); `drain()` follows.
   */
  stopAccepting?(): Promise<void>
  /** Stops accepting and resolves when every open connection has finished. */
  drain(): Promise<void>
  /** Closes everything at once (resolves when it is done). */
  destroy(): Promise<void> | void
  /** Open connections now (for the log lines). */
  open(): number
  /** Re-reads configuration (SIGHUP). */
  reload(): Promise<void> | void
}

/** Exit code after a second Ctrl-C (128 + SIGINT). */
const EXIT_INTERRUPTED = 130

/** Where the signals come from: the process, or (a worker of `synmux server --workers`) its primary. */
export interface SignalSource {
  on(signal: 'SIGTERM' | 'SIGINT' | 'SIGHUP', listener: () => void): unknown
  off(signal: 'SIGTERM' | 'SIGINT' | 'SIGHUP', listener: () => void): unknown
}

/**
 * Installs the handlers; resolves with the exit code once the process
 * should end (after a drain, its timeout, or a second Ctrl-C). `also`
 * resolves it early with its own code (the client giving up). `signals`:
 * where SIGTERM, SIGINT and SIGHUP come from (default the process).
 */
export function runUntilStopped(target: Stoppable, drainTimeoutS: number, log: Logger, also?: Promise<number>, signals: SignalSource = process): Promise<number> {
  return new Promise((resolve) => {
    let draining = false
    /** The drain was cut short (timeout, second Ctrl-C): its own end no longer decides the exit. */
    let forced = false
    let done = false
    let timer: NodeJS.Timeout | undefined
    const finish = (code: number): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      signals.off('SIGTERM', onTerm)
      signals.off('SIGINT', onInt)
      signals.off('SIGHUP', onHup)
      resolve(code)
    }
    const drain = (signal: string): void => {
      if (draining) {
        log.info(`${signal}: already draining (${target.open()} connections open)`)
        return
      }
      draining = true
      const open = target.open()
      if (target.stopAccepting) void target.stopAccepting().then(() => begin(open, signal), () => begin(open, signal))
      else begin(open, signal)
    }
    const begin = (open: number, signal: string): void => {
      if (done || forced) return
      // Stop accepting first (the listeners close synchronously), then say so:
      // whoever reads the line and connects is refused.
      const drained = target.drain()
      log.info(`${signal}: draining: not accepting new connections; waiting up to ${drainTimeoutS} s for ${open} open connection${open === 1 ? '' : 's'}${signal === 'SIGINT' ? ' (Ctrl-C again to close at once)' : ''}`)
      timer = setTimeout(() => {
        forced = true
        const left = target.open()
        log.warn(`drain timeout (${drainTimeoutS} s): closing ${left} connection${left === 1 ? '' : 's'} still open`)
        void Promise.resolve(target.destroy()).finally(() => finish(0))
      }, drainTimeoutS * 1000)
      drained.then(
        () => {
          if (done || forced) return
          clearTimeout(timer)
          log.info('drained: every connection finished')
          finish(0)
        },
        (err: Error) => {
          if (done || forced) return
          forced = true
          clearTimeout(timer)
          log.error(`drain failed: ${err.message}`)
          void Promise.resolve(target.destroy()).finally(() => finish(1))
        },
      )
    }
    const onTerm = (): void => drain('SIGTERM')
    const onInt = (): void => {
      if (!draining) return drain('SIGINT')
      if (forced) return
      forced = true
      log.warn(`SIGINT again: closing ${target.open()} connections at once`)
      void Promise.resolve(target.destroy()).finally(() => finish(EXIT_INTERRUPTED))
    }
    let reloading: Promise<void> | null = null
    const onHup = (): void => {
      // One reload at a time; a SIGHUP during one runs again after it (the files may have changed again).
      const run = async (): Promise<void> => {
        try {
          await target.reload()
        } catch (err) {
          log.error(`SIGHUP: reload failed, nothing changed: ${(err as Error).message}`)
        }
      }
      reloading = (reloading ?? Promise.resolve()).then(run)
    }
    signals.on('SIGTERM', onTerm)
    signals.on('SIGINT', onInt)
    signals.on('SIGHUP', onHup)
    also?.then(finish)
  })
}
