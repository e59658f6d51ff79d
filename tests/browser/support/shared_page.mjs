// Driving the browser client library (/ssehub.js) in pages served by the hub, for
// shared.test.mjs: a recorder per subscription in the page, the hub's stream gauge, publishing
// from Node, and the events each subscription should get.

import assert from 'node:assert/strict';
import { topicMatches } from '../../../clients/js/ssehub.js';

/** Longest a single wait may take (a loaded 2-core CI is slow). */
export const WAIT = 20_000;

/** Streams open at the hub now: the sum of `ssehub_streams_open` over its labels. */
export async function streamsOpen(base) {
  const text = await (await fetch(`${base}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    const found = /^ssehub_streams_open\{[^}]*\} (\d+)/.exec(line);
    if (found) total += Number(found[1]);
  }
  return total;
}

/**
 * Waits until the hub's stream gauge reads `count`. The gauge is the signal itself: it is read
 * again every 50 ms (a stream a browser aborts is counted until the hub sees it gone).
 */
export async function waitForStreams(base, count, timeout = WAIT) {
  const deadline = Date.now() + timeout;
  let now = await streamsOpen(base);
  while (now !== count) {
    if (Date.now() > deadline) assert.fail(`the hub should have ${count} streams open; it has ${now}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
    now = await streamsOpen(base);
  }
  return now;
}

/** POST /api/messages from Node; resolves to the event's id. */
export async function publish(base, message, topic, { token, private: isPrivate } = {}) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(`${base}/api/messages`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ message, topic, private: !!isPrivate }),
  });
  const body = await response.json();
  assert.equal(response.status, 201, JSON.stringify(body));
  return { message, topic, id: body.data.id };
}

/** The published events a subscription to `patterns` should get, in order. */
export function expectedFor(published, patterns) {
  return published.filter((e) => patterns.some((p) => topicMatches(p, e.topic)));
}

/**
 * Loads the library in `page` (already on a page of the hub) and installs the recorder:
 * `window.subscribe(name, url, init)` opens a SharedEventSource (init.tokens: true takes its
 * tokens from `window.mintToken`, which a test exposes) and resolves at its first `open`;
 * every event it dispatches is recorded in `window.rec[name]`. Diagnostics events (`leader`,
 * `upstreamopen`) go to `window.diag`.
 */
export async function installRecorder(page) {
  await page.evaluate(async () => {
    if (window.rec) return;
    const lib = await import('/ssehub.js');
    window.lib = lib;
    window.rec = {};
    window.diag = [];
    for (const type of ['leader', 'upstreamopen']) {
      lib.SharedEventSource.diagnostics.addEventListener(type, (event) => {
        window.diag.push({ type, at: event.detail.at, url: event.detail.url || null });
      });
    }
    window.subscribe = (name, url, init = {}) => new Promise((resolve, reject) => {
      const record = { events: [], states: [] };
      window.rec[name] = record;
      const options = { ...init };
      if (options.tokens) {
        delete options.tokens;
        options.getToken = async () => {
          record.tokens = (record.tokens || 0) + 1;
          return window.mintToken();
        };
      }
      const source = new lib.SharedEventSource(url, options);
      record.source = source;
      for (const type of ['message', 'close', 'gap', 'lagged']) {
        source.addEventListener(type, (event) => {
          let message = null;
          try {
            message = JSON.parse(event.data).data.message ?? null;
          } catch (err) {
            message = null;
          }
          record.events.push({ type, message, id: event.lastEventId, at: Date.now() });
        });
      }
      source.onopen = () => {
        record.states.push('open');
        resolve();
      };
      source.onerror = (event) => {
        record.states.push(`error (readyState ${source.readyState}${event.status ? `, ${event.status}` : ''})`);
        if (source.readyState === 2) reject(new Error(`stream ${name} failed: ${record.states.join(', ')}`));
      };
    });
  });
}

/** Opens a subscription in `page` and waits for it to open. */
export async function subscribe(page, name, url, init = {}) {
  await page.evaluate(([n, u, i]) => window.subscribe(n, u, i), [name, url, init]);
}

/** What the subscription `name` of `page` received: `[{type, message, id, at}]`. */
export async function recorded(page, name) {
  return page.evaluate((n) => window.rec[n].events, name);
}

/** The states (`open`, `error (...)`) the subscription `name` went through. */
export async function states(page, name) {
  return page.evaluate((n) => window.rec[n].states, name);
}

/** Waits until subscription `name` of `page` received a message `message`. */
export async function waitForMessage(page, name, message, timeout = WAIT) {
  await page.waitForFunction(
    ([n, m]) => window.rec[n] && window.rec[n].events.some((e) => e.message === m),
    [name, message],
    { timeout, polling: 25 },
  ).catch(async (err) => {
    const got = await recorded(page, name).catch(() => []);
    err.message += ` (waiting in ${name} for ${message}; got ${JSON.stringify(got.map((e) => e.message))})`;
    throw err;
  });
}

/** Whether `page` leads the tabs for the hub at `base` now. */
export async function isLeader(page, base) {
  return page.evaluate((hub) => {
    const host = window.lib.SharedEventSource.diagnostics.status().hubs[hub];
    return !!(host && host.leader);
  }, new URL(base).origin);
}

/** The messages of `name`'s `message` events, in order of arrival. */
export async function messages(page, name) {
  return (await recorded(page, name)).filter((e) => e.type === 'message').map((e) => e.message);
}

/** Asserts each event of `expected` arrived exactly once, in order, and nothing else. */
export function assertExactlyOnce(got, expected, label) {
  const want = expected.map((e) => e.message);
  const seen = new Set();
  const repeats = got.filter((m) => (seen.has(m) ? true : (seen.add(m), false)));
  const missing = want.filter((m) => !seen.has(m));
  const extra = got.filter((m) => !want.includes(m));
  assert.deepEqual({ repeats, missing, extra }, { repeats: [], missing: [], extra: [] }, `${label}: each event once`);
  assert.deepEqual(got, want, `${label}: in publish order`);
}

/** Publishes one event per topic of `topics` (in order), named `${prefix}-N`. */
export async function publishAll(base, prefix, topics, options) {
  const published = [];
  for (const [i, topic] of topics.entries()) {
    published.push(await publish(base, `${prefix}-${i}-${topic}`, topic, options));
  }
  return published;
}

/** Records the page's uncaught errors and console errors (a test asserts there are none). */
export function watch(page, problems) {
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console.error: ${msg.text()}`);
  });
}
