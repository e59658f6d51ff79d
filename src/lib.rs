//! ssehub: a Server-Sent Events hub in one binary.
//!
//! Module map. Dependencies point one way, each module using only modules below it in this
//! order (checked by `scripts/layers` in CI): `cli` → `app` → `transport` → `http` → `ops` →
//! `error` → `session` → `auth` → `quota` → `hub` → `tls` → `config` → `broker` → `event` → `topic`,
//! then the leaves `io`, `logtext`, `metrics`, `shutdown`, `json`, `wire` and `sse`. The hub
//! reaches a backend only through the [`broker::Broker`] trait; a backend hands events back only
//! through the [`broker::Delivery`] trait (which the hub's [`hub::Fanout`] implements), so no
//! backend knows the hub:
//!
//! - [`config`]: flags and `SSEHUB_*` environment twins, defaults as named constants, the caps
//!   derived from the open-file limit.
//! - [`app`]: the wiring (a configuration made into a server's state: `app::in_memory`,
//!   `app::connect`), the app factory [`app::build`] and the accept loop [`app::serve`]
//!   (connection caps, graceful shutdown).
//! - `transport`: how bytes arrive: one connection from first byte to close, a deadline on
//!   every phase, served by `direct` (the hand-written HTTP/1 path that serves most streams
//!   with a few KiB each, and plain publishes) or by hyper with the axum router.
//! - `http`: the axum side: one module per resource (messages, stream, topics, health,
//!   assets; `topics_stream`, the hub console's feed; `mercure`, `subscriptions`), thin
//!   handlers over `ops`, the layers every hyper response passes, and `docs`, the OpenAPI and
//!   AsyncAPI documents made from the code.
//! - `ops`: the operations, whatever the transport (open a stream, subscribe over Mercure,
//!   publish), each taking one request meta read the same way for both, and the state they
//!   share ([`AppState`]).
//! - [`auth`]: who may publish and read: JWT keys, claims (legacy and draft-08), grants.
//! - [`cli`]: the command line (`serve`, `token`) and the client commands (`publish`,
//!   `subscribe`, `completions`), which talk to a hub over HTTP like any other client.
//! - [`quota`]: per-key caps (client address, token subject).
//! - [`error`]: the one API error type and its JSON response.
//! - [`session`]: what a burst or live stream sends, frame by frame.
//! - [`hub`]: the local fan-out (each subscriber's bounded queue) joined with a broker, and
//!   each topic's events per second (`activity`).
//! - [`broker`]: the backend and delivery traits, the in-memory backend and the Redis
//!   (cluster) backend.
//! - [`event`], [`topic`]: published events and their encodings; topic names, patterns and
//!   selectors (URI templates, URL patterns).
//! - [`sse`]: the `text/event-stream` encoder and a WHATWG parser.
//! - [`tls`]: HTTPS with ALPN `h2`/`http/1.1`, the certificate reloaded while serving.
//! - [`io`]: socket wrappers (dropping peers that stop reading; replaying bytes already read).
//! - `logtext`: client text escaped for log lines (a leaf).
//! - [`metrics`]: the Prometheus series, one recorder per server, the streams' counting guard;
//!   a leaf like `sse`, usable from every layer.
//! - [`shutdown`]: the shutdown signal every connection and stream shares.
//! - `json`: JSON string escaping for the bodies written by hand.
//! - `wire`: raw HTTP/1.1 response bytes (status line, headers, the cached `Date`).
//!
//! # Examples
//! Embedding the hub in another tokio program:
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let config = ssehub::Config::with_bind(listener.local_addr()?);
//! let state = ssehub::app::in_memory(config).map_err(std::io::Error::other)?;
//! let shutdown = async { tokio::signal::ctrl_c().await.ok(); };
//! ssehub::serve(listener, state, shutdown).await
//! # }
//! ```

pub mod app;
pub mod auth;
pub mod broker;
pub mod cli;
pub mod config;
pub mod error;
pub mod event;
mod http;
pub mod hub;
pub mod io;
mod json;
mod logtext;
pub mod metrics;
mod ops;
pub mod quota;
pub mod session;
pub mod shutdown;
pub mod sse;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(not(feature = "tls"))]
#[path = "tls_absent.rs"]
pub mod tls;
pub mod topic;
mod transport;
mod wire;

pub use app::{build, serve};
pub use config::Config;
pub use http::AppState;
