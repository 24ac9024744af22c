'use strict';
// npm nacos config basics: publishSingle -> getConfig (same node at once, other nodes within a
// bounded wait), overwrite, remove -> getConfig returns null, awkward content (non-ASCII,
// spaces, form-encoding metacharacters, newlines), namespace isolation.
//
// Usage: node config_basic.js SERVERS [NAMESPACE]   (see common.js)

const { args, unique, step, checkEq, call, waitUntil, configClient, main } = require('./common');

const GROUP = 'NACRE_CLIENT_TEST';
const CONTENTS = {
  plain: 'hello nacre',
  unicode: 'é中文 with  two spaces and a trailing one ',
  symbols: 'a+b=c&d%20e;f?g#h 100% "quoted" \'single\'',
  multiline: 'line one\nline two: é中文\n\n\tindented after a blank line\nends with a newline\n',
};

main(async () => {
  const { servers, nodes, namespace } = args();
  step(`servers ${servers}, namespace ${JSON.stringify(namespace)}`);
  const nodeA = await configClient(nodes[0], namespace, 'A');
  const nodeC = await configClient(nodes[nodes.length - 1], namespace, 'C');
  const anyNode = await configClient(servers, namespace, 'all');
  const run = unique('js-basic');
  const C = nodes[nodes.length - 1];

  for (const [ name, content ] of Object.entries(CONTENTS)) {
    const dataId = `${run}.${name}`;
    step(`publishSingle ${dataId} through ${nodes[0]} (${content.length} chars)`);
    checkEq(await call('publishSingle', nodeA.publishSingle(dataId, GROUP, content)), true, `publishSingle(${dataId})`);
    checkEq(await call('getConfig', nodeA.getConfig(dataId, GROUP)), content, `getConfig(${dataId}) through the node written to`);
    step(`getConfig ${dataId} through ${C} and through the client given every node`);
    await waitUntil(`${dataId} readable through ${C}`, async () => await nodeC.getConfig(dataId, GROUP) === content);
    await waitUntil(`${dataId} readable through the client given every node`,
      async () => await anyNode.getConfig(dataId, GROUP) === content);
  }

  const dataId = `${run}.plain`;
  step(`overwrite ${dataId} through ${C}, read the new content through ${nodes[0]}`);
  await call('publishSingle', nodeC.publishSingle(dataId, GROUP, 'second version'));
  await waitUntil(`the new content through ${nodes[0]}`, async () => await nodeA.getConfig(dataId, GROUP) === 'second version');

  step('getConfig of a dataId never published returns null (the server answers 404)');
  checkEq(await call('getConfig', nodeA.getConfig(`${run}.never`, GROUP)), null, 'getConfig of a missing config');

  if (namespace) {
    step(`namespace isolation: a client without a namespace does not see ${dataId}`);
    const outside = await configClient(servers, '', 'outside');
    checkEq(await call('getConfig', outside.getConfig(dataId, GROUP)), null,
      `getConfig of a config published in namespace ${JSON.stringify(namespace)}, asked without a namespace`);
  }

  for (const name of Object.keys(CONTENTS)) {
    const id = `${run}.${name}`;
    step(`remove ${id} through ${C}`);
    checkEq(await call('remove', nodeC.remove(id, GROUP)), true, `remove(${id})`);
    checkEq(await call('getConfig', nodeC.getConfig(id, GROUP)), null, `getConfig(${id}) right after remove through the same node`);
    await waitUntil(`${id} gone through ${nodes[0]}`, async () => await nodeA.getConfig(id, GROUP) === null);
  }
});
