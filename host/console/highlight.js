// Format highlighting and checks for the config editor. The textarea stays the editor (native
// typing, selection, undo, input methods); a <pre> behind it shows the same text with its
// tokens colored, scrolled in step. Tokens become text nodes in spans, never markup.
import { h, fill } from './dom.js';

/** Past this size the editor shows plain text: coloring a megabyte on every key press would lag. */
export const MAX_HIGHLIGHT_CHARS = 200000;

/** [class, pattern] per format, tried in order at each position of a line; the first match wins. */
const STRING = /"(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?/y;
const NUMBER = /-?\b\d+(?:\.\d+)?(?:[eE][+-]?\d+)?\b/y;
const RULES = {
  json: [
    ['key', /"(?:[^"\\]|\\.)*"(?=\s*:)/y],
    ['str', STRING],
    ['num', NUMBER],
    ['lit', /\b(?:true|false|null)\b/y],
  ],
  yaml: [
    ['com', /#.*/y],
    ['key', /(?<=^\s*(?:-\s+)?)[^\s#:'"][^:#]*?(?=\s*:(?:\s|$))/y],
    ['str', STRING],
    ['num', NUMBER],
    ['lit', /\b(?:true|false|null|yes|no|on|off)\b|~/y],
  ],
  properties: [
    ['com', /(?<=^\s*)[#!].*/y],
    ['key', /(?<=^\s*)(?:[^=:\s\\]|\\.)+/y],
  ],
  toml: [
    ['com', /#.*/y],
    ['tag', /(?<=^\s*)\[\[?[^\]]*\]\]?/y],
    ['key', /(?<=^\s*)[A-Za-z0-9_.\-"']+(?=\s*=)/y],
    ['str', STRING],
    ['num', NUMBER],
    ['lit', /\b(?:true|false)\b/y],
  ],
  xml: [
    ['com', /<!--.*?(?:-->|$)/y],
    ['tag', /<\/?[A-Za-z_][\w:.-]*|\/?>/y],
    ['attr', /\b[A-Za-z_][\w:.-]*(?==)/y],
    ['str', STRING],
  ],
};
RULES.html = RULES.xml;

/** One line as [class or null, text] runs. */
function tokens(rules, line) {
  const runs = [];
  let plain = '';
  let at = 0;
  outer: while (at < line.length) {
    for (const [kind, pattern] of rules) {
      pattern.lastIndex = at;
      const found = pattern.exec(line);
      if (found && found[0].length > 0) {
        if (plain) { runs.push([null, plain]); plain = ''; }
        runs.push([kind, found[0]]);
        at += found[0].length;
        continue outer;
      }
    }
    plain += line[at];
    at += 1;
  }
  if (plain) runs.push([null, plain]);
  return runs;
}

/** The text as colored spans for `format` (plain for text, unknown formats and large texts). */
export function colored(format, text) {
  const rules = RULES[format];
  if (!rules || text.length > MAX_HIGHLIGHT_CHARS) return [text];
  return text.split('\n').flatMap((line, i) => [
    i > 0 ? '\n' : null,
    tokens(rules, line).map(([kind, run]) => (kind ? h('span', { class: `tok-${kind}` }, run) : run)),
  ]);
}

/** Why `text` is not valid `format`, or null. Nacos checks JSON, XML and YAML before a publish. */
export function problem(format, text) {
  if (!text.trim()) return null;
  if (format === 'json') {
    try { JSON.parse(text); } catch (e) { return `Not valid JSON: ${e.message}`; }
  }
  if (format === 'xml') {
    const parsed = new DOMParser().parseFromString(text, 'application/xml');
    const error = parsed.getElementsByTagName('parsererror')[0];
    if (error) return `Not valid XML: ${error.textContent.split('\n')[0]}`;
  }
  if (format === 'yaml') {
    const line = text.split('\n').findIndex((l) => /^ *\t/.test(l));
    if (line >= 0) return `Not valid YAML: a tab indents line ${line + 1} (YAML indents with spaces)`;
  }
  return null;
}

/**
 * The editor: `textarea` over its highlighted copy, recolored as it changes or its format
 * does, and a line saying whether the text is valid in its format.
 */
export function editor(textarea, formatSelect) {
  const shown = h('pre', { class: 'highlight', 'aria-hidden': 'true', testid: 'highlight' });
  const verdict = h('p', { class: 'muted', testid: 'format-check' });
  let queued = false;
  const redraw = () => {
    queued = false;
    // A trailing newline would not take a line in the <pre>: keep the two the same height.
    fill(shown, colored(formatSelect.value, textarea.value), '\n');
    const found = problem(formatSelect.value, textarea.value);
    verdict.className = found ? 'error' : 'muted';
    fill(verdict, found || (RULES[formatSelect.value] ? `Valid ${formatSelect.value}.` : ''));
    shown.scrollTop = textarea.scrollTop;
    shown.scrollLeft = textarea.scrollLeft;
  };
  // Keys pressed in one burst are colored once (a timer, not an animation frame: a page in a
  // background tab gets no frames).
  const later = () => { if (!queued) { queued = true; setTimeout(redraw, 0); } };
  textarea.classList.add('over');
  textarea.setAttribute('wrap', 'off');
  textarea.addEventListener('input', later);
  formatSelect.addEventListener('change', later);
  textarea.addEventListener('scroll', () => {
    shown.scrollTop = textarea.scrollTop;
    shown.scrollLeft = textarea.scrollLeft;
  });
  redraw();
  return h('div', {}, h('div', { class: 'editor' }, shown, textarea), verdict);
}
