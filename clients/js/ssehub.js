// ssehub.js: the browser client of ssehub. One ES module, no dependencies, no build step; the
// hub serves it at /ssehub.js and clients/js/ keeps it as a package.
//
// SharedEventSource is a drop-in for EventSource that reads the stream with fetch(), so it can
// send a token in an Authorization header, renew that token before it expires without losing an
// event, reconnect with backoff and Last-Event-ID, resume after a reload (sessionStorage), and
// share one upstream connection among all the tabs of a browser profile.
//
// The map of this file, bottom layer first:
//   1. Building blocks, pure and exported (Node's test runner tests them): the event-stream
//      parser, backoff, JWT expiry, hub id order and the dedupe filter, subscription URLs,
//      topic patterns and their union, the plan of upstreams, the Link header.
//   2. Connection: one fetch() of an event stream, from headers to the end of the body.
//   3. Router: the upstreams for a set of subscriptions: plans them, opens, switches (with an
//      overlap, so no event is lost), reconnects, renews tokens, and hands events on.
//   4. Hosts: where a Router runs. LocalHost: in this tab. SharedTab: in the leader of the
//      profile's tabs, elected with Web Locks, events forwarded over a BroadcastChannel.
//   5. SharedEventSource, the EventSource drop-in, and discover() (Mercure's Link header).

export const VERSION = "0.1.0";

// ---- 1. Building blocks ------------------------------------------------------------------------

/** How long the first reconnection waits at most (the server's `retry:` replaces it), ms. */
export const DEFAULT_RETRY_MS = 1000;
/** The longest reconnection wait, ms. */
export const MAX_RETRY_MS = 30000;
/** Patterns one native stream may name (the hub's default --max-topics-per-stream). */
export const MAX_TOPICS_PER_STREAM = 16;

/**
 * A parser of `text/event-stream` by the WHATWG rules: one BOM skipped, lines ended by CRLF, LF
 * or CR (a CR at the end of one chunk and an LF at the start of the next are one line break),
 * `data` lines joined with LF, `id` ignored when it holds NUL, `retry` only when all ASCII
 * digits, comments reported apart, and an event dispatched only at a blank line (an unfinished
 * one at the end of the stream is dropped).
 *
 * `handlers.event({type, data, id, lastEventId})`: `id` is the event's own `id:` field (null
 * when it had none), `lastEventId` the stream's last event id after it, as EventSource keeps it.
 * `handlers.comment(text)`, `handlers.retry(ms)`.
 */
export class SseParser {
  constructor(handlers = {}) {
    this.handlers = handlers;
    this.buffer = "";
    this.started = false;
    this.skipLF = false;
    this.data = "";
    this.type = "";
    this.idBuffer = "";
    this.idSeen = false;
    this.lastEventId = "";
    this.decoder = null;
  }

  /** Feeds bytes (a Uint8Array), decoded as UTF-8 across chunk boundaries. */
  feedBytes(bytes) {
    // ignoreBOM keeps a BOM in the text so that the parser skips exactly one, as the spec says.
    if (!this.decoder) this.decoder = new TextDecoder("utf-8", { ignoreBOM: true });
    this.feed(this.decoder.decode(bytes, { stream: true }));
  }

  /** Feeds decoded text. */
  feed(text) {
    if (!this.started) {
      if (text.length === 0) return;
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    if (this.skipLF && text.length > 0) {
      this.skipLF = false;
      if (text.charCodeAt(0) === 10) text = text.slice(1);
    }
    const buf = this.buffer + text;
    const eol = /[\r\n]/g;
    let start = 0;
    for (;;) {
      eol.lastIndex = start;
      const found = eol.exec(buf);
      if (!found) break;
      const at = found.index;
      const line = buf.slice(start, at);
      if (buf.charCodeAt(at) === 13) {
        if (at + 1 < buf.length) {
          start = at + (buf.charCodeAt(at + 1) === 10 ? 2 : 1);
        } else {
          // The LF of a CRLF may be the first byte of the next chunk.
          start = at + 1;
          this.skipLF = true;
        }
      } else {
        start = at + 1;
      }
      this.line(line);
    }
    this.buffer = buf.slice(start);
  }

  line(line) {
    if (line === "") {
      this.dispatch();
      return;
    }
    if (line.charCodeAt(0) === 58) {
      if (this.handlers.comment) this.handlers.comment(line.slice(line.charCodeAt(1) === 32 ? 2 : 1));
      return;
    }
    const colon = line.indexOf(":");
    let field = line;
    let value = "";
    if (colon >= 0) {
      field = line.slice(0, colon);
      value = line.slice(colon + (line.charCodeAt(colon + 1) === 32 ? 2 : 1));
    }
    if (field === "event") {
      this.type = value;
    } else if (field === "data") {
      this.data += value + "\n";
    } else if (field === "id") {
      if (value.indexOf("\0") < 0) {
        this.idBuffer = value;
        this.idSeen = true;
      }
    } else if (field === "retry") {
      if (/^[0-9]+$/.test(value) && this.handlers.retry) this.handlers.retry(parseInt(value, 10));
    }
  }

  dispatch() {
    this.lastEventId = this.idBuffer;
    const id = this.idSeen ? this.idBuffer : null;
    this.idSeen = false;
    if (this.data === "") {
      this.type = "";
      return;
    }
    const event = {
      type: this.type || "message",
      data: this.data.slice(0, -1),
      id,
      lastEventId: this.lastEventId,
    };
    this.data = "";
    this.type = "";
    if (this.handlers.event) this.handlers.event(event);
  }
}

/**
 * Exponential backoff with full jitter: a wait drawn uniformly from [0, min(cap, base × 2^attempt)),
 * so that clients dropped together do not come back together. `attempt` counts from 0.
 */
export function backoffDelay(attempt, baseMs = DEFAULT_RETRY_MS, capMs = MAX_RETRY_MS, random = Math.random) {
  const base = Math.max(0, baseMs);
  const ceiling = Math.min(Math.max(capMs, base), base * Math.pow(2, Math.max(0, Math.min(attempt, 30))));
  return Math.floor(random() * ceiling);
}

/** The seconds of a `Retry-After` header (a number or an HTTP date), or null. */
export function parseRetryAfter(value, now = Date.now()) {
  if (value === null || value === undefined || value === "") return null;
  const text = String(value).trim();
  if (/^[0-9]+$/.test(text)) return parseInt(text, 10);
  const date = Date.parse(text);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - now) / 1000));
}

/** The payload of a JWT (decoded, not verified: the hub verifies), or null. */
export function jwtPayload(token) {
  if (typeof token !== "string") return null;
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    let base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) base64 += "=";
    const binary = atob(base64);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    const payload = JSON.parse(new TextDecoder().decode(bytes));
    return payload && typeof payload === "object" && !Array.isArray(payload) ? payload : null;
  } catch (err) {
    return null;
  }
}

/** When a JWT expires (its `exp`), in ms since the epoch; null without a numeric `exp`. */
export function jwtExpiry(token) {
  const payload = jwtPayload(token);
  return payload && typeof payload.exp === "number" && Number.isFinite(payload.exp) ? payload.exp * 1000 : null;
}

/**
 * How long from `now` to ask for a fresh token, ms, or null for a token without `exp`: a margin
 * before `exp` of a fifth of the token's life, at least 1 s and at most 60 s, and never more than
 * half of what is left (the renewed stream must be open before the old one ends).
 */
export function renewDelay(token, now = Date.now()) {
  const expires = jwtExpiry(token);
  if (expires === null) return null;
  const payload = jwtPayload(token);
  const issued = typeof payload.iat === "number" ? payload.iat * 1000 : now;
  const life = Math.max(0, expires - issued);
  const left = expires - now;
  const margin = Math.min(Math.max(life * 0.2, 1000), 60000, Math.max(left, 0) / 2);
  return Math.max(0, left - margin);
}

