// The library's version: the hub serves it at /ssehub@VERSION.js as immutable, so browsers and
// proxies keep that URL's content for a year. A version must therefore keep its content: the
// file's SHA-256 is recorded per version in versions.json, and the module's VERSION, the
// package's version and that record must agree.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { VERSION } from '../ssehub.js';

const read = (name) => readFileSync(new URL(`../${name}`, import.meta.url));

test('VERSION, package.json and versions.json agree, and the version keeps its content', () => {
  const pkg = JSON.parse(read('package.json'));
  assert.equal(VERSION, pkg.version, 'ssehub.js VERSION and package.json version');
  const recorded = JSON.parse(read('versions.json'));
  const hash = createHash('sha256').update(read('ssehub.js')).digest('hex');
  assert.ok(recorded[VERSION], `versions.json has no entry for ${VERSION}: add "${VERSION}": "${hash}"`);
  assert.equal(hash, recorded[VERSION],
    `ssehub.js changed but its VERSION (${VERSION}) did not: /ssehub@${VERSION}.js is cached as immutable. ` +
    'Give it a new VERSION (ssehub.js and package.json) and record the new hash in versions.json.');
});
