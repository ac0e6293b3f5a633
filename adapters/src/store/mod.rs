//! The append-only event store: one trait, two engines.
//!
//! Every fact is one row of the `events` table, in a stream (`invoice-<uuid>`) at a version,
//! and in the global log at a position. The contract, which `tests/it/store_contract.rs` checks
//! against both engines:
//!
//! - **Optimistic concurrency**: an append names the stream version it expects; the unique
//!   `(stream_id, version)` constraint decides between racing writers, and the loser gets
//!   [`StoreError::Conflict`], mapped from SQLSTATE 23505 (or SQLite's extended code), never
//!   from message text.
//! - **Idempotency**: an append whose command id (or whose event ids) were seen before returns
//!   the original positions with `replayed = true` and writes nothing.
//! - **Tamper evidence**: each event's `hash = SHA-256(prev_hash || canonical bytes)`, chained per
//!   stream ([`hash`]); [`EventStore::verify`] recomputes every chain.
//! - **Gap-safe global reads**: [`EventStore::read_all`] never returns an event after a later
//!   one it already returned, even when PostgreSQL commits positions out of order (see
//!   [`postgres`]).

pub mod hash;
pub mod migrations;
mod pg_group;
pub mod postgres;
pub mod sqlite;
mod tagged;
mod verify;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

pub use hash::{EventHash, GENESIS_HASH};
pub use verify::{ChainBreak, ChainVerifier, VerifyReport};

/// A global log position: ascending, assigned at append.
pub type Position = i64;

/// Most events a single append may carry. A command that decides more than this is a bug;
/// the bound keeps one transaction short.
pub const MAX_EVENTS_PER_APPEND: usize = 1_000;

/// Most events one global read returns, whatever the caller asks for: readers stream in
/// batches, never the whole log at once.
pub const MAX_READ_BATCH: usize = 10_000;

/// Where a reader of the global log has got to. On PostgreSQL the log is ordered by
/// `(transaction_id, position)`; on SQLite `transaction_id` is always 0 because position order
/// is commit order there.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Checkpoint {
    pub transaction_id: i64,
    pub position: Position,
}

impl Checkpoint {
    /// Before the first event.
    pub const START: Checkpoint = Checkpoint {
        transaction_id: 0,
        position: 0,
    };

    /// The checkpoint just after `event`.
    pub fn after(event: &RecordedEvent) -> Checkpoint {
        Checkpoint {
            transaction_id: event.transaction_id,
            position: event.position,
        }
    }
}

/// What the writer believes about the stream it appends to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// Append whatever the stream's version is (no concurrency check).
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must be at exactly this version.
    Exact(u64),
}

impl ExpectedVersion {
    /// `NoStream` for version 0, `Exact(v)` otherwise: what a writer that loaded `version` expects.
    pub fn from_loaded(version: u64) -> ExpectedVersion {
        if version == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(version)
        }
    }

    fn admits(self, current: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => current == 0,
            ExpectedVersion::Exact(v) => current == v,
        }
    }
}

/// Who and what caused an event: kept with every event for the audit log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// The token id, webhook provider or process manager that acted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The command that made the event, when it is not the append's
    /// ([`AppendRequest::command_id`]): an append that carries several commands' events
    /// names each event's here, and the store records each command with its own events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
    /// `api`, `cli`, `webhook:moyasar`, `process:<name>`…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// One event to append.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: Value,
    pub metadata: EventMetadata,
}

/// An append of one or more events to one stream, atomically.
#[derive(Clone, Debug)]
pub struct AppendRequest {
    pub stream_id: String,
    pub stream_type: String,
    pub expected_version: ExpectedVersion,
    /// When set, a second append with this id returns the first one's outcome. Events whose
    /// metadata names no command of their own are this command's.
    pub command_id: Option<Uuid>,
    pub events: Vec<NewEvent>,
    /// A webhook delivery's inbox row, written in the same transaction as the events.
    pub inbox: Option<crate::inbox::InboxRecord>,
}

