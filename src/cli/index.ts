#!/usr/bin/env node
/**
 * The `synmux` command line.
 * @internal
 * @packageDocumentation
 */
import { runDemo } from './demo.js'
import { intFlag, packageVersion, parseFlags, renderHelp, UsageError, type CommandSpec } from './args.js'
import { CLIENT, DEMO, KEYGEN, SERVER, SUPPORT } from './flags.js'
import { runClient, runKeygen, runServer } from './tunnel.js'

const HELP = `Usage: synmux <command> [options]

Commands:
  server      Accept tunnel sessions and connect onward to allowed targets
  client      Keep a session to a server; carry port forwards, a SOCKS5 proxy
              and an HTTP proxy for browsers over it
  keygen      Write a new private key and print its public key (synmux keygen FILE)
  demo        Start a TCP Fast Open server and client on loopback and show,
              per connection, whether its data rode in the SYN, with timings
  support     Print what TCP Fast Open this machine supports (JSON)
  help        Show this help

Options:
  --version   Print synmux's version
  --help      Show this help

Run \`synmux <command> --help\` for a command's options.`

const COMMANDS: Record<string, { spec: CommandSpec; run: (args: string[]) => Promise<number> }> = {
  demo: {
    spec: DEMO,
    run: async (args) => {
      const flags = parseFlags(args, DEMO.flags)
      await runDemo(console.log, intFlag(flags, 'connections', 1, 1000) ?? 5)
      return 0
    },
  },
  server: { spec: SERVER, run: runServer },
  client: { spec: CLIENT, run: runClient },
  keygen: { spec: KEYGEN, run: runKeygen },
  support: {
    spec: SUPPORT,
    run: async (args) => {
      parseFlags(args, SUPPORT.flags)
      const { fastOpenSupport } = await import('../tfo/index.js')
      console.log(JSON.stringify(fastOpenSupport(), null, 2))
      return 0
    },
  },
}


/** Runs the CLI with `argv` (without node and script); resolves with the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv
  if (cmd === '--version' || cmd === '-V' || cmd === 'version') {
    console.log(`synmux ${packageVersion()}`)
    return 0
  }
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
    console.log(renderHelp(command.spec))
    return 0
  }
  try {
    return await command.run(rest)
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`synmux ${cmd}: ${err.message}\n\n${renderHelp(command.spec)}`)
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
      // not linger on whatever handles are still open, nor a server or
      // client that has drained: exit once stderr is out.
      if (code !== 0 || process.argv[2] === 'server' || process.argv[2] === 'client') process.stderr.write('', () => process.exit(code))
    },
    (err) => {
      console.error(err)
      process.exitCode = 1
    },
  )
}
