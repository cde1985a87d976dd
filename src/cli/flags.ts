/**
 * Every command's flags, declared once: the parser ({@link parseFlags})
 * and the help ({@link renderHelp}) are both made from these tables, so a
 * flag cannot be accepted without being documented. `--config` keys are
 * the flag names (camelCase or as written here).
 * @internal
 * @packageDocumentation
 */
import type { CommandSpec, FlagTable } from './args.js'

/** Flags every long-running command (server, client) has. */
const RUNNING: FlagTable = {
  config: { type: 'string', arg: 'FILE', noConfig: true, help: 'JSON object whose keys mirror these flags (camelCase or as written here; flags win). Re-read on SIGHUP (see the README for what a reload changes)' },
  'log-level': { type: 'string', arg: 'LEVEL', help: 'silent, error, warn, info (default), debug (debug: a line per connection with its target, bytes, duration and close reason)' },
  'log-format': { type: 'string', arg: 'FORMAT', help: 'text (default: "<ISO time> <level> <component>: <message> key=value ...") or json (one JSON object per line: time, level, component, msg, and session, stream, target, ... where they apply)' },
  metrics: { type: 'string', arg: '[host:]port', help: 'serve Prometheus metrics at http://host:port/metrics (default host 127.0.0.1; port 0 picks one, logged)' },
  'drain-timeout': { type: 'string', arg: 'S', help: 'on SIGTERM (or a first Ctrl-C): stop accepting, let open connections finish for up to S seconds, then close them and exit (default 30). A second Ctrl-C closes at once' },
  stats: {
    type: 'boolean',
    help: 'print a live status line: in place every second on a terminal; into a file or a pipe, a timestamped line when it changed (at most one per --stats-interval), else every 10 minutes',
  },
  'stats-interval': { type: 'string', arg: 'S', help: 'file or pipe: at least S seconds between two status lines (default 10)' },
  help: { type: 'boolean', noConfig: true, help: 'this help' },
}

