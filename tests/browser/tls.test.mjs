// HTTPS and HTTP/2 in a real browser: Debian's Chromium driven by playwright-core against an
// ssehub binary started here with a self-signed certificate (made by `openssl` in a temporary
// directory) on a free port. The helpers that drive the page's EventSources and record its
// connections are in support/tls_page.mjs; starting the hub and the browser in support/.
//
//   cargo build && cd tests/browser && npm ci && node --test
//
// SSEHUB_BIN overrides the binary (default: target/debug/ssehub of this repository),
// CHROMIUM_BIN the browser (default /usr/bin/chromium), OPENSSL_BIN the openssl command
// (default: `openssl` on the PATH).
//
// Over HTTP/1.1 a browser opens at most six connections per origin, so a seventh EventSource
// hangs; over HTTP/2 all of them share one connection. Each test opens 30 from one page, on 30
// topics, and checks that every stream gets exactly its own message and that the streams went
// over HTTP/2 on a single connection.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCertificate } from './support/certificate.mjs';
import { launchChromium } from './support/chromium.mjs';
import { startServer, stopServer } from './support/server.mjs';
import {
  closeStreams, recordResponses, runStreams, WAIT, watch,
} from './support/tls_page.mjs';

/** Longest a whole test may take; every wait inside is shorter. */
const TEST_TIMEOUT = 30_000;
/** EventSources per page: well past HTTP/1.1's six connections per origin. */
const STREAMS = 30;

// ---- the tests ----------------------------------------------------------------------------

