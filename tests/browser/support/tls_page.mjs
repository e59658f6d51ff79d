// Helpers for tls.test.mjs: watching a page for problems, recording the protocol and connection
// of every response it receives, and opening, feeding and closing many EventSources from it.

/** Longest a single wait for the page may take. */
export const WAIT = 10_000;

/**
 * Records everything that should not happen on the page: console output, uncaught errors,
 * failed requests and error responses. The streams this file closes itself at the end of a
 * test are cancelled with net::ERR_ABORTED: those are not failures.
 */
export function watch(page, closing) {
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
export async function recordResponses(context, page) {
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
export function runStreams(page, streams) {
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
export async function closeStreams(page, pathname) {
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
