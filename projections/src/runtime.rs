//! The projector: checkpoints, batches, catch-up, rebuild and as-of replay.
//!
//! One step reads at most `batch_size` events after the checkpoint (gap-safe), opens one
//! transaction, applies each event, writes the new checkpoint, commits. Failure before the
//! commit rolls everything back, read model and checkpoint alike; the next step reads the same
//! events again. Failure after the commit loses nothing: the checkpoint moved with the rows.

use std::sync::Arc;
use std::time::Duration;

use adapters::sql::{SqlDb, SqlTx, SqlValue};
use adapters::store::{Checkpoint, EventStore, RecordedEvent, MAX_READ_BATCH};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::{Projection, ProjectionError};

mod checkpoints;
mod rebuild;

pub use checkpoints::*;
pub use rebuild::*;

/// Events applied per transaction. Large enough to amortise the commit (an fsync), small enough
/// that a batch commits in milliseconds and holds SQLite's single write lock only briefly.
pub const DEFAULT_BATCH_SIZE: usize = 500;

/// How often an idle projector looks for new events when no append woke it (another process
/// may have appended).
pub const IDLE_POLL: Duration = Duration::from_millis(250);

/// The shortest time between the starts of two steps of a running projector under steady
/// appends. Without it, every append woke the read models for a step of one or two events,
/// and each step's fixed cost (its reads of checkpoints and log, its transaction) was paid
/// per append; paced, a step takes what arrived in the meantime. A backlog is not slowed: a
/// step of a full batch takes longer than this anyway. It bounds how stale a read model is
/// kept by it, well inside the second that issue 8 allows.
pub const STEP_PACE: Duration = Duration::from_millis(10);

/// How often a reader waiting for a projection to catch up looks again.
pub const CATCH_UP_POLL: Duration = Duration::from_millis(5);

/// Unapplied events [`Projector::wait_caught_up`] looks at per poll. On PostgreSQL the log is
/// read in commit order, not position order; an event committed before the wait began is among
/// the first few unapplied ones, never thousands behind events committed after it.
pub const WAIT_SCAN: usize = 64;

/// After a failed step, wait this long before trying again, so a broken database is not
/// hammered.
pub const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Points in a step where a test can make it fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultPoint {
    /// The read model was written, the transaction not committed yet.
    BeforeCommit,
    /// The transaction committed; the step has not returned yet.
    AfterCommit,
}

/// A test hook deciding whether a step fails at a point.
pub type FaultHook = Arc<dyn Fn(FaultPoint) -> bool + Send + Sync>;

/// Where a projection stands relative to the head of the log.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Lag {
    pub name: String,
    pub checkpoint: Checkpoint,
    pub events_applied: i64,
    pub head_position: i64,
    /// Events in the log after the checkpoint.
    pub events_behind: i64,
    /// Age of the oldest unapplied event, 0 when caught up.
    pub seconds_behind: i64,
}

/// Runs one projection against one store.
#[derive(Clone)]
pub struct Projector {
    store: Arc<dyn EventStore>,
    db: SqlDb,
    projection: Arc<dyn Projection>,
    batch_size: usize,
    fault: Option<FaultHook>,
}

impl Projector {
    /// A projector writing into the store's own database.
    pub fn new(store: Arc<dyn EventStore>, projection: Arc<dyn Projection>) -> Projector {
        let db = store.sql();
        Projector {
            store,
            db,
            projection,
            batch_size: DEFAULT_BATCH_SIZE,
            fault: None,
        }
    }

    /// Writes into `db` instead (a scratch database for as-of).
    pub fn with_db(mut self, db: SqlDb) -> Projector {
        self.db = db;
        self
    }

    pub fn with_batch_size(mut self, batch_size: usize) -> Projector {
        self.batch_size = batch_size.clamp(1, MAX_READ_BATCH);
        self
    }

    /// Installs a fault hook (tests).
    pub fn with_fault(mut self, fault: FaultHook) -> Projector {
        self.fault = Some(fault);
        self
    }

