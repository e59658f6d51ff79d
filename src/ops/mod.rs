//! The operations of the hub, whatever the transport: open a stream, subscribe over Mercure,
//! publish natively or over Mercure, and the state they share ([`AppState`]).
//!
//! Both transports call these and nothing else of each other: the hand-written HTTP/1 path
//! (`transport::direct`, the idle-memory and publish hot paths) with what it read from the raw
//! head, and the axum handlers in `http` with what their extractors read. Each operation takes
//! one [`meta::RequestMeta`] (credentials, origin, host, cursor, client address, TLS, HTTP
//! version), read by one function for both, and answers with the hub's types or an
//! [`ApiError`](crate::error::ApiError); how that becomes bytes is the transport's business.
//!
//! - [`state`]: [`AppState`], what every request shares (built by `app::wiring`).
//! - [`meta`]: the request's meta, and the headers no request may carry twice.
//! - [`stream`]: `GET /stream`, and the stream start Mercure shares.
//! - [`mercure`]: Mercure's subscribe and publish, its selectors and forms.
//! - [`publish`]: the native publishes; [`input`]: a publish body into a draft.
//! - [`subscriptions`]: Mercure's active subscriptions on this node.
//! - [`tickets`]: single-use subscribe tickets, for a plain `EventSource`.
//! - [`cors`]: the CORS policy; [`console`]: the console's shared topic table; [`log`]: the
//!   access log.

pub(crate) mod console;
pub(crate) mod cors;
pub(crate) mod input;
pub(crate) mod log;
pub(crate) mod mercure;
pub(crate) mod meta;
pub(crate) mod publish;
mod state;
pub(crate) mod stream;
pub(crate) mod subscriptions;
pub(crate) mod tickets;

pub use state::AppState;
