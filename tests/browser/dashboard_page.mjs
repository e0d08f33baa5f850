// dashboard_page.mjs - the dashboard (web/dashboard/, SPEC §14) in a real
// Chromium against a running stack with ADMIN_TOKEN set.
//
// Usage: ADMIN_TOKEN=... node dashboard_page.mjs <admin URL> <output dir>
//   e.g. node dashboard_page.mjs http://127.0.0.1:9000 /tmp/out
// Started by tests/e2e/test_dashboard_page.py, which starts the stack and
// does what a page cannot: when the script prints "NEED <what>" it does it
// and answers one line on stdin ("OK ..." with what the script needs to know):
//   NEED traffic            requests to the demo route     -> OK
//   NEED kill backend-b     SIGKILL demo backend B          -> OK
//   NEED config changes     two route PUTs through the API  -> OK <v1> <v2> <vHost added by v2>
//   NEED restart apid       SIGKILL apid, a new one, then a route PUT while
//                           the page's stream is down       -> OK <vHost added>
//   NEED stop router        SIGKILL the router              -> OK
//   NEED start router       a new router, API answering     -> OK
// Exit 0 when every step passed; otherwise 1 with "FAIL: <step>: <why>" on
// stderr and the page's state. Every wait is bounded (WAIT_MS). Screenshots
// (1280x800 and 375x667, the viewport and the whole page) go to the output
// directory, also on failure. HEALTH_MS: the stack's HEALTHD_INTERVAL in ms
// (a killed backend must turn dead within it, plus slack for the event's
// way). README_PNG: also save a 1280x800 screenshot there (at most 150 KB).
// CHROMIUM overrides the browser (default /usr/bin/chromium).
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const WAIT_MS = 15000; // longest wait for anything (the stack is a sanitizer build)
const NEED_MS = 60000; // longest wait for the driver's answer
const README_MAX = 150 * 1024;
const [adminUrl, outDir] = process.argv.slice(2);
const token = process.env.ADMIN_TOKEN;
const healthMs = Number(process.env.HEALTH_MS || 1000);
if (!adminUrl || !outDir || !token) {
  console.error('usage: ADMIN_TOKEN=... node dashboard_page.mjs <admin URL> <output dir>');
  process.exit(2);
}
mkdirSync(outDir, { recursive: true });

let step = 'start';
const log = (msg) => console.log(`[${new Date().toISOString()}] ${msg}`);
function begin(name) {
  step = name;
  log('step: ' + name);
}