/// Where an append landed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendOutcome {
    pub stream_id: String,
    pub first_version: u64,
    pub last_version: u64,
    pub first_position: Position,
    pub last_position: Position,
    /// True when nothing was written because this command or these events were appended before;
    /// the versions and positions are the original ones.
    pub replayed: bool,
}

/// An event as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub position: Position,
    /// PostgreSQL's `xid8` of the appending transaction; 0 on SQLite.
    pub transaction_id: i64,
    pub event_id: Uuid,
    pub stream_id: String,
    pub stream_type: String,
    pub version: u64,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: Value,
    pub metadata: Value,
    pub command_id: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    pub prev_hash: EventHash,
    pub hash: EventHash,
}

/// Where the log begins and ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogBounds {
    pub first_position: Position,
    pub last_position: Position,
    /// The earliest and latest `recorded_at` of any event (not necessarily those of the first
    /// and last positions: concurrent appends record their times a moment apart).
    pub first_recorded_at: OffsetDateTime,
    pub last_recorded_at: OffsetDateTime,
}

/// The last moment of history a read wants: every event at or below a position, or recorded
/// at or before an instant ([`EventStore::read_committed_until`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until {
    Position(Position),
    RecordedAt(OffsetDateTime),
}

/// Every way the store can fail, typed so callers never parse messages.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "stream {stream_id} is not at the expected version {expected:?} (it is at {actual:?})"
    )]
    Conflict {
        stream_id: String,
        expected: ExpectedVersion,
        /// The version found, when the store knows it without another read.
        actual: Option<u64>,
    },
    #[error(
        "event id {event_id} was already appended with different content or to another stream"
    )]
    DuplicateEventId { event_id: Uuid },
    #[error("invalid append: {0}")]
    InvalidAppend(String),
    /// A value a statement cannot carry (text with a NUL character on PostgreSQL).
    #[error("value cannot be stored: {0}")]
    InvalidValue(String),
    /// Personal data about a person who was erased at their request is not recorded again
    /// ([`crate::personal`]).
    #[error(
        "{subject} was erased at the person's request: no personal data about them is recorded \
         again"
    )]
    SubjectErased { subject: String },
    #[error("unsupported database url {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("stored event at position {position} cannot be decoded: {reason}")]
    Corrupt { position: Position, reason: String },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// From the embedded store's writer connection ([`crate::sqlite_conn`]).
    #[error("database error: {0}")]
    Sqlite(#[from] crate::sqlite_conn::SqliteError),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Whether PostgreSQL broke a deadlock by failing this statement's transaction: the same
    /// work, tried again, usually goes through.
    pub fn is_deadlock(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(error)) => {
                error.code().as_deref() == Some("40P01")
            }
            _ => false,
        }
    }
}

