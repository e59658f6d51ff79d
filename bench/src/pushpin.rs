//! Pushpin (Debian package `pushpin`) as the second peer: its configuration, generated per
//! scenario, and the GRIP backend it needs.
//!
//! Pushpin is a proxy: a subscriber's `GET /sub/<channel>` goes to a backend, which answers
//! with `Grip-Hold: stream` and `Grip-Channel: <channel>`; Pushpin then holds the response open
//! and sends it whatever is published to that channel on its publish API
//! (`POST /publish/`, JSON items with an `http-stream` format whose `content` is the SSE frame).
//! The backend is served here, by the generator, on its own core: it answers each subscribe
//! request once and is idle afterwards, so it costs nothing while anything is measured.
//!
//! Pushpin runs four processes (the `pushpin` runner and its children `condure`, the client
//! connection manager; `zurl`, the HTTP client to the backend; `pushpin-proxy` and
//! `pushpin-handler`), all started pinned to the servers' core, and all counted in its memory
//! and CPU. Settings changed from Debian's `/etc/pushpin/pushpin.conf`: every port and socket
//! is private to the run, `zurl` is started by the runner (Debian expects a system one), and the
//! handler's `message_rate` (2,500 messages/s by default, a deliberate throttle) and
//! `message_hwm` are raised to 1,000,000 so that fan-out is limited by Pushpin's work, not by
//! its rate limiter; `client_maxconn` is 20,000 like nginx's open-file limit.

use std::net::SocketAddr;
use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::error::{Context, Result};

/// The ports of one Pushpin instance (all on 127.0.0.1).
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// Where clients connect.
    pub http: SocketAddr,
    /// The HTTP publish API.
    pub publish: SocketAddr,
    /// The backend (served by [`backend`]).
    pub backend: SocketAddr,
    /// ZeroMQ publish input, publish subscription input and command sockets.
    pub zmq: [u16; 3],
}

/// `pushpin.conf` for an instance whose files live under `dir`.
pub fn config(dir: &Path, ports: &Ports) -> String {
    let d = dir.display();
    let [push_in, push_sub, command] = ports.zmq;
    format!(
        r#"[global]
include=/usr/lib/pushpin/internal.conf
rundir={d}/run
ipc_prefix=b-
port_offset=0
stats_connection_ttl=120

[runner]
services=condure,zurl,pushpin-proxy,pushpin-handler
http_port={http}
logdir={d}/log
log_level=2
client_buffer_size=8192
client_maxconn=20000
condure_bin=condure
zurl_bin=zurl

[proxy]
routesfile={d}/routes
zurl_out_specs=ipc://{d}/run/b-zurl-in
zurl_out_stream_specs=ipc://{d}/run/b-zurl-in-stream
zurl_in_specs=ipc://{d}/run/b-zurl-out
sig_iss=pushpin
sig_key=changeme
updates_check=off

[handler]
push_in_spec=tcp://127.0.0.1:{push_in}
push_in_sub_specs=tcp://127.0.0.1:{push_sub}
push_in_sub_connect=false
push_in_http_addr=127.0.0.1
push_in_http_port={publish}
push_in_http_max_headers_size=10000
push_in_http_max_body_size=1000000
stats_spec=ipc://{{rundir}}/{{ipc_prefix}}stats
command_spec=tcp://127.0.0.1:{command}
message_rate=1000000
message_hwm=1000000
message_wait=5000
id_cache_ttl=60
connection_subscription_max=20
subscription_linger=60
"#,
        http = ports.http,
        publish = ports.publish.port(),
    )
}

/// Writes the configuration and the routes file; returns the configuration's path.
pub fn prepare(dir: &Path, ports: &Ports) -> Result<std::path::PathBuf> {
    for sub in ["run", "log"] {
        std::fs::create_dir_all(dir.join(sub)).context("creating Pushpin's folders")?;
    }
    std::fs::write(dir.join("routes"), format!("* {}\n", ports.backend))
        .context("writing Pushpin's routes")?;
    let path = dir.join("pushpin.conf");
    std::fs::write(&path, config(dir, ports)).context("writing pushpin.conf")?;
    Ok(path)
}

/// The body of a publish of `text` to `channel` as one SSE `message` event.
pub fn publish_body(channel: &str, text: &str) -> String {
    serde_json::json!({
        "items": [{
            "channel": channel,
            "formats": {"http-stream": {"content": format!("event: message\ndata: {text}\n\n")}},
        }]
    })
    .to_string()
}

/// Serves the GRIP backend on `listener`: every `GET /sub/<channel>` is answered with an empty
/// `text/event-stream` response holding the stream on that channel. Runs until aborted.
pub fn backend(listener: TcpListener) -> JoinHandle<()> {
    tokio::task::spawn_local(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            tokio::task::spawn_local(answer(socket));
        }
    })
}

/// Answers the requests of one backend connection (kept alive by zurl).
async fn answer(mut socket: tokio::net::TcpStream) {
    let mut buf = vec![0u8; 8192];
    let mut filled = 0;
    loop {
        while let Some(end) = memchr::memmem::find(&buf[..filled], b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.copy_within(end + 4..filled, 0);
            filled -= end + 4;
            let path = head.split_whitespace().nth(1).unwrap_or("/");
            let channel = path
                .rsplit('/')
                .next()
                .and_then(|last| last.split('?').next())
                .filter(|c| !c.is_empty())
                .unwrap_or("bench");
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nGrip-Hold: stream\r\nGrip-Channel: {channel}\r\nContent-Length: 0\r\n\r\n"
            );
            if socket.write_all(response.as_bytes()).await.is_err() {
                return;
            }
        }
        if filled == buf.len() {
            return;
        }
        match socket.read(&mut buf[filled..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => filled += n,
        }
    }
}
