//! A log-linear latency histogram (about 1.6 % relative error, fixed 20 KiB, O(1) record) and
//! its summary.

use serde::Serialize;

/// Values below this are recorded exactly.
const LINEAR: u64 = 128;
/// Sub-buckets per power of two above [`LINEAR`].
const SUB_BITS: u32 = 6;
const SUB: usize = 1 << SUB_BITS;
/// Powers of two covered above [`LINEAR`]: up to 2^48 µs (about 9 years).
const OCTAVES: usize = 48 - 7;
const BUCKETS: usize = LINEAR as usize + OCTAVES * SUB;

/// Counts of microsecond values.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
    sum: u128,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("total", &self.total)
            .field("max", &self.max)
            .finish()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
            sum: 0,
        }
    }

    /// Records one value.
    #[inline]
    pub fn record(&mut self, value: u64) {
        let index = index_of(value);
        self.counts[index] += 1;
        self.total += 1;
        self.max = self.max.max(value);
        self.sum += u128::from(value);
    }

    /// Empties it.
    pub fn clear(&mut self) {
        self.counts.iter_mut().for_each(|c| *c = 0);
        self.total = 0;
        self.max = 0;
        self.sum = 0;
    }

    /// The value at quantile `q` (0..=1), as the upper edge of its bucket (never above max).
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return upper_edge(index).min(self.max);
            }
        }
        self.max
    }

    /// p50, p90, p99, max and mean, in milliseconds.
    pub fn summary(&self) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            count: self.total,
            p50_ms: ms(self.quantile(0.50)),
            p90_ms: ms(self.quantile(0.90)),
            p99_ms: ms(self.quantile(0.99)),
            max_ms: ms(self.max),
            mean_ms: if self.total == 0 {
                0.0
            } else {
                (self.sum / u128::from(self.total)) as f64 / 1000.0
            },
        }
    }
}

#[inline]
fn index_of(value: u64) -> usize {
    if value < LINEAR {
        return value as usize;
    }
    let msb = 63 - value.leading_zeros(); // >= 7
    let octave = (msb - 7) as usize;
    if octave >= OCTAVES {
        return BUCKETS - 1;
    }
    let sub = ((value >> (msb - SUB_BITS)) as usize) & (SUB - 1);
    LINEAR as usize + octave * SUB + sub
}

fn upper_edge(index: usize) -> u64 {
    if index < LINEAR as usize {
        return index as u64;
    }
    let octave = (index - LINEAR as usize) / SUB;
    let sub = ((index - LINEAR as usize) % SUB) as u64;
    let msb = octave as u32 + 7;
    let width = 1u64 << (msb - SUB_BITS);
    (1u64 << msb) + (sub + 1) * width - 1
}

/// A latency distribution in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for value in (0..5_000_000u64).step_by(997).chain([u64::MAX / 2]) {
            let index = index_of(value);
            assert!(index >= last);
            last = index;
            if index == BUCKETS - 1 {
                continue; // beyond the range: clamped into the last bucket
            }
            let edge = upper_edge(index);
            assert!(edge >= value, "{value} -> {edge}");
            assert!(edge - value <= value / 60 + 1, "{value} -> {edge}");
        }
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::new();
        for v in 1..=1000u64 {
            h.record(v * 100);
        }
        let q = |x| h.quantile(x) as f64;
        assert!((q(0.5) - 50_000.0).abs() / 50_000.0 < 0.02);
        assert!((q(0.99) - 99_000.0).abs() / 99_000.0 < 0.02);
        assert_eq!(h.quantile(1.0), 100_000);
        assert_eq!(h.summary().count, 1000);
        h.clear();
        assert_eq!(h.quantile(0.5), 0);
    }
}
