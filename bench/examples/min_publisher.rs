//! The reference for the publish rate: the smallest tokio server that answers a keep-alive
//! `POST` (head, `Content-Length` body, a canned `202` JSON answer) with none of ssehub's
//! machinery: no routing, no validation, no history. What it reaches under `wrk` on a machine is
//! the ceiling for any tokio server there, and so tells the server's share of a publish from the
//! kernel's and the runtime's.
//!   taskset -c 0 cargo run --release -p ssehub-bench --example min_publisher -- 127.0.0.1:8002
//!   taskset -c 1 wrk -t1 -c16 -d6s -s publish.lua http://127.0.0.1:8002/publish

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ANSWER: &[u8] = b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 16\r\n\r\n{\"status\":\"ok\"}\n";

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8002".into());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(addr))
}

async fn serve(addr: String) -> std::io::Result<()> {
    let listener = TcpListener::bind(&addr).await?;
    loop {
        let (socket, _) = listener.accept().await?;
        let _ = socket.set_nodelay(true);
        tokio::spawn(handle(socket));
    }
}

async fn handle(mut socket: TcpStream) {
    let mut buf = Vec::with_capacity(4096);
    loop {
        // One request: its head, then as many body bytes as it declares.
        let request = loop {
            if let Some(len) = complete(&buf) {
                break len;
            }
            match socket.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        };
        buf.drain(..request);
        if socket.write_all(ANSWER).await.is_err() {
            return;
        }
    }
}

/// The length of the first whole request in `buf` (head and body), if it is all there.
fn complete(buf: &[u8]) -> Option<usize> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    (buf.len() >= end + length).then_some(end + length)
}
