// Secure-channel keys for the benches' `synmux server` / `synmux client`
// (what `synmux keygen` writes): a server key, a client key authorized as
// "bench", and the flags that name them.
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { cliPath } from './proc.mjs'

const require = createRequire(import.meta.url)
const { generateKeyPair, writePrivateKeyFile, encodePublicKey } = require(path.join(path.dirname(cliPath), '..', 'index.js'))

/** Writes the keys into `dir`; returns the server's and the client's flags, and the raw keys. */
export function tunnelKeys(dir) {
  const server = generateKeyPair()
  const client = generateKeyPair()
  const serverKeyFile = path.join(dir, 'server.key')
  const clientKeyFile = path.join(dir, 'client.key')
  const authorized = path.join(dir, 'authorized_keys')
  writePrivateKeyFile(serverKeyFile, server.privateKey, { overwrite: true })
  writePrivateKeyFile(clientKeyFile, client.privateKey, { overwrite: true })
  fs.writeFileSync(authorized, `${encodePublicKey(client.publicKey)} bench\n`)
  const serverPublic = encodePublicKey(server.publicKey)
  return {
    serverArgs: ['--key', serverKeyFile, '--authorized-keys', authorized],
    clientArgs: ['--key', clientKeyFile, '--server-key', serverPublic],
    clientKeyFile,
    serverPublic,
  }
}