/**
 * What decides which upstream a subscription may share: its cookies mode and its token's grants
 * (the payload without the times and id that change on every renewal), so that tabs holding
 * different tokens for the same rights share one stream, and tabs with other rights do not.
 */
export function credentialKey(token, withCredentials = false) {
  const mode = withCredentials ? "include" : "same-origin";
  if (!token) return mode;
  const payload = jwtPayload(token);
  if (!payload) return mode + "|" + token;
  const rights = {};
  for (const name of Object.keys(payload).sort()) {
    if (!["exp", "iat", "nbf", "jti"].includes(name)) rights[name] = payload[name];
  }
  return mode + "|" + stableJson(rights);
}

function stableJson(value) {
  if (Array.isArray(value)) return "[" + value.map(stableJson).join(",") + "]";
  if (value && typeof value === "object") {
    return "{" + Object.keys(value).sort().map((k) => JSON.stringify(k) + ":" + stableJson(value[k])).join(",") + "}";
  }
  return JSON.stringify(value);
}

const HUB_ID = /^(?:urn:ssehub:)?([0-9]{1,20})-([0-9]{1,20})$/;

/**
 * The order of two hub ids (`urn:ssehub:MS-SEQ`, or the bare `MS-SEQ`): -1, 0 or 1; null when
 * either is not a hub id (a Mercure publisher's own id has no order).
 */
export function compareIds(a, b) {
  const x = hubIdParts(a);
  const y = hubIdParts(b);
  if (!x || !y) return null;
  for (let i = 1; i <= 2; i++) {
    const p = BigInt(x[i]);
    const q = BigInt(y[i]);
    if (p !== q) return p < q ? -1 : 1;
  }
  return 0;
}

/** A hub id's two numbers; `earliest` (the hub's cursor before every event) is `0-0`. */
function hubIdParts(id) {
  if (id === "earliest") return [id, "0", "0"];
  return typeof id === "string" && HUB_ID.exec(id);
}

/** The newer of two ids: by hub order when both are hub ids, else the later one given (`b`). */
export function newerId(a, b) {
  if (!a) return b || null;
  if (!b) return a;
  const order = compareIds(a, b);
  return order === null ? b : order >= 0 ? a : b;
}

/** The older of ids (the cursor that misses none of them); unordered ids keep the first given. */
export function oldestId(ids) {
  let oldest = null;
  for (const id of ids) {
    if (!id) continue;
    if (oldest === null || compareIds(id, oldest) === -1) oldest = id;
  }
  return oldest;
}

/**
 * Drops events already delivered, by id: an id seen among the last `size` is a repeat, and so is
 * a hub id at or before the newest hub id delivered (hub ids increase in publish order over all
 * topics, so this also holds for a repeat older than the remembered window).
 */
export class IdFilter {
  constructor(size = 1024) {
    this.size = size;
    this.recent = new Set();
    this.high = null;
  }

  /** Starts after `id` (a resume cursor): that id and, for a hub id, every one before it. */
  seed(id) {
    if (id) this.remember(id);
  }

  /** True when the event is new (and remembers it); false for a repeat. Empty ids pass. */
  accept(id) {
    if (!id) return true;
    if (this.recent.has(id)) return false;
    if (this.high !== null) {
      const order = compareIds(id, this.high);
      if (order !== null && order <= 0) return false;
    }
    this.remember(id);
    return true;
  }

  remember(id) {
    this.recent.add(id);
    if (this.recent.size > this.size) this.recent.delete(this.recent.values().next().value);
    if (HUB_ID.test(id) && (this.high === null || compareIds(id, this.high) === 1)) this.high = id;
  }
}

/** The hub's topic rule and its patterns (`prefix/*`, `*`), as a native stream takes them. */
const TOPIC_PATTERN = /^(\*|[A-Za-z0-9_.:-]+(\/[A-Za-z0-9_.:-]+)*(\/\*)?)$/;
/** The query parameters that carry a resume cursor (native; Mercure draft-07; draft-08). */
const CURSOR_PARAMS = ["lastEventId", "lastEventID", "last_event_id"];

/**
 * What a subscription URL is, for sharing and resuming:
 * - `live`: a native `mode=live` stream naming only valid topics (`topics`): streams of the
 *   same origin, path and credentials are merged into one, each tab filtering by topic (native
 *   events carry their topic in their data);
 * - `burst`: a native burst stream (no mode or `mode=burst`): never shared, never resumed from
 *   storage, no dedupe (the burst repeats one id by design);
 * - `mercure`: a Mercure subscription: shared by tabs asking for the same URL (Mercure updates
 *   do not carry their topic, so a merged stream could not be split again);
 * - `url`: anything else (other parameters, other paths): shared per URL.
 * `key` is the URL without its cursor parameters, `cursor` their value (the last non-empty).
 */
export function describeSubscription(href) {
  const url = new URL(href);
  let cursor = null;
  let hasCursorParam = false;
  for (const name of CURSOR_PARAMS) {
    for (const value of url.searchParams.getAll(name)) {
      hasCursorParam = true;
      if (value !== "") cursor = value;
    }
  }
  let key = url.href;
  if (hasCursorParam) {
    const bare = new URL(url.href);
    for (const name of CURSOR_PARAMS) bare.searchParams.delete(name);
    key = bare.href;
  }
  const base = url.origin + url.pathname;
  if (/\/\.well-known\/mercure$/.test(url.pathname)) return { kind: "mercure", key, cursor, base, topics: null };
  // The native stream is /stream (under the hub's path prefix, if any); the console's table of
  // topics, /api/topics/stream, is another kind of stream.
  if (/\/stream$/.test(url.pathname) && !/\/api\/topics\/stream$/.test(url.pathname)) {
    const modes = url.searchParams.getAll("mode");
    if (modes.length === 0 || (modes.length === 1 && modes[0] === "burst")) {
      return { kind: "burst", key, cursor, base, topics: null };
    }
    if (modes.length === 1 && modes[0] === "live") {
      let topics = url.searchParams.getAll("topic");
      if (topics.length === 0) topics = ["default"];
      const plain = [...url.searchParams.keys()].every((k) => k === "mode" || k === "topic" || CURSOR_PARAMS.includes(k)) &&
        topics.every((t) => t.length <= 128 && TOPIC_PATTERN.test(t));
      if (plain) return { kind: "live", key, cursor, base, topics };
    }
  }
  return { kind: "url", key, cursor, base, topics: null };
}

/** Whether a native topic pattern matches a topic: `*` every one, `p/*` those under `p/`. */
export function topicMatches(pattern, topic) {
  if (pattern === "*") return true;
  if (pattern.endsWith("/*")) {
    const prefix = pattern.slice(0, -1);
    return topic.length > prefix.length && topic.startsWith(prefix);
  }
  return pattern === topic;
}

/** Whether any of `patterns` matches `topic`. */
export function matchesAny(patterns, topic) {
  return patterns.some((p) => topicMatches(p, topic));
}

/** The smallest sorted list of patterns matching what `patterns` match (covered ones dropped). */
export function unionTopics(patterns) {
  const all = [...new Set(patterns)];
  if (all.includes("*")) return ["*"];
  const prefixes = all.filter((p) => p.endsWith("/*")).map((p) => p.slice(0, -1));
  return all.filter((p) => !prefixes.some((pre) => p !== pre + "*" && p.startsWith(pre))).sort();
}

/** A native live stream URL for `patterns` on `base` (the stream's origin and path). */
export function unionUrl(base, patterns) {
  const query = patterns.map((t) => "topic=" + encodeURIComponent(t).replace(/%2F/g, "/")).join("&");
  return base + "?mode=live&" + query;
}

/**
 * The upstream streams for a set of subscriptions, deterministic for a given set:
 * `subs` are `{id, url, kind, key, base, topics, cred, noUnion}`; the answer is a list of
 * `{key, url, kind, members}`. `live` subscriptions of one origin, path and credential share
 * streams holding the union of their topics, at most `maxTopics` patterns each (a subscription
 * is never split across two); a group of one subscription uses that subscription's URL as given,
 * a larger one the URL (without cursor) of a member whose topics are the union, if any.
 * Burst subscriptions get one stream each; the rest one stream per distinct URL and credential.
 */
