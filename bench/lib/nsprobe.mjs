// Tiny TCP probe used by selftest.mjs (and usable by benches) inside the
// delayed-link namespaces.  Plain `node:net`, no dependencies.  Every mode
// prints JSON lines on stdout and exits by itself (bounded in time).
//
//   node nsprobe.mjs server  HOST PORT [LIFETIME_MS]
//       Accepts connections.  The first byte of a connection picks its mode:
//         'E' echo everything back;  'S' sink: count bytes until the peer ends,
//         then reply the count as a decimal line.  Prints {"listening":port}.
//         Exits after LIFETIME_MS (default 120000) or on stdin EOF.
//   node nsprobe.mjs connect HOST PORT COUNT
//       COUNT sequential connects; prints {"connectMs":[...]} (SYN -> SYN/ACK,
//       i.e. one round trip each).
//   node nsprobe.mjs bulk    HOST PORT BYTES
//       Sends BYTES in sink mode; prints {"bytes","ms","mbitPerSec"} measured
//       from the connect to the server's byte-count reply.
//   node nsprobe.mjs echo    HOST PORT
//       Opens an echo connection; each stdin line "send TAG" sends TAG; every
//       echoed TAG is printed as {"echo":TAG,"t":ms}.  Exits on stdin EOF.
import net from 'node:net';
import { performance } from 'node:perf_hooks';

const [mode, host, portStr, arg] = process.argv.slice(2);
const port = Number(portStr);
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const fail = (err) => { out({ error: String(err?.message ?? err) }); process.exit(1); };
const guard = (ms) => setTimeout(() => fail(`timeout after ${ms} ms`), ms).unref();

function connect() {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const s = net.connect({ host, port, noDelay: true });
    s.once('connect', () => resolve({ s, ms: performance.now() - t0 }));
    s.once('error', reject);
  });
}

if (mode === 'server') {
  const lifetime = Number(arg ?? 120_000);
  const server = net.createServer((c) => {
    c.setNoDelay(true);
    c.on('error', () => {});
    c.once('data', (first) => {
      const m = String.fromCharCode(first[0]);
      const rest = first.subarray(1);
      if (m === 'E') {
        if (rest.length) c.write(rest);
        c.on('data', (d) => c.write(d));
        c.on('end', () => c.end());
      } else if (m === 'S') {
        let n = rest.length;
        c.on('data', (d) => { n += d.length; });
        c.on('end', () => c.end(`${n}\n`));
      } else {
        c.destroy();
      }
    });
  });
  server.on('error', fail);
  server.listen({ host, port }, () => out({ listening: server.address().port }));
  const stop = () => process.exit(0);
  setTimeout(stop, lifetime).unref();
  process.stdin.on('end', stop).on('error', stop).resume();
  // keep the process alive until lifetime/stdin EOF even with no connections
  setInterval(() => {}, 1 << 30);
} else if (mode === 'connect') {
  guard(60_000);
  const count = Number(arg ?? 2);
  const connectMs = [];
  try {
    for (let i = 0; i < count; i++) {
      const { s, ms } = await connect();
      connectMs.push(Math.round(ms * 1000) / 1000);
      // prove the connection carries data: one echo round trip
      await new Promise((resolve, reject) => {
        s.once('data', resolve);
        s.once('error', reject);
        s.write('Eping');
      });
      s.destroy();
    }
  } catch (err) {
    fail(err);
  }
  out({ connectMs });
} else if (mode === 'bulk') {
  guard(120_000);
  const total = Number(arg);
  try {
    const t0 = performance.now();
    const { s } = await connect();
    const chunk = Buffer.alloc(256 * 1024, 0x61);
    let reply = '';
    const done = new Promise((resolve, reject) => {
      s.setEncoding('utf8');
      s.on('data', (d) => { reply += d; });
      s.on('end', resolve);
      s.on('error', reject);
    });
    s.write('S');
    let sent = 0;
    while (sent < total) {
      const n = Math.min(chunk.length, total - sent);
      sent += n;
      if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
        await new Promise((r) => s.once('drain', r));
      }
    }
    s.end();
    await done;
    const ms = performance.now() - t0;
    const got = Number(reply.trim());
    if (got !== total) fail(`server counted ${got} bytes, sent ${total}`);
    out({ bytes: total, ms: Math.round(ms * 10) / 10, mbitPerSec: Math.round((total * 8) / ms / 1000 * 10) / 10 });
  } catch (err) {
    fail(err);
  }
} else if (mode === 'echo') {
  guard(120_000);
  try {
    const t0 = performance.now();
    const { s } = await connect();
    s.setEncoding('utf8');
    let buf = '';
    s.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        out({ echo: buf.slice(0, i), t: Math.round(performance.now() - t0) });
        buf = buf.slice(i + 1);
      }
    });
    s.on('error', fail);
    s.write('E');
    out({ connected: true });
    let inbuf = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (d) => {
      inbuf += d;
      let i;
      while ((i = inbuf.indexOf('\n')) >= 0) {
        const line = inbuf.slice(0, i).trim();
        inbuf = inbuf.slice(i + 1);
        if (line.startsWith('send ')) s.write(`${line.slice(5)}\n`);
      }
    });
    process.stdin.on('end', () => { s.destroy(); process.exit(0); });
  } catch (err) {
    fail(err);
  }
} else {
  fail(`unknown mode ${mode}`);
}
