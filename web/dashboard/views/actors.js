// views/actors.js - every actor instance: kind, region, up or down, round
// trip, CPU, RSS, uptime (GET /api/health at load, then `actors` events
// every 5 s). Rows: tr.actor[data-kind][data-instance][data-up].

import { h, render } from '../dom.js';
import * as fmt from '../format.js';

export function createActorsView({ el, store }) {
  function row(a) {
    return h('tr', { class: 'actor', dataset: { kind: a.kind, instance: a.instance, up: String(a.up) } },
      h('th', { scope: 'row', 'data-label': 'Instance' },
        h('span', { class: 'id' }, a.instance || '\u2014'),
        h('span', { class: 'address' }, [a.pid ? `pid ${a.pid}` : '', a.version ? `v${a.version}` : ''].filter(Boolean).join(' \u00b7 '))),
      h('td', { 'data-label': 'Kind' }, a.kind),
      h('td', { 'data-label': 'Region' }, a.region || '\u2014'),
      h('td', { 'data-label': 'State' }, h('span', { class: `badge ${a.up ? 'alive' : 'dead'}` }, a.up ? 'up' : 'down')),
      h('td', { 'data-label': 'Round trip', class: 'n' }, fmt.ms(a.rttMs)),
      h('td', { 'data-label': 'CPU', class: 'n' }, fmt.cpu(a.cpu)),
      h('td', { 'data-label': 'RSS', class: 'n' }, fmt.bytes(a.rssBytes)),
      h('td', { 'data-label': 'Uptime', class: 'n' }, fmt.duration(a.uptimeS)));
  }

  function draw() {
    const actors = [...store.state.actors].sort((a, b) =>
      String(a.kind).localeCompare(String(b.kind)) || String(a.instance).localeCompare(String(b.instance)));
    if (actors.length === 0) {
      render(el, h('p', { class: 'empty' }, 'No instance heard of yet.'));
      return;
    }
    const up = actors.filter((a) => a.up).length;
    const at = new Date(store.state.actorsAt);
    render(el,
      h('p', { class: 'summary' }, `${actors.length} instances, ${up} up \u00b7 as of `,
        h('time', { datetime: at.toISOString(), title: fmt.stamp(at), dataset: { ago: '' } }, fmt.ago(at))),
      h('div', { class: 'scroll' }, h('table', { class: 'actors' },
        h('caption', { class: 'sr-only' }, 'Actor instances'),
        h('thead', {}, h('tr', {},
          ['Instance', 'Kind', 'Region', 'State', 'Round trip', 'CPU', 'RSS', 'Uptime'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, actors.map(row)))));
  }

  store.on('actors', draw);
  return { draw };
}
