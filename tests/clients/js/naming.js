'use strict';
// npm nacos naming: registerInstance through node A (ephemeral: the client's own beat loop keeps
// it alive), getServerStatus, getAllInstances and selectInstances through node C, subscribe
// (callback with the instances), still listed and healthy after the 15 s unhealthy threshold
// (so beats arrive and are honoured), deregisterInstance.
//
// Usage: node naming.js SERVERS [NAMESPACE]   (see common.js)
//
// Instance addresses are loopback (127.0.0.x) so that nothing a server might do with them (a
// health check, say) ever leaves the machine.

const { args, unique, step, check, checkEq, call, sleep, waitUntil, namingClient, main } = require('./common');

const GROUP = 'DEFAULT_GROUP';
// Nacos marks an ephemeral instance unhealthy 15 s after its last beat (and removes it at 30 s).
// The client's first beat comes ~10 s after it starts, then every clientBeatInterval (5 s).
// Checking 17.5 s after registration tells whether beats arrive and are honoured (past the
// 15 s mark only a beat keeps them healthy), and the deregistration that follows falls halfway
// between two beats: one sent at the same moment could reach the server after it and register
// the instance again (a race of the client's, which Nacos has too).
const STILL_HEALTHY_AFTER_MS = 17500;
// Longest from subscribe() to the callback with the instances (the first poll is immediate).
const SUBSCRIBE_WAIT_MS = 10000;
// Longest from a change to the subscribe callback without UDP push (naming_push.js tests push):
// the client polls every cacheMillis (Nacos answers 10 s), plus replication.
const POLL_CHANGE_WAIT_MS = 15000;

const ONE = { ip: '127.0.0.31', port: 8101 };
const TWO = { ip: '127.0.0.32', port: 8102 };
const METADATA = { zone: 'z1', note: 'é中文 spaces' };

const key = h => `${h.ip}:${h.port}`;
const keys = hosts => (hosts || []).map(key).sort();

main(async () => {
  const { servers, nodes, namespace } = args();
  step(`servers ${servers}, namespace ${JSON.stringify(namespace)}`);
  const C = nodes[nodes.length - 1];
  const beatErrors = [];
  const nodeA = await namingClient(nodes[0], namespace, 'A', (level, line) => {
    if (line.includes('[CLIENT-BEAT]')) beatErrors.push(line);
  });
  const nodeC = await namingClient(C, namespace, 'C');
  const svc = unique('js-svc');

  step(`getServerStatus through ${C} is 'UP' (GET /nacos/v1/ns/operator/metrics)`);
  checkEq(await call('getServerStatus', nodeC.getServerStatus()), 'UP',
    'getServerStatus (GET /nacos/v1/ns/operator/metrics must answer JSON with "status":"UP")');

  step(`registerInstance x2 through ${nodes[0]} (ephemeral, metadata, weight 1 and 2)`);
  const registeredAt = Date.now();
  await call('registerInstance ONE', nodeA.registerInstance(svc, { ...ONE, metadata: METADATA }));
  await call('registerInstance TWO', nodeA.registerInstance(svc, { ...TWO, weight: 2 }));

  step(`getAllInstances through ${C} (not subscribed: straight from the server)`);
  const hosts = await waitUntil(`both instances listed through ${C}`, async () => {
    const h = await nodeC.getAllInstances(svc, GROUP, '', false);
    return keys(h).join() === keys([ ONE, TWO ]).join() && h;
  });
  const one = hosts.find(h => key(h) === key(ONE));
  const two = hosts.find(h => key(h) === key(TWO));
  checkEq(one.metadata, METADATA, 'metadata of ONE');
  checkEq(Number(one.weight), 1, 'weight of ONE');
  checkEq(Number(two.weight), 2, 'weight of TWO');
  check(one.healthy === true && one.enabled === true, `ONE should be healthy and enabled: ${JSON.stringify(one)}`);
  checkEq(one.clusterName, 'DEFAULT', 'clusterName of ONE (the client sends DEFAULT when none is given)');
  check(one.instanceId, `ONE has no instanceId: ${JSON.stringify(one)}`);

  step('selectInstances(healthy=true) has both; selectInstances(healthy=false) has neither');
  checkEq(keys(await call('selectInstances', nodeC.selectInstances(svc, GROUP, '', true, false))), keys([ ONE, TWO ]),
    'selectInstances(healthy=true)');
  checkEq(keys(await call('selectInstances', nodeC.selectInstances(svc, GROUP, '', false, false))), [],
    'selectInstances(healthy=false)');

  step(`subscribe through ${C}: the callback gets the instances`);
  let latest;
  nodeC.subscribe({ serviceName: svc, groupName: GROUP }, h => { latest = h; });
  await waitUntil(`the subscribe callback with both instances within ${SUBSCRIBE_WAIT_MS / 1000}s ` +
    '(the instance/list answer must echo `name` (grouped) and `clusters` (DEFAULT here) or the client drops it)',
  () => latest && keys(latest).join() === keys([ ONE, TWO ]).join(), SUBSCRIBE_WAIT_MS);

  const wait = registeredAt + STILL_HEALTHY_AFTER_MS - Date.now();
  step(`beats: ${STILL_HEALTHY_AFTER_MS / 1000}s after registration the instances must still be listed and healthy ` +
    `(waiting ${(Math.max(wait, 0) / 1000).toFixed(1)}s)`);
  if (wait > 0) await sleep(wait);
  const later = await call('getAllInstances', nodeC.getAllInstances(svc, GROUP, '', false));
  const stale = [ ONE, TWO ].filter(i => !(later || []).some(h => key(h) === key(i) && h.healthy === true));
  check(stale.length === 0,
    `not listed healthy ${STILL_HEALTHY_AFTER_MS / 1000}s after registration: ${JSON.stringify(stale)}; listed: ` +
    `${JSON.stringify(later)}; beat errors seen by the client: ${JSON.stringify(beatErrors.slice(-3))}`);
  check(beatErrors.length === 0, `the client's beats (PUT /nacos/v1/ns/instance/beat) failed: ${beatErrors.slice(-3).join(' | ')}`);

  step(`deregisterInstance ONE through ${nodes[0]}: only TWO is listed through ${C}`);
  // TWO stays registered on purpose: the client ignores an answer with no hosts at all.
  await call('deregisterInstance', nodeA.deregisterInstance(svc, ONE));
  await waitUntil(`only TWO listed through ${C}`,
    async () => keys(await nodeC.getAllInstances(svc, GROUP, '', false)).join() === key(TWO));
  await waitUntil('the subscribe callback without ONE (by push or by the next poll)',
    () => latest && keys(latest).join() === key(TWO), POLL_CHANGE_WAIT_MS);
  await call('deregisterInstance', nodeA.deregisterInstance(svc, TWO));
});
