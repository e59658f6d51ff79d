//! Which subscribed URI templates and URL patterns can match a topic, found by hash look-ups
//! on the literal text each requires (`topic::literal`) instead of by running every one.
//!
//! A hub with 10,000 distinct patterns used to run 10,000 of them for every topic it had not
//! seen before, under the fan-out lock (18 to 25 ms a publish, BENCHMARKS.md). Here each
//! pattern is filed under its (prefix, suffix) pair, and a topic looks up only the pairs that
//! its own text could hold: one look-up per distinct (prefix length, suffix length) in use,
//! which for patterns written from a few shapes is a handful. The candidates are then tested in
//! full, so the index only ever narrows, never decides.

use std::collections::HashMap;

use crate::topic::literal::{url_probe, Literals};
use crate::topic::Selector;

/// Patterns filed by their literal prefix and suffix over one kind of probe text.
#[derive(Debug, Default)]
struct ByLiterals {
    /// Key: prefix, NUL, suffix (neither can hold a control character).
    buckets: HashMap<String, Vec<Selector>>,
    /// How many patterns have each (prefix length, suffix length).
    shapes: HashMap<(usize, usize), usize>,
    /// Patterns beyond the first in each bucket: those the literals cannot tell apart.
    crowd: usize,
}

fn key(buf: &mut String, prefix: &str, suffix: &str) {
    buf.clear();
    buf.push_str(prefix);
    buf.push('\0');
    buf.push_str(suffix);
}

impl ByLiterals {
    fn insert(&mut self, literals: &Literals<'_>, selector: Selector) {
        let mut k = String::new();
        key(&mut k, literals.prefix, literals.suffix);
        let bucket = self.buckets.entry(k).or_default();
        self.crowd += usize::from(!bucket.is_empty());
        bucket.push(selector);
        *self
            .shapes
            .entry((literals.prefix.len(), literals.suffix.len()))
            .or_default() += 1;
    }

    fn remove(&mut self, literals: &Literals<'_>, selector: &Selector) {
        let mut k = String::new();
        key(&mut k, literals.prefix, literals.suffix);
        let Some(bucket) = self.buckets.get_mut(&k) else {
            return;
        };
        let Some(at) = bucket.iter().position(|s| s == selector) else {
            return;
        };
        bucket.swap_remove(at);
        self.crowd -= usize::from(!bucket.is_empty());
        if bucket.is_empty() {
            self.buckets.remove(&k);
        }
        let shape = (literals.prefix.len(), literals.suffix.len());
        if let Some(count) = self.shapes.get_mut(&shape) {
            *count -= 1;
            if *count == 0 {
                self.shapes.remove(&shape);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Whether adding a pattern with `literals` would add a shape, and whether it would share
    /// a bucket.
    fn admission(&self, literals: &Literals<'_>) -> (bool, bool) {
        let mut k = String::new();
        key(&mut k, literals.prefix, literals.suffix);
        let shape = (literals.prefix.len(), literals.suffix.len());
        (
            !self.shapes.contains_key(&shape),
            self.buckets.contains_key(&k),
        )
    }

    /// Adds the patterns whose literals `probe` holds.
    fn candidates<'a>(&'a self, probe: &str, out: &mut Vec<&'a Selector>) {
        let mut k = String::new();
        for &(p, s) in self.shapes.keys() {
            if p + s > probe.len() {
                continue;
            }
            let (Some(prefix), Some(suffix)) = (probe.get(..p), probe.get(probe.len() - s..))
            else {
                continue;
            };
            key(&mut k, prefix, suffix);
            if let Some(bucket) = self.buckets.get(&k) {
                out.extend(bucket.iter());
            }
        }
    }
}

/// What adding one pattern would cost every new topic: look-ups, and whether it is one more
/// pattern the index cannot tell apart from another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Admission {
    pub(super) new_probes: usize,
    pub(super) new_broad: bool,
}

/// See the module docs.
#[derive(Debug, Default)]
pub(super) struct MatcherIndex {
    /// URI templates, over the raw topic.
    templates: ByLiterals,
    /// URL patterns by the base relative topics resolve against, then by literal host (`None`:
    /// a host pattern), over the URL's path.
    urls: HashMap<Option<url::Url>, HashMap<Option<String>, ByLiterals>>,
    /// Any other selector (none is filed as a matcher today): always a candidate.
    others: Vec<Selector>,
}

impl MatcherIndex {
    /// Look-ups a topic makes: one per literal shape in use, and one URL parse per base.
    pub(super) fn probes(&self) -> usize {
        let urls: usize = self
            .urls
            .values()
            .map(|hosts| 1 + hosts.values().map(|by| by.shapes.len()).sum::<usize>())
            .sum();
        self.templates.shapes.len() + urls
    }

    /// Patterns the index cannot tell apart: all but one in each bucket, and the unfiled ones.
    pub(super) fn broad(&self) -> usize {
        let urls: usize = self
            .urls
            .values()
            .flat_map(HashMap::values)
            .map(|by| by.crowd)
            .sum();
        self.others.len() + self.templates.crowd + urls
    }

    /// What adding `selector` would cost (see [`Admission`]).
    pub(super) fn admission(&self, selector: &Selector) -> Admission {
        let Some(literals) = selector.literals() else {
            return Admission {
                new_probes: 0,
                new_broad: true,
            };
        };
        let (new_shape, shared) = match selector {
            Selector::Template(..) => self.templates.admission(&literals),
            _ => match self.urls.get(&selector.base().cloned()) {
                None => {
                    return Admission {
                        new_probes: 2,
                        new_broad: false,
                    }
                }
                Some(hosts) => match hosts.get(&literals.host.map(str::to_owned)) {
                    None => (true, false),
                    Some(by) => by.admission(&literals),
                },
            },
        };
        Admission {
            new_probes: usize::from(new_shape),
            new_broad: shared,
        }
    }

