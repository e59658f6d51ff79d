// Subscribe tickets in a real browser: Debian's Chromium driven by playwright-core, against an
// ssehub binary started here on a free port with a subscriber key, a publisher key and
// --access-log. A page of the hub swaps its subscriber token for a ticket (POST /api/tickets,
// the token in the Authorization header) and hands the ticket to a plain EventSource, native
// and Mercure; every line the hub writes is kept, and no ticket or token may be in any of them.
// The page code of docs/browser.md's "Subscribe tickets" runs as written (its hub the page's
// origin), with tokens that expire every 3 s.
//
//   cargo build && cd tests/browser && npm ci && node --test tickets.test.mjs
//
// SSEHUB_BIN overrides the binary (default: target/debug/ssehub of this repository),
// CHROMIUM_BIN the browser (default /usr/bin/chromium).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { launchChromium } from './support/chromium.mjs';
import { jwt } from './support/jwt.mjs';
import { startServer, stopServer } from './support/server.mjs';

const TEST_TIMEOUT = 90_000;
/** Longest a single wait may take (a loaded 2-core CI is slow). */
const WAIT = 20_000;
const SUBSCRIBER_KEY = 'tickets-test-subscriber-key-long-enough!';
const PUBLISHER_KEY = 'tickets-test-publisher-key-long-enough!!';
const REFUSED = { error: 'the token is not valid' };

const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;

// ---- the hub and its output ---------------------------------------------------------------

/**
 * Starts the hub with `args` and keeps every line it writes, on stdout and stderr, from its
 * first: startServer's own buffer holds the lines up to the one naming the port (it drops only
 * past 200 chunks), and listeners attached before any further I/O event take the rest.
 */