export const SERVER: CommandSpec = {
  name: 'server',
  usage: 'synmux server --listen [host:]port --key server.key --authorized-keys FILE --allow host:port[,...] [options]',
  about:
    'Accepts encrypted, authenticated sessions on a TCP Fast Open listener and connects each stream onward (with TFO, its first bytes in the SYN) if the target is allowed. Default deny: nothing is reachable unless --allow names it; loopback and private addresses only when named explicitly (an IP, a CIDR block or an exact host name), never through a wildcard.',
  flags: {
    listen: { type: 'string', arg: '[host:]port', help: 'address to listen on (default host 0.0.0.0)' },
    key: {
      type: 'string',
      arg: 'FILE',
      help: "the server's private key (synmux keygen server.key; mode 0600). With --insecure-plaintext or --tls-cert: a pre-shared key file (synmux keygen --psk > key)",
    },
    'authorized-keys': {
      type: 'string',
      arg: 'FILE',
      help: "the client keys accepted: one '<public key> <name>' per line, '#' comments; re-read on SIGHUP (the sessions of a removed key are closed at once)",
    },
    'insecure-plaintext': {
      type: 'boolean',
      help: 'clear-text sessions authenticated by a pre-shared key only (for benchmarks; anyone on the path reads and can inject); clients must use it too',
    },
    allow: {
      type: 'string',
      multiple: true,
      arg: 'LIST',
      help: 'allowed targets, comma-separated, repeatable: host:port, *.domain:port, 10.0.0.0/8:*, [::1]:22, *:443 (any public address), ports as 80, 8000-8100, *. Re-read from --config on SIGHUP',
    },
    'tls-cert': { type: 'string', arg: 'FILE', help: 'serve over TLS with this certificate ... (re-read on SIGHUP)' },
    'tls-key': { type: 'string', arg: 'FILE', help: '... and this private key (instead of the secure channel, for X.509; clients prove the pre-shared key)' },
    'max-connects': { type: 'string', arg: 'N', help: 'onward connects in progress per session (default 64): a stream holds a slot while its target is resolved and connected, not while it relays' },
    'max-streams': { type: 'string', arg: 'N', help: 'streams one client session may keep open at once (default 16384); an open past it is refused and logged' },
    'detach-timeout': { type: 'string', arg: 'MS', help: 'how long a session whose client vanished (connection lost, client killed) waits to be resumed before it and its streams are freed (default 60000)' },
    'no-http-gateway': {
      type: 'boolean',
      help: 'refuse HTTP gateway streams (the far half of synmux client --http-proxy; on by default: it reaches only what --allow allows, over pooled keep-alive connections opened with TFO)',
    },
    'http-max-sockets': { type: 'string', arg: 'N', help: 'HTTP gateway: onward connections per origin (default 32)' },
    'max-failed-handshakes': {
      type: 'string',
      arg: 'N',
      help: 'failed handshakes per source address per window before its connections are closed unread (default 10); every failure before the key is proved counts: a refused handshake (unknown client key, wrong server key), TLS errors, not synmux, no HELLO in time',
    },
    'failed-handshake-window': {
      type: 'string',
      arg: 'S',
      help: "that window, in seconds from the source's first failure (default 60): a refused source, a correct client behind it included, is let in again at most S seconds later",
    },
    'handshake-timeout': {
      type: 'string',
      arg: 'MS',
      help: 'time from accepting a connection to the client having proved its key (the secure handshake or TLS, then the HELLO); then it is closed and counted as a failed handshake (default 10000)',
    },
    'max-unauthenticated': { type: 'string', arg: 'N', help: 'connections that have not proved the key yet, in all; more are closed unread (default 1024)' },
    'max-unauthenticated-per-source': { type: 'string', arg: 'N', help: 'the same per source (default 64)' },
    'ipv6-source-prefix': {
      type: 'string',
      arg: 'N',
      help: 'what the per-source limits count as one source: an IPv4 address, and an IPv6 network of N bits (1-128; default 64, as a host usually holds a whole /64 and can use a new address for each connection)',
    },
    workers: {
      type: 'string',
      arg: 'N',
      help: "run N worker processes (node:cluster) sharing the listening socket, so sessions use every core (default: the number of cores; 1 on Windows, where a shared listener has no TFO). A new session goes to the worker with the fewest; a resume or lane that reaches another worker than its session's is handed to it. Failed handshakes and unauthenticated connections are counted across the workers; --stats and --metrics give their sum",
    },
    'instance-id': {
      type: 'string',
      arg: 'N',
      help: "with several servers behind one address (DNS, an L4 balancer): this server's id, 1-65535, unique among them; its session ids carry it, and a resume or lane that reaches another server is sent to its --advertise address (secure channel only; needs --advertise)",
    },
    advertise: { type: 'string', arg: 'ip:port', help: "this server's own address, which the others send the clients of its sessions to (an IP address, reachable by the clients)" },
    ...RUNNING,
  },
}

