// Services: the list (search by name and group, any page size, instance and healthy counts;
// a service with instances but none healthy is marked); one service's instances with their
// health, weight, enabled, ephemeral and metadata (weight and enabled editable), and its
// settings and clusters' settings, editable; and the clients subscribed to a service.
import { api } from './api.js';
import { h, fill, table, link, pager, tag, hash } from './dom.js';

const DEFAULT_GROUP = 'DEFAULT_GROUP';

async function instances(namespace, name, group) {
  const answer = await api('GET', '/nacos/v1/ns/instance/list', {
    serviceName: name, groupName: group, namespaceId: namespace, healthyOnly: false,
  });
  return answer.hosts || [];
}

export async function render(main, params, { namespace }) {
  const name = params.get('name') || '';
  const group = params.get('group') || '';
  const hideEmpty = params.get('hideEmpty') === '1';
  const pageNo = Number(params.get('pageNo') || 1);
  const pageSize = Number(params.get('pageSize') || 20);
  const go = (p = {}) => {
    location.hash = hash('services', { namespace, name, group, hideEmpty: hideEmpty ? 1 : '', pageNo, pageSize, ...p });
  };
  const nameInput = h('input', { placeholder: 'Service name contains', value: name, testid: 'search-service' });
  const groupInput = h('input', { placeholder: 'Group contains', value: group, testid: 'search-service-group' });
  const hide = h('input', { type: 'checkbox', checked: hideEmpty, testid: 'hide-empty' });
  const search = h('form', { class: 'bar' }, nameInput, groupInput,
    h('label', {}, hide, ' hide services without instances'), h('button', { type: 'submit' }, 'Search'));
  search.addEventListener('submit', (e) => {
    e.preventDefault();
    go({ name: nameInput.value, group: groupInput.value, hideEmpty: hide.checked ? 1 : '', pageNo: 1 });
  });
  // Nacos's console call: search, counts and paging on the server.
  const page = await api('GET', '/nacos/v1/ns/catalog/services', {
    serviceNameParam: name, groupNameParam: group, hasIpCount: hideEmpty, withInstances: false,
    pageNo, pageSize, namespaceId: namespace,
  });
  const rows = (page.serviceList || []).map((s) => ({ ...s, __key: `${s.groupName}@@${s.name}` }));
  fill(main,
    h('h1', {}, 'Services'),
    search,
    table([
      ['Service', (s) => link(s.name, 'service', { namespace, name: s.name, group: s.groupName }, { testid: 'service-link' })],
      ['Group', (s) => s.groupName],
      ['Clusters', (s) => s.clusterCount, 'num'],
      ['Instances', (s) => h('span', { testid: 'instance-count' }, s.ipCount), 'num'],
      ['Healthy', (s) => (s.ipCount > 0 && s.healthyInstanceCount === 0 ? tag('0', 'bad') : s.healthyInstanceCount), 'num'],
      ['Protection', (s) => (s.triggerFlag === 'true' ? tag('threshold reached', 'warn') : '')],
      ['', (s) => link('Subscribers', 'subscribers', { namespace, name: s.name, group: s.groupName })],
    ], rows, { testid: 'services' }),
    pager(page.count || 0, pageNo, pageSize, (n, size) => go({ pageNo: n, pageSize: size })));
}

/** A JSON object typed in a form, or an error naming the field. */
function parseJson(text, field) {
  try {
    const value = JSON.parse(text || '{}');
    if (value && typeof value === 'object' && !Array.isArray(value)) return value;
  } catch { /* said below */ }
  throw new Error(`${field} must be a JSON object`);
}

