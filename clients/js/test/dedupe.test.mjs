// Ids: the order of hub ids, the newer and the oldest, and the filter that drops an event
// delivered twice (across the overlap of a renewed stream, a leader's handover, a resume).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareIds, IdFilter, newerId, oldestId } from '../ssehub.js';

test('hub ids compare by time then sequence, with or without the urn prefix', () => {
  assert.equal(compareIds('urn:ssehub:1700000000000-1', 'urn:ssehub:1700000000000-2'), -1);
  assert.equal(compareIds('urn:ssehub:1700000000001-1', 'urn:ssehub:1700000000000-9'), 1);
  assert.equal(compareIds('urn:ssehub:1700000000000-10', '1700000000000-9'), 1);
  assert.equal(compareIds('1700000000000-7', 'urn:ssehub:1700000000000-7'), 0);
  assert.equal(compareIds('urn:ssehub:99999999999999999999-1', 'urn:ssehub:99999999999999999998-1'), 1);
});

test('earliest, the cursor before every event, is older than every hub id', () => {
  assert.equal(compareIds('earliest', 'urn:ssehub:1-1'), -1);
  assert.equal(compareIds('urn:ssehub:0-0', 'earliest'), 0);
  assert.equal(newerId('earliest', 'urn:ssehub:1-1'), 'urn:ssehub:1-1');
  assert.equal(oldestId(['urn:ssehub:5-1', 'earliest']), 'earliest');
});

test('ids that are not the hub\'s have no order', () => {
  for (const [a, b] of [['book-1', 'book-2'], ['urn:ssehub:1-1', 'book'], ['', '1-1'], [null, '1-1'], ['1-1-1', '1-1'], ['urn:other:1-1', '1-1']]) {
    assert.equal(compareIds(a, b), null, `${a} ${b}`);
  }
});

test('newerId and oldestId', () => {
  assert.equal(newerId(null, '1-1'), '1-1');
  assert.equal(newerId('1-2', null), '1-2');
  assert.equal(newerId('urn:ssehub:1-2', 'urn:ssehub:1-1'), 'urn:ssehub:1-2');
  assert.equal(newerId('urn:ssehub:1-1', 'urn:ssehub:1-2'), 'urn:ssehub:1-2');
  assert.equal(newerId('book-1', 'book-0'), 'book-0', 'without an order, the later one given');
  assert.equal(oldestId(['urn:ssehub:5-1', null, 'urn:ssehub:2-9', 'urn:ssehub:3-1']), 'urn:ssehub:2-9');
  assert.equal(oldestId([null, undefined]), null);
  assert.equal(oldestId(['book-2', 'urn:ssehub:1-1']), 'book-2', 'without an order, the first given');
});

test('a repeated id is dropped; new ones pass; empty ids always pass', () => {
  const filter = new IdFilter();
  const got = ['urn:ssehub:1-1', 'urn:ssehub:1-2', 'urn:ssehub:1-2', 'urn:ssehub:1-3', 'urn:ssehub:1-1', '', '']
    .map((id) => filter.accept(id));
  assert.deepEqual(got, [true, true, false, true, false, true, true]);
});

test('the overlap of two streams: each event once, in order, whatever the interleaving', () => {
  const events = Array.from({ length: 50 }, (_, i) => `urn:ssehub:1700000000000-${i + 1}`);
  for (let round = 0; round < 200; round++) {
    // The old stream delivered up to 20 when the new one was opened with cursor 20; then both
    // run (the old one up to 30) until the old one is stopped.
    const filter = new IdFilter();
    const delivered = [];
    for (const id of events.slice(0, 20)) if (filter.accept(id)) delivered.push(id);
    const a = events.slice(20, 30);
    const b = events.slice(20);
    while (a.length || b.length) {
      const from = a.length && (!b.length || Math.random() < 0.5) ? a : b;
      const id = from.shift();
      if (filter.accept(id)) delivered.push(id);
    }
    assert.deepEqual(delivered, events);
  }
});

test('hub ids at or before the newest delivered are dropped even beyond the remembered window', () => {
  const filter = new IdFilter(4);
  for (let i = 1; i <= 10; i++) assert.ok(filter.accept(`urn:ssehub:1-${i}`));
  assert.equal(filter.recent.size, 4);
  assert.equal(filter.accept('urn:ssehub:1-2'), false);
  assert.equal(filter.accept('urn:ssehub:1-11'), true);
});

test('publisher ids are remembered by the window only', () => {
  const filter = new IdFilter(3);
  assert.deepEqual(['a', 'b', 'a', 'c', 'd', 'a'].map((id) => filter.accept(id)), [true, true, false, true, true, true]);
});

test('a seeded filter drops the cursor and every hub id before it', () => {
  const filter = new IdFilter();
  filter.seed('urn:ssehub:1700000000000-5');
  assert.deepEqual(['urn:ssehub:1700000000000-4', 'urn:ssehub:1700000000000-5', 'urn:ssehub:1700000000000-6'].map((id) => filter.accept(id)), [false, false, true]);
  const publisher = new IdFilter();
  publisher.seed('book-1');
  assert.deepEqual(['book-1', 'book-2'].map((id) => publisher.accept(id)), [false, true]);
});
