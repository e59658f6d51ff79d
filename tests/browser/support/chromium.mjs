// Launching Debian's Chromium for the browser tests: headless, without the sandbox (the tests
// may run as root), and without connections of Chromium's own (background networking,
// component updates, sync), which a closed network would refuse.
//
// CHROMIUM_BIN overrides the browser (default /usr/bin/chromium).

import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

/** Launches Chromium with the usual flags and `extraArgs` after them. */
export function launchChromium(extraArgs = []) {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 15_000,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      ...extraArgs,
    ],
  });
}
