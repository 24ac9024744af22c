// Users, their roles and the roles' permissions (administrators): Nacos's auth API.
import { api } from './api.js';
import { h, fill, table, ask } from './dom.js';

const PAGE = { pageNo: 1, pageSize: 500 };

export async function render(main, _params, { toast, rerender }) {
  const [users, roles, permissions] = await Promise.all([
    api('GET', '/nacos/v1/auth/users', PAGE),
    api('GET', '/nacos/v1/auth/roles', PAGE),
    api('GET', '/nacos/v1/auth/permissions', PAGE),
  ]);
  const run = (what, method, path, params) => async (e) => {
    e?.preventDefault?.();
    try {
      await api(method, path, params());
      toast(`${what}: done`);
    } catch (err) {
      toast(`${what} refused: ${err.text || err.message}`);
    }
    await rerender();
  };
  const username = h('input', { placeholder: 'username', testid: 'user-name' });
  const password = h('input', { placeholder: 'password', type: 'password', autocomplete: 'new-password', testid: 'user-password' });
  const addUser = h('form', { class: 'bar' }, username, password, h('button', { type: 'submit', testid: 'user-submit' }, 'Add user'));
  addUser.addEventListener('submit', run('Add user', 'POST', '/nacos/v1/auth/users', () => ({ username: username.value, password: password.value })));
  const role = h('input', { placeholder: 'role', testid: 'role-name' });
  const roleUser = h('input', { placeholder: 'username', testid: 'role-user' });
  const bind = h('form', { class: 'bar' }, role, roleUser, h('button', { type: 'submit', testid: 'role-submit' }, 'Bind role'));
  bind.addEventListener('submit', run('Bind role', 'POST', '/nacos/v1/auth/roles', () => ({ role: role.value, username: roleUser.value })));
  const permRole = h('input', { placeholder: 'role', testid: 'perm-role' });
  const resource = h('input', { placeholder: 'namespace:group:config/name, * wildcards', size: 36, testid: 'perm-resource' });
  const action = h('select', { testid: 'perm-action' }, ['r', 'w', 'rw'].map((a) => h('option', { value: a }, a)));
  const permit = h('form', { class: 'bar' }, permRole, resource, action, h('button', { type: 'submit', testid: 'perm-submit' }, 'Add permission'));
  permit.addEventListener('submit', run('Add permission', 'POST', '/nacos/v1/auth/permissions',
    () => ({ role: permRole.value, resource: resource.value, action: action.value })));
  const passwordUser = h('input', { placeholder: 'username', testid: 'password-user' });
  const newPassword = h('input', { placeholder: 'new password', type: 'password', autocomplete: 'new-password', testid: 'password-new' });
  const setPassword = h('form', { class: 'bar' }, passwordUser, newPassword, h('button', { type: 'submit' }, 'Set password'));
  setPassword.addEventListener('submit', run('Set password', 'PUT', '/nacos/v1/auth/users',
    () => ({ username: passwordUser.value, newPassword: newPassword.value })));
  const confirmed = (question, what, method, path, params) => async () => {
    if (await ask(question)) await run(what, method, path, () => params)();
  };
  const removeUser = (u) => confirmed(`Remove user ${u.username}?`, 'Remove user', 'DELETE', '/nacos/v1/auth/users', { username: u.username });
  const unbind = (r) => confirmed(`Take role ${r.role} from ${r.username}?`, 'Unbind role', 'DELETE', '/nacos/v1/auth/roles', { role: r.role, username: r.username });
  const revoke = (p) => confirmed(`Revoke ${p.action} on ${p.resource} from ${p.role}?`, 'Revoke permission', 'DELETE',
    '/nacos/v1/auth/permissions', { role: p.role, resource: p.resource, action: p.action });
  const remove = (handler) => h('button', { type: 'button', class: 'danger', onclick: handler }, 'Remove');
  fill(main,
    h('h1', {}, 'Users'),
    addUser,
    setPassword,
    table([
      ['User', (u) => h('span', { testid: 'user-row-name' }, u.username)],
      ['', (u) => remove(removeUser(u))],
    ], (users.pageItems || []).map((u) => ({ ...u, __key: u.username })), { testid: 'users' }),
    h('h2', {}, 'Roles'),
    bind,
    table([['Role', (r) => r.role], ['User', (r) => r.username],
      ['', (r) => remove(unbind(r))]], roles.pageItems || [], { testid: 'roles' }),
    h('h2', {}, 'Permissions'),
    permit,
    table([['Role', (p) => p.role], ['Resource', (p) => h('code', {}, p.resource)], ['Action', (p) => p.action],
      ['', (p) => remove(revoke(p))]], permissions.pageItems || [], { testid: 'permissions' }));
}