export function planUpstreams(subs, maxTopics = MAX_TOPICS_PER_STREAM) {
  const sorted = [...subs].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const plans = [];
  const perUrl = new Map();
  const buckets = new Map();
  for (const sub of sorted) {
    if (sub.kind === "burst") {
      plans.push({ key: "solo|" + sub.id, url: sub.url, kind: sub.kind, members: [sub.id] });
    } else if (sub.kind === "live" && !sub.noUnion) {
      const bucket = sub.cred + "|" + sub.base;
      if (!buckets.has(bucket)) buckets.set(bucket, []);
      buckets.get(bucket).push(sub);
    } else {
      const key = sub.cred + "|" + (sub.noUnion ? "own|" : "") + sub.key;
      if (!perUrl.has(key)) {
        const plan = { key, url: sub.key, kind: sub.kind, members: [], first: sub };
        perUrl.set(key, plan);
        plans.push(plan);
      }
      perUrl.get(key).members.push(sub.id);
    }
  }
  for (const plan of perUrl.values()) {
    if (plan.members.length === 1) plan.url = plan.first.url;
    delete plan.first;
  }
  for (const [bucket, members] of buckets) {
    const chunks = [];
    for (const sub of members) {
      let chunk = chunks.find((c) => unionTopics(c.topics.concat(sub.topics)).length <= maxTopics);
      if (!chunk) {
        chunk = { topics: [], subs: [] };
        chunks.push(chunk);
      }
      chunk.topics = unionTopics(chunk.topics.concat(sub.topics));
      chunk.subs.push(sub);
    }
    chunks.forEach((chunk, index) => {
      // A member's own URL when it already names the union (tabs asking for the same topics):
      // the stream then stays the same as subscriptions come and go.
      const same = chunk.subs.find((s) => unionTopics(s.topics).join("\n") === chunk.topics.join("\n"));
      const url = chunk.subs.length === 1 ? chunk.subs[0].url : same ? same.key : unionUrl(chunk.subs[0].base, chunk.topics);
      plans.push({ key: bucket + "#" + index, url, kind: "live", members: chunk.subs.map((s) => s.id) });
    });
  }
  return plans;
}

/**
 * The links of a `Link` header: `[{url, params}]`, each URL resolved against `base`, parameter
 * names lower-cased, quoted values unquoted (commas and semicolons inside quotes kept).
 */
export function parseLinkHeader(header, base) {
  const links = [];
  const s = String(header || "");
  let i = 0;
  const spaces = () => {
    while (i < s.length && /\s/.test(s[i])) i++;
  };
  while (i < s.length) {
    const open = s.indexOf("<", i);
    if (open < 0) break;
    const close = s.indexOf(">", open);
    if (close < 0) break;
    const target = s.slice(open + 1, close).trim();
    i = close + 1;
    const params = {};
    for (;;) {
      spaces();
      if (s[i] !== ";") break;
      i++;
      spaces();
      let name = "";
      while (i < s.length && !/[=;,\s]/.test(s[i])) name += s[i++];
      spaces();
      let value = "";
      if (s[i] === "=") {
        i++;
        spaces();
        if (s[i] === '"') {
          i++;
          while (i < s.length && s[i] !== '"') {
            if (s[i] === "\\" && i + 1 < s.length) i++;
            value += s[i++];
          }
          i++;
        } else {
          while (i < s.length && s[i] !== ";" && s[i] !== ",") value += s[i++];
          value = value.trim();
        }
      }
      name = name.toLowerCase();
      if (name && !(name in params)) params[name] = value;
    }
    while (i < s.length && s[i] !== ",") i++;
    i++;
    let url = target;
    try {
      url = new URL(target, base).href;
    } catch (err) {
      // Keep the target as written when it does not resolve.
    }
    links.push({ url, params });
  }
  return links;
}

/** The Mercure hub URLs a `Link` header names (`rel` holding `mercure`), in order. */
export function mercureHubs(header, base) {
  return parseLinkHeader(header, base)
    .filter((link) => (link.params.rel || "").toLowerCase().split(/\s+/).includes("mercure"))
    .map((link) => link.url);
}

// ---- 2. Connection -----------------------------------------------------------------------------

/** The HTTP statuses after which a stream is tried again later rather than given up. */
const RETRY_STATUSES = [408, 429, 500, 502, 503, 504];

/**
 * One fetch() of an event stream, reporting to its group: `opened`, `event`, `comment`, `retry`
 * and, once, `ended({status?, retryAfter?, message?, network?, eof?})`. `stop()` aborts it and
 * silences it: a stopped connection reports nothing more.
 */
class Connection {
  constructor(group, { url, cursor, token, withCredentials, members }) {
    this.group = group;
    this.url = url;
    this.cursor = cursor;
    this.token = token;
    this.withCredentials = withCredentials;
    this.members = members;
    this.stopped = false;
    this.isOpen = false;
    this.closeStatus = null;
    this.controller = typeof AbortController === "function" ? new AbortController() : null;
  }

  start() {
    this.run().catch(() => this.end({ network: true }));
    return this;
  }

  stop() {
    if (this.stopped) return;
    this.stopped = true;
    if (this.controller) {
      try {
        this.controller.abort();
      } catch (err) {
        // Nothing to abort any more.
      }
    }
  }

  end(how) {
    if (this.stopped || this.ending) return;
    this.ending = true;
    // A task later, not now: a page being unloaded has its fetches aborted before its pagehide
    // listeners run, and the leader must not tell the other tabs that the stream failed when
    // it is only going away (a later task never runs in a page that is gone).
    setTimeout(() => {
      if (this.stopped) return;
      this.stopped = true;
      this.group.ended(this, how);
    }, 0);
  }

  async run() {
    const headers = { Accept: "text/event-stream" };
    if (this.token) headers.Authorization = "Bearer " + this.token;
    // A cursor the URL already carries is the server's to read; a newer one goes in the header,
    // which the hub reads first.
    if (this.cursor && this.cursor !== describeSubscription(this.url).cursor) headers["Last-Event-ID"] = this.cursor;
    let response;
    try {
      response = await fetch(this.url, {
        headers,
        credentials: this.withCredentials ? "include" : "same-origin",
        cache: "no-store",
        signal: this.controller ? this.controller.signal : undefined,
      });
    } catch (err) {
      this.end({ network: true });
      return;
    }
    if (this.stopped) {
      cancelBody(response);
      return;
    }
    const type = response.headers.get("content-type") || "";
    if (response.status !== 200 || !/^text\/event-stream/i.test(type)) {
      const retryAfter = parseRetryAfter(response.headers.get("retry-after"));
      let message = "";
      try {
        const text = await response.text();
        try {
          const body = JSON.parse(text);
          message = body && typeof body.error === "string" ? body.error : "";
        } catch (err) {
          message = text.slice(0, 200);
        }
      } catch (err) {
        message = "";
      }
      this.end({ status: response.status, retryAfter, message: message || response.statusText || "" });
      return;
    }
    this.isOpen = true;
    // Without a cursor, a Mercure hub may say where the stream starts (a native stream says it
    // as its first event's id): the position of members that have none yet.
    const start = this.cursor ? null : response.headers.get("mercure-last-event-id");
    this.group.opened(this, start);
    if (this.stopped) {
      cancelBody(response);
      return;
    }
    const parser = new SseParser({
      event: (event) => {
        if (!this.stopped) this.group.event(this, event);
      },
      comment: (text) => {
        if (!this.stopped) this.group.comment(this, text);
      },
      retry: (ms) => {
        if (!this.stopped) this.group.retry(ms);
      },
    });
    const reader = response.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (this.stopped) {
          reader.cancel().catch(() => {});
          return;
        }
        if (done) break;
        parser.feedBytes(value);
      }
    } catch (err) {
      this.end({ network: true });
      return;
    }
    this.end({ eof: true });
  }
}

