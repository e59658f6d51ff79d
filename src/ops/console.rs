//! The hub console's shared read of the topic table: one broker read per second for every
//! console stream, whichever transport serves them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::hub::{BrokerError, Hub, TopicTable};

/// How often a console stream gets a snapshot, and how old a shared table may be.
pub(crate) const EVERY: Duration = Duration::from_secs(1);

/// The hub's topic table, read from the broker at most once per [`EVERY`] and shared by every
/// console stream (each then applies its own caller's grants).
#[derive(Debug, Default)]
pub(crate) struct TableCache {
    /// A tokio mutex: held across the broker read, so concurrent streams wait for one read
    /// instead of each starting their own.
    cell: tokio::sync::Mutex<Option<(Instant, Arc<TopicTable>)>>,
}

impl TableCache {
    pub(crate) async fn get(&self, hub: &Hub) -> Result<Arc<TopicTable>, BrokerError> {
        let mut cell = self.cell.lock().await;
        if let Some((at, table)) = cell.as_ref() {
            if at.elapsed() < EVERY {
                return Ok(Arc::clone(table));
            }
        }
        let table = Arc::new(hub.topic_table().await?);
        *cell = Some((Instant::now(), Arc::clone(&table)));
        Ok(table)
    }
}