    pub fn name(&self) -> &'static str {
        self.projection.name()
    }

    pub fn projection(&self) -> &Arc<dyn Projection> {
        &self.projection
    }

    pub fn db(&self) -> &SqlDb {
        &self.db
    }

    /// The committed checkpoint and the count of events applied so far.
    pub async fn checkpoint(&self) -> Result<(Checkpoint, i64), ProjectionError> {
        load_checkpoint(&self.db, self.name()).await
    }

    /// Applies the next batch; returns how many events it applied (0 when caught up).
    pub async fn step(&self) -> Result<usize, ProjectionError> {
        let (checkpoint, applied) = self.checkpoint().await?;
        let batch = self.store.read_all(checkpoint, self.batch_size).await?;
        self.apply_batch(&batch, checkpoint, applied).await
    }

    /// Applies `batch` and moves the checkpoint from `from` past it, in one transaction. The
    /// move is a compare-and-set: if another runner moved the checkpoint meanwhile (two
    /// replicas briefly both leading), this transaction rolls back instead of applying twice.
    pub(crate) async fn apply_batch(
        &self,
        batch: &[RecordedEvent],
        from: Checkpoint,
        applied_before: i64,
    ) -> Result<usize, ProjectionError> {
        let Some(last) = batch.last() else {
            return Ok(0);
        };
        let mut tx = self.db.begin_derived().await?;
        let result = self
            .apply_in(
                &mut tx,
                batch,
                from,
                applied_before,
                Checkpoint::after(last),
            )
            .await;
        if let Err(error) = result {
            let _ = tx.rollback().await;
            return Err(error);
        }
        if self.faults_at(FaultPoint::BeforeCommit) {
            let _ = tx.rollback().await;
            return Err(ProjectionError::Injected("before commit"));
        }
        tx.commit().await?;
        if self.faults_at(FaultPoint::AfterCommit) {
            return Err(ProjectionError::Injected("after commit"));
        }
        Ok(batch.len())
    }

    async fn apply_in(
        &self,
        tx: &mut SqlTx,
        batch: &[RecordedEvent],
        from: Checkpoint,
        applied_before: i64,
        checkpoint: Checkpoint,
    ) -> Result<(), ProjectionError> {
        let admission = crate::quarantine::Admission::new(batch);
        crate::quarantine::apply_admissible(tx, self.projection.as_ref(), batch, &admission)
            .await?;
        let step = Move {
            name: self.name(),
            from,
            events_applied: applied_before + batch.len() as i64,
        };
        save_checkpoints(tx, &[step], checkpoint).await
    }

    fn faults_at(&self, point: FaultPoint) -> bool {
        self.fault.as_ref().is_some_and(|fault| fault(point))
    }

    /// Steps until a step finds nothing new; returns the events applied.
    pub async fn catch_up(&self) -> Result<u64, ProjectionError> {
        let mut total = 0u64;
        loop {
            let applied = self.step().await?;
            if applied == 0 {
                return Ok(total);
            }
            total += applied as u64;
        }
    }

    /// Empties the projection's tables and its checkpoint, in one transaction.
    pub async fn reset(&self) -> Result<(), ProjectionError> {
        let mut tx = self.db.begin_derived().await?;
        reset_in(&mut tx, self.projection.as_ref()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether every committed event at or below `position` has been applied (the position a
    /// command answered with: read-your-writes).
    pub async fn has_applied(&self, position: i64) -> Result<bool, ProjectionError> {
        let (checkpoint, _) = self.checkpoint().await?;
        if self.db.engine() != "postgres" {
            // One writer: position order is commit order, so the checkpoint says it all.
            return Ok(checkpoint.position >= position);
        }
        if self.store.head_position().await? < position {
            return Ok(false);
        }
        // The log is applied in (transaction id, position) order: `position` is applied when
        // no committed event at or below it lies after the checkpoint. Asked as the first such
        // event in that order, which walks the global-order index from the checkpoint (what is
        // not applied yet); a COUNT over the same condition was planned as a scan of the whole
        // log (120-180 ms at a million events, measured).
        let row = self
            .db
            .fetch_optional(
                "SELECT 1 FROM events WHERE position <= ? \
                 AND (transaction_id, position) > (?::text::xid8, ?) \
                 ORDER BY transaction_id, position LIMIT 1",
                &[
                    position.into(),
                    checkpoint.transaction_id.to_string().into(),
                    checkpoint.position.into(),
                ],
            )
            .await?;
        Ok(row.is_none())
    }

    /// Whether every event committed so far has been applied. (Not merely "nothing visible
    /// below the watermark": on PostgreSQL another transaction may hold that back for a moment.)
    pub async fn is_caught_up(&self) -> Result<bool, ProjectionError> {
        let (checkpoint, _) = self.checkpoint().await?;
        Ok(self.store.read_committed(checkpoint, 1).await?.is_empty())
    }

    /// Waits, at most `limit`, until the projection has applied everything visible now (the
    /// projector itself runs elsewhere). Returns whether it got there.
    ///
    /// "Now" is the head of the log at the call: under steady appends the projection is never
    /// fully caught up, and waiting for that would always wait the whole `limit`. An event
    /// committed before the call has a position at or below that head; the wait ends when none
    /// of the next [`WAIT_SCAN`] unapplied events is one of them.
    pub async fn wait_caught_up(&self, limit: Duration) -> Result<bool, ProjectionError> {
        let deadline = tokio::time::Instant::now() + limit;
        let head = self.store.head_position().await?;
        loop {
            let (checkpoint, _) = self.checkpoint().await?;
            let pending = self.store.read_committed(checkpoint, WAIT_SCAN).await?;
            if pending.iter().all(|event| event.position > head) {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(CATCH_UP_POLL).await;
        }
    }

    /// How far behind the head of the log this projection is.
    pub async fn lag(&self) -> Result<Lag, ProjectionError> {
        let (checkpoint, events_applied) = self.checkpoint().await?;
        let head_position = self.store.head_position().await?;
        // Committed, not merely below the read watermark: a long transaction elsewhere on a
        // PostgreSQL cluster holds the watermark back, and the events behind it are still owed.
        let pending = self.store.read_committed(checkpoint, 1).await?;
        let seconds_behind = pending.first().map_or(0, |oldest| {
            (adapters::clock::now_micros() - oldest.recorded_at)
                .whole_seconds()
                .max(0)
        });
        let events_behind = if pending.is_empty() {
            0
        } else {
            (head_position - checkpoint.position).max(1)
        };
        Ok(Lag {
            name: self.name().to_owned(),
            checkpoint,
            events_applied,
            head_position,
            events_behind,
            seconds_behind,
        })
    }

    /// Tails the log until `shutdown` turns true (see [`tail`]).
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        tail(
            self.store.as_ref(),
            shutdown,
            self.name(),
            STEP_PACE,
            || self.step(),
        )
        .await
    }
}

/// Empties a projection's tables and deletes its checkpoint and snapshots inside `tx`.
async fn reset_in(tx: &mut SqlTx, projection: &dyn Projection) -> Result<(), ProjectionError> {
    match tx {
        // `DELETE` would leave every row dead until a vacuum came by: each rebuild doubled
        // the tables (and their indexes) it then wrote into. `TRUNCATE` gives the space back
        // at once and is transactional; it holds the tables' exclusive lock until the commit.
        SqlTx::Postgres(_) => {
            let tables = projection.tables().join(", ");
            tx.execute(&format!("TRUNCATE {tables}"), &[]).await?;
        }
        // SQLite empties a table without a `WHERE` by dropping its pages, not row by row.
        SqlTx::Sqlite(_) => {
            for table in projection.tables() {
                tx.execute(&format!("DELETE FROM {table}"), &[]).await?;
            }
        }
    }
    tx.execute(
        "DELETE FROM quarantined_events WHERE projection = ?",
        &[projection.name().into()],
    )
    .await?;
    tx.execute(
        "DELETE FROM projection_checkpoints WHERE name = ?",
        &[projection.name().into()],
    )
    .await?;
    crate::snapshots::discard(tx, &[projection.name()]).await
}

/// Read models that share one database, run together: one read of the log, one transaction
/// and one commit per batch for all of them, instead of one each. Each keeps its own
/// checkpoint (moved by compare-and-set, as a [`Projector`]'s), so one can still be rebuilt or
/// inspected alone; when they stand at different places the group reads from the earliest and
/// gives each only the events after its own checkpoint.
#[derive(Clone)]
pub struct ProjectorGroup {
    store: Arc<dyn EventStore>,
    db: SqlDb,
    projections: Vec<Arc<dyn Projection>>,
    batch_size: usize,
    /// Transactions a step applies its batch in, side by side, each to its share of the
    /// members ([`Self::with_lanes`]).
    lanes: usize,
}

impl ProjectorGroup {
    pub fn new(store: Arc<dyn EventStore>, projections: Vec<Arc<dyn Projection>>) -> Self {
        let db = store.sql();
        ProjectorGroup {
            store,
            db,
            projections,
            batch_size: DEFAULT_BATCH_SIZE,
            lanes: 1,
        }
    }

    /// Applies each batch in `lanes` transactions at once, member `i` in lane `i % lanes`, on
    /// as many connections: PostgreSQL then runs a rebuild's writes on as many backends (one
    /// backend is one core). Each lane commits its members' rows with their checkpoints, so a
    /// lane that fails leaves its members behind and the others ahead, as any member may be.
    /// Worth it only where writers run in parallel: SQLite has one writer, and a live group's
    /// batches are small.
    pub fn with_lanes(mut self, lanes: usize) -> Self {
        self.lanes = lanes.clamp(1, self.projections.len().max(1));
        self
    }

    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.clamp(1, MAX_READ_BATCH);
        self
    }

    /// Writes into `db` instead of the store's database (a rebuild's scratch file).
    pub fn with_db(mut self, db: SqlDb) -> Self {
        self.db = db;
        self
    }

    /// Each member's committed checkpoint and events applied, in member order (one query).
    async fn checkpoints(&self) -> Result<Vec<(Checkpoint, i64)>, ProjectionError> {
        let names: Vec<&str> = self.projections.iter().map(|p| p.name()).collect();
        load_checkpoints(&self.db, &names).await
    }

    /// Applies the next batch to every member behind it; returns the events read (0 when all
    /// are caught up).
    pub async fn step(&self) -> Result<usize, ProjectionError> {
        Ok(self.step_to().await?.map_or(0, |(read, _)| read))
    }

    /// [`Self::step`], also returning where the batch ended.
    async fn step_to(&self) -> Result<Option<(usize, Checkpoint)>, ProjectionError> {
        self.step_with(|from| async move { Ok(self.store.read_all(from, self.batch_size).await?) })
            .await
    }

    /// A step whose batch `read` gives, from the earliest member's checkpoint.
    async fn step_with<F, Fut>(
        &self,
        read: F,
    ) -> Result<Option<(usize, Checkpoint)>, ProjectionError>
    where
        F: FnOnce(Checkpoint) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<RecordedEvent>, ProjectionError>>,
    {
        let checkpoints = self.checkpoints().await?;
        let Some(from) = earliest(checkpoints.iter().map(|(c, _)| c)) else {
            return Ok(None);
        };
        let batch = read(from).await?;
        let applied = self.apply_read(&batch, &checkpoints).await?;
        Ok(applied.map(|next| (batch.len(), next)))
    }

    /// Applies `batch`, read from the earliest of `checkpoints` (the members' own, in member
    /// order), to every member behind its end; returns where it ended (`None` when it is empty).
    pub(crate) async fn apply_read(
        &self,
        batch: &[RecordedEvent],
        checkpoints: &[(Checkpoint, i64)],
    ) -> Result<Option<Checkpoint>, ProjectionError> {
        let Some(last) = batch.last() else {
            return Ok(None);
        };
        let next = Checkpoint::after(last);
        let lanes = (0..self.lanes).map(|lane| self.apply_lane(lane, batch, checkpoints, next));
        for result in futures_util::future::join_all(lanes).await {
            result?;
        }
        Ok(Some(next))
    }

    /// Applies `batch` to the members of `lane` in one transaction, with their checkpoints.
    async fn apply_lane(
        &self,
        lane: usize,
        batch: &[RecordedEvent],
        checkpoints: &[(Checkpoint, i64)],
        next: Checkpoint,
    ) -> Result<(), ProjectionError> {
        let mut tx = self.db.begin_derived().await?;
        let mut standing = checkpoints.to_vec();
        let members = self.projections.iter().zip(standing.iter_mut());
        let lane_members = members.skip(lane).step_by(self.lanes);
        let result = apply_to_members(&mut tx, lane_members, batch, next).await;
        if let Err(error) = result {
            let _ = tx.rollback().await;
            return Err(error);
        }
        tx.commit().await?;
        Ok(())
    }

    /// Steps until a step finds nothing new; returns the events read.
    pub async fn catch_up(&self) -> Result<u64, ProjectionError> {
        let mut total = 0u64;
        loop {
            match self.step().await? {
                0 => return Ok(total),
                read => total += read as u64,
            }
        }
    }

    /// Tails the log like [`Projector::run`], for every member at once, after creating the
    /// indexes a rebuild that stopped half way left deferred ([`crate::deferred_indexes`]).
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        match crate::deferred_indexes::restore(&self.db).await {
            Ok(0) => {}
            Ok(created) => {
                tracing::info!(created, "indexes an unfinished rebuild deferred are back")
            }
            Err(error) => tracing::warn!(%error, "cannot restore the indexes a rebuild deferred"),
        }
        tail(
            self.store.as_ref(),
            shutdown,
            "read models",
            STEP_PACE,
            || self.step(),
        )
        .await
    }
}

