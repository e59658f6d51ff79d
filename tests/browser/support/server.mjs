// Starting and stopping the ssehub binary for the browser tests: one process per call, on a free
// port of 127.0.0.1, configured only by the flags a test gives it.
//
// SSEHUB_BIN overrides the binary (default: target/debug/ssehub of this repository).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
export const BIN = process.env.SSEHUB_BIN
  ? resolve(process.env.SSEHUB_BIN)
  : resolve(HERE, '../../../target/debug/ssehub');

/**
 * Starts ssehub with `args` on 127.0.0.1:0; resolves once it logged the port it listens on.
 * `scheme` is the scheme of the returned `base` URL (https when `args` turn TLS on); `env` is
 * added to the environment (RUST_LOG=info unless a test logs by a flag instead).
 */
export async function startServer(args, { scheme = 'http', env: extra = { RUST_LOG: 'info' } } = {}) {
  if (!existsSync(BIN)) {
    throw new Error(`no ssehub binary at ${BIN}: run \`cargo build\` first or set SSEHUB_BIN`);
  }
  // Only the flags given here configure the hub: drop keys, origins, TLS files from the environment.
  const env = Object.fromEntries(Object.entries(process.env)
    .filter(([name]) => !/^(SSEHUB|MERCURE)_/.test(name)));
  const child = spawn(BIN, ['--bind', '127.0.0.1:0', ...args], {
    env: { ...env, ...extra },
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
  return { child, port, base: `${scheme}://127.0.0.1:${port}`, output };
}

/** SIGTERM, then wait for the exit (SIGKILL after 10 s); asserts a clean exit. */
export async function stopServer(server) {
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
