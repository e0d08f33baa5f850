// chat_page.mjs - the chat page (client/index.html) in a real Chromium, two pages
// in two regions: alice on gateway 1 (region 1), bob on gateway 2 (region 2).
//
// Usage: node chat_page.mjs <page A URL> <page B URL> <output dir>
//   e.g. node chat_page.mjs http://127.0.0.1:8080/chat.html http://127.0.0.1:8081/chat.html /tmp/out
// Started by tests/e2e/test_chat_page.py, which starts the stack. Exit 0 when every
// step passed; otherwise 1 with "FAIL: <step>: <why>" on stderr. Every wait is
// bounded (WAIT_MS); screenshots of both pages are saved in the output directory
// (also on failure). CHROMIUM overrides the browser (default /usr/bin/chromium).
// With CHAT_PAGE_HOLD set it prints HOLD once every step passed, both pages still
// connected, and waits (bounded) for a line on stdin before disconnecting.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const WAIT_MS = 15000; // longest wait for anything (the stack is a sanitizer build)
const [urlA, urlB, outDir] = process.argv.slice(2);
if (!urlA || !urlB || !outDir) {
  console.error('usage: node chat_page.mjs <page A URL> <page B URL> <output dir>');
  process.exit(2);
}
mkdirSync(outDir, { recursive: true });

let step = 'start';
const log = (msg) => console.log(`[${new Date().toISOString()}] ${msg}`);
function begin(name) {
  step = name;
  log('step: ' + name);
}

