// The console: hash routes (`#/configs?dataId=...`: the back button restores a page and its
// search), one module per page. Each page renders into <main> and the body's `data-ready`
// says when it is done (what the browser tests wait for).
import { api, session, whenUnauthorized } from './api.js';
import { h, fill } from './dom.js';
import * as login from './login.js';
import * as cluster from './cluster.js';
import * as configs from './configs.js';
import * as services from './services.js';
import * as namespaces from './namespaces.js';
import * as users from './users.js';
import * as modules from './modules.js';

/** route → [menu title (null: not in the menu), page, admins only]. */
const ROUTES = {
  login: [null, login, false],
  cluster: ['Cluster', cluster, false],
  configs: ['Configs', configs, false],
  config: [null, configs.editor, false],
  history: [null, configs.history, false],
  listeners: ['Listeners', configs.listening, false],
  services: ['Services', services, false],
  service: [null, services.detail, false],
  subscribers: ['Subscribers', services.subscribers, false],
  namespaces: ['Namespaces', namespaces, true],
  users: ['Users', users, true],
  modules: ['Modules', modules, true],
};

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const namespaceSelect = document.getElementById('namespace');
let rendering = 0;

export function toast(text) {
  const el = document.getElementById('toast');
  fill(el, text);
  setTimeout(() => { if (el.textContent === text) fill(el); }, 5000);
}

/** The namespace the pages work in: the URL's, else the selector's, else public (''). */
export function namespace(params) {
  return params.get('namespace') ?? namespaceSelect.value ?? '';
}

function parse() {
  const [route, query] = location.hash.replace(/^#\/?/, '').split('?');
  return { route: route || 'cluster', params: new URLSearchParams(query || '') };
}

async function render() {
  const turn = ++rendering;
  document.body.dataset.ready = 'false';
  const { route, params } = parse();
  const s = session.get();
  if (!s && route !== 'login') {
    location.hash = '#/login';
    return;
  }
  const [, page, adminOnly] = ROUTES[route] || ROUTES.cluster;
  drawChrome(route, s);
  if (adminOnly && !s?.globalAdmin) {
    fill(main, h('p', { class: 'error' }, 'This page is for administrators.'));
  } else {
    try {
      await page.render(main, params, { toast, namespace: namespace(params), rerender: render });
    } catch (e) {
      fill(main, h('p', { class: 'error', testid: 'page-error' }, String(e.message || e)));
    }
  }
  if (turn === rendering) {
    document.body.dataset.ready = 'true';
    document.body.dataset.renders = String(turn);
  }
}

function drawChrome(route, s) {
  document.getElementById('who').textContent = s ? s.username : '';
  document.getElementById('logout').hidden = !s;
  namespaceSelect.parentElement.hidden = !s;
  fill(nav, s ? Object.entries(ROUTES)
    .filter(([, [title, , adminOnly]]) => title && (!adminOnly || s.globalAdmin))
    .map(([name, [title]]) => h('a', { href: `#/${name}`, class: name === route ? 'active' : null, testid: `nav-${name}` }, title))
    : []);
}

async function loadNamespaces() {
  if (!session.get()) return;
  try {
    const answer = await api('GET', '/nacos/v1/console/namespaces');
    const current = namespaceSelect.value;
    fill(namespaceSelect, (answer.data || []).map((ns) =>
      h('option', { value: ns.namespace, selected: ns.namespace === current }, ns.namespaceShowName || ns.namespace || 'public')));
  } catch { /* the pages say what failed */ }
}

whenUnauthorized(() => {
  session.clear();
  if (!location.hash.startsWith('#/login')) location.hash = '#/login';
});
document.getElementById('logout').addEventListener('click', () => {
  session.clear();
  location.hash = '#/login';
});
namespaceSelect.addEventListener('change', () => render());
// A namespace created or deleted on the namespaces page: the selector follows.
window.addEventListener('nacre:namespaces-changed', () => loadNamespaces());
window.addEventListener('hashchange', render);
window.addEventListener('nacre:signed-in', async () => {
  await loadNamespaces();
  location.hash = '#/cluster';
});
await loadNamespaces();
render();