/// Applies `batch` (read in checkpoint order) inside `tx` to each member, after its own
/// checkpoint, and moves the checkpoint of each that had events to `next` in one
/// compare-and-set ([`save_checkpoints`]); `standing` follows those moves.
///
/// Member by member: each owns its tables and reads no other's, so applying all of a
/// member's events before the next member's gives the same rows as event by event, and lets
/// each apply its run of events as a batch.
pub(crate) async fn apply_to_members<'a>(
    tx: &mut SqlTx,
    standing: impl Iterator<Item = (&'a Arc<dyn Projection>, &'a mut (Checkpoint, i64))>,
    batch: &[RecordedEvent],
    next: Checkpoint,
) -> Result<(), ProjectionError> {
    let mut moves = Vec::new();
    let admission = crate::quarantine::Admission::new(batch);
    for (projection, (checkpoint, applied)) in standing {
        let events = events_after(batch, checkpoint);
        if events.is_empty() {
            continue;
        }
        crate::quarantine::apply_admissible(tx, projection.as_ref(), events, &admission).await?;
        *applied += events.len() as i64;
        moves.push(Move {
            name: projection.name(),
            from: *checkpoint,
            events_applied: *applied,
        });
        *checkpoint = next;
    }
    save_checkpoints(tx, &moves, next).await
}

