// HTTPS and HTTP/2 in a real browser: Debian's Chromium driven by playwright-core against an
// ssehub binary started here with a self-signed certificate (made by `openssl` in a temporary
// directory) on a free port.
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
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
const BIN = process.env.SSEHUB_BIN
  ? resolve(process.env.SSEHUB_BIN)
  : resolve(HERE, '../../target/debug/ssehub');
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const OPENSSL = process.env.OPENSSL_BIN || 'openssl';

/** Longest a whole test may take; every wait inside is shorter. */
const TEST_TIMEOUT = 30_000;
/** Longest a single wait for the page may take. */
const WAIT = 10_000;
/** EventSources per page: well past HTTP/1.1's six connections per origin. */
const STREAMS = 30;

// ---- the certificate ----------------------------------------------------------------------

/** A self-signed P-256 certificate for localhost and 127.0.0.1, valid for a day, in `dir`. */
function makeCertificate(dir) {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  try {
    execFileSync(OPENSSL, [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    ], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 15_000 });
  } catch (err) {
    err.message += `\n--- openssl stderr ---\n${err.stderr?.toString('utf8') ?? ''}`;
    throw err;
  }
  return { cert, key };
}

// ---- the server ---------------------------------------------------------------------------

/** Starts ssehub with `args` on 127.0.0.1:0; resolves once it logged the port it listens on. */
async function startServer(args) {
  if (!existsSync(BIN)) {
    throw new Error(`no ssehub binary at ${BIN}: run \`cargo build\` first or set SSEHUB_BIN`);
  }
  // Only the flags given here configure the hub: drop keys, origins, TLS files from the environment.
  const env = Object.fromEntries(Object.entries(process.env)
    .filter(([name]) => !/^(SSEHUB|MERCURE)_/.test(name)));
  const child = spawn(BIN, ['--bind', '127.0.0.1:0', ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = [];
  const keep = (chunk) => {
    // Keep reading (a full pipe would block the server); remember the tail for diagnostics.
    output.push(chunk.toString('utf8'));
    if (output.length > 200) output.shift();
  };
  child.stderr.on('data', keep);
  const port = await new Promise((resolvePort, reject) => {
    let buffered = '';
    const timer = setTimeout(() => fail(new Error('ssehub did not log its address within 10 s')), 10_000);
    function fail(err) {
      clearTimeout(timer);
      child.kill('SIGKILL');
      err.message += `\n--- ssehub output ---\n${output.join('')}`;
      reject(err);
    }
    child.on('error', fail);
    child.on('exit', (code, signal) => fail(new Error(`ssehub exited early (${code ?? signal})`)));
    child.stdout.on('data', (chunk) => {
      keep(chunk);
      if (buffered === null) return;
      // The log may be coloured even when it is not a terminal: drop ANSI escapes first.
      buffered += chunk.toString('utf8').replace(/\x1b\[[0-9;]*m/g, '');
      const found = /listening addr=127\.0\.0\.1:(\d+)/.exec(buffered);
      if (found) {
        buffered = null;
        clearTimeout(timer);
        child.removeAllListeners('exit');
        resolvePort(Number(found[1]));
      } else if (buffered.length > 65_536) {
        buffered = buffered.slice(-4096);
      }
    });
  });
  return { child, port, base: `https://127.0.0.1:${port}`, output };
}

/** SIGTERM, then wait for the exit (SIGKILL after 10 s); asserts a clean exit. */
async function stopServer(server) {
  const { child } = server;
  if (child.exitCode === null && child.signalCode === null) {
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
  assert.equal(child.exitCode, 0, `ssehub should exit cleanly on SIGTERM\n${server.output.join('')}`);
}

// ---- the page -----------------------------------------------------------------------------

/**
 * Records everything that should not happen on the page: console output, uncaught errors,
 * failed requests and error responses. The streams this file closes itself at the end of a
 * test are cancelled with net::ERR_ABORTED: those are not failures.
 */
function watch(page, closing) {
  const problems = [];
  page.on('console', (msg) => problems.push(`console.${msg.type()}: ${msg.text()}`));
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('requestfailed', (request) => {
    const failure = request.failure()?.errorText ?? 'failed';
    if (closing.value && failure === 'net::ERR_ABORTED' && request.resourceType() === 'eventsource') return;
    problems.push(`request failed: ${request.method()} ${request.url()} (${failure})`);
  });
  page.on('response', (response) => {
    if (response.status() >= 400) {
      problems.push(`HTTP ${response.status()}: ${response.request().method()} ${response.url()}`);
    }
  });
  return problems;
}

/**
 * The protocol and connection of every response the page received, from the DevTools protocol
 * (`Network.responseReceived`): the page itself cannot tell connections apart.
 */
async function recordResponses(context, page) {
  const responses = [];
  const cdp = await context.newCDPSession(page);
  cdp.on('Network.responseReceived', ({ type, response }) => {
    responses.push({
      type,
      url: response.url,
      status: response.status,
      protocol: response.protocol,
      connectionId: response.connectionId,
      remote: `${response.remoteIPAddress}:${response.remotePort}`,
    });
  });
  await cdp.send('Network.enable');
  return responses;
}

/**
 * In the page: opens one EventSource per entry of `streams` (`{ url, post }`), waits until all
 * are open, then POSTs each one's `post` (`{ json }` for `/api/messages`, `{ form }` for the
 * Mercure endpoint), waits until every stream got at least one message and a little longer (for
 * strays), and reports what each stream received. The sources stay open in `window.streams`.
 */
function runStreams(page, streams) {
  return page.evaluate(async ({ streams, wait }) => {
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    const until = async (done, what) => {
      const started = Date.now();
      while (!done()) {
        if (Date.now() - started > wait) throw new Error(`timed out waiting for ${what()}`);
        await sleep(20);
      }
    };
    const open = streams.map(({ url }) => {
      const source = new EventSource(url);
      const stream = { url, source, got: [], events: [] };
      source.addEventListener('open', () => stream.events.push('open'));
      source.addEventListener('error', () => stream.events.push(`error (readyState ${source.readyState})`));
      source.addEventListener('message', (e) => stream.got.push({ id: e.lastEventId, data: e.data }));
      return stream;
    });
    window.streams = open;
    const summary = () => {
      const opened = open.filter((s) => s.events[0] === 'open').length;
      const rest = open.filter((s) => s.events[0] !== 'open').map((s) => [s.url, s.source.readyState, s.events]);
      return `${opened} of ${open.length} open; the others: ${JSON.stringify(rest)}`;
    };
    await until(() => open.every((s) => s.events.length > 0), () => `every stream to open: ${summary()}`);
    if (!open.every((s) => s.events[0] === 'open')) throw new Error(`not every stream opened: ${summary()}`);

    const posts = await Promise.all(streams.map(async ({ post }) => {
      const response = post.json
        ? await fetch('/api/messages', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(post.json),
        })
        : await fetch('/.well-known/mercure', { method: 'POST', body: new URLSearchParams(post.form) });
      return {
        status: response.status,
        type: response.headers.get('content-type'),
        link: response.headers.get('link'),
        body: await response.text(),
      };
    }));
    await until(() => open.every((s) => s.got.length > 0),
      () => `a message on every stream: ${JSON.stringify(open.map((s) => [s.url, s.got]))}`);
    await sleep(500);
    return {
      posts,
      got: open.map((s) => s.got),
      events: open.map((s) => s.events),
      readyStates: open.map((s) => s.source.readyState),
    };
  }, { streams, wait: WAIT });
}

/** Closes the page's EventSources; resolves to the page's resource timing of `pathname`. */
async function closeStreams(page, pathname) {
  return page.evaluate(async ({ pathname, wait }) => {
    for (const { source } of window.streams) source.close();
    // A resource timing entry is written when a fetch ends: the streams' once they are closed.
    const entries = () => performance.getEntriesByType('resource')
      .filter((e) => new URL(e.name).pathname === pathname && e.initiatorType !== 'fetch');
    const started = Date.now();
    while (entries().length < window.streams.length && Date.now() - started < wait) {
      await new Promise((r) => setTimeout(r, 20));
    }
    return entries().map((e) => ({ name: e.name, initiatorType: e.initiatorType, nextHopProtocol: e.nextHopProtocol }));
  }, { pathname, wait: WAIT });
}

// ---- the tests ----------------------------------------------------------------------------

describe('HTTPS and HTTP/2 in Chromium', { timeout: 120_000 }, () => {
  let dir;
  let server;
  let browser;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ssehub-tls-'));
    const { cert, key } = makeCertificate(dir);
    server = await startServer(['--tls-cert', cert, '--tls-key', key, '--log', 'info']);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      timeout: 15_000,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--ignore-certificate-errors',
      ],
    });
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
