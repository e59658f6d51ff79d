//! A build without the `store` feature: no journal can be opened, so none ever exists, and
//! `--data-dir` is refused at start with a clear error.

use std::path::Path;
use std::sync::Arc;

use super::super::BrokerError;
use super::Fsync;
use crate::event::Event;
use crate::sse::EventId;

/// Never made: [`Journal::open`] always fails in this build.
#[derive(Debug)]
pub struct Journal {
    never: std::convert::Infallible,
}

impl Journal {
    /// Refuses: this build has no store.
    ///
    /// # Errors
    /// Always.
    pub fn open(_dir: &Path, _fsync: Fsync) -> Result<(Arc<Self>, Vec<Event>), BrokerError> {
        Err(BrokerError::Setup(
            "--data-dir needs ssehub built with the `store` feature".into(),
        ))
    }

    /// Unreachable: no journal exists.
    ///
    /// # Errors
    /// Never.
    pub fn append(&self, _event: &Event) -> Result<(), BrokerError> {
        match self.never {}
    }

    /// Unreachable: no journal exists.
    pub fn forget(&self, _ids: &[EventId]) {
        match self.never {}
    }

    /// Unreachable: no journal exists.
    pub fn sync(&self) {
        match self.never {}
    }

    /// Unreachable: no journal exists.
    pub async fn sync_forever(self: Arc<Self>) {
        match self.never {}
    }

    /// Unreachable: no journal exists.
    pub fn size(&self) -> Option<u64> {
        match self.never {}
    }
}
