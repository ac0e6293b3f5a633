//! The store boundary where personal data is sealed: every engine is opened behind it.

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use super::Vault;
use crate::store::{
    AppendOutcome, AppendRequest, Checkpoint, EventStore, LogBounds, Position, RecordedEvent,
    StoreError, Until,
};

/// An engine whose appends are sealed ([`Vault::seal`]) before they are hashed and whose stream
/// reads (the aggregates') are opened; the global log is passed through as stored, envelopes
/// and all, to the read models, `verify`, exports and as-of replays.
pub struct SealedStore {
    inner: Arc<dyn EventStore>,
    vault: Arc<Vault>,
}

impl SealedStore {
    pub fn new(inner: Arc<dyn EventStore>, master: Option<super::DataKey>) -> SealedStore {
        let vault = Arc::new(Vault::new(inner.sql(), master));
        SealedStore { inner, vault }
    }
}

#[async_trait]
impl EventStore for SealedStore {
    fn engine(&self) -> &'static str {
        self.inner.engine()
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        self.inner.migrate().await
    }

    async fn is_migrated(&self) -> Result<bool, StoreError> {
        self.inner.is_migrated().await
    }

    async fn append(&self, mut request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        let personal = request
            .events
            .iter()
            .any(|event| super::fields::of(&event.event_type).is_some());
        if personal {
            self.vault.seal(&mut request.events).await?;
        }
        self.inner.append(request).await
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut events = self
            .inner
            .read_stream(stream_id, from_version, limit)
            .await?;
        self.vault.open_events(&mut events).await?;
        Ok(events)
    }

    async fn read_all(
        &self,
        after: Checkpoint,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(after, limit).await
    }

    async fn read_committed(
        &self,
        after: Checkpoint,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_committed(after, limit).await
    }

    async fn read_committed_until(
        &self,
        after: Checkpoint,
        until: Until,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_committed_until(after, until, limit).await
    }

    async fn checkpoint_before(&self, after_position: Position) -> Result<Checkpoint, StoreError> {
        self.inner.checkpoint_before(after_position).await
    }

    async fn find_command(&self, command_id: Uuid) -> Result<Option<AppendOutcome>, StoreError> {
        self.inner.find_command(command_id).await
    }

    async fn head_position(&self) -> Result<Position, StoreError> {
        self.inner.head_position().await
    }

    async fn log_bounds(&self) -> Result<Option<LogBounds>, StoreError> {
        self.inner.log_bounds().await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    fn sql(&self) -> crate::sql::SqlDb {
        self.inner.sql()
    }

    fn appended(&self) -> &tokio::sync::Notify {
        self.inner.appended()
    }

    fn vault(&self) -> Option<Arc<Vault>> {
        Some(self.vault.clone())
    }
}
