// Configs: the list with search (by name, group and content) and paging, the editor (MD5
// shown, a diff before every publish, compare-and-set against the version the editor loaded,
// beta publish, the clients listening to it), the history with a side-by-side diff against
// the current content and rollback, and the listening query (who listens to a config, what a
// client listens to).
import { api, ApiError } from './api.js';
import { h, fill, table, link, pager, diff, when, hash, ask, tag } from './dom.js';
import * as highlight from './highlight.js';

const CONFIGS = '/nacos/v1/cs/configs';
const FORMATS = ['text', 'json', 'xml', 'yaml', 'html', 'properties', 'toml'];
/** Nacos's default group. */
const DEFAULT_GROUP = 'DEFAULT_GROUP';

/** `*text*` for a substring search (Nacos's blur search); empty stays empty. */
const fuzzy = (text) => (text ? `*${text}*` : '');

export async function render(main, params, { namespace }) {
  const dataId = params.get('dataId') || '';
  const group = params.get('group') || '';
  const content = params.get('content') || '';
  const pageNo = Number(params.get('pageNo') || 1);
  const pageSize = Number(params.get('pageSize') || 20);
  const go = (p = {}) => { location.hash = hash('configs', { namespace, dataId, group, content, pageNo, pageSize, ...p }); };
  const dataIdInput = h('input', { placeholder: 'Data ID', value: dataId, testid: 'search-dataId' });
  const groupInput = h('input', { placeholder: 'Group', value: group, testid: 'search-group' });
  const contentInput = h('input', { placeholder: 'Content contains', value: content, testid: 'search-content' });
  const search = h('form', { class: 'bar', testid: 'config-search' },
    dataIdInput, groupInput, contentInput, h('button', { type: 'submit', testid: 'search-configs' }, 'Search'),
    link('New config', 'config', { namespace, new: 1 }, { testid: 'new-config' }),
    link('Listening query', 'listeners', { namespace }, { testid: 'listeners-link' }));
  search.addEventListener('submit', (e) => {
    e.preventDefault();
    go({ dataId: dataIdInput.value, group: groupInput.value, content: contentInput.value, pageNo: 1 });
  });
  // `config_detail` is Nacos's content search (a substring of the content).
  const page = await api('GET', CONFIGS, {
    search: 'blur', dataId: fuzzy(dataId), group: fuzzy(group), config_detail: content || null,
    tenant: namespace, pageNo, pageSize,
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
      ['', (c) => h('span', {}, link('History', 'history', { namespace, dataId: c.dataId, group: c.group }), ' · ',
        link('Listeners', 'listeners', { namespace, dataId: c.dataId, group: c.group }))],
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
      const invalid = highlight.problem(format.value, content.value);
      fill(review,
        h('h2', {}, beta ? 'Review the beta publish' : 'Review the change'),
        invalid ? h('p', { class: 'error', testid: 'review-format' }, `${invalid}. Publish anyway?`) : '',
        diff(current ? `current (md5 ${current.md5})` : 'nothing (new config)', current?.content || '',
          'after publishing', content.value),
        h('div', { class: 'bar' },
          h('button', { type: 'button', class: 'primary', testid: 'confirm-publish', onclick: () => publish(beta) }, 'Publish'),
          h('button', { type: 'button', onclick: () => fill(review) }, 'Keep editing')));
    };

    const listeners = current ? await listenersOf(namespace, dataId, group, current.md5) : '';
    fill(main,
      h('h1', {}, creating ? 'New config' : `${group} / ${dataId}`),
      current ? h('dl', { class: 'facts', testid: 'config-facts' },
        h('dt', {}, 'MD5'), h('dd', {}, h('code', { testid: 'config-md5' }, current.md5)),
        h('dt', {}, 'Modified'), h('dd', {}, when(current.modifyTime)),
        h('dt', {}, 'History'), h('dd', {}, link('versions and rollback', 'history', { namespace, dataId, group }, { testid: 'history-link' }))) : '',
      h('div', { class: 'bar' }, idInput, groupInput, format, desc),
      highlight.editor(content, format),
      h('div', { class: 'bar' },
        h('button', { type: 'button', class: 'primary', testid: 'publish', onclick: () => reviewThen(false) }, 'Publish…'),
        betaIps,
        h('button', { type: 'button', testid: 'publish-beta', onclick: () => reviewThen(true) }, 'Publish beta…')),
      status,
      review,
      listeners);
  },
};

