//! Putting the events of several partitions back in one id order (Redis Cluster), so that a
//! stream watching topics on several partitions can resume from ONE `Last-Event-ID`.
//!
//! Each partition's channel delivers its events in id order, but two partitions are two
//! servers: an event of partition A may arrive before an older one of partition B. So a node
//! holds every event back until it knows no partition it follows can still issue an older
//! one. It knows that of partition B when B's *watermark* is at least as new: the last id B
//! sent (B's channel delivers in id order), or a tick, a
//! message B publishes on its channel after raising its clock past a given id (see
//! `TICK_LUA`). A partition that is idle while another holds events back is *lagging*; the
//! node asks it for a tick, and the merge goes on once the tick arrives: the added delay is
//! one round trip to that partition, only when partitions are idle.
//!
//! This is plain data, so the interleavings are tested without Redis.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use crate::event::Event;
use crate::sse::EventId;

/// One followed partition: what it sent that waits, and what it can no longer undercut.
#[derive(Debug, Default)]
struct Lane {
    queue: VecDeque<Arc<Event>>,
    /// Every event this partition issues from now on has a greater id.
    mark: EventId,
    /// Ids put in the queue out of band (read from history for a topic just subscribed to),
    /// which its channel may repeat: dropped when they come again.
    inserted: BTreeSet<EventId>,
}

/// See the module docs.
#[derive(Debug, Default)]
pub(super) struct Merge {
    lanes: BTreeMap<usize, Lane>,
    /// The newest id released.
    released: EventId,
}

impl Merge {
    /// A merge that has released everything up to `released`.
    pub(super) fn new(released: EventId) -> Self {
        Self {
            lanes: BTreeMap::new(),
            released,
        }
    }

    /// The newest id released.
    pub(super) fn released(&self) -> EventId {
        self.released
    }

    /// Whether partition `p` is followed.
    pub(super) fn follows(&self, p: usize) -> bool {
        self.lanes.contains_key(&p)
    }

    /// Partitions followed.
    pub(super) fn partitions(&self) -> Vec<usize> {
        self.lanes.keys().copied().collect()
    }

    /// Partition `p`'s watermark, if followed.
    pub(super) fn mark(&self, p: usize) -> Option<EventId> {
        self.lanes.get(&p).map(|l| l.mark)
    }

    /// Starts following partition `p`, whose future ids are all above `mark`. (A partition
    /// already followed keeps its queue; its mark only rises.)
    pub(super) fn follow(&mut self, p: usize, mark: EventId) {
        let lane = self.lanes.entry(p).or_default();
        lane.mark = lane.mark.max(mark);
    }

    /// Drops everything held back and lowers every mark to what was released: following each
    /// partition again then reads what was dropped from history (a bound on memory).
    pub(super) fn reset(&mut self) {
        for lane in self.lanes.values_mut() {
            lane.queue.clear();
            lane.inserted.clear();
            lane.mark = self.released;
        }
    }

    /// An event of partition `p`. One at or below the partition's mark was seen already (a
    /// catch-up read overlaps the channel) and is dropped: returns whether it was kept.
    pub(super) fn event(&mut self, p: usize, event: Arc<Event>) -> bool {
        let Some(lane) = self.lanes.get_mut(&p) else {
            return false;
        };
        if event.id <= lane.mark || event.id <= self.released || lane.inserted.contains(&event.id) {
            return false;
        }
        lane.mark = event.id;
        // Behind an event inserted from history, keep the queue in id order.
        match lane.queue.back() {
            Some(back) if back.id > event.id => {
                let at = lane.queue.partition_point(|e| e.id < event.id);
                lane.queue.insert(at, event);
            }
            _ => lane.queue.push_back(event),
        }
        true
    }

    /// An event of partition `p` read from history, for a topic whose channel the node just
    /// subscribed to: it may be older than events already queued (other topics of the
    /// partition), so it goes in id order, and the channel repeating it later is ignored. The
    /// partition's mark does not move. Returns whether it was kept.
    pub(super) fn insert(&mut self, p: usize, event: Arc<Event>) -> bool {
        let Some(lane) = self.lanes.get_mut(&p) else {
            return false;
        };
        if event.id <= self.released {
            return false;
        }
        let at = match lane.queue.binary_search_by_key(&event.id, |e| e.id) {
            Ok(_) => return false,
            Err(at) => at,
        };
        lane.inserted.insert(event.id);
        lane.queue.insert(at, event);
        true
    }

