//! The server's shutdown signal, shared by every connection and stream.
//!
//! tokio-util's `CancellationToken` does the waiting, but its `is_cancelled` takes a mutex that
//! all clones share, and every stream asks "has shutdown begun?" before each wait for an event:
//! at 10,000 streams that was one lock, bounced between the cores, per delivery (`perf` during
//! the fan-out: about 1 % of the server's samples). The question is answered here from an atomic
//! flag, set before the token is cancelled, so a waiter the token wakes always sees it set.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

/// Begun once, never undone; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    begun: Arc<AtomicBool>,
}

impl Shutdown {
    /// Not begun.
    pub fn new() -> Self {
        Self::default()
    }

    /// Begins shutdown: the flag, then every waiter of [`Shutdown::cancelled`].
    pub fn cancel(&self) {
        self.begun.store(true, Ordering::Release);
        self.token.cancel();
    }

    /// Whether shutdown has begun (an atomic load, no lock).
    pub fn is_cancelled(&self) -> bool {
        self.begun.load(Ordering::Acquire)
    }

    /// Completes when shutdown begins.
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiter_woken_by_cancel_sees_the_flag() {
        let shutdown = Shutdown::new();
        let waiter = shutdown.clone();
        let seen = tokio::spawn(async move {
            waiter.cancelled().await;
            waiter.is_cancelled()
        });
        assert!(!shutdown.is_cancelled());
        shutdown.cancel();
        assert!(shutdown.is_cancelled());
        assert!(seen.await.unwrap());
    }
}
