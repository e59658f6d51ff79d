//! The journal in `redb` (the `store` feature): see the parent module.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::{json, Value};

use super::super::BrokerError;
use super::Fsync;
use crate::event::{Draft, Event};
use crate::sse::fields::MAX_LINE_TEXT;
use crate::sse::{EventId, EventName, LineText};
use crate::topic::TopicName;

/// Events by id (16 bytes: the millisecond and the counter, big-endian, so keys sort by id).
const EVENTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("events");
/// How often `--fsync interval` syncs.
const SYNC_EVERY: Duration = Duration::from_millis(100);

/// The journal of one node (see the module docs of `broker::durable`).
pub struct Journal {
    path: std::path::PathBuf,
    db: Database,
    fsync: Fsync,
    dirty: AtomicBool,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("fsync", &self.fsync)
            .finish()
    }
}

fn key(id: EventId) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&id.ms.to_be_bytes());
    key[8..].copy_from_slice(&id.seq.to_be_bytes());
    key
}

fn fail(err: impl std::fmt::Display) -> BrokerError {
    BrokerError::Unavailable(format!("journal: {err}"))
}

impl Journal {
    /// Opens (or creates) the journal in `dir` and reads back the events it holds, oldest
    /// first.
    ///
    /// # Errors
    /// The folder or file cannot be used.
    pub fn open(dir: &Path, fsync: Fsync) -> Result<(Arc<Self>, Vec<Event>), BrokerError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| BrokerError::Setup(format!("--data-dir {}: {e}", dir.display())))?;
        let path = dir.join("history.redb");
        let db = Database::create(&path)
            .map_err(|e| BrokerError::Setup(format!("--data-dir {}: {e}", dir.display())))?;
        let journal = Arc::new(Self {
            path,
            db,
            fsync,
            dirty: AtomicBool::new(false),
        });
        let events = journal.read_all()?;
        Ok((journal, events))
    }

    fn read_all(&self) -> Result<Vec<Event>, BrokerError> {
        let txn = self.db.begin_read().map_err(fail)?;
        let table = match txn.open_table(EVENTS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(err) => return Err(fail(err)),
        };
        let mut events = Vec::new();
        for entry in table.iter().map_err(fail)? {
            let (_, value) = entry.map_err(fail)?;
            match decode(value.value()) {
                Some(event) => events.push(event),
                None => tracing::warn!("skipping an unreadable event in the journal"),
            }
        }
        Ok(events)
    }

    fn write(
        &self,
        work: impl FnOnce(&mut redb::Table<&[u8], &[u8]>) -> Result<(), BrokerError>,
        durable: bool,
    ) -> Result<(), BrokerError> {
        let mut txn = self.db.begin_write().map_err(fail)?;
        txn.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })
        .map_err(fail)?;
        {
            let mut table = txn.open_table(EVENTS).map_err(fail)?;
            work(&mut table)?;
        }
        txn.commit().map_err(fail)
    }

    /// Stores an event (on disk before returning with `--fsync always`).
    ///
    /// # Errors
    /// The write failed: the publish is refused.
    pub fn append(&self, event: &Event) -> Result<(), BrokerError> {
        let value = encode(event);
        let durable = self.fsync == Fsync::Always;
        self.write(
            |table| {
                table
                    .insert(&key(event.id)[..], value.as_bytes())
                    .map(|_| ())
                    .map_err(fail)
            },
            durable,
        )?;
        if !durable {
            self.dirty.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Deletes events that left history.
    pub fn forget(&self, ids: &[EventId]) {
        if ids.is_empty() {
            return;
        }
        let removed = self.write(
            |table| {
                for id in ids {
                    table.remove(&key(*id)[..]).map_err(fail)?;
                }
                Ok(())
            },
            false,
        );
        match removed {
            Ok(()) => self.dirty.store(true, Ordering::Release),
            Err(err) => tracing::warn!(%err, "journal: events not deleted"),
        }
    }

    /// Makes every commit so far durable (the `interval` policy's sync, and on shutdown).
    pub fn sync(&self) {
        if self.dirty.swap(false, Ordering::AcqRel) {
            if let Err(err) = self.write(|_| Ok(()), true) {
                self.dirty.store(true, Ordering::Release);
                tracing::warn!(%err, "journal: sync failed");
            }
        }
    }

    /// Syncs every 100 ms, forever (`--fsync interval`).
    pub async fn sync_forever(self: Arc<Self>) {
        let mut tick = tokio::time::interval(SYNC_EVERY);
        loop {
            tick.tick().await;
            let journal = Arc::clone(&self);
            let _ = tokio::task::spawn_blocking(move || journal.sync()).await;
        }
    }

    /// The file's size in bytes.
    pub fn size(&self) -> Option<u64> {
        std::fs::metadata(&self.path).ok().map(|m| m.len())
    }
}

fn encode(event: &Event) -> String {
    json!({
        "id": [event.id.ms, event.id.seq],
        "topic": event.topic.as_str(),
        "alternates": event.alternates.iter().map(TopicName::as_str).collect::<Vec<_>>(),
        "event": event.name.as_str(),
        "message": event.message,
        "private": event.private,
        "custom_id": event.custom_id.as_ref().map(LineText::as_str),
        "retry": event.retry,
        "timestamp": event.timestamp,
    })
    .to_string()
}

fn decode(bytes: &[u8]) -> Option<Event> {
    let value: Value = serde_json::from_slice(bytes).ok()?;
    let id = EventId::new(value["id"][0].as_u64()?, value["id"][1].as_u64()?);
    let draft = Draft {
        topic: TopicName::any(value["topic"].as_str()?).ok()?,
        name: EventName::any(value["event"].as_str()?).ok()?,
        message: value["message"].as_str()?.to_owned(),
        private: value["private"].as_bool().unwrap_or(false),
        alternates: value["alternates"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|t| t.as_str().and_then(|t| TopicName::any(t).ok()))
                    .collect()
            })
            .unwrap_or_default(),
        custom_id: value["custom_id"]
            .as_str()
            .and_then(|c| LineText::new(c, MAX_LINE_TEXT).ok()),
        retry: value["retry"].as_u64(),
    };
    Some(Event::new(id, draft, value["timestamp"].as_f64()?))
}