    /// Partition `p` says every id it issues from now on is above `mark`.
    pub(super) fn tick(&mut self, p: usize, mark: EventId) {
        if let Some(lane) = self.lanes.get_mut(&p) {
            lane.mark = lane.mark.max(mark);
        }
    }

    /// The oldest event held back, and its partition.
    fn oldest(&self) -> Option<(usize, EventId)> {
        self.lanes
            .iter()
            .filter_map(|(&p, lane)| lane.queue.front().map(|e| (p, e.id)))
            .min_by_key(|&(_, id)| id)
    }

    /// Takes, in id order, every event no followed partition can still undercut.
    pub(super) fn ready(&mut self) -> Vec<Arc<Event>> {
        let mut out = Vec::new();
        while let Some((p, id)) = self.oldest() {
            // A lane whose queue ends in what it sent last has its mark there, at or above
            // every queued id; only events inserted from history can sit above a mark.
            let safe = self.lanes.values().all(|lane| lane.mark >= id);
            if !safe {
                break;
            }
            if let Some(event) = self.lanes.get_mut(&p).and_then(|l| l.queue.pop_front()) {
                self.released = self.released.max(id);
                out.push(event);
            }
        }
        let released = self.released;
        for lane in self.lanes.values_mut() {
            // A repeat comes after what it repeats was released, and only until the
            // partition's mark passes it.
            while lane
                .inserted
                .first()
                .is_some_and(|&id| id <= released && id <= lane.mark)
            {
                lane.inserted.pop_first();
            }
        }
        out
    }

    /// Partitions that hold the oldest waiting event back (idle ones, or one whose queue has
    /// history read past its mark), with that event's id: each must tick past it.
    pub(super) fn lagging(&self) -> Vec<(usize, EventId)> {
        let Some((_, id)) = self.oldest() else {
            return Vec::new();
        };
        self.lanes
            .iter()
            .filter(|(_, lane)| lane.mark < id)
            .map(|(&p, _)| (p, id))
            .collect()
    }

