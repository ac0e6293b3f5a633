//! The production engine: the event store on PostgreSQL.
//!
//! Positions come from an identity column, so two concurrent transactions can commit them out
//! of order: position 11 may become visible before position 10. A reader that checkpointed 11
//! would then skip 10 for ever (Marten, Eventuous and cqrs-es users lost events this way).
//! Every event therefore also records `transaction_id` (`xid8`, `pg_current_xact_id()`), and the
//! global log is read in `(transaction_id, position)` order, only below
//! `pg_snapshot_xmin(pg_current_snapshot())`: the oldest transaction still running. Anything
//! below that is committed or aborted, so nothing can appear behind the reader's checkpoint
//! later. No wall-clock gap skipping.
//!
//! One refinement: a transaction of this process that writes derived state only (a read-model
//! batch, a checkpoint: [`crate::sql::SqlDb::begin_derived`]) takes its id at its start and
//! registers it ([`DerivedTransaction`]), and the reader's horizon is the oldest running
//! transaction *not* so registered. Such a transaction never inserts an event, so nothing can
//! appear below it; without this, the read models' own batch (open most of the time under
//! load) held back what the process managers could see by a whole batch per step.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use super::pg_group::{GroupAnswer, GroupCommit, Staged};
use super::{
    prepare, validate, AppendOutcome, AppendRequest, Checkpoint, EventStore, ExpectedVersion,
    LogBounds, Position, PreparedEvent, RecordedEvent, StoreError, Until, MAX_READ_BATCH,
};
use crate::clock::now_micros;
use crate::store::hash::{EventHash, GENESIS_HASH};

/// Connections per process by default. PostgreSQL's default `max_connections` is 100 and
/// several replicas and tools share it; more connections than a few per core buy no throughput.
pub const DEFAULT_POOL_SIZE: u32 = 16;

/// How long a caller waits for a free connection before the request fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// SQLSTATE codes we act on.
const UNIQUE_VIOLATION: &str = "23505";
const SERIALIZATION_FAILURE: &str = "40001";
const DEADLOCK_DETECTED: &str = "40P01";

/// The ids of this process's running derived-only transactions (see the module docs). A
/// handful at most: the read-model batch and process-manager checkpoints.
static DERIVED_TRANSACTIONS: std::sync::Mutex<std::collections::BTreeSet<u64>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// A running transaction that writes no events, registered while it lives. Dropped after its
/// commit or rollback has returned; dropped earlier (a transaction abandoned mid-way, whose
/// rollback sqlx sends later), readers merely wait for it again, as for any transaction.
pub struct DerivedTransaction(u64);

impl DerivedTransaction {
    pub(crate) fn register(transaction_id: u64) -> DerivedTransaction {
        derived_transactions().insert(transaction_id);
        DerivedTransaction(transaction_id)
    }
}

impl Drop for DerivedTransaction {
    fn drop(&mut self) {
        derived_transactions().remove(&self.0);
    }
}

fn derived_transactions() -> std::sync::MutexGuard<'static, std::collections::BTreeSet<u64>> {
    DERIVED_TRANSACTIONS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The columns of a recorded event. `transaction_id` is read as a number under its own name, so
/// an `ORDER BY` must name the table's column as `events.transaction_id`: the bare name means
/// this output column, a text-to-number cast no index has, and PostgreSQL then sorts the whole
/// log for every read (130 ms per read at a million events, measured).
const EVENT_COLUMNS: &str = "position, transaction_id::text::bigint AS transaction_id, event_id, \
     stream_id, stream_type, version, event_type, schema_version, payload, metadata, command_id, \
     recorded_at, prev_hash, hash";

/// Stream heads remembered per process ([`StreamHeads`]). An entry is a stream id, a version
/// and a 32-byte hash: a few MiB at this bound.
const STREAM_HEAD_CAPACITY: usize = 50_000;

/// The PostgreSQL engine.
pub struct PostgresStore {
    pool: PgPool,
    appended: tokio::sync::Notify,
    heads: StreamHeads,
    group: GroupCommit,
}

