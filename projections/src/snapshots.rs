//! Snapshots of read models, so that an as-of read folds a bounded number of events instead
//! of the whole log before its moment.
//!
//! A snapshot of read model R at checkpoint C holds R's state (its tables, and the events it
//! set aside in `quarantined_events`) after folding exactly the committed events at or before C
//! in commit order (`(transaction_id, position)`; on SQLite position order). It is kept with
//! the highest position and latest recording time among those events, so that:
//!
//! - **as of position P**, the latest snapshot whose `max_position <= P` holds only events a
//!   full replay to P folds, and they come first in commit order; the rest of that replay is
//!   the committed events after C with a position at or below P, read with the bound in SQL
//!   ([`EventStore::read_committed_until`]). Loading it and folding those is the full replay,
//!   row for row (the tests compare every read model's `render` both ways).
//! - **as of time T** the same, with `max_recorded_at_us <= T` and `recorded_at <= T`.
//!
//! **What it keeps**: of each table, the rows its read model's rule keeps
//! ([`Projection::snapshot_keeps`], [`SnapshotKeep`]); every row unless the model says
//! otherwise. Two tables grow with history and are read only at their newest end: the audit
//! trail keeps its last row (the fold's running hash and the summary read it; the trail's pages
//! read older rows from the live trail, [`crate::audit_log::entries_as_of`]) and the journal the
//! newest [`crate::ledger::MAX_ACCOUNT_LINES`] lines of each account with their entries (an
//! account's page reads them; totals are kept in their own tables). A rule keeps every row
//! that the queries read from an as-of copy and the fold itself read, so a snapshot loaded and
//! folded forward answers as a full replay does (the tests compare those queries both ways);
//! and the rules are closed under folding (the newest rows after more arrive are among the
//! newest before and the new ones), so a snapshot taken from a trimmed state keeps the same
//! rows as one taken from a whole one. What a snapshot holds is then the models' per-entity
//! state (leads, invoices, payments, accounts): it grows with the entities, not with the
//! events about them, which still makes storage grow with history (bench/README.md).
//!
//! **Taking** ([`take_due`], run by the service's worker and by `revledger snapshot`): from the
//! latest snapshot (or an empty scratch database), fold the log with the gap-safe
//! [`EventStore::read_all`], so a snapshot only ever covers a prefix of commit order that can
//! no longer change, and store one every [`SnapshotSettings::every_events`] events and, if
//! asked, at each UTC day's end (before the first event recorded on a later day). Nothing is
//! loaded or folded until a snapshot is due. The state folded on is trimmed to what the
//! snapshot kept after each one, so it stays as small as a snapshot.
//!
//! **Snapshots of the earlier layout** (whole copies, every row of every table, taken before
//! the rules) are decoded and used as they are: a whole copy holds every row a rule keeps, and
//! the next one taken from it keeps only what the rules keep.
//!
//! **Trust**: the body is the encoded rows ([`codec`]) in base64 beside the SHA-256 of the
//! encoded bytes. A body whose hash, encoding or tables do not check out is skipped with a
//! warning and the one before it is used, down to a full replay. Snapshots are derived data:
//! a rebuild of a read model (which is how a changed projection is deployed) deletes its
//! snapshots in the transaction that swaps its tables in ([`discard`]), and the worker
//! takes them again. Read models hold personal fields sealed, as the log does, so a snapshot
//! holds nothing an erasure must reach.

pub mod codec;
mod keep;

pub use keep::kept_rows;
use keep::{kept, trim, Kept, KeptParam};

use std::sync::Arc;

use adapters::clock::unix_micros;
use adapters::sql::{SqlDb, SqlTx};
use adapters::sqlite_conn::{Column, Connection, Param, SqliteError};
use adapters::store::{Checkpoint, EventStore, RecordedEvent, StoreError, Until, MAX_READ_BATCH};
use base64::Engine as _;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::deferred_indexes::{quoted, secondary_indexes};
use crate::runtime::{save_checkpoints, AsOf, Move, Projector};
use crate::{Projection, ProjectionError};

