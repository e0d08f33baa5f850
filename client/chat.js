// chat.js - the chat page's behaviour (see the comment at the top of index.html).
// Plain browser JavaScript, no build step. Network text goes in with textContent only.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const TYPING_EVERY_MS = 2000; // typing:start at most this often
  const TYPING_IDLE_MS = 3000; // typing:stop after this long without a key
  const TYPING_SHOWN_MS = 5000; // someone else's typing shown at most this long

  let ws = null; // the open (or opening) WebSocket
  let closing = false; // the user asked to disconnect
  let me = ''; // the user id of the session
  let counter = 0; // for message ids without crypto.randomUUID
  let typingTo = null; // {to} or {room} of the typing:start sent, or null
  let typingSentAt = 0;
  let typingIdle = 0;
  const pending = new Map(); // message id -> own message element awaiting its ack
  const typers = new Map(); // user id -> timer clearing their "typing"
  const joined = new Set(); // rooms joined in this session

  // The default server: the /chat of the host the page came from (none from a file).
  if (location.protocol === 'http:' || location.protocol === 'https:') {
    $('server').value = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/chat';
  }

  function newId() {
    if (window.crypto && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
    counter += 1;
    return Date.now().toString(36) + '-' + counter + '-' + Math.random().toString(36).slice(2, 10);
  }

  function setState(text) {
    $('state').textContent = text;
  }

  function connected() {
    return ws !== null && ws.readyState === WebSocket.OPEN;
  }

  function send(frame) {
    if (!connected()) {
      showError('not_connected', 'connect first');
      return false;
    }
    ws.send(JSON.stringify(frame));
    return true;
  }

  // Where a message (or typing) goes: {to: user} or {room: room}, from the form.
  function destination() {
    if ($('send-to').value === 'room') return { room: $('room').value.trim() };
    return { to: $('target').value.trim() };
  }

  function setIdentityDisabled(disabled) {
    for (const id of ['server', 'user', 'region', 'token']) $(id).disabled = disabled;
  }

  function renderJoined() {
    $('joined').textContent = joined.size ? Array.from(joined).join(', ') : 'none';
  }

  // ------------------------------------------------------------------ connection

  function connect() {
    const server = $('server').value.trim();
    const user = $('user').value.trim();
    if (!server || !user) {
      setState(!server ? 'disconnected: type a server URL (ws://host/chat)' : 'disconnected: type a user');
      return;
    }
    let url = server + (server.includes('?') ? '&' : '?') + 'userId=' + encodeURIComponent(user) +
      '&region=' + encodeURIComponent($('region').value.trim());
    const token = $('token').value.trim();
    if (token) url += '&token=' + encodeURIComponent(token);
    let socket;
    try {
      socket = new WebSocket(url);
    } catch (e) {
      setState('disconnected: ' + e.message);
      return;
    }
    ws = socket;
    me = user;
    closing = false;
    setState('connecting');
    setIdentityDisabled(true);
    $('connect').textContent = 'Disconnect';
    socket.onopen = () => {
      if (socket !== ws) return;
      setState('connected as ' + me + ' (region ' + $('region').value.trim() + ')');
      if ($('status').value !== 'online') send({ type: 'presence:update', status: $('status').value });
    };
    socket.onmessage = (ev) => {
      if (socket === ws) receive(ev.data);
    };
    socket.onclose = (ev) => {
      if (socket !== ws) return;
      ws = null;
      setState(closing ? 'disconnected'
        : 'closed: ' + ev.code + (ev.reason ? ' ' + ev.reason : ''));
      setIdentityDisabled(false);
      $('connect').textContent = 'Connect';
      joined.clear();
      renderJoined();
      stopTyping(false);
    };
  }

  function disconnect() {
    closing = true;
    stopTyping(true);
    ws.close(1000, 'bye');
  }

  $('connect-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (ws) disconnect();
    else connect();
  });

  // ------------------------------------------------------------------ frames in

  function receive(data) {
    let f;
    try {
      f = JSON.parse(data);
    } catch (e) {
      f = null;
    }
    if (f === null || typeof f !== 'object') {
      showError('bad_json', 'the server sent something that is not a JSON object');
      return;
    }
    switch (f.type) {
      case 'message:received': return showMessage(f);
      case 'ack': return acked(f.id);
      case 'typing': return showTyping(f);
      case 'presence:updated': return showPresence(f);
      case 'error': return onError(f);
      default: return undefined; // a frame type this page does not know: ignored
    }
  }

  function messageItem(from, id, where, text, ts) {
    const li = document.createElement('li');
    li.dataset.from = from;
    li.dataset.id = id || '';
    const meta = document.createElement('span');
    meta.className = 'meta';
    const time = new Date(typeof ts === 'number' ? ts : Date.now()).toLocaleTimeString();
    meta.textContent = time + ' ' + from + where;
    const body = document.createElement('span');
    body.className = 'text';
    body.textContent = text;
    li.append(meta, body);
    const list = $('messages');
    list.append(li);
    list.scrollTop = list.scrollHeight;
    return li;
  }

  function showMessage(f) {
    const from = String(f.from || '');
    const id = f.id === undefined ? '' : String(f.id);
    // the same message twice (a replayed inbox entry): shown once
    if (id && Array.from($('messages').children).some((li) => !li.classList.contains('mine') &&
        li.dataset.from === from && li.dataset.id === id)) return;
    const li = messageItem(from, id, f.room ? ' in ' + f.room : '', String(f.text || ''), f.ts);
    if (f.room) li.dataset.room = String(f.room);
    clearTyper(from);
  }

  function acked(id) {
    const li = pending.get(id);
    if (!li) return;
    pending.delete(id);
    li.classList.add('acked');
  }

  function showTyping(f) {
    const from = String(f.from || '');
    if (f.state === 'start') {
      clearTimeout(typers.get(from));
      typers.set(from, setTimeout(() => clearTyper(from), TYPING_SHOWN_MS));
    } else {
      clearTyper(from);
      return;
    }
    renderTyping();
  }

  function clearTyper(from) {
    if (!typers.has(from)) return;
    clearTimeout(typers.get(from));
    typers.delete(from);
    renderTyping();
  }

  function renderTyping() {
    const names = Array.from(typers.keys());
    $('typing').textContent = names.length === 0 ? ''
      : names.join(', ') + (names.length === 1 ? ' is typing\u2026' : ' are typing\u2026');
  }

  function showPresence(f) {
    const user = String(f.userId || '');
    const status = String(f.status || '');
    let li = Array.from($('presence').children).find((x) => x.dataset.user === user);
    if (!li) {
      li = document.createElement('li');
      li.dataset.user = user;
      $('presence').append(li);
    }
    li.dataset.status = status;
    li.textContent = user + ': ' + status;
  }

  function showError(code, message) {
    const out = $('errors');
    out.dataset.code = code;
    out.textContent = code + ': ' + message;
  }

  function onError(f) {
    showError(String(f.code || ''), String(f.message || ''));
    const li = f.id !== undefined && pending.get(String(f.id));
    if (li) {
      pending.delete(String(f.id));
      li.classList.add('failed');
    }
  }

  // ------------------------------------------------------------------ frames out

  $('compose').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = $('text').value;
    if (!text) return;
    const dest = destination();
    const id = newId();
    if (!send(Object.assign({ type: 'message:send' }, dest, { text: text, id: id }))) return;
    stopTyping(true);
    const where = dest.room !== undefined ? ' in ' + dest.room : ' to ' + dest.to;
    const li = messageItem(me, id, where, text, Date.now());
    li.classList.add('mine');
    pending.set(id, li);
    $('text').value = '';
  });

  // typing:start when the user types (at most once per 2 s), typing:stop after 3 s idle
  $('text').addEventListener('input', () => {
    if (!connected()) return;
    if (!$('text').value) {
      stopTyping(true); // the box emptied: no longer typing
      return;
    }
    const now = Date.now();
    const dest = destination();
    if (!(dest.to || dest.room)) return; // nobody to tell yet
    if (typingTo === null || now - typingSentAt >= TYPING_EVERY_MS) {
      typingTo = dest;
      typingSentAt = now;
      send(Object.assign({ type: 'typing:start' }, typingTo));
    }
    clearTimeout(typingIdle);
    typingIdle = setTimeout(() => stopTyping(true), TYPING_IDLE_MS);
  });

  function stopTyping(tell) {
    clearTimeout(typingIdle);
    if (typingTo !== null && tell && connected()) send(Object.assign({ type: 'typing:stop' }, typingTo));
    typingTo = null;
  }

  $('join').addEventListener('click', () => {
    const room = $('room').value.trim();
    if (room && send({ type: 'join:room', room: room })) {
      joined.add(room);
      renderJoined();
    }
  });

  $('leave').addEventListener('click', () => {
    const room = $('room').value.trim();
    if (room && send({ type: 'leave:room', room: room })) {
      joined.delete(room);
      renderJoined();
    }
  });

  $('status').addEventListener('change', () => {
    if (connected()) send({ type: 'presence:update', status: $('status').value });
  });
})();
