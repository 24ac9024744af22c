// The cluster as the members report it: address, voter or learner, role, term, applied index,
// state digest; the leader marked. Refreshed every two seconds while shown. Administrators
// can hand leadership over or remove a member (the server refuses what would cost the
// majority, and says why).
import { api, session } from './api.js';
import { h, fill, table, tag, ask } from './dom.js';

const REFRESH_MS = 2000;
let timer = null;

export async function render(main, _params, { toast }) {
  clearTimeout(timer);
  const body = h('div', { testid: 'cluster' });
  fill(main, h('h1', {}, 'Cluster'), body);
  const admin = session.get()?.globalAdmin;
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
