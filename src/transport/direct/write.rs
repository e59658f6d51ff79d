//! Writing chunked frames to a socket without waiting when it has room, and with a deadline
//! when it does not.

use std::io::{self, IoSlice};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;

use super::BATCH;

/// Writes up to this many bytes are joined into one buffer and sent with `send(2)`; larger ones
/// go out as they are with `writev(2)`. On Linux a vectored write takes the VFS path (the file
/// position lock, the I/O vector's import): `perf` put it at ~9 % of the server's CPU at
/// 10 msg/s × 10,000 live streams, where each delivery is one small write; copying a few
/// hundred bytes costs less.
const JOIN_UP_TO: usize = 4096;

thread_local! {
    /// The buffer writes are joined in (one per worker thread, reused).
    static JOINED: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(JOIN_UP_TO));
}

/// Writes frames as one chunk (or raw), waiting (up to `limit`) only if the socket is full.
pub(super) async fn write(
    socket: &TcpStream,
    frames: &[Bytes],
    chunked: bool,
    limit: Duration,
) -> io::Result<()> {
    match try_write(socket, frames, chunked, false)? {
        None => Ok(()),
        // Boxed: only a client that does not keep up pays for this future.
        Some(rest) => Box::pin(write_rest(socket, rest, limit)).await,
    }
}

/// Writes what the socket takes now; returns the rest, copied, if it did not take it all.
pub(super) fn try_write(
    socket: &TcpStream,
    frames: &[Bytes],
    chunked: bool,
    last: bool,
) -> io::Result<Option<Vec<u8>>> {
    let total: usize = frames.iter().map(Bytes::len).sum();
    let size = format!("{total:x}\r\n");
    let (head, tail): (&[u8], &[u8]) = match (chunked, total > 0, last) {
        (false, _, _) => (b"", b""),
        (true, true, false) => (size.as_bytes(), b"\r\n"),
        (true, true, true) => (size.as_bytes(), b"\r\n0\r\n\r\n"),
        (true, false, true) => (b"", b"0\r\n\r\n"),
        (true, false, false) => (b"", b""),
    };
    let mut pieces: [&[u8]; BATCH + 2] = [&[]; BATCH + 2];
    pieces[0] = head;
    for (slot, frame) in pieces[1..].iter_mut().zip(frames) {
        *slot = frame;
    }
    pieces[frames.len() + 1] = tail;
    let pieces = &pieces[..frames.len() + 2];
    let goal = head.len() + total + tail.len();
    let mut buffer = [IoSlice::new(&[]); BATCH + 2];
    let attempt = if goal <= JOIN_UP_TO {
        JOINED.with_borrow_mut(|joined| {
            joined.clear();
            pieces
                .iter()
                .for_each(|piece| joined.extend_from_slice(piece));
            socket.try_write(joined)
        })
    } else {
        let used = slices(pieces, 0, &mut buffer);
        socket.try_write_vectored(&buffer[..used])
    };
    let written = match attempt {
        Ok(n) => n,
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => 0,
        Err(err) => return Err(err),
    };
    if written == goal {
        return Ok(None);
    }
    let mut rest = Vec::with_capacity(goal - written);
    let used = slices(pieces, written, &mut buffer);
    for piece in &buffer[..used] {
        rest.extend_from_slice(piece);
    }
    Ok(Some(rest))
}

/// Waits for room and writes `rest`, failing with `TimedOut` past `limit`.
pub(super) async fn write_rest(
    socket: &TcpStream,
    rest: Vec<u8>,
    limit: Duration,
) -> io::Result<()> {
    let mut rest = &rest[..];
    let deadline = tokio::time::Instant::now() + limit;
    while !rest.is_empty() {
        tokio::time::timeout_at(deadline, socket.writable())
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    "peer took no bytes within the write timeout",
                )
            })??;
        match socket.try_write(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => rest = &rest[n..],
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// Fills `out` with the pieces as I/O slices, skipping the first `skip` bytes; returns how
/// many it filled.
fn slices<'a>(pieces: &[&'a [u8]], mut skip: usize, out: &mut [IoSlice<'a>]) -> usize {
    let mut used = 0;
    for piece in pieces {
        if skip >= piece.len() {
            skip -= piece.len();
            continue;
        }
        out[used] = IoSlice::new(&piece[skip..]);
        skip = 0;
        used += 1;
    }
    used
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn slices_skip_what_was_written() {
        let pieces: [&[u8]; 3] = [b"ab", b"", b"cde"];
        let mut out = [IoSlice::new(&[]); 3];
        let cases: [(usize, &[u8]); 5] = [
            (0, b"abcde"),
            (1, b"bcde"),
            (2, b"cde"),
            (4, b"e"),
            (5, b""),
        ];
        for (skip, expected) in cases {
            let used = slices(&pieces, skip, &mut out);
            let joined: Vec<u8> = out[..used].iter().flat_map(|s| s.to_vec()).collect();
            assert_eq!(joined, expected, "skip {skip}");
        }
    }

    /// Fills a socket nobody reads until a write is partial, then checks that what the
    /// reader finally gets is every chunk whole, in order: for writes joined into one buffer
    /// and for writes too large for it.
    #[tokio::test]
    async fn partial_writes_keep_the_rest_in_order() {
        for size in [1000, JOIN_UP_TO + 1000] {
            partial_write_of(size).await;
        }
    }

    async fn partial_write_of(size: usize) {
        let (mut reader, writer) = crate::io::socket_pair().await;
        let frame = Bytes::from(vec![b'x'; size]);
        let mut sent = 0usize;
        let rest = loop {
            let frames = [frame.clone(), Bytes::from_static(b"y\n")];
            sent += 1;
            if let Some(rest) = try_write(&writer, &frames, true, false).unwrap() {
                break rest;
            }
        };
        let expected_total = sent * (format!("{:x}\r\n", size + 2).len() + size + 2 + 2);
        let drain = tokio::spawn(async move {
            let mut all = Vec::new();
            let mut buf = vec![0u8; 65536];
            while all.len() < expected_total {
                let n = reader.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed early");
                all.extend_from_slice(&buf[..n]);
            }
            all
        });
        write_rest(&writer, rest, Duration::from_secs(5))
            .await
            .unwrap();
        let all = drain.await.unwrap();
        let one = [
            format!("{:x}\r\n", size + 2).into_bytes(),
            vec![b'x'; size],
            b"y\n\r\n".to_vec(),
        ]
        .concat();
        assert_eq!(all.len(), expected_total);
        assert!(all.chunks(one.len()).all(|chunk| chunk == one));
    }

    #[tokio::test]
    async fn a_peer_that_reads_nothing_times_out() {
        let (_reader, writer) = crate::io::socket_pair().await;
        let frame = Bytes::from(vec![b'x'; 64 * 1024]);
        let rest = loop {
            if let Some(rest) =
                try_write(&writer, std::slice::from_ref(&frame), false, false).unwrap()
            {
                break rest;
            }
        };
        let err = write_rest(&writer, rest, Duration::from_millis(100))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
