// SharedEventSource in Node against a fake fetch(): Node has no Web Locks, so subscriptions
// share within this process only (the fallback), which runs the same Router as a leader tab:
// headers, reconnection with Last-Event-ID, `close`, 401s, token renewal with an overlap,
// merged streams filtered by topic, and a refused merged stream split up.

import { afterEach, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { SharedEventSource } from '../ssehub.js';

const HUB = 'http://hub.test';
const encoder = new TextEncoder();

/** A fake hub: each fetch() is a request the test answers and feeds. */
function fakeHub() {
  const hub = { requests: [], waiting: [], answers: [] };
  hub.fetch = async (url, init = {}) => {
    const request = { url: String(url), headers: { ...init.headers }, credentials: init.credentials, aborted: false };
    let controller;
    request.body = new ReadableStream({ start(c) { controller = c; } });
    // Sending to a stream the client aborted is a no-op, as for a server.
    request.send = (text) => {
      if (!request.aborted) controller.enqueue(encoder.encode(text));
    };
    request.end = () => {
      if (!request.aborted) controller.close();
    };
    if (init.signal) {
      init.signal.addEventListener('abort', () => {
        request.aborted = true;
        try {
          controller.error(new DOMException('aborted', 'AbortError'));
        } catch (err) {
          // Already closed.
        }
      });
    }
    hub.requests.push(request);
    for (const w of hub.waiting.splice(0)) w();
    const answer = hub.answers.shift() || { status: 200 };
    // A held answer waits for the test's request.respond(): the response headers arrive then.
    if (answer.hold) await new Promise((resolve) => { request.respond = resolve; });
    if (answer.status !== 200) {
      return new Response(JSON.stringify({ error: answer.error || 'no' }), { status: answer.status, headers: { 'content-type': 'application/json' } });
    }
    return new Response(request.body, { status: 200, headers: { 'content-type': 'text/event-stream', ...answer.headers } });
  };
  /** Resolves to the nth request (from 1) once it is made. */
  hub.request = async (n, timeout = 5000) => {
    const deadline = Date.now() + timeout;
    while (hub.requests.length < n) {
      if (Date.now() > deadline) throw new Error(`request ${n} not made (${hub.requests.length} made)`);
      await new Promise((resolve) => {
        hub.waiting.push(resolve);
        setTimeout(resolve, 50);
      });
    }
    return hub.requests[n - 1];
  };
  return hub;
}

/** Records what a source dispatches. */
function record(source, types = ['message', 'close', 'gap', 'lagged']) {
  const log = [];
  source.addEventListener('open', () => log.push(['open', source.readyState]));
  source.addEventListener('error', (e) => log.push(['error', source.readyState, e.status || 0]));
  for (const type of types) {
    source.addEventListener(type, (e) => log.push([type, e.data, e.lastEventId]));
  }
  return log;
}

async function until(check, timeout = 5000) {
  const deadline = Date.now() + timeout;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const live = (topic, text, id, extra = '') => `event: message\nid: ${id}\ndata: {"timestamp":1,"data":{"message":"${text}","topic":"${topic}"${extra}}}\n\n`;
const HELLO = 'retry: 5\nevent: keepalive\ndata: {"data":{"status":"connected"}}\n\n';
const b64url = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
const token = (claims) => `${b64url({ alg: 'HS256' })}.${b64url(claims)}.c2ln`;

let hub;
let realFetch;
let sources;

beforeEach(() => {
  hub = fakeHub();
  realFetch = globalThis.fetch;
  globalThis.fetch = hub.fetch;
  sources = [];
});

afterEach(() => {
  for (const s of sources) s.close();
  globalThis.fetch = realFetch;
});

function open(url, init) {
  const source = new SharedEventSource(url, init);
  sources.push(source);
  return source;
}

test('behaves as EventSource: url, readyState, handlers, MessageEvent with lastEventId', async () => {
  const source = open(`${HUB}/stream?mode=live&topic=news`);
  assert.equal(source.url, `${HUB}/stream?mode=live&topic=news`);
  assert.equal(source.withCredentials, false);
  assert.equal(source.readyState, SharedEventSource.CONNECTING);
  assert.equal(source.CLOSED, 2);
  const got = [];
  source.onmessage = (e) => got.push([e.data, e.lastEventId, e.origin, e instanceof MessageEvent]);
  const log = record(source);
  const req = await hub.request(1);
  assert.equal(req.url, `${HUB}/stream?mode=live&topic=news`);
  assert.equal(req.headers.Accept, 'text/event-stream');
  assert.equal(req.headers.Authorization, undefined);
  assert.equal(req.headers['Last-Event-ID'], undefined);
  assert.equal(req.credentials, 'same-origin');
  req.send(HELLO + live('news', 'one', 'urn:ssehub:1-1'));
  await until(() => got.length === 1);
  assert.equal(source.readyState, SharedEventSource.OPEN);
  assert.deepEqual(got, [['{"timestamp":1,"data":{"message":"one","topic":"news"}}', 'urn:ssehub:1-1', HUB, true]]);
  assert.deepEqual(log[0], ['open', 1]);
  source.close();
  assert.equal(source.readyState, SharedEventSource.CLOSED);
  await until(() => req.aborted);
  req.send(live('news', 'late', 'urn:ssehub:1-2'));
  assert.equal(got.length, 1, 'nothing after close()');
  assert.throws(() => new SharedEventSource('/relative/without/base'), { name: 'SyntaxError' });
});

test('the token goes in an Authorization header, never the URL; cookies with withCredentials', async () => {
  const secret = token({ mercure: { subscribe: ['*'] } });
  const source = open(`${HUB}/stream?mode=live&topic=a`, { token: secret, withCredentials: true });
  const req = await hub.request(1);
  assert.equal(req.headers.Authorization, `Bearer ${secret}`);
  assert.ok(!req.url.includes(secret));
  assert.equal(req.credentials, 'include');
  assert.equal(source.withCredentials, true);
});

test('the stream ends: reconnects after retry: with Last-Event-ID, and repeats nothing', async () => {
  const source = open(`${HUB}/stream?mode=live&topic=a`);
  const log = record(source);
  const first = await hub.request(1);
  first.send(HELLO + live('a', 'one', 'urn:ssehub:1-1') + live('a', 'two', 'urn:ssehub:1-2'));
  first.send(': lagged behind: reconnect with Last-Event-ID to resume from history\n\n');
  first.end();
  const second = await hub.request(2);
  assert.equal(second.headers['Last-Event-ID'], 'urn:ssehub:1-2');
  second.send(HELLO + live('a', 'two', 'urn:ssehub:1-2', ',"replayed":true') + live('a', 'three', 'urn:ssehub:1-3', ',"replayed":true'));
  await until(() => log.filter((l) => l[0] === 'message').length === 3);
  assert.deepEqual(log.map((l) => l.slice(0, 2)), [
    ['open', 1],
    ['message', '{"timestamp":1,"data":{"message":"one","topic":"a"}}'],
    ['message', '{"timestamp":1,"data":{"message":"two","topic":"a"}}'],
    ['lagged', 'lagged behind: reconnect with Last-Event-ID to resume from history'],
    ['error', 0],
    ['open', 1],
    ['message', '{"timestamp":1,"data":{"message":"three","topic":"a","replayed":true}}'],
  ]);
  assert.equal(source.readyState, SharedEventSource.OPEN);
});

test('a stream that ends before any event resumes from where it started (the hello\'s id)', async () => {
  const source = open(`${HUB}/stream?mode=live&topic=a`);
  const log = record(source);
  const first = await hub.request(1);
  first.send('retry: 5\nid: urn:ssehub:5-1\nevent: keepalive\ndata: {"data":{"status":"connected"}}\n\n');
  await until(() => source.readyState === SharedEventSource.OPEN);
  first.end();
  const second = await hub.request(2);
  assert.equal(second.headers['Last-Event-ID'], 'urn:ssehub:5-1', 'published in between: replayed');
  second.send(HELLO + live('a', 'between', 'urn:ssehub:6-1', ',"replayed":true'));
  await until(() => log.some((l) => l[0] === 'message'));
  assert.deepEqual(log.filter((l) => l[0] === 'message').map((l) => l[2]), ['urn:ssehub:6-1']);
});

test('a Mercure stream without a cursor resumes from its Mercure-Last-Event-ID (earliest too)', async () => {
  for (const start of ['urn:ssehub:7-3', 'earliest']) {
    hub = fakeHub();
    globalThis.fetch = hub.fetch;
    hub.answers.push({ status: 200, headers: { 'mercure-last-event-id': start } });
    const source = open(`${HUB}/.well-known/mercure?topic=${start}`);
    const first = await hub.request(1);
    assert.equal(first.headers['Last-Event-ID'], undefined);
    first.send(':\n\n');
    await until(() => source.readyState === SharedEventSource.OPEN);
    first.end();
    const second = await hub.request(2);
    assert.equal(second.headers['Last-Event-ID'], start);
    source.close();
  }
});

test('a burst: the close event of status complete ends it, with no reconnection', async () => {
  const source = open(`${HUB}/stream?topic=a`);
  const log = record(source);
  const req = await hub.request(1);
  const copy = (n) => `event: message\nid: urn:ssehub:1-1\ndata: {"data":{"message":"m","topic":"a","sequence":${n}}}\n\n`;
  req.send('event: keepalive\ndata: {}\n\n' + copy(1) + copy(2) + copy(3));
  req.send('event: close\ndata: {"timestamp":1,"data":{"status":"complete","message":"stream complete"}}\n\n');
  req.end();
  await until(() => source.readyState === SharedEventSource.CLOSED);
  assert.deepEqual(log.map((l) => l[0]), ['open', 'message', 'message', 'message', 'close'], 'the repeats of one id are all delivered');
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(hub.requests.length, 1, 'no reconnection after complete');
});

test('a live stream closed by the server (lifetime) is resumed, the close event dispatched', async () => {
  const source = open(`${HUB}/stream?mode=live&topic=a`);
  const log = record(source);
  const first = await hub.request(1);
  first.send(HELLO + live('a', 'one', 'urn:ssehub:1-1'));
  first.send('event: close\ndata: {"timestamp":1,"data":{"status":"lifetime","message":"reconnect"}}\n\n');
  first.end();
  const second = await hub.request(2);
  assert.equal(second.headers['Last-Event-ID'], 'urn:ssehub:1-1');
  second.send(HELLO);
  await until(() => source.readyState === SharedEventSource.OPEN && log.filter((l) => l[0] === 'open').length === 2);
  assert.deepEqual(log.map((l) => l[0]), ['open', 'message', 'close', 'error', 'open']);
});

test('a refused stream (403) fails for good: error, CLOSED, the status on the event', async () => {
  hub.answers.push({ status: 403, error: 'the token does not grant it' });
  const source = open(`${HUB}/stream?mode=live&topic=a`);
  const log = record(source);
  await until(() => source.readyState === SharedEventSource.CLOSED);
  assert.deepEqual(log, [['error', 2, 403]]);
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(hub.requests.length, 1);
});

test('503 is tried again later; 401 with getToken is tried again with a fresh token', async () => {
  hub.answers.push({ status: 503 }, { status: 401 });
  let calls = 0;
  const source = open(`${HUB}/stream?mode=live&topic=a`, { token: 'old', getToken: () => `fresh-${++calls}` });
  const log = record(source);
  const third = await hub.request(3);
  assert.equal(hub.requests[0].headers.Authorization, 'Bearer old');
  assert.equal(hub.requests[1].headers.Authorization, 'Bearer old');
  assert.equal(third.headers.Authorization, 'Bearer fresh-1');
  third.send(HELLO);
  await until(() => source.readyState === SharedEventSource.OPEN);
  assert.deepEqual(log.map((l) => l[0]), ['error', 'error', 'open']);
});

test('a token about to expire is renewed: a new stream with the fresh token and Last-Event-ID, no event lost or repeated', async () => {
  const now = Date.now() / 1000;
  const first = token({ mercure: { subscribe: ['a'] }, iat: now, exp: now + 2 });
  let calls = 0;
  const source = open(`${HUB}/stream?mode=live&topic=a`, {
    token: first,
    getToken: () => token({ mercure: { subscribe: ['a'] }, iat: Date.now() / 1000, exp: Date.now() / 1000 + 60, n: ++calls }),
  });
  const log = record(source);
  const old = await hub.request(1);
  old.send(HELLO + live('a', 'e1', 'urn:ssehub:1-1') + live('a', 'e2', 'urn:ssehub:1-2'));
  hub.answers.push({ status: 200, hold: true });
  const renewed = await hub.request(2, 3000);
  assert.equal(calls, 1);
  assert.notEqual(renewed.headers.Authorization, `Bearer ${first}`);
  assert.equal(renewed.headers['Last-Event-ID'], 'urn:ssehub:1-2');
  // The overlap: the old stream still delivers e3 while the new one replays it.
  old.send(live('a', 'e3', 'urn:ssehub:1-3'));
  await until(() => log.filter((l) => l[0] === 'message').length === 3);
  assert.equal(old.aborted, false, 'the old stream runs until the new one is open');
  renewed.respond();
  renewed.send(HELLO + live('a', 'e3', 'urn:ssehub:1-3', ',"replayed":true') + live('a', 'e4', 'urn:ssehub:1-4'));
  await until(() => old.aborted);
  await until(() => log.filter((l) => l[0] === 'message').length === 4);
  renewed.send(live('a', 'e5', 'urn:ssehub:1-5'));
  await until(() => log.filter((l) => l[0] === 'message').length === 5);
  assert.deepEqual(log.filter((l) => l[0] === 'message').map((l) => JSON.parse(l[1]).data.message), ['e1', 'e2', 'e3', 'e4', 'e5']);
  assert.deepEqual(log.map((l) => l[0]).filter((t) => t !== 'message'), ['open'], 'no error, no second open');
});

test('shared subscriptions merge into one stream; each gets only its topics', async () => {
  const a = open(`${HUB}/stream?mode=live&topic=a`);
  const b = open(`${HUB}/stream?mode=live&topic=b/*&topic=a`);
  const logA = record(a);
  const logB = record(b);
  const req = await hub.request(1);
  assert.equal(req.url, `${HUB}/stream?mode=live&topic=b/*&topic=a`, 'the URL of the member that names the union');
  req.send(HELLO + live('a', 'x1', 'urn:ssehub:1-1') + live('b/c', 'x2', 'urn:ssehub:1-2') + live('a', 'x3', 'urn:ssehub:1-3'));
  await until(() => logB.filter((l) => l[0] === 'message').length === 3);
  await until(() => logA.filter((l) => l[0] === 'message').length === 2);
  assert.deepEqual(logA.filter((l) => l[0] === 'message').map((l) => l[2]), ['urn:ssehub:1-1', 'urn:ssehub:1-3']);
  assert.equal(hub.requests.length, 1);
  // One leaves: the stream follows with the smaller union, from where it was.
  b.close();
  const smaller = await hub.request(2);
  assert.equal(smaller.url, `${HUB}/stream?mode=live&topic=a`);
  assert.equal(smaller.headers['Last-Event-ID'], 'urn:ssehub:1-3');
});

test('a merged stream refused with 400 splits into one stream per subscription', async () => {
  hub.answers.push({ status: 400, error: 'too many topics' });
  const a = open(`${HUB}/stream?mode=live&topic=a`);
  const b = open(`${HUB}/stream?mode=live&topic=b`);
  await hub.request(3);
  const urls = hub.requests.slice(1).map((r) => r.url).sort();
  assert.deepEqual(urls, [`${HUB}/stream?mode=live&topic=a`, `${HUB}/stream?mode=live&topic=b`]);
  for (const r of hub.requests.slice(1)) r.send(HELLO);
  await until(() => a.readyState === 1 && b.readyState === 1);
});

test('shared: false opens a stream of its own', async () => {
  open(`${HUB}/stream?mode=live&topic=a`, { shared: false });
  open(`${HUB}/stream?mode=live&topic=a`, { shared: false });
  await hub.request(2);
  assert.equal(hub.requests.length, 2);
});

test('discover: the hub URL from the Link header', async () => {
  globalThis.fetch = async () => new Response('{}', {
    headers: { link: '<https://example.com/x>; rel="self", </.well-known/mercure>; rel="mercure"' },
  });
  assert.equal(await SharedEventSource.discover('https://api.example.com/books/1'), 'https://api.example.com/.well-known/mercure');
});
