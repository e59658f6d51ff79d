//! What a stream is and how it ended, as labels, and the guard that counts one stream.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{Inner, ENDS};

/// What a stream is, for its labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// Native `mode=burst`.
    Burst,
    /// Native `mode=live`.
    Live,
    /// The Mercure endpoint.
    Mercure,
}

impl StreamKind {
    pub(super) const ALL: [Self; 3] = [Self::Burst, Self::Live, Self::Mercure];

    pub(super) fn label(self) -> &'static str {
        match self {
            Self::Burst => "burst",
            Self::Live => "live",
            Self::Mercure => "mercure",
        }
    }
}

/// The HTTP version a stream is served over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HttpVersion {
    /// HTTP/1.0.
    Http10,
    /// HTTP/1.1.
    #[default]
    Http11,
    /// HTTP/2.
    Http2,
}

impl HttpVersion {
    pub(super) const ALL: [Self; 3] = [Self::Http10, Self::Http11, Self::Http2];

    pub(super) fn label(self) -> &'static str {
        match self {
            Self::Http10 => "1.0",
            Self::Http11 => "1.1",
            Self::Http2 => "2",
        }
    }
}

/// Why a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// A burst sent its `close` (the seed's normal end).
    Complete,
    /// The client went away or stopped reading (the default when nothing else was recorded).
    ClientGone,
    /// It fell a whole queue behind and was told to resume.
    Lagged,
    /// Its token expired.
    Expired,
    /// It reached `--max-stream-lifetime`.
    Lifetime,
    /// The server shut down.
    Shutdown,
}

impl End {
    pub(super) const ALL: [Self; 6] = [
        Self::Complete,
        Self::ClientGone,
        Self::Lagged,
        Self::Expired,
        Self::Lifetime,
        Self::Shutdown,
    ];

    pub(super) fn label(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::ClientGone => "client_gone",
            Self::Lagged => "lagged",
            Self::Expired => "expired",
            Self::Lifetime => "lifetime",
            Self::Shutdown => "shutdown",
        }
    }
}

/// One open stream's accounting: dropped when the stream ends, which records the end.
pub struct StreamStats {
    pub(super) inner: Arc<Inner>,
    pub(super) kind: StreamKind,
    pub(super) slot: u8,
    pub(super) end: Option<End>,
    /// Events sent and not yet added to the shared counter.
    pub(super) pending: u32,
}

impl std::fmt::Debug for StreamStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamStats")
            .field("kind", &self.kind)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl StreamStats {
    /// One more event frame sent (a plain add: see [`StreamStats::flush`]).
    #[inline]
    pub fn sent(&mut self) {
        if self.pending == u32::MAX {
            self.flush();
        }
        self.pending += 1;
    }

    /// Hands the events counted since the last call to the shared counter: once per write.
    #[inline]
    pub fn flush(&mut self) {
        if self.pending > 0 {
            self.inner
                .delivered
                .fetch_add(u64::from(self.pending), Ordering::Relaxed);
            self.pending = 0;
        }
    }

    /// Records why the stream ends; the first reason given wins.
    pub fn end(&mut self, end: End) {
        self.end.get_or_insert(end);
    }
}

impl Drop for StreamStats {
    fn drop(&mut self) {
        self.flush();
        self.inner.open[usize::from(self.slot)].fetch_sub(1, Ordering::Relaxed);
        let end = self.end.unwrap_or(End::ClientGone);
        self.inner.ended[self.kind as usize * ENDS + end as usize].increment(1);
    }
}
