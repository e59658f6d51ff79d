// The hub console (the page's #console view) in a real browser: Debian's Chromium driven by
// playwright-core against an ssehub binary started here on a free port, without auth and with
// publisher and subscriber keys. The helpers that read and drive the console are in
// support/console_page.mjs; starting the hub and the browser in support/.
//
//   cargo build && cd tests/browser && npm ci && node --test
//
// SSEHUB_BIN overrides the binary (default: target/debug/ssehub of this repository),
// CHROMIUM_BIN the browser (default /usr/bin/chromium). Screenshots go to target/browser/
// (console.png, console-phone.png, console-auth.png).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium } from './support/chromium.mjs';
import {
  lowContrast, publishFromForm, row, unlabelledControls, WAIT, waitForRow, watch,
} from './support/console_page.mjs';
import { jwt } from './support/jwt.mjs';
import { startServer, stopServer } from './support/server.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '../..');
const SHOTS = resolve(REPO, 'target/browser');

const TEST_TIMEOUT = 60_000;
const PUB_KEY = 'console-publisher-key-long-enough-for-hs256';
const SUB_KEY = 'console-subscriber-key-long-enough-for-hs256';

// ---- the tests ----------------------------------------------------------------------------

describe('hub console in Chromium', { timeout: 180_000 }, () => {
  let browser;

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    browser = await launchChromium();
  }, { timeout: 30_000 });

  after(async () => {
    await browser?.close();
  }, { timeout: 20_000 });

  /** A fresh context and page, checked for problems and closed after `body` runs. */
  async function withPage(options, body) {
    const context = await browser.newContext(options.context ?? {});
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT);
    const problems = watch(page, options.expected);
    try {
      await body(page);
      assert.deepEqual(problems, [], 'the page should run without errors or console output');
    } finally {
      page.removeAllListeners();
      await context.close();
    }
  }

  test('topics appear live, the form publishes, the inspector shows the wire lines', { timeout: TEST_TIMEOUT }, async () => {
    const server = await startServer(['--interval', '300ms']);
    try {
      await withPage({ context: { viewport: { width: 1280, height: 900 } } }, async (page) => {
        await page.goto(`${server.base}/#console`);
        assert.equal(await page.locator('#demo-view').isHidden(), true);
        assert.equal(await page.locator('#console-view').isVisible(), true);
        assert.equal(await page.locator('#to-console').getAttribute('aria-current'), 'page');
        assert.equal(await page.title(), 'ssehub console');
        await page.waitForFunction(() => document.querySelector('#topics-state').textContent === 'live');
        assert.equal(await page.locator('#pub-token-field').isHidden(), true, 'no token field without auth');
        assert.equal(await page.locator('#sub-token-field').isHidden(), true);

        // Watch a topic (a subscriber), then publish to it from the form.
        const topic = 'console/news';
        await page.fill('#i-topic', topic);
        await page.click('#i-watch');
        await page.waitForFunction((t) => document.querySelector('#i-state').textContent === `watching ${t}`, topic);
        await page.locator('#frames li').first().waitFor(); // the handshake
        const message = 'Hello "console" <b>not bold</b> ✓';
        const published = await publishFromForm(page, { topic, event: 'chat', message });
        assert.equal(published.error, '');
        const id = /event (urn:ssehub:\d+-\d+) to /.exec(published.result)?.[1];
        assert.ok(id, published.result);
        assert.match(published.result, /^Published chat event .* to console\/news \(1 subscriber here\)\.$/);

        // The table shows the topic with its subscriber and newest id, then its rate.
        const seen = await waitForRow(page, topic, (r) => r.last_id === id && Number(r.rate) > 0);
        assert.equal(seen.subscribers, '1');
        assert.equal(seen.history, '1');

        // The inspector shows the event's frame byte for byte.
        await page.waitForFunction(() => /^chat · /.test(document.querySelector('#frames li .frame-kind').textContent));
        const wire = await page.locator('#wire').textContent();
        const data = JSON.stringify({ message, topic });
        assert.match(wire, new RegExp(
          `^event: chat\\nid: ${id}\\ndata: \\{"timestamp":[0-9.]+,"data":${data.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\}\\n\\n$`,
        ), wire);
        assert.equal(await page.locator('#wire b').count(), 0, 'shown as text');
        const bytes = Buffer.byteLength(wire);
        assert.match(await page.locator('#wire-meta').textContent(), new RegExp(`^${bytes} bytes in 4 lines`));
        // The same bytes as a client of its own receives them.
        const raw = await (await fetch(`${server.base}/api/topics/${topic}/events`)).json();
        assert.equal(raw.events[0].id, id);

        // Choosing an older frame (the handshake) shows its own bytes and keeps it shown.
        const frames = page.locator('#frames button.frame');
        await frames.last().click();
        assert.equal(await frames.last().getAttribute('aria-current'), 'true');
        assert.doesNotMatch(await page.locator('#wire').textContent(), /event: chat/);

        // Bad input is refused before anything is sent, with the field marked.
        const badTopic = await publishFromForm(page, { topic: 'bad topic!', message: 'x' });
        assert.match(badTopic.error, /Invalid topic/);
        assert.equal(await page.locator('#c-topic').getAttribute('aria-invalid'), 'true');

        // Accessibility basics: every control labelled, contrast, keyboard reach.
        assert.deepEqual(await unlabelledControls(page), []);
        assert.deepEqual(await lowContrast(page), []);
        await page.locator('#to-console').focus();
        const reached = [];
        for (let i = 0; i < 40; i += 1) {
          await page.keyboard.press('Tab');
          reached.push(await page.evaluate(() => {
            const el = document.activeElement;
            return el.id || el.getAttribute('aria-label') || el.className;
          }));
        }
        for (const id of ['c-topic', 'c-event', 'c-message', 'c-private', 'c-send', 'i-topic', 'i-watch', 'i-stop', `Inspect ${topic}`, 'frame', 'wire']) {
          assert.ok(reached.includes(id), `Tab reaches ${id}: ${JSON.stringify(reached)}`);
        }
        // Publishing from the keyboard alone.
        await page.locator('#c-topic').focus();
        await page.keyboard.press('Control+A');
        await page.keyboard.type(topic);
        await page.keyboard.press('Tab');
        await page.keyboard.press('Tab');
        await page.keyboard.type('typed, not clicked');
        await page.keyboard.press('Tab');
        await page.keyboard.press('Tab');
        await page.keyboard.press('Enter');
        await page.waitForFunction(() => /^Published message event /.test(document.querySelector('#c-result').textContent));

        await page.locator('#c-message').fill('');
        await page.screenshot({ path: resolve(SHOTS, 'console.png'), fullPage: true, animations: 'disabled' });

        // Back to the demo: the console's streams stop, the demo is as it was.
        await page.click('#to-demo');
        // The view switches on the hash change, a task after the click: wait for it.
        await page.locator('#console-view').waitFor({ state: 'hidden', timeout: WAIT });
        assert.equal(await page.locator('#console-view').isHidden(), true);
        assert.equal(await page.locator('#demo-view').isVisible(), true);
        assert.equal(await page.locator('#state').textContent(), 'idle');
        assert.equal(await page.evaluate(() => document.activeElement.id), 'publish-title');
      });

      // A phone: nothing wider than the screen, the table as cards.
      const phone = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };
      await withPage({ context: phone }, async (page) => {
        await page.goto(`${server.base}/#console`);
        await waitForRow(page, 'console/news', (r) => r.last_id.startsWith('urn:ssehub:'));
        await page.fill('#i-topic', 'console/news');
        await page.click('#i-watch');
        await page.locator('#frames li').first().waitFor();
        await publishFromForm(page, { topic: 'console/news', message: 'from a phone, a message long enough to wrap on a narrow screen' });
        await page.waitForFunction(() => document.querySelectorAll('#frames li').length >= 2);
        await page.locator('#c-message').blur();
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        assert.ok(overflow <= 0, `no horizontal scrolling on a phone (overflow ${overflow}px)`);
        assert.deepEqual(await unlabelledControls(page), []);
        await page.screenshot({ path: resolve(SHOTS, 'console-phone.png'), fullPage: true, animations: 'disabled' });
      });
    } finally {
      await stopServer(server);
    }
  });

  test('with auth on: the token fields appear, a wrong token shows the error, a right one publishes', { timeout: TEST_TIMEOUT }, async () => {
    const server = await startServer(['--publisher-jwt-key', PUB_KEY, '--subscriber-jwt-key', SUB_KEY]);
    const expected = (status, url) => (status === 401 || status === 403) && new URL(url).pathname === '/api/messages';
    try {
      // In the dark scheme, to check its contrast too.
      const context = { viewport: { width: 1280, height: 900 }, colorScheme: 'dark' };
      await withPage({ expected, context }, async (page) => {
        await page.goto(`${server.base}/#console`);
        await page.locator('#pub-token-field').waitFor();
        await page.locator('#sub-token-field').waitFor();
        assert.equal(await page.locator('#pub-token').getAttribute('type'), 'password');

        const none = await publishFromForm(page, { topic: 'ops/secret', message: 'no token' });
        assert.equal(none.error, 'Not published: a token is required (HTTP 401).');
        assert.equal(await page.locator('#pub-token').getAttribute('aria-invalid'), 'true');
        assert.equal(await page.evaluate(() => document.activeElement.id), 'pub-token');

        await page.fill('#pub-token', jwt('not-the-publisher-key-at-all-no', { mercure: { publish: ['*'] } }));
        const wrong = await publishFromForm(page, { topic: 'ops/secret', message: 'wrong token' });
        assert.equal(wrong.error, 'Not published: the token is not valid (HTTP 401).');

        await page.fill('#pub-token', jwt(PUB_KEY, { mercure: { publish: ['ops/public'] } }));
        const scope = await publishFromForm(page, { topic: 'ops/secret', message: 'not granted' });
        assert.equal(scope.error, 'Not published: the token does not grant this (HTTP 403).');

        await page.fill('#pub-token', jwt(PUB_KEY, { mercure: { publish: ['*'] } }));
        const ok = await publishFromForm(page, { topic: 'ops/secret', message: 'for operators', private: true });
        assert.equal(ok.error, '');
        assert.match(ok.result, /^Published private message event urn:ssehub:\d+-\d+ to ops\/secret /);
        const id = /event (\S+) to/.exec(ok.result)[1];
        await publishFromForm(page, { topic: 'ops/public', message: 'for everyone' });
        await waitForRow(page, 'ops/public', (r) => r.last_id.startsWith('urn:'));
        assert.equal(await row(page, 'ops/secret'), null, 'a private-only topic is hidden without a subscriber token');

        // A subscriber token granting it shows the private topic and its id.
        await page.fill('#sub-token', jwt(SUB_KEY, { mercure: { subscribe: ['ops/*'] } }));
        await page.locator('#sub-token').press('Enter');
        await page.locator('#sub-token').blur();
        await waitForRow(page, 'ops/secret', (r) => r.last_id === id);
        assert.deepEqual(await lowContrast(page), []);
        await page.screenshot({ path: resolve(SHOTS, 'console-auth.png'), fullPage: true, animations: 'disabled' });
      });
    } finally {
      await stopServer(server);
    }
  });
});
