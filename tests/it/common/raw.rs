//! Raw HTTP/1.1 requests sent both ways: a `Content-Length` body, which the direct path
//! serves, and a chunked one, which hyper serves (`tests/it/paths_publish.rs`, `tests/it/hostile.rs`).

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{TestApp, PATIENCE};

/// A raw HTTP/1.1 request; `chunked` sends the body with `Transfer-Encoding: chunked`, which
/// the direct path leaves to hyper.
pub fn request(target: &str, headers: &[(&str, &str)], body: &str, chunked: bool) -> String {
    let mut text = format!("POST {target} HTTP/1.1\r\nHost: x\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    if chunked {
        let size = if body.is_empty() {
            String::new()
        } else {
            format!("{:x}\r\n{body}\r\n", body.len())
        };
        text.push_str(&format!(
            "Transfer-Encoding: chunked\r\n\r\n{size}0\r\n\r\n"
        ));
    } else {
        text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    }
    text
}

/// One response: its head's lines (without the date, sorted) and its body.
#[derive(Debug, PartialEq)]
pub struct Response {
    pub status: String,
    pub headers: Vec<String>,
    pub body: Value,
}

/// Reads one `Content-Length` response from `socket` (leaving anything after it unread).
pub async fn read_response(socket: &mut TcpStream) -> Response {
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    tokio::time::timeout(PATIENCE, async {
        while !seen.ends_with(b"\r\n\r\n") {
            let n = socket.read(&mut byte).await.unwrap();
            assert_eq!(n, 1, "closed early: {}", String::from_utf8_lossy(&seen));
            seen.push(byte[0]);
        }
    })
    .await
    .expect("no response head");
    let head = String::from_utf8(seen).unwrap();
    let mut lines = head.trim_end().split("\r\n");
    let status = lines.next().unwrap().to_owned();
    let mut headers: Vec<String> = lines
        .filter(|l| !l.starts_with("date: "))
        .map(str::to_owned)
        .collect();
    headers.sort();
    let length: usize = headers
        .iter()
        .find_map(|h| h.strip_prefix("content-length: "))
        .expect("content-length")
        .parse()
        .unwrap();
    let mut body = vec![0u8; length];
    tokio::time::timeout(PATIENCE, socket.read_exact(&mut body))
        .await
        .expect("no body")
        .unwrap();
    // The id's length varies with its counter, and so the body's.
    headers.retain(|h| !h.starts_with("content-length: "));
    let text = headers
        .iter()
        .any(|h| h.starts_with("content-type: text/plain"));
    let body = if text {
        // A Mercure publish answers the update's id: the hub's, or the publisher's own.
        let id = String::from_utf8(body).unwrap();
        match id.strip_prefix("urn:ssehub:") {
            Some(_) => Value::from("<id>"),
            None => Value::from(id),
        }
    } else {
        let mut body: Value = serde_json::from_slice(&body).unwrap();
        if let Some(id) = body.pointer_mut("/data/id") {
            *id = Value::from("<id>");
        }
        body
    };
    Response {
        status,
        headers,
        body,
    }
}

/// A request target, its headers, its body and the status both paths must answer.
pub type Case<'a> = (&'a str, Vec<(&'a str, String)>, &'a str, u16);

/// Sends the request both ways (a `Content-Length` body, which the direct path serves, then a
/// chunked one, which hyper serves), asserts the two answers are the same and have `status`, and
/// returns the direct path's.
pub async fn both_ways(
    app: &TestApp,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
    status: u16,
) -> Response {
    let direct = send(app, &request(target, headers, body, false)).await;
    let hyper = send(app, &request(target, headers, body, true)).await;
    assert_eq!(direct, hyper, "{target} {headers:?} {body}");
    assert!(
        direct.status.starts_with(&format!("HTTP/1.1 {status} ")),
        "{target} {headers:?} {body}: {direct:?}"
    );
    direct
}

pub async fn send(app: &TestApp, raw: &str) -> Response {
    let mut socket = TcpStream::connect(app.addr).await.unwrap();
    socket.write_all(raw.as_bytes()).await.unwrap();
    read_response(&mut socket).await
}