async function startLoggedHub(args) {
  const server = await startServer(args, { env: { RUST_LOG: 'info', NO_COLOR: '1' } });
  assert.ok(server.output.length < 200, 'the hub wrote its first lines in fewer than 200 chunks');
  const text = { startup: server.output.join(''), stdout: '', stderr: '' };
  const waiters = new Set();
  const lines = () => Object.values(text).join('\n')
    .replace(/\x1b\[[0-9;]*m/g, '')
    .split('\n')
    .filter((line) => line.trim() !== '');
  const notify = () => {
    for (const waiter of waiters) waiter();
  };
  server.child.stdout.on('data', (chunk) => {
    text.stdout += chunk.toString('utf8');
    notify();
  });
  server.child.stderr.on('data', (chunk) => {
    text.stderr += chunk.toString('utf8');
    notify();
  });
  /** Resolves to the first line matching `pattern`, as soon as the hub writes it. */
  const waitForLine = (pattern, timeout = WAIT) => new Promise((resolve, reject) => {
    const check = () => {
      const line = lines().find((l) => pattern.test(l));
      if (!line) return;
      waiters.delete(check);
      clearTimeout(timer);
      resolve(line);
    };
    const timer = setTimeout(() => {
      waiters.delete(check);
      reject(new Error(`no log line matches ${pattern} within ${timeout} ms:\n${lines().join('\n')}`));
    }, timeout);
    waiters.add(check);
    check();
  });
  return { server, base: server.base, lines, waitForLine };
}

/** POST /api/messages from Node; resolves to the event's id. */
async function publish(base, token, body) {
  const response = await fetch(`${base}/api/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  assert.equal(response.status, 201, JSON.stringify(answer));
  return answer.data.id;
}

// ---- the page -----------------------------------------------------------------------------

/** Records uncaught errors in `page` (a test asserts there are none). */
function watch(page) {
  const problems = [];
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  return problems;
}

/**
 * Installs in the page: `window.mint(token, topics?)` (POST /api/tickets, the token in the
 * Authorization header), `window.listen(name, url)` (a plain EventSource recording its
 * `message` and `close` events in `window.rec[name]`; resolves to its first state, `open` or
 * `error (readyState N)`) and `window.probe(url)` (a GET by fetch: status, headers, body).
 */
async function installHelpers(page) {
  await page.evaluate(() => {
    window.rec = {};
    window.mint = async (token, topics) => {
      const init = { method: 'POST', headers: { Authorization: `Bearer ${token}` } };
      if (topics) {
        init.headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify({ topics });
      }
      const response = await fetch('/api/tickets', init);
      return {
        status: response.status,
        cacheControl: response.headers.get('cache-control'),
        type: response.headers.get('content-type'),
        body: await response.json(),
      };
    };
    window.listen = (name, url) => new Promise((resolve) => {
      const record = { events: [], states: [] };
      window.rec[name] = record;
      const source = new EventSource(url);
      record.source = source;
      for (const type of ['message', 'close']) {
        source.addEventListener(type, (event) => record.events.push({ type, id: event.lastEventId, data: event.data }));
      }
      source.onopen = () => {
        record.states.push('open');
        resolve('open');
      };
      source.onerror = () => {
        record.states.push(`error (readyState ${source.readyState})`);
        resolve(record.states[record.states.length - 1]);
      };
    });
    window.probe = async (url) => {
      const response = await fetch(url);
      return {
        status: response.status,
        authenticate: response.headers.get('www-authenticate'),
        type: response.headers.get('content-type'),
        body: await response.text(),
      };
    };
  });
}

/** Waits until the EventSource `name` received `count` messages; resolves to their data. */
async function waitForMessages(page, name, count) {
  await page.waitForFunction(
    ([n, c]) => window.rec[n].events.filter((e) => e.type === 'message').length >= c,
    [name, count],
    { timeout: WAIT, polling: 25 },
  ).catch(async (err) => {
    err.message += ` (waiting in ${name} for ${count} messages; got ${JSON.stringify(await page.evaluate((n) => window.rec[n], name))})`;
    throw err;
  });
  return page.evaluate((n) => window.rec[n].events.filter((e) => e.type === 'message').map((e) => e.data), name);
}

/** The `data.message` of native events' data. */
const messagesOf = (data) => data.map((text) => JSON.parse(text).data.message);

/** Asserts that a ticket's second use was refused as a refused token is, without echoing it. */
function assertRefused(answer, ticket, label) {
  assert.equal(answer.status, 401, `${label}: ${JSON.stringify(answer)}`);
  assert.equal(answer.authenticate, 'Bearer error="invalid_token"', label);
  assert.match(answer.type, /^application\/json/, label);
  assert.deepEqual(JSON.parse(answer.body), REFUSED, label);
  assert.ok(!answer.body.includes(ticket), `${label}: the body does not contain the ticket`);
}

/**
 * The page code of docs/browser.md's "Subscribe tickets": its first `js` block, with the hub
 * being the page's own origin.
 */
function docsPageCode() {
  const doc = readFileSync(new URL('../../docs/browser.md', import.meta.url), 'utf8');
  const section = doc.slice(doc.indexOf('\n## Subscribe tickets\n'));
  const block = /\n```js\n([\s\S]*?)\n```\n/.exec(section);
  assert.ok(block, 'docs/browser.md has a js block under "Subscribe tickets"');
  const hubLine = /^const HUB = .*$/m;
  assert.match(block[1], hubLine, 'the block names its hub in one line');
  return block[1].replace(hubLine, 'const HUB = location.origin;');
}

// ---- the tests ----------------------------------------------------------------------------

describe('subscribe tickets in Chromium', { timeout: 300_000 }, () => {
  let browser;

  before(async () => {
    browser = await launchChromium();
  }, { timeout: 30_000 });

  after(async () => {
    await browser?.close();
  }, { timeout: 20_000 });

  test('a plain EventSource with a ticket gets private events, native and Mercure; a second use is 401; no ticket is logged', { timeout: TEST_TIMEOUT }, async (t) => {
    const hub = await startLoggedHub([
      '--subscriber-jwt-key', SUBSCRIBER_KEY, '--publisher-jwt-key', PUBLISHER_KEY, '--access-log',
    ]);
    const context = await browser.newContext();
    const secrets = [];
    try {
      const subscriber = jwt(SUBSCRIBER_KEY, { mercure: { subscribe: ['secret', 'other'] }, exp: inAnHour() });
      const publisher = jwt(PUBLISHER_KEY, { mercure: { publish: ['*'] } });
      secrets.push(subscriber, publisher);
      const page = await context.newPage();
      page.setDefaultTimeout(WAIT);
      const problems = watch(page);
      const loaded = await page.goto(`${hub.base}/`);
      assert.equal(loaded.status(), 200);
      await installHelpers(page);

      // The token, in a header, for a ticket.
      const made = await page.evaluate((token) => window.mint(token), subscriber);
      assert.equal(made.status, 201, JSON.stringify(made));
      assert.equal(made.cacheControl, 'no-store');
      assert.match(made.type, /^application\/json/);
      assert.deepEqual(Object.keys(made.body).sort(), ['expires_in', 'ticket']);
      assert.equal(made.body.expires_in, 30);
      const { ticket } = made.body;
      secrets.push(ticket);
      assert.match(ticket, /^[A-Za-z0-9_-]{43}$/, 'opaque: 32 random bytes, base64url');
      assert.ok(!subscriber.includes(ticket));

      // A plain EventSource with the ticket, and one without any credential beside it.
      const streamUrl = `/stream?mode=live&topic=secret&ticket=${ticket}`;
      assert.equal(await page.evaluate((url) => window.listen('ticket', url), streamUrl), 'open');
      assert.equal(await page.evaluate(() => window.listen('anonymous', '/stream?mode=live&topic=secret')), 'open');

      // A private event, then a public one: one stream delivers in order, so the anonymous
      // stream, once it has the public event, would have had the private one first.
      await publish(hub.base, publisher, { message: 'classified', topic: 'secret', private: true });
      await publish(hub.base, publisher, { message: 'for everyone', topic: 'secret' });
      assert.deepEqual(messagesOf(await waitForMessages(page, 'ticket', 2)), ['classified', 'for everyone']);
      assert.deepEqual(messagesOf(await waitForMessages(page, 'anonymous', 1)), ['for everyone']);
      const [first] = await waitForMessages(page, 'ticket', 1);
      assert.equal(JSON.parse(first).data.topic, 'secret');

      // The ticket's second use: by fetch (status, header, body), and by a plain EventSource,
      // which a 401 closes for good. A forged ticket is refused the same way.
      assertRefused(await page.evaluate((url) => window.probe(url), streamUrl), ticket, 'second use by fetch');
      assert.equal(await page.evaluate((url) => window.listen('again', url), streamUrl), 'error (readyState 2)');
      const forged = 'A'.repeat(43);
      assertRefused(await page.evaluate((url) => window.probe(url), `/stream?mode=live&topic=secret&ticket=${forged}`), forged, 'forged');
      // From Node too (no cookie, no origin): the same answer.
      const fromNode = await fetch(`${hub.base}${streamUrl}`);
      assertRefused({
        status: fromNode.status,
        authenticate: fromNode.headers.get('www-authenticate'),
        type: fromNode.headers.get('content-type'),
        body: await fromNode.text(),
      }, ticket, 'second use from Node');
      // The first stream is still open and still gets private events.
      assert.equal(await page.evaluate(() => window.rec.ticket.source.readyState), 1);

      // Mercure, with a second ticket narrowed to `secret` (the token grants `other` too).
      const narrowed = await page.evaluate((token) => window.mint(token, ['secret']), subscriber);
      assert.equal(narrowed.status, 201, JSON.stringify(narrowed));
      const mercureTicket = narrowed.body.ticket;
      secrets.push(mercureTicket);
      assert.notEqual(mercureTicket, ticket);
      const mercureUrl = `/.well-known/mercure?topic=secret&topic=other&ticket=${mercureTicket}`;
      assert.equal(await page.evaluate((url) => window.listen('mercure', url), mercureUrl), 'open');
      // A private update on `other`, which the ticket was narrowed away from, then one on `secret`.
      await publish(hub.base, publisher, { message: 'not for the narrowed ticket', topic: 'other', private: true });
      const mercureId = await publish(hub.base, publisher, { message: 'for mercure', topic: 'secret', private: true });
      const [update] = await waitForMessages(page, 'mercure', 1);
      assert.match(update, /for mercure/);
      const mercureEvents = await page.evaluate(() => window.rec.mercure.events);
      assert.deepEqual(mercureEvents.map((e) => e.id), [mercureId], 'only the update on the topic the ticket kept');
      assert.deepEqual(
        messagesOf(await waitForMessages(page, 'ticket', 3)),
        ['classified', 'for everyone', 'for mercure'],
      );
      assertRefused(await page.evaluate((url) => window.probe(url), mercureUrl), mercureTicket, 'a Mercure ticket\'s second use');

      // A ticket is in no response but the one that made it: not in the metrics either.
      const metrics = await (await fetch(`${hub.base}/metrics`)).text();
      for (const secret of secrets) assert.ok(!metrics.includes(secret), 'no ticket or token in /metrics');

      // The access log has the requests, without their query strings.
      const issued = await hub.waitForLine(/request method="POST" path=\/api\/tickets status=201\b/);
      const refused = await hub.waitForLine(/request method="GET" path=\/stream status=401\b/);
      const refusedMercure = await hub.waitForLine(/request method="GET" path=\/\.well-known\/mercure status=401\b/);
      await hub.waitForLine(/request method="GET" path=\/\.well-known\/mercure status=200\b/);
      assert.deepEqual(problems, []);
      await context.close();
      await stopServer(hub.server);

      // Every line the hub wrote, shutdown included: no ticket, no token, no query string.
      const lines = hub.lines();
      for (const secret of secrets) {
        const leaks = lines.filter((line) => line.includes(secret));
        assert.deepEqual(leaks, [], 'a ticket or token in the log');
      }
      const withQuery = lines.filter((line) => /ticket=|[?&]topic=/.test(line));
      assert.deepEqual(withQuery, [], 'no query string in the log');
      assert.ok(lines.filter((l) => / request method=/.test(l)).length >= 8, `the access log is on:\n${lines.join('\n')}`);
      t.diagnostic(`${lines.length} log lines checked, no ticket or token in them; among them:`);
      for (const line of [issued, refused, refusedMercure]) t.diagnostic(`  ${line}`);
    } finally {
      await context.close().catch(() => {});
      if (hub.server.child.exitCode === null && hub.server.child.signalCode === null) await stopServer(hub.server);
    }
  });
  test('the page code of docs/browser.md: a new ticket per connection, private events once and in order across token expiries', { timeout: TEST_TIMEOUT }, async (t) => {
    const hub = await startLoggedHub([
      '--subscriber-jwt-key', SUBSCRIBER_KEY, '--publisher-jwt-key', PUBLISHER_KEY, '--access-log',
    ]);
    const context = await browser.newContext();
    try {
      const publisher = jwt(PUBLISHER_KEY, { mercure: { publish: ['*'] } });
      const secrets = [publisher];
      // The app's backend: subscriber tokens that live 2 to 3 s, minted here.
      await context.route('**/my-app/sse-token', (route) => {
        const now = Math.floor(Date.now() / 1000);
        const token = jwt(SUBSCRIBER_KEY, { mercure: { subscribe: ['orders/*'] }, iat: now, exp: now + 3 });
        secrets.push(token);
        return route.fulfill({ status: 200, contentType: 'text/plain', body: token });
      });
      const page = await context.newPage();
      page.setDefaultTimeout(WAIT);
      const problems = watch(page);
      // What the code logs (each event's message), and a wait on it.
      const logged = [];
      const waiters = new Set();
      page.on('console', (msg) => {
        if (msg.type() !== 'log' || !/^order-\d+$/.test(msg.text())) return;
        logged.push(msg.text());
        for (const waiter of waiters) waiter();
      });
      const waitForLogged = (text) => new Promise((resolve, reject) => {
        const check = () => {
          if (!logged.includes(text)) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`the page did not log ${text} within ${WAIT} ms; it logged ${JSON.stringify(logged)}`));
        }, WAIT);
        waiters.add(check);
        check();
      });
      // Its requests: the tickets it got, and the streams it opened (and how they were answered).
      const tickets = [];
      const streams = [];
      page.on('response', async (response) => {
        const url = new URL(response.url());
        if (url.pathname === '/api/tickets') {
          tickets.push({ status: response.status(), body: await response.json().catch(() => null) });
        } else if (url.pathname === '/stream' && url.searchParams.has('ticket')) {
          streams.push({ url: response.url(), status: response.status() });
        }
      });

      const loaded = await page.goto(`${hub.base}/`);
      assert.equal(loaded.status(), 200);
      const firstStream = page.waitForResponse((r) => /\/stream\?.*ticket=/.test(r.url()));
      await page.addScriptTag({ type: 'module', content: docsPageCode() });
      // The hub subscribes a stream before it answers: once the headers are here, it is live.
      assert.equal((await firstStream).status(), 200);

      // Private events on the page's topic for 8 s: 2 to 3 token lifetimes.
      const published = [];
      const started = Date.now();
      for (let i = 0; Date.now() - started < 8_000; i++) {
        await publish(hub.base, publisher, { message: `order-${i}`, topic: 'orders/42', private: true });
        published.push(`order-${i}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await waitForLogged(published[published.length - 1]);
      assert.deepEqual(logged, published, 'every private event once, in order');

      const metrics = await (await fetch(`${hub.base}/metrics`)).text();
      const expired = Number(/ssehub_streams_ended_total\{mode="live",reason="expired"\} (\d+)/.exec(metrics)?.[1] ?? 0);
      assert.ok(expired >= 2, `streams ended at their token's exp: ${expired}`);
      assert.ok(streams.length >= 3, `a new ticket and stream after each expiry: ${JSON.stringify(streams)}`);
      assert.deepEqual(streams.map((s) => s.status), streams.map(() => 200), 'no stream refused (no ticket reused)');
      assert.deepEqual(tickets.map((x) => x.status), tickets.map(() => 201));
      for (const { body } of tickets) secrets.push(body.ticket);
      for (const { url } of streams) {
        for (const token of secrets.slice(1).filter((s) => s.startsWith('ey'))) assert.ok(!url.includes(token), 'no token in a URL');
      }
      assert.deepEqual(problems, []);
      t.diagnostic(`${published.length} private events over 8 s with 3 s tokens: ${tickets.length} tickets, ${streams.length} streams, ${expired} ended at exp; each event logged once, in order`);

      await context.close();
      await stopServer(hub.server);
      const lines = hub.lines();
      for (const secret of secrets) {
        assert.deepEqual(lines.filter((line) => line.includes(secret)), [], 'a ticket or token in the log');
      }
    } finally {
      await context.close().catch(() => {});
      if (hub.server.child.exitCode === null && hub.server.child.signalCode === null) await stopServer(hub.server);
    }
  });
});
