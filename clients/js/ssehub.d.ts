// Types of ssehub.js, the browser client of ssehub.

export declare const VERSION: string;

/** Options of SharedEventSource: EventSource's, and the library's own. */
export interface SharedEventSourceInit {
  /** Send cookies to another origin (`credentials: 'include'`), as EventSource does. */
  withCredentials?: boolean;
  /** A token sent as `Authorization: Bearer <token>`; never put in the URL. */
  token?: string | null;
  /**
   * Supplies a fresh token: called (in the tab that owns the subscription) before the current
   * token's `exp`, after a 401 and after the hub ends the stream at `exp`; the stream is renewed
   * with it and resumed with Last-Event-ID, so no event is lost or repeated. Called once before
   * connecting when `token` is not given.
   */
  getToken?: () => string | null | undefined | Promise<string | null | undefined>;
  /**
   * Share one upstream stream with the subscriptions of every tab of this browser profile and
   * origin (default true). False: one stream for this object alone. Burst streams are never shared.
   */
  shared?: boolean;
  /** Keep the last event id in sessionStorage, so a reload resumes (default true; not for bursts). */
  persist?: boolean;
  /** Resume after this id (else the URL's `lastEventId`, else the id kept in sessionStorage). */
  lastEventId?: string;
}

/** An `error` event: a plain Event; when the hub refused the stream, its status and message. */
export interface SharedEventSourceErrorEvent extends Event {
  /** The HTTP status of a refusal (401, 403, 400, ...); absent for a network error. */
  readonly status?: number;
  /** The hub's `{"error": ...}` text of a refusal. */
  readonly message?: string;
}

export interface SharedEventSourceEventMap {
  open: Event;
  error: SharedEventSourceErrorEvent;
  message: MessageEvent<string>;
  /** The hub's `keepalive` handshake (native streams). */
  keepalive: MessageEvent<string>;
  /** The hub could not resume from the id given: some events may have been missed. */
  gap: MessageEvent<string>;
  /** The hub dropped the stream for falling behind (its `: lagged` comment); it is resumed. */
  lagged: MessageEvent<string>;
  /** The hub ends the stream; `complete` (a burst) closes the source, other statuses resume. */
  close: MessageEvent<string>;
}

/** A drop-in for EventSource. */
export declare class SharedEventSource extends EventTarget {
  constructor(url: string | URL, init?: SharedEventSourceInit);

  static readonly CONNECTING: 0;
  static readonly OPEN: 1;
  static readonly CLOSED: 2;
  readonly CONNECTING: 0;
  readonly OPEN: 1;
  readonly CLOSED: 2;

  /** The URL given, resolved against the page's. */
  readonly url: string;
  readonly withCredentials: boolean;
  readonly readyState: 0 | 1 | 2;

  onopen: ((this: SharedEventSource, event: Event) => unknown) | null;
  onmessage: ((this: SharedEventSource, event: MessageEvent<string>) => unknown) | null;
  onerror: ((this: SharedEventSource, event: SharedEventSourceErrorEvent) => unknown) | null;

  /** Closes the stream; no event is dispatched after it. */
  close(): void;

