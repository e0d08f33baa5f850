// api.js - calls of the public API over the same origin (SPEC §5, §14).
//
// Every call carries the admin token when there is one. A 401 asks for the
// token (token.js) and tries again with the new one; cancelling ends the call
// with an ApiError 401. An answer outside 2xx becomes an ApiError carrying
// the API's own error message ({"error": {"code", "message", "field"}}).

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field || null;
  }

  // "404 not_found: no route for vHost 'x'"
  describe() {
    const code = this.code ? ` ${this.code}` : '';
    return `${this.status || 'network'}${code}: ${this.message}${this.field ? ` (field ${this.field})` : ''}`;
  }
}

async function errorOf(response) {
  let code = '';
  let message = response.statusText || `HTTP ${response.status}`;
  let field = null;
  try {
    const text = await response.text();
    try {
      const body = JSON.parse(text);
      if (body && body.error) {
        code = body.error.code || '';
        message = body.error.message || message;
        field = body.error.field || null;
      }
    } catch {
      if (text.trim()) message = text.trim().slice(0, 300);
    }
  } catch {
    // the body could not be read: the status says enough
  }
  return new ApiError(response.status, code, message, field);
}

export function createApi(token) {
  // fetch with the token; asks for one on 401 and tries again.
  async function authorized(path, init = {}) {
    let refused = false;
    for (;;) {
      const headers = new Headers(init.headers || {});
      const value = token.get();
      if (value) headers.set('Authorization', 'Bearer ' + value);
      let response;
      try {
        response = await fetch(path, { ...init, headers, cache: 'no-store', credentials: 'same-origin' });
      } catch (e) {
        if (e.name === 'AbortError') throw e;
        throw new ApiError(0, 'network', `the admin listener did not answer (${e.message})`);
      }
      if (response.status !== 401) return response;
      try {
        await response.body?.cancel();
      } catch {
        // nothing to free
      }
      // another call got a token while this one was on its way: use it
      if (token.get() && token.get() !== value) continue;
      const message = value || refused
        ? 'The token was refused. Enter the admin token (ADMIN_TOKEN).'
        : 'This Switchyard needs the admin token (ADMIN_TOKEN).';
      refused = true;
      if (value) token.forget();
      const typed = await token.ask(message);
      if (!typed) throw new ApiError(401, 'unauthorized', 'no admin token given');
    }
  }

  // A JSON call: resolves with { data, status, headers }, or throws ApiError.
  async function call(method, path, { query, body, signal } = {}) {
    const url = query ? `${path}?${new URLSearchParams(query)}` : path;
    const init = { method, signal, headers: { Accept: 'application/json' } };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers['Content-Type'] = 'application/json';
    }
    const response = await authorized(url, init);
    if (!response.ok && response.status !== 503) throw await errorOf(response);
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        throw new ApiError(response.status, 'invalid_json', `${method} ${path}: the answer is not JSON`);
      }
    }
    // /api/health answers 503 with its body when unhealthy; any other 503 is an error
    if (response.status === 503 && !(data && data.status)) {
      const e = data && data.error ? data.error : {};
      throw new ApiError(503, e.code || 'unavailable', e.message || 'unavailable', e.field);
    }
    return { data, status: response.status, headers: response.headers };
  }

  const seg = encodeURIComponent;
  return {
    authorized,
    routes: () => call('GET', '/api/v1/routes'),
    stats: () => call('GET', '/api/v1/stats'),
    health: () => call('GET', '/api/health'),
    versions: () => call('GET', '/api/v1/config/versions'),
    diff: (from, to) => call('GET', '/api/v1/config/diff', { query: { from, to } }),
    markDead: (vhost, id) => call('POST', `/api/v1/routes/${seg(vhost)}/backends/${seg(id)}/dead`),
    markAlive: (vhost, id) => call('POST', `/api/v1/routes/${seg(vhost)}/backends/${seg(id)}/alive`),
    rollback: (version) => call('POST', `/api/v1/config/rollback/${seg(String(version))}`),
  };
}
