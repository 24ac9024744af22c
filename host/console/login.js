// Sign in with a Nacre user (Nacos's login API); the token lives in this tab's session only.
import { api, session } from './api.js';
import { h, fill } from './dom.js';

export async function render(main) {
  const error = h('p', { class: 'error', testid: 'login-error' });
  const username = h('input', { name: 'username', autocomplete: 'username', required: true, testid: 'username' });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true, testid: 'password' });
  const form = h('form', { class: 'login', testid: 'login-form' },
    h('h1', {}, 'Sign in to Nacre'),
    h('label', {}, 'Username ', username),
    h('label', {}, 'Password ', password),
    h('button', { class: 'primary', type: 'submit', testid: 'login-submit' }, 'Sign in'),
    error);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    fill(error);
    try {
      const answer = await api('POST', '/nacos/v1/auth/users/login', { username: username.value, password: password.value });
      session.set({ accessToken: answer.accessToken, username: answer.username, globalAdmin: Boolean(answer.globalAdmin) });
      window.dispatchEvent(new Event('nacre:signed-in'));
    } catch (e) {
      fill(error, e.status === 403 ? 'Unknown user or wrong password.' : String(e.message));
    }
  });
  session.clear();
  fill(main, form);
  username.focus();
}