/// Events between two snapshots when the configuration does not say. An as-of read folds at
/// most this many events after loading its snapshot; see bench/README.md for the measurements
/// behind it.
pub const DEFAULT_EVERY_EVENTS: u64 = 10_000;

/// The longest interval a configuration may set: the events of one interval are held in
/// memory until its snapshot is due (about 1 KiB each).
pub const MAX_EVERY_EVENTS: u64 = 100_000;

/// Snapshots tried, newest first, before an as-of read falls back to a full replay: each
/// damaged one costs a read of its body.
pub const MAX_CANDIDATES: i64 = 8;

/// How often the worker looks for snapshots to take. A snapshot is due only every
/// [`DEFAULT_EVERY_EVENTS`] events or so; an as-of read between two folds the events since.
pub const WORKER_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// The table of events a money read model set aside ([`crate::quarantine`]): part of its state.
const QUARANTINE_TABLE: &str = "quarantined_events";

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// When snapshots are taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SnapshotSettings {
    /// Whether the service's worker takes them as the log grows. Off unless asked for:
    /// each snapshot holds its read model's current state, so storing one every N events
    /// still grows with history times its state (bench/README.md, "As-of from snapshots").
    /// `revledger snapshot` takes them on demand either way.
    pub worker: bool,
    /// A snapshot after every this many events (1..=[`MAX_EVERY_EVENTS`]).
    pub every_events: u64,
    /// Also one at the end of each UTC day of `recorded_at`.
    pub at_day_end: bool,
}

impl Default for SnapshotSettings {
    fn default() -> Self {
        SnapshotSettings {
            worker: false,
            every_events: DEFAULT_EVERY_EVENTS,
            at_day_end: true,
        }
    }
}

/// Where a snapshot stands in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SnapshotMark {
    pub checkpoint: Checkpoint,
    /// The highest position among the events it holds (0 for none).
    pub max_position: i64,
    /// The latest `recorded_at` among them, in Unix microseconds (`i64::MIN` for none).
    pub max_recorded_at_us: i64,
    pub events_applied: i64,
}

impl SnapshotMark {
    /// Before the first event: what an empty scratch database holds.
    pub const START: SnapshotMark = SnapshotMark {
        checkpoint: Checkpoint::START,
        max_position: 0,
        max_recorded_at_us: i64::MIN,
        events_applied: 0,
    };

    fn after(mut self, events: &[RecordedEvent]) -> SnapshotMark {
        for event in events {
            self.checkpoint = Checkpoint::after(event);
            self.max_position = self.max_position.max(event.position);
            self.max_recorded_at_us = self.max_recorded_at_us.max(unix_micros(event.recorded_at));
        }
        self.events_applied += events.len() as i64;
        self
    }
}

/// What one read model's [`take_due`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Taken {
    pub name: &'static str,
    pub snapshots: u64,
    /// Events folded to take them (0 when none was due).
    pub events_folded: u64,
    /// Bytes of the bodies stored (encoded, before base64).
    pub bytes: u64,
    /// Where the latest snapshot now stands.
    pub latest: Option<SnapshotMark>,
}

/// Takes every snapshot due for each of `projections`; see [`take_due`].
pub async fn take_all_due(
    store: &Arc<dyn EventStore>,
    projections: &[Arc<dyn Projection>],
    settings: SnapshotSettings,
) -> Result<Vec<Taken>, ProjectionError> {
    let mut taken = Vec::with_capacity(projections.len());
    for projection in projections {
        taken.push(take_due(store, projection, settings).await?);
    }
    Ok(taken)
}