    /// Events held back.
    pub(super) fn held(&self) -> usize {
        self.lanes.values().map(|l| l.queue.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Draft;
    use crate::sse::EventName;
    use crate::topic::TopicName;

    fn event(ms: u64, seq: u64) -> Arc<Event> {
        let draft = Draft::new(
            TopicName::any("t").unwrap(),
            EventName::message(),
            "m".into(),
        );
        Arc::new(Event::new(EventId::new(ms, seq), draft, 0.0))
    }

    fn ids(events: &[Arc<Event>]) -> Vec<(u64, u64)> {
        events.iter().map(|e| (e.id.ms, e.id.seq)).collect()
    }

    /// Two partitions (P = 2: partition 0 issues even seqs, 1 odd). Partition 1's newer event
    /// arrives first; it waits until partition 0's older one has come.
    #[test]
    fn a_newer_event_waits_for_an_older_one_on_another_partition() {
        let mut merge = Merge::new(EventId::default());
        merge.follow(0, EventId::new(10, 0));
        merge.follow(1, EventId::new(10, 1));
        assert!(merge.event(1, event(12, 3)));
        assert!(merge.ready().is_empty());
        assert_eq!(merge.lagging(), vec![(0, EventId::new(12, 3))]);
        assert!(merge.event(0, event(11, 2)));
        // 0's queue now holds 11-2 < 12-3: release 11-2, then 0 is idle again at mark 11-2.
        assert_eq!(ids(&merge.ready()), vec![(11, 2)]);
        assert_eq!(merge.lagging(), vec![(0, EventId::new(12, 3))]);
        merge.tick(0, EventId::new(13, 2));
        assert_eq!(ids(&merge.ready()), vec![(12, 3)]);
        assert_eq!(merge.released(), EventId::new(12, 3));
        assert!(merge.lagging().is_empty());
    }

    /// Events from both partitions interleave by id, whatever order they arrive in.
    #[test]
    fn arrivals_in_any_order_leave_in_id_order() {
        let mut merge = Merge::new(EventId::default());
        merge.follow(0, EventId::default());
        merge.follow(1, EventId::default());
        merge.event(0, event(5, 2));
        merge.event(0, event(7, 4));
        merge.event(1, event(6, 1));
        merge.event(1, event(9, 3));
        let first = merge.ready();
        // 5-2 and 6-1 and 7-4 are safe (9-3 is queued on 1); 9-3 waits for 0.
        assert_eq!(ids(&first), vec![(5, 2), (6, 1), (7, 4)]);
        assert_eq!(merge.held(), 1);
        merge.event(0, event(9, 4));
        assert_eq!(ids(&merge.ready()), vec![(9, 3)]);
        merge.tick(1, EventId::new(9, 5));
        assert_eq!(ids(&merge.ready()), vec![(9, 4)]);
    }

    /// A catch-up read and the channel overlap: what is at or below the mark is dropped.
    #[test]
    fn overlapping_catch_up_and_channel_deliver_once() {
        let mut merge = Merge::new(EventId::default());
        merge.follow(0, EventId::default());
        assert!(merge.event(0, event(1, 0)));
        assert!(merge.event(0, event(2, 0)));
        assert!(!merge.event(0, event(1, 0)));
        assert!(!merge.event(0, event(2, 0)));
        assert_eq!(ids(&merge.ready()), vec![(1, 0), (2, 0)]);
        assert!(!merge.event(0, event(2, 0)));
        assert!(merge.event(0, event(3, 0)));
        assert_eq!(ids(&merge.ready()), vec![(3, 0)]);
    }

    /// A partition followed later starts at a mark: it holds nothing back that it cannot
    /// undercut, and events of an unfollowed partition are ignored.
    #[test]
    fn a_partition_joins_at_its_mark() {
        let mut merge = Merge::new(EventId::new(4, 0));
        merge.follow(0, EventId::new(4, 0));
        assert!(!merge.event(1, event(5, 1)));
        merge.event(0, event(6, 0));
        merge.follow(1, EventId::new(5, 1));
        // 1 may still issue 5-3 .. 6-x below 6-0? Its mark is 5-1 < 6-0: 6-0 waits.
        assert!(merge.ready().is_empty());
        assert_eq!(merge.lagging(), vec![(1, EventId::new(6, 0))]);
        merge.tick(1, EventId::new(7, 1));
        assert_eq!(ids(&merge.ready()), vec![(6, 0)]);
        merge.event(1, event(8, 1));
        merge.event(0, event(9, 0));
        assert_eq!(merge.held(), 2);
        merge.reset();
        assert_eq!(merge.held(), 0);
        assert_eq!(merge.mark(0), Some(EventId::new(6, 0)));
        assert!(merge.event(1, event(8, 1)));
    }

    /// A topic subscribed to while its partition is followed for other topics: its events
    /// read from history go in id order among those queued, the channel repeating them is
    /// ignored, and what comes after on the channel is kept.
    #[test]
    fn a_topic_added_to_a_followed_partition_merges_its_history_in() {
        let mut merge = Merge::new(EventId::new(1, 0));
        merge.follow(0, EventId::new(1, 0));
        merge.follow(1, EventId::new(1, 1));
        assert!(merge.event(0, event(5, 0)));
        // Partition 1 is idle: 5-0 waits. The new topic's history on partition 0: 3-0, 4-0.
        assert!(merge.insert(0, event(4, 0)));
        assert!(merge.insert(0, event(3, 0)));
        assert!(!merge.insert(0, event(5, 0)));
        assert!(!merge.insert(0, event(1, 0)));
        // Its channel repeats 4-0 (below the mark anyway) and then 6-0 (new).
        assert!(!merge.event(0, event(4, 0)));
        merge.tick(1, EventId::new(9, 1));
        assert_eq!(ids(&merge.ready()), vec![(3, 0), (4, 0), (5, 0)]);
        assert!(merge.event(0, event(6, 0)));
        assert_eq!(ids(&merge.ready()), vec![(6, 0)]);
    }

    /// With one partition every event leaves at once: no delay for a single Redis.
    #[test]
    fn one_partition_never_waits() {
        let mut merge = Merge::new(EventId::default());
        merge.follow(0, EventId::default());
        for n in 1..100 {
            merge.event(0, event(n, n));
            assert_eq!(merge.ready().len(), 1);
            assert!(merge.lagging().is_empty());
        }
    }
}