function cancelBody(response) {
  try {
    if (response.body) response.body.cancel().catch(() => {});
  } catch (err) {
    // Already closed.
  }
}

// ---- 3. Router ---------------------------------------------------------------------------------

/** How long changes to the subscriptions are gathered before the upstreams follow, ms. */
const PLAN_DELAY_MS = 15;
/** How long a reconnection that needs a fresh token waits for one, ms. */
const TOKEN_WAIT_MS = 5000;
/** 401s in a row after which fresh tokens are no longer asked for. */
const MAX_REFUSED = 3;
/** The longest delay setTimeout takes. */
const MAX_TIMER_MS = 2147483647;

/**
 * The upstreams for a set of subscriptions, `entries` (a Map of id to entry; the host adds and
 * removes them, then calls `schedule()`). An entry is plain data, so that it can cross a
 * BroadcastChannel: `{id, tab, url, kind, key, base, topics, cred, token, withCredentials,
 * canRenew, pos, synced, noUnion}`, where `pos` is the last upstream id the subscription has
 * everything up to, and `synced` whether it takes events replayed on a resume.
 *
 * The host gets `deliver(message)` for each event (`members` lists the subscriptions it is
 * for), `report(ids, state, info)` when subscriptions open, reconnect or end, and
 * `requestTokens(ids)` when a token must be renewed.
 */
class Router {
  constructor(host, entries) {
    this.host = host;
    this.entries = entries;
    this.groups = new Map();
    this.timer = null;
    this.stopped = false;
  }

  schedule() {
    if (this.timer || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.plan();
    }, PLAN_DELAY_MS);
  }

  plan() {
    if (this.stopped) return;
    const subs = [...this.entries.values()];
    const plans = planUpstreams(subs, SharedEventSource.maxTopicsPerStream);
    const wanted = new Set();
    for (const plan of plans) {
      wanted.add(plan.key);
      let group = this.groups.get(plan.key);
      if (!group) {
        group = new Group(this, plan.key);
        this.groups.set(plan.key, group);
      }
      group.apply(plan);
    }
    for (const [key, group] of this.groups) {
      if (!wanted.has(key)) {
        group.stop();
        this.groups.delete(key);
      }
    }
  }

  /** A subscription's token changed: the group holding it may renew its stream now. */
  tokenChanged(id) {
    for (const group of this.groups.values()) {
      if (group.members.has(id)) group.tokenArrived();
    }
    this.schedule();
  }

  /** The group ended for good: its subscriptions are closed and forgotten. */
  finish(group, info) {
    const ids = [...group.members];
    for (const id of ids) this.entries.delete(id);
    this.groups.delete(group.key);
    this.host.report(ids, "closed", info);
  }

  /** A merged stream was refused: its subscriptions go on their own streams. */
  split(ids) {
    for (const id of ids) {
      const entry = this.entries.get(id);
      if (entry) entry.noUnion = true;
    }
    this.schedule();
  }

  stop() {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const group of this.groups.values()) group.stop();
    this.groups.clear();
  }

  /** For diagnostics: the upstreams and their state. */
  describe() {
    return [...this.groups.values()].map((g) => ({
      url: g.url,
      kind: g.kind,
      state: g.state,
      members: [...g.members],
      lastEventId: g.pos,
    }));
  }
}

/**
 * One upstream stream and the subscriptions it serves. `conn` is the connection delivering now;
 * `next` a connection being opened to replace it (another URL, a fresher token, an older cursor):
 * both deliver until `next` is open, then `conn` is stopped, and the ids repeated across the
 * overlap are dropped by each subscription's IdFilter.
 */
class Group {
  constructor(router, key) {
    this.router = router;
    this.key = key;
    this.members = new Set();
    this.url = null;
    this.kind = null;
    this.conn = null;
    this.next = null;
    this.pos = null;
    this.state = "idle";
    this.retryMs = DEFAULT_RETRY_MS;
    this.attempt = 0;
    this.refused = 0;
    this.retryTimer = null;
    this.renewTimer = null;
    this.tokenTimer = null;
    this.renewPending = false;
    this.wantToken = false;
    this.done = false;
  }

  entry(id) {
    return this.router.entries.get(id);
  }

  memberEntries() {
    return [...this.members].map((id) => this.entry(id)).filter(Boolean);
  }

  apply(plan) {
    if (this.done) return;
    const added = plan.members.filter((id) => !this.members.has(id));
    this.members = new Set(plan.members);
    this.kind = plan.kind;
    if (!this.conn && !this.next && !this.retryTimer && !this.tokenTimer) {
      this.url = plan.url;
      this.connect();
      return;
    }
    if (plan.url !== this.url) {
      this.url = plan.url;
      this.switchOver();
      return;
    }
    // The same stream: new members join the running connection, from now, unless one of them
    // resumes from an id older than where the stream is, which needs the stream reopened.
    // A member behind the stream gets nothing from the running connection (a live event there
    // would come before the ones it misses, which its filter would then drop as repeats): only
    // from a new one that replays from its position.
    const behind = (entry) => entry.pos && (!this.pos || (entry.pos !== this.pos && compareIds(entry.pos, this.pos) !== 1));
    let replay = false;
    const joinedAt = [];
    for (const entry of this.memberEntries()) {
      if (!entry.rewind) continue;
      // A member back from a freeze, maybe behind the stream.
      entry.rewind = false;
      if (behind(entry)) {
        replay = true;
        for (const conn of [this.conn, this.next]) if (conn) conn.members.delete(entry.id);
      }
    }
    for (const id of added) {
      const entry = this.entry(id);
      if (!entry) continue;
      if (behind(entry)) {
        replay = true;
        continue;
      }
      if (!entry.pos && this.state === "open" && this.pos) {
        entry.pos = this.pos;
        entry.synced = true;
        joinedAt.push(id);
      }
      for (const conn of [this.conn, this.next]) if (conn) conn.members.add(id);
    }
    if (replay) {
      this.switchOver();
    } else if (this.state === "open" && added.length) {
      // `pos` tells every tab where the members that joined from now stand, so that a leader
      // taking over resumes them from there.
      if (joinedAt.length) this.router.host.report(joinedAt, "open", { pos: this.pos });
      const others = added.filter((id) => !joinedAt.includes(id));
      if (others.length) this.router.host.report(others, "open", {});
    }
  }

  /** The freshest token of the members (the latest `exp`; one without `exp` never expires). */
  bestToken() {
    let best = null;
    let bestExpiry = -1;
    for (const entry of this.memberEntries()) {
      if (!entry.token) continue;
      const expiry = jwtExpiry(entry.token);
      const value = expiry === null ? Infinity : expiry;
      if (value > bestExpiry) {
        best = entry.token;
        bestExpiry = value;
      }
    }
    return best;
  }

  canRenew() {
    return this.memberEntries().some((e) => e.canRenew);
  }

  withCredentials() {
    return this.memberEntries().some((e) => e.withCredentials);
  }

  /** Where a new connection resumes: the oldest position among the members that have one. */
  cursor() {
    return oldestId(this.memberEntries().map((e) => e.pos));
  }

  newConnection() {
    const conn = new Connection(this, {
      url: this.url,
      cursor: this.cursor(),
      token: this.bestToken(),
      withCredentials: this.withCredentials(),
      members: new Set(this.members),
    });
    return conn.start();
  }

  connect() {
    this.clearTimers();
    if (this.conn) this.conn.stop();
    if (this.next) this.next.stop();
    this.next = null;
    if (this.state !== "open") this.state = "connecting";
    this.conn = this.newConnection();
  }

