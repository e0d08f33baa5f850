// dom.js - building elements without HTML strings: whatever the API or the
// event stream says is set as text or as an attribute, never parsed as markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

function build(el, props, children) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.setAttribute('class', value);
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'disabled' || key === 'hidden' || key === 'value' || key === 'selected') el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

// h('button', {class: 'x', onclick: fn, dataset: {id: 1}}, 'text', child...)
export function h(tag, props, ...children) {
  return build(document.createElement(tag), props, children);
}

// The same for SVG elements.
export function s(tag, props, ...children) {
  return build(document.createElementNS(SVG_NS, tag), props, children);
}

// Replace what el holds, keeping keyboard focus on the element with the
// same data-focus-key when the old one is replaced (views re-render whole).
export function render(el, ...children) {
  const active = document.activeElement;
  const key = active && el.contains(active) ? active.dataset.focusKey : undefined;
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  if (key) {
    const again = Array.from(el.querySelectorAll('[data-focus-key]')).find((e) => e.dataset.focusKey === key);
    if (again) again.focus({ preventScroll: true });
  }
}

// Give the focus back to el, or to its replacement (same data-focus-key)
// when a view re-rendered it meanwhile.
export function refocus(el) {
  if (!el || typeof el.focus !== 'function') return;
  if (el.isConnected) {
    el.focus();
    return;
  }
  const key = el.dataset && el.dataset.focusKey;
  const again = key && Array.from(document.querySelectorAll('[data-focus-key]')).find((e) => e.dataset.focusKey === key);
  if (again) again.focus();
}
