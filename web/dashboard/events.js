// events.js - the event stream GET /api/v1/events (docs/dashboard.md), read
// with fetch() and a ReadableStream reader, so that the admin token goes in
// the Authorization header (EventSource cannot send one) and never in a URL.
//
//   const stream = createStream({ api, onEvent, onOpen, onState });
//   stream.start();
//
// onEvent(type, data, id): data parsed from JSON (null when it is not JSON).
// onOpen({ resumed }): a stream is open; resumed when Last-Event-ID was sent
//   (the server then replays what was missed, or sends `reset`).
// onState(state, detail): 'connecting', 'live', 'reconnecting' (detail.inMs,
//   detail.reason) or 'stopped' (detail.reason: no token given).
//
// After a drop it reconnects with the last id seen as Last-Event-ID, waiting
// the server's `retry:` (2 s) doubled at each failure up to 30 s, with
// jitter. A stream silent for 45 s (the server sends a heartbeat every 15 s)
// is taken as dead and opened again.

import { SseParser } from './sse.js';

const PATH = '/api/v1/events';
const SILENCE_MS = 45000;
const MAX_DELAY_MS = 30000;

export function createStream({ api, onEvent, onOpen, onState }) {
  let retryMs = 2000;
  let failures = 0;
  let lastEventId = '';
  let controller = null;
  let abortWhy = ''; // why the current stream was aborted
  let running = false;
  let wake = null; // resolves the wait before a reconnect (reconnect now)

  function sleep(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    }).finally(() => {
      wake = null;
    });
  }

  async function readAll(response, parser, abort) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const silent = () => abort('no data for 45 s');
    let timer = setTimeout(silent, SILENCE_MS);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        clearTimeout(timer);
        timer = setTimeout(silent, SILENCE_MS);
        parser.push(decoder.decode(value, { stream: true }));
      }
    } finally {
      clearTimeout(timer);
    }
  }

  async function once() {
    controller = new AbortController();
    const mine = controller;
    const abort = (why) => {
      abortWhy = why;
      mine.abort();
    };
    const headers = { Accept: 'text/event-stream' };
    const resumed = lastEventId !== '';
    if (resumed) headers['Last-Event-ID'] = lastEventId;
    const response = await api.authorized(PATH, { headers, signal: controller.signal });
    const type = response.headers.get('content-type') || '';
    if (!response.ok || !type.startsWith('text/event-stream')) {
      try {
        await response.body?.cancel();
      } catch {
        // nothing to free
      }
      throw new Error(`GET ${PATH} answered ${response.status}${response.ok ? ' (not an event stream)' : ''}`);
    }
    const parser = new SseParser({
      retry(ms) {
        retryMs = Math.min(Math.max(ms, 500), MAX_DELAY_MS);
      },
      event(e) {
        lastEventId = e.id;
        failures = 0; // the stream works: a later drop starts again from retry
        let data = null;
        try {
          data = JSON.parse(e.data);
        } catch {
          // not JSON: passed on as null
        }
        onEvent(e.type, data, e.id);
      },
    });
    onState('live', {});
    onOpen({ resumed });
    await readAll(response, parser, abort);
    throw new Error('the stream ended');
  }

  async function run() {
    onState('connecting', {});
    while (running) {
      let reason;
      try {
        await once();
      } catch (e) {
        if (e && e.status === 401) {
          running = false;
          onState('stopped', { reason: 'no admin token: the stream is closed' });
          return;
        }
        reason = e && e.name === 'AbortError' ? abortWhy : (e && (e.describe?.() || e.message)) || 'dropped';
      }
      if (!running) return;
      const delay = Math.min(retryMs * 2 ** failures, MAX_DELAY_MS) * (0.75 + Math.random() * 0.25);
      failures = Math.min(failures + 1, 10);
      onState('reconnecting', { inMs: Math.round(delay), reason });
      await sleep(delay);
    }
  }

  return {
    start() {
      if (running) return;
      running = true;
      run();
    },
    // try again now (after a token was given, or by hand)
    reconnect() {
      if (!running) {
        this.start();
        return;
      }
      if (wake) wake();
      else if (controller) {
        abortWhy = 'reconnecting on request';
        controller.abort();
      }
    },
    get lastEventId() {
      return lastEventId;
    },
  };
}