  /** Replaces the connection: with an overlap when the current one is open, else at once. */
  switchOver() {
    if (!this.conn || !this.conn.isOpen) {
      this.connect();
      return;
    }
    if (this.next) this.next.stop();
    this.next = this.newConnection();
  }

  opened(conn, start = null) {
    if (conn === this.next) {
      this.conn.stop();
      this.conn = conn;
      this.next = null;
    } else if (conn !== this.conn) {
      return;
    }
    this.state = "open";
    this.attempt = 0;
    this.refused = 0;
    this.scheduleRenew(conn.token);
    const ids = [...conn.members].filter((id) => this.members.has(id));
    SharedEventSource.diagnostics.emit("upstreamopen", { url: this.url, members: ids });
    // Where the stream starts, for the members that have no position yet: a leader that takes
    // over before any event came resumes them from there, not from whatever is live then.
    const placed = [];
    if (start) {
      this.pos = newerId(this.pos, start);
      for (const id of ids) {
        const entry = this.entry(id);
        if (entry && !entry.pos) {
          entry.pos = start;
          entry.synced = true;
          placed.push(id);
        }
      }
    }
    if (placed.length) this.router.host.report(placed, "open", { pos: start });
    const others = ids.filter((id) => !placed.includes(id));
    if (others.length) this.router.host.report(others, "open", {});
  }

  event(conn, event) {
    if (conn !== this.conn && conn !== this.next) return;
    const native = this.kind !== "mercure";
    if (native && event.id === null && event.type === "close") {
      if (conn === this.conn && this.next) {
        // The stream being replaced ends (its token expired, say): the new one carries on, and
        // the members never see this end.
        conn.stop();
        this.conn = this.next;
        this.next = null;
        return;
      }
      const status = closeStatus(event.data);
      conn.closeStatus = status;
      this.forward(conn, event, null, false);
      if (status === "complete") this.finish({ fatal: false });
      return;
    }
    let topic = null;
    let replayed = false;
    if (native && event.id) {
      try {
        const body = JSON.parse(event.data);
        const data = body && typeof body === "object" ? body.data : null;
        if (data && typeof data === "object") {
          if (typeof data.topic === "string") topic = data.topic;
          replayed = data.replayed === true;
        }
      } catch (err) {
        // Not the hub's JSON: delivered to every member.
      }
    }
    this.forward(conn, event, topic, replayed);
  }

  /** Hands an event to the members of `conn` that take it, moving their positions on. */
  forward(conn, event, topic, replayed) {
    const members = [];
    for (const id of conn.members) {
      if (!this.members.has(id)) continue;
      const entry = this.entry(id);
      if (!entry) continue;
      if (event.id) {
        if (!entry.synced) {
          // A member that joined without a cursor takes what is live from its join on, not
          // what the stream replays for the others.
          if (replayed) continue;
          entry.synced = true;
        }
        entry.pos = newerId(entry.pos, event.id);
      }
      members.push(id);
    }
    if (event.id) this.pos = newerId(this.pos, event.id);
    if (members.length === 0) return;
    this.router.host.deliver({
      members,
      type: event.type,
      data: event.data,
      id: event.id,
      topic,
      dedupe: this.kind !== "burst",
    });
  }

  comment(conn, text) {
    if (/^lagged/.test(text)) {
      this.forward(conn, { type: "lagged", data: text, id: null }, null, false);
    } else if (/^expired/.test(text)) {
      conn.closeStatus = "expired";
    }
  }

  retry(ms) {
    this.retryMs = ms;
  }

  ended(conn, how) {
    if (conn === this.next) {
      // The replacement failed: treat it as the failure of the stream.
      this.next = null;
      if (this.conn) this.conn.stop();
      this.conn = null;
    } else if (conn === this.conn) {
      this.conn = null;
      if (this.next) {
        // The old one ended while its replacement opens: the replacement carries on.
        this.conn = this.next;
        this.next = null;
        return;
      }
    } else {
      return;
    }
    if (this.done) return;
    this.clearRenew();
    let retryAfter = null;
    if (how.status) {
      const status = how.status;
      if (status === 401 && this.canRenew() && this.refused < MAX_REFUSED) {
        this.refused += 1;
        this.wantToken = true;
      } else if (RETRY_STATUSES.includes(status)) {
        retryAfter = how.retryAfter;
      } else if (this.kind === "live" && this.members.size > 1 && status >= 400 && status < 500) {
        // The merged stream was refused (more topics than the hub takes, say): each member
        // tries its own URL, so that one refused subscription cannot stop the others.
        this.state = "connecting";
        this.router.split([...this.members]);
        return;
      } else {
        this.finish({ fatal: true, status, message: how.message || "" });
        return;
      }
    }
    if (conn.closeStatus === "expired") this.wantToken = true;
    this.state = "connecting";
    const ids = [...this.members];
    if (ids.length) this.router.host.report(ids, "connecting", { status: how.status || 0 });
    let delay = backoffDelay(this.attempt, this.retryMs, Math.max(MAX_RETRY_MS, this.retryMs));
    this.attempt += 1;
    if (retryAfter !== null) delay = Math.max(delay, retryAfter * 1000);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.reconnect();
    }, Math.min(delay, MAX_TIMER_MS));
  }

  /** Reconnects, first waiting (a while) for a fresh token when the last one was refused or ran out. */
  reconnect() {
    if (this.done) return;
    const token = this.bestToken();
    const stale = token && jwtExpiry(token) !== null && jwtExpiry(token) <= Date.now() + 1000;
    if ((this.wantToken || stale) && this.canRenew()) {
      this.wantToken = false;
      this.tokenTimer = setTimeout(() => {
        this.tokenTimer = null;
        this.connect();
      }, TOKEN_WAIT_MS);
      this.router.host.requestTokens(this.memberEntries().filter((e) => e.canRenew).map((e) => e.id));
      return;
    }
    this.wantToken = false;
    this.connect();
  }

  /** A member's token changed: renew now if a renewal or a reconnection waits for one. */
  tokenArrived() {
    if (this.tokenTimer) {
      clearTimeout(this.tokenTimer);
      this.tokenTimer = null;
      this.connect();
      return;
    }
    if (this.renewPending && this.conn) {
      const current = jwtExpiry(this.conn.token);
      const fresh = jwtExpiry(this.bestToken());
      if (current !== null && (fresh === null || fresh > current)) {
        this.renewPending = false;
        this.switchOver();
      }
    }
  }

  scheduleRenew(token) {
    this.clearRenew();
    const delay = renewDelay(token);
    if (delay === null) return;
    this.renewTimer = setTimeout(() => {
      this.renewTimer = null;
      this.renew();
    }, Math.min(delay, MAX_TIMER_MS));
  }

  /** Before the stream's token expires: switch to a fresher one, asking the members for one. */
  renew() {
    if (!this.conn) return;
    const current = jwtExpiry(this.conn.token);
    const best = this.bestToken();
    const fresh = jwtExpiry(best);
    if (best !== this.conn.token && current !== null && (fresh === null || fresh > current)) {
      this.switchOver();
      return;
    }
    if (this.canRenew()) {
      this.renewPending = true;
      this.router.host.requestTokens(this.memberEntries().filter((e) => e.canRenew).map((e) => e.id));
    }
  }

  finish(info) {
    if (this.done) return;
    this.done = true;
    this.state = "closed";
    this.stop();
    this.router.finish(this, info);
  }

  clearRenew() {
    if (this.renewTimer) clearTimeout(this.renewTimer);
    this.renewTimer = null;
    this.renewPending = false;
  }

  clearTimers() {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.tokenTimer) clearTimeout(this.tokenTimer);
    this.retryTimer = null;
    this.tokenTimer = null;
    this.clearRenew();
  }

  stop() {
    this.clearTimers();
    if (this.conn) this.conn.stop();
    if (this.next) this.next.stop();
    this.conn = null;
    this.next = null;
  }
}

