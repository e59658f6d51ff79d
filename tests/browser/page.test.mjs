// The demo page in a real browser: Debian's Chromium driven by playwright-core, against an
// ssehub binary (the debug build by default) started here on a free port (support/ starts the
// hub and the browser).
//
//   cargo build && cd tests/browser && npm ci && node --test
//
// SSEHUB_BIN overrides the binary (default: target/debug/ssehub of this repository),
// CHROMIUM_BIN the browser (default /usr/bin/chromium). Screenshots go to target/browser/.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium } from './support/chromium.mjs';
import { startServer, stopServer } from './support/server.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '../..');
const SHOTS = resolve(REPO, 'target/browser');

/** Longest a whole test may take; every wait inside is shorter. */
const TEST_TIMEOUT = 20_000;
/** Longest a single wait for the page may take. */
const WAIT = 10_000;

/** POST /api/messages from Node (not from the page). */
async function publish(base, message, topic) {
  const response = await fetch(`${base}/api/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ message, topic }),
  });
  return { status: response.status, body: await response.json() };
}

// ---- the page -----------------------------------------------------------------------------

/**
 * Records everything that should not happen on the page: console output, uncaught errors,
 * failed requests and error responses. `expected` lets a test accept the error responses it
 * provokes on purpose (and the console line Chromium prints for them).
 *
 * Requests the page aborts itself are not failures: closing an EventSource (the end of a
 * burst, Disconnect, switching topic) cancels its request with net::ERR_ABORTED.
 */
function watch(page, expected = { status: () => false }) {
  const problems = [];
  const requests = [];
  page.on('console', (msg) => {
    const text = msg.text();
    const loadFailure = /Failed to load resource: the server responded with a status of (\d+)/.exec(text);
    if (loadFailure && expected.status(Number(loadFailure[1]), msg.location().url)) return;
    problems.push(`console.${msg.type()}: ${text}`);
  });
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('request', (request) => requests.push(`${request.method()} ${request.url()}`));
  page.on('requestfailed', (request) => {
    const failure = request.failure()?.errorText ?? 'failed';
    const url = new URL(request.url());
    if (failure === 'net::ERR_ABORTED' && url.pathname === '/stream') return;
    problems.push(`request failed: ${request.method()} ${request.url()} (${failure})`);
  });
  page.on('response', (response) => {
    if (response.status() >= 400 && !expected.status(response.status(), response.url())) {
      problems.push(`HTTP ${response.status()}: ${response.request().method()} ${response.url()}`);
    }
  });
  return { problems, requests };
}

async function stateOf(page) {
  return page.locator('#state').textContent();
}

async function waitForState(page, state) {
  await page.waitForFunction(
    (s) => document.querySelector('#state')?.textContent === s,
    state,
    { timeout: WAIT },
  ).catch(async (err) => {
    err.message += ` (waiting for state ${state}; it is ${await stateOf(page)}; ` +
      `detail: ${await page.locator('#state-detail').textContent()}; ` +
      `error: ${await page.locator('#error').textContent()})`;
    throw err;
  });
}

/** Waits until `#feed li.arrival` (optionally `.replayed`) holds exactly `count` items. */
async function waitForArrivals(page, count, selector = '#feed li.arrival') {
  await page.waitForFunction(
    ([sel, n]) => document.querySelectorAll(sel).length === n,
    [selector, count],
    { timeout: WAIT },
  ).catch(async (err) => {
    const texts = await page.locator('#feed li').allTextContents();
    err.message += ` (waiting for ${count} × ${selector}; feed: ${JSON.stringify(texts)})`;
    throw err;
  });
}

/** Texts of the arrivals' messages, oldest first (the feed shows the newest first). */
async function arrivalTexts(page, selector = '#feed li.arrival') {
  const texts = await page.locator(`${selector} .text`).allTextContents();
  return texts.reverse();
}

async function sendBurst(page, message, topic = 'default') {
  await page.fill('#message', message);
  await page.fill('#topic', topic);
  await page.click('#send');
}

// ---- the tests ----------------------------------------------------------------------------

describe('demo page in Chromium', { timeout: 120_000 }, () => {
  let server;
  let browser;

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    server = await startServer(['--interval', '300ms']);
    browser = await launchChromium();
  }, { timeout: 30_000 });

  after(async () => {
    await browser?.close();
    // Asserts a clean exit on SIGTERM.
    if (server) await stopServer(server);
  }, { timeout: 20_000 });

  /** A fresh context (own sessionStorage) and page, closed after `body` runs. */
  async function withPage(options, body) {
    const context = await browser.newContext(options.context ?? {});
    if (options.init) await context.addInitScript(options.init.script, options.init.arg);
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT);
    const watched = watch(page, options.expected);
    try {
      await body(page, watched);
      assert.deepEqual(watched.problems, [], 'the page should run without errors or console output');
    } finally {
      page.removeAllListeners();
      await context.close();
    }
  }

  test('burst: the message arrives three times as text, then the stream closes', { timeout: TEST_TIMEOUT }, async () => {
    const message = `Hi <b>there</b> "quoted" & 'single' <script>x()</script> — ünïcödé ✓`;
    await withPage({}, async (page, { requests }) => {
      await page.goto(server.base);
      assert.equal(await stateOf(page), 'idle');
      assert.equal(await page.locator('#topic').inputValue(), 'default');
      assert.equal(await page.locator('#mode').inputValue(), 'burst');

      await sendBurst(page, message);
      await waitForArrivals(page, 3);
      await waitForState(page, 'closed');

      assert.deepEqual(await arrivalTexts(page), [message, message, message]);
      const counters = (await page.locator('#feed li.arrival .seq').allTextContents()).reverse();
      assert.deepEqual(counters, ['#1/3', '#2/3', '#3/3']);
      for (const time of await page.locator('#feed li.arrival time').allTextContents()) {
        assert.match(time, /^\d\d:\d\d:\d\d\.\d{3}$/);
      }
      assert.equal(await page.locator('#feed b, #feed script').count(), 0, 'the message is shown as text, not HTML');
      assert.equal(await page.locator('#feed li.replayed').count(), 0);
      assert.equal(await page.locator('#error').textContent(), '');

      // The seed's contract: the stream is opened before the message is posted.
      const stream = requests.findIndex((r) => r.startsWith(`GET ${server.base}/stream?topic=default`));
      const post = requests.indexOf(`POST ${server.base}/api/messages`);
      assert.ok(stream >= 0 && post > stream, `stream before POST: ${JSON.stringify(requests)}`);
      assert.ok(!requests.some((r) => r.endsWith('/favicon.ico')), 'no favicon request');

      await page.screenshot({ path: resolve(SHOTS, 'burst.png'), fullPage: true, animations: 'disabled' });
    });

    // The same flow on a phone-sized screen: nothing wider than the viewport.
    await withPage({ context: { viewport: { width: 375, height: 740 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true } }, async (page) => {
      await page.goto(server.base);
      await sendBurst(page, 'Hello from a phone: a longer message that has to wrap onto several lines on a narrow screen.', 'phone/room-1');
      await waitForArrivals(page, 3);
      await waitForState(page, 'closed');
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `no horizontal scrolling on a phone (overflow ${overflow}px)`);
      await page.screenshot({ path: resolve(SHOTS, 'phone.png'), fullPage: true, animations: 'disabled' });
    });
  });

  test('live: messages arrive on one stream; one missed while disconnected is replayed', { timeout: TEST_TIMEOUT }, async () => {
    const topic = 'browser/live';
    await withPage({}, async (page, { requests }) => {
      await page.goto(server.base);
      await page.fill('#topic', topic);
      await page.selectOption('#mode', 'live');
      await waitForState(page, 'open');
      assert.equal(await page.locator('#connection').textContent(), 'Disconnect');

      for (const [i, text] of ['first live message', 'second live message'].entries()) {
        await page.fill('#message', text);
        await page.click('#send');
        await waitForArrivals(page, i + 1);
      }
      assert.deepEqual(await arrivalTexts(page), ['first live message', 'second live message']);
      assert.equal(await page.locator('#feed li.replayed').count(), 0);
      const seen = await page.evaluate(() => sessionStorage.getItem('ssehub.lastEventId'));
      assert.ok(seen, 'the last event id is kept in sessionStorage');
      assert.match(await page.locator('#feed li.arrival .meta').first().textContent(), new RegExp(`id ${seen}$`));

      await page.click('#connection');
      await waitForState(page, 'closed');
      assert.equal(await page.locator('#connection').textContent(), 'Connect');

      const missed = await publish(server.base, 'published while away', topic);
      assert.equal(missed.status, 201, JSON.stringify(missed.body));

      await page.click('#connection');
      await waitForState(page, 'open');
      await waitForArrivals(page, 1, '#feed li.arrival.replayed');
      assert.deepEqual(await arrivalTexts(page, '#feed li.arrival.replayed'), ['published while away']);
      assert.equal(await page.locator('#feed li.arrival.replayed .badge').textContent(), 'replayed');
      // Only the missed one came back: nothing seen before is repeated.
      await waitForArrivals(page, 3);

      const streams = requests.filter((r) => r.includes('/stream?'));
      assert.equal(streams.length, 2, JSON.stringify(streams));
      assert.ok(!streams[0].includes('lastEventId='), streams[0]);
      assert.ok(
        streams[1].endsWith(`&lastEventId=${encodeURIComponent(seen)}`),
        `reconnect resumes after ${seen}: ${streams[1]}`,
      );
      assert.equal(
        await page.evaluate(() => sessionStorage.getItem('ssehub.lastEventId')),
        missed.body.data.id,
      );

      // After a live message from elsewhere: still live, not replayed.
      await publish(server.base, 'from another publisher', topic);
      await waitForArrivals(page, 4);
      assert.equal(await page.locator('#feed li.arrival.replayed').count(), 1);
      await page.screenshot({ path: resolve(SHOTS, 'live.png'), fullPage: true, animations: 'disabled' });
    });
  });

  test('live: resuming from an id history cannot honour shows a gap notice', { timeout: TEST_TIMEOUT }, async () => {
    const topic = 'browser/gap';
    const earlier = await publish(server.base, 'held in history', topic);
    assert.equal(earlier.status, 201);
    const init = { script: () => sessionStorage.setItem('ssehub.lastEventId', 'not-an-id') };
    await withPage({ init }, async (page) => {
      await page.goto(server.base);
      await page.fill('#topic', topic);
      await page.selectOption('#mode', 'live');
      await waitForState(page, 'open');
      await page.locator('#feed li.notice.gap').waitFor();
      assert.match(await page.locator('#feed li.notice.gap').textContent(), /missed/);
      await waitForArrivals(page, 1, '#feed li.arrival.replayed');
      assert.deepEqual(await arrivalTexts(page), ['held in history']);
    });
  });

  test('bad input: errors are shown, the state never hangs in connecting', { timeout: TEST_TIMEOUT }, async () => {
    const badTopic = 'bad topic!';
    const serverSays = await publish(server.base, 'x', badTopic);
    assert.equal(serverSays.status, 400);
    // The only error responses this test provokes on purpose.
    const expected = {
      status: (status, url) => (status === 400 || status === 413) && new URL(url).pathname === '/api/messages',
    };
    await withPage({ expected }, async (page, { requests }) => {
      await page.goto(server.base);

      // An empty message is refused before anything is sent.
      await page.fill('#message', '   ');
      await page.click('#send');
      assert.match(await page.locator('#error').textContent(), /message/i);
      assert.equal(await page.locator('#message').getAttribute('aria-invalid'), 'true');
      assert.equal(await stateOf(page), 'idle');

      // Burst: a stream is never opened for a topic the server would refuse.
      await sendBurst(page, 'hello', badTopic);
      assert.match(await page.locator('#error').textContent(), /invalid topic/i);
      assert.equal(await page.locator('#topic').getAttribute('aria-invalid'), 'true');
      assert.equal(await stateOf(page), 'idle');

      // Live: the server validates the publish and the page shows the server's own words.
      await page.fill('#topic', 'browser/errors');
      await page.selectOption('#mode', 'live');
      await waitForState(page, 'open');
      await page.fill('#topic', badTopic);
      await page.fill('#message', 'hello');
      await page.click('#send');
      await page.waitForFunction(
        (text) => document.querySelector('#error').textContent === text,
        serverSays.body.error,
        { timeout: WAIT },
      );
      assert.notEqual(await stateOf(page), 'connecting');
      assert.equal(await page.locator('#send').isDisabled(), false);

      // Burst: a message larger than the server takes; its 413 text is shown and the stream closed.
      await page.selectOption('#mode', 'burst');
      await page.fill('#topic', 'browser/errors');
      await page.fill('#message', 'x'.repeat(17_000));
      await page.click('#send');
      await page.waitForFunction(
        () => /longer than/.test(document.querySelector('#error').textContent),
        null,
        { timeout: WAIT },
      );
      await waitForState(page, 'error');

      assert.ok(
        !requests.some((r) => r.includes('/stream?') && r.includes('bad')),
        `no stream was opened for the bad topic: ${JSON.stringify(requests)}`,
      );
      await page.screenshot({ path: resolve(SHOTS, 'error.png'), fullPage: true, animations: 'disabled' });
    });
  });
});
