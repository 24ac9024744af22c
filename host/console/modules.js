// Modules, what no other registry has: the installed state-machine modules, which one each
// namespace runs for naming and for config (and the history of those bindings), activation
// and rollback, and a dry run that replays a namespace's recent commands through a candidate
// module next to the one in force and shows, entry by entry, where they answer differently.
import { api, upload } from './api.js';
import { h, fill, table, tag, when, ask } from './dom.js';

const KINDS = ['naming', 'config'];
const short = (id) => String(id || '').slice(0, 12);

export async function render(main, _params, { namespace, toast, rerender }) {
  const [modules, bindings] = await Promise.all([api('GET', '/nacre/v1/modules'), api('GET', '/nacre/v1/bindings')]);
  const label = (id) => {
    const m = modules.find((x) => x.id === id);
    return m?.info ? `${m.info.name} ${m.info.version}` : short(id);
  };
  const kindOf = (k) => String(k || '').toLowerCase();
  const bound = (bindings.bindings || []).map(({ namespace: ns, binding }) => {
    const kind = kindOf(binding.module?.kind);
    return { __key: `${ns}/${kind}`, namespace: ns, kind, ...binding };
  }).sort((a, b) => a.__key.localeCompare(b.__key));
  const run = async (what, action) => {
    try {
      await action();
      toast(`${what}: done`);
    } catch (e) {
      toast(`${what} refused: ${e.text || e.message}`);
    }
    await rerender();
  };

  // Activate a module in a namespace.
  const nsInput = h('input', { value: namespace || 'public', placeholder: 'namespace', testid: 'activate-namespace' });
  const kindSelect = h('select', { testid: 'activate-kind' }, KINDS.map((k) => h('option', { value: k }, k)));
  const moduleSelect = h('select', { testid: 'activate-module' });
  const refreshModules = () => fill(moduleSelect, modules.filter((m) => kindOf(m.info?.kind) === kindSelect.value)
    .map((m) => h('option', { value: m.id }, `${m.info.name} ${m.info.version} (${short(m.id)})`)));
  kindSelect.addEventListener('change', refreshModules);
  refreshModules();
  const activate = h('form', { class: 'bar', testid: 'activate' },
    nsInput, kindSelect, moduleSelect, h('button', { type: 'submit', class: 'primary', testid: 'activate-submit' }, 'Activate'));
  activate.addEventListener('submit', (e) => {
    e.preventDefault();
    run('Activate', () => api('POST', '/nacre/v1/bindings', { namespace: nsInput.value, kind: kindSelect.value, module: moduleSelect.value }));
  });

  // Install a component.
  const file = h('input', { type: 'file', accept: '.wasm', testid: 'install-file' });
  const install = h('form', { class: 'bar' }, file, h('button', { type: 'submit' }, 'Install'));
  install.addEventListener('submit', (e) => {
    e.preventDefault();
    if (!file.files[0]) return;
    run('Install', async () => upload('/nacre/v1/modules', {}, await file.files[0].arrayBuffer()));
  });

  // Dry run a candidate against a namespace's recent commands.
  const dryNs = h('input', { value: namespace || 'public', placeholder: 'namespace', testid: 'dry-run-namespace' });
  const dryEntries = h('input', { type: 'number', value: 100, min: 1, max: 10000, size: 6, testid: 'dry-run-entries-count' });
  const dryFile = h('input', { type: 'file', accept: '.wasm', testid: 'dry-run-file' });
  const report = h('div', { testid: 'dry-run-report' });
  const dry = h('form', { class: 'bar' }, dryNs, dryEntries, dryFile,
    h('button', { type: 'submit', testid: 'dry-run-submit' }, 'Dry run'));
  dry.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!dryFile.files[0]) return;
    fill(report, h('p', { class: 'muted' }, 'Replaying…'));
    try {
      const r = await upload('/nacre/v1/modules/dry-run', { namespace: dryNs.value, entries: dryEntries.value },
        await dryFile.files[0].arrayBuffer());
      showReport(report, r);
    } catch (err) {
      fill(report, h('p', { class: 'error' }, err.text || err.message));
    }
  });

  const rollback = (b) => async () => {
    if (await ask(`Roll ${b.namespace}'s ${b.kind} binding back to its previous module?`)) {
      await run('Rollback', () => api('POST', '/nacre/v1/bindings/rollback', { namespace: b.namespace, kind: b.kind }));
    }
  };
  fill(main,
    h('h1', {}, 'Modules'),
    h('h2', {}, 'Bindings'),
    table([
      ['Namespace', (b) => h('span', { testid: 'binding-namespace' }, b.namespace === '*' ? '* (every namespace)' : b.namespace)],
      ['Kind', (b) => b.kind],
      ['Module', (b) => h('span', { testid: 'binding-module' }, label(b.module_id))],
      ['Since index', (b) => b.since_index, 'num'],
      ['By', (b) => b.by || ''],
      ['', (b) => h('button', { type: 'button', onclick: rollback(b) }, 'Roll back')],
    ], bound, { testid: 'bindings' }),
    h('h2', {}, 'Activate'),
    activate,
    h('h2', {}, 'Installed'),
    table([
      ['Module', (m) => (m.info ? `${m.info.name} ${m.info.version}` : '?')],
      ['Kind', (m) => kindOf(m.info?.kind)],
      ['ID', (m) => h('code', { title: m.id }, short(m.id))],
      ['Bound in', (m) => bound.filter((b) => b.module_id === m.id).map((b) => `${b.namespace} (${b.kind})`).join(', ')],
    ], modules.map((m) => ({ ...m, __key: m.id })), { testid: 'modules' }),
    install,
    h('h2', {}, 'Binding history'),
    table([
      ['Index', (c) => c.index, 'num'],
      ['Namespace', (c) => c.namespace],
      ['Kind', (c) => kindOf(c.kind)],
      ['Module', (c) => label(c.module_id)],
      ['By', (c) => c.by || ''],
      ['When', (c) => when(c.timestamp_ms)],
      ['Outcome', (c) => (c.failure ? tag(c.failure, 'bad') : tag('switched', 'good'))],
    ], [...(bindings.history || [])].reverse(), { testid: 'binding-history' }),
    h('h2', {}, 'Dry run a candidate'),
    dry,
    report);
}

function showReport(report, r) {
  let all = false;
  const draw = () => {
    const entries = (r.entries || []).filter((e) => all || e.differs);
    const result = (x) => h('div', {}, tag(String(x.status), x.status < 300 ? 'good' : 'bad'), ' ', h('code', {}, x.body));
    fill(report,
      h('p', { testid: 'dry-run-summary' }, r.summary || `${r.differing} of ${r.replayed} entries differ`),
      h('label', {}, h('input', { type: 'checkbox', checked: all, onchange: (e) => { all = e.target.checked; draw(); } }), ' show every entry'),
      table([
        ['Index', (e) => e.index, 'num'],
        ['Operation', (e) => e.op],
        ['Module in force', (e) => result(e.in_force)],
        ['Candidate', (e) => result(e.candidate)],
        ['', (e) => (e.differs ? h('span', { testid: 'differs' }, tag('differs', 'warn')) : '')],
      ], entries, { testid: 'dry-run-entries' }));
  };
  draw();
}
