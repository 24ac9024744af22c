// The cluster as the members report it: address, voter or learner, role, term, applied index,
// state digest; the leader marked. Refreshed every two seconds while shown. Administrators
// add a member (a voter or a learner: the node is started with `--join`), promote a learner,
// hand leadership over or remove a member (the server refuses what would cost the majority,
// and says why).
import { api, session } from './api.js';
import { h, fill, table, tag, ask } from './dom.js';

const REFRESH_MS = 2000;
let timer = null;

export async function render(main, _params, { toast }) {
  clearTimeout(timer);
  const body = h('div', { testid: 'cluster' });
  const admin = session.get()?.globalAdmin;
  fill(main, h('h1', {}, 'Cluster'), body, admin ? addForm(toast, () => draw()) : '');
  const act = async (what, method, path, address) => {
    if (!await ask(`${what} ${address}?`)) return;
    try {
      await api(method, path, { address });
      toast(`${what}: done`);
    } catch (e) {
      toast(`${what} refused: ${e.text || e.message}`);
    }
    await draw();
  };
  const draw = async () => {
    const answer = await api('GET', '/nacre/v1/cluster/members');
    const members = answer.members.map((m) => ({ ...m, __key: m.address, leader: m.address === answer.leader }));
    const role = (m) => tag(m.state, m.state === 'LEADER' ? 'good' : m.state === 'DOWN' ? 'bad' : '');
    const columns = [
      ['Address', (m) => h('span', { testid: 'member-address' }, m.address)],
      ['Votes', (m) => (m.voter ? 'voter' : tag('learner', 'warn'))],
      ['Role', (m) => h('span', { testid: 'member-role' }, role(m))],
      ['Leader', (m) => (m.leader ? h('span', { testid: 'leader-mark' }, '★ leader') : '')],
      ['Term', (m) => m.term ?? '–', 'num'],
      ['Applied index', (m) => m.appliedIndex ?? '–', 'num'],
      ['State digest', (m) => h('code', { title: m.digest || '' }, (m.digest || '–').slice(0, 16))],
    ];
    if (admin) {
      columns.push(['', (m) => h('span', {},
        m.voter && !m.leader
          ? h('button', { type: 'button', onclick: () => act('Transfer leadership to', 'POST', '/nacre/v1/cluster/leader', m.address) }, 'Make leader')
          : '',
        m.voter ? '' : h('button', { type: 'button', testid: 'promote', onclick: () => act('Promote to voter', 'POST', '/nacre/v1/cluster/members/promote', m.address) }, 'Make voter'),
        ' ',
        h('button', { type: 'button', class: 'danger', onclick: () => act('Remove', 'DELETE', '/nacre/v1/cluster/members', m.address) }, 'Remove'))]);
    }
    fill(body,
      h('p', { class: 'muted' }, `term ${answer.term}, leader `, h('strong', { testid: 'leader' }, answer.leader || 'none'),
        `, ${members.length} members`),
      table(columns, members, { testid: 'members' }));
  };
  await draw();
  const tick = async () => {
    if (!location.hash.startsWith('#/cluster') && location.hash !== '' && location.hash !== '#/') return;
    try { await draw(); } catch { /* shown on the next successful refresh */ }
    timer = setTimeout(tick, REFRESH_MS);
  };
  timer = setTimeout(tick, REFRESH_MS);
}

/** Add a member by its client address (its Raft port: the client port - 1000 unless given, as Nacos). */
function addForm(toast, redraw) {
  const address = h('input', { placeholder: 'host:port of the new node', required: true, testid: 'member-new-address' });
  const raftPort = h('input', { placeholder: 'raft port (optional)', type: 'number', min: 1, max: 65535, testid: 'member-new-raft-port' });
  const learner = h('input', { type: 'checkbox', testid: 'member-new-learner' });
  const form = h('form', { class: 'bar', testid: 'member-add' },
    address, raftPort, h('label', {}, learner, ' learner (a read replica, no vote)'),
    h('button', { type: 'submit' }, 'Add member'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!await ask(`Add ${address.value} as a ${learner.checked ? 'learner' : 'voter'}?`)) return;
    try {
      await api('POST', '/nacre/v1/cluster/members', { address: address.value, raftPort: raftPort.value || null, learner: learner.checked });
      toast(`Added ${address.value}`);
    } catch (err) {
      toast(`Add refused: ${err.text || err.message}`);
    }
    await redraw();
  });
  return h('section', {}, h('h2', {}, 'Add a member'),
    h('p', { class: 'muted' }, 'Start the new node with --join first; it catches up as a learner, then votes unless it stays one.'),
    form);
}
