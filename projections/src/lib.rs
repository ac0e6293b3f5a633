//! Read models and process managers, and the runtime that keeps them current.
//!
//! A [`Projection`] folds the global event log into tables. The [`runtime::Projector`] reads
//! the log from the projection's checkpoint in gap-safe batches and writes the read-model
//! changes **and** the new checkpoint in one transaction, so a crash anywhere never loses and
//! never doubles an event. Any projection can be rebuilt from position zero, or computed as of a
//! past position or time into a scratch database ([`runtime::as_of`]).

pub mod as_of;
pub mod audit_log;
pub mod commissions;
pub mod crm_board;
pub mod deferred_indexes;
pub mod funnel;
pub mod ledger;
pub mod monthly;
pub mod partner_view;
pub mod quarantine;
pub mod reconciliation;
pub mod revenue;
pub mod runtime;
pub mod snapshots;
pub mod statements;
pub mod zatca;

use adapters::sql::{SqlDb, SqlTx};
use adapters::store::{RecordedEvent, StoreError};
use async_trait::async_trait;

pub use runtime::{AsOf, Projector, ProjectorGroup, Rebuild};

/// Why a projection could not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("event at position {position} ({event_type}) cannot be projected: {reason}")]
    Undecodable {
        position: i64,
        event_type: String,
        reason: String,
    },
    #[error("injected fault: {0}")]
    Injected(&'static str),
    #[error("the checkpoint of {0} was moved by another runner; this batch was not applied")]
    CheckpointMoved(String),
    #[error("command failed: {0}")]
    Command(String),
    /// An outside service (Moyasar's API) could not answer now; the step is retried later.
    #[error("{0}")]
    External(String),
    #[error("unknown projection {0:?}")]
    Unknown(String),
    /// An exclusive job (a rebuild) is already running on this database.
    #[error("another {0} is running on this database; try again once it is done")]
    AlreadyRunning(&'static str),
    /// A read model's tables disagree with each other (a maintained figure with its facts).
    #[error("inconsistent read model: {0}")]
    Inconsistent(String),
    /// A read needs the live read model to have reached a point it has not reached yet (its
    /// projector is behind, or rebuilding); asking again once it has caught up answers.
    #[error("the live read model is behind: {0}")]
    Behind(String),
}

/// What a snapshot keeps of one of a read model's tables ([`Projection::snapshot_keeps`]).
///
/// A snapshot loaded and folded forward must answer every query read from an as-of copy, and
/// the fold itself must write what it would have written after a full replay: a rule may drop
/// only rows that neither the read model's queries on an as-of copy nor its `apply_batch` ever
/// read again. Both rules below are closed under folding forward: the newest rows of a key
/// after more rows arrive are among the newest before and the new ones, so a copy trimmed,
/// loaded and folded holds the same newest rows as the full one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotKeep {
    /// Every row.
    Every,
    /// The newest `rows` rows of each group of rows equal in the `per` columns (of the whole
    /// table when `per` is empty), newest by the `by` columns, compared in descending order.
    /// `by` must order the rows of a group totally (a tie would make "newest" ambiguous).
    Newest {
        per: &'static [&'static str],
        by: &'static [&'static str],
        rows: i64,
    },
    /// The rows whose `column` is named by a kept row of `table` (a column of the same name),
    /// for rows read only through a join from that table.
    NamedBy {
        column: &'static str,
        table: &'static str,
    },
}

/// A read model: a named fold of the global log into tables it owns.
#[async_trait]
pub trait Projection: Send + Sync + 'static {
    /// Stable name, used as the checkpoint key and on the command line.
    fn name(&self) -> &'static str;

    /// The tables this projection owns; a rebuild empties them.
    fn tables(&self) -> &'static [&'static str];

    /// Tables this projection appends to that a rebuild never empties (evidence such as the
    /// audit seals): a rebuild adds the rows its fold made that they lack, and keeps the rest.
    /// Each must have a key its rows conflict on, and be small next to the log (a rebuild
    /// reads its fold's rows of them at once).
    fn kept_tables(&self) -> &'static [&'static str] {
        &[]
    }

    /// Applies consecutive events, in order, inside the batch transaction (a live batch may
    /// be a single event). Must be deterministic: the same events in the same order give the
    /// same rows (no clock, no random ids), however they are cut into batches. A projection
    /// reads once per batch what every event would otherwise read again (its writes are
    /// already sent together, [`SqlTx::write`]).
    async fn apply_batch(
        &self,
        tx: &mut SqlTx,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError>;

    /// Whether this read model adds amounts up: if so, an event with an amount beyond the
    /// ceiling is set aside rather than folded ([`quarantine`]).
    fn folds_money(&self) -> bool {
        false
    }

    /// What a snapshot of this read model keeps of `table`: every row unless the read model
    /// says otherwise, for a table that grows with history of which only part is ever read
    /// again (see [`SnapshotKeep`] for what a rule may drop). Each rule names, beside it, the
    /// queries that need what it keeps.
    fn snapshot_keeps(&self, _table: &str) -> SnapshotKeep {
        SnapshotKeep::Every
    }

    /// The read model's current state as JSON (what `revledger replay` prints and the API
    /// serves), read from `db`: the live database or an as-of scratch copy.
    async fn render(&self, db: &SqlDb) -> Result<serde_json::Value, ProjectionError>;
}

/// Every read model, in the order they are run and listed.
pub fn read_models() -> Vec<std::sync::Arc<dyn Projection>> {
    vec![
        std::sync::Arc::new(audit_log::AuditLog),
        std::sync::Arc::new(funnel::Funnel),
        std::sync::Arc::new(crm_board::CrmBoard),
        std::sync::Arc::new(revenue::Revenue),
        std::sync::Arc::new(statements::Statements),
        std::sync::Arc::new(ledger::Ledger),
        std::sync::Arc::new(reconciliation::Reconciliation),
        std::sync::Arc::new(zatca::Zatca),
    ]
}

/// The read model called `name`.
pub fn read_model(name: &str) -> Result<std::sync::Arc<dyn Projection>, ProjectionError> {
    read_models()
        .into_iter()
        .find(|projection| projection.name() == name)
        .ok_or_else(|| ProjectionError::Unknown(name.to_owned()))
}

/// A stored domain event back in its enum (externally tagged: `{event_type: payload}`).
pub fn decode<E: serde::de::DeserializeOwned>(event: &RecordedEvent) -> Result<E, ProjectionError> {
    event.decode().map_err(|e| ProjectionError::Undecodable {
        position: event.position,
        event_type: event.event_type.clone(),
        reason: e.to_string(),
    })
}

/// Read models keep time as integer Unix microseconds (portable, ordered, exact).
pub fn micros(at: time::OffsetDateTime) -> i64 {
    adapters::clock::unix_micros(at)
}

pub fn from_micros(us: i64) -> time::OffsetDateTime {
    adapters::clock::from_unix_micros(us).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// Microseconds as an RFC 3339 string for JSON output.
pub fn rfc3339(us: i64) -> String {
    from_micros(us)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
