// Configs: the list with search and paging, the editor (MD5 shown, a diff before every
// publish, compare-and-set against the version the editor loaded, beta publish), and the
// history with a side-by-side diff against the current content and rollback.
import { api, ApiError } from './api.js';
import { h, fill, table, link, pager, diff, when, hash, ask } from './dom.js';

const CONFIGS = '/nacos/v1/cs/configs';
const FORMATS = ['text', 'json', 'xml', 'yaml', 'html', 'properties', 'toml'];
/** Nacos's default group. */
const DEFAULT_GROUP = 'DEFAULT_GROUP';

/** `*text*` for a substring search (Nacos's blur search); empty stays empty. */
const fuzzy = (text) => (text ? `*${text}*` : '');

export async function render(main, params, { namespace }) {
  const dataId = params.get('dataId') || '';
  const group = params.get('group') || '';
  const pageNo = Number(params.get('pageNo') || 1);
  const pageSize = Number(params.get('pageSize') || 20);
  const go = (p = {}) => { location.hash = hash('configs', { namespace, dataId, group, pageNo, pageSize, ...p }); };
  const dataIdInput = h('input', { placeholder: 'Data ID', value: dataId, testid: 'search-dataId' });
  const groupInput = h('input', { placeholder: 'Group', value: group, testid: 'search-group' });
  const search = h('form', { class: 'bar', testid: 'config-search' },
    dataIdInput, groupInput, h('button', { type: 'submit' }, 'Search'),
    link('New config', 'config', { namespace, new: 1 }, { testid: 'new-config' }));
  search.addEventListener('submit', (e) => { e.preventDefault(); go({ dataId: dataIdInput.value, group: groupInput.value, pageNo: 1 }); });
  const page = await api('GET', CONFIGS, {
    search: 'blur', dataId: fuzzy(dataId), group: fuzzy(group), tenant: namespace, pageNo, pageSize,
  });
  const rows = (page.pageItems || []).map((c) => ({ ...c, __key: `${c.group}/${c.dataId}` }));
  fill(main,
    h('h1', {}, 'Configs'),
    search,
    table([
      ['Data ID', (c) => link(c.dataId, 'config', { namespace, dataId: c.dataId, group: c.group }, { testid: 'config-link' })],
      ['Group', (c) => c.group],
      ['Format', (c) => c.type || 'text'],
      ['Application', (c) => c.appName || ''],
      ['MD5', (c) => h('code', {}, c.md5 || '')],
      ['', (c) => link('History', 'history', { namespace, dataId: c.dataId, group: c.group })],
    ], rows, { testid: 'configs' }),
    pager(page.totalCount || 0, pageNo, pageSize, (n, size) => go({ pageNo: n, pageSize: size })));
}

async function load(namespace, dataId, group) {
  try {
    return await api('GET', CONFIGS, { show: 'all', dataId, group, tenant: namespace });
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return null;
    throw e;
  }
}

/** `#/config?dataId&group[&new=1]`: create or edit one config. */
export const editor = {
  async render(main, params, { namespace, toast }) {
    const creating = params.get('new') === '1';
    const dataId = params.get('dataId') || '';
    const group = params.get('group') || DEFAULT_GROUP;
    const current = creating ? null : await load(namespace, dataId, group);
    if (!creating && !current) {
      fill(main, h('p', { class: 'error' }, `${group} / ${dataId} does not exist.`));
      return;
    }
    const idInput = h('input', { value: dataId, placeholder: 'Data ID', testid: 'edit-dataId', disabled: !creating });
    const groupInput = h('input', { value: group, placeholder: 'Group', testid: 'edit-group', disabled: !creating });
    const format = h('select', { testid: 'edit-format' },
      FORMATS.map((f) => h('option', { value: f, selected: f === (current?.type || 'text') }, f)));
    const desc = h('input', { value: current?.desc || '', placeholder: 'Description', testid: 'edit-desc' });
    const content = h('textarea', { class: 'code', spellcheck: 'false', testid: 'edit-content' });
    content.value = current?.content || '';
    const betaIps = h('input', { placeholder: 'beta IPs: 10.0.0.1,10.0.0.2', testid: 'edit-beta-ips' });
    const review = h('div', { testid: 'review' });
    const status = h('p', { class: 'error', testid: 'edit-error' });

    const publish = async (beta) => {
      const headers = {};
      if (current?.md5) headers.casMd5 = current.md5;
      if (beta) headers.betaIps = betaIps.value;
      const form = {
        dataId: idInput.value, group: groupInput.value, content: content.value, type: format.value,
        desc: desc.value, tenant: namespace,
      };
      try {
        await api('POST', CONFIGS, form, headers);
        toast(beta ? 'Published to the beta IPs' : 'Published');
        location.hash = hash('config', { namespace, dataId: idInput.value, group: groupInput.value, t: Date.now() });
      } catch (e) {
        const text = e.text || e.message;
        fill(status, /cas/i.test(text)
          ? 'Someone changed this config since you opened it; nothing was published. Reload to see their version.'
          : text);
      }
    };
    // Every publish is reviewed first: what changes, from the version this editor loaded.
    const reviewThen = (beta) => {
      fill(status);
      fill(review,
        h('h2', {}, beta ? 'Review the beta publish' : 'Review the change'),
        diff(current ? `current (md5 ${current.md5})` : 'nothing (new config)', current?.content || '',
          'after publishing', content.value),
        h('div', { class: 'bar' },
          h('button', { type: 'button', class: 'primary', testid: 'confirm-publish', onclick: () => publish(beta) }, 'Publish'),
          h('button', { type: 'button', onclick: () => fill(review) }, 'Keep editing')));
    };

    fill(main,
      h('h1', {}, creating ? 'New config' : `${group} / ${dataId}`),
      current ? h('dl', { class: 'facts', testid: 'config-facts' },
        h('dt', {}, 'MD5'), h('dd', {}, h('code', { testid: 'config-md5' }, current.md5)),
        h('dt', {}, 'Modified'), h('dd', {}, when(current.modifyTime)),
        h('dt', {}, 'History'), h('dd', {}, link('versions and rollback', 'history', { namespace, dataId, group }, { testid: 'history-link' }))) : '',
      h('div', { class: 'bar' }, idInput, groupInput, format, desc),
      content,
      h('div', { class: 'bar' },
        h('button', { type: 'button', class: 'primary', testid: 'publish', onclick: () => reviewThen(false) }, 'Publish…'),
        betaIps,
        h('button', { type: 'button', testid: 'publish-beta', onclick: () => reviewThen(true) }, 'Publish beta…')),
      status,
      review);
  },
};

