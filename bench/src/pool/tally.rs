//! The pool's counts of one measurement: per subscriber a bitmap of the step's sequence
//! numbers (losses and duplicates), one latency histogram for all, and the warm-up rounds.

use serde::Serialize;

use crate::stats::{Histogram, Latency};

/// What the pool counts (see the module docs).
#[derive(Default)]
pub(super) struct State {
    pub(super) subs: Vec<Sub>,
    pub(super) step: Step,
    pub(super) hist: Histogram,
    pub(super) unique: u64,
    pub(super) duplicates: u64,
    pub(super) ignored: u64,
    pub(super) warm_round: u32,
    pub(super) warm: usize,
    pub(super) open: usize,
    pub(super) failed: usize,
    pub(super) closed: usize,
    pub(super) errors: Vec<String>,
}

#[derive(Default, Clone)]
pub(super) struct Sub {
    pub(super) open: bool,
    pub(super) warm_round: u32,
    pub(super) step: u32,
    pub(super) got: u64,
    pub(super) bits: Vec<u64>,
}

/// A measured range of sequence numbers, `lo..hi`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Step {
    pub(super) id: u32,
    pub(super) lo: u64,
    pub(super) hi: u64,
}

impl Default for Step {
    fn default() -> Self {
        Self {
            id: 0,
            lo: u64::MAX,
            hi: u64::MAX,
        }
    }
}

/// What a step delivered.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Delivery {
    /// Subscribers counted (all of the pool, open or not).
    pub subscribers: usize,
    /// Messages of the step each should have received.
    pub messages: u64,
    /// Distinct (subscriber, message) deliveries.
    pub delivered: u64,
    /// Deliveries missing.
    pub lost: u64,
    /// Repeated deliveries.
    pub duplicates: u64,
    /// Subscribers missing at least one message.
    pub subscribers_short: usize,
    /// Latency from publish to receipt over the delivered events.
    pub latency: Latency,
}

impl State {
    /// Starts a warm-up round: from now on, any marked message a subscriber gets makes it warm.
    pub(super) fn begin_warmup(&mut self) {
        self.warm_round += 1;
        self.warm = 0;
        self.step = Step {
            id: self.step.id + 1,
            ..Step::default()
        };
    }

    /// Starts measuring sequence numbers `lo..hi` (`hi` may be `u64::MAX`).
    pub(super) fn begin_step(&mut self, lo: u64, hi: u64) {
        let id = self.step.id + 1;
        self.step = Step { id, lo, hi };
        self.hist.clear();
        self.unique = 0;
        self.duplicates = 0;
    }

    /// Ends the step, counting `messages` expected per subscriber.
    pub(super) fn end_step(&mut self, messages: u64) -> Delivery {
        let id = self.step.id;
        let mut lost = 0;
        let mut short = 0;
        for sub in &self.subs {
            let got = if sub.step == id { sub.got } else { 0 };
            if got < messages {
                lost += messages - got;
                short += 1;
            }
        }
        let delivery = Delivery {
            subscribers: self.subs.len(),
            messages,
            delivered: self.unique,
            lost,
            duplicates: self.duplicates,
            subscribers_short: short,
            latency: self.hist.summary(),
        };
        self.step = Step {
            id: id + 1,
            ..Step::default()
        };
        delivery
    }

    pub(super) fn on_message(&mut self, index: usize, seq: u64, latency_us: u64) {
        let round = self.warm_round;
        let sub = &mut self.subs[index];
        if sub.warm_round != round {
            sub.warm_round = round;
            self.warm += 1;
        }
        let step = self.step;
        if seq < step.lo || seq >= step.hi {
            self.ignored += 1;
            return;
        }
        if sub.step != step.id {
            sub.step = step.id;
            sub.got = 0;
            sub.bits.clear();
        }
        let offset = seq - step.lo;
        let word = (offset / 64) as usize;
        let bit = 1u64 << (offset % 64);
        if word >= sub.bits.len() {
            sub.bits.resize(word + 1, 0);
        }
        if sub.bits[word] & bit != 0 {
            self.duplicates += 1;
        } else {
            sub.bits[word] |= bit;
            sub.got += 1;
            self.unique += 1;
            self.hist.record(latency_us);
        }
    }
}
