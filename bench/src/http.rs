//! Just enough HTTP/1.1 for a load generator: connecting from a chosen loopback source address,
//! parsing a response head, and decoding a body that is chunked, sized by `Content-Length` or
//! delimited by the connection's close. No allocation per chunk; bodies are handed on as slices.

#![allow(unsafe_code)] // system calls tokio does not wrap; each block says why it is sound

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};

use crate::bail;
use crate::error::{Context, Result};

/// Largest response head accepted.
pub const MAX_HEAD: usize = 8 * 1024;

/// Opens a TCP connection to `to` from `from` (port chosen by the kernel at connect time, so
/// each source address has its own ephemeral port range per destination).
pub async fn connect(from: Ipv4Addr, to: SocketAddr, limit: Duration) -> Result<TcpStream> {
    let socket = TcpSocket::new_v4().context("socket")?;
    let one: libc::c_int = 1;
    // SAFETY: setsockopt reads `one` (an int) for the length we pass; the fd is open.
    // IP_BIND_ADDRESS_NO_PORT defers the port choice to connect(); failure is harmless.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    socket
        .bind(SocketAddr::from((from, 0)))
        .with_context(|| format!("bind {from}"))?;
    let stream = tokio::time::timeout(limit, socket.connect(to))
        .await
        .with_context(|| format!("connect {from} -> {to}: timed out"))?
        .with_context(|| format!("connect {from} -> {to}"))?;
    stream.set_nodelay(true).context("TCP_NODELAY")?;
    Ok(stream)
}

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// `Content-Length: n`.
    Length(u64),
    /// Neither: the body ends when the server closes the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug, Clone)]
pub struct Head {
    /// Status code.
    pub status: u16,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the server will close the connection after this response.
    pub close: bool,
    /// Bytes of the head, including the blank line.
    pub len: usize,
}

/// Parses a response head from the start of `buf`; `None` until it is complete.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>> {
    let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            bail!("response head longer than {MAX_HEAD} bytes");
        }
        return Ok(None);
    };
    let text = std::str::from_utf8(&buf[..end]).context("response head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        bail!("not an HTTP/1 response: {status_line:?}");
    }
    let status: u16 = parts
        .next()
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let mut framing = Framing::UntilClose;
    let mut close = version == "HTTP/1.0";
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            if value.to_ascii_lowercase().contains("chunked") {
                framing = Framing::Chunked;
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            if framing != Framing::Chunked {
                let length = value
                    .parse()
                    .with_context(|| format!("bad Content-Length {value:?}"))?;
                framing = Framing::Length(length);
            }
        } else if name.eq_ignore_ascii_case("connection") {
            let value = value.to_ascii_lowercase();
            if value.contains("close") {
                close = true;
            } else if value.contains("keep-alive") {
                close = false;
            }
        }
    }
    if status == 204 || status == 304 || (100..200).contains(&status) {
        framing = Framing::Length(0);
    }
    if framing == Framing::UntilClose {
        close = true;
    }
    Ok(Some(Head {
        status,
        framing,
        close,
        len: end + 4,
    }))
}

/// Incremental decoder of one response body.
#[derive(Debug)]
pub struct Body {
    state: State,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Reading a chunk-size line's hex digits.
    Size { value: u64, digits: bool },
    /// Skipping a chunk extension up to the line end.
    Extension { value: u64 },
    /// After the size line's CR.
    SizeLf { value: u64 },
    /// Inside chunk data.
    Data { left: u64 },
    /// After chunk data, expecting CR.
    DataCr,
    /// After chunk data's CR, expecting LF.
    DataLf,
    /// Trailer section after the last chunk; `fresh` at the start of a line.
    Trailer { fresh: bool },
    /// A sized body with bytes left.
    Sized { left: u64 },
    /// Until the connection closes.
    UntilClose,
    /// The body is complete.
    Done,
}

impl Body {
    /// A decoder for a body with this framing.
    pub fn new(framing: Framing) -> Self {
        let state = match framing {
            Framing::Chunked => State::Size {
                value: 0,
                digits: false,
            },
            Framing::Length(0) => State::Done,
            Framing::Length(left) => State::Sized { left },
            Framing::UntilClose => State::UntilClose,
        };
        Self { state }
    }

    /// Whether the whole body has been read.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Whether the body ends with the connection.
    pub fn until_close(&self) -> bool {
        matches!(self.state, State::UntilClose)
    }