/** What a history row's content is: Nacos keeps the content created, or the content replaced. */
function meaning(version) {
  return String(version.opType || '').trim() === 'I' ? 'the content it created' : 'the content this change replaced';
}

/** `#/history?dataId&group`: versions, each comparable with the current content, and rollback. */
export const history = {
  async render(main, params, { namespace, toast }) {
    const dataId = params.get('dataId') || '';
    const group = params.get('group') || DEFAULT_GROUP;
    const pageNo = Number(params.get('pageNo') || 1);
    const pageSize = Number(params.get('pageSize') || 20);
    const page = await api('GET', '/nacos/v1/cs/history', {
      search: 'accurate', dataId, group, tenant: namespace, pageNo, pageSize,
    });
    const compareArea = h('div', { testid: 'compare' });
    const compare = async (version) => {
      const [past, now] = await Promise.all([
        api('GET', '/nacos/v1/cs/history', { nid: version.id, dataId, group, tenant: namespace }),
        load(namespace, dataId, group),
      ]);
      fill(compareArea,
        h('h2', {}, `Version ${version.id} against the current content`),
        diff(`version ${version.id}: ${meaning(version)}`, past.content, now ? `current (md5 ${now.md5})` : 'current: deleted', now?.content || ''));
    };
    const rollback = async (version) => {
      if (!await ask(`Roll ${dataId} back to version ${version.id}?`)) return;
      try {
        await api('POST', '/nacre/v1/config/rollback', { dataId, group, tenant: namespace, nid: version.id });
        toast(`Rolled back to version ${version.id}`);
        location.hash = hash('history', { namespace, dataId, group, t: Date.now() });
      } catch (e) {
        toast(`Rollback refused: ${e.text || e.message}`);
      }
    };
    const op = (o) => ({ I: 'created', U: 'updated', D: 'deleted' }[String(o || '').trim()] || o);
    const rows = (page.pageItems || []).map((v) => ({ ...v, __key: v.id }));
    fill(main,
      h('h1', {}, `History of ${group} / ${dataId}`),
      h('p', { class: 'muted' }, 'As in Nacos, a creation keeps the content it created; an update or a deletion keeps the content it replaced. Rolling back to a version publishes its content again.'),
      table([
        ['Version', (v) => h('span', { testid: 'version-id' }, v.id), 'num'],
        ['Change', (v) => op(v.opType)],
        ['By', (v) => v.srcUser || ''],
        ['From', (v) => v.srcIp || ''],
        ['When', (v) => when(v.lastModifiedTime || v.createdTime)],
        ['MD5', (v) => h('code', {}, v.md5 || '')],
        ['', (v) => h('span', {},
          h('button', { type: 'button', testid: 'compare-version', onclick: () => compare(v) }, 'Compare with current'), ' ',
          h('button', { type: 'button', testid: 'rollback-version', onclick: () => rollback(v) }, 'Roll back to this'))],
      ], rows, { testid: 'history' }),
      pager(page.totalCount || 0, pageNo, pageSize, (n, size) => {
        location.hash = hash('history', { namespace, dataId, group, pageNo: n, pageSize: size });
      }),
      compareArea);
  },
};
