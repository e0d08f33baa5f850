// state.js - what the page knows, and who is told when it changes.
//
// Routes and versions come from the REST API (with the configuration
// version they were read at); backend health, traffic, actors and chat from
// the event stream (docs/dashboard.md). Topics: 'routes', 'health',
// 'stats', 'actors', 'chat', 'versions', 'pending', 'expired'.

export const WINDOW_MS = 5 * 60 * 1000; // the charts' span
export const POINTS = 300; // points kept per series (one a second)

// The state of a backend as GET /routes says it. The router's isDead is
// maintenance only for now ("healthd will feed isDead..." in router/rt_route.c);
// an explicit `maintenance` field, when there is one, is believed first.
function apiState(backend) {
  if (backend.maintenance === true) return 'maintenance';
  if (backend.maintenance === false) return backend.isDead ? 'dead' : 'alive';
  return backend.isDead ? 'maintenance' : 'alive';
}

export function backendKey(routeId, backendId) {
  return `${routeId}\u001f${backendId}`;
}

export function createStore() {
  const listeners = new Map();
  const state = {
    routes: [],
    configVersion: 0, // the version routes and versions were read at
    versions: [],
    health: new Map(), // backendKey -> { state, reason, failures, since } from `backend` events
    series: new Map(), // vHost -> [{ t, rps, p50, p99, errors }]
    lastStatsAt: 0,
    totals: null, // { requests, rps, p50, p99 }
    actors: [],
    actorsAt: 0,
    chat: null, // { sessions, messages, wsConnections, rate }
    chatSeries: [],
    pending: new Map(), // backendKey -> { want, since }
    expired: [], // [{ key, want }] of the actions that waited 20 s in vain ('expired')
  };

  function emit(topic) {
    for (const fn of listeners.get(topic) || []) fn(state);
  }

  function push(list, point) {
    list.push(point);
    if (list.length > POINTS) list.splice(0, list.length - POINTS);
  }

  // The state shown for a backend: the last `backend` event, unless the
  // API says the backend entered maintenance after it.
  function backendState(route, backend) {
    const fromApi = apiState(backend);
    const event = state.health.get(backendKey(route.id || route.vHost, backend.id));
    const apiSince = typeof backend.deadSince === 'number' ? backend.deadSince : Date.parse(backend.deadSince || '');
    if (!event || (backend.isDead && apiSince > Date.parse(event.since || ''))) {
      return {
        state: fromApi,
        since: backend.isDead ? backend.deadSince : null,
        failures: backend.failureCount,
        reason: fromApi === 'maintenance' ? 'maintenance' : '',
      };
    }
    return { state: event.state, since: event.since, failures: event.failures, reason: event.reason };
  }

  // An action is awaited until the state it asked for shows, or for 20 s.
  function settlePending() {
    let changed = false;
    state.expired = [];
    for (const [key, p] of state.pending) {
      if (Date.now() - p.since > 20000) {
        state.pending.delete(key);
        state.expired.push({ key, want: p.want });
        changed = true;
      }
    }
    if (state.expired.length) emit('expired');
    for (const route of state.routes) {
      for (const backend of route.backends || []) {
        const key = backendKey(route.id || route.vHost, backend.id);
        const p = state.pending.get(key);
        if (!p) continue;
        const now = backendState(route, backend).state;
        if (p.want === 'alive' ? now === 'alive' : now !== 'alive') {
          state.pending.delete(key);
          changed = true;
        }
      }
    }
    if (changed) emit('pending');
  }

  return {
    state,
    on(topic, fn) {
      if (!listeners.has(topic)) listeners.set(topic, []);
      listeners.get(topic).push(fn);
    },
    backendState,

    setRoutes(routes, version) {
      state.routes = Array.isArray(routes) ? routes : [];
      if (version > state.configVersion) state.configVersion = version;
      emit('routes');
      settlePending();
    },
    setVersions(versions, version) {
      state.versions = Array.isArray(versions) ? versions : [];
      const newest = state.versions.length ? Number(state.versions[0].version) || 0 : 0;
      state.configVersion = Math.max(state.configVersion, version || 0, newest);
      emit('versions');
    },
    // A `config` event: true when it is newer than what was read (reload).
    configChanged(version) {
      return typeof version === 'number' && version > state.configVersion;
    },

    applyBackend(e) {
      if (!e || typeof e.route !== 'string' || typeof e.backend !== 'string') return;
      state.health.set(backendKey(e.route, e.backend), {
        state: e.state,
        reason: e.reason || '',
        failures: e.failures,
        since: e.since || null,
      });
      emit('health');
      settlePending();
    },

    applyStats(e) {
      if (!e || typeof e.at !== 'number' || e.at <= state.lastStatsAt) return;
      const previous = state.chat;
      const dt = state.lastStatsAt ? (e.at - state.lastStatsAt) / 1000 : 0;
      state.lastStatsAt = e.at;
      state.totals = { requests: e.requests, rps: e.rps };
      for (const r of Array.isArray(e.routes) ? e.routes : []) {
        if (typeof r.vHost !== 'string') continue;
        if (!state.series.has(r.vHost)) state.series.set(r.vHost, []);
        push(state.series.get(r.vHost), {
          t: e.at,
          rps: r.rps,
          p50: r.p50 ?? null,
          p99: r.p99 ?? null,
          requests: r.requests,
          errors: r.errors || null,
        });
      }
      if (e.chat) {
        let rate = null;
        if (previous && dt > 0 && typeof e.chat.messages === 'number') {
          rate = Math.max(0, e.chat.messages - previous.messages) / dt; // a chatd restart counts from 0
        }
        state.chat = { ...e.chat, rate };
        push(state.chatSeries, { t: e.at, rate: rate ?? 0, sessions: e.chat.sessions });
        emit('chat');
      }
      emit('stats');
    },
    // GET /api/v1/stats before the first `stats` event
    setTotals(stats) {
      if (state.lastStatsAt || !stats) return;
      state.totals = { requests: stats.requests, rps: stats.rps };
      emit('stats');
    },

    // `actors` events and GET /api/health say the same in two shapes
    setActors(instances, at) {
      state.actors = (Array.isArray(instances) ? instances : []).map((i) => ({
        kind: i.kind,
        instance: i.instance || i.endpoint || '',
        region: i.region ?? '',
        pid: i.pid,
        version: i.version,
        up: typeof i.up === 'boolean' ? i.up : i.status === 'up',
        rttMs: i.rttMs,
        uptimeS: typeof i.uptimeS === 'number' ? i.uptimeS : typeof i.uptimeMs === 'number' ? i.uptimeMs / 1000 : null,
        cpu: i.cpu,
        rssBytes: i.rssBytes,
      }));
      state.actorsAt = at || Date.now();
      emit('actors');
    },

    setPending(key, want) {
      if (want) state.pending.set(key, { want, since: Date.now() });
      else state.pending.delete(key);
      emit('pending');
    },
    settlePending,
  };
}
