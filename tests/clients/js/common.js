'use strict';
// Shared by the npm `nacos` scenarios: arguments, checks that stop at the first failure,
// bounded waits, and clients configured the same way in every script.
//
// A scenario is run as `node SCRIPT SERVERS [NAMESPACE]`:
//   SERVERS    comma-separated host:port of the Nacre nodes (or env NACRE_SERVERS); the first is
//              "node A" and the last "node C" when a scenario talks to nodes separately.
//   NAMESPACE  namespace id (or env NACRE_NAMESPACE); empty or absent means the default one.
// It prints each check as it goes and exits 1 with `FAIL: ...` on the first failure.

const os = require('os');
const net = require('net');
const path = require('path');
const util = require('util');

// The naming client reports `clientIP` = the host's first non-loopback IPv4 address, read once
// when the module loads, and a server that does UDP push sends to clientIP:udpPort. Tests may
// only send traffic to loopback, so the client is made to see loopback as that interface. This
// changes what the host looks like to the client, not the client: the wire format is the same.
const realNetworkInterfaces = os.networkInterfaces;
os.networkInterfaces = () => ({
  ...realNetworkInterfaces(),
  eth0: [{ address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal: false, cidr: '127.0.0.1/8' }],
});
const nacos = require('nacos');
os.networkInterfaces = realNetworkInterfaces;

// Longest a write made through one node may take to become visible through another.
const REPLICATION_WAIT_MS = 10000;
// Poll interval of the bounded waits below.
const POLL_MS = 100;
// Lines of the clients' own log shown with a failure.
const CLIENT_LOG_TAIL_LINES = 40;
// Per-request budget of the config client (its default, 5 s, is tight on a loaded 2-core machine).
const CONFIG_REQUEST_TIMEOUT_MS = 10000;

const started = Date.now();
const cleanups = [];
const clientLog = []; // the clients' own log lines, printed on failure

function step(message) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(2).padStart(6)}s] ${message}`);
}

function args() {
  const servers = process.argv[2] || process.env.NACRE_SERVERS || '';
  const namespace = process.argv[3] !== undefined ? process.argv[3] : (process.env.NACRE_NAMESPACE || '');
  if (!servers) fail(`usage: node ${path.basename(process.argv[1])} SERVERS [NAMESPACE]`);
  return { servers, nodes: servers.split(','), namespace };
}

function unique(prefix) {
  return `${prefix}-${process.pid}-${Date.now() % 10000000}`;
}

function onExit(fn) {
  cleanups.push(fn);
}

async function finish(code) {
  for (const fn of cleanups.reverse()) {
    try {
      await Promise.race([ fn(), new Promise(resolve => setTimeout(resolve, 1000)) ]);
    } catch (_) {
      // Cleanup is best effort; the verdict is already decided.
    }
  }
  // Exit explicitly: the clients keep timers and sockets that would hold the process open.
  process.exit(code);
}

let failed = false;

function fail(message) {
  if (failed) throw new Failed(message);
  failed = true;
  console.log(`FAIL: ${message}`);
  if (clientLog.length) {
    console.error('--- last lines of the clients\' own log ---');
    console.error(clientLog.slice(-CLIENT_LOG_TAIL_LINES).join('\n'));
  }
  finish(1);
  // Stop the caller right here; finish() exits the process.
  throw new Failed(message);
}

class Failed extends Error {}

function check(condition, message) {
  if (!condition) fail(message);
}

// Deep equality that ignores object key order: JSON maps (instance metadata) have none.
function checkEq(actual, expected, what) {
  if (!require('util').isDeepStrictEqual(actual, expected)) {
    fail(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

async function call(what, promise) {
  try {
    return await promise;
  } catch (err) {
    if (err instanceof Failed) throw err;
    fail(`${what} failed: ${err && err.stack || err}`);
  }
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

// Poll `fn` (may be async) until it returns a truthy value, which is returned; fail after
// `timeoutMs`. Exceptions count as "not yet"; the last value or exception is in the message.
async function waitUntil(what, fn, timeoutMs = REPLICATION_WAIT_MS) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value;
      last = value;
    } catch (err) {
      last = `${err && err.name}: ${err && err.message}`;
    }
    if (Date.now() >= deadline) fail(`timed out after ${timeoutMs / 1000}s waiting for ${what} (last seen: ${util.inspect(last)})`);
    await sleep(POLL_MS);
  }
}

// A logger for the clients: keeps their lines for the failure report; `hook` sees every line.
function logger(name, hook) {
  const log = level => (...a) => {
    const line = `${new Date().toISOString()} ${level} [${name}] ${util.format(...a)}`;
    clientLog.push(line);
    if (clientLog.length > 1000) clientLog.shift();
    if (hook) hook(level, line);
  };
  return { debug: log('DEBUG'), info: log('INFO'), warn: log('WARN'), error: log('ERROR') };
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

let clusterPort;

// NacosConfigClient is a `cluster-client` wrapper: every instance named alike (all of them in
// direct mode: "DiamondClient@undefined") shares ONE real client through a leader on
// 127.0.0.1:7777, even across processes. Two clients pointed at different nodes would then both
// talk through the first one's node, and a concurrent test elsewhere on the machine could become
// our leader. The `cluster` option (APIClientBase's documented hook) gives each client here its
// own name on a port of this process's own.
async function configClient(serverAddr, namespace, role) {
  if (!clusterPort) clusterPort = await freePort();
  const clusterClient = require('cluster-client');
  const client = new nacos.NacosConfigClient({
    serverAddr,
    namespace,
    // Credentials as a user configures them: the npm client sends them with every request.
    username: process.env.NACRE_USERNAME,
    password: process.env.NACRE_PASSWORD,
    requestTimeout: CONFIG_REQUEST_TIMEOUT_MS,
    // Its own snapshot cache: the client falls back to snapshots when the server errs.
    cacheDir: path.join(process.cwd(), 'nacos-config-cache', role),
    cluster: (clientClass, options) => clusterClient(clientClass, { ...options, name: `nacre-test-${role}`, port: clusterPort }),
  });
  client.on('error', err => clientLog.push(`${new Date().toISOString()} ERROR [config ${role}] ${err && err.stack || err}`));
  await call(`config client ${role} ready`, client.ready());
  onExit(() => client.close());
  return client;
}

async function namingClient(serverList, namespace, role, hook) {
  const client = new nacos.NacosNamingClient({
    logger: logger(`naming ${role}`, hook),
    serverList,
    username: process.env.NACRE_USERNAME,
    password: process.env.NACRE_PASSWORD,
    // The naming client's own default namespace is 'public'.
    namespace: namespace || 'public',
  });
  client.on('error', err => clientLog.push(`${new Date().toISOString()} ERROR [naming ${role}] ${err && err.stack || err}`));
  await call(`naming client ${role} ready`, client.ready());
  onExit(() => client.close());
  return client;
}

// Run `scenario` (async); an unexpected exception is a failure too.
function main(scenario) {
  scenario().then(
    () => {
      step('PASS');
      finish(0);
    },
    err => {
      if (err instanceof Failed) return; // already reported; finish() is exiting
      try {
        fail(`unexpected ${err && err.stack || err}`);
      } catch (_) {
        // fail() throws to stop its caller; here there is nothing left to stop.
      }
    },
  );
}

module.exports = {
  nacos, args, unique, step, check, checkEq, call, fail, sleep, waitUntil, onExit,
  configClient, namingClient, main, REPLICATION_WAIT_MS,
};