/// The event store contract. Both engines implement it; the rest of the service holds an
/// `Arc<dyn EventStore>` and never knows which.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn engine(&self) -> &'static str;

    /// Applies the embedded migrations of this engine.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Whether every embedded migration has been applied to this database.
    async fn is_migrated(&self) -> Result<bool, StoreError>;

    /// Appends events to one stream atomically, or nothing at all.
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError>;

    /// The stream's events with `version >= from_version`, in version order, at most `limit`.
    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The next events of the global log strictly after `after`, in checkpoint order, at most
    /// `limit` (capped at [`MAX_READ_BATCH`]). Gap-safe: never skips an event that commits later.
    async fn read_all(
        &self,
        after: Checkpoint,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Committed events strictly after `after` in checkpoint order, at most `limit` (capped at
    /// [`MAX_READ_BATCH`]), without waiting for the watermark. Not gap-safe: a transaction in
    /// flight may still commit behind it. For looking at what is committed now (verification,
    /// export, as-of replay), never for tailing.
    async fn read_committed(
        &self,
        after: Checkpoint,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// [`EventStore::read_committed`] of only the events at or before `until`: what an as-of
    /// read folds after a snapshot. The filter runs in the database, so a read that resumes
    /// from a recent checkpoint does not decode the rest of the log.
    async fn read_committed_until(
        &self,
        after: Checkpoint,
        until: Until,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// A checkpoint from which reading in checkpoint order ([`EventStore::read_committed`])
    /// meets every event committed now with a position above `after_position`, found through an
    /// index rather than by reading from the start (it may also meet some at or below it, which
    /// the reader skips). A feed polled at its head reads only what is new.
    async fn checkpoint_before(&self, after_position: Position) -> Result<Checkpoint, StoreError>;

    /// The outcome of an earlier append made with this command id, if any.
    async fn find_command(&self, command_id: Uuid) -> Result<Option<AppendOutcome>, StoreError>;

    /// The highest position appended so far (0 for an empty store).
    async fn head_position(&self) -> Result<Position, StoreError>;

    /// The first and last positions and recording times in the log (`None` when it is empty),
    /// each read from an index.
    async fn log_bounds(&self) -> Result<Option<LogBounds>, StoreError>;

    /// Whether the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The database for read models, checkpoints and other tables kept beside the events
    /// (for SQLite, the same single writer connection as appends).
    fn sql(&self) -> crate::sql::SqlDb;

    /// Woken after every successful append, so tailing readers need not poll hard.
    fn appended(&self) -> &tokio::sync::Notify;

    /// The key store of the personal data this store seals ([`crate::personal`]); `None` for an
    /// engine opened bare, without the sealing boundary.
    fn vault(&self) -> Option<Arc<crate::personal::Vault>> {
        None
    }
}

impl RecordedEvent {
    /// The stored event back in its domain enum. Domain events are externally tagged enums of
    /// struct variants: the store keeps the variant name as `event_type` and its fields as
    /// `payload`, so the enum's JSON is `{event_type: payload}`; it is read as that object
    /// would be, without building it ([`tagged::Tagged`]).
    ///
    /// The payload is first brought from the `schema_version` it was written at to the type's
    /// current one ([`domain::upcast`]); an event already current is read in place. An event
    /// the chain cannot bring forward (a version newer than this build, a missing step) fails
    /// as any undecodable event does, naming its type and versions. The stored row is never
    /// rewritten: its hash covers what was written.
    pub fn decode<E: serde::de::DeserializeOwned>(&self) -> Result<E, serde_json::Error> {
        let payload = domain::upcast::upcast(&self.event_type, self.schema_version, &self.payload)
            .map_err(serde::de::Error::custom)?;
        E::deserialize(tagged::Tagged {
            variant: &self.event_type,
            content: &payload,
        })
    }
}

/// Recomputes every per-stream hash chain over everything committed, reading in checkpoint
/// order in batches (memory grows with the number of streams, never with the number of events).
pub async fn verify(store: &dyn EventStore) -> Result<VerifyReport, StoreError> {
    let mut verifier = ChainVerifier::default();
    let mut after = Checkpoint::START;
    loop {
        let batch = match store.read_committed(after, MAX_READ_BATCH).await {
            Ok(batch) => batch,
            Err(StoreError::Corrupt { position, reason }) => {
                verifier.record_undecodable(position, reason);
                break;
            }
            Err(other) => return Err(other),
        };
        let Some(last) = batch.last() else { break };
        after = Checkpoint::after(last);
        if !batch.iter().all(|event| verifier.check(event)) {
            break;
        }
    }
    Ok(verifier.finish())
}

/// Opens the store a URL names: `sqlite://PATH` (created if missing) or `postgres://…`, behind
/// the boundary that seals personal data ([`crate::personal::SealedStore`]), its data keys
/// stored as they are.
pub async fn open(url: &str) -> Result<Arc<dyn EventStore>, StoreError> {
    open_with_master_key(url, None).await
}

/// [`open`], with every data key wrapped by `master` when given.
pub async fn open_with_master_key(
    url: &str,
    master: Option<crate::personal::DataKey>,
) -> Result<Arc<dyn EventStore>, StoreError> {
    let engine: Arc<dyn EventStore> = if url.starts_with("sqlite:") {
        Arc::new(sqlite::SqliteStore::open(url).await?)
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Arc::new(postgres::PostgresStore::open(url).await?)
    } else {
        return Err(StoreError::UnsupportedUrl(url.to_owned()));
    };
    Ok(Arc::new(crate::personal::SealedStore::new(engine, master)))
}

/// Checks the shape of an append before any I/O.
fn validate(request: &AppendRequest) -> Result<(), StoreError> {
    if request.events.is_empty() {
        return Err(StoreError::InvalidAppend(
            "an append needs at least one event".into(),
        ));
    }
    if request.events.len() > MAX_EVENTS_PER_APPEND {
        return Err(StoreError::InvalidAppend(format!(
            "{} events in one append; the limit is {MAX_EVENTS_PER_APPEND}",
            request.events.len()
        )));
    }
    if request.stream_id.is_empty() || request.stream_type.is_empty() {
        return Err(StoreError::InvalidAppend(
            "stream_id and stream_type must not be empty".into(),
        ));
    }
    if request.events.iter().any(|e| e.schema_version == 0) {
        return Err(StoreError::InvalidAppend(
            "schema_version starts at 1".into(),
        ));
    }
    Ok(())
}

/// The rows an append will insert, with versions and hashes computed, for either engine.
struct PreparedEvent<'a> {
    event: &'a NewEvent,
    version: u64,
    /// The command that made the event: its metadata's, else the request's.
    command_id: Option<Uuid>,
    metadata: Value,
    prev_hash: EventHash,
    hash: EventHash,
}

/// The commands among `prepared`, each with the indexes of its first and last event, in the
/// order they first appear. A command's events are contiguous: those of one append are.
fn commands_of(prepared: &[PreparedEvent<'_>]) -> Vec<(Uuid, (usize, usize))> {
    let mut commands: Vec<(Uuid, (usize, usize))> = Vec::new();
    for (index, event) in prepared.iter().enumerate() {
        let Some(command_id) = event.command_id else {
            continue;
        };
        match commands.last_mut() {
            Some((last, (_, end))) if *last == command_id => *end = index,
            _ => commands.push((command_id, (index, index))),
        }
    }
    commands
}

/// Chains `request.events` onto a stream whose head is `(current_version, head_hash)`.
fn prepare<'a>(
    request: &'a AppendRequest,
    current_version: u64,
    head_hash: EventHash,
    recorded_at: OffsetDateTime,
) -> Result<Vec<PreparedEvent<'a>>, StoreError> {
    let mut prev_hash = head_hash;
    let mut prepared = Vec::with_capacity(request.events.len());
    for (offset, event) in request.events.iter().enumerate() {
        let version = current_version + 1 + offset as u64;
        let mut metadata = event.metadata.clone();
        if metadata.command_id.is_none() {
            metadata.command_id = request.command_id;
        }
        let command_id = metadata.command_id;
        if command_id != prepared.last().and_then(|p: &PreparedEvent| p.command_id)
            && prepared.iter().any(|p| p.command_id == command_id)
        {
            return Err(StoreError::InvalidAppend(format!(
                "the events of command {command_id:?} are not next to each other"
            )));
        }
        let metadata = serde_json::to_value(&metadata)
            .map_err(|e| StoreError::InvalidAppend(format!("metadata: {e}")))?;
        let fields = hash::HashedFields {
            event_id: event.event_id,
            stream_id: &request.stream_id,
            stream_type: &request.stream_type,
            version,
            event_type: &event.event_type,
            schema_version: event.schema_version,
            payload: &event.payload,
            metadata: &metadata,
            command_id,
            recorded_at,
        };
        let hash = hash::chain(&prev_hash, &fields);
        prepared.push(PreparedEvent {
            event,
            version,
            command_id,
            metadata,
            prev_hash,
            hash,
        });
        prev_hash = hash;
    }
    Ok(prepared)
}

/// When an append failed because its event ids exist: the original outcome if every event was
/// appended before to this stream, a [`StoreError::DuplicateEventId`] if only some were or to
/// another stream, `None` if none of them exist (the failure was something else).
fn replayed_from_event_ids(
    request: &AppendRequest,
    ids: &[Uuid],
    found: &[(String, i64, i64)],
) -> Option<Result<AppendOutcome, StoreError>> {
    let (first_stream, _, _) = found.first()?;
    let same_stream = found
        .iter()
        .all(|(stream, _, _)| *stream == request.stream_id);
    if found.len() != ids.len() || !same_stream {
        return Some(Err(StoreError::DuplicateEventId { event_id: ids[0] }));
    }
    let versions = found.iter().map(|(_, version, _)| *version as u64);
    let positions = found.iter().map(|(_, _, position)| *position);
    Some(Ok(AppendOutcome {
        stream_id: first_stream.clone(),
        first_version: versions.clone().min().unwrap_or(0),
        last_version: versions.max().unwrap_or(0),
        first_position: positions.clone().min().unwrap_or(0),
        last_position: positions.max().unwrap_or(0),
        replayed: true,
    }))
}

/// The inbox row as stored with an append: the answer names where the events landed.
fn with_outcome(
    record: &crate::inbox::InboxRecord,
    outcome: &AppendOutcome,
) -> crate::inbox::InboxRecord {
    let mut record = record.clone();
    record.response = crate::inbox::accepted_response(
        &record.response,
        &outcome.stream_id,
        outcome.last_version,
        outcome.first_position,
        outcome.last_position,
    );
    record
}

/// Records an append in the metrics: its latency, and each appended event by type.
fn record_append(
    request: &AppendRequest,
    started: std::time::Instant,
    result: &Result<AppendOutcome, StoreError>,
) {
    metrics::histogram!("revledger_store_append_duration_seconds")
        .record(started.elapsed().as_secs_f64());
    if let Ok(outcome) = result {
        if !outcome.replayed {
            for event in &request.events {
                metrics::counter!("revledger_events_appended_total", "event_type" => event.event_type.clone()).increment(1);
            }
            let now = crate::clock::unix_micros(crate::clock::now_micros());
            metrics::gauge!("revledger_last_event_timestamp_seconds").set(now as f64 / 1_000_000.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use domain::LeadEvent;
    use serde_json::Value;

    use super::*;

    /// The stored fixture of a lead's capture (`domain/tests/fixtures/events`), as a row.
    fn captured(schema_version: u32) -> RecordedEvent {
        let fixture: Value = serde_json::from_str(include_str!(
            "../../../domain/tests/fixtures/events/LeadCaptured.v1.json"
        ))
        .unwrap();
        RecordedEvent {
            position: 7,
            transaction_id: 0,
            event_id: Uuid::nil(),
            stream_id: "lead-lead-1".into(),
            stream_type: "lead".into(),
            version: 1,
            event_type: "LeadCaptured".into(),
            schema_version,
            payload: fixture["payload"].clone(),
            metadata: Value::Null,
            command_id: None,
            recorded_at: OffsetDateTime::UNIX_EPOCH,
            prev_hash: GENESIS_HASH,
            hash: GENESIS_HASH,
        }
    }

    #[test]
    fn a_stored_event_of_an_older_version_decodes_into_its_enum() {
        // Version 1 of a capture held its personal fields in clear; version 2 seals them.
        let event: LeadEvent = captured(1).decode().unwrap();
        assert!(
            matches!(event, LeadEvent::LeadCaptured { ref lead_id, ref name, .. }
                if lead_id == "lead-1" && name == "Noura Al-Harbi")
        );
        let event: LeadEvent = captured(2).decode().unwrap();
        assert!(matches!(event, LeadEvent::LeadCaptured { .. }));
    }

    #[test]
    fn an_event_the_upcaster_cannot_bring_forward_is_undecodable_naming_its_versions() {
        let newer = captured(3).decode::<LeadEvent>().unwrap_err().to_string();
        assert!(
            newer.contains(
                "LeadCaptured is stored at schema version 3, newer than this build's version 2"
            ),
            "{newer}"
        );
        let zero = captured(0).decode::<LeadEvent>().unwrap_err().to_string();
        assert!(
            zero.contains("LeadCaptured is stored at schema version 0"),
            "{zero}"
        );
    }
}