/** The `status` of a native `close` event's data, or "". */
function closeStatus(data) {
  try {
    const body = JSON.parse(data);
    const status = body && body.data && body.data.status;
    return typeof status === "string" ? status : "";
  } catch (err) {
    return "";
  }
}

// ---- 4. Hosts ----------------------------------------------------------------------------------

/**
 * A Router in this tab, for the subscriptions added to it: one per unshared subscription, and
 * one per hub origin for shared ones where Web Locks or BroadcastChannel are missing.
 */
class LocalHost {
  constructor() {
    this.entries = new Map();
    this.subs = new Map();
    this.router = new Router(this, this.entries);
  }

  add(sub) {
    this.entries.set(sub.id, sub.entry);
    this.subs.set(sub.id, sub);
    this.router.stopped = false;
    this.router.schedule();
  }

  remove(sub) {
    this.entries.delete(sub.id);
    this.subs.delete(sub.id);
    if (this.subs.size === 0) {
      this.router.stop();
    } else {
      this.router.schedule();
    }
  }

  tokenChanged(sub) {
    this.router.tokenChanged(sub.id);
  }

  deliver(message) {
    for (const id of message.members) {
      const sub = this.subs.get(id);
      if (sub) sub.receive(message);
    }
  }

  report(ids, state, info) {
    for (const id of ids) {
      const sub = this.subs.get(id);
      if (sub) sub.setState(state, info);
    }
  }

  requestTokens(ids) {
    for (const id of ids) {
      const sub = this.subs.get(id);
      if (sub) sub.renewToken();
    }
  }

  describe() {
    return { shared: false, leader: true, upstreams: this.router.describe() };
  }
}

/** This page's id among the tabs (random; a new one on every load). */
const TAB_ID = Math.random().toString(36).slice(2, 10) + Date.now().toString(36);
/** The version of the messages tabs exchange: tabs running another one ignore them. */
const PROTOCOL = 1;
/** How often the leader says it is alive, and how long the others wait before taking over, ms. */
const BEAT_MS = 400;
const PING_AFTER_MS = 700;
const TAKEOVER_AFTER_MS = 1400;

let tabLockHeld = null;

/** Holds this page's own lock for its life: the leader prunes subscriptions of pages gone. */
function holdTabLock() {
  if (!tabLockHeld) {
    tabLockHeld = new Promise((resolve) => {
      navigator.locks
        .request("ssehub:tab:" + TAB_ID, () => {
          resolve();
          return new Promise(() => {});
        })
        .catch(() => resolve());
    });
  }
  return tabLockHeld;
}

/**
 * The shared subscriptions of every tab of this profile and origin, for one hub origin. Each
 * tab keeps the registry of all of them (announced over the channel), so that whichever tab
 * becomes leader can open the upstreams at once. The leader holds the Web Lock
 * `ssehub:leader:<hub>` for as long as it leads, runs the Router and broadcasts every event
 * (each tab filters by its own subscriptions) and every state change; the others queue for the
 * lock. A leader that stops answering (frozen) is replaced: the first tab to notice steals the
 * lock; every leader message carries an epoch, and messages of an older one are ignored.
 */
class SharedTab {
  constructor(hub) {
    this.hub = hub;
    this.lockName = "ssehub:leader:" + hub;
    this.registry = new Map();
    this.subs = new Map();
    this.router = null;
    this.leading = false;
    this.release = null;
    this.campaign = null;
    this.epoch = 0;
    this.heard = Date.now();
    this.lastPing = 0;
    this.frozen = false;
    this.isolated = false;
    this.takingOver = false;
    this.watchTimer = null;
    this.beatTimer = null;
    this.channel = new BroadcastChannel("ssehub:" + hub);
    this.channel.onmessage = (event) => this.onMessage(event.data);
    // The tabs already there announce their subscriptions again, so that this one knows them
    // all (announcements made before its channel existed never reached it) and can lead next.
    this.post({ t: "rollcall" });
    this.ready = holdTabLock();
    if (typeof addEventListener === "function") {
      addEventListener("pagehide", (event) => this.hidden(event.persisted));
      addEventListener("pageshow", (event) => {
        if (event.persisted) this.shown();
      });
    }
    if (typeof document !== "undefined" && document.addEventListener) {
      document.addEventListener("freeze", () => this.hidden(true));
      document.addEventListener("resume", () => this.shown());
    }
  }

  post(message) {
    if (this.isolated) return;
    message.v = PROTOCOL;
    message.from = TAB_ID;
    if (this.leading) message.epoch = this.epoch;
    try {
      this.channel.postMessage(message);
    } catch (err) {
      // A closed channel (the page is going away).
    }
  }

  add(sub) {
    this.registry.set(sub.id, sub.entry);
    this.subs.set(sub.id, sub);
    this.heard = Date.now();
    this.ready.then(() => {
      if (!this.subs.has(sub.id)) return;
      this.post({ t: "sub", entry: sub.entry });
      if (this.router) this.router.schedule();
      this.elect();
      this.watch();
    });
  }

  remove(sub) {
    this.registry.delete(sub.id);
    this.subs.delete(sub.id);
    this.post({ t: "unsub", id: sub.id });
    if (this.router) this.router.schedule();
  }

  tokenChanged(sub) {
    this.post({ t: "token", id: sub.id, token: sub.entry.token, cred: sub.entry.cred });
    if (this.router) this.router.tokenChanged(sub.id);
  }

  // -- leadership

  wantsToLead() {
    return this.subs.size > 0 && !this.frozen;
  }

  /** Queues for the leader lock (or steals it from a leader that stopped answering). */
  elect(steal = false, onDecided = null) {
    if (this.leading) {
      if (onDecided) onDecided();
      return;
    }
    if (this.campaign) {
      if (!steal) return;
      this.campaign.abort();
    }
    if (!this.wantsToLead()) {
      if (onDecided) onDecided();
      return;
    }
    const campaign = new AbortController();
    this.campaign = campaign;
    // steal and signal cannot go together: a stealing request is never abandoned.
    const options = steal ? { steal: true } : { signal: campaign.signal };
    navigator.locks
      .request(this.lockName, options, () => new Promise((release) => {
        if (this.campaign !== campaign || !this.wantsToLead()) {
          release();
          return;
        }
        this.lead(release);
        if (onDecided) onDecided();
      }))
      .catch((err) => {
        // Aborted or stolen is the election at work; anything else (an opaque origin, say)
        // means locks cannot work here: this tab then leads its own subscriptions alone.
        if (!err || err.name !== "AbortError") this.isolated = true;
      })
      .finally(() => {
        if (onDecided) onDecided();
        if (this.campaign !== campaign) return;
        this.campaign = null;
        // The lock was released or stolen: follow, and queue again.
        this.stepDown();
        if (this.isolated) {
          if (this.wantsToLead()) this.lead(() => {});
        } else if (this.wantsToLead()) {
          this.elect();
        }
      });
  }

  lead(release) {
    this.leading = true;
    this.release = release;
    this.epoch = Math.max(Date.now(), this.epoch + 1);
    SharedEventSource.diagnostics.emit("leader", { tab: TAB_ID, hub: this.hub });
    this.post({ t: "beat" });
    this.post({ t: "rollcall" });
    this.router = new Router(this, this.registry);
    this.prune().then(() => {
      if (this.router) this.router.plan();
    });
    this.beatTimer = setInterval(() => {
      this.post({ t: "beat" });
      this.prune();
    }, BEAT_MS);
  }

  stepDown() {
    if (!this.leading) return;
    this.leading = false;
    // A leader hears no leader: give the next one time to be heard before taking over again.
    this.heard = Date.now();
    clearInterval(this.beatTimer);
    this.beatTimer = null;
    if (this.router) this.router.stop();
    this.router = null;
    const release = this.release;
    this.release = null;
    if (release) release();
  }

