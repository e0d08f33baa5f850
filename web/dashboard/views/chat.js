// views/chat.js - chat sessions, WebSocket connections and messages/s (from
// the `stats` events: messages/s is the change of the message count between
// two events), with a chart of messages/s over the last 5 minutes.

import { createChart } from '../chart.js';
import { h, render } from '../dom.js';
import * as fmt from '../format.js';

export function createChatView({ el, store }) {
  const chart = createChart({ title: 'Messages/s', lines: [{ key: 'rate', label: 'now' }], format: fmt.rate });
  const figures = h('dl', { class: 'figures-list' });
  render(el, figures, chart.el);

  function figure(label, value, key) {
    return [h('dt', {}, label), h('dd', { dataset: { figure: key } }, value)];
  }

  function draw() {
    const c = store.state.chat;
    render(figures,
      figure('Sessions', c ? fmt.num(c.sessions) : '\u2014', 'sessions'),
      figure('WebSocket connections', c ? fmt.num(c.wsConnections) : '\u2014', 'ws'),
      figure('Messages', c ? fmt.num(c.messages) : '\u2014', 'messages'),
      figure('Messages/s', c ? fmt.rate(c.rate) : '\u2014', 'rate'));
    chart.update(store.state.chatSeries, store.state.lastStatsAt || Date.now());
  }

  store.on('chat', draw);
  draw();
  return { draw };
}
