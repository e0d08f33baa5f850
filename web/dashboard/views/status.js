// views/status.js - the header: the event stream's state, the fleet's
// totals, and the notices (a failed call's error, what an action is
// waiting for). Notices stay until dismissed; errors are announced at once.

import { h } from '../dom.js';
import * as fmt from '../format.js';

const STREAM_TEXT = {
  connecting: 'connecting\u2026',
  live: 'live',
  reconnecting: 'reconnecting',
  stopped: 'not connected',
};

export function createStatus({ stream, streamText, totals, notices }) {
  let serial = 0;

  function setStream(state, detail = {}) {
    stream.dataset.state = state;
    let text = STREAM_TEXT[state] || state;
    if (state === 'reconnecting' && detail.inMs) text += ` in ${Math.ceil(detail.inMs / 1000)} s`;
    streamText.textContent = text;
    stream.title = detail.reason ? `${text}: ${detail.reason}` : text;
  }

  function setTotals(t) {
    totals.textContent = t ? `${fmt.num(t.requests)} requests \u00b7 ${fmt.rate(t.rps)}` : '';
  }

  // kind: 'error' or 'info'. Returns the notice's id.
  function notify(kind, text) {
    const id = `notice-${++serial}`;
    const close = h('button', { type: 'button', class: 'dismiss', 'aria-label': 'Dismiss this message' }, '\u00d7');
    const li = h('li', { id, class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' },
      h('span', { class: 'text' }, text), close);
    close.addEventListener('click', () => li.remove());
    notices.prepend(li);
    while (notices.children.length > 6) notices.lastElementChild.remove();
    return id;
  }

  return { setStream, setTotals, notify };
}
