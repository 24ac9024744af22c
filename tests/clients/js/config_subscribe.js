'use strict';
// npm nacos config subscribe (long-poll POST /nacos/v1/cs/configs/listener): a client pointed at
// node C subscribes; its callback gets the first value at once, then the new value after a
// publishSingle through a client pointed at node A (bounded wait), again after a second
// publish (the poll re-arms), and null after remove.
//
// Usage: node config_subscribe.js SERVERS [NAMESPACE]   (see common.js)

const { args, unique, step, checkEq, call, fail, sleep, waitUntil, configClient, main } = require('./common');

const GROUP = 'NACRE_CLIENT_TEST';
// Longest from a publish (or remove) to the callback. The server must answer a held long-poll
// as soon as a watched key changes.
const NOTIFY_WAIT_MS = 10000;
// Left alone after the first value, so that the client's long-poll is being held by the server
// when the change comes (rather than answered because the change came first).
const SETTLE_MS = 2500;

main(async () => {
  const { servers, nodes, namespace } = args();
  step(`servers ${servers}, namespace ${JSON.stringify(namespace)}`);
  const nodeA = await configClient(nodes[0], namespace, 'A');
  const nodeC = await configClient(nodes[nodes.length - 1], namespace, 'C');
  const C = nodes[nodes.length - 1];
  const dataId = unique('js-sub');
  const [ first, second, third ] = [ 'v1 first', 'v2 é中文 with spaces', 'v3\nmulti\nline\n' ];

  await call('publishSingle', nodeA.publishSingle(dataId, GROUP, first));
  await waitUntil(`v1 readable through ${C}`, async () => await nodeC.getConfig(dataId, GROUP) === first);

  const seen = [];
  step(`subscribe(${dataId}) on a client pointed at ${C}: the callback first gets the current value`);
  nodeC.subscribe({ dataId, group: GROUP }, content => seen.push(content));
  await waitUntil('the callback with the first value', () => seen.length > 0);
  checkEq(seen[0], first, 'first callback value');
  await sleep(SETTLE_MS);
  checkEq(seen, [ first ], 'callback values before any change');

  async function expect(content, what) {
    const since = Date.now();
    const deadline = since + NOTIFY_WAIT_MS;
    while (!seen.includes(content)) {
      if (Date.now() >= deadline) {
        fail(`the subscribe callback did not get ${JSON.stringify(content)} within ${NOTIFY_WAIT_MS / 1000}s after ${what} ` +
          `(the server must answer the held long-poll on POST /nacos/v1/cs/configs/listener as soon as the key changes); got ${JSON.stringify(seen)}`);
      }
      await sleep(50);
    }
    step(`  notified after ${((Date.now() - since) / 1000).toFixed(2)}s`);
    seen.length = 0;
  }

  for (const content of [ second, third ]) {
    step(`publishSingle ${JSON.stringify(content)} through ${nodes[0]}; the callback must get it within ${NOTIFY_WAIT_MS / 1000}s`);
    await call('publishSingle', nodeA.publishSingle(dataId, GROUP, content));
    await expect(content, `a publish through ${nodes[0]}`);
  }

  step(`remove through ${nodes[0]}; the callback must get null`);
  await call('remove', nodeA.remove(dataId, GROUP));
  await expect(null, `remove through ${nodes[0]}`);
});
