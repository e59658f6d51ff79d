//! redb (ssehub's `--data-dir` store) against fjall, measured the way ssehub's journal uses a
//! store (`src/broker/durable.rs`): one write transaction per published event (a 16-byte
//! big-endian id key, a ~300-byte JSON value), events leaving history deleted in batches
//! (here: every 1,000 appends, everything older than the newest 10,000), and a resume read of
//! the last 1,000 events by key range.
//!
//! Per store and per durability:
//! - `always`: every append is on disk before it returns (redb `Durability::Immediate`; fjall
//!   `persist(SyncAll)` after the insert), like `--fsync always`;
//! - `interval`: appends are not synced (redb `Durability::None`; fjall buffered), and a sync
//!   is made when 100 ms have passed since the last one, like `--fsync interval`.
//!
//! Reported: appends/s, p50/p99 of one append, bytes on disk after the run, after reopening,
//! and after an explicit compaction (redb `compact()`, fjall `major_compact()`), the time to
//! reopen and read everything back, and the time of the resume read.
//!
//! ```sh
//! cargo run --release -p ssehub-bench --example store_compare            # 1,000 / 100,000 appends
//! cargo run --release -p ssehub-bench --example store_compare -- 100 5000 # always / interval
//! ```
//! The folder is `target/store-compare/` (on the disk whose fsync is measured).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fjall::{Config, PartitionCreateOptions, PersistMode};
use redb::{Database, Durability, ReadableDatabase, TableDefinition};

const EVENTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("events");
/// Newest events kept (older ones are deleted in batches).
const RETAIN: u64 = 10_000;
/// Appends between two batched deletions.
const TRIM_EVERY: u64 = 1_000;
/// Events a resume reads back.
const RESUME: u64 = 1_000;
/// The `interval` policy's sync period.
const SYNC_EVERY: Duration = Duration::from_millis(100);

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn key(n: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&(1_700_000_000_000 + n / 1000).to_be_bytes());
    key[8..].copy_from_slice(&n.to_be_bytes());
    key
}

fn value(n: u64) -> Vec<u8> {
    format!(
        r#"{{"id":"{n}","topic":"bench","event":"message","timestamp":1700000000.{n:06},"data":{{"message":"~seq:{n}:0~{}","topic":"bench"}}}}"#,
        "x".repeat(100)
    )
    .into_bytes()
}

/// One store under test.
trait Store {
    fn append(&mut self, n: u64, durable: bool) -> Result<()>;
    fn sync(&mut self) -> Result<()>;
    fn trim(&mut self, below: u64, from: u64) -> Result<()>;
    fn read_range(&self, from: u64) -> Result<u64>;
    fn compact(&mut self) -> Result<()>;
}

struct Redb(Database);