/// The last version and hash this process appended or read per stream, so that an append
/// whose expected version is that version (the command handler's, from its own aggregate
/// cache) chains onto it without reading the head first.
///
/// Never trusted for correctness: events are immutable, so the hash remembered for version
/// `v` is the hash of `v` for ever, and if the stream has moved past `v` (another process
/// appended) the insert at `v + 1` is refused by `UNIQUE (stream_id, version)`, a conflict
/// like any other, and the entry is dropped.
struct StreamHeads(std::sync::Mutex<lru::LruCache<String, (u64, EventHash)>>);

impl StreamHeads {
    fn new() -> StreamHeads {
        let capacity = std::num::NonZeroUsize::new(STREAM_HEAD_CAPACITY).expect("not zero");
        StreamHeads(std::sync::Mutex::new(lru::LruCache::new(capacity)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, lru::LruCache<String, (u64, EventHash)>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The head to chain onto when the append's expectation alone pins it: a new stream, or
    /// exactly the version remembered.
    fn known(&self, request: &AppendRequest) -> Option<(u64, EventHash)> {
        match request.expected_version {
            ExpectedVersion::NoStream => Some((0, GENESIS_HASH)),
            ExpectedVersion::Exact(version) => self
                .lock()
                .get(&request.stream_id)
                .filter(|(known, _)| *known == version)
                .copied(),
            ExpectedVersion::Any => None,
        }
    }

    fn remember(&self, stream_id: &str, version: u64, hash: EventHash) {
        self.lock().put(stream_id.to_owned(), (version, hash));
    }

    fn forget(&self, stream_id: &str) {
        self.lock().pop(stream_id);
    }
}

impl PostgresStore {
    /// Connects with [`DEFAULT_POOL_SIZE`] connections.
    pub async fn open(url: &str) -> Result<PostgresStore, StoreError> {
        Self::open_with_pool_size(url, DEFAULT_POOL_SIZE).await
    }

    pub async fn open_with_pool_size(url: &str, size: u32) -> Result<PostgresStore, StoreError> {
        // No ping before each use of a pooled connection (sqlx's default): it is a round trip
        // on every statement outside a transaction, a fifth of all round trips under load. A
        // connection that died (a restarted server, a terminated backend) fails its next
        // statement instead and is dropped; that failure reaches the caller as any database
        // error does (a projector retries its step, a request answers 503 and may be retried).
        let pool = PgPoolOptions::new()
            .max_connections(size)
            .test_before_acquire(false)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await?;
        Ok(PostgresStore {
            pool,
            appended: tokio::sync::Notify::new(),
            heads: StreamHeads::new(),
            group: GroupCommit::new(),
        })
    }

    /// The pool, for adapters that keep their own tables in the same database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// One append in as few round trips as it allows: the events and the command record go in
    /// as one statement, which commits by itself, together with the appends that arrived while
    /// the previous group committed ([`super::pg_group`]), unless a webhook delivery must
    /// commit with them; the stream's head is read first, on its own, only when neither the
    /// expectation nor [`StreamHeads`] gives it. Chaining onto a head not read in the insert's transaction
    /// is safe: `UNIQUE (stream_id, version)` refuses the insert if another writer appended
    /// after it, and that refusal is a conflict like any other; so an append that succeeds
    /// chained onto the stream's real head.
    async fn try_append(&self, request: &AppendRequest) -> Result<AppendOutcome, StoreError> {
        let (current_version, head_hash) = match self.heads.known(request) {
            Some(head) => head,
            None => self.read_head(request).await?,
        };
        let recorded_at = now_micros();
        let prepared = prepare(request, current_version, head_hash, recorded_at)?;
        let first_version = current_version + 1;
        let last_version = current_version + prepared.len() as u64;
        let last_hash = prepared.last().map_or(head_hash, |p| p.hash);
        let outcome = match &request.inbox {
            None => {
                let staged =
                    Staged::new(request, &prepared, first_version, last_version, recorded_at);
                match self.group.append(&self.pool, staged).await {
                    GroupAnswer::Committed(outcome) => outcome,
                    // The turn, when given, is held until the insert below is done.
                    GroupAnswer::Alone(_turn) => {
                        let insert = insert_events(
                            INSERT_EVENTS,
                            request,
                            &prepared,
                            last_version,
                            recorded_at,
                        );
                        let rows = insert.fetch_all(&self.pool).await?;
                        outcome_of(request, first_version, last_version, &rows)?
                    }
                }
            }
            Some(inbox) => {
                let mut insert = insert_events(
                    &INSERT_EVENTS_AND_INBOX,
                    request,
                    &prepared,
                    last_version,
                    recorded_at,
                );
                for param in crate::inbox::accepted_params(inbox) {
                    insert = crate::sql::bind_postgres(insert, param);
                }
                let rows = insert.fetch_all(&self.pool).await?;
                outcome_of(request, first_version, last_version, &rows)?
            }
        };
        self.heads
            .remember(&request.stream_id, last_version, last_hash);
        Ok(outcome)
    }

    /// The stream's version and last hash, read; a conflict when the expectation refuses it.
    async fn read_head(&self, request: &AppendRequest) -> Result<(u64, EventHash), StoreError> {
        let head = sqlx::query(
            "SELECT version, hash FROM events WHERE stream_id = $1 ORDER BY version DESC LIMIT 1",
        )
        .bind(&request.stream_id)
        .fetch_optional(&self.pool)
        .await?;
        let (current_version, head_hash) = match head {
            Some(row) => (
                row.try_get::<i64, _>(0)? as u64,
                EventHash::from_slice(&row.try_get::<Vec<u8>, _>(1)?).unwrap_or(GENESIS_HASH),
            ),
            None => (0, GENESIS_HASH),
        };
        if !request.expected_version.admits(current_version) {
            return Err(StoreError::Conflict {
                stream_id: request.stream_id.clone(),
                expected: request.expected_version,
                actual: Some(current_version),
            });
        }
        Ok((current_version, head_hash))
    }

    /// The append, after validation: a typed conflict or the original outcome of a replay.
    async fn append_validated(&self, request: &AppendRequest) -> Result<AppendOutcome, StoreError> {
        match self.try_append(request).await {
            Ok(outcome) => {
                self.appended.notify_waiters();
                Ok(outcome)
            }
            Err(StoreError::Database(error)) if is_concurrency_failure(&error) => {
                self.heads.forget(&request.stream_id);
                let conflict = StoreError::Conflict {
                    stream_id: request.stream_id.clone(),
                    expected: request.expected_version,
                    actual: None,
                };
                self.resolve_failure(request, conflict).await
            }
            Err(conflict @ StoreError::Conflict { .. }) => {
                self.heads.forget(&request.stream_id);
                self.resolve_failure(request, conflict).await
            }
            Err(other) => Err(other),
        }
    }

    /// After a failed append: the original outcome when this was a replay, else the error.
    async fn resolve_failure(
        &self,
        request: &AppendRequest,
        error: StoreError,
    ) -> Result<AppendOutcome, StoreError> {
        if let Some(command_id) = request.command_id {
            if let Some(original) = self.find_command(command_id).await? {
                return Ok(original);
            }
        }
        let ids: Vec<Uuid> = request.events.iter().map(|e| e.event_id).collect();
        let rows = sqlx::query(
            "SELECT stream_id, version, position FROM events WHERE event_id = ANY($1::uuid[])",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        let found = rows
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
            .collect::<Result<Vec<(String, i64, i64)>, sqlx::Error>>()?;
        super::replayed_from_event_ids(request, &ids, &found).unwrap_or(Err(error))
    }
}

/// Appends the events and records each command among them with the versions and positions its
/// events got.
const INSERT_EVENTS: &str = "WITH inserted AS (\
       INSERT INTO events (event_id, stream_id, stream_type, version, event_type, \
       schema_version, payload, metadata, command_id, recorded_at, prev_hash, hash) \
       SELECT e, $2, $3, v, t, s, p, m, c, $5, ph, h \
       FROM UNNEST($1::uuid[], $6::int8[], $7::text[], $8::int4[], $9::jsonb[], \
                   $10::jsonb[], $11::bytea[], $12::bytea[], $4::uuid[]) \
            AS u(e, v, t, s, p, m, ph, h, c) \
       RETURNING position, version, command_id), \
     command AS (\
       INSERT INTO commands (command_id, stream_id, first_version, last_version, \
       first_position, last_position, recorded_at) \
       SELECT command_id, $2, MIN(version), MAX(version), MIN(position), MAX(position), $5 \
       FROM inserted WHERE command_id IS NOT NULL GROUP BY command_id) \
     SELECT position FROM inserted";

/// [`INSERT_EVENTS`], and the webhook delivery's inbox row recorded as accepted with the
/// answer it was given ($22) and where its events landed
/// ([`crate::inbox::accepted_response`]): the values of [`crate::inbox::accepted_params`]
/// are $14 to $23.
static INSERT_EVENTS_AND_INBOX: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let upsert = crate::inbox::upsert_accepted_from(
        "SELECT $14, $15, $16, $17, $18, $19, $20, 'accepted', $21, \
           ((CASE WHEN jsonb_typeof($22::jsonb) = 'object' THEN $22::jsonb ELSE '{}' END) \
            || jsonb_build_object('stream_id', $2::text, 'version', $13::int8, \
               'first_position', MIN(position), 'last_position', MAX(position)))::text, \
           1, NULL, NULL, $23 FROM inserted",
    );
    let (ctes, select) = INSERT_EVENTS
        .rsplit_once(") SELECT ")
        .expect("the append ends with its select");
    format!("{ctes}), inbox AS ({upsert}) SELECT {select}")
});

/// The statement `sql` ([`INSERT_EVENTS`], or a statement that begins as it does) with the
/// parameters that append `prepared`: one round trip.
fn insert_events<'q>(
    sql: &'q str,
    request: &'q AppendRequest,
    prepared: &[PreparedEvent<'_>],
    last_version: u64,
    recorded_at: OffsetDateTime,
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(sql)
        .bind(
            prepared
                .iter()
                .map(|p| p.event.event_id)
                .collect::<Vec<_>>(),
        )
        .bind(&request.stream_id)
        .bind(&request.stream_type)
        .bind(prepared.iter().map(|p| p.command_id).collect::<Vec<_>>())
        .bind(recorded_at)
        .bind(
            prepared
                .iter()
                .map(|p| p.version as i64)
                .collect::<Vec<_>>(),
        )
        .bind(
            prepared
                .iter()
                .map(|p| p.event.event_type.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            prepared
                .iter()
                .map(|p| p.event.schema_version as i32)
                .collect::<Vec<_>>(),
        )
        .bind(
            prepared
                .iter()
                .map(|p| p.event.payload.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            prepared
                .iter()
                .map(|p| p.metadata.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            prepared
                .iter()
                .map(|p| p.prev_hash.0.to_vec())
                .collect::<Vec<_>>(),
        )
        .bind(
            prepared
                .iter()
                .map(|p| p.hash.0.to_vec())
                .collect::<Vec<_>>(),
        )
        .bind(last_version as i64)
}

/// The outcome of an append whose events got the positions in `rows`.
fn outcome_of(
    request: &AppendRequest,
    first_version: u64,
    last_version: u64,
    rows: &[PgRow],
) -> Result<AppendOutcome, StoreError> {
    let mut positions = rows
        .iter()
        .map(|row| row.try_get::<i64, _>(0))
        .collect::<Result<Vec<_>, _>>()?;
    positions.sort_unstable();
    let (Some(first), Some(last)) = (positions.first(), positions.last()) else {
        return Err(StoreError::InvalidAppend("no event was inserted".into()));
    };
    Ok(AppendOutcome {
        stream_id: request.stream_id.clone(),
        first_version,
        last_version,
        first_position: *first,
        last_position: *last,
        replayed: false,
    })
}

/// Whether the database refused the append because another writer got there first.
fn is_concurrency_failure(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => matches!(
            db.code().as_deref(),
            Some(UNIQUE_VIOLATION) | Some(SERIALIZATION_FAILURE) | Some(DEADLOCK_DETECTED)
        ),
        _ => false,
    }
}

fn decode(row: &PgRow) -> Result<RecordedEvent, StoreError> {
    let position: i64 = row.try_get("position")?;
    let hash = |column: &str| -> Result<EventHash, StoreError> {
        let bytes: Vec<u8> = row.try_get(column)?;
        EventHash::from_slice(&bytes).ok_or_else(|| StoreError::Corrupt {
            position,
            reason: format!("{column} is not 32 bytes"),
        })
    };
    Ok(RecordedEvent {
        position,
        transaction_id: row.try_get("transaction_id")?,
        event_id: row.try_get("event_id")?,
        stream_id: row.try_get("stream_id")?,
        stream_type: row.try_get("stream_type")?,
        version: row.try_get::<i64, _>("version")? as u64,
        event_type: row.try_get("event_type")?,
        schema_version: row.try_get::<i32, _>("schema_version")? as u32,
        payload: row.try_get("payload")?,
        metadata: row.try_get("metadata")?,
        command_id: row.try_get("command_id")?,
        recorded_at: row.try_get::<OffsetDateTime, _>("recorded_at")?,
        prev_hash: hash("prev_hash")?,
        hash: hash("hash")?,
    })
}

#[async_trait]
impl EventStore for PostgresStore {
    fn engine(&self) -> &'static str {
        "postgres"
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        super::migrations::POSTGRES.run(&self.pool).await?;
        Ok(())
    }

    async fn is_migrated(&self) -> Result<bool, StoreError> {
        let latest = super::migrations::POSTGRES
            .iter()
            .map(|m| m.version)
            .max()
            .unwrap_or(0);
        let applied: Result<Option<i64>, sqlx::Error> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await;
        // No migrations table at all is "not migrated", not an error.
        Ok(applied.ok().flatten().unwrap_or(0) >= latest)
    }

    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        validate(&request)?;
        let started = std::time::Instant::now();
        let result = self.append_validated(&request).await;
        super::record_append(&request, started, &result);
        result
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        // Versions are stored as signed 64-bit integers: none lies beyond `i64::MAX`, and a
        // larger `from_version` must not wrap around to the start of the stream.
        let Ok(from_version) = i64::try_from(from_version) else {
            return Ok(Vec::new());
        };
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND version >= $2 \
             ORDER BY version LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(stream_id)
            .bind(from_version)
            .bind(limit.min(MAX_READ_BATCH) as i64)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode).collect()
    }

    async fn read_all(
        &self,
        after: Checkpoint,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        // The horizon: the oldest running transaction that may still insert events (the
        // snapshot's in-progress ids less this process's derived-only ones), else the first id
        // not yet assigned.
        let sql = format!(
            "WITH now AS (SELECT pg_current_snapshot() AS snapshot) \
             SELECT {EVENT_COLUMNS} FROM events, now \
             WHERE (transaction_id, position) > ($1::text::xid8, $2) \
               AND transaction_id < COALESCE( \
                   (SELECT min(running) FROM pg_snapshot_xip(now.snapshot) AS running \
                    WHERE running <> ALL($4::text[]::xid8[])), \
                   pg_snapshot_xmax(now.snapshot)) \
             ORDER BY events.transaction_id, events.position LIMIT $3"
        );
        let derived: Vec<String> = derived_transactions().iter().map(u64::to_string).collect();
        let rows = sqlx::query(&sql)
            .bind(after.transaction_id.to_string())
            .bind(after.position)
            .bind(limit.min(MAX_READ_BATCH) as i64)
            .bind(derived)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode).collect()
    }

