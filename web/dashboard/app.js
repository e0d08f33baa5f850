// app.js - the dashboard (SPEC §14, docs/dashboard.md): wires the event
// stream, the REST reads, the views and the two actions.
//
// Order of things: the stream is opened first, then the state is read
// through the REST API; events newer than what was read are applied (a
// `config` event for a version already read is ignored, a newer one reads
// routes and versions again). A `reset`, or a new stream opened without
// Last-Event-ID, reads everything again. While the stream is down the page
// reads the API every 10 s instead.
//
// Actions never assume success: the call is made, a failure shows the API's
// message, and the new state shows when the stream (or a read) says so.

import { createApi } from './api.js';
import { createConfirm, trapFocus } from './confirm.js';
import { createStream } from './events.js';
import * as fmt from './format.js';
import { backendKey, createStore } from './state.js';
import { createToken } from './token.js';
import { createActorsView } from './views/actors.js';
import { createChatView } from './views/chat.js';
import { createConfigView } from './views/config.js';
import { createRoutesView } from './views/routes.js';
import { createStatus } from './views/status.js';

const $ = (id) => document.getElementById(id);
const POLL_MS = 10000;
const FIRST_WAIT_MS = 3000;

const token = createToken({
  dialog: $('token-dialog'), form: $('token-form'), input: $('token-input'), why: $('token-why'), cancel: $('token-cancel'),
});
trapFocus($('token-dialog'));
const api = createApi(token);
const store = createStore();
const status = createStatus({ stream: $('stream'), streamText: $('stream-text'), totals: $('totals'), notices: $('notices') });
const confirm = createConfirm({
  dialog: $('confirm'), title: $('confirm-title'), message: $('confirm-message'), ok: $('confirm-ok'), cancel: $('confirm-cancel'),
});

// ------------------------------------------------------------------ reads

const lastError = new Map(); // what -> message, so that a failing read is said once

function failed(what, e) {
  const text = `Reading ${what} failed: ${e.describe ? e.describe() : e.message}`;
  if (lastError.get(what) !== text) status.notify('error', text);
  lastError.set(what, text);
}

async function read(what, fn) {
  try {
    await fn();
    lastError.delete(what);
  } catch (e) {
    failed(what, e);
  }
}

const readRoutes = () => read('routes', async () => {
  const r = await api.routes();
  store.setRoutes(r.data, Number(r.headers.get('x-config-version')) || 0);
});
const readVersions = () => read('configuration versions', async () => {
  const r = await api.versions();
  store.setVersions(r.data, Number(r.headers.get('x-config-version')) || 0);
});
const readActors = () => read('actor instances', async () => {
  const r = await api.health();
  store.setActors(r.data && r.data.instances, Date.now());
});
const readTotals = () => read('stats', async () => {
  store.setTotals((await api.stats()).data);
});

// Reads that overlap are merged: one more round runs after the current one.
function serial(fn) {
  let running = null;
  let again = false;
  return function run() {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        await fn();
      } while (again);
    })().finally(() => {
      running = null;
    });
    return running;
  };
}

const readAll = serial(() => Promise.all([readRoutes(), readVersions(), readActors(), readTotals()]));
const readConfig = serial(() => Promise.all([readRoutes(), readVersions()]));
let configTimer = null;
function configLater() {
  clearTimeout(configTimer);
  configTimer = setTimeout(readConfig, 100);
}

// ------------------------------------------------------------------ views

createRoutesView({ el: $('routes'), store, onAction: backendAction });
createActorsView({ el: $('actors'), store });
createChatView({ el: $('chat'), store });
const configView = createConfigView({
  el: $('config'), store, loadDiff: async (a, b) => (await api.diff(a, b)).data, onRollback: rollback,
});
store.on('stats', (s) => status.setTotals(s.totals));

// ------------------------------------------------------------------ actions

