// The event-stream parser (SseParser) against the WHATWG rules: line breaks, BOM, data
// joining, id, retry, comments, and every way the bytes can be split into chunks.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SseParser } from '../ssehub.js';

/** Parses `chunks` (strings or byte arrays) and returns what the parser reported. */
function parse(chunks) {
  const out = { events: [], comments: [], retries: [] };
  const parser = new SseParser({
    event: (e) => out.events.push(e),
    comment: (c) => out.comments.push(c),
    retry: (ms) => out.retries.push(ms),
  });
  for (const chunk of chunks) {
    if (typeof chunk === 'string') parser.feed(chunk);
    else parser.feedBytes(chunk);
  }
  return out;
}

const bytes = (text) => new TextEncoder().encode(text);

/** The same bytes cut at every position, one byte at a time, and whole: the same result. */
function assertSplitInvariant(text, expected) {
  const all = bytes(text);
  assert.deepEqual(parse([all]), expected, 'whole');
  for (let at = 0; at <= all.length; at++) {
    assert.deepEqual(parse([all.slice(0, at), all.slice(at)]), expected, `split at byte ${at}`);
  }
  const single = [];
  for (const b of all) single.push(Uint8Array.of(b));
  assert.deepEqual(parse(single), expected, 'one byte at a time');
}

test('an event: type, data, id; the id persists as lastEventId on later events', () => {
  const got = parse(['event: chat\nid: 7\ndata: hi\n\ndata: next\n\n']);
  assert.deepEqual(got.events, [
    { type: 'chat', data: 'hi', id: '7', lastEventId: '7' },
    { type: 'message', data: 'next', id: null, lastEventId: '7' },
  ]);
});

test('data lines are joined with LF; the last LF is removed; an empty data line counts', () => {
  const got = parse(['data: a\ndata:\ndata:  b\ndata\n\n']);
  assert.deepEqual(got.events.map((e) => e.data), ['a\n\n b\n']);
  assert.deepEqual(parse(['data\n\n']).events.map((e) => e.data), ['']);
});

test('only one space after the colon is removed; a field without a colon has an empty value', () => {
  const got = parse(['data:no space\n\ndata:   three\n\nevent\ndata: x\n\n']);
  assert.deepEqual(got.events.map((e) => [e.type, e.data]), [['message', 'no space'], ['message', '  three'], ['message', 'x']]);
});

test('CR, LF and CRLF all end lines, mixed in one stream', () => {
  const expected = [
    { type: 'message', data: 'a\nb', id: '1', lastEventId: '1' },
    { type: 'x', data: 'c', id: null, lastEventId: '1' },
  ];
  for (const eol of ['\n', '\r', '\r\n']) {
    const text = `data: a${eol}data: b${eol}id: 1${eol}${eol}event: x${eol}data: c${eol}${eol}`;
    assert.deepEqual(parse([text]).events, expected, JSON.stringify(eol));
  }
  assert.deepEqual(parse(['data: a\rdata: b\r\nid: 1\n\revent: x\r\ndata: c\n\n']).events, expected);
});

test('a CR at the end of a chunk and an LF at the start of the next are one line break', () => {
  const got = parse(['data: a\r', '\ndata: b\r', '\n\r', '\n']);
  assert.deepEqual(got.events.map((e) => e.data), ['a\nb']);
  // A CR alone at the end is a line break already: the next chunk's first line is a new line.
  assert.deepEqual(parse(['data: a\r', 'data: b\n\n']).events.map((e) => e.data), ['a\nb']);
});

test('one leading BOM is skipped, a second is not (its line is an unknown field)', () => {
  assert.deepEqual(parse(['\uFEFFdata: x\n\n']).events.map((e) => e.data), ['x']);
  assert.deepEqual(parse(['\uFEFF\uFEFFdata: x\n\ndata: y\n\n']).events.map((e) => e.data), ['y']);
  // A BOM later in the stream is text.
  assert.deepEqual(parse(['data: \uFEFFx\n\n']).events.map((e) => e.data), ['\uFEFFx']);
  assert.deepEqual(parse([Uint8Array.of(0xef), Uint8Array.of(0xbb, 0xbf), bytes('data: x\n\n')]).events.map((e) => e.data), ['x']);
});