/// Takes the snapshots of `projection` due between its latest one and the gap-safe end of the
/// log, oldest first. Events after the last one due are left for the next call.
pub async fn take_due(
    store: &Arc<dyn EventStore>,
    projection: &Arc<dyn Projection>,
    settings: SnapshotSettings,
) -> Result<Taken, ProjectionError> {
    let every = settings.every_events.clamp(1, MAX_EVERY_EVENTS) as usize;
    let live = store.sql();
    let latest = candidates(&live, projection.name(), None, 1).await?.pop();
    let mut taker = Taker {
        store,
        projection,
        live: &live,
        loaded: None,
        mark: latest.unwrap_or(SnapshotMark::START),
        taken: Taken {
            name: projection.name(),
            snapshots: 0,
            events_folded: 0,
            bytes: 0,
            latest,
        },
    };
    let mut pending: Vec<RecordedEvent> = Vec::new();
    let mut day = day_of(taker.mark.max_recorded_at_us);
    let mut after = taker.mark.checkpoint;
    loop {
        let batch = store.read_all(after, MAX_READ_BATCH).await?;
        let Some(last) = batch.last() else { break };
        after = Checkpoint::after(last);
        for event in batch {
            let event_day = day_of(unix_micros(event.recorded_at));
            if settings.at_day_end && day_ended(pending.len(), day, event_day) {
                taker.take(&mut pending).await?;
            }
            day = event_day;
            pending.push(event);
            if pending.len() >= every {
                taker.take(&mut pending).await?;
            }
        }
    }
    Ok(taker.taken)
}

/// Whether a day ended before an event of `event_day`: the one before it was of another day,
/// and events since the last snapshot are waiting (one was not just taken there).
fn day_ended(pending: usize, day: Option<i64>, event_day: Option<i64>) -> bool {
    pending > 0 && day.is_some() && event_day != day
}

/// The UTC day of a time in Unix microseconds (`None` before any event).
fn day_of(micros: i64) -> Option<i64> {
    (micros != i64::MIN).then(|| micros.div_euclid(MICROS_PER_DAY))
}

/// A read model's snapshot chain being advanced: the scratch database holding its state at
/// `mark`, loaded only once a snapshot is due.
struct Taker<'a> {
    store: &'a Arc<dyn EventStore>,
    projection: &'a Arc<dyn Projection>,
    live: &'a SqlDb,
    loaded: Option<Projector>,
    mark: SnapshotMark,
    taken: Taken,
}

impl Taker<'_> {
    /// Folds `pending` onto the state and stores a snapshot of it; empties `pending`.
    async fn take(&mut self, pending: &mut Vec<RecordedEvent>) -> Result<(), ProjectionError> {
        let projector = match self.loaded.take() {
            Some(projector) => projector,
            None => self.load_latest().await?,
        };
        for chunk in pending.chunks(MAX_READ_BATCH) {
            projector
                .apply_batch(chunk, self.mark.checkpoint, self.mark.events_applied)
                .await?;
            self.mark = self.mark.after(chunk);
        }
        self.taken.events_folded += pending.len() as u64;
        pending.clear();
        let body = dump(projector.db(), self.projection.as_ref()).await?;
        store(self.live, self.projection.name(), &self.mark, &body).await?;
        // The next snapshot is folded from what this one holds, as a load of it would be, so
        // the scratch state stays as small as a snapshot instead of growing with the history.
        trim(projector.db(), self.projection.as_ref()).await?;
        self.taken.snapshots += 1;
        self.taken.bytes += body.len() as u64;
        self.taken.latest = Some(self.mark);
        self.loaded = Some(projector);
        Ok(())
    }

    /// A projector on a scratch database holding the state at `self.mark`: the latest
    /// snapshot loaded, or, when it is damaged, an earlier one folded forward.
    async fn load_latest(&mut self) -> Result<Projector, ProjectionError> {
        let (db, from) = usable(self.live, self.projection.as_ref(), None).await?;
        let projector =
            Projector::new(self.store.clone(), self.projection.clone()).with_db(db.clone());
        if from.checkpoint != self.mark.checkpoint {
            // The latest snapshot is damaged: fold from the one that loaded up to it.
            let mut at = from;
            loop {
                let batch = self
                    .store
                    .read_committed_until(
                        at.checkpoint,
                        Until::Position(self.mark.max_position),
                        MAX_READ_BATCH,
                    )
                    .await?;
                let batch: Vec<RecordedEvent> = batch
                    .into_iter()
                    .take_while(|e| Checkpoint::after(e) <= self.mark.checkpoint)
                    .collect();
                if batch.is_empty() {
                    break;
                }
                projector
                    .apply_batch(&batch, at.checkpoint, at.events_applied)
                    .await?;
                at = at.after(&batch);
            }
            self.mark = at;
        }
        Ok(projector)
    }
}