/** The service's settings, with a form that saves them (`PUT /nacos/v1/ns/service`). */
function serviceSettings(service, { name, group, namespace, save }) {
  const threshold = h('input', { type: 'number', min: 0, max: 1, step: '0.01', value: service.protectThreshold, testid: 'edit-threshold' });
  const metadata = h('textarea', { class: 'code short', spellcheck: 'false', testid: 'edit-service-metadata' });
  metadata.value = JSON.stringify(service.metadata || {}, null, 2);
  const selector = h('textarea', { class: 'code short', spellcheck: 'false', testid: 'edit-selector' });
  selector.value = JSON.stringify(service.selector || { type: 'none' });
  const form = h('form', { class: 'settings', testid: 'service-settings' },
    h('label', {}, 'Protect threshold ', threshold),
    h('label', {}, 'Metadata (JSON)', metadata),
    h('label', {}, 'Selector (JSON)', selector),
    h('button', { type: 'submit', testid: 'save-service' }, 'Save service'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    save('/nacos/v1/ns/service', () => ({
      serviceName: name, groupName: group, namespaceId: namespace, protectThreshold: threshold.value,
      metadata: JSON.stringify(parseJson(metadata.value, 'metadata')),
      selector: JSON.stringify(parseJson(selector.value, 'selector')),
    }), 'Service');
  });
  return form;
}

/** One cluster's health check and metadata, with a form that saves them (`PUT /nacos/v1/ns/cluster`). */
function clusterSettings(cluster, { name, group, namespace, save }) {
  const checker = h('textarea', { class: 'code short', spellcheck: 'false', testid: 'edit-health-checker' });
  checker.value = JSON.stringify(cluster.healthChecker || { type: 'TCP' });
  const checkPort = h('input', { type: 'number', min: 0, max: 65535, value: cluster.defaultCheckPort, testid: 'edit-check-port' });
  const useInstancePort = h('input', { type: 'checkbox', checked: cluster.useIPPort4Check, testid: 'edit-use-instance-port' });
  const metadata = h('textarea', { class: 'code short', spellcheck: 'false', testid: 'edit-cluster-metadata' });
  metadata.value = JSON.stringify(cluster.metadata || {}, null, 2);
  const form = h('form', { class: 'settings', testid: 'cluster-settings', 'data-cluster': cluster.name },
    h('h3', {}, `Cluster ${cluster.name}`),
    h('label', {}, 'Health checker (JSON: TCP, HTTP with path, NONE)', checker),
    h('label', {}, 'Check port ', checkPort),
    h('label', { class: 'check' }, useInstancePort, ' check the instance\'s own port'),
    h('label', {}, 'Metadata (JSON)', metadata),
    h('button', { type: 'submit', testid: 'save-cluster' }, 'Save cluster'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    save('/nacos/v1/ns/cluster', () => ({
      serviceName: name, groupName: group, namespaceId: namespace, clusterName: cluster.name,
      healthChecker: JSON.stringify(parseJson(checker.value, 'healthChecker')),
      checkPort: checkPort.value, useInstancePort4Check: useInstancePort.checked,
      metadata: JSON.stringify(parseJson(metadata.value, 'metadata')),
    }), `Cluster ${cluster.name}`);
  });
  return form;
}