impl Store for Redb {
    fn append(&mut self, n: u64, durable: bool) -> Result<()> {
        let mut txn = self.0.begin_write()?;
        txn.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })?;
        {
            let mut table = txn.open_table(EVENTS)?;
            table.insert(&key(n)[..], &value(n)[..])?;
        }
        txn.commit()?;
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        let mut txn = self.0.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        txn.commit()?;
        Ok(())
    }

    fn trim(&mut self, below: u64, from: u64) -> Result<()> {
        let mut txn = self.0.begin_write()?;
        txn.set_durability(Durability::None)?;
        {
            let mut table = txn.open_table(EVENTS)?;
            for n in from..below {
                table.remove(&key(n)[..])?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn read_range(&self, from: u64) -> Result<u64> {
        let txn = self.0.begin_read()?;
        let table = txn.open_table(EVENTS)?;
        let mut count = 0;
        for entry in table.range(&key(from)[..]..)? {
            let (_, value) = entry?;
            count += u64::from(!value.value().is_empty());
        }
        Ok(count)
    }

    fn compact(&mut self) -> Result<()> {
        while self.0.compact()? {}
        Ok(())
    }
}

struct Fjall {
    keyspace: fjall::Keyspace,
    events: fjall::PartitionHandle,
}

impl Store for Fjall {
    fn append(&mut self, n: u64, durable: bool) -> Result<()> {
        self.events.insert(key(n), value(n))?;
        if durable {
            self.keyspace.persist(PersistMode::SyncAll)?;
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        self.keyspace.persist(PersistMode::SyncAll)?;
        Ok(())
    }

    fn trim(&mut self, below: u64, from: u64) -> Result<()> {
        let mut batch = self.keyspace.batch();
        for n in from..below {
            batch.remove(&self.events, key(n));
        }
        batch.commit()?;
        Ok(())
    }

    fn read_range(&self, from: u64) -> Result<u64> {
        let mut count = 0;
        for entry in self.events.range(key(from)..) {
            let (_, value) = entry?;
            count += u64::from(!value.is_empty());
        }
        Ok(count)
    }

    fn compact(&mut self) -> Result<()> {
        self.keyspace.persist(PersistMode::SyncAll)?;
        self.events.major_compact()?;
        Ok(())
    }
}

fn open(kind: &str, dir: &Path) -> Result<Box<dyn Store>> {
    std::fs::create_dir_all(dir)?;
    Ok(match kind {
        "redb" => Box::new(Redb(Database::create(dir.join("history.redb"))?)),
        _ => {
            let keyspace = Config::new(dir.join("fjall"))
                .manual_journal_persist(true)
                .open()?;
            let events = keyspace.open_partition("events", PartitionCreateOptions::default())?;
            Box::new(Fjall { keyspace, events })
        }
    })
}

fn disk_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at].as_secs_f64() * 1000.0
}

fn measure(kind: &str, policy: &str, appends: u64, root: &Path) -> Result<String> {
    let dir = root.join(format!("{kind}-{policy}"));
    let _ = std::fs::remove_dir_all(&dir);
    let durable = policy == "always";
    let mut store = open(kind, &dir)?;
    let mut times = Vec::with_capacity(appends as usize);
    let mut trimmed = 0;
    let mut last_sync = Instant::now();
    let started = Instant::now();
    for n in 0..appends {
        let t = Instant::now();
        store.append(n, durable)?;
        if !durable && last_sync.elapsed() >= SYNC_EVERY {
            store.sync()?;
            last_sync = Instant::now();
        }
        times.push(t.elapsed());
        if (n + 1) % TRIM_EVERY == 0 && n + 1 > RETAIN {
            let below = n + 1 - RETAIN;
            store.trim(below, trimmed)?;
            trimmed = below;
        }
    }
    store.sync()?;
    let seconds = started.elapsed().as_secs_f64();
    let bytes_run = disk_bytes(&dir);
    let t = Instant::now();
    let resumed = store.read_range(appends.saturating_sub(RESUME))?;
    let resume_ms = t.elapsed().as_secs_f64() * 1000.0;
    drop(store);
    let t = Instant::now();
    let mut store = open(kind, &dir)?;
    let held = store.read_range(0)?;
    let reopen_ms = t.elapsed().as_secs_f64() * 1000.0;
    let bytes_reopened = disk_bytes(&dir);
    let t = Instant::now();
    store.compact()?;
    let compact_ms = t.elapsed().as_secs_f64() * 1000.0;
    drop(store);
    let bytes_compacted = disk_bytes(&dir);
    times.sort_unstable();
    Ok(format!(
        "| {kind} | {policy} | {appends} | {:.0} | {:.3} | {:.3} | {:.1} | {:.1} | {:.1} | {held} | {resumed} in {resume_ms:.2} ms | {reopen_ms:.1} ms | {compact_ms:.0} ms |",
        appends as f64 / seconds,
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        bytes_run as f64 / 1_048_576.0,
        bytes_reopened as f64 / 1_048_576.0,
        bytes_compacted as f64 / 1_048_576.0,
    ))
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let always: u64 = args.next().map_or(Ok(1_000), |a| a.parse())?;
    let interval: u64 = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let root = PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()))
        .join("store-compare");
    println!("| store | fsync | appends | appends/s | p50 ms | p99 ms | MiB after run | MiB reopened | MiB compacted | events held | resume read | reopen + read all | compaction |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|");
    for (policy, appends) in [("always", always), ("interval", interval)] {
        for kind in ["redb", "fjall"] {
            println!("{}", measure(kind, policy, appends, &root)?);
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