/// Tails the log until `shutdown` turns true: `step` whenever an append wakes it, or every
/// [`IDLE_POLL`], at most one step per `pace`. A failing step is logged and retried after [`RETRY_DELAY`]; it never skips
/// the event.
pub async fn tail<F, Fut>(
    store: &dyn EventStore,
    mut shutdown: watch::Receiver<bool>,
    name: &str,
    pace: Duration,
    step: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<usize, ProjectionError>>,
{
    loop {
        if *shutdown.borrow() {
            return;
        }
        let woken = store.appended().notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let started = tokio::time::Instant::now();
        match step().await {
            Ok(0) => {
                tokio::select! {
                    () = &mut woken => {}
                    () = tokio::time::sleep(IDLE_POLL) => {}
                    _ = shutdown.changed() => return,
                }
            }
            Ok(_) => {
                tokio::select! {
                    () = tokio::time::sleep_until(started + pace) => {}
                    _ = shutdown.changed() => return,
                }
            }
            Err(error) => {
                tracing::warn!(worker = name, %error, "step failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(RETRY_DELAY) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}

/// Where an event or checkpoint falls in the order the log is read: by transaction id, then
/// position (on SQLite the transaction id is always 0).
fn order_key(checkpoint: &Checkpoint) -> (i64, i64) {
    (checkpoint.transaction_id, checkpoint.position)
}

/// A moment in the log's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AsOf {
    /// Every event with a position at or below this one.
    Position(i64),
    /// Every event recorded at or before this instant.
    Time(OffsetDateTime),
}

impl AsOf {
    /// Parses `1234` as a position and an RFC 3339 timestamp as a time.
    pub fn parse(text: &str) -> Result<AsOf, String> {
        if let Ok(position) = text.parse::<i64>() {
            return if position >= 0 {
                Ok(AsOf::Position(position))
            } else {
                Err(format!("as_of position {position} is negative"))
            };
        }
        OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .map(AsOf::Time)
            .map_err(|e| format!("as_of {text:?} is neither a position nor an RFC 3339 time: {e}"))
    }

    fn includes(&self, event: &RecordedEvent) -> bool {
        match self {
            AsOf::Position(position) => event.position <= *position,
            AsOf::Time(at) => event.recorded_at <= *at,
        }
    }
}

/// Computes `projection` as of `moment` into a fresh scratch database and returns it: the live
/// tables are not touched. Starts from the latest usable snapshot before the moment
/// ([`crate::snapshots`]) and folds the committed events after it.
pub async fn as_of(
    store: Arc<dyn EventStore>,
    projection: Arc<dyn Projection>,
    moment: AsOf,
) -> Result<SqlDb, ProjectionError> {
    as_of_until(store, projection, moment, || false).await
}

/// [`as_of`], stopping early (with an error) once `abandoned` says nobody waits for it: it is
/// asked before each batch.
pub async fn as_of_until(
    store: Arc<dyn EventStore>,
    projection: Arc<dyn Projection>,
    moment: AsOf,
    abandoned: impl Fn() -> bool,
) -> Result<SqlDb, ProjectionError> {
    crate::snapshots::as_of_until(store, projection, moment, abandoned).await
}

/// [`as_of`] without snapshots: the whole committed log streamed in checkpoint order from the
/// start, each event kept or not by the moment. What snapshots are checked against.
pub async fn as_of_full(
    store: Arc<dyn EventStore>,
    projection: Arc<dyn Projection>,
    moment: AsOf,
) -> Result<SqlDb, ProjectionError> {
    let scratch = SqlDb::scratch().await?;
    let projector = Projector::new(store.clone(), projection).with_db(scratch.clone());
    let mut after = Checkpoint::START;
    let mut saved = Checkpoint::START;
    let mut applied = 0i64;
    loop {
        let batch = store.read_committed(after, MAX_READ_BATCH).await?;
        let Some(last) = batch.last() else { break };
        after = Checkpoint::after(last);
        let included: Vec<RecordedEvent> =
            batch.into_iter().filter(|e| moment.includes(e)).collect();
        applied += projector.apply_batch(&included, saved, applied).await? as i64;
        if let Some(last_included) = included.last() {
            saved = Checkpoint::after(last_included);
        }
    }
    Ok(scratch)
}

/// Every row of `table` ordered by all its columns, as values: for comparing a rebuild or an
/// as-of result with the live table.
pub async fn dump_table(db: &SqlDb, table: &str) -> Result<Vec<Vec<SqlValue>>, ProjectionError> {
    dump_table_where(db, table, "1 = 1", &[]).await
}

/// The rows of `table` that match `condition` (an SQL `WHERE` condition over `params`),
/// ordered by all its columns, as values.
pub async fn dump_table_where(
    db: &SqlDb,
    table: &str,
    condition: &str,
    params: &[SqlValue],
) -> Result<Vec<Vec<SqlValue>>, ProjectionError> {
    let probe = db
        .fetch_optional(&format!("SELECT * FROM {table} LIMIT 1"), &[])
        .await?;
    let Some(probe) = probe else {
        return Ok(Vec::new());
    };
    let order: Vec<String> = (1..=probe.len()).map(|i| i.to_string()).collect();
    let rows = db
        .fetch_all(
            &format!(
                "SELECT * FROM {table} WHERE {condition} ORDER BY {}",
                order.join(", ")
            ),
            params,
        )
        .await?;
    rows.iter()
        .map(|row| row.values().map_err(ProjectionError::from))
        .collect()
}

#[cfg(test)]
mod tests;
