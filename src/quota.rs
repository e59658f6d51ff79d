//! Counting what one key (a client address, a token subject) holds at once, with a cap.
//!
//! A slot is given back when it is dropped, and a key whose count falls to zero leaves the map,
//! so the map holds only keys in use (its size is bounded by what they hold).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

/// See the module docs. Clone freely: one shared map.
#[derive(Debug)]
pub struct Quota<K: Hash + Eq> {
    counts: Arc<Mutex<HashMap<K, usize>>>,
    max: usize,
}

impl<K: Hash + Eq> Clone for Quota<K> {
    fn clone(&self) -> Self {
        Self {
            counts: Arc::clone(&self.counts),
            max: self.max,
        }
    }
}

/// One unit of a key's quota, given back on drop.
#[derive(Debug)]
pub struct QuotaSlot<K: Hash + Eq> {
    counts: Arc<Mutex<HashMap<K, usize>>>,
    key: K,
}

fn lock<K>(counts: &Mutex<HashMap<K, usize>>) -> MutexGuard<'_, HashMap<K, usize>> {
    // Each operation is a single increment or decrement: a poisoned map is still consistent.
    counts.lock().unwrap_or_else(|p| p.into_inner())
}

impl<K: Hash + Eq + Clone> Quota<K> {
    /// At most `max` at once per key.
    pub fn new(max: usize) -> Self {
        Self {
            counts: Arc::default(),
            max,
        }
    }

    /// Takes a slot for `key`, unless it holds `max` already.
    pub fn enter(&self, key: K) -> Option<QuotaSlot<K>> {
        let mut counts = lock(&self.counts);
        let count = counts.entry(key.clone()).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(QuotaSlot {
            counts: Arc::clone(&self.counts),
            key,
        })
    }

    /// Keys holding at least one slot.
    pub fn keys(&self) -> usize {
        lock(&self.counts).len()
    }
}

impl<K: Hash + Eq> Drop for QuotaSlot<K> {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        if let Some(count) = counts.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_per_key_and_given_back() {
        let quota = Quota::new(2);
        let a1 = quota.enter("a").unwrap();
        let _a2 = quota.enter("a").unwrap();
        assert!(quota.enter("a").is_none());
        let _b = quota.enter("b").unwrap();
        drop(a1);
        assert!(quota.enter("a").is_some());
        drop(_b);
        assert_eq!(quota.keys(), 1);
    }
}