/// `projection` as of `moment` in a new scratch database: the latest usable snapshot at or
/// before it, and the committed events after that snapshot up to the moment. Stops early (with
/// an error) once `abandoned` says nobody waits for it; it is asked before each batch.
pub async fn as_of_until(
    store: Arc<dyn EventStore>,
    projection: Arc<dyn Projection>,
    moment: AsOf,
    abandoned: impl Fn() -> bool,
) -> Result<SqlDb, ProjectionError> {
    let until = match moment {
        AsOf::Position(position) => Until::Position(position),
        AsOf::Time(at) => Until::RecordedAt(at),
    };
    let (db, mut at) = usable(&store.sql(), projection.as_ref(), Some(until)).await?;
    let projector = Projector::new(store.clone(), projection).with_db(db.clone());
    loop {
        if abandoned() {
            return Err(ProjectionError::External(
                "the as-of replay was abandoned by its caller".into(),
            ));
        }
        let batch = store
            .read_committed_until(at.checkpoint, until, MAX_READ_BATCH)
            .await?;
        if batch.is_empty() {
            break;
        }
        projector
            .apply_batch(&batch, at.checkpoint, at.events_applied)
            .await?;
        at = at.after(&batch);
    }
    Ok(db)
}

/// Deletes every snapshot of the read models `names` inside `tx`: a rebuild's swap and a
/// projector's reset call it, so no snapshot of a model's earlier code outlives the model.
pub async fn discard(tx: &mut SqlTx, names: &[&str]) -> Result<(), ProjectionError> {
    if names.is_empty() {
        return Ok(());
    }
    let (placeholders, params) = adapters::sql::in_list(names.iter().copied());
    tx.execute(
        &format!("DELETE FROM read_model_snapshots WHERE name IN ({placeholders})"),
        &params,
    )
    .await?;
    Ok(())
}

/// One stored snapshot as listed (without its body).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredSnapshot {
    pub name: String,
    pub mark: SnapshotMark,
    /// Characters of the stored body (base64).
    pub body_chars: i64,
}

/// Every stored snapshot, by read model and commit order.
pub async fn list(db: &SqlDb) -> Result<Vec<StoredSnapshot>, ProjectionError> {
    let rows = db
        .fetch_all(
            "SELECT name, transaction_id, position, max_position, max_recorded_at_us, \
             events_applied, CAST(LENGTH(body) AS BIGINT) FROM read_model_snapshots \
             ORDER BY name, transaction_id, position",
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(StoredSnapshot {
                name: row.text(0)?,
                mark: mark_at(row, 1)?,
                body_chars: row.i64(6)?,
            })
        })
        .collect()
}

/// The newest snapshots of `name` (at most `limit`) usable for a read up to `until` (any, for
/// `None`), newest first. A later snapshot holds every event of an earlier one, so its highest
/// position and latest time are never lower: the bound's own index orders them.
async fn candidates(
    db: &SqlDb,
    name: &str,
    until: Option<Until>,
    limit: i64,
) -> Result<Vec<SnapshotMark>, ProjectionError> {
    let (column, bound) = match until {
        None => ("max_position", i64::MAX),
        Some(Until::Position(position)) => ("max_position", position),
        Some(Until::RecordedAt(at)) => ("max_recorded_at_us", unix_micros(at)),
    };
    let rows = db
        .fetch_all(
            &format!(
                "SELECT transaction_id, position, max_position, max_recorded_at_us, \
                 events_applied FROM read_model_snapshots WHERE name = ? AND {column} <= ? \
                 ORDER BY {column} DESC, transaction_id DESC, position DESC LIMIT ?"
            ),
            &[name.into(), bound.into(), limit.into()],
        )
        .await?;
    rows.iter().map(|row| mark_at(row, 0)).collect()
}

