// chart.js - a small SVG line chart over the last five minutes.
//
//   const chart = createChart({ title: 'requests/s', lines: [{ key: 'rps', label: 'req/s' }], format });
//   parent.append(chart.el);
//   chart.update(points, endMs);   // points: [{ t, rps, ... }], oldest first
//
// The x axis is time (endMs - 5 min .. endMs), the y axis starts at 0 and
// ends at a round number above the highest value shown. A gap of more than
// 5 s between two points breaks the line. Each line is a <path
// data-key="..."> whose `d` moves as points come; the caption says the last
// value of each line and the scale, and so does the chart's aria-label.

import { h, s } from './dom.js';
import { WINDOW_MS } from './state.js';

const W = 300; // viewBox width
const H = 80; // viewBox height
const GAP_MS = 5000;

// 1, 2, 5, 10, 20, 50... at or above v
function niceCeiling(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

export function pathOf(points, key, endMs, max) {
  const start = endMs - WINDOW_MS;
  let d = '';
  let prevT = null;
  for (const p of points) {
    const v = p[key];
    if (p.t < start || typeof v !== 'number' || !Number.isFinite(v)) {
      prevT = null;
      continue;
    }
    const x = ((p.t - start) / WINDOW_MS) * W;
    const y = H - (Math.min(v, max) / max) * (H - 2) - 1;
    d += `${prevT === null || p.t - prevT > GAP_MS ? 'M' : 'L'}${x.toFixed(1)},${y.toFixed(1)}`;
    prevT = p.t;
  }
  return d;
}

export function createChart({ title, lines, format }) {
  const paths = lines.map((line) =>
    s('path', { class: `line ${line.cls || line.key}`, 'data-key': line.key, 'vector-effect': 'non-scaling-stroke', d: '' }));
  const svg = s('svg', {
    class: 'plot',
    viewBox: `0 0 ${W} ${H}`,
    preserveAspectRatio: 'none',
    role: 'img',
    'aria-label': `${title}: no data yet`,
  },
  s('line', { class: 'grid', x1: 0, y1: H / 2, x2: W, y2: H / 2, 'vector-effect': 'non-scaling-stroke' }),
  s('line', { class: 'axis', x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5, 'vector-effect': 'non-scaling-stroke' }),
  paths);
  const values = lines.map((line) => h('span', { class: `value ${line.cls || line.key}` }, `${line.label} \u2014`));
  const scale = h('span', { class: 'scale' });
  const el = h('figure', { class: 'chart', dataset: { chart: lines.map((l) => l.key).join(' '), points: '0' } },
    h('figcaption', {}, h('span', { class: 'title' }, title), ' ', values),
    svg,
    h('div', { class: 'ticks', 'aria-hidden': 'true' }, h('span', {}, '\u22125 min'), scale, h('span', {}, 'now')));

  function update(points, endMs) {
    const start = endMs - WINDOW_MS;
    const shown = points.filter((p) => p.t >= start);
    let top = 0;
    for (const p of shown) for (const line of lines) if (p[line.key] > top) top = p[line.key];
    const max = niceCeiling(top);
    lines.forEach((line, i) => paths[i].setAttribute('d', pathOf(shown, line.key, endMs, max)));
    const last = shown[shown.length - 1];
    const said = lines.map((line, i) => {
      const text = `${line.label} ${format(last ? last[line.key] : null)}`;
      values[i].textContent = text;
      return text;
    });
    scale.textContent = `top ${format(max)}`;
    el.dataset.points = String(shown.length);
    el.dataset.last = last ? lines.map((line) => `${line.key}=${last[line.key] ?? ''}`).join(' ') : '';
    svg.setAttribute('aria-label', shown.length
      ? `${title} over the last 5 minutes: ${said.join(', ')}; scale 0 to ${format(max)}`
      : `${title}: no data yet`);
  }

  return { el, update };
}