async function backendAction(route, backend, action) {
  const label = action === 'dead' ? 'Mark dead' : 'Mark alive';
  const yes = await confirm.ask({
    title: `${label}: ${backend.id}?`,
    message: action === 'dead'
      ? `Backend ${backend.id} (${backend.hostname}:${backend.port}) of ${route.vHost} gets no traffic until it is marked alive again (maintenance).`
      : `Backend ${backend.id} (${backend.hostname}:${backend.port}) of ${route.vHost} leaves maintenance: it gets traffic again once a health check passes.`,
    action: label,
  });
  if (!yes) return;
  const key = backendKey(route.id || route.vHost, backend.id);
  store.setPending(key, action === 'dead' ? 'maintenance' : 'alive');
  try {
    await (action === 'dead' ? api.markDead(route.vHost, backend.id) : api.markAlive(route.vHost, backend.id));
    configLater();
  } catch (e) {
    store.setPending(key, null);
    status.notify('error', `${label} ${backend.id} of ${route.vHost} failed: ${e.describe ? e.describe() : e.message}`);
  }
}

store.on('expired', (s) => {
  for (const { key, want } of s.expired) {
    const [route, backend] = key.split('\u001f');
    status.notify('error', `No ${want} state seen for ${backend} of route ${route} within 20 s of the call.`);
  }
});

let rollingBack = null; // { version, before }: shows the new version's diff when it appears

async function rollback(version) {
  const yes = await confirm.ask({
    title: `Roll back to version ${version}?`,
    message: `The configuration of version ${version} (routes, backends, certificates, regions) becomes current again, as a new version. Every gateway follows within a second.`,
    action: `Roll back to v${version}`,
  });
  if (!yes) return;
  rollingBack = { version, before: Number(store.state.versions[0]?.version) || store.state.configVersion };
  try {
    await api.rollback(version);
    configLater();
  } catch (e) {
    rollingBack = null;
    status.notify('error', `Roll back to version ${version} failed: ${e.describe ? e.describe() : e.message}`);
  }
}

store.on('versions', (s) => {
  const newest = Number(s.versions[0]?.version);
  if (!rollingBack || !(newest > rollingBack.before)) return;
  status.notify('info', `Version ${newest} is current: the configuration of version ${rollingBack.version} again.`);
  rollingBack = null;
  configView.showDiff(newest - 1, newest);
});

// ------------------------------------------------------------------ the stream

let streamState = 'connecting';
let opened = false;
let firstDone;
const first = new Promise((resolve) => {
  firstDone = resolve;
});

const stream = createStream({
  api,
  onState(state, detail) {
    streamState = state;
    status.setStream(state, detail);
    if (state !== 'connecting' && state !== 'live') firstDone();
  },
  onOpen({ resumed }) {
    if (!opened) {
      opened = true;
      firstDone();
    } else if (!resumed) {
      readAll(); // nothing can be replayed without an id: read it all again
    }
  },
  onEvent(type, data) {
    if (type === 'config') {
      if (data && store.configChanged(data.version)) configLater();
    } else if (type === 'backend') {
      store.applyBackend(data);
    } else if (type === 'stats') {
      store.applyStats(data);
    } else if (type === 'actors') {
      if (data) store.setActors(data.instances, data.at);
    } else if (type === 'reset') {
      readAll();
    }
  },
});

$('token-button').addEventListener('click', async () => {
  const typed = await token.ask('Enter the admin token (ADMIN_TOKEN). It is kept for this tab only.');
  if (!typed) return;
  stream.reconnect();
  readAll();
});

// relative times, and actions waiting too long
setInterval(() => {
  const now = Date.now();
  for (const t of document.querySelectorAll('time[data-ago]')) t.textContent = fmt.ago(fmt.toDate(t.dateTime), now);
  store.settlePending();
}, 5000);

setInterval(() => {
  if (streamState !== 'live') readAll();
}, POLL_MS);

stream.start();
await Promise.race([first, new Promise((resolve) => setTimeout(resolve, FIRST_WAIT_MS))]);
await readAll();
document.body.dataset.loaded = 'true';
