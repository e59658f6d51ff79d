// Helpers for console.test.mjs: watching the hub console (the page's #console view) for
// problems, reading its topic table, publishing from its form, and checking its labels and
// contrast.

/** Longest a single wait for the page may take. */
export const WAIT = 20_000;

/**
 * Records what should not happen: console output, uncaught errors, failed requests and error
 * responses other than the `expected` ones. The console aborts its own fetch streams (leaving
 * the view, watching another topic): those are not failures.
 */
export function watch(page, expected = () => false) {
  const problems = [];
  page.on('console', (msg) => {
    const text = msg.text();
    const loadFailure = /Failed to load resource: the server responded with a status of (\d+)/.exec(text);
    if (loadFailure && expected(Number(loadFailure[1]), msg.location().url)) return;
    problems.push(`console.${msg.type()}: ${text}`);
  });
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('requestfailed', (request) => {
    const failure = request.failure()?.errorText ?? 'failed';
    const path = new URL(request.url()).pathname;
    if (failure === 'net::ERR_ABORTED' && (path === '/stream' || path === '/api/topics/stream')) return;
    problems.push(`request failed: ${request.method()} ${request.url()} (${failure})`);
  });
  page.on('response', (response) => {
    if (response.status() >= 400 && !expected(response.status(), response.url())) {
      problems.push(`HTTP ${response.status()}: ${response.request().method()} ${response.url()}`);
    }
  });
  return problems;
}

/** The table row of `topic` as { subscribers, last_id, rate, history }, or null. */
export async function row(page, topic) {
  return page.evaluate((name) => {
    const tr = [...document.querySelectorAll('#topics-body tr')]
      .find((r) => r.querySelector('th').textContent === name);
    if (!tr) return null;
    const cells = [...tr.querySelectorAll('td')].map((td) => td.textContent);
    return { subscribers: cells[0], last_id: cells[1], rate: cells[2], history: cells[3] };
  }, topic);
}

export async function waitForRow(page, topic, check) {
  const deadline = Date.now() + WAIT;
  let last = null;
  while (Date.now() < deadline) {
    last = await row(page, topic);
    if (last && check(last)) return last;
    await page.waitForTimeout(100);
  }
  throw new Error(`row ${topic} never matched; last seen ${JSON.stringify(last)}; table: ` +
    JSON.stringify(await page.locator('#topics-body').innerText()));
}

/** Publishes from the console form; resolves to the result or error text shown. */
export async function publishFromForm(page, { topic, event = '', message, private: isPrivate = false }) {
  await page.fill('#c-topic', topic);
  await page.fill('#c-event', event);
  await page.fill('#c-message', message);
  await page.setChecked('#c-private', isPrivate);
  await page.evaluate(() => {
    document.querySelector('#c-result').textContent = '';
    document.querySelector('#c-error').textContent = '';
  });
  await page.click('#c-send');
  await page.waitForFunction(
    () => document.querySelector('#c-result').textContent || document.querySelector('#c-error').textContent,
    null,
    { timeout: WAIT },
  );
  return {
    result: await page.locator('#c-result').textContent(),
    error: await page.locator('#c-error').textContent(),
  };
}

/** Every visible form control has a label (a <label for>, aria-label or aria-labelledby). */
export async function unlabelledControls(page) {
  return page.evaluate(() => [...document.querySelectorAll('input, select, textarea, button')]
    .filter((el) => el.offsetParent !== null)
    .filter((el) => {
      if (el.tagName === 'BUTTON') return !(el.getAttribute('aria-label') || el.textContent.trim());
      return !(el.labels?.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby'));
    })
    .map((el) => el.id || el.outerHTML.slice(0, 80)));
}

/** Text whose contrast with its background is under 4.5:1 (WCAG AA for normal text). */
export async function lowContrast(page) {
  return page.evaluate(() => {
    const rgba = (text) => (text.match(/[\d.]+/g) || []).map(Number);
    const luminance = ([r, g, b]) => {
      const c = [r, g, b].map((v) => {
        const s = v / 255;
        return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
      });
      return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
    };
    const background = (el) => {
      for (let node = el; node; node = node.parentElement) {
        const bg = rgba(getComputedStyle(node).backgroundColor);
        if (bg.length === 3 || (bg.length === 4 && bg[3] === 1)) return bg.slice(0, 3);
      }
      return [255, 255, 255];
    };
    const found = [];
    const view = document.querySelector('#console-view');
    const texts = [...view.querySelectorAll('*'), ...document.querySelectorAll('.views a')];
    for (const el of texts) {
      const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
      if (!own || el.offsetParent === null) continue;
      const fg = rgba(getComputedStyle(el).color).slice(0, 3);
      const [a, b] = [luminance(fg), luminance(background(el))].sort((x, y) => y - x);
      const ratio = (a + 0.05) / (b + 0.05);
      if (ratio < 4.5) found.push(`${el.tagName.toLowerCase()}#${el.id}.${el.className}: ${ratio.toFixed(2)}`);
    }
    return found;
  });
}
