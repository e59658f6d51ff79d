//! The subscribers of one pattern. Most topics have a handful (a per-user topic has one), and a
//! short `Vec` is both the smallest and the fastest thing for them; a topic that thousands of
//! streams watch switches to an index by slot, so that each leaving stream is O(1): 19,000
//! burst streams of one topic ending together used to cost 19,000 linear searches under the
//! fan-out lock (a third of a second of CPU at 19,000).

use std::sync::Arc;

use indexmap::IndexMap;

use super::Slot;

/// Above this many members a list becomes an index.
const INDEXED_ABOVE: usize = 64;

#[derive(Debug)]
pub(super) enum Members {
    Few(Vec<Arc<Slot>>),
    /// Keyed by the slot's address (unique while the slot is alive, and it is while listed).
    Many(Box<IndexMap<usize, Arc<Slot>>>),
}

impl Default for Members {
    fn default() -> Self {
        Self::Few(Vec::new())
    }
}

fn key(slot: &Arc<Slot>) -> usize {
    Arc::as_ptr(slot) as usize
}

impl Members {
    pub(super) fn insert(&mut self, slot: Arc<Slot>) {
        match self {
            Self::Few(list) if list.len() < INDEXED_ABOVE => list.push(slot),
            Self::Few(list) => {
                let mut index = IndexMap::with_capacity(list.len() * 2);
                for member in list.drain(..) {
                    index.insert(key(&member), member);
                }
                index.insert(key(&slot), slot);
                *self = Self::Many(Box::new(index));
            }
            Self::Many(index) => {
                index.insert(key(&slot), slot);
            }
        }
    }

    pub(super) fn remove(&mut self, slot: &Arc<Slot>) {
        match self {
            Self::Few(list) => {
                if let Some(at) = list.iter().position(|s| Arc::ptr_eq(s, slot)) {
                    list.swap_remove(at);
                }
            }
            Self::Many(index) => {
                index.swap_remove(&key(slot));
            }
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Self::Few(list) => list.len(),
            Self::Many(index) => index.len(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn for_each(&self, mut f: impl FnMut(&Arc<Slot>)) {
        match self {
            Self::Few(list) => list.iter().for_each(f),
            Self::Many(index) => index.values().for_each(&mut f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(members: &Members) -> Vec<usize> {
        let mut out = Vec::new();
        members.for_each(|s| out.push(key(s)));
        out.sort_unstable();
        out
    }

    /// Across the switch to an index and back down in size, the members are exactly those
    /// inserted and not removed.
    #[test]
    fn members_survive_the_switch_to_an_index() {
        let slots: Vec<Arc<Slot>> = (0..200).map(|_| Arc::new(Slot::default())).collect();
        let mut members = Members::default();
        for slot in &slots[..INDEXED_ABOVE] {
            members.insert(Arc::clone(slot));
        }
        assert!(matches!(members, Members::Few(_)));
        for slot in &slots[INDEXED_ABOVE..] {
            members.insert(Arc::clone(slot));
        }
        assert!(matches!(members, Members::Many(_)));
        for slot in slots.iter().step_by(3) {
            members.remove(slot);
        }
        let mut kept: Vec<usize> = slots
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 0)
            .map(|(_, s)| key(s))
            .collect();
        kept.sort_unstable();
        assert_eq!(addresses(&members), kept);
        assert_eq!(members.len(), kept.len());
        for slot in &slots {
            members.remove(slot);
        }
        assert!(members.is_empty());
    }
}
