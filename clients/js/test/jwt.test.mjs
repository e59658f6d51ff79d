// Tokens: reading a JWT's payload and exp (never verifying: the hub does), when to renew,
// and which tokens may share a stream.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { credentialKey, jwtExpiry, jwtPayload, renewDelay } from '../ssehub.js';

const b64url = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
const token = (claims, header = { alg: 'HS256', typ: 'JWT' }) => `${b64url(header)}.${b64url(claims)}.c2lnbmF0dXJl`;

test('the payload of a JWT, base64url without padding, UTF-8 text', () => {
  const claims = { mercure: { subscribe: ['news/*', 'ünï?>'] }, sub: 'é', exp: 1700000000 };
  assert.deepEqual(jwtPayload(token(claims)), claims);
  for (let n = 0; n < 4; n++) {
    const padded = { p: 'x'.repeat(n) };
    assert.deepEqual(jwtPayload(token(padded)), padded, `length ${n}`);
  }
});

test('what is not a JWT has no payload', () => {
  for (const bad of [null, undefined, 42, '', 'abc', 'a.b', 'a.b.c.d', `x.${b64url('not json')}.y`, `x.${b64url('[1]')}.y`, `x.${b64url('"s"')}.y`, 'x.%%%.y']) {
    assert.equal(jwtPayload(bad), null, String(bad));
  }
});

test('exp in ms; none without a numeric exp', () => {
  assert.equal(jwtExpiry(token({ exp: 1700000000 })), 1700000000000);
  assert.equal(jwtExpiry(token({ exp: 1700000000.5 })), 1700000000500);
  assert.equal(jwtExpiry(token({ exp: '1700000000' })), null);
  assert.equal(jwtExpiry(token({})), null);
  assert.equal(jwtExpiry('garbage'), null);
});

test('renewal comes before exp by a fifth of the life, within [1 s, 60 s], at most half of what is left', () => {
  const now = 1_700_000_000_000;
  const at = (seconds) => now / 1000 + seconds;
  // An hour: 60 s before exp.
  assert.equal(renewDelay(token({ iat: at(0), exp: at(3600) }), now), 3540_000);
  // 100 s: 20 s before.
  assert.equal(renewDelay(token({ iat: at(0), exp: at(100) }), now), 80_000);
  // 4 s: at least 1 s before.
  assert.equal(renewDelay(token({ iat: at(0), exp: at(4) }), now), 3000);
  // Without iat, the life counts from now.
  assert.equal(renewDelay(token({ exp: at(100) }), now), 80_000);
  // Little left: half of it.
  assert.equal(renewDelay(token({ iat: at(-3590), exp: at(10) }), now), 5000);
  // Expired, and without exp.
  assert.equal(renewDelay(token({ exp: at(-5) }), now), 0);
  assert.equal(renewDelay(token({ sub: 'x' }), now), null);
});

test('tokens with the same rights share a key whatever their times and ids; other rights do not', () => {
  const a = token({ mercure: { subscribe: ['a', 'b'] }, sub: 'u', exp: 1, iat: 0, jti: 'x' });
  const b = token({ jti: 'y', iat: 5, exp: 99, sub: 'u', mercure: { subscribe: ['a', 'b'] } });
  const c = token({ mercure: { subscribe: ['a'] }, sub: 'u', exp: 1 });
  const d = token({ mercure: { subscribe: ['a', 'b'] }, sub: 'v', exp: 1 });
  assert.equal(credentialKey(a), credentialKey(b));
  assert.notEqual(credentialKey(a), credentialKey(c));
  assert.notEqual(credentialKey(a), credentialKey(d));
  assert.notEqual(credentialKey(a, true), credentialKey(a, false));
  assert.equal(credentialKey(null), credentialKey(undefined));
  assert.notEqual(credentialKey(null, true), credentialKey(null, false));
  assert.notEqual(credentialKey('opaque-1'), credentialKey('opaque-2'));
});
