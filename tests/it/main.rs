//! The integration tests, one module per area, in one test binary: real sockets (port 0), the
//! real binary where a test needs a process, real Redis servers, real JWTs and certificates.
//! (One binary links once; the failover tests, which kill Redis servers, are `tests/failover.rs`.)
//!
//! Run one area with its module name: `cargo test --release --test it stress::`.

mod common;

mod api;
mod api_docs;
mod assets;
mod auth;
mod auth_browser;
mod auth_draft08;
mod auth_keys;
mod auth_private;
mod auth_streams;
mod burst;
mod cli;
mod cli_protocols;
mod cluster;
mod console;
mod durable;
mod hostile;
mod hostile_h2;
mod live;
mod memory;
mod mercure;
mod mercure_cluster;
mod mercure_resume;
mod mercure_subscribe;
mod metrics;
mod paths;
mod paths_publish;
mod redis_batch;
mod shutdown;
mod slow_clients;
mod stream_start;
mod stress;
mod stress_churn;
mod tickets;
mod tls;