    /// Decodes `input`, handing body bytes to `sink`. Returns how many bytes of `input` belong
    /// to this body (the rest, if any, is the next response on a keep-alive connection).
    pub fn feed<'a>(&mut self, input: &'a [u8], mut sink: impl FnMut(&'a [u8])) -> Result<usize> {
        let mut at = 0;
        while at < input.len() {
            match self.state {
                State::Done => return Ok(at),
                State::UntilClose => {
                    sink(&input[at..]);
                    return Ok(input.len());
                }
                State::Sized { left } | State::Data { left } => {
                    let take = left.min((input.len() - at) as u64) as usize;
                    sink(&input[at..at + take]);
                    at += take;
                    let left = left - take as u64;
                    self.state = match (self.state, left) {
                        (State::Sized { .. }, 0) => State::Done,
                        (State::Sized { .. }, _) => State::Sized { left },
                        (_, 0) => State::DataCr,
                        (_, _) => State::Data { left },
                    };
                }
                State::Size { value, digits } => {
                    let byte = input[at];
                    at += 1;
                    if let Some(digit) = (byte as char).to_digit(16) {
                        if value > u64::MAX >> 8 {
                            bail!("chunk size too large");
                        }
                        self.state = State::Size {
                            value: value * 16 + u64::from(digit),
                            digits: true,
                        };
                    } else if !digits {
                        bail!("bad chunk size byte {byte:#04x}");
                    } else {
                        self.state = match byte {
                            b'\r' => State::SizeLf { value },
                            b'\n' => after_size(value),
                            b';' | b' ' | b'\t' => State::Extension { value },
                            _ => bail!("bad chunk size byte {byte:#04x}"),
                        };
                    }
                }
                State::Extension { value } => match memchr::memchr2(b'\r', b'\n', &input[at..]) {
                    None => at = input.len(),
                    Some(offset) => {
                        let byte = input[at + offset];
                        at += offset + 1;
                        self.state = if byte == b'\r' {
                            State::SizeLf { value }
                        } else {
                            after_size(value)
                        };
                    }
                },
                State::SizeLf { value } => {
                    if input[at] != b'\n' {
                        bail!("chunk size line without LF");
                    }
                    at += 1;
                    self.state = after_size(value);
                }
                State::DataCr => {
                    self.state = match input[at] {
                        b'\r' => State::DataLf,
                        b'\n' => State::Size {
                            value: 0,
                            digits: false,
                        },
                        other => bail!("chunk data not followed by CRLF but {other:#04x}"),
                    };
                    at += 1;
                }
                State::DataLf => {
                    if input[at] != b'\n' {
                        bail!("chunk data not followed by CRLF");
                    }
                    at += 1;
                    self.state = State::Size {
                        value: 0,
                        digits: false,
                    };
                }
                State::Trailer { fresh } => {
                    let byte = input[at];
                    at += 1;
                    self.state = match byte {
                        b'\n' if fresh => State::Done,
                        b'\n' => State::Trailer { fresh: true },
                        b'\r' => State::Trailer { fresh },
                        _ => State::Trailer { fresh: false },
                    };
                }
            }
        }
        Ok(at)
    }
}

fn after_size(value: u64) -> State {
    if value == 0 {
        State::Trailer { fresh: true }
    } else {
        State::Data { left: value }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_split(framing: Framing, wire: &[u8], split: usize) -> (Vec<u8>, bool, usize) {
        let mut body = Body::new(framing);
        let mut out = Vec::new();
        let first = body
            .feed(&wire[..split], |b| out.extend_from_slice(b))
            .expect("first half");
        let mut used = first;
        if first == split {
            used += body
                .feed(&wire[split..], |b| out.extend_from_slice(b))
                .expect("second half");
        }
        (out, body.is_done(), used)
    }

    #[test]
    fn chunked_any_split() {
        let wire = b"5\r\nhello\r\n1;ext=1\r\n \r\n6\r\nworld!\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for split in 0..wire.len() {
            let (out, done, used) = decode_split(Framing::Chunked, wire, split);
            assert_eq!(out, b"hello world!", "split {split}");
            assert!(done);
            assert_eq!(&wire[used..], b"NEXT");
        }
    }

    #[test]
    fn sized_and_close_delimited() {
        let (out, done, used) = decode_split(Framing::Length(3), b"abcdef", 1);
        assert_eq!((out.as_slice(), done, used), (&b"abc"[..], true, 3));
        let (out, done, _) = decode_split(Framing::UntilClose, b"abcdef", 2);
        assert_eq!((out.as_slice(), done), (&b"abcdef"[..], false));
    }

    #[test]
    fn heads() {
        let head = parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxx")
            .expect("parses")
            .expect("complete");
        assert_eq!(
            (head.status, head.framing, head.close, head.len),
            (200, Framing::Chunked, false, 47)
        );
        let head = parse_head(
            b"HTTP/1.1 201 Created\r\ncontent-length: 12\r\nConnection: keep-alive\r\n\r\n",
        )
        .expect("parses")
        .expect("complete");
        assert_eq!(head.framing, Framing::Length(12));
        let head = parse_head(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
            .expect("parses")
            .expect("complete");
        assert_eq!((head.framing, head.close), (Framing::UntilClose, true));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n")
            .expect("parses")
            .is_none());
        assert!(parse_head(b"SSH-2.0\r\n\r\n").is_err());
        assert!(Body::new(Framing::Chunked).feed(b"zz\r\n", |_| {}).is_err());
    }
}