  /** Forgets the subscriptions of pages that are gone (their page lock is no longer held). */
  async prune() {
    let alive;
    try {
      const state = await navigator.locks.query();
      alive = new Set([...(state.held || []), ...(state.pending || [])].map((lock) => lock.name));
    } catch (err) {
      return;
    }
    let changed = false;
    for (const [id, entry] of this.registry) {
      if (entry.tab !== TAB_ID && !alive.has("ssehub:tab:" + entry.tab)) {
        this.registry.delete(id);
        changed = true;
      }
    }
    if (changed && this.router) this.router.schedule();
  }

  /** While this tab has subscriptions and follows: asks after a silent leader, then replaces it. */
  watch() {
    if (this.watchTimer) return;
    this.watchTimer = setInterval(() => {
      if (this.subs.size === 0) {
        clearInterval(this.watchTimer);
        this.watchTimer = null;
        return;
      }
      if (this.leading || this.frozen || this.isolated) return;
      const silent = Date.now() - this.heard;
      if (silent > TAKEOVER_AFTER_MS) {
        this.takeOver();
      } else if (silent > PING_AFTER_MS && Date.now() - this.lastPing > PING_AFTER_MS) {
        this.lastPing = Date.now();
        this.post({ t: "ping" });
      }
    }, BEAT_MS / 2);
  }

  takeOver() {
    if (this.takingOver) return;
    this.takingOver = true;
    navigator.locks
      .request(this.lockName + ":takeover", { ifAvailable: true }, (lock) => {
        if (!lock || this.leading || Date.now() - this.heard <= TAKEOVER_AFTER_MS) return undefined;
        return new Promise((decided) => this.elect(true, decided));
      })
      .catch(() => {})
      .finally(() => {
        this.takingOver = false;
      });
  }

  hidden(persisted) {
    this.post({ t: "bye", tab: TAB_ID });
    this.frozen = true;
    if (this.campaign) this.campaign.abort();
    this.campaign = null;
    this.stepDown();
    if (!persisted) {
      for (const sub of this.subs.values()) sub.persist();
    }
  }

  shown() {
    if (!this.frozen) return;
    this.frozen = false;
    this.heard = Date.now();
    // Back from a freeze or the back/forward cache: events may have gone by unseen, so each
    // subscription is resumed from where it really is (`resume`), not where the others think.
    for (const sub of this.subs.values()) this.post({ t: "sub", entry: Object.assign({ resume: true }, sub.entry) });
    this.elect();
  }

  // -- the Router's host, on the leader: everything goes to every tab

  deliver(message) {
    this.post({ t: "ev", message });
    this.receive(message);
  }

  report(ids, state, info) {
    this.post({ t: "state", ids, state, info });
    this.applyState(ids, state, info);
  }

  requestTokens(ids) {
    const remote = [];
    for (const id of ids) {
      const sub = this.subs.get(id);
      if (sub) sub.renewToken();
      else remote.push(id);
    }
    if (remote.length) this.post({ t: "need-token", ids: remote });
  }

  // -- every tab

  receive(message) {
    for (const id of message.members) {
      const sub = this.subs.get(id);
      if (sub) sub.receive(message);
    }
  }

  advance(ids, id) {
    for (const member of ids) {
      const entry = this.registry.get(member);
      if (entry) {
        entry.pos = newerId(entry.pos, id);
        entry.synced = true;
      }
    }
  }

  applyState(ids, state, info) {
    if (state === "open" && info.pos && !this.leading) this.advance(ids, info.pos);
    for (const id of ids) {
      if (state === "closed") this.registry.delete(id);
      const sub = this.subs.get(id);
      if (sub) sub.setState(state, info);
    }
  }

  onMessage(m) {
    if (!m || m.v !== PROTOCOL) return;
    if (m.epoch !== undefined) {
      if (m.epoch < this.epoch) return;
      if (m.epoch > this.epoch) {
        this.epoch = m.epoch;
        // Another tab leads now (it stole the lock from this one while it was frozen).
        if (this.leading) this.stepDown();
      }
      this.heard = Date.now();
    }
    switch (m.t) {
      case "sub": {
        const known = this.registry.get(m.entry.id);
        if (known && !this.subs.has(m.entry.id)) {
          if (m.entry.resume) {
            // The owner's own position wins: the leader resumes it from there if it is behind.
            known.pos = m.entry.pos;
            known.synced = m.entry.synced;
            known.rewind = true;
          } else {
            known.pos = newerId(known.pos, m.entry.pos);
            known.synced = known.synced || m.entry.synced;
          }
          known.token = m.entry.token;
          known.cred = m.entry.cred;
        } else if (!known) {
          delete m.entry.resume;
          this.registry.set(m.entry.id, m.entry);
        }
        if (this.router) this.router.schedule();
        break;
      }
      case "unsub":
        this.registry.delete(m.id);
        if (this.router) this.router.schedule();
        break;
      case "bye":
        for (const [id, entry] of this.registry) if (entry.tab === m.tab) this.registry.delete(id);
        if (this.router) this.router.schedule();
        break;
      case "token": {
        const entry = this.registry.get(m.id);
        if (entry && !this.subs.has(m.id)) {
          entry.token = m.token;
          entry.cred = m.cred;
        }
        if (this.router) this.router.tokenChanged(m.id);
        break;
      }
      case "need-token":
        for (const id of m.ids) {
          const sub = this.subs.get(id);
          if (sub) sub.renewToken();
        }
        break;
      case "rollcall":
        for (const sub of this.subs.values()) this.post({ t: "sub", entry: sub.entry });
        break;
      case "ping":
        if (this.leading) this.post({ t: "beat" });
        break;
      case "ev": {
        // Every tab follows every subscription's position, so that any of them can lead next.
        const message = m.message;
        if (message.id) this.advance(message.members, message.id);
        this.receive(message);
        break;
      }
      case "state":
        this.applyState(m.ids, m.state, m.info || {});
        break;
      default:
        break;
    }
  }

  describe() {
    return {
      shared: true,
      tab: TAB_ID,
      leader: this.leading,
      subscriptions: this.registry.size,
      upstreams: this.router ? this.router.describe() : [],
    };
  }
}

const sharedHosts = new Map();

/** The host of a shared subscription to `hub` (an origin): across tabs when the browser can. */
function sharedHost(hub) {
  let host = sharedHosts.get(hub);
  if (!host) {
    const canShare = typeof BroadcastChannel === "function" &&
      typeof navigator !== "undefined" && navigator.locks && typeof navigator.locks.request === "function";
    host = canShare ? new SharedTab(hub) : new LocalHost();
    sharedHosts.set(hub, host);
  }
  return host;
}

// ---- 5. SharedEventSource ----------------------------------------------------------------------

let nextSubscription = 0;

/**
 * What a SharedEventSource holds: its entry for the Router, its dedupe filter and position, and
 * `port`, the source's own dispatching (kept off its public surface).
 */
class Subscription {
  constructor(port, href, init) {
    this.port = port;
    this.id = TAB_ID + "-" + (++nextSubscription);
    this.desc = describeSubscription(href);
    this.getToken = typeof init.getToken === "function" ? init.getToken : null;
    this.tokenPending = null;
    this.closed = false;
    this.origin = new URL(href).origin;
    const resumable = this.desc.kind !== "burst";
    this.storageKey = resumable && init.persist !== false ? "ssehub:last-event-id:" + this.desc.key : null;
    const cursor = init.lastEventId || this.desc.cursor || this.stored();
    this.filter = this.desc.kind === "burst" ? null : new IdFilter();
    if (this.filter && cursor) this.filter.seed(cursor);
    this.lastEventId = "";
    this.persisted = cursor || null;
    this.entry = {
      id: this.id,
      tab: TAB_ID,
      url: href,
      kind: this.desc.kind,
      key: this.desc.key,
      base: this.desc.base,
      topics: this.desc.topics,
      cred: credentialKey(init.token || null, !!init.withCredentials),
      token: init.token || null,
      withCredentials: !!init.withCredentials,
      canRenew: !!this.getToken,
      pos: cursor || null,
      synced: !!cursor,
      noUnion: false,
    };
    this.host = init.shared === false || this.desc.kind === "burst" ? new LocalHost() : sharedHost(this.origin);
  }