// Wait until fn(arg) is truthy in the page (bounded), naming what was awaited.
async function until(page, what, fn, arg) {
  try {
    await page.waitForFunction(fn, arg, { timeout: WAIT_MS, polling: 50 });
  } catch (e) {
    throw new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`);
  }
}

const text = (page, sel) => page.locator(sel).textContent({ timeout: WAIT_MS });

async function connect(page, user, target, region, gatewayUrl) {
  const wantServer = 'ws://' + new URL(gatewayUrl).host + '/chat';
  const server = await page.inputValue('#server', { timeout: WAIT_MS });
  if (server !== wantServer) throw new Error(`#server is ${JSON.stringify(server)}, want ${wantServer}`);
  if (await page.inputValue('#region') !== '1') throw new Error('#region does not default to 1');
  if ((await text(page, '#state')) !== 'disconnected') throw new Error('#state is not "disconnected" at first');
  await page.fill('#user', user);
  await page.fill('#target', target);
  await page.fill('#region', region);
  await page.click('#connect');
  const want = `connected as ${user} (region ${region})`;
  await until(page, `#state "${want}" on ${user}'s page`,
    (w) => document.getElementById('state').textContent === w, want);
}

// Type text in #text and press Enter (the page sends on Enter).
async function say(page, words) {
  await page.fill('#text', words);
  await page.press('#text', 'Enter');
}

// Wait for a received message (not one's own) from `from` with exactly `words`.
async function received(page, who, from, words, room) {
  await until(page, `${who} to see ${JSON.stringify(words)} from ${from}${room ? ' in ' + room : ''}`,
    ([f, w, r]) => Array.from(document.querySelectorAll('#messages li')).some((li) =>
      !li.classList.contains('mine') && li.dataset.from === f && li.dataset.id !== '' &&
      li.querySelector('.text').textContent === w && (!r || li.dataset.room === r)),
    [from, words, room || '']);
}

async function ownMessage(page, who, words, cls) {
  await until(page, `${who}'s own message ${JSON.stringify(words)} with class ${cls}`,
    ([w, c]) => Array.from(document.querySelectorAll('#messages li.mine')).some((li) =>
      li.classList.contains(c) && li.querySelector('.text').textContent === w),
    [words, cls]);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox'],
  timeout: WAIT_MS,
});
const ctxA = await browser.newContext({ viewport: { width: 1280, height: 800 } });
const ctxB = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
const pageA = await ctxA.newPage();
const pageB = await ctxB.newPage();
const pageErrors = [];
for (const [name, page] of [['A', pageA], ['B', pageB]]) {
  page.on('pageerror', (e) => pageErrors.push(`page ${name}: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') log(`page ${name} console error: ${m.text()}`); });
}

async function screenshots(tag) {
  for (const [name, page] of [['alice', pageA], ['bob', pageB]]) {
    const file = join(outDir, `chat_page_${name}${tag}.png`);
    try {
      await page.screenshot({ path: file, fullPage: true, timeout: WAIT_MS });
      log('screenshot: ' + file);
    } catch (e) {
      log(`screenshot ${file} failed: ${e.message}`);
    }
  }
}

let failed = false;
try {
  begin('load the page from each gateway');
  for (const [page, url] of [[pageA, urlA], [pageB, urlB]]) {
    const r = await page.goto(url, { timeout: WAIT_MS });
    if (!r || r.status() !== 200) throw new Error(`GET ${url}: ${r ? r.status() : 'no response'}`);
    await page.waitForSelector('#connect', { timeout: WAIT_MS });
  }

  begin('every input and select has a label');
  const unlabelled = await pageA.evaluate(() => Array.from(document.querySelectorAll('input, select'))
    .filter((e) => e.labels.length === 0).map((e) => e.id));
  if (unlabelled.length) throw new Error('without a label: ' + unlabelled.join(', '));

  begin('connect alice (region 1, gateway 1) and bob (region 2, gateway 2)');
  await connect(pageA, 'alice', 'bob', '1', urlA);
  await connect(pageB, 'bob', 'alice', '2', urlB);

  begin('alice -> bob, acked');
  await say(pageA, 'hello bob');
  await received(pageB, 'bob', 'alice', 'hello bob');
  await ownMessage(pageA, 'alice', 'hello bob', 'acked');

  begin('bob -> alice (untrusted text shown as text)');
  const markup = '<img src=x onerror="window.pwned=1"> hi alice';
  await say(pageB, markup);
  await received(pageA, 'alice', 'bob', markup);
  await ownMessage(pageB, 'bob', markup, 'acked');
  if (await pageA.evaluate(() => window.pwned !== undefined || document.querySelector('#messages img') !== null)) {
    throw new Error('a received text was rendered as HTML');
  }

  begin('bob types: alice sees "bob is typing"');
  await pageB.click('#text');
  await pageB.keyboard.type('still typ', { delay: 20 });
  await until(pageA, '#typing "bob is typing…" on alice\'s page',
    () => document.getElementById('typing').textContent === 'bob is typing\u2026');
  begin('bob empties the box: typing:stop clears alice\'s #typing');
  await pageB.fill('#text', '');
  await until(pageA, '#typing empty again on alice\'s page',
    () => document.getElementById('typing').textContent === '');
  begin('bob types and stops: typing:stop after 3 s idle clears alice\'s #typing');
  await pageB.keyboard.type('x');
  await until(pageA, '#typing "bob is typing…" again on alice\'s page',
    () => document.getElementById('typing').textContent === 'bob is typing\u2026');
  await until(pageA, '#typing empty after bob is idle',
    () => document.getElementById('typing').textContent === '');
  await pageB.fill('#text', '');

  begin('both join lobby (alice sees bob come: presence online)');
  await pageA.fill('#room', 'lobby');
  await pageA.click('#join');
  await until(pageA, 'alice #joined lobby', () => document.getElementById('joined').textContent === 'lobby');
  await pageB.fill('#room', 'lobby');
  await pageB.click('#join');
  await until(pageA, 'alice #presence bob online (bob joined the room)',
    () => document.querySelector('#presence li[data-user="bob"]')?.dataset.status === 'online');

  begin('alice -> room lobby, bob sees it');
  await pageA.selectOption('#send-to', 'room');
  await say(pageA, 'hello lobby');
  await received(pageB, 'bob', 'alice', 'hello lobby', 'lobby');
  await ownMessage(pageA, 'alice', 'hello lobby', 'acked');

  begin('bob sets away: alice sees bob away');
  await pageB.selectOption('#status', 'away');
  await until(pageA, 'alice #presence bob away',
    () => document.querySelector('#presence li[data-user="bob"]')?.dataset.status === 'away');
  const line = await text(pageA, '#presence li[data-user="bob"]');
  if (line !== 'bob: away') throw new Error(`#presence shows ${JSON.stringify(line)}`);

  begin('an error frame: alice sends to "no one"');
  await pageA.selectOption('#send-to', 'user');
  await pageA.fill('#target', 'no one');
  await say(pageA, 'to nobody');
  await until(pageA, 'alice #errors bad_frame',
    () => document.getElementById('errors').textContent.startsWith('bad_frame: '));
  await ownMessage(pageA, 'alice', 'to nobody', 'failed');
  log('error shown: ' + await text(pageA, '#errors'));

  begin('the session stays open after the error');
  await pageA.fill('#target', 'bob');
  await say(pageA, 'still here');
  await received(pageB, 'bob', 'alice', 'still here');

  await screenshots('');

  if (process.env.CHAT_PAGE_HOLD) {
    // both pages stay connected while the caller looks at the stack (chatd's
    // sessions, Redis); it writes a line on our stdin when done
    begin('hold: waiting for a line on stdin');
    console.log('HOLD');
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no line on stdin within ${4 * WAIT_MS} ms`)), 4 * WAIT_MS);
      process.stdin.once('data', () => {
        clearTimeout(timer);
        process.stdin.pause();
        resolve();
      });
    });
  }

  begin('disconnect');
  await pageA.click('#connect');
  await until(pageA, 'alice #state disconnected', () => document.getElementById('state').textContent === 'disconnected');

  if (pageErrors.length) throw new Error('uncaught page errors: ' + pageErrors.join('; '));
  log('PASS');
} catch (e) {
  failed = true;
  console.error(`FAIL: ${step}: ${e.message}`);
  await screenshots('_failed');
  for (const [name, page] of [['alice', pageA], ['bob', pageB]]) {
    try {
      const state = await page.evaluate(() => ({
        state: document.getElementById('state').textContent,
        errors: document.getElementById('errors').textContent,
        typing: document.getElementById('typing').textContent,
        presence: document.getElementById('presence').textContent,
        messages: Array.from(document.querySelectorAll('#messages li')).map((li) =>
          `${li.className}|${li.dataset.from}|${li.dataset.id}|${li.textContent}`),
      }));
      console.error(`${name}'s page: ${JSON.stringify(state)}`);
    } catch (e2) {
      console.error(`${name}'s page: unreadable (${e2.message})`);
    }
  }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