/// The mark read from `row`'s columns `transaction_id, position, max_position,
/// max_recorded_at_us, events_applied`, starting at column `first`.
fn mark_at(row: &adapters::sql::SqlRow, first: usize) -> Result<SnapshotMark, ProjectionError> {
    Ok(SnapshotMark {
        checkpoint: Checkpoint {
            transaction_id: row.i64(first)?,
            position: row.i64(first + 1)?,
        },
        max_position: row.i64(first + 2)?,
        max_recorded_at_us: row.i64(first + 3)?,
        events_applied: row.i64(first + 4)?,
    })
}

/// A scratch database holding `projection`'s state at the newest snapshot usable up to
/// `until` that loads, and where it stands; an empty one at the start when none does.
async fn usable(
    live: &SqlDb,
    projection: &dyn Projection,
    until: Option<Until>,
) -> Result<(SqlDb, SnapshotMark), ProjectionError> {
    for mark in candidates(live, projection.name(), until, MAX_CANDIDATES).await? {
        let row = live
            .fetch_optional(
                "SELECT body, sha256 FROM read_model_snapshots \
                 WHERE name = ? AND transaction_id = ? AND position = ?",
                &[
                    projection.name().into(),
                    mark.checkpoint.transaction_id.into(),
                    mark.checkpoint.position.into(),
                ],
            )
            .await?;
        // Deleted meanwhile (a rebuild): the next one down is as good.
        let Some(row) = row else { continue };
        match load(projection, &mark, &row.text(0)?, &row.text(1)?).await? {
            Ok(db) => return Ok((db, mark)),
            Err(damage) => {
                metrics::counter!("revledger_snapshots_skipped_total", "projection" => projection.name())
                    .increment(1);
                tracing::warn!(
                    projection = projection.name(),
                    position = mark.checkpoint.position,
                    transaction_id = mark.checkpoint.transaction_id,
                    %damage,
                    "a snapshot cannot be used; trying the one before"
                );
            }
        }
    }
    Ok((SqlDb::scratch().await?, SnapshotMark::START))
}