    async fn read_committed(
        &self,
        after: Checkpoint,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events \
             WHERE (transaction_id, position) > ($1::text::xid8, $2) \
             ORDER BY events.transaction_id, events.position LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(after.transaction_id.to_string())
            .bind(after.position)
            .bind(limit.min(MAX_READ_BATCH) as i64)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode).collect()
    }

    /// Read along the commit-order index from `after`; the bound is checked on the index's
    /// own `position` column, or on `recorded_at`.
    async fn read_committed_until(
        &self,
        after: Checkpoint,
        until: Until,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let bound = match until {
            Until::Position(_) => "events.position <= $3",
            Until::RecordedAt(_) => "events.recorded_at <= $3",
        };
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events \
             WHERE (transaction_id, position) > ($1::text::xid8, $2) AND {bound} \
             ORDER BY events.transaction_id, events.position LIMIT $4"
        );
        let query = sqlx::query(&sql)
            .bind(after.transaction_id.to_string())
            .bind(after.position);
        let query = match until {
            Until::Position(position) => query.bind(position),
            Until::RecordedAt(at) => query.bind(at),
        };
        let rows = query
            .bind(limit.min(MAX_READ_BATCH) as i64)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode).collect()
    }

    async fn find_command(&self, command_id: Uuid) -> Result<Option<AppendOutcome>, StoreError> {
        let row = sqlx::query(
            "SELECT stream_id, first_version, last_version, first_position, last_position \
             FROM commands WHERE command_id = $1",
        )
        .bind(command_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(AppendOutcome {
                stream_id: row.try_get(0)?,
                first_version: row.try_get::<i64, _>(1)? as u64,
                last_version: row.try_get::<i64, _>(2)? as u64,
                first_position: row.try_get(3)?,
                last_position: row.try_get(4)?,
                replayed: true,
            })
        })
        .transpose()
    }

    async fn head_position(&self) -> Result<Position, StoreError> {
        let head: Option<i64> = sqlx::query_scalar("SELECT MAX(position) FROM events")
            .fetch_one(&self.pool)
            .await?;
        Ok(head.unwrap_or(0))
    }

    async fn checkpoint_before(&self, after_position: Position) -> Result<Checkpoint, StoreError> {
        // Every event above the position was written by a transaction no older than the oldest
        // of theirs; the position's index gives that one by a range read of what is newer.
        let oldest: Option<String> =
            sqlx::query_scalar("SELECT MIN(transaction_id)::text FROM events WHERE position > $1")
                .bind(after_position)
                .fetch_one(&self.pool)
                .await?;
        Ok(match oldest.and_then(|id| id.parse::<i64>().ok()) {
            // Positions start at 1: (oldest, 0) comes before every event of that transaction.
            Some(oldest) => Checkpoint {
                transaction_id: oldest,
                position: 0,
            },
            // Nothing above it yet: a checkpoint past every event.
            None => Checkpoint {
                transaction_id: i64::MAX,
                position: i64::MAX,
            },
        })
    }

    async fn log_bounds(&self) -> Result<Option<LogBounds>, StoreError> {
        // One aggregate per subquery, so each is read from its index's first or last entry.
        let row = sqlx::query(
            "SELECT (SELECT MIN(position) FROM events), (SELECT MAX(position) FROM events), \
             (SELECT MIN(recorded_at) FROM events), (SELECT MAX(recorded_at) FROM events)",
        )
        .fetch_one(&self.pool)
        .await?;
        let first_position: Option<i64> = row.try_get(0)?;
        let Some(first_position) = first_position else {
            return Ok(None);
        };
        Ok(Some(LogBounds {
            first_position,
            last_position: row.try_get(1)?,
            first_recorded_at: row.try_get(2)?,
            last_recorded_at: row.try_get(3)?,
        }))
    }

    fn sql(&self) -> crate::sql::SqlDb {
        crate::sql::SqlDb::Postgres(self.pool.clone())
    }

    fn appended(&self) -> &tokio::sync::Notify {
        &self.appended
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
