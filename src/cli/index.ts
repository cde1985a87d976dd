#!/usr/bin/env node
/**
 * The `synmux` command line.
 * @internal
 * @packageDocumentation
 */
import { runDemo } from './demo.js'
import { UsageError } from './args.js'
import { CLIENT_HELP, KEYGEN_HELP, SERVER_HELP, runClient, runKeygen, runServer } from './tunnel.js'

const HELP = `Usage: synmux <command> [options]

Commands:
  server      Accept tunnel sessions and connect onward to allowed targets
  client      Keep a session to a server; forward local ports and SOCKS5 over it
  keygen      Write a new private key and print its public key (synmux keygen FILE)
  demo        Start a TCP Fast Open server and client on loopback and show,
              per connection, whether its data rode in the SYN, with timings
  support     Print what TCP Fast Open this machine supports (JSON)
  help        Show this help

Run \`synmux <command> --help\` for a command's options.`

const COMMANDS: Record<string, { help: string; run: (args: string[]) => Promise<number> }> = {
  demo: {
    help: 'Usage: synmux demo [--connections N]\n\nRuns a TFO server and client on 127.0.0.1 and prints each connection\'s\ntime to first response byte and whether its data rode in the SYN.',
    run: async (args) => {
      let n = 5
      const i = args.indexOf('--connections')
      if (i >= 0) {
        n = Number(args[i + 1])
        if (!Number.isInteger(n) || n < 1 || n > 1000) throw usage('--connections must be an integer from 1 to 1000')
      }
      await runDemo(console.log, n)
      return 0
    },
  },
  server: { help: SERVER_HELP, run: runServer },
  client: { help: CLIENT_HELP, run: runClient },
  keygen: { help: KEYGEN_HELP, run: runKeygen },
  support: {
    help: 'Usage: synmux support\n\nPrints fastOpenSupport() as JSON.',
    run: async () => {
      const { fastOpenSupport } = await import('../tfo/index.js')
      console.log(JSON.stringify(fastOpenSupport(), null, 2))
      return 0
    },
  },
}

const usage = (m: string) => new UsageError(m)

/** Runs the CLI with `argv` (without node and script); resolves with the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv
  if (!cmd || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    console.log(HELP)
    return cmd ? 0 : 1
  }
  const command = COMMANDS[cmd]
  if (!command) {
    console.error(`synmux: unknown command '${cmd}'\n\n${HELP}`)
    return 2
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(command.help)
    return 0
  }
  try {
    return await command.run(rest)
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`synmux ${cmd}: ${err.message}\n\n${command.help}`)
      return 2
    }
    if (err && typeof err === 'object' && 'code' in err && String((err as { code: unknown }).code).startsWith('SYNMUX_')) {
      console.error(`synmux ${cmd}: ${(err as unknown as Error).message}`)
      return 1
    }
    throw err
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code
      // A failed start (a port in use, a key the server does not accept) must
      // not linger on whatever handles are still open: exit once stderr is out.
      if (code !== 0) process.stderr.write('', () => process.exit(code))
    },
    (err) => {
      console.error(err)
      process.exitCode = 1
    },
  )
}
