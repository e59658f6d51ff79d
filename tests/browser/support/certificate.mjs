// A certificate for the browser tests over HTTPS: self-signed, made by `openssl` in a directory
// the test gives (a temporary one, removed by the test).
//
// OPENSSL_BIN overrides the openssl command (default: `openssl` on the PATH).

import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

const OPENSSL = process.env.OPENSSL_BIN || 'openssl';

/** A self-signed P-256 certificate for localhost and 127.0.0.1, valid for a day, in `dir`. */
export function makeCertificate(dir) {
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