/// Why a stored snapshot cannot be used.
#[derive(Debug, thiserror::Error)]
enum Damage {
    #[error("its body is not base64")]
    NotBase64,
    #[error("its body does not have the SHA-256 stored beside it")]
    HashMismatch,
    #[error("its body cannot be decoded: {0}")]
    Undecodable(#[from] codec::CodecError),
    #[error("its body holds table {0:?}, which is not the read model's")]
    ForeignTable(String),
    #[error("its body names a column {0:?} that holds a quote")]
    QuotedColumn(String),
    #[error("its rows do not fit the tables: {0}")]
    DoesNotFit(SqliteError),
}

/// A new scratch database holding the snapshot's rows and its checkpoint, or why the snapshot
/// cannot be used (the outer error is the database's own failure).
async fn load(
    projection: &dyn Projection,
    mark: &SnapshotMark,
    body: &str,
    sha256: &str,
) -> Result<Result<SqlDb, Damage>, ProjectionError> {
    let started = std::time::Instant::now();
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(body) else {
        return Ok(Err(Damage::NotBase64));
    };
    if hex::encode(Sha256::digest(&bytes)) != sha256 {
        return Ok(Err(Damage::HashMismatch));
    }
    let tables = match codec::decode(&bytes) {
        Ok(tables) => tables,
        Err(error) => return Ok(Err(error.into())),
    };
    let decoded = started.elapsed();
    drop(bytes);
    if let Some(foreign) = tables
        .iter()
        .find(|t| t.name != QUARANTINE_TABLE && !projection.tables().contains(&t.name.as_str()))
    {
        return Ok(Err(Damage::ForeignTable(foreign.name.clone())));
    }
    if let Some(column) = tables
        .iter()
        .flat_map(|t| &t.columns)
        .find(|c| c.contains('"'))
    {
        return Ok(Err(Damage::QuotedColumn(column.clone())));
    }
    let scratch = SqlDb::scratch().await?;
    // Secondary indexes are built once over the loaded rows rather than row by row, as a
    // rebuild does ([`crate::deferred_indexes`]).
    let mut tx = scratch.begin_derived().await?;
    let indexes = secondary_indexes(&mut tx, projection.tables()).await?;
    for index in &indexes {
        tx.execute(&format!("DROP INDEX {}", quoted(&index.name)), &[])
            .await?;
    }
    tx.commit().await?;
    {
        let connection = sqlite_of(&scratch)?;
        let mut connection = connection.lock().await;
        if let Err(error) = insert_tables(&mut connection, &tables) {
            return Ok(Err(Damage::DoesNotFit(error)));
        }
    }
    let mut tx = scratch.begin_derived().await?;
    for index in &indexes {
        tx.execute(&index.definition, &[]).await?;
    }
    tx.commit().await?;
    let mut tx = scratch.begin_derived().await?;
    let step = Move {
        name: projection.name(),
        from: Checkpoint::START,
        events_applied: mark.events_applied,
    };
    save_checkpoints(&mut tx, &[step], mark.checkpoint).await?;
    tx.commit().await?;
    tracing::debug!(
        projection = projection.name(),
        rows = tables.iter().map(|t| t.rows.len()).sum::<usize>(),
        decode_ms = decoded.as_millis() as u64,
        load_ms = started.elapsed().as_millis() as u64,
        "snapshot loaded"
    );
    Ok(Ok(scratch))
}

/// A scratch database's connection (scratch databases are always SQLite).
fn sqlite_of(db: &SqlDb) -> Result<&adapters::sql::SqliteDb, ProjectionError> {
    match db {
        SqlDb::Sqlite(sqlite) => Ok(sqlite),
        SqlDb::Postgres(_) => Err(ProjectionError::External(
            "snapshots are loaded into and dumped from SQLite scratch databases only".into(),
        )),
    }
}

/// Rows inserted into a scratch database per statement: one statement per row would spend
/// most of a load stepping statements. SQLite binds at most 32,766 values per statement.
const ROWS_PER_INSERT: usize = 64;

/// Inserts every decoded row in one transaction. Table names were checked against the read
/// model's, and column names hold no quote, so both are safe to write into the statement.
fn insert_tables(connection: &mut Connection, tables: &[codec::Table]) -> Result<(), SqliteError> {
    connection.execute_batch("BEGIN")?;
    let inserted = (|| {
        for table in tables {
            if table.columns.is_empty() || table.rows.is_empty() {
                continue;
            }
            let columns: Vec<String> = table.columns.iter().map(|c| format!("\"{c}\"")).collect();
            let one = format!("({})", vec!["?"; columns.len()].join(", "));
            let rows_per_insert = ROWS_PER_INSERT.min(32_766 / columns.len()).max(1);
            for chunk in table.rows.chunks(rows_per_insert) {
                let sql = format!(
                    "INSERT INTO {} ({}) VALUES {}",
                    table.name,
                    columns.join(", "),
                    vec![one.as_str(); chunk.len()].join(", ")
                );
                let params: Vec<Param<'_>> = chunk.iter().flatten().map(param_of).collect();
                connection.execute(&sql, &params)?;
            }
        }
        Ok(())
    })();
    match inserted {
        Ok(()) => connection.execute_batch("COMMIT"),
        Err(error) => {
            let _ = connection.execute_batch("ROLLBACK");
            Err(error)
        }
    }
}

fn param_of(column: &Column) -> Param<'_> {
    match column {
        Column::Null => Param::Null,
        Column::Int(value) => Param::Int(*value),
        Column::Text(text) => Param::Text(text),
        Column::Blob(bytes) => Param::Blob(bytes),
        // The codec never decodes a real number.
        Column::Real(_) => Param::Null,
    }
}