export const CLIENT: CommandSpec = {
  name: 'client',
  usage: 'synmux client --server host:port --key client.key --server-key BASE64 [--forward ...] [--socks ...] [--http-proxy ...] [options]',
  about:
    "Keeps one encrypted, authenticated session up to a synmux server (TFO for its own connection, the first request in the handshake's first flight, reconnecting with backoff) and carries local connections over it: port forwards, a SOCKS5 proxy and an HTTP proxy for browsers. Each new connection's first bytes ride in its stream's OPEN, so it reaches its target and gets its first response in one round trip.",
  flags: {
    server: { type: 'string', arg: 'host:port', help: 'the synmux server' },
    key: {
      type: 'string',
      arg: 'FILE',
      help: "this client's private key (synmux keygen client.key; mode 0600; the server lists its public key in its --authorized-keys). With --insecure-plaintext or --tls: the server's pre-shared key file",
    },
    'server-key': {
      type: 'string',
      arg: 'BASE64',
      help: "the server's public key (synmux keygen printed it); a server with another key, or one that does not authorize this client, gets the client to exit 1",
    },
    'insecure-plaintext': { type: 'boolean', help: 'clear text with a pre-shared key (for benchmarks), to a server that runs --insecure-plaintext' },
    'on-demand': { type: 'boolean', help: 'connect only when the first local connection comes (its first bytes ride in the handshake); default: at start' },
    tls: { type: 'boolean', help: 'run the session over TLS (with the pre-shared key)' },
    ca: { type: 'string', arg: 'FILE', help: "CA certificate that signed the server's (with --tls)" },
    fingerprint: { type: 'string', arg: 'HEX', help: "or pin the server certificate's SHA-256 (with --tls)" },
    forward: { type: 'string', multiple: true, arg: 'SPEC', help: '[lhost:]lport=dhost:dport, repeatable: listen locally (default 127.0.0.1) and forward to dhost:dport' },
    socks: { type: 'string', arg: '[host:]port', help: 'a SOCKS5 proxy (CONNECT) on this address (default host 127.0.0.1)' },
    'socks-auth': {
      type: 'string',
      arg: 'USER:PASS',
      help: 'SOCKS5: require this username and password (RFC 1929); a client that offers no authentication is refused. Put it in --config to keep it out of the process list',
    },
    'socks-wait': {
      type: 'boolean',
      help: "SOCKS5: answer a CONNECT only when the far side has connected, with the real reply code (not allowed 0x02, host unreachable 0x04, connection refused 0x05, timeout 0x06); costs a round trip, since the application's first bytes then wait for the reply (default: answer at once, the first bytes ride in the OPEN, a refusal closes the connection)",
    },
    'http-proxy': {
      type: 'string',
      arg: '[host:]port',
      help: "an HTTP proxy for browsers on this address (default host 127.0.0.1): keep-alive browser connections, every request over the one session, pooled keep-alive connections on the server's side; CONNECT and WebSocket too. The server's --allow still applies",
    },
    'http-proxy-auth': { type: 'string', arg: 'USER:PASS', help: 'require this Proxy-Authorization (basic); put it in --config to keep it out of the process list' },
    'first-bytes-wait': { type: 'string', arg: 'MS', help: "wait this long for an application's first bytes (default 5)" },
    pool: {
      type: 'string',
      arg: 'N',
      help: "keep N sessions, each on its own connection; new streams go to the best with room for one (below the server's --max-streams; lowest RTT, least queued), dead connections are replaced (default 1). A lost connection is always resumed without failing streams",
    },
    lanes: { type: 'string', arg: 'N', help: 'stripe the session over N connections to the server (each TFO and authenticated); beats per-connection rate caps (default 1)' },
    'max-auth-failures': {
      type: 'string',
      arg: 'N',
      help: 'exit (code 1) after N handshakes in a row whose authentication failed: the server does not accept this key (default 1 for the secure channel before any session was up, 3 for a pre-shared key; 0: keep trying)',
    },
    ...RUNNING,
  },
}

export const KEYGEN: CommandSpec = {
  name: 'keygen',
  usage: 'synmux keygen FILE   (or: synmux keygen --out FILE; synmux keygen --psk > key)',
  about:
    "Writes a new private key (X25519) to FILE with mode 0600 and prints its public key as one line of base64: give that line to the other side (the server's goes to each client's --server-key; a client's goes into the server's --authorized-keys with a name). FILE must not exist yet (--force replaces it). --psk prints a new random pre-shared key (32 bytes) in key-file form instead, for --insecure-plaintext and --tls: the same file on both sides, kept private (chmod 600).",
  flags: {
    out: { type: 'string', arg: 'FILE', noConfig: true, help: 'the private key file (or give it as the first argument)' },
    force: { type: 'boolean', noConfig: true, help: 'replace FILE if it exists' },
    psk: { type: 'boolean', noConfig: true, help: 'print a pre-shared key instead (for --insecure-plaintext and --tls)' },
    help: { type: 'boolean', noConfig: true, help: 'this help' },
  },
}

export const DEMO: CommandSpec = {
  name: 'demo',
  usage: 'synmux demo [--connections N]',
  about: "Runs a TFO server and client on 127.0.0.1 and prints each connection's time to first response byte and whether its data rode in the SYN, then the same through a tunnel.",
  flags: {
    connections: { type: 'string', arg: 'N', help: 'connections to make (1 to 1000, default 5)' },
    help: { type: 'boolean', noConfig: true, help: 'this help' },
  },
}

export const SUPPORT: CommandSpec = {
  name: 'support',
  usage: 'synmux support',
  about: 'Prints fastOpenSupport() as JSON: what TCP Fast Open this machine supports.',
  flags: { help: { type: 'boolean', noConfig: true, help: 'this help' } },
}

/** Every command with flags, by name. */
export const COMMANDS: Record<string, CommandSpec> = { server: SERVER, client: CLIENT, keygen: KEYGEN, demo: DEMO, support: SUPPORT }

