// Tokens for the browser tests that turn auth on: HS256 JWTs signed here, with the claims a
// test gives.

import { createHmac } from 'node:crypto';

const b64url = (text) => Buffer.from(text).toString('base64url');

/** An HS256 JWT over `claims`, signed with `key`. */
export function jwt(key, claims) {
  const unsigned = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}`;
  return `${unsigned}.${createHmac('sha256', key).update(unsigned).digest('base64url')}`;
}