/// The encoded rows of `projection`'s tables that a snapshot keeps
/// ([`Projection::snapshot_keeps`]), and the events it set aside, in `scratch`.
async fn dump(scratch: &SqlDb, projection: &dyn Projection) -> Result<Vec<u8>, ProjectionError> {
    let connection = sqlite_of(scratch)?;
    let mut connection = connection.lock().await;
    let mut encoder = codec::Encoder::new(projection.tables().len() + 1);
    let mut tables: Vec<(&str, Kept)> = projection
        .tables()
        .iter()
        .map(|table| (*table, kept(projection, table)))
        .collect();
    // Only this read model's set-aside events: the filter is a bound parameter.
    tables.push((
        QUARANTINE_TABLE,
        Kept {
            condition: "projection = ?".into(),
            params: vec![KeptParam::Text(projection.name())],
        },
    ));
    for (table, kept) in tables {
        let columns = columns_of(&mut connection, table)?;
        let params = kept.params();
        let rows = connection
            .query_first(
                &format!("SELECT COUNT(*) FROM {table} WHERE {}", kept.condition),
                &params,
                |row| row.i64(0),
            )
            .map_err(StoreError::from)?
            .unwrap_or(0);
        encoder.table(table, &columns, rows as u64);
        let select = format!("SELECT * FROM {table} WHERE {}", kept.condition);
        connection.query(&select, &params, |row| {
            for index in 0..row.len() {
                encoder
                    .value(table, index, &row.column(index)?)
                    .map_err(|error| StoreError::InvalidValue(error.to_string()))?;
            }
            Ok::<_, StoreError>(())
        })?;
    }
    Ok(encoder.finish())
}

/// A table's column names, in order.
fn columns_of(connection: &mut Connection, table: &str) -> Result<Vec<String>, ProjectionError> {
    let mut columns = Vec::new();
    connection.query(&format!("PRAGMA table_info({table})"), &[], |row| {
        columns.push(row.text(1)?.to_owned());
        Ok::<_, StoreError>(())
    })?;
    Ok(columns)
}

/// Stores a snapshot of `name` at `mark` (a second taker of the same one changes nothing).
async fn store(
    live: &SqlDb,
    name: &str,
    mark: &SnapshotMark,
    body: &[u8],
) -> Result<(), ProjectionError> {
    let sha256 = hex::encode(Sha256::digest(body));
    let body = base64::engine::general_purpose::STANDARD.encode(body);
    live.execute_derived(
        "INSERT INTO read_model_snapshots (name, transaction_id, position, max_position, \
         max_recorded_at_us, events_applied, recorded_at_us, body, sha256) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        &[
            name.into(),
            mark.checkpoint.transaction_id.into(),
            mark.checkpoint.position.into(),
            mark.max_position.into(),
            mark.max_recorded_at_us.into(),
            mark.events_applied.into(),
            unix_micros(adapters::clock::now_micros()).into(),
            body.into(),
            sha256.into(),
        ],
    )
    .await?;
    Ok(())
}

/// Takes due snapshots every [`WORKER_INTERVAL`] until `shutdown` turns true. A failure is
/// logged and tried again at the next interval: as-of reads still answer meanwhile, folding
/// more events.
pub async fn run(
    store: Arc<dyn EventStore>,
    projections: Vec<Arc<dyn Projection>>,
    settings: SnapshotSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        match take_all_due(&store, &projections, settings).await {
            Ok(taken) => {
                for taken in taken.iter().filter(|t| t.snapshots > 0) {
                    tracing::info!(
                        projection = taken.name,
                        snapshots = taken.snapshots,
                        bytes = taken.bytes,
                        "snapshots taken"
                    );
                }
            }
            Err(error) => tracing::warn!(%error, "taking snapshots failed; retrying later"),
        }
        tokio::select! {
            () = tokio::time::sleep(WORKER_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_ends_before_the_first_event_of_a_later_utc_day_once() {
        let late = day_of(MICROS_PER_DAY - 1);
        let next = day_of(MICROS_PER_DAY);
        assert_ne!(late, next);
        assert!(day_ended(3, late, next), "events of the day are waiting");
        assert!(!day_ended(0, late, next), "a snapshot was just taken there");
        assert!(!day_ended(3, late, late), "the same day");
        assert!(!day_ended(3, None, next), "the first event of the log");
        assert_eq!(day_of(i64::MIN), None);
        assert_eq!(day_of(-1), Some(-1), "before 1970 is a day too");
    }
}
