// Services: the list (search by name and group, any page size, instance and healthy counts;
// a service with instances but none healthy is marked), and one service's instances with
// their health, weight, enabled, ephemeral and metadata, weight and enabled editable.
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
    ], rows, { testid: 'services' }),
    pager(page.count || 0, pageNo, pageSize, (n, size) => go({ pageNo: n, pageSize: size })));
}

/** `#/service?name&group`: the instances of one service. */
export const detail = {
  async render(main, params, { namespace, toast, rerender }) {
    const name = params.get('name') || '';
    const group = params.get('group') || DEFAULT_GROUP;
    const hosts = await instances(namespace, name, group);
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
    fill(main,
      h('h1', {}, `${group} / ${name}`),
      h('p', {}, link('All services', 'services', { namespace, group })),
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
      ], rows, { testid: 'instances' }));
  },
};
