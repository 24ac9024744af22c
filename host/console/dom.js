// DOM helpers. Every string reaches the page as text (a text node or an attribute value),
// never as markup: nothing a client registered or published can run here.

/** An element with attributes (`on*` as listeners, `testid` as data-testid) and children. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else if (name === 'testid') el.dataset.testid = value;
    else if (name === 'value') el.value = value;
    else if (name === 'checked') el.checked = Boolean(value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A link to a console route with its parameters (`#/route?k=v`). */
export function link(text, route, params = {}, attrs = {}) {
  return h('a', { href: hash(route, params), ...attrs }, text);
}

export function hash(route, params = {}) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') query.set(k, v);
  const q = query.toString();
  return `#/${route}${q ? `?${q}` : ''}`;
}

/** A table: `columns` are [header, cell(row) → node or text, class?]. */
export function table(columns, rows, attrs = {}) {
  const head = h('tr', {}, columns.map(([title]) => h('th', {}, title)));
  const body = rows.map((row) =>
    h('tr', { 'data-row': row.__key ?? null }, columns.map(([, cell, cls]) => h('td', { class: cls }, cell(row)))));
  return h('table', attrs, h('thead', {}, head), h('tbody', {}, body));
}

export function tag(text, kind) {
  return h('span', { class: `tag ${kind || ''}` }, text);
}

/** A paging bar: page `pageNo` of `total` items at `pageSize` a page. */
export function pager(total, pageNo, pageSize, go) {
  const pages = Math.max(1, Math.ceil(total / pageSize));
  const sizes = [10, 20, 50, 100, 500];
  return h('div', { class: 'pager', testid: 'pager' },
    h('button', { type: 'button', disabled: pageNo <= 1, onclick: () => go(pageNo - 1, pageSize) }, 'Previous'),
    h('span', { testid: 'page' }, `page ${pageNo} of ${pages} (${total} in all)`),
    h('button', { type: 'button', disabled: pageNo >= pages, onclick: () => go(pageNo + 1, pageSize) }, 'Next'),
    h('select', { testid: 'page-size', onchange: (e) => go(1, Number(e.target.value)) },
      sizes.map((n) => h('option', { value: n, selected: n === pageSize }, `${n} a page`))));
}

/**
 * A side-by-side line diff of `before` and `after` (longest common subsequence of lines),
 * each side titled. Bounded: past `MAX_DIFF_LINES` lines a side, the sides are shown whole.
 */
export const MAX_DIFF_LINES = 3000;

export function diff(beforeTitle, before, afterTitle, after) {
  const a = (before ?? '').split('\n');
  const b = (after ?? '').split('\n');
  const left = [h('div', { class: 'head' }, beforeTitle)];
  const right = [h('div', { class: 'head' }, afterTitle)];
  const line = (text, kind, testid) => h('div', { class: `line ${kind}`, testid }, text);
  if (a.length > MAX_DIFF_LINES || b.length > MAX_DIFF_LINES) {
    a.forEach((t) => left.push(line(t, '')));
    b.forEach((t) => right.push(line(t, '')));
  } else {
    for (const [op, l, r] of lineDiff(a, b)) {
      if (op === '=') { left.push(line(l, '')); right.push(line(r, '')); }
      if (op === '-') { left.push(line(l, 'del', 'removed')); right.push(line('', '')); }
      if (op === '+') { left.push(line('', '')); right.push(line(r, 'add', 'added')); }
    }
  }
  return h('div', { class: 'diff', testid: 'diff' }, h('div', { class: 'side' }, left), h('div', { class: 'side' }, right));
}

/** The edit script from `a` to `b`: ['=', x, x], ['-', x, null] or ['+', null, y]. */
export function lineDiff(a, b) {
  const n = a.length, m = b.length;
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) { out.push(['=', a[i], b[j]]); i++; j++; }
    else if (lcs[i + 1][j] >= lcs[i][j + 1]) out.push(['-', a[i++], null]);
    else out.push(['+', null, b[j++]]);
  }
  while (i < n) out.push(['-', a[i++], null]);
  while (j < m) out.push(['+', null, b[j++]]);
  return out;
}

export function when(ms) {
  if (!ms) return '';
  const d = new Date(Number(ms));
  return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/**
 * Ask before a change: the question with Yes and No in the page's dialog area (not the
 * browser's `confirm`, which blocks the page and every script driving it). Resolves true on Yes.
 */
export function ask(question) {
  const dialog = document.getElementById('dialog');
  return new Promise((resolve) => {
    const answer = (yes) => { fill(dialog); resolve(yes); };
    fill(dialog,
      h('p', {}, question),
      h('div', { class: 'bar' },
        h('button', { type: 'button', class: 'primary', testid: 'confirm-yes', onclick: () => answer(true) }, 'Yes'),
        h('button', { type: 'button', testid: 'confirm-no', onclick: () => answer(false) }, 'No')));
  });
}
