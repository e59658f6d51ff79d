//! The memory that clients' URI templates and URL patterns may hold, in bytes: per request
//! (`--max-pattern-bytes-per-stream`) and for the whole hub (`--max-pattern-bytes`).
//!
//! Every compiled selector carries a [`Charge`] of its bytes (`topic::compiled`) against the
//! hub's [`PatternBudget`] for as long as any copy of it lives (subscribers sending the same
//! text share one compiled copy, so the hub-wide figure is what is really held). A request
//! whose patterns would pass its own allowance is refused with 400, one that would pass the
//! hub's with 503: either way before it costs more than the allowance.
//!
//! Freed automata go back to the system: glibc keeps freed memory in its arenas, so after a
//! few MiB of patterns are released [`PatternBudget::reclaim`] (called once a second by the
//! hub's housekeeping) asks it to return them (`malloc_trim`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Bytes released since the last trim after which the next [`PatternBudget::reclaim`] trims.
const TRIM_AFTER: usize = 4 * 1024 * 1024;

/// See the module docs.
#[derive(Debug)]
pub struct PatternBudget {
    limit: usize,
    used: AtomicUsize,
    freed: AtomicUsize,
}

/// Bytes held against a [`PatternBudget`], given back on drop.
#[derive(Debug)]
pub struct Charge {
    budget: Arc<PatternBudget>,
    bytes: usize,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::Relaxed);
        self.budget.freed.fetch_add(self.bytes, Ordering::Relaxed);
    }
}

/// The hub's budget is used up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the hub holds as many subscription patterns as it may")]
pub struct Exhausted;

impl PatternBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            used: AtomicUsize::new(0),
            freed: AtomicUsize::new(0),
        })
    }

    /// Takes `bytes` from the budget until the returned charge drops.
    ///
    /// # Errors
    /// [`Exhausted`] when fewer than `bytes` are left.
    pub fn charge(self: &Arc<Self>, bytes: usize) -> Result<Charge, Exhausted> {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.limit)
            })
            .map_err(|_| Exhausted)?;
        Ok(Charge {
            budget: Arc::clone(self),
            bytes,
        })
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Returns freed memory to the system once enough was released since the last time.
    pub fn reclaim(&self) {
        if self.freed.load(Ordering::Relaxed) < TRIM_AFTER {
            return;
        }
        self.freed.store(0, Ordering::Relaxed);
        trim();
    }
}

/// Asks the allocator to return free memory to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn trim() {
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no pointer and
    // is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Asks the allocator to return free memory to the system (a no-op off glibc).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() {}

/// What one request may still compile: its own allowance and the hub's budget.
#[derive(Debug)]
pub struct Spend {
    hub: Option<Arc<PatternBudget>>,
    allowance: usize,
    left: usize,
}

/// Why a request's patterns were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SpendError {
    /// Over the request's own allowance (400).
    #[error("the subscription's patterns need more than the {0} bytes one stream may hold (--max-pattern-bytes-per-stream): send fewer or simpler patterns")]
    Stream(usize),
    /// Over the hub's budget (503).
    #[error("the hub holds as many subscription patterns as it may, retry later")]
    Hub,
}

impl Spend {
    /// `allowance` bytes for this request, charged to `hub`.
    pub fn new(hub: &Arc<PatternBudget>, allowance: usize) -> Self {
        Self {
            hub: Some(Arc::clone(hub)),
            allowance,
            left: allowance,
        }
    }

    /// No limit but the per-expression caps: what tokens' selectors get (a verified token is
    /// the operator's word, and a token carries at most 256 selectors).
    pub fn unlimited() -> Self {
        Self {
            hub: None,
            allowance: usize::MAX,
            left: usize::MAX,
        }
    }

    /// Takes `bytes` from the request's allowance and the hub's budget.
    ///
    /// # Errors
    /// [`SpendError`] when either is short; nothing is taken then.
    pub fn take(&mut self, bytes: usize) -> Result<Option<Charge>, SpendError> {
        if bytes > self.left {
            return Err(SpendError::Stream(self.allowance));
        }
        let charge = match &self.hub {
            Some(hub) => Some(hub.charge(bytes).map_err(|_| SpendError::Hub)?),
            None => None,
        };
        self.left -= bytes;
        Ok(charge)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_come_back_when_dropped() {
        let hub = PatternBudget::new(1000);
        let a = hub.charge(600).unwrap();
        assert_eq!(hub.charge(500).unwrap_err(), Exhausted);
        let b = hub.charge(400).unwrap();
        assert_eq!(hub.used(), 1000);
        drop(a);
        drop(b);
        assert_eq!(hub.used(), 0);
        assert!(hub.charge(1000).is_ok());
    }

    #[test]
    fn a_request_is_held_to_its_allowance_and_the_hub_to_its_budget() {
        let hub = PatternBudget::new(1000);
        let mut spend = Spend::new(&hub, 300);
        let kept = spend.take(200).unwrap();
        assert_eq!(spend.take(200).unwrap_err(), SpendError::Stream(300));
        assert_eq!(hub.used(), 200);
        let mut other = Spend::new(&hub, 10_000);
        assert_eq!(other.take(900).unwrap_err(), SpendError::Hub);
        assert_eq!(hub.used(), 200);
        drop(kept);
        assert_eq!(hub.used(), 0);
    }
}
