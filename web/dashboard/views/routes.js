// views/routes.js - every route with its backends and their health (alive /
// dead / maintenance, since when, failures, latency), and per route two
// charts over the last 5 minutes: requests/s, and p50/p99 latency.
//
// Markup the tests rely on: article.route[data-vhost][data-route-id];
// tr.backend[data-backend][data-state]; button[data-action="dead"|"alive"]
// (aria-disabled while the change is awaited); figure.chart[data-chart].

import { createChart } from '../chart.js';
import { h, render } from '../dom.js';
import * as fmt from '../format.js';
import { backendKey } from '../state.js';

const STATE_LABEL = { alive: 'alive', dead: 'dead', maintenance: 'maintenance' };

export function createRoutesView({ el, store, onAction }) {
  const cards = new Map(); // vHost -> { rps, latency, figures } kept across renders

  function cardParts(vhost) {
    if (!cards.has(vhost)) {
      cards.set(vhost, {
        rps: createChart({ title: 'Requests/s', lines: [{ key: 'rps', label: 'now' }], format: fmt.rate }),
        latency: createChart({
          title: 'Latency',
          lines: [{ key: 'p50', label: 'p50' }, { key: 'p99', label: 'p99' }],
          format: fmt.ms,
        }),
        figures: h('p', { class: 'figures' }),
      });
    }
    return cards.get(vhost);
  }

  function backendRow(route, backend) {
    const routeId = route.id || route.vHost;
    const key = backendKey(routeId, backend.id);
    const health = store.backendState(route, backend);
    const pending = store.state.pending.get(key);
    const since = fmt.toDate(health.since);
    const wantAlive = health.state === 'maintenance';
    const action = wantAlive ? 'alive' : 'dead';
    const label = pending
      ? (pending.want === 'alive' ? 'Marking alive\u2026' : 'Marking dead\u2026')
      : (wantAlive ? 'Mark alive' : 'Mark dead');
    const button = h('button', {
      type: 'button',
      class: `action ${action}`,
      dataset: { action, focusKey: `action:${key}` },
      'aria-disabled': pending ? 'true' : null,
      'aria-label': `${label} ${backend.id} of ${route.vHost}`,
      onclick: () => {
        if (!store.state.pending.has(key)) onAction(route, backend, action);
      },
    }, label);
    const reason = health.reason && health.reason !== health.state ? health.reason : '';
    return h('tr', { class: 'backend', dataset: { backend: backend.id, state: health.state } },
      h('th', { scope: 'row', 'data-label': 'Backend' },
        h('span', { class: 'id' }, backend.id),
        h('span', { class: 'address' }, `${backend.hostname}:${backend.port}`)),
      h('td', { 'data-label': 'Region' }, backend.region ?? '\u2014'),
      h('td', { 'data-label': 'State' },
        h('span', { class: `badge ${health.state}` }, STATE_LABEL[health.state] || health.state),
        reason ? h('span', { class: 'reason' }, reason) : null),
      h('td', { 'data-label': 'Since' }, since
        ? h('time', { datetime: since.toISOString(), title: fmt.stamp(since), dataset: { ago: '' } }, fmt.ago(since))
        : '\u2014'),
      h('td', { 'data-label': 'Failures', class: 'n' }, fmt.num(health.failures)),
      h('td', { 'data-label': 'Latency', class: 'n' }, fmt.ms(backend.latencyMs)),
      h('td', { class: 'act' }, button));
  }

  function card(route) {
    const parts = cardParts(route.vHost);
    const backends = route.backends || [];
    const routeId = route.id || route.vHost;
    return h('article', { class: 'route', dataset: { vhost: route.vHost, routeId } },
      h('header', {},
        h('h3', {}, route.vHost),
        h('p', { class: 'meta' },
          routeId !== route.vHost ? `id ${routeId} \u00b7 ` : '',
          `${route.strategy || 'ROUND_ROBIN'} \u00b7 ${backends.length} backend${backends.length === 1 ? '' : 's'}`),
        parts.figures),
      h('div', { class: 'charts' }, parts.rps.el, parts.latency.el),
      backends.length === 0
        ? h('p', { class: 'empty' }, 'No backends.')
        : h('table', { class: 'backends' },
          h('caption', { class: 'sr-only' }, `Backends of ${route.vHost}`),
          h('thead', {}, h('tr', {},
            ['Backend', 'Region', 'State', 'Since', 'Failures', 'Latency'].map((t) => h('th', { scope: 'col' }, t)),
            h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Action')))),
          h('tbody', {}, backends.map((b) => backendRow(route, b)))));
  }

  function draw() {
    const routes = [...store.state.routes].sort((a, b) => String(a.vHost).localeCompare(String(b.vHost)));
    render(el, routes.length ? routes.map(card) : h('p', { class: 'empty' }, 'No routes yet.'));
    updateCharts();
  }

  function updateCharts() {
    const end = store.state.lastStatsAt || Date.now();
    for (const route of store.state.routes) {
      const parts = cardParts(route.vHost);
      const points = store.state.series.get(route.vHost) || [];
      parts.rps.update(points, end);
      parts.latency.update(points, end);
      const last = points[points.length - 1];
      const errors = last && last.errors ? ` \u00b7 4xx ${fmt.num(last.errors['4xx'])} \u00b7 5xx ${fmt.num(last.errors['5xx'])}` : '';
      parts.figures.textContent = last
        ? `${fmt.rate(last.rps)} \u00b7 p50 ${fmt.ms(last.p50)} \u00b7 p99 ${fmt.ms(last.p99)} \u00b7 ${fmt.num(last.requests)} requests${errors}`
        : 'no traffic figures yet';
    }
  }

  for (const topic of ['routes', 'health', 'pending']) store.on(topic, draw);
  store.on('stats', updateCharts);
  return { draw };
}
