// views/config.js - the configuration versions (newest first) and the diff
// between two of them: pick "from" and "to", or "Diff" on a row (that
// version against the one before it). "Roll back" on a row asks the app
// to make that version current again (it confirms first).
//
// Markup the tests rely on: tr.version[data-version]; buttons
// [data-action="diff-prev"|"rollback"]; #diff[data-from][data-to] holding
// li.added / li.removed / li.changed[data-name].

import { h, render } from '../dom.js';
import * as fmt from '../format.js';

const SHOWN = 20; // rows before "Show all"

const KINDS = [
  { key: 'routes', title: 'Routes', name: 'vHost' },
  { key: 'regions', title: 'Regions', name: 'id' },
  { key: 'certificates', title: 'Certificates', name: 'domain' },
];

function names(list) {
  return Array.isArray(list) ? list : [];
}

function changeLine(kind, c) {
  const name = c[kind.name] ?? c.id ?? '';
  const parts = [];
  if (names(c.fields).length) parts.push(`fields ${names(c.fields).join(', ')}`);
  const b = c.backends;
  if (b) {
    const bits = [
      ...names(b.added).map((id) => `+${id}`),
      ...names(b.removed).map((id) => `\u2212${id}`),
      ...names(b.changed).map((x) => `~${x.id}${names(x.fields).length ? ` (${names(x.fields).join(', ')})` : ''}`),
    ];
    if (bits.length) parts.push(`backends ${bits.join(' ')}`);
  }
  return h('li', { class: 'changed', dataset: { name } },
    h('span', { class: 'mark', 'aria-hidden': 'true' }, '~'), h('span', { class: 'sr-only' }, 'changed: '),
    h('strong', {}, name), parts.length ? `: ${parts.join('; ')}` : ': order only');
}

export function diffBody(diff) {
  const blocks = [];
  for (const kind of KINDS) {
    const d = diff[kind.key] || {};
    const items = [
      ...names(d.added).map((n) => h('li', { class: 'added', dataset: { name: n } },
        h('span', { class: 'mark', 'aria-hidden': 'true' }, '+'), h('span', { class: 'sr-only' }, 'added: '), h('strong', {}, n))),
      ...names(d.removed).map((n) => h('li', { class: 'removed', dataset: { name: n } },
        h('span', { class: 'mark', 'aria-hidden': 'true' }, '\u2212'), h('span', { class: 'sr-only' }, 'removed: '), h('strong', {}, n))),
      ...names(d.changed).map((c) => changeLine(kind, c)),
    ];
    if (items.length) blocks.push(h('h4', {}, kind.title), h('ul', { class: 'changes' }, items));
  }
  return blocks.length ? blocks : [h('p', { class: 'empty' }, 'No differences.')];
}

export function createConfigView({ el, store, loadDiff, onRollback }) {
  const from = h('select', { id: 'diff-from' });
  const to = h('select', { id: 'diff-to' });
  const diff = h('div', { id: 'diff', class: 'diff', 'aria-live': 'polite', tabindex: '-1' });
  const list = h('div', { class: 'scroll' });
  let showAll = false;
  let asked = 0; // the last diff asked, so that an older answer never overwrites it

  async function showDiff(a, b) {
    const mine = ++asked;
    diff.dataset.from = String(a);
    diff.dataset.to = String(b);
    diff.dataset.state = 'loading';
    render(diff, h('p', {}, `Loading the changes from version ${a} to ${b}\u2026`));
    try {
      const data = await loadDiff(a, b);
      if (mine !== asked) return;
      diff.dataset.state = 'shown';
      render(diff, h('h3', {}, `Changes from version ${a} to ${b}`), diffBody(data || {}));
    } catch (e) {
      if (mine !== asked) return;
      diff.dataset.state = 'error';
      render(diff, h('p', { class: 'error', role: 'alert' }, `Diff ${a} \u2192 ${b} failed: ${e.describe ? e.describe() : e.message}`));
    }
  }

  const form = h('form', { class: 'compare', onsubmit: (e) => {
    e.preventDefault();
    if (from.value && to.value) showDiff(from.value, to.value);
  } },
  h('label', { for: 'diff-from' }, 'From'), from,
  h('label', { for: 'diff-to' }, 'To'), to,
  h('button', { type: 'submit', id: 'diff-show' }, 'Show diff'));

  function row(v, current) {
    const version = Number(v.version);
    const at = fmt.toDate(v.at);
    return h('tr', { class: 'version', dataset: { version: String(version), current: String(current) } },
      h('th', { scope: 'row', 'data-label': 'Version' }, `v${version}`, current ? h('span', { class: 'badge alive' }, 'current') : null),
      h('td', { 'data-label': 'When' }, at ? h('time', { datetime: at.toISOString(), title: fmt.stamp(at), dataset: { ago: '' } }, fmt.ago(at)) : '\u2014'),
      h('td', { 'data-label': 'By' }, v.by || '\u2014'),
      h('td', { 'data-label': 'Summary', class: 'summary' }, v.summary || '\u2014'),
      h('td', { class: 'act' },
        h('button', {
          type: 'button', dataset: { action: 'diff-prev', focusKey: `diff:${version}` },
          'aria-label': `Diff version ${version} against version ${version - 1}`,
          disabled: version < 1, onclick: () => showDiff(version - 1, version),
        }, 'Diff'),
        ' ',
        current ? null : h('button', {
          type: 'button', class: 'danger', dataset: { action: 'rollback', focusKey: `rollback:${version}` },
          'aria-label': `Roll back to version ${version}`, onclick: () => onRollback(version),
        }, 'Roll back')));
  }

  function draw() {
    const versions = store.state.versions;
    const current = Number(versions[0]?.version); // newest first: the first is current
    const keepFrom = from.value;
    const keepTo = to.value;
    const options = (selected) => versions.map((v) => h('option', { value: String(v.version), selected: String(v.version) === selected }, `v${v.version}`));
    render(from, options(keepFrom || String(versions[1]?.version ?? '')));
    render(to, options(keepTo || String(versions[0]?.version ?? '')));
    const rows = showAll ? versions : versions.slice(0, SHOWN);
    render(list, versions.length === 0
      ? h('p', { class: 'empty' }, 'No versions yet.')
      : h('table', { class: 'versions' },
        h('caption', { class: 'sr-only' }, 'Configuration versions, newest first'),
        h('thead', {}, h('tr', {}, ['Version', 'When', 'By', 'Summary'].map((t) => h('th', { scope: 'col' }, t)),
          h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
        h('tbody', {}, rows.map((v) => row(v, Number(v.version) === current)))),
    versions.length > SHOWN && !showAll
      ? h('button', { type: 'button', class: 'more', onclick: () => { showAll = true; draw(); } }, `Show all ${versions.length} versions`)
      : null);
  }

  render(el, form, list, diff);
  store.on('versions', draw);
  return { draw, showDiff, focusDiff: () => diff.focus() };
}