/** `#/service?name&group`: one service: its settings, its clusters' settings, its instances. */
export const detail = {
  async render(main, params, { namespace, toast, rerender }) {
    const name = params.get('name') || '';
    const group = params.get('group') || DEFAULT_GROUP;
    const [info, hosts] = await Promise.all([
      api('GET', '/nacos/v1/ns/catalog/service', { serviceName: name, groupName: group, namespaceId: namespace }),
      instances(namespace, name, group),
    ]);
    const status = h('p', { class: 'error', testid: 'edit-error' });
    const save = async (path, form, what) => {
      fill(status);
      try {
        await api('PUT', path, form());
      } catch (e) {
        fill(status, `${what} not saved: ${e.text || e.message}`);
        return;
      }
      toast(`${what} saved`);
      await rerender();
    };
    const update = async (instance, changes) => {
      try {
        await api('PUT', '/nacos/v1/ns/instance', {
          serviceName: name, groupName: group, namespaceId: namespace, ip: instance.ip, port: instance.port,
          clusterName: instance.clusterName, ephemeral: instance.ephemeral, weight: instance.weight,
          enabled: instance.enabled, metadata: JSON.stringify(instance.metadata || {}), ...changes,
        });
        toast(`${instance.ip}:${instance.port} updated`);
      } catch (e) {
        toast(`Not updated: ${e.text || e.message}`);
      }
      await rerender();
    };
    const weightEditor = (i) => {
      const input = h('input', { type: 'number', min: 0, max: 10000, step: '0.1', value: i.weight, size: 5, testid: 'weight' });
      return h('span', {}, input, ' ',
        h('button', { type: 'button', testid: 'save-weight', onclick: () => update(i, { weight: input.value }) }, 'Set'));
    };
    const rows = hosts.map((i) => ({ ...i, __key: `${i.ip}:${i.port}` }));
    const where = { name, group, namespace, save };
    fill(main,
      h('h1', {}, `${group} / ${name}`),
      h('p', {}, link('All services', 'services', { namespace, group }), ' · ',
        link('Subscribers', 'subscribers', { namespace, name, group }, { testid: 'subscribers-link' })),
      table([
        ['Address', (i) => h('span', { testid: 'instance-address' }, `${i.ip}:${i.port}`)],
        ['Cluster', (i) => i.clusterName],
        ['Healthy', (i) => (i.healthy ? tag('healthy', 'good') : tag('unhealthy', 'bad'))],
        ['Enabled', (i) => h('span', {}, i.enabled ? 'yes ' : tag('offline', 'warn'), ' ',
          h('button', { type: 'button', testid: 'toggle-enabled', onclick: () => update(i, { enabled: !i.enabled }) },
            i.enabled ? 'Take offline' : 'Bring online'))],
        ['Weight', weightEditor],
        ['Ephemeral', (i) => (i.ephemeral ? 'yes' : 'no')],
        ['Metadata', (i) => h('code', {}, JSON.stringify(i.metadata || {}))],
      ], rows, { testid: 'instances' }),
      status,
      h('h2', {}, 'Settings'),
      h('div', { class: 'panels' },
        serviceSettings(info.service || {}, where),
        (info.clusters || []).map((c) => clusterSettings(c, where))));
  },
};

/** `#/subscribers?name&group`: the clients subscribed to a service, on every member. */
export const subscribers = {
  async render(main, params, { namespace }) {
    const name = params.get('name') || '';
    const group = params.get('group') || DEFAULT_GROUP;
    const pageNo = Number(params.get('pageNo') || 1);
    const pageSize = Number(params.get('pageSize') || 20);
    const go = (p = {}) => { location.hash = hash('subscribers', { namespace, name, group, pageNo, pageSize, ...p }); };
    const nameInput = h('input', { placeholder: 'Service name', value: name, required: true, testid: 'subscribers-service' });
    const groupInput = h('input', { placeholder: 'Group', value: group, testid: 'subscribers-group' });
    const search = h('form', { class: 'bar' }, nameInput, groupInput, h('button', { type: 'submit' }, 'Show subscribers'));
    search.addEventListener('submit', (e) => { e.preventDefault(); go({ name: nameInput.value, group: groupInput.value, pageNo: 1 }); });
    if (!name) {
      fill(main, h('h1', {}, 'Subscribers'), search, h('p', { class: 'muted' }, 'Name a service to see who subscribes to it.'));
      return;
    }
    const page = await api('GET', '/nacos/v1/ns/service/subscribers', {
      serviceName: name, groupName: group, namespaceId: namespace, pageNo, pageSize,
    });
    const rows = (page.subscribers || []).map((s) => ({ ...s, __key: `${s.addrStr} ${s.cluster}` }));
    fill(main,
      h('h1', {}, `Subscribers of ${group} / ${name}`),
      search,
      table([
        ['Address', (s) => h('span', { testid: 'subscriber-address' }, s.addrStr)],
        ['Client', (s) => s.agent],
        ['Application', (s) => s.app],
        ['Clusters', (s) => s.cluster || 'all'],
      ], rows, { testid: 'subscribers' }),
      pager(page.count || 0, pageNo, pageSize, (n, size) => go({ pageNo: n, pageSize: size })));
  },
};
