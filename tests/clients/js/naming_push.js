'use strict';
// npm nacos naming, UDP push: a client pointed at node C subscribes (its instance/list polls
// carry udpPort); after a second instance is registered through node A, the subscription must
// learn of it within PUSH_WAIT_MS, far under the client's poll interval, by a pushed datagram.
// A missing push is reported apart from a missing poll: the script goes on waiting to tell
// whether polling delivers the change at all.
//
// Usage: node naming_push.js SERVERS [NAMESPACE]   (see common.js)

const { args, unique, step, fail, call, sleep, waitUntil, namingClient, main } = require('./common');

const GROUP = 'DEFAULT_GROUP';
// A push is expected this soon after the registration is acknowledged.
const PUSH_WAIT_MS = 2000;
// Without push, the client polls every cacheMillis (Nacos: 10 s when it pushes; the client's
// default is 5 s): this long tells "no push" apart from "no change at all".
const POLL_FALLBACK_WAIT_MS = 15000;
// Longest from subscribe() to the callback with the first instance (the first poll is immediate).
const SUBSCRIBE_WAIT_MS = 10000;
// The client polls right away on subscribe and again 1 s later.
const FIRST_POLLS_MS = 1500;

const ONE = { ip: '127.0.0.41', port: 8201 };
const TWO = { ip: '127.0.0.42', port: 8202 };
const key = h => `${h.ip}:${h.port}`;
const keys = hosts => (hosts || []).map(key).sort().join();

main(async () => {
  const { servers, nodes, namespace } = args();
  step(`servers ${servers}, namespace ${JSON.stringify(namespace)}`);
  const C = nodes[nodes.length - 1];
  const svc = unique('js-push');
  const pushes = []; // [time, line] of datagrams the client received for this service
  const nodeC = await namingClient(C, namespace, 'C', (level, line) => {
    if (line.includes('[PushReceiver] received push data') && line.includes(svc)) pushes.push([ Date.now(), line ]);
  });
  const nodeA = await namingClient(nodes[0], namespace, 'A');

  await call('registerInstance ONE', nodeA.registerInstance(svc, ONE));
  step(`subscribe through ${C}; the first callback (from the first poll) has ONE`);
  let latest;
  let changedAt;
  nodeC.subscribe({ serviceName: svc, groupName: GROUP }, h => { latest = h; changedAt = Date.now(); });
  await waitUntil('the subscribe callback with ONE', () => keys(latest) === key(ONE), SUBSCRIBE_WAIT_MS);
  // Past the client's second poll (1 s after the first; later ones come every cacheMillis), so
  // that the change below is not picked up by a poll that happens to be due anyway.
  await sleep(FIRST_POLLS_MS);

  step(`registerInstance TWO through ${nodes[0]}: a UDP push must reach the client within ${PUSH_WAIT_MS / 1000}s`);
  pushes.length = 0;
  // Timed from the request: a push may well arrive before the registration's own answer.
  const registeredAt = Date.now();
  await call('registerInstance TWO', nodeA.registerInstance(svc, TWO));
  const both = keys([ ONE, TWO ]);
  while (Date.now() - registeredAt < PUSH_WAIT_MS && !(pushes.length && keys(latest) === both)) await sleep(20);
  if (pushes.length && keys(latest) === both) {
    step(`  pushed after ${((pushes[0][0] - registeredAt) / 1000).toFixed(2)}s; callback has both instances`);
    return;
  }
  if (pushes.length) {
    fail(`a push arrived after ${((pushes[0][0] - registeredAt) / 1000).toFixed(2)}s but the callback did not get ` +
      `both instances (the pushed service info must carry the grouped name, clusters as polled, and every host): ${pushes[0][1]}`);
  }
  const deadline = registeredAt + POLL_FALLBACK_WAIT_MS;
  while (Date.now() < deadline && keys(latest) !== both) await sleep(50);
  if (keys(latest) === both) {
    fail(`no UDP push within ${PUSH_WAIT_MS / 1000}s: the change reached the callback only by polling, ` +
      `${((changedAt - registeredAt) / 1000).toFixed(2)}s after the registration (the server should push ` +
      '{"type":"dom","data":"<service info JSON>","lastRefTime":n} to the udpPort the client polled with)');
  }
  fail(`no UDP push within ${PUSH_WAIT_MS / 1000}s, and polling did not deliver the second instance within ` +
    `${POLL_FALLBACK_WAIT_MS / 1000}s either (callback last had: ${keys(latest)})`);
});
