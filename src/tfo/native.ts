/**
 * The one typed loader for the native addon. Everything else imports
 * {@link native} from here; nothing else touches node-gyp-build.
 * @internal
 * @packageDocumentation
 */
import path from 'node:path'

/** TCP state and TFO facts the kernel reports for one connection. */
export interface NativeTcpInfo {
  /** Kernel TCP state number (Linux: 1 ESTABLISHED, 2 SYN_SENT, ...). */
  state: number
  established: boolean
  /** The connect has not completed yet (SYN sent, or deferred). */
  connecting: boolean
  /** The SYN carried data and the peer acknowledged it. */
  synData: boolean
  /** A server-side child socket created by a TFO SYN. */
  tfoChild: boolean
  /** Linux tcpi_fastopen_client_fail: 0 unspecified, 1 no cookie, 2 data not acked, 3 SYN retransmitted. */
  clientFail?: number
  /** Segments sent so far (0 while a TFO connect is still deferred). */
  segsOut?: number
  rttMicros?: number
  /** macOS: data was sent in the SYN (acked or not). */
  synDataSent?: boolean
  /** Windows: `false`, the OS cannot say whether the SYN carried data. */
  synDataKnown?: boolean
  /** macOS: a TFO cookie was requested (none was cached). */
  cookieRequested?: boolean
  /** macOS: a TFO cookie was received. */
  cookieReceived?: boolean
  /** macOS: the kernel's TFO heuristics turned TFO off for this connection. */
  heuristicsDisabled?: boolean
}

/** Static facts about the loaded build. */
export interface NativePlatformInfo {
  platform: string
  clientMethod: string
  serverMethod: string
}

/** A pending {@link NativeBinding.waitWritable}. */
export interface NativeWaitHandle {
  cancel(): void
}

/** The surface of `synmux.node`, identical on every OS (unsupported calls throw ENOTSUP). */
export interface NativeBinding {
  socket(family: 4 | 6): number
  close(fd: number): void
  bind(fd: number, address: string, port: number): void
  setFastOpenConnect(fd: number): void
  setFastOpenListen(fd: number, queue: number): void
  connectData(fd: number, address: string, port: number, data: Uint8Array): number
  triggerConnect(fd: number): void
  waitWritable(fd: number, callback: (err: NodeJS.ErrnoException | null) => void): NativeWaitHandle
  tcpInfo(fd: number): NativeTcpInfo
  info: NativePlatformInfo
  /** macOS: sysctl `net.inet.tcp.fastopen`, or undefined when unreadable. */
  fastOpenSetting?(): number | undefined
  /**
   * A connect that sends nothing until the first write (which carries SYN +
   * data). macOS: `connectx(CONNECT_RESUME_ON_READ_WRITE |
   * CONNECT_DATA_IDEMPOTENT)` without data; Linux: `TCP_FASTOPEN_CONNECT` +
   * `connect()`. 0 when deferred, -1 when the SYN already left.
   */
  connectResume?(fd: number, address: string, port: number): number
  /**
   * Windows: ConnectEx on a bound overlapped socket with `data` as its send
   * buffer; calls back once with the bytes ConnectEx sent.
   */
  connectEx?(
    socket: number,
    address: string,
    port: number,
    data: Uint8Array,
    callback: (err: NodeJS.ErrnoException | null, bytesSent: number) => void,
  ): NativeWaitHandle
  /** `IPV6_V6ONLY` (off: an IPv6 socket that also reaches IPv4 peers as ::ffff:a.b.c.d). */
  setV6Only(socket: number, on: boolean): void
}

function load(): { binding: NativeBinding | null; error: Error | null } {
  if (process.env.SYNMUX_DISABLE_ADDON === '1') {
    return { binding: null, error: new Error('disabled by SYNMUX_DISABLE_ADDON=1') }
  }
  try {
    // dist/cjs/tfo/native.js -> package root
    const root = path.join(__dirname, '..', '..', '..')
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const load = require('node-gyp-build') as (dir: string) => unknown
    return { binding: load(root) as NativeBinding, error: null }
  } catch (err) {
    return { binding: null, error: err as Error }
  }
}

const loaded = load()

/** The addon, or null when it could not be loaded (see {@link nativeLoadError}). */
export const native: NativeBinding | null = loaded.binding
/** Why the addon did not load, when it did not. */
export const nativeLoadError: Error | null = loaded.error
