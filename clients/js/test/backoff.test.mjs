// Reconnection waits: exponential backoff with full jitter, `retry:` as the base, a cap, and
// Retry-After.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay, DEFAULT_RETRY_MS, MAX_RETRY_MS, parseRetryAfter } from '../ssehub.js';

test('full jitter: from 0 up to (not including) base × 2^attempt', () => {
  for (let attempt = 0; attempt < 5; attempt++) {
    const ceiling = 1000 * 2 ** attempt;
    assert.equal(backoffDelay(attempt, 1000, 60000, () => 0), 0);
    assert.equal(backoffDelay(attempt, 1000, 60000, () => 0.5), ceiling / 2);
    assert.equal(backoffDelay(attempt, 1000, 60000, () => 0.999999), ceiling - 1);
  }
});

test('the ceiling stops at the cap, however many attempts', () => {
  for (const attempt of [5, 6, 10, 31, 100, 10000]) {
    const wait = backoffDelay(attempt, 1000, 30000, () => 0.999999);
    assert.ok(wait < 30000 && wait >= 29999, `${attempt}: ${wait}`);
  }
});

test('random draws stay within bounds', () => {
  for (let attempt = 0; attempt < 40; attempt++) {
    for (let i = 0; i < 50; i++) {
      const wait = backoffDelay(attempt, DEFAULT_RETRY_MS, MAX_RETRY_MS);
      assert.ok(Number.isInteger(wait) && wait >= 0 && wait < Math.min(MAX_RETRY_MS, DEFAULT_RETRY_MS * 2 ** attempt), `${attempt}: ${wait}`);
    }
  }
});

test('the server\'s retry: is the base; a retry: over the cap raises the cap', () => {
  assert.equal(backoffDelay(0, 2000, 30000, () => 0.5), 1000);
  assert.equal(backoffDelay(3, 2000, 30000, () => 0.5), 8000);
  assert.equal(backoffDelay(0, 60000, 30000, () => 0.5), 30000);
  assert.equal(backoffDelay(0, 0, 30000, () => 0.5), 0);
});

test('Retry-After: seconds or an HTTP date', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  assert.equal(parseRetryAfter('5', now), 5);
  assert.equal(parseRetryAfter(' 120 ', now), 120);
  assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now), 30);
  assert.equal(parseRetryAfter('Wed, 31 Dec 2025 23:00:00 GMT', now), 0);
  assert.equal(parseRetryAfter(null, now), null);
  assert.equal(parseRetryAfter('', now), null);
  assert.equal(parseRetryAfter('soon', now), null);
});