// One line at a time from the driver.
const stdinLines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function need(what) {
  console.log(`NEED ${what}`);
  const timer = new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer to NEED ${what} within ${NEED_MS} ms`)), NEED_MS));
  const { value, done } = await Promise.race([stdinLines.next(), timer]);
  if (done || !value.startsWith('OK')) throw new Error(`NEED ${what}: the driver answered ${JSON.stringify(value)}`);
  return value.split(/\s+/).slice(1);
}

// Wait until fn(arg) is truthy in the page (bounded), naming what was awaited.
async function until(page, what, fn, arg, timeout = WAIT_MS) {
  try {
    return await page.waitForFunction(fn, arg, { timeout, polling: 50 });
  } catch (e) {
    throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
  }
}

const backendState = (page, backend) => page.evaluate((b) =>
  document.querySelector(`article.route[data-vhost="demo.test"] tr.backend[data-backend="${b}"]`)?.dataset.state, backend);
const untilState = (page, backend, state, timeout) => until(page, `backend ${backend} shown ${state}`, ([b, s]) =>
  document.querySelector(`article.route[data-vhost="demo.test"] tr.backend[data-backend="${b}"]`)?.dataset.state === s,
[backend, state], timeout);
const errorNotices = (page) => page.evaluate(() =>
  Array.from(document.querySelectorAll('#notices li.notice.error .text')).map((e) => e.textContent));

// The rps chart of demo.test: its line and how many points it has.
const rpsChart = (page) => page.evaluate(() => {
  const fig = document.querySelector('article.route[data-vhost="demo.test"] figure.chart[data-chart="rps"]');
  return fig && { d: fig.querySelector('path[data-key="rps"]').getAttribute('d'), points: Number(fig.dataset.points), last: fig.dataset.last };
});

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox'],
  timeout: WAIT_MS,
});
const wide = await browser.newContext({ viewport: { width: 1280, height: 800 } });
const phone = await browser.newContext({ viewport: { width: 375, height: 667 }, isMobile: true, hasTouch: true });
const pageErrors = [];
const urls = [];
const lastEventIds = []; // Last-Event-ID of every stream request that sent one
let authorized = 0;
function watch(name, p) {
  p.on('pageerror', (e) => pageErrors.push(`${name}: ${e.message}`));
  p.on('console', (m) => { if (m.type() === 'error') log(`${name} console error: ${m.text()}`); });
  p.on('request', (r) => {
    urls.push(r.url());
    if (r.headers().authorization === `Bearer ${token}`) authorized++;
    if (r.url().endsWith('/api/v1/events') && r.headers()['last-event-id']) lastEventIds.push(r.headers()['last-event-id']);
  });
  return p;
}
const page = watch('1280x800', await wide.newPage());
let phonePage = null;

async function screenshots(tag) {
  for (const [name, p] of [['1280x800', page], ['375x667', phonePage]]) {
    if (!p) continue;
    for (const full of [false, true]) {
      const file = join(outDir, `dashboard_${name}${full ? '_full' : ''}${tag}.png`);
      try {
        await p.screenshot({ path: file, fullPage: full, timeout: WAIT_MS });
        log('screenshot: ' + file);
      } catch (e) {
        log(`screenshot ${file} failed: ${e.message}`);
      }
    }
  }
}

// Give the token in the form the page shows on the first 401.
async function giveToken(p) {
  await p.waitForSelector('#token-dialog[open]', { timeout: WAIT_MS });
  const why = await p.textContent('#token-why');
  if (!/admin token/i.test(why)) throw new Error(`the token form says ${JSON.stringify(why)}`);
  await p.fill('#token-input', token);
  await p.press('#token-input', 'Enter');
  await p.waitForSelector('#token-dialog', { state: 'hidden', timeout: WAIT_MS });
}

let failed = false;
try {
  begin('GET /dashboard: 301 to /dashboard/, the page asks for the token');
  const r = await page.goto(adminUrl + '/dashboard', { timeout: WAIT_MS });
  if (!r || r.status() !== 200) throw new Error(`GET /dashboard: ${r ? r.status() : 'no response'}`);
  if (!page.url().endsWith('/dashboard/')) throw new Error(`ended at ${page.url()}, want .../dashboard/`);
  const redirect = r.request().redirectedFrom();
  if (!redirect || (await redirect.response()).status() !== 301) throw new Error('/dashboard did not answer 301');
  if (!(r.headers()['content-security-policy'] || '').includes("frame-ancestors 'none'")) {
    throw new Error('no content-security-policy on the page');
  }
  await giveToken(page);

  begin('the page\'s SSE parser (sse.js), fed one character at a time');
  const parsed = await page.evaluate(async () => {
    const { SseParser } = await import(new URL('sse.js', document.baseURI).href);
    const out = [];
    const p = new SseParser({
      event: (e) => out.push(['event', e.type, e.data, e.id]),
      comment: (c) => out.push(['comment', c]),
      retry: (ms) => out.push(['retry', ms]),
    });
    const text = 'retry: 2000\r\n: hello\r\n\r\nid: e:1\r\nevent: config\r\ndata: {"a":\r\ndata: 1}\r\n\r\n' +
      'event: nodata\n\nid: bad\0id\ndata\n\ndata:  two spaces\rretry: x\r\r:heartbeat\nid\ndata:x\n\ndata: cut';
    for (const ch of text) p.push(ch); // a CRLF split across chunks is one line end
    return out;
  });
  const want = [['retry', 2000], ['comment', 'hello'], ['event', 'config', '{"a":\n1}', 'e:1'],
    ['event', 'message', '', 'e:1'], ['event', 'message', ' two spaces', 'e:1'], ['comment', 'heartbeat'],
    ['event', 'message', 'x', '']];
  if (JSON.stringify(parsed) !== JSON.stringify(want)) throw new Error(`parsed ${JSON.stringify(parsed)}`);

  begin('the demo route, its backends alive, the stream live');
  await until(page, 'route demo.test with backends backend-a and backend-b alive', () => {
    const rows = document.querySelectorAll('article.route[data-vhost="demo.test"] tr.backend');
    return rows.length === 2 && Array.from(rows).every((tr) => tr.dataset.state === 'alive');
  });
  await until(page, '#stream live', () => document.getElementById('stream').dataset.state === 'live');
  await until(page, 'body[data-loaded]', () => document.body.dataset.loaded === 'true');

  begin('every input and select has a label; every button has a name');
  const unlabelled = await page.evaluate(() => [
    ...Array.from(document.querySelectorAll('input, select')).filter((e) => e.labels.length === 0).map((e) => e.id || e.name),
    ...Array.from(document.querySelectorAll('button')).filter((b) => !(b.getAttribute('aria-label') || b.textContent.trim())).map((b) => b.outerHTML),
  ]);
  if (unlabelled.length) throw new Error('without a label: ' + unlabelled.join(', '));

  begin('the actor instances, with round trip');
  await until(page, 'router, balancer, gateway, healthd, statsd, chatd, apid up in #actors', () => {
    const kinds = new Set(Array.from(document.querySelectorAll('#actors tr.actor[data-up="true"]')).map((tr) => tr.dataset.kind));
    return ['router', 'balancer', 'gateway', 'healthd', 'statsd', 'chatd', 'apid'].every((k) => kinds.has(k));
  });
  await until(page, 'chat figures from a stats event', () => /^[0-9]/.test(document.querySelector('#chat dd[data-figure="sessions"]')?.textContent));

  begin('traffic moves the demo route\'s chart');
  const before = await rpsChart(page);
  if (!before) throw new Error('no requests/s chart for demo.test');
  await need('traffic');
  await until(page, 'the requests/s chart of demo.test above 0 with a new line', (old) => {
    const fig = document.querySelector('article.route[data-vhost="demo.test"] figure.chart[data-chart="rps"]');
    const last = /rps=([0-9.]+)/.exec(fig.dataset.last || '');
    return last && Number(last[1]) > 0 && fig.querySelector('path[data-key="rps"]').getAttribute('d') !== old;
  }, before.d);
  const after = await rpsChart(page);
  await until(page, 'p50 and p99 on the latency chart', () => {
    const fig = document.querySelector('article.route[data-vhost="demo.test"] figure.chart[data-chart="p50 p99"]');
    return fig && fig.querySelector('path[data-key="p50"]').getAttribute('d') !== '' &&
      fig.querySelector('path[data-key="p99"]').getAttribute('d') !== '';
  });
  log(`rps chart: ${before.points} points (${before.last || 'none'}) -> ${after.points} points (${after.last})`);

  begin('a killed backend turns dead within the health interval');
  await need('kill backend-b');
  const killed = Date.now();
  await untilState(page, 'backend-b', 'dead');
  const took = Date.now() - killed;
  log(`backend-b shown dead ${took} ms after the kill (HEALTHD_INTERVAL ${healthMs} ms)`);
  if (took > healthMs * 1.1 + 1500) throw new Error(`backend-b took ${took} ms to show dead`);
  if (await backendState(page, 'backend-a') !== 'alive') throw new Error('backend-a is not alive any more');

  begin('mark backend-a dead from the page (confirmation first)');
  const deadButton = 'article.route[data-vhost="demo.test"] tr.backend[data-backend="backend-a"] button[data-action="dead"]';
  await page.click(deadButton);
  await page.waitForSelector('#confirm[open]', { timeout: WAIT_MS });
  const title = await page.textContent('#confirm-title');
  if (!title.includes('backend-a')) throw new Error(`the dialog asks ${JSON.stringify(title)}`);
  if (await page.evaluate(() => document.activeElement.id) !== 'confirm-cancel') throw new Error('Cancel is not focused first');
  await page.click('#confirm-cancel');
  await page.waitForSelector('#confirm', { state: 'hidden', timeout: WAIT_MS });
  if (await backendState(page, 'backend-a') !== 'alive') throw new Error('Cancel changed backend-a');
  await page.click(deadButton);
  await page.waitForSelector('#confirm[open]', { timeout: WAIT_MS });
  await page.click('#confirm-ok');
  await untilState(page, 'backend-a', 'maintenance');
  const afterDead = await errorNotices(page);
  if (afterDead.length) throw new Error('error notices: ' + afterDead.join('; '));

  begin('keyboard: Tab to "Mark alive" of backend-a, Enter, Tab to confirm, Enter');
  await page.focus('a.skip'); // the first thing on the page
  let tabs = 0;
  const aliveButton = 'article.route[data-vhost="demo.test"] tr.backend[data-backend="backend-a"] button[data-action="alive"]';
  while (!(await page.evaluate((sel) => document.activeElement?.matches(sel), aliveButton))) {
    if (++tabs > 80) throw new Error('80 Tabs did not reach the button');
    await page.keyboard.press('Tab');
  }
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  if (outline === 'none') throw new Error('the focused button shows no outline');
  log(`reached Mark alive after ${tabs} Tabs`);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#confirm[open]', { timeout: WAIT_MS });
  await page.keyboard.press('Tab');
  if (await page.evaluate(() => document.activeElement.id) !== 'confirm-ok') throw new Error('Tab from Cancel does not reach the confirm button');
  await page.keyboard.press('Tab'); // the dialog keeps the focus: back to Cancel
  if (await page.evaluate(() => document.activeElement.id) !== 'confirm-cancel') throw new Error('the dialog lets the focus out');
  await page.keyboard.press('Shift+Tab');
  await page.keyboard.press('Enter');
  await untilState(page, 'backend-a', 'alive');
  const back = await page.evaluate(() => document.activeElement?.dataset.focusKey || document.activeElement?.tagName);
  if (!String(back).startsWith('action:')) throw new Error(`the focus went to ${back}, not back to the action button`);

  if (process.env.README_PNG) {
    // the README's picture: one route with traffic, a dead backend, the actors
    // with their CPU and RSS (two proc.stats apart: a few seconds)
    try {
      await until(page, 'CPU figures of the actors', () => Array.from(document.querySelectorAll('#actors td[data-label="CPU"]'))
        .filter((td) => td.textContent !== '\u2014').length >= 5, null, 4 * WAIT_MS);
    } catch (e) {
      log(`README screenshot without CPU figures: ${e.message}`);
    }
    await page.evaluate(() => { document.activeElement?.blur(); window.scrollTo(0, 0); });
    await page.screenshot({ path: process.env.README_PNG, timeout: WAIT_MS });
    const size = statSync(process.env.README_PNG).size;
    log(`README screenshot ${process.env.README_PNG}: ${size} bytes`);
    if (size > README_MAX) throw new Error(`${process.env.README_PNG} is ${size} bytes, over ${README_MAX}`);
  }

  begin('two configuration changes through the API show as versions');
  const [v1, v2, added] = (await need('config changes')).map((x, i) => (i < 2 ? Number(x) : x));
  await until(page, `version ${v2} current in the list`, (v) =>
    document.querySelector(`#config tr.version[data-version="${v}"]`)?.dataset.current === 'true', v2);
  await until(page, `route ${added} on the page`, (vh) => !!document.querySelector(`article.route[data-vhost="${vh}"]`), added);

  begin(`roll back to version ${v1} from the page: a new version, and its diff`);
  await page.click(`#config tr.version[data-version="${v1}"] button[data-action="rollback"]`);
  await page.waitForSelector('#confirm[open]', { timeout: WAIT_MS });
  if (!(await page.textContent('#confirm-title')).includes(String(v1))) throw new Error('the dialog does not name the version');
  await page.click('#confirm-ok');
  await until(page, `a version after ${v2} current`, (v) =>
    Number(document.querySelector('#config tr.version[data-current="true"]')?.dataset.version) > v, v2);
  const v3 = await page.evaluate(() => Number(document.querySelector('#config tr.version[data-current="true"]').dataset.version));
  await until(page, `the diff ${v3 - 1} -> ${v3} shown`, (v) => {
    const d = document.getElementById('diff');
    return d.dataset.state === 'shown' && d.dataset.from === String(v - 1) && d.dataset.to === String(v);
  }, v3);
  const removed = await page.evaluate(() => Array.from(document.querySelectorAll('#diff li.removed')).map((li) => li.dataset.name));
  if (!removed.includes(added)) throw new Error(`the diff removes ${JSON.stringify(removed)}, not ${added}`);
  await until(page, `route ${added} gone from the page`, (vh) => !document.querySelector(`article.route[data-vhost="${vh}"]`), added);

  begin('a diff picked by hand: from the first change to the second');
  await page.selectOption('#diff-from', String(v1));
  await page.selectOption('#diff-to', String(v2));
  await page.click('#diff-show');
  await until(page, `the diff ${v1} -> ${v2}`, ([a, b, vh]) => {
    const d = document.getElementById('diff');
    return d.dataset.state === 'shown' && d.dataset.from === String(a) && d.dataset.to === String(b) &&
      !!d.querySelector(`li.added[data-name="${vh}"]`);
  }, [v1, v2, added]);

  begin('apid restarted: the stream reconnects with Last-Event-ID, the missed change shows');
  await page.evaluate(() => {
    window.streamStates = [];
    new MutationObserver(() => window.streamStates.push(document.getElementById('stream').dataset.state))
      .observe(document.getElementById('stream'), { attributes: true, attributeFilter: ['data-state'] });
  });
  const resumedBefore = lastEventIds.length;
  const [missed] = await need('restart apid');
  await until(page, `route ${missed} (made while the stream was down) on the page`,
    (vh) => !!document.querySelector(`article.route[data-vhost="${vh}"]`), missed, 3 * WAIT_MS);
  await until(page, '#stream live again', () => document.getElementById('stream').dataset.state === 'live', null, 3 * WAIT_MS);
  const states = await page.evaluate(() => window.streamStates);
  if (!states.includes('reconnecting')) throw new Error(`the stream went through ${JSON.stringify(states)}`);
  if (lastEventIds.length === resumedBefore) throw new Error('no reconnect sent Last-Event-ID');
  log(`stream states: ${states.join(' -> ')}; Last-Event-ID sent: ${lastEventIds.slice(resumedBefore).join(', ')}`);

  begin('375x667: the same page on a phone, nothing wider than the screen');
  phonePage = watch('375x667', await phone.newPage());
  await phonePage.goto(adminUrl + '/dashboard/', { timeout: WAIT_MS });
  await giveToken(phonePage);
  await until(phonePage, 'route demo.test on the phone', () =>
    document.querySelectorAll('article.route[data-vhost="demo.test"] tr.backend').length === 2);
  await until(phonePage, 'the stream live on the phone', () => document.getElementById('stream').dataset.state === 'live');
  const width = await phonePage.evaluate(() => document.documentElement.scrollWidth);
  if (width > 375) throw new Error(`the phone page is ${width} px wide`);

  await page.evaluate(() => window.scrollTo(0, 0));
  await screenshots('');

  begin('a failed call shows the API\'s message and changes nothing (no router)');
  await need('stop router');
  await page.click(deadButton);
  await page.waitForSelector('#confirm[open]', { timeout: WAIT_MS });
  await page.click('#confirm-ok');
  await until(page, 'an error notice naming the failed call', () =>
    Array.from(document.querySelectorAll('#notices li.notice.error .text')).some((e) =>
      e.textContent.startsWith('Mark dead backend-a of demo.test failed: 5')), null, 3 * WAIT_MS);
  log('error shown: ' + (await errorNotices(page)).find((t) => t.startsWith('Mark dead')));
  await until(page, 'the Mark dead button back (not pending)', (sel) => {
    const b = document.querySelector(sel);
    return b && b.getAttribute('aria-disabled') !== 'true';
  }, deadButton);
  if (await backendState(page, 'backend-a') !== 'alive') throw new Error('backend-a changed although the call failed');
  await need('start router');

  begin('the token never went into a URL; API calls carried it');
  const leaked = urls.filter((u) => u.includes(token) || u.includes(encodeURIComponent(token)));
  if (leaked.length) throw new Error('the token is in: ' + leaked.join(', '));
  if (authorized < 5) throw new Error(`only ${authorized} requests carried the token`);

  if (pageErrors.length) throw new Error('uncaught page errors: ' + pageErrors.join('; '));
  log('PASS');
} catch (e) {
  failed = true;
  console.error(`FAIL: ${step}: ${e.message}`);
  await screenshots('_failed');
  try {
    const state = await page.evaluate(() => ({
      stream: document.getElementById('stream')?.dataset.state,
      streamTitle: document.getElementById('stream')?.title,
      routes: Array.from(document.querySelectorAll('article.route')).map((a) => `${a.dataset.vhost}: ` +
        Array.from(a.querySelectorAll('tr.backend')).map((tr) => `${tr.dataset.backend}=${tr.dataset.state}`).join(' ')),
      versions: Array.from(document.querySelectorAll('#config tr.version')).slice(0, 6).map((tr) => tr.textContent),
      diff: document.getElementById('diff')?.textContent,
      notices: Array.from(document.querySelectorAll('#notices li')).map((li) => li.textContent),
      dialogs: Array.from(document.querySelectorAll('dialog[open]')).map((d) => d.id),
    }));
    console.error(`page: ${JSON.stringify(state)}`);
  } catch (e2) {
    console.error(`page: unreadable (${e2.message})`);
  }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
