//! The server's shutdown signal, shared by every connection and stream.
//!
//! An atomic flag and a [`Notify`]: "has shutdown begun?" is one atomic load, and a wait
//! registers with the `Notify` only while it waits. tokio-util's `CancellationToken` did this
//! job before, but its `is_cancelled` and every clone and drop of a token lock a mutex that all
//! clones share. Streams ask before each wait for an event (at 10,000 streams, one lock bounced
//! between the cores per delivery: ~1 % of the fan-out's samples in `perf`), and a kept-alive
//! publish connection waited on a fresh token future for every request (five such locks per
//! publish, ~2 % of the publish path's samples).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// Begun once, never undone; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    begun: AtomicBool,
    notify: Notify,
}

impl Shutdown {
    /// Not begun.
    pub fn new() -> Self {
        Self::default()
    }

    /// Begins shutdown: the flag, then every waiter of [`Shutdown::cancelled`].
    pub fn cancel(&self) {
        self.inner.begun.store(true, Ordering::Release);
        self.inner.notify.notify_waiters();
    }

    /// Whether shutdown has begun (an atomic load, no lock).
    pub fn is_cancelled(&self) -> bool {
        self.inner.begun.load(Ordering::Acquire)
    }

    /// Completes when shutdown begins (at once if it has). A future kept across many waits
    /// (pinned outside a loop) registers once.
    pub async fn cancelled(&self) {
        // Made before the flag is read: `notify_waiters` wakes every `Notified` that exists when
        // it runs, polled or not, so a cancel after the read is not missed.
        let notified = self.inner.notify.notified();
        if self.is_cancelled() {
            return;
        }
        notified.await;
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

    #[tokio::test]
    async fn a_wait_begun_after_the_cancel_ends_at_once() {
        let shutdown = Shutdown::new();
        shutdown.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(5), shutdown.cancelled())
            .await
            .expect("a cancelled shutdown is not waited for");
    }

    /// A wait that has read the flag (`false`) and registered, then the cancel.
    #[test]
    fn a_cancel_after_the_wait_began_wakes_it() {
        let shutdown = Shutdown::new();
        use std::future::Future;
        let mut wait = std::pin::pin!(shutdown.cancelled());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        // First poll: reads the flag, registers, waits.
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        shutdown.cancel();
        assert!(wait.as_mut().poll(&mut cx).is_ready());
    }

    /// The cancel racing the start of waits on other threads, over and over: a wait that read
    /// the flag just before it was set must still be woken.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancel_racing_the_start_of_a_wait_is_never_missed() {
        for _ in 0..2_000 {
            let shutdown = Shutdown::new();
            let waiter = shutdown.clone();
            let waiting = tokio::spawn(async move { waiter.cancelled().await });
            let cancel = std::thread::spawn(move || shutdown.cancel());
            tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
                .await
                .expect("a wait that raced the cancel was woken")
                .expect("ran");
            cancel.join().expect("cancelled");
        }
    }

    #[tokio::test]
    async fn every_waiter_of_many_clones_wakes() {
        let shutdown = Shutdown::new();
        let waiters: Vec<_> = (0..100)
            .map(|_| {
                let waiter = shutdown.clone();
                tokio::spawn(async move { waiter.cancelled().await })
            })
            .collect();
        tokio::task::yield_now().await;
        shutdown.cancel();
        for waiter in waiters {
            tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
                .await
                .expect("woken")
                .expect("ran");
        }
    }
}