test('an id holding NUL is ignored; an empty id resets the last event id', () => {
  const got = parse(['id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\nid\ndata: c\n\n']);
  assert.deepEqual(got.events.map((e) => [e.id, e.lastEventId]), [['1', '1'], [null, '1'], ['', '']]);
});

test('an id without data moves the last event id but dispatches nothing', () => {
  const got = parse(['id: 5\n\ndata: a\n\n']);
  assert.deepEqual(got.events.map((e) => [e.data, e.id, e.lastEventId]), [['a', null, '5']]);
});

test('retry is read only when it is all ASCII digits', () => {
  const got = parse(['retry: 2500\nretry: 10a\nretry:\nretry: -1\nretry:  30\nretry: 1.5\nretry: 0\n\n']);
  assert.deepEqual(got.retries, [2500, 0]);
  assert.deepEqual(got.events, []);
});

test('comments are reported apart and never dispatch an event', () => {
  const got = parse([': heartbeat\n\n:\n\n: lagged behind: reconnect\n:x\ndata: a\n\n']);
  assert.deepEqual(got.comments, ['heartbeat', '', 'lagged behind: reconnect', 'x']);
  assert.deepEqual(got.events.map((e) => e.data), ['a']);
});

test('an event not finished by a blank line when the stream ends is not dispatched', () => {
  assert.deepEqual(parse(['data: a\n\ndata: b\n']).events.map((e) => e.data), ['a']);
  assert.deepEqual(parse(['data: a\n\ndata: b']).events.map((e) => e.data), ['a']);
});

test('unknown fields are ignored', () => {
  assert.deepEqual(parse(['foo: bar\ndata: a\nDATA: b\n\n']).events.map((e) => e.data), ['a']);
});

test('the hub\'s own frames, split at every byte (multi-byte UTF-8 included)', () => {
  const text = '\uFEFFretry: 2000\r\nevent: keepalive\r\ndata: {"timestamp":1.5,"data":{"status":"connected"}}\r\n\r\n' +
    ': heartbeat\n\n' +
    'event: message\nid: urn:ssehub:1795509003220-1\ndata: {"data":{"message":"ünïcödé ✓ 🎉","topic":"news"}}\n\n' +
    'event: chat\rid: urn:ssehub:1795509003220-2\rdata: two\rdata: lines\r\r' +
    'event: close\ndata: {"data":{"status":"complete"}}\n\n';
  assertSplitInvariant(text, {
    events: [
      { type: 'keepalive', data: '{"timestamp":1.5,"data":{"status":"connected"}}', id: null, lastEventId: '' },
      { type: 'message', data: '{"data":{"message":"ünïcödé ✓ 🎉","topic":"news"}}', id: 'urn:ssehub:1795509003220-1', lastEventId: 'urn:ssehub:1795509003220-1' },
      { type: 'chat', data: 'two\nlines', id: 'urn:ssehub:1795509003220-2', lastEventId: 'urn:ssehub:1795509003220-2' },
      { type: 'close', data: '{"data":{"status":"complete"}}', id: null, lastEventId: 'urn:ssehub:1795509003220-2' },
    ],
    comments: ['heartbeat'],
    retries: [2000],
  });
});

test('CRLF and BOM edge cases, split at every byte', () => {
  assertSplitInvariant('\uFEFF\r\n\r\ndata: a\r\n\r\n\r\ndata: b\r\r', {
    events: [
      { type: 'message', data: 'a', id: null, lastEventId: '' },
      { type: 'message', data: 'b', id: null, lastEventId: '' },
    ],
    comments: [],
    retries: [],
  });
  assertSplitInvariant('id: a\0b\nid: ok\ndata: x\r\n\n', {
    events: [{ type: 'message', data: 'x', id: 'ok', lastEventId: 'ok' }],
    comments: [],
    retries: [],
  });
});
