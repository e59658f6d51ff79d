//! ssehub: a Server-Sent Events hub in one binary.
//!
//! Module map (dependencies point down: `http` → `session` → `hub` → `broker`; `sse` is the
//! wire format, used by `hub` for encoding and by clients for parsing). The hub reaches a
//! backend only through the [`broker::Broker`] trait; backends use the hub's event types and
//! deliver into its [`hub::Fanout`]:
//!
//! - [`config`]: flags and `SSEHUB_*` environment twins, defaults as named constants.
//! - [`app`]: shared state, the app factory [`app::build`] and [`app::serve`].
//! - [`error`]: the one API error type and its JSON response.
//! - `http`: one module per resource (messages, stream, topics, health, assets), and `direct`,
//!   the hand-written HTTP/1 path that serves most streams with a few KiB each.
//! - [`session`]: what a burst or live stream sends, frame by frame.
//! - [`hub`]: topics, ids, history and subscriptions; no HTTP types.
//! - [`broker`]: the backend trait, the in-memory backend and the Redis (cluster) backend.
//! - [`sse`]: the `text/event-stream` encoder and a WHATWG parser.
//! - [`io`]: the socket wrapper that drops peers that stop reading.
//!
//! # Examples
//! Embedding the hub in another tokio program:
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let config = ssehub::Config::with_bind(listener.local_addr()?);
//! let state = ssehub::AppState::new(config);
//! let shutdown = async { tokio::signal::ctrl_c().await.ok(); };
//! ssehub::serve(listener, state, shutdown).await
//! # }
//! ```

pub mod app;
pub mod broker;
pub mod config;
mod connection;
pub mod error;
pub mod event;
mod http;
pub mod hub;
pub mod io;
pub mod session;
pub mod sse;
pub mod topic;

pub use app::{build, serve};
pub use config::Config;
pub use http::AppState;