describe('HTTPS and HTTP/2 in Chromium', { timeout: 120_000 }, () => {
  let dir;
  let server;
  let browser;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ssehub-tls-'));
    const { cert, key } = makeCertificate(dir);
    server = await startServer(['--tls-cert', cert, '--tls-key', key, '--log', 'info'], {
      scheme: 'https',
      env: {}, // it logs by --log, not RUST_LOG
    });
    browser = await launchChromium(['--ignore-certificate-errors']);
  }, { timeout: 30_000 });

  after(async () => {
    await browser?.close();
    try {
      if (server) await stopServer(server);
    } finally {
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  }, { timeout: 20_000 });

  /**
   * A fresh context and page on the demo page over HTTPS; `body` gets the page and the
   * recorded responses. Asserts afterwards that nothing went wrong on the page.
   */
  async function withPage(body) {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT);
    const closing = { value: false };
    const problems = watch(page, closing);
    const responses = await recordResponses(context, page);
    try {
      const response = await page.goto(`${server.base}/`);
      assert.equal(response.status(), 200);
      assert.equal(await page.title(), 'ssehub demo');
      assert.equal(await page.locator('#state').textContent(), 'idle');
      await body(page, responses, closing);
      assert.deepEqual(problems, [], 'the page should run without errors or console output');
    } finally {
      page.removeAllListeners();
      await context.close();
    }
  }

  /** The page, its streams and its posts went over HTTP/2, all on one connection. */
  function assertOneH2Connection(responses, pathname, timing) {
    const streams = responses.filter((r) => new URL(r.url).pathname === pathname);
    assert.equal(streams.length, STREAMS, `one response per stream: ${JSON.stringify(streams)}`);
    for (const r of responses) {
      assert.equal(r.protocol, 'h2', `over HTTP/2: ${JSON.stringify(r)}`);
    }
    assert.deepEqual(
      [...new Set(streams.map((r) => r.type))], ['EventSource'], JSON.stringify(streams),
    );
    const connections = new Set(responses.map((r) => r.connectionId));
    assert.equal(connections.size, 1,
      `the page, its ${STREAMS} streams and its posts share one connection: ${JSON.stringify(responses)}`);

    // What the page itself sees: the Resource Timing of every stream says h2.
    assert.equal(timing.length, STREAMS, `a resource timing entry per stream: ${JSON.stringify(timing)}`);
    for (const entry of timing) {
      assert.equal(entry.nextHopProtocol, 'h2', JSON.stringify(entry));
    }
  }

  test(`${STREAMS} live EventSources on ${STREAMS} topics share one HTTP/2 connection`, { timeout: TEST_TIMEOUT }, async () => {
    await withPage(async (page, responses, closing) => {
      const streams = Array.from({ length: STREAMS }, (_, i) => ({
        url: `/stream?mode=live&topic=tls/t${i}`,
        post: { json: { message: `to ${i}`, topic: `tls/t${i}` } },
      }));
      const result = await runStreams(page, streams);

      result.posts.forEach((post, i) => {
        assert.equal(post.status, 201, `publish ${i}: ${JSON.stringify(post)}`);
        const body = JSON.parse(post.body);
        assert.equal(body.data.topic, `tls/t${i}`, post.body);
        assert.equal(body.data.subscribers, 1, `exactly one subscriber on tls/t${i}: ${post.body}`);
      });
      result.got.forEach((got, i) => {
        assert.equal(got.length, 1, `stream ${i} gets exactly its own message: ${JSON.stringify(got)}`);
        const event = JSON.parse(got[0].data);
        assert.equal(event.data.message, `to ${i}`, got[0].data);
        assert.equal(event.data.topic, `tls/t${i}`, got[0].data);
        assert.equal(got[0].id, JSON.parse(result.posts[i].body).data.id, 'the event id is the one the publish returned');
      });
      assert.deepEqual(result.events, Array(STREAMS).fill(['open']), 'every stream opened once and never failed');
      assert.deepEqual(result.readyStates, Array(STREAMS).fill(1), 'every stream is still open');

      closing.value = true;
      const timing = await closeStreams(page, '/stream');
      assertOneH2Connection(responses, '/stream', timing);
      assert.equal(
        responses.filter((r) => new URL(r.url).pathname === '/api/messages').length, STREAMS,
        JSON.stringify(responses),
      );
    });
  });

  test(`${STREAMS} Mercure EventSources get form-published updates over one HTTP/2 connection`, { timeout: TEST_TIMEOUT }, async () => {
    await withPage(async (page, responses, closing) => {
      const streams = Array.from({ length: STREAMS }, (_, i) => ({
        url: `/.well-known/mercure?topic=https://example.com/t/${i}`,
        post: { form: { topic: `https://example.com/t/${i}`, data: `update ${i}` } },
      }));
      const result = await runStreams(page, streams);

      result.posts.forEach((post, i) => {
        assert.equal(post.status, 200, `publish ${i}: ${JSON.stringify(post)}`);
        assert.match(post.type, /^text\/plain(;|$)/, JSON.stringify(post));
        assert.ok(post.body.length > 0, `publish ${i} answers the event's id`);
      });
      result.got.forEach((got, i) => {
        assert.deepEqual(got, [{ id: result.posts[i].body, data: `update ${i}` }],
          `stream ${i} gets exactly its own update`);
      });
      assert.deepEqual(result.events, Array(STREAMS).fill(['open']), 'every stream opened once and never failed');
      assert.deepEqual(result.readyStates, Array(STREAMS).fill(1), 'every stream is still open');

      closing.value = true;
      const timing = await closeStreams(page, '/.well-known/mercure');
      const streamResponses = responses.filter((r) => new URL(r.url).pathname === '/.well-known/mercure' && r.type === 'EventSource');
      const posts = responses.filter((r) => new URL(r.url).pathname === '/.well-known/mercure' && r.type !== 'EventSource');
      assert.equal(posts.length, STREAMS, JSON.stringify(posts));
      assertOneH2Connection(
        responses.filter((r) => !posts.includes(r)), '/.well-known/mercure', timing,
      );
      assert.equal(streamResponses.length, STREAMS);
      assert.ok(posts.every((r) => r.protocol === 'h2' && r.connectionId === streamResponses[0].connectionId),
        `the posts share the streams' connection: ${JSON.stringify(posts)}`);
    });
  });

  // The hub names its own URL in the `Link: <…>; rel="mercure"` discovery header and as the
  // `resource` of its protected resource metadata. Over HTTPS that URL must be https: an https
  // page cannot follow an http:// hub link (mixed content).
  test('over HTTPS the hub advertises an https:// hub URL', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    await withPage(async (page) => {
      const seen = await page.evaluate(async () => {
        const posted = await fetch('/.well-known/mercure', {
          method: 'POST',
          body: new URLSearchParams({ topic: 'https://example.com/link', data: 'x' }),
        });
        const metadata = await fetch('/.well-known/oauth-protected-resource/.well-known/mercure');
        return { link: posted.headers.get('link'), resource: (await metadata.json()).resource };
      });
      const hub = `${server.base}/.well-known/mercure`;
      assert.equal(seen.link, `<${hub}>; rel="mercure"`);
      assert.equal(seen.resource, hub);
    });
  });
});
