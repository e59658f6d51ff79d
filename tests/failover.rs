//! No single point of failure: Redis primaries killed and frozen under load, with several
//! ssehub nodes publishing and streaming throughout; every acknowledged event reaches every
//! matching stream exactly once, in order.

#[path = "failover/cluster.rs"]
mod cluster;
#[path = "it/common/mod.rs"]
mod common;
#[path = "failover/load.rs"]
mod load;
#[path = "failover/sentinel.rs"]
mod sentinel;

/// An event id (`urn:ssehub:MS-SEQ` or `MS-SEQ`) in the order ids are issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventKey(u64, u64);

impl EventKey {
    /// Reads an id; anything unreadable sorts first.
    pub fn parse(id: &str) -> Self {
        let raw = id.rsplit(':').next().unwrap_or_default();
        let (ms, seq) = raw.split_once('-').unwrap_or((raw, "0"));
        Self(ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
    }
}