  addEventListener<K extends keyof SharedEventSourceEventMap>(
    type: K,
    listener: (this: SharedEventSource, event: SharedEventSourceEventMap[K]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /** A publisher's event type. */
  addEventListener(
    type: string,
    listener: (this: SharedEventSource, event: MessageEvent<string>) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof SharedEventSourceEventMap>(
    type: K,
    listener: (this: SharedEventSource, event: SharedEventSourceEventMap[K]) => unknown,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: (this: SharedEventSource, event: MessageEvent<string>) => unknown,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject, options?: boolean | EventListenerOptions): void;

  /** Mercure discovery: see {@link discover}. */
  static discover(resourceUrl: string | URL, init?: RequestInit): Promise<string | null>;

  /** Patterns per merged native stream: the hub's `--max-topics-per-stream` (default 16). */
  static maxTopicsPerStream: number;

  /** What this page knows of the shared streams, and `leader` / `upstreamopen` events. */
  static readonly diagnostics: SharedEventSourceDiagnostics;
}

export interface UpstreamStatus {
  url: string;
  kind: SubscriptionKind;
  state: "idle" | "connecting" | "open" | "closed";
  members: string[];
  lastEventId: string | null;
}

export interface SharedEventSourceDiagnostics extends EventTarget {
  /** Per hub origin: whether this tab leads and, if it does, its upstream streams. */
  status(): {
    tab: string;
    hubs: Record<string, { shared: boolean; tab?: string; leader: boolean; subscriptions?: number; upstreams: UpstreamStatus[] }>;
  };
}

/**
 * Fetches `resourceUrl` and answers the first hub URL its `Link` headers name with
 * `rel="mercure"` (absolute), or null.
 */
export declare function discover(resourceUrl: string | URL, init?: RequestInit): Promise<string | null>;

// ---- building blocks (pure; exported for tests and for apps that want them) ----

export declare const DEFAULT_RETRY_MS: number;
export declare const MAX_RETRY_MS: number;
export declare const MAX_TOPICS_PER_STREAM: number;

export interface ParsedEvent {
  type: string;
  data: string;
  /** The event's own `id:` field, or null when it had none. */
  id: string | null;
  /** The stream's last event id after this event. */
  lastEventId: string;
}

export declare class SseParser {
  constructor(handlers?: {
    event?: (event: ParsedEvent) => void;
    comment?: (text: string) => void;
    retry?: (ms: number) => void;
  });
  feed(text: string): void;
  feedBytes(bytes: Uint8Array): void;
  readonly lastEventId: string;
}

export declare function backoffDelay(attempt: number, baseMs?: number, capMs?: number, random?: () => number): number;
export declare function parseRetryAfter(value: string | null | undefined, now?: number): number | null;
export declare function jwtPayload(token: string | null | undefined): Record<string, unknown> | null;
export declare function jwtExpiry(token: string | null | undefined): number | null;
export declare function renewDelay(token: string | null | undefined, now?: number): number | null;
export declare function credentialKey(token: string | null | undefined, withCredentials?: boolean): string;
export declare function compareIds(a: string | null | undefined, b: string | null | undefined): -1 | 0 | 1 | null;
export declare function newerId(a: string | null | undefined, b: string | null | undefined): string | null;
export declare function oldestId(ids: Iterable<string | null | undefined>): string | null;

export declare class IdFilter {
  constructor(size?: number);
  seed(id: string | null | undefined): void;
  accept(id: string | null | undefined): boolean;
}

export type SubscriptionKind = "live" | "burst" | "mercure" | "url";

export interface SubscriptionDescription {
  kind: SubscriptionKind;
  /** The URL without its cursor parameters. */
  key: string;
  cursor: string | null;
  /** Origin and path. */
  base: string;
  /** A `live` stream's topic patterns; null for the other kinds. */
  topics: string[] | null;
}

export declare function describeSubscription(href: string): SubscriptionDescription;
export declare function topicMatches(pattern: string, topic: string): boolean;
export declare function matchesAny(patterns: string[], topic: string): boolean;
export declare function unionTopics(patterns: string[]): string[];
export declare function unionUrl(base: string, patterns: string[]): string;

export interface PlannedSubscription {
  id: string;
  url: string;
  kind: SubscriptionKind;
  key: string;
  base: string;
  topics: string[] | null;
  cred: string;
  noUnion?: boolean;
}

export declare function planUpstreams(
  subs: PlannedSubscription[],
  maxTopics?: number,
): { key: string; url: string; kind: SubscriptionKind; members: string[] }[];

export declare function parseLinkHeader(header: string | null | undefined, base?: string): { url: string; params: Record<string, string> }[];
export declare function mercureHubs(header: string | null | undefined, base?: string): string[];
