//! History that survives a restart on one node: the memory broker with a journal in an
//! embedded database (`redb`, in `--data-dir`).
//!
//! Every event is written before its publish is answered; `--fsync always` makes that write
//! reach the disk first (a process killed with SIGKILL loses no answered publish), `interval`
//! commits without waiting and syncs every 100 ms (a crash may lose the last 100 ms). Events
//! leaving history (count, age, bytes, a forgotten topic) are deleted from the journal in
//! batches, so the file holds what history holds. At start the journal is read back into the
//! memory broker: ids continue from the last one, and a client resuming with an id from before
//! the restart gets exactly what it missed.
//!
//! redb over fjall: a single file, no background compaction threads, no dependencies, and
//! synchronous commits that fit a publish path holding one lock (measured: `cargo run --release -p ssehub-bench --example store_compare`).
//!
//! The journal needs the `store` feature (on by default); a build without it refuses
//! `--data-dir` at start (`absent.rs`).

#[cfg(not(feature = "store"))]
#[path = "absent.rs"]
mod journal;
#[cfg(feature = "store")]
mod journal;

pub use self::journal::Journal;

/// When a write is on disk.
/// (`config` makes it a command-line value: the broker does not know the CLI library.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// Before the publish is answered.
    Always,
    /// Within 100 ms.
    Interval,
}
