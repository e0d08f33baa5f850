// sse.js - a Server-Sent Events parser (the WHATWG "event stream
// interpretation"), fed with text as it arrives: the page reads the stream
// with fetch() because EventSource cannot send an Authorization header.
//
//   const p = new SseParser({ event(e) {}, comment(text) {}, retry(ms) {} });
//   p.push(chunk); ...   // e = { type, data, id }
//
// Lines end with CRLF, LF or CR; "field: value" (one space after the colon
// dropped), ":" starts a comment, a blank line dispatches the event. An
// event without data is not dispatched. `id` is remembered across events
// (lastEventId, sent back as Last-Event-ID on a reconnect); an id holding
// NUL is ignored. `retry` takes digits only.

export class SseParser {
  constructor(handlers = {}) {
    this.handlers = handlers;
    this.buffer = '';
    this.lastEventId = '';
    this.type = '';
    this.data = [];
    this.hasData = false;
  }

  push(text) {
    this.buffer += text;
    let start = 0;
    for (;;) {
      const cr = this.buffer.indexOf('\r', start);
      const lf = this.buffer.indexOf('\n', start);
      if (cr < 0 && lf < 0) break;
      let end;
      let next;
      if (cr >= 0 && (lf < 0 || cr < lf)) {
        // a CR at the very end may be the first half of a CRLF: wait for more
        if (cr === this.buffer.length - 1) break;
        end = cr;
        next = this.buffer[cr + 1] === '\n' ? cr + 2 : cr + 1;
      } else {
        end = lf;
        next = lf + 1;
      }
      this.line(this.buffer.slice(start, end));
      start = next;
    }
    this.buffer = this.buffer.slice(start);
  }

  line(line) {
    if (line === '') {
      this.dispatch();
      return;
    }
    if (line[0] === ':') {
      this.handlers.comment?.(line.slice(1).replace(/^ /, ''));
      return;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value[0] === ' ') value = value.slice(1);
    if (field === 'event') this.type = value;
    else if (field === 'data') {
      this.data.push(value);
      this.hasData = true;
    } else if (field === 'id') {
      if (!value.includes('\0')) this.lastEventId = value;
    } else if (field === 'retry') {
      if (/^[0-9]+$/.test(value)) this.handlers.retry?.(Number(value));
    }
  }

  dispatch() {
    const type = this.type || 'message';
    const data = this.data.join('\n');
    const had = this.hasData;
    this.type = '';
    this.data = [];
    this.hasData = false;
    if (had) this.handlers.event?.({ type, data, id: this.lastEventId });
  }
}