/** Who listens to one config (every member's clients), and whether each has its current md5. */
async function listenersOf(namespace, dataId, group, md5) {
  const answer = await api('GET', `${CONFIGS}/listener`, { dataId, group, tenant: namespace });
  const rows = Object.entries(answer.lisentersGroupkeyStatus || {}).map(([ip, has]) => ({ ip, has, __key: ip }));
  return h('section', { testid: 'config-listeners' },
    h('h2', {}, `Listeners (${rows.length})`),
    rows.length === 0 ? h('p', { class: 'muted' }, 'No client listens to this config now.') : table([
      ['Client', (r) => h('span', { testid: 'listener-ip' }, r.ip)],
      ['MD5 it has', (r) => h('code', {}, r.has)],
      ['', (r) => (md5 === undefined ? '' : r.has === md5 ? tag('current', 'good') : tag('behind', 'warn'))],
    ], rows, { testid: 'listeners' }));
}

/**
 * `#/listeners?dataId&group` or `#/listeners?ip`: Nacos's listening query, by config (which
 * clients listen to it, with the md5 each has) or by client IP (what it listens to).
 */
export const listening = {
  async render(main, params, { namespace }) {
    const dataId = params.get('dataId') || '';
    const group = params.get('group') || DEFAULT_GROUP;
    const ip = params.get('ip') || '';
    const byConfig = h('form', { class: 'bar', testid: 'listen-by-config' },
      h('input', { name: 'dataId', placeholder: 'Data ID', value: dataId, required: true, testid: 'listen-dataId' }),
      h('input', { name: 'group', placeholder: 'Group', value: group, testid: 'listen-group' }),
      h('button', { type: 'submit' }, 'Who listens'));
    byConfig.addEventListener('submit', (e) => {
      e.preventDefault();
      location.hash = hash('listeners', { namespace, dataId: byConfig.dataId.value, group: byConfig.group.value });
    });
    const byClient = h('form', { class: 'bar', testid: 'listen-by-client' },
      h('input', { name: 'ip', placeholder: 'Client IP', value: ip, required: true, testid: 'listen-ip' }),
      h('button', { type: 'submit' }, 'What it listens to'));
    byClient.addEventListener('submit', (e) => {
      e.preventDefault();
      location.hash = hash('listeners', { namespace, ip: byClient.ip.value });
    });
    let result = h('p', { class: 'muted' }, 'Ask by config or by client.');
    if (ip) {
      const answer = await api('GET', '/nacos/v1/cs/listener', { ip, tenant: namespace });
      const rows = Object.entries(answer.lisentersGroupkeyStatus || {}).map(([key, md5]) => ({ key, md5, __key: key }));
      result = h('section', {},
        h('h2', {}, `${ip} listens to ${rows.length} config${rows.length === 1 ? '' : 's'}`),
        table([
          ['Config (dataId+group)', (r) => h('span', { testid: 'listened-key' }, r.key)],
          ['MD5 it has', (r) => h('code', {}, r.md5)],
        ], rows, { testid: 'listened' }));
    } else if (dataId) {
      const current = await load(namespace, dataId, group);
      result = await listenersOf(namespace, dataId, group, current?.md5);
    }
    fill(main, h('h1', {}, 'Listening query'), byConfig, byClient, result);
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
        ['By', (v) => h('span', { testid: 'version-by' }, v.srcUser || '')],
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
