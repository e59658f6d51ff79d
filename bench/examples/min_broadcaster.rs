//! The reference for the burst rhythm: the smallest server that does what `GET /stream` does
//! (one task per connection, a broadcast channel, three copies one second apart, then `close`),
//! with none of ssehub's machinery. Run `burst_probe` against it and against ssehub on the same
//! machine to tell the server's share of an interval error from the machine's.
//!   taskset -c 0 cargo run --release -p ssehub-bench --example min_broadcaster -- 127.0.0.1:8001
//!   taskset -c 1 cargo run --release -p ssehub-bench --example burst_probe -- 127.0.0.1:8001 19000

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8001".into());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(addr))
}

async fn serve(addr: String) -> std::io::Result<()> {
    let listener = TcpListener::bind(&addr).await?;
    let (tx, _) = broadcast::channel::<String>(16);
    loop {
        let (socket, _) = listener.accept().await?;
        let tx = tx.clone();
        tokio::spawn(handle(socket, tx));
    }
}

async fn handle(mut socket: TcpStream, tx: broadcast::Sender<String>) {
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        let Ok(n) = socket.read(&mut buf[len..]).await else {
            return;
        };
        if n == 0 {
            return;
        }
        len += n;
        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let head = &buf[..len];
    if head.starts_with(b"POST") {
        // The body is small and arrives with the head or right after it.
        let text = String::from_utf8_lossy(head).into_owned();
        let body_start = text.find("\r\n\r\n").map_or(len, |i| i + 4);
        let mut body = buf[body_start..len].to_vec();
        if body.is_empty() {
            let mut more = vec![0u8; 1024];
            if let Ok(n) = socket.read(&mut more).await {
                body.extend_from_slice(&more[..n]);
            }
        }
        let message = String::from_utf8_lossy(&body).into_owned();
        let _ = tx.send(message);
        let _ = socket
            .write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
        return;
    }
    let mut rx = tx.subscribe();
    if socket
        .write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n",
        )
        .await
        .is_err()
    {
        return;
    }
    let Ok(message) = rx.recv().await else {
        return;
    };
    for copy in 0..3 {
        if copy > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let frame = format!("event: message\ndata: {message}\n\n");
        if socket.write_all(frame.as_bytes()).await.is_err() {
            return;
        }
    }
    let _ = socket.write_all(b"event: close\ndata: done\n\n").await;
    let _ = socket.read(&mut buf).await;
}