    pub(super) fn insert(&mut self, selector: &Selector) {
        let Some(literals) = selector.literals() else {
            return self.others.push(selector.clone());
        };
        let stored = selector.clone();
        match selector {
            Selector::Template(..) => self.templates.insert(&literals, stored),
            _ => self
                .urls
                .entry(selector.base().cloned())
                .or_default()
                .entry(literals.host.map(str::to_owned))
                .or_default()
                .insert(&literals, stored),
        }
    }

    pub(super) fn remove(&mut self, selector: &Selector) {
        let Some(literals) = selector.literals() else {
            return self.others.retain(|s| s != selector);
        };
        if let Selector::Template(..) = selector {
            return self.templates.remove(&literals, selector);
        }
        let base = selector.base().cloned();
        let Some(hosts) = self.urls.get_mut(&base) else {
            return;
        };
        let host = literals.host.map(str::to_owned);
        if let Some(by) = hosts.get_mut(&host) {
            by.remove(&literals, selector);
            if by.is_empty() {
                hosts.remove(&host);
            }
        }
        if hosts.is_empty() {
            self.urls.remove(&base);
        }
    }

    /// The patterns that match `topic`: candidates from the index, each then tested in full.
    pub(super) fn matching(&self, topic: &str) -> Vec<Selector> {
        let mut candidates: Vec<&Selector> = self.others.iter().collect();
        self.templates.candidates(topic, &mut candidates);
        for (base, hosts) in &self.urls {
            let Some((host, path)) = url_probe(topic, base.as_ref()) else {
                continue;
            };
            if let Some(by) = hosts.get(&host) {
                by.candidates(&path, &mut candidates);
            }
            if host.is_some() {
                if let Some(by) = hosts.get(&None) {
                    by.candidates(&path, &mut candidates);
                }
            }
        }
        candidates
            .into_iter()
            .filter(|s| s.matches(topic))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::selector::url_pattern_with_base;

    const BASE: &str = "https://hub.test/.well-known/mercure";

    fn selectors() -> Vec<Selector> {
        let mut all = vec![
            Selector::legacy("https://example.com/books/{id}").unwrap(),
            Selector::legacy("https://example.com/{+p}").unwrap(),
            Selector::legacy("{+anything}").unwrap(),
            Selector::legacy("https://example.com/books/1").unwrap(),
            url_pattern_with_base("https://example.com/books/:id", BASE).unwrap(),
            url_pattern_with_base("/books/:id?", BASE).unwrap(),
            url_pattern_with_base("https://*.example.com/*", BASE).unwrap(),
            url_pattern_with_base("https://example.com/*.json", BASE).unwrap(),
        ];
        for i in 0..50 {
            all.push(Selector::legacy(&format!("https://example.com/t/{{id}}/n{i}")).unwrap());
            all.push(
                url_pattern_with_base(&format!("https://example.com/t/:id/n{i}"), BASE).unwrap(),
            );
        }
        all
    }

    /// The index finds exactly what running every selector finds, for matching and
    /// non-matching topics, before and after removals.
    #[test]
    fn the_index_agrees_with_running_every_selector() {
        let all = selectors();
        let mut index = MatcherIndex::default();
        for s in &all {
            index.insert(s);
        }
        let topics = [
            "https://example.com/books/1",
            "https://example.com/books",
            "https://example.com/t/7/n3",
            "https://example.com/t/7/n33",
            "https://example.com/t/7/n3/x",
            "https://www.example.com/x",
            "https://example.com/a/b.json",
            "/books/2",
            "/books",
            "books/3",
            "urn:x:y",
            "plain",
        ];
        let check = |index: &MatcherIndex, live: &[Selector]| {
            for topic in topics {
                let mut found: Vec<String> = index
                    .matching(topic)
                    .iter()
                    .map(|s| s.source().to_owned())
                    .collect();
                let mut expected: Vec<String> = live
                    .iter()
                    .filter(|s| s.matches(topic))
                    .map(|s| s.source().to_owned())
                    .collect();
                found.sort();
                expected.sort();
                assert_eq!(found, expected, "{topic}");
            }
        };
        check(&index, &all);
        let (gone, kept): (Vec<_>, Vec<_>) = all
            .iter()
            .cloned()
            .enumerate()
            .partition(|(i, _)| i % 3 == 0);
        for (_, s) in &gone {
            index.remove(s);
        }
        let kept: Vec<Selector> = kept.into_iter().map(|(_, s)| s).collect();
        check(&index, &kept);
        for s in &kept {
            index.remove(s);
        }
        assert!(index.templates.is_empty() && index.urls.is_empty() && index.others.is_empty());
    }

    /// Patterns of one shape cost a look-up, not a run each.
    #[test]
    fn distinct_patterns_of_one_shape_are_not_all_run() {
        let mut index = MatcherIndex::default();
        for i in 0..10_000 {
            index.insert(&Selector::legacy(&format!("https://example.com/t/{{id}}/n{i}")).unwrap());
        }
        let mut candidates = Vec::new();
        index
            .templates
            .candidates("https://example.com/t/1-fresh/n77", &mut candidates);
        // `/n77` and `n77`... every suffix length in use that the topic ends with.
        assert!(candidates.len() <= 4, "{}", candidates.len());
        assert_eq!(index.matching("https://example.com/t/1-fresh/n77").len(), 1);
    }
}
