// bench/goals idle connections: opens connections through a tunnel's local
// port to the target's hold listener, each sends one byte and waits for the
// one-byte answer (so the connection is set up end to end), then leaves it
// idle. Commands on stdin, one per line:
//   open N     open connections until N are held (OPENING at a time);
//              answers "held N <ms>" (or "error ..." )
//   close      closes them all and exits
// Usage: node hold.mjs HOST PORT [OPENING=100]
import net from 'node:net'
import readline from 'node:readline'

const [host, portArg, openingArg = '100'] = process.argv.slice(2)
const port = Number(portArg)
const OPENING = Number(openingArg)
const held = []

function openOne() {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, noDelay: true })
    const timer = setTimeout(() => {
      s.destroy()
      reject(new Error('no answer within 30 s'))
    }, 30_000)
    s.write('x')
    s.once('data', () => {
      clearTimeout(timer)
      held.push(s)
      resolve()
    })
    s.once('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
    s.once('close', () => {
      clearTimeout(timer)
      reject(new Error('closed before the answer'))
    })
  })
}

async function openUntil(n) {
  const t0 = performance.now()
  let next = held.length
  await Promise.all(
    Array.from({ length: OPENING }, async () => {
      while (next < n) {
        next++
        await openOne()
      }
    }),
  )
  return performance.now() - t0
}

let lost = 0
const rl = readline.createInterface({ input: process.stdin })
rl.on('line', async (line) => {
  const [cmd, arg] = line.trim().split(/\s+/)
  if (cmd === 'open') {
    try {
      const ms = await openUntil(Number(arg))
      lost = held.filter((s) => s.destroyed).length
      console.log(`held ${held.length - lost} ${ms.toFixed(0)}`)
    } catch (e) {
      console.log(`error ${e.code ?? ''} ${e.message} (held ${held.length})`)
    }
  } else if (cmd === 'close') {
    for (const s of held) s.destroy()
    process.exit(0)
  }
})
rl.on('close', () => process.exit(0))