  async start() {
    if (!this.entry.token && this.getToken) {
      const token = await this.getToken();
      if (typeof token === "string" && token) this.setToken(token);
    }
    if (this.closed) return;
    this.host.add(this);
  }

  stored() {
    if (!this.storageKey) return null;
    try {
      return globalThis.sessionStorage ? globalThis.sessionStorage.getItem(this.storageKey) : null;
    } catch (err) {
      return null;
    }
  }

  persist() {
    const pos = this.entry.pos;
    if (!this.storageKey || !pos || pos === this.persisted) return;
    this.persisted = pos;
    try {
      if (globalThis.sessionStorage) globalThis.sessionStorage.setItem(this.storageKey, pos);
    } catch (err) {
      // Storage may be unavailable (privacy settings): resuming within the page still works.
    }
  }

  setToken(token) {
    this.entry.token = token;
    this.entry.cred = credentialKey(token, this.entry.withCredentials);
  }

  renewToken() {
    if (!this.getToken || this.tokenPending || this.closed) return;
    this.tokenPending = Promise.resolve()
      .then(() => this.getToken())
      .then((token) => {
        if (this.closed || typeof token !== "string" || !token) return;
        this.setToken(token);
        this.host.tokenChanged(this);
      })
      .catch(() => {})
      .finally(() => {
        this.tokenPending = null;
      });
  }

  receive(message) {
    if (this.closed) return;
    if (message.id) this.persist();
    if (message.topic !== null && message.topic !== undefined && this.desc.topics &&
        !matchesAny(this.desc.topics, message.topic)) return;
    if (message.id && message.dedupe && this.filter && !this.filter.accept(message.id)) return;
    if (message.id !== null) this.lastEventId = message.id;
    this.port.emit(message.type, { data: message.data, lastEventId: this.lastEventId, origin: this.origin });
  }

  setState(state, info) {
    if (this.closed) return;
    const port = this.port;
    if (state === "open") {
      if (port.readyState() !== OPEN) {
        port.setReadyState(OPEN);
        port.emitPlain("open");
      }
    } else if (state === "connecting") {
      port.setReadyState(CONNECTING);
      port.emitPlain("error", info);
    } else if (state === "closed") {
      this.close();
      port.setReadyState(CLOSED);
      if (info && info.fatal) port.emitPlain("error", info);
    }
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this.persist();
    this.host.remove(this);
  }
}

const CONNECTING = 0;
const OPEN = 1;
const CLOSED = 2;

/** Diagnostics: `leader` and `upstreamopen` events (detail with `at`, ms since the epoch). */
class Diagnostics extends EventTarget {
  emit(type, detail) {
    const full = Object.assign({ at: Date.now() }, detail);
    let event;
    if (typeof CustomEvent === "function") {
      event = new CustomEvent(type, { detail: full });
    } else {
      event = new Event(type);
      event.detail = full;
    }
    this.dispatchEvent(event);
  }

  /** What this page knows of the upstreams, per hub origin. */
  status() {
    const hubs = {};
    for (const [hub, host] of sharedHosts) hubs[hub] = host.describe();
    return { tab: TAB_ID, hubs };
  }
}

/**
 * A drop-in for EventSource: `new SharedEventSource(url, {withCredentials})` behaves as
 * `new EventSource(url, {withCredentials})`, with options of its own:
 * - `token`: sent as `Authorization: Bearer` (never in the URL);
 * - `getToken()`: returns (or resolves to) a fresh token; called before the token's `exp` and
 *   after a 401, and the stream is renewed with the new token without losing an event;
 * - `shared` (default true): share one upstream with the other subscriptions of this profile's
 *   tabs; false opens one stream for this object alone;
 * - `persist` (default true): keep the last id in sessionStorage so that a reload resumes;
 * - `lastEventId`: resume after this id.
 */
export class SharedEventSource extends EventTarget {
  #url;
  #withCredentials;
  #readyState = CONNECTING;
  #subscription;
  #handlers = { open: null, message: null, error: null };
  #wrapped = new Set();

  constructor(url, init = {}) {
    super();
    let href;
    try {
      const base = typeof location !== "undefined" ? location.href : undefined;
      href = new URL(String(url), base).href;
    } catch (err) {
      throw new DOMException("Failed to construct 'SharedEventSource': the URL '" + url + "' is invalid.", "SyntaxError");
    }
    const options = init || {};
    this.#url = href;
    this.#withCredentials = !!options.withCredentials;
    const port = {
      readyState: () => this.#readyState,
      setReadyState: (state) => {
        this.#readyState = state;
      },
      emit: (type, eventInit) => {
        if (this.#readyState !== CLOSED) this.dispatchEvent(new MessageEvent(type, eventInit));
      },
      // A plain Event (open, error); an error may carry the HTTP `status` and the hub's `message`.
      emitPlain: (type, info) => {
        const event = new Event(type);
        if (info && info.status) event.status = info.status;
        if (info && info.message) event.message = info.message;
        this.dispatchEvent(event);
      },
    };
    this.#subscription = new Subscription(port, href, options);
    const subscription = this.#subscription;
    subscription.start().catch((err) => {
      if (subscription.closed) return;
      subscription.setState("closed", { fatal: true, status: 0, message: String((err && err.message) || err) });
    });
  }

  get url() {
    return this.#url;
  }

  get withCredentials() {
    return this.#withCredentials;
  }

  get readyState() {
    return this.#readyState;
  }

  get onopen() {
    return this.#handlers.open;
  }

  set onopen(fn) {
    this.#setHandler("open", fn);
  }

  get onmessage() {
    return this.#handlers.message;
  }

  set onmessage(fn) {
    this.#setHandler("message", fn);
  }

  get onerror() {
    return this.#handlers.error;
  }

  set onerror(fn) {
    this.#setHandler("error", fn);
  }

  /** Closes the stream: no event is dispatched after this. */
  close() {
    this.#readyState = CLOSED;
    this.#subscription.close();
  }

  #setHandler(type, fn) {
    this.#handlers[type] = typeof fn === "function" ? fn : null;
    // One listener per attribute, added when first set, calling whatever the attribute holds.
    if (this.#handlers[type] && !this.#wrapped.has(type)) {
      this.#wrapped.add(type);
      this.addEventListener(type, (event) => {
        const handler = this.#handlers[type];
        if (handler) handler.call(this, event);
      });
    }
  }

  /** Finds a Mercure hub from a resource URL; see {@link discover}. */
  static discover(resourceUrl, init) {
    return discover(resourceUrl, init);
  }
}

SharedEventSource.CONNECTING = CONNECTING;
SharedEventSource.OPEN = OPEN;
SharedEventSource.CLOSED = CLOSED;
for (const [name, value] of [["CONNECTING", CONNECTING], ["OPEN", OPEN], ["CLOSED", CLOSED]]) {
  Object.defineProperty(SharedEventSource.prototype, name, { value, enumerable: true });
}
/** Patterns per merged native stream (the hub's --max-topics-per-stream). */
SharedEventSource.maxTopicsPerStream = MAX_TOPICS_PER_STREAM;
SharedEventSource.diagnostics = new Diagnostics();

/**
 * Mercure discovery: fetches `resourceUrl` and answers the first hub URL its `Link` headers name
 * with `rel="mercure"` (absolute), or null. `init` is passed to fetch() (method, headers,
 * credentials); a cross-origin resource must expose `Link` (Access-Control-Expose-Headers).
 */
export async function discover(resourceUrl, init = {}) {
  const response = await fetch(resourceUrl, Object.assign({ method: "GET" }, init));
  cancelBody(response);
  const hubs = mercureHubs(response.headers.get("link"), response.url || String(resourceUrl));
  return hubs.length ? hubs[0] : null;
}
