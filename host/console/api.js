// The console's one way to the server: the same v1 (and Nacre) HTTP endpoints every client
// uses, with the session's token in the `accessToken` header (never in a URL).

const SESSION_KEY = 'nacre.session';

export const session = {
  /** `{accessToken, username, globalAdmin}` for this browser tab, or null. */
  get() {
    try { return JSON.parse(sessionStorage.getItem(SESSION_KEY)); } catch { return null; }
  },
  set(value) { sessionStorage.setItem(SESSION_KEY, JSON.stringify(value)); },
  clear() { sessionStorage.removeItem(SESSION_KEY); },
};

export class ApiError extends Error {
  constructor(status, text) {
    super(`HTTP ${status}: ${text}`);
    this.status = status;
    this.text = text;
  }
}

/** Called when the server refuses the session (set by the app: back to the login page). */
let onUnauthorized = () => {};
export function whenUnauthorized(handler) { onUnauthorized = handler; }

/**
 * `method path` with `params` (query string for GET and DELETE, a form body otherwise) and
 * extra `headers`; the answer parsed as JSON when it is JSON, else its text.
 */
export async function api(method, path, params = {}, headers = {}) {
  const form = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) form.append(k, String(v));
  const request = { method, headers: { ...headers } };
  const s = session.get();
  if (s?.accessToken) request.headers.accessToken = s.accessToken;
  let url = path;
  if (method === 'GET' || method === 'DELETE') {
    const q = form.toString();
    if (q) url += `?${q}`;
  } else {
    request.body = form;
    request.headers['Content-Type'] = 'application/x-www-form-urlencoded';
  }
  const resp = await fetch(url, request);
  const text = await resp.text();
  if (resp.status === 403 && (!s || /token|login|expired|invalid/i.test(text))) onUnauthorized();
  if (!resp.ok) throw new ApiError(resp.status, text.trim());
  try { return JSON.parse(text); } catch { return text; }
}

/** POST raw `bytes` (a module component) to `path?params`; the answer as `api` gives it. */
export async function upload(path, params, bytes) {
  const query = new URLSearchParams(params).toString();
  const headers = { 'Content-Type': 'application/wasm' };
  const s = session.get();
  if (s?.accessToken) headers.accessToken = s.accessToken;
  const resp = await fetch(`${path}${query ? `?${query}` : ''}`, { method: 'POST', headers, body: bytes });
  const text = await resp.text();
  if (!resp.ok) throw new ApiError(resp.status, text.trim());
  try { return JSON.parse(text); } catch { return text; }
}
