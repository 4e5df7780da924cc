// The AT Protocol team's own servers on loopback, for tests/fakes/bluesky.py.
//
// Starts @atproto/dev-env's TestNetwork: the identity directory (PLC), a PDS, the Bluesky
// AppView (with the bsync it needs) and Ozone (TestNetwork.create always builds it: the
// AppView's moderation service DID comes from it). Every server listens on 127.0.0.1 only
// (net.Server.prototype.listen is wrapped below: by default they listen on all interfaces).
//
// Environment:
//   DB_POSTGRES_URL     required: a PostgreSQL database the AppView, bsync and Ozone use
//   DB_POSTGRES_SCHEMA  schema suffix, letters and `_` (default "revenant")
//   REDIS_HOST          TestNetwork insists on it being set but never connects (default set)
//   TMPDIR              where the PDS keeps its SQLite files and blobs (the caller deletes it)
//
// When ready, prints exactly one JSON line to stdout:
//   {"ready": true, "pds_url": ..., "appview_url": ..., "plc_url": ..., "pds_public_url": ...,
//    "control_url": ..., "pds_did": ..., "appview_did": ..., "ozone_url": ..., "ozone_did": ..., "pid": ...,
//    "startup_seconds": ...}
// Everything else (logs, errors) goes to stderr.
//
// Control channel: an HTTP server on 127.0.0.1 (control_url):
//   POST /process-all   awaits network.processAll(): the AppView has indexed everything the
//                       PDS has sequenced so far; 200 {"ok": true} or 500 {"error": ...}
//   POST /shutdown      closes the network and exits
//   GET  /health        200 {"ok": true}
//
// Stays up until stdin closes, SIGTERM or SIGINT; then closes every server and exits 0.

import http from 'node:http'
import net from 'node:net'
import process from 'node:process'

const LOOPBACK = '127.0.0.1'
const started = performance.now()

// --- every listen() on loopback ---------------------------------------------------------
const originalListen = net.Server.prototype.listen
net.Server.prototype.listen = function listenOnLoopback(...args) {
  const first = args[0]
  if (first !== null && typeof first === 'object' && !Array.isArray(first)) {
    if (first.path === undefined && first.handle === undefined && first.fd === undefined) {
      const host = first.host
      if (host === undefined || host === null || host === '' || host === '0.0.0.0' || host === '::') {
        args[0] = { ...first, host: LOOPBACK }
      }
    }
  } else if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    // listen(port[, host][, backlog][, cb]): insert or replace the host
    const second = args[1]
    if (typeof second === 'string') {
      if (second === '0.0.0.0' || second === '::' || second === '') args[1] = LOOPBACK
    } else {
      args.splice(1, 0, LOOPBACK)
    }
  } else if (first === undefined || typeof first === 'function') {
    // listen() / listen(cb): a random port on all interfaces by default
    args.unshift(0, LOOPBACK)
  }
  return originalListen.apply(this, args)
}

// stdout carries the ready line only: console.log (used by dev-env and its mocks) goes to stderr
console.log = console.error
console.info = console.error

process.env.REDIS_HOST ||= `${LOOPBACK}:1` // asserted by TestNetwork.create, never connected
const dbPostgresUrl = process.env.DB_POSTGRES_URL
const dbPostgresSchema = process.env.DB_POSTGRES_SCHEMA || 'revenant'
if (!dbPostgresUrl) {
  console.error('launcher: DB_POSTGRES_URL is not set')
  process.exit(2)
}
if (!/^[A-Za-z_]+$/.test(dbPostgresSchema)) {
  console.error(`launcher: DB_POSTGRES_SCHEMA must be letters and _ only, not ${dbPostgresSchema}`)
  process.exit(2)
}

const { TestNetwork } = await import('@atproto/dev-env')

let network
let control
let closing = null

async function shutdown(reason, code = 0) {
  if (closing) return closing
  closing = (async () => {
    console.error(`launcher: shutting down (${reason})`)
    const force = setTimeout(() => {
      console.error('launcher: close() took over 10 s; exiting anyway')
      process.exit(code || 1)
    }, 10_000)
    force.unref()
    try {
      if (control) await new Promise((resolve) => control.close(resolve))
      if (network) await network.close()
    } catch (err) {
      console.error('launcher: error while closing:', err)
      code ||= 1
    }
    process.exit(code)
  })()
  return closing
}

process.on('SIGTERM', () => shutdown('SIGTERM'))
process.on('SIGINT', () => shutdown('SIGINT'))
process.stdin.on('end', () => shutdown('stdin closed'))
process.stdin.on('error', () => shutdown('stdin error'))
process.stdin.resume()

try {
  network = await TestNetwork.create({ dbPostgresUrl, dbPostgresSchema })
} catch (err) {
  console.error('launcher: TestNetwork.create failed:', err)
  await shutdown('start failed', 1)
}

function reply(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify(body))
}

control = http.createServer(async (req, res) => {
  try {
    if (req.method === 'POST' && req.url === '/process-all') {
      await network.processAll()
      reply(res, 200, { ok: true })
    } else if (req.method === 'POST' && req.url === '/shutdown') {
      reply(res, 200, { ok: true })
      shutdown('POST /shutdown')
    } else if (req.method === 'GET' && req.url === '/health') {
      reply(res, 200, { ok: true })
    } else {
      reply(res, 404, { error: `no ${req.method} ${req.url}` })
    }
  } catch (err) {
    reply(res, 500, { error: String(err?.stack || err) })
  }
})
await new Promise((resolve) => control.listen(0, LOOPBACK, resolve))

// dev-env names its servers http://localhost:PORT (the PDS's public URL, in its DID documents);
// they listen on 127.0.0.1 only, so the URLs handed out say so (no ::1 attempt first).
const loopback = (url) => url.replace('//localhost:', `//${LOOPBACK}:`)
const ready = {
  ready: true,
  pds_url: loopback(network.pds.url),
  appview_url: loopback(network.bsky.url),
  plc_url: loopback(network.plc.url),
  pds_public_url: network.pds.url,
  control_url: `http://${LOOPBACK}:${control.address().port}`,
  pds_did: network.pds.ctx.cfg.service.did,
  appview_did: network.bsky.ctx.cfg.serverDid,
  ozone_url: loopback(network.ozone.url),
  ozone_did: network.ozone.ctx.cfg.service.did,
  pid: process.pid,
  node: process.version,
  startup_seconds: Math.round(performance.now() - started) / 1000,
}
process.stdout.write(JSON.stringify(ready) + '\n')
