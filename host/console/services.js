// Services: the list (search by name and group, any page size, instance and healthy counts;
// a service with instances but none healthy is marked), and one service's instances with
// their health, weight, enabled, ephemeral and metadata, weight and enabled editable.
import { api } from './api.js';
import { h, fill, table, link, pager, tag, hash } from './dom.js';

const DEFAULT_GROUP = 'DEFAULT_GROUP';
/** Services one listing fetches at most (Nacos's v1 service list has no name filter). */
const MAX_LISTED = 10000;

async function instances(namespace, name, group) {
  const answer = await api('GET', '/nacos/v1/ns/instance/list', {
    serviceName: name, groupName: group, namespaceId: namespace, healthyOnly: false,
  });
  return answer.hosts || [];
}

export async function render(main, params, { namespace }) {
  const name = params.get('name') || '';
  const group = params.get('group') || DEFAULT_GROUP;
  const pageNo = Number(params.get('pageNo') || 1);
  const pageSize = Number(params.get('pageSize') || 20);
  const go = (p = {}) => { location.hash = hash('services', { namespace, name, group, pageNo, pageSize, ...p }); };
  const nameInput = h('input', { placeholder: 'Service name contains', value: name, testid: 'search-service' });
  const groupInput = h('input', { placeholder: 'Group', value: group, testid: 'search-service-group' });
  const search = h('form', { class: 'bar' }, nameInput, groupInput, h('button', { type: 'submit' }, 'Search'));
  search.addEventListener('submit', (e) => { e.preventDefault(); go({ name: nameInput.value, group: groupInput.value, pageNo: 1 }); });
  const listed = await api('GET', '/nacos/v1/ns/service/list', {
    pageNo: 1, pageSize: MAX_LISTED, groupName: group, namespaceId: namespace,
  });
  const matching = (listed.doms || []).filter((s) => s.includes(name)).sort();
  const shown = matching.slice((pageNo - 1) * pageSize, pageNo * pageSize);
  const rows = await Promise.all(shown.map(async (service) => {
    const hosts = await instances(namespace, service, group);
    return { __key: service, service, count: hosts.length, healthy: hosts.filter((i) => i.healthy).length };
  }));
  fill(main,
    h('h1', {}, 'Services'),
    search,
    table([
      ['Service', (r) => link(r.service, 'service', { namespace, name: r.service, group }, { testid: 'service-link' })],
      ['Group', () => group],
      ['Instances', (r) => h('span', { testid: 'instance-count' }, r.count), 'num'],
      ['Healthy', (r) => (r.count > 0 && r.healthy === 0 ? tag('0', 'bad') : r.healthy), 'num'],
    ], rows, { testid: 'services' }),
    pager(matching.length, pageNo, pageSize, (n, size) => go({ pageNo: n, pageSize: size })));
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
