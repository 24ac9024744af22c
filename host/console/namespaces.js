// Namespaces: list with their config counts, create, delete (administrators).
import { api } from './api.js';
import { h, fill, table, ask } from './dom.js';

export async function render(main, _params, { toast, rerender }) {
  const answer = await api('GET', '/nacos/v1/console/namespaces');
  const id = h('input', { placeholder: 'id (optional)', testid: 'ns-id' });
  const name = h('input', { placeholder: 'name', required: true, testid: 'ns-name' });
  const desc = h('input', { placeholder: 'description', testid: 'ns-desc' });
  const create = h('form', { class: 'bar' }, id, name, desc, h('button', { type: 'submit', class: 'primary', testid: 'ns-create' }, 'Create'));
  create.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await api('POST', '/nacos/v1/console/namespaces', { customNamespaceId: id.value, namespaceName: name.value, namespaceDesc: desc.value });
      toast(`Namespace ${name.value} created`);
      window.dispatchEvent(new Event('nacre:namespaces-changed'));
    } catch (err) {
      toast(`Not created: ${err.text || err.message}`);
    }
    await rerender();
  });
  const remove = async (ns) => {
    if (!await ask(`Delete namespace ${ns.namespace}?`)) return;
    try {
      await api('DELETE', '/nacos/v1/console/namespaces', { namespaceId: ns.namespace });
      window.dispatchEvent(new Event('nacre:namespaces-changed'));
    } catch (err) {
      toast(`Not deleted: ${err.text || err.message}`);
    }
    await rerender();
  };
  const rows = (answer.data || []).map((ns) => ({ ...ns, __key: ns.namespace }));
  fill(main,
    h('h1', {}, 'Namespaces'),
    create,
    table([
      ['Name', (ns) => h('span', { testid: 'ns-row-name' }, ns.namespaceShowName)],
      ['ID', (ns) => h('code', {}, ns.namespace || '(public)')],
      ['Description', (ns) => ns.namespaceDesc || ''],
      ['Configs', (ns) => ns.configCount ?? '', 'num'],
      ['', (ns) => (ns.type === 0 || !ns.namespace ? '' : h('button', { type: 'button', class: 'danger', onclick: () => remove(ns) }, 'Delete'))],
    ], rows, { testid: 'namespaces' }));
}
