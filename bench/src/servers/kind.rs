//! What each server under test is: its kind, how a publish and a live stream are addressed on
//! it, where its program is, and the options of one start.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Serialize;

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ServerKind {
    /// This project.
    Ssehub,
    /// nginx with the nchan module.
    Nchan,
    /// Pushpin, with a GRIP backend served by the generator.
    Pushpin,
    /// The minimal tokio broadcaster (`min-broadcaster`): the machine's floor, fan-outs only.
    Minimal,
    /// redis-server, the broker of the cluster scenario (not a server under test).
    #[value(skip)]
    Redis,
}

impl ServerKind {
    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ssehub => "ssehub",
            Self::Nchan => "nchan",
            Self::Pushpin => "pushpin",
            Self::Minimal => "minimal",
            Self::Redis => "redis",
        }
    }

    /// The request publishing `text` to `topic`.
    pub fn publish_request(self, addr: SocketAddr, topic: &str, text: &str) -> Vec<u8> {
        let (path, content_type, body) = match self {
            Self::Ssehub | Self::Redis => (
                "/api/messages".to_owned(),
                "application/json",
                serde_json::json!({"message": text, "topic": topic}).to_string(),
            ),
            Self::Nchan | Self::Minimal => {
                (format!("/pub?id={topic}"), "text/plain", text.to_owned())
            }
            Self::Pushpin => (
                "/publish/".to_owned(),
                "application/json",
                crate::pushpin::publish_body(topic, text),
            ),
        };
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body.as_bytes());
        request
    }

    /// The path of a live stream of `topic`.
    pub fn live_path(self, topic: &str) -> String {
        match self {
            Self::Ssehub | Self::Redis => format!("/stream?mode=live&topic={topic}"),
            Self::Nchan | Self::Pushpin | Self::Minimal => format!("/sub/{topic}"),
        }
    }
}

/// Where the servers' programs are and which CPU they get.
#[derive(Debug, Clone)]
pub struct Programs {
    /// The ssehub binary.
    pub ssehub: PathBuf,
    /// The nginx binary.
    pub nginx: PathBuf,
    /// The nchan dynamic module.
    pub nchan_module: PathBuf,
    /// redis-server, for the cluster scenario.
    pub redis: PathBuf,
    /// The pushpin runner.
    pub pushpin: PathBuf,
    /// The minimal broadcaster (built beside the generator).
    pub minimal: PathBuf,
    /// CPU the servers are pinned to (none: not pinned).
    pub cpu: Option<usize>,
}

/// Options of one server start.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Raise ssehub's stream and connection limits for 19,000 streams.
    pub many_streams: bool,
    /// Run ssehub as a cluster node on this Redis URL.
    pub broker: Option<String>,
    /// ssehub's `--max-topics` (topics held, and distinct topics and patterns subscribed).
    pub max_topics: Option<usize>,
    /// More ssehub arguments (`--tls-cert`, `--data-dir`, ...).
    pub args: Vec<String>,
}
