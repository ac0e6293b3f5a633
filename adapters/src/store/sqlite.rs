//! The embedded default: the event store in one SQLite file.
//!
//! SQLite allows one writer at a time. Appends go through the one writer connection (called in
//! place, [`crate::sqlite_conn`]; read models and the inbox write through it too) and start
//! with `BEGIN IMMEDIATE`, which takes the write lock up front (also against other processes),
//! so positions are assigned and committed in the same order and a reader of the global log
//! can simply read `position > checkpoint`. Reads use a separate pool; in WAL mode they never
//! block the writer. `synchronous = FULL` makes every append's commit durable. A sqlx
//! connection to the same file runs the migrations.

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::{oneshot, OwnedMutexGuard};
use uuid::Uuid;

use super::with_outcome;
use super::{
    prepare, validate, AppendOutcome, AppendRequest, Checkpoint, EventStore, LogBounds, Position,
    RecordedEvent, StoreError, Until, MAX_READ_BATCH,
};
use crate::clock::{from_unix_micros, now_micros, unix_micros};
use crate::sql::{blocking, SqliteDb, SQLITE_BEGIN_DURABLE};
use crate::sqlite_conn::{Connection, Param, Row};
use crate::store::hash::{EventHash, GENESIS_HASH};

/// Read-only connections to the file. A reader is held only while its statement runs, on the
/// runtime thread that asked (nothing is awaited while holding one), so one per worker thread
/// and a spare is all that can be busy at once.
const READ_POOL_SIZE: usize = 4;

/// How long a writer waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const EVENT_COLUMNS: &str = "position, event_id, stream_id, stream_type, version, event_type, \
     schema_version, payload, metadata, command_id, recorded_at_us, prev_hash, hash";

/// Appends committed in one transaction at most (the rest wait for the next one).
const MAX_GROUP: usize = 256;

/// An append waiting for the writer, and where its outcome goes.
type Waiting = (
    Arc<AppendRequest>,
    oneshot::Sender<Result<AppendOutcome, StoreError>>,
);

/// The SQLite engine.
pub struct SqliteStore {
    /// Runs the migrations; nothing else writes through it.
    migrator: SqlitePool,
    writer: SqliteDb,
    readers: Arc<ReadPool>,
    /// Appends queued for the writer: whoever gets the writer connection commits all of them
    /// in one transaction (group commit: one fsync for the group, not one per append).
    queue: Arc<Mutex<Vec<Waiting>>>,
    appended: Arc<tokio::sync::Notify>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file a `sqlite://PATH` URL names.
    pub async fn open(url: &str) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        // No ping before handing out a connection: a connection to a local file does not go
        // stale, and the ping is a round trip to the connection's thread per transaction.
        let migrator = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        // The file exists now (the pool created it).
        let path = options.get_filename();
        let readers = Arc::new(ReadPool::open(path)?);
        let writer = SqliteDb::with_readers(Connection::open(path)?, readers.clone());
        Ok(SqliteStore {
            migrator,
            writer,
            readers,
            queue: Arc::new(Mutex::new(Vec::new())),
            appended: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// The pool that migrates the file (tests close it to let the file go).
    pub fn pool(&self) -> &SqlitePool {
        &self.migrator
    }

    /// Queues the append and either commits the queue (when this caller gets the writer
    /// connection first) or waits for the caller that does. The commit runs on its own task, so
    /// a caller that gives up cannot cut the group short. A caller whose append another one
    /// committed returns then, without waiting for its own turn at the writer (behind which a
    /// read model's batch may be queued).
    async fn try_append(&self, request: Arc<AppendRequest>) -> Result<AppendOutcome, StoreError> {
        let (sender, mut receiver) = oneshot::channel();
        lock(&self.queue).push((request, sender));
        let connection = tokio::select! {
            biased;
            answer = &mut receiver => return answered(answer),
            connection = self.writer.lock() => connection,
        };
        let group: Vec<Waiting> = {
            let mut queue = lock(&self.queue);
            let take = queue.len().min(MAX_GROUP);
            queue.drain(..take).collect()
        };
        if group.is_empty() {
            // Another caller committed ours already.
            drop(connection);
        } else {
            let appended = self.appended.clone();
            tokio::spawn(commit_group(connection, group, appended));
        }
        answered(receiver.await)
    }
}

/// The outcome the committing caller sent (an error if it was gone without answering).
fn answered(
    answer: Result<Result<AppendOutcome, StoreError>, oneshot::error::RecvError>,
) -> Result<AppendOutcome, StoreError> {
    answer.unwrap_or_else(|_| Err(StoreError::Database(sqlx::Error::WorkerCrashed)))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The store's read-only connections, called in place like the writer.
pub(crate) struct ReadPool {
    connections: Box<[Mutex<Connection>]>,
    next: AtomicUsize,
}

impl ReadPool {
    fn open(path: &std::path::Path) -> Result<ReadPool, StoreError> {
        let connections = (0..READ_POOL_SIZE)
            .map(|_| Connection::open_read_only(path).map(Mutex::new))
            .collect::<Result<_, _>>()?;
        Ok(ReadPool {
            connections,
            next: AtomicUsize::new(0),
        })
    }

    /// Runs `read` on a free reader (or, when all are busy, waits for one on this thread: a
    /// reader is held only for one statement).
    pub(crate) fn with<T>(
        &self,
        read: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let count = self.connections.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for offset in 0..count {
            if let Ok(mut connection) = self.connections[(start + offset) % count].try_lock() {
                return read(&mut connection);
            }
        }
        read(&mut lock(&self.connections[start % count]))
    }

    /// The events one statement selects (`EVENT_COLUMNS`, in order).
    fn events(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<RecordedEvent>, StoreError> {
        self.with(|connection| {
            let mut events = Vec::new();
            connection.query(sql, params, |row| {
                events.push(decode(row)?);
                Ok::<_, StoreError>(())
            })?;
            Ok(events)
        })
    }
}

/// Commits `group` in one `BEGIN IMMEDIATE` transaction, each append inside its own savepoint
/// so one that fails (a conflict, a replayed command) leaves the others in; then answers each.
async fn commit_group(
    mut connection: OwnedMutexGuard<Connection>,
    group: Vec<Waiting>,
    appended: Arc<tokio::sync::Notify>,
) {
    let requests: Vec<&AppendRequest> = group.iter().map(|(r, _)| r.as_ref()).collect();
    let outcome = blocking(|| commit_requests(&mut connection, &requests));
    drop(connection);
    match outcome {
        Ok(results) => {
            if results.iter().any(Result::is_ok) {
                appended.notify_waiters();
            }
            for ((_, sender), result) in group.into_iter().zip(results) {
                let _ = sender.send(result);
            }
        }
        Err(error) => {
            let text = error.to_string();
            for (_, sender) in group {
                let error = crate::sqlite_conn::SqliteError {
                    code: error.code,
                    message: format!("the append's transaction failed: {text}"),
                };
                let _ = sender.send(Err(StoreError::Sqlite(error)));
            }
        }
    }
}

/// The group's transaction: the per-append results, or the error that rolled all back. Runs on
/// the calling thread, commit (an fsync) included.
fn commit_requests(
    connection: &mut Connection,
    requests: &[&AppendRequest],
) -> Result<Vec<Result<AppendOutcome, StoreError>>, crate::sqlite_conn::SqliteError> {
    // The writer connection also commits read models, which do not sync (see
    // `crate::sql::SQLITE_DURABLE`): an append always asks for a synced commit.
    connection.execute_batch(SQLITE_BEGIN_DURABLE)?;
    let result = append_each(connection, requests);
    let end = match &result {
        Ok(results) if results.iter().any(Result::is_ok) => "COMMIT",
        _ => "ROLLBACK",
    };
    match connection.execute_batch(end) {
        Ok(()) => result,
        Err(error) => {
            if !connection.is_autocommit() {
                let _ = connection.execute_batch("ROLLBACK");
            }
            Err(error)
        }
    }
}

/// Each append inside its own savepoint, so one that fails (a conflict, a replayed command)
/// leaves the others in.
fn append_each(
    connection: &mut Connection,
    requests: &[&AppendRequest],
) -> Result<Vec<Result<AppendOutcome, StoreError>>, crate::sqlite_conn::SqliteError> {
    let mut results = Vec::with_capacity(requests.len());
    for request in requests {
        connection.execute_batch("SAVEPOINT append")?;
        let result = append_in(connection, request);
        if result.is_err() {
            connection.execute_batch("ROLLBACK TO append")?;
        }
        connection.execute_batch("RELEASE append")?;
        results.push(result);
    }
    Ok(results)
}

/// One append inside the group's transaction: the head check, the events, the command and
/// inbox rows.
fn append_in(
    connection: &mut Connection,
    request: &AppendRequest,
) -> Result<AppendOutcome, StoreError> {
    let head = connection.query_first(
        "SELECT version, hash FROM events WHERE stream_id = ? ORDER BY version DESC LIMIT 1",
        &[Param::Text(&request.stream_id)],
        |row| {
            let hash = row.opt_blob(1)?.and_then(EventHash::from_slice);
            Ok::<_, StoreError>((row.i64(0)? as u64, hash.unwrap_or(GENESIS_HASH)))
        },
    )?;
    let (current_version, head_hash) = head.unwrap_or((0, GENESIS_HASH));
    if !request.expected_version.admits(current_version) {
        return Err(StoreError::Conflict {
            stream_id: request.stream_id.clone(),
            expected: request.expected_version,
            actual: Some(current_version),
        });
    }
    let recorded_at = now_micros();
    let recorded_at_us = unix_micros(recorded_at);
    let prepared = prepare(request, current_version, head_hash, recorded_at)?;
    // Ids are stored as 16-byte blobs, as sqlx stores a `Uuid` (the readers decode them so).
    let mut positions = Vec::with_capacity(prepared.len());
    for row in &prepared {
        let payload = row.event.payload.to_string();
        let metadata = row.metadata.to_string();
        let command_id = row.command_id.map(|id| *id.as_bytes());
        let command_param = command_id
            .as_ref()
            .map_or(Param::Null, |id| Param::Blob(id));
        let position = connection.query_first(
            "INSERT INTO events (event_id, stream_id, stream_type, version, event_type, \
                 schema_version, payload, metadata, command_id, recorded_at_us, prev_hash, hash) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING position",
            &[
                Param::Blob(row.event.event_id.as_bytes()),
                Param::Text(&request.stream_id),
                Param::Text(&request.stream_type),
                Param::Int(row.version as i64),
                Param::Text(&row.event.event_type),
                Param::Int(i64::from(row.event.schema_version)),
                Param::Text(&payload),
                Param::Text(&metadata),
                command_param,
                Param::Int(recorded_at_us),
                Param::Blob(&row.prev_hash.0),
                Param::Blob(&row.hash.0),
            ],
            |inserted| inserted.i64(0),
        )?;
        positions.push(position.ok_or_else(|| {
            StoreError::InvalidAppend("the insert returned no position".to_owned())
        })?);
    }
    let outcome = AppendOutcome {
        stream_id: request.stream_id.clone(),
        first_version: current_version + 1,
        last_version: current_version + prepared.len() as u64,
        first_position: positions[0],
        last_position: positions[positions.len() - 1],
        replayed: false,
    };
    for (command_id, (first, last)) in super::commands_of(&prepared) {
        connection.execute(
            "INSERT INTO commands (command_id, stream_id, first_version, last_version, \
                 first_position, last_position, recorded_at_us) VALUES (?, ?, ?, ?, ?, ?, ?)",
            &[
                Param::Blob(command_id.as_bytes()),
                Param::Text(&outcome.stream_id),
                Param::Int(prepared[first].version as i64),
                Param::Int(prepared[last].version as i64),
                Param::Int(positions[first]),
                Param::Int(positions[last]),
                Param::Int(recorded_at_us),
            ],
        )?;
    }
    if let Some(inbox) = &request.inbox {
        let params = crate::inbox::accepted_params(&with_outcome(inbox, &outcome));
        connection.execute(
            crate::inbox::UPSERT_ACCEPTED_SQL,
            &crate::sql::sqlite_params(&params),
        )?;
    }
    Ok(outcome)
}

impl SqliteStore {
    /// The append, after validation: a typed conflict or the original outcome of a replay.
    async fn append_validated(
        &self,
        request: &Arc<AppendRequest>,
    ) -> Result<AppendOutcome, StoreError> {
        match self.try_append(request.clone()).await {
            Ok(outcome) => Ok(outcome),
            Err(StoreError::Sqlite(error)) if error.is_unique_violation() => {
                let conflict = StoreError::Conflict {
                    stream_id: request.stream_id.clone(),
                    expected: request.expected_version,
                    actual: None,
                };
                self.resolve_failure(request, conflict).await
            }
            Err(conflict @ StoreError::Conflict { .. }) => {
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
        let mut found = Vec::with_capacity(ids.len());
        self.readers.with(|connection| {
            for id in &ids {
                let stored = connection.query_first(
                    "SELECT stream_id, version, position FROM events WHERE event_id = ?",
                    &[Param::Blob(id.as_bytes())],
                    |row| Ok::<_, StoreError>((row.text(0)?.to_owned(), row.i64(1)?, row.i64(2)?)),
                )?;
                found.extend(stored);
            }
            Ok(())
        })?;
        super::replayed_from_event_ids(request, &ids, &found).unwrap_or(Err(error))
    }
}

/// One row of `EVENT_COLUMNS` back into an event; a value that cannot be what it should is
/// reported as corruption at its position.
fn decode(row: &Row<'_>) -> Result<RecordedEvent, StoreError> {
    let position = row.i64(0)?;
    let corrupt = |reason: String| StoreError::Corrupt { position, reason };
    let json = |index: usize, column: &str| -> Result<serde_json::Value, StoreError> {
        serde_json::from_str(row.text(index)?)
            .map_err(|e| corrupt(format!("{column} is not JSON: {e}")))
    };
    let uuid = |bytes: &[u8], column: &str| {
        Uuid::from_slice(bytes).map_err(|_| corrupt(format!("{column} is not 16 bytes")))
    };
    let hash = |index: usize, column: &str| -> Result<EventHash, StoreError> {
        row.opt_blob(index)?
            .and_then(EventHash::from_slice)
            .ok_or_else(|| corrupt(format!("{column} is not 32 bytes")))
    };
    let event_id = row
        .opt_blob(1)?
        .ok_or_else(|| corrupt("event_id is NULL".to_owned()))?;
    let command_id = row
        .opt_blob(9)?
        .map(|id| uuid(id, "command_id"))
        .transpose()?;
    let micros = row.i64(10)?;
    let schema_version = row.i64(6)?;
    Ok(RecordedEvent {
        position,
        transaction_id: 0,
        event_id: uuid(event_id, "event_id")?,
        stream_id: row.text(2)?.to_owned(),
        stream_type: row.text(3)?.to_owned(),
        version: row.i64(4)? as u64,
        event_type: row.text(5)?.to_owned(),
        schema_version: u32::try_from(schema_version)
            .map_err(|_| corrupt(format!("schema_version {schema_version} is out of range")))?,
        payload: json(7, "payload")?,
        metadata: json(8, "metadata")?,
        command_id,
        recorded_at: from_unix_micros(micros)
            .ok_or_else(|| corrupt(format!("recorded_at_us {micros} is out of range")))?,
        prev_hash: hash(11, "prev_hash")?,
        hash: hash(12, "hash")?,
    })
}

#[async_trait]
impl EventStore for SqliteStore {
    fn engine(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        super::migrations::SQLITE.run(&self.migrator).await?;
        Ok(())
    }

    async fn is_migrated(&self) -> Result<bool, StoreError> {
        let latest = super::migrations::SQLITE
            .iter()
            .map(|m| m.version)
            .max()
            .unwrap_or(0);
        let applied: Result<Option<i64>, sqlx::Error> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.migrator)
                .await;
        // No migrations table at all is "not migrated", not an error.
        Ok(applied.ok().flatten().unwrap_or(0) >= latest)
    }

    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        validate(&request)?;
        let started = std::time::Instant::now();
        let request = Arc::new(request);
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
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ? AND version >= ? \
             ORDER BY version LIMIT ?"
        );
        self.readers.events(
            &sql,
            &[
                Param::Text(stream_id),
                Param::Int(from_version),
                Param::Int(limit.min(MAX_READ_BATCH) as i64),
            ],
        )
    }

    async fn read_all(
        &self,
        after: Checkpoint,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?"
        );
        self.readers.events(
            &sql,
            &[
                Param::Int(after.position),
                Param::Int(limit.min(MAX_READ_BATCH) as i64),
            ],
        )
    }

    /// The same read as [`Self::read_all`]: with one writer, what is visible is committed in
    /// position order.
    async fn read_committed(
        &self,
        after: Checkpoint,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_all(after, limit).await
    }

    /// Position order is commit order here, so the events wanted are a range of the primary
    /// key (by position) or, by time, the positions after `after` recorded by then.
    async fn read_committed_until(
        &self,
        after: Checkpoint,
        until: Until,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let (bound, value) = match until {
            Until::Position(position) => ("position <= ?", position),
            Until::RecordedAt(at) => ("recorded_at_us <= ?", unix_micros(at)),
        };
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE position > ? AND {bound} \
             ORDER BY position LIMIT ?"
        );
        self.readers.events(
            &sql,
            &[
                Param::Int(after.position),
                Param::Int(value),
                Param::Int(limit.min(MAX_READ_BATCH) as i64),
            ],
        )
    }

    async fn find_command(&self, command_id: Uuid) -> Result<Option<AppendOutcome>, StoreError> {
        self.readers.with(|connection| {
            connection.query_first(
                "SELECT stream_id, first_version, last_version, first_position, last_position \
                 FROM commands WHERE command_id = ?",
                &[Param::Blob(command_id.as_bytes())],
                |row| {
                    Ok(AppendOutcome {
                        stream_id: row.text(0)?.to_owned(),
                        first_version: row.i64(1)? as u64,
                        last_version: row.i64(2)? as u64,
                        first_position: row.i64(3)?,
                        last_position: row.i64(4)?,
                        replayed: true,
                    })
                },
            )
        })
    }

    async fn head_position(&self) -> Result<Position, StoreError> {
        self.readers.with(|connection| {
            let head = connection.query_first("SELECT MAX(position) FROM events", &[], |row| {
                Ok::<_, StoreError>(row.opt_i64(0)?)
            })?;
            Ok(head.flatten().unwrap_or(0))
        })
    }

    async fn checkpoint_before(&self, after_position: Position) -> Result<Checkpoint, StoreError> {
        // One writer: position order is commit order.
        Ok(Checkpoint {
            transaction_id: 0,
            position: after_position,
        })
    }

    async fn log_bounds(&self) -> Result<Option<LogBounds>, StoreError> {
        self.readers.with(|connection| {
            // One aggregate per subquery: SQLite answers a lone MIN or MAX from the index.
            let bounds = connection.query_first(
                "SELECT (SELECT MIN(position) FROM events), (SELECT MAX(position) FROM events), \
                 (SELECT MIN(recorded_at_us) FROM events), (SELECT MAX(recorded_at_us) FROM events)",
                &[],
                |row| {
                    let Some(first_position) = row.opt_i64(0)? else {
                        return Ok::<_, StoreError>(None);
                    };
                    let time = |us: i64| {
                        from_unix_micros(us).ok_or_else(|| StoreError::Corrupt {
                            position: first_position,
                            reason: format!("recorded_at_us {us} is out of range"),
                        })
                    };
                    Ok(Some(LogBounds {
                        first_position,
                        last_position: row.i64(1)?,
                        first_recorded_at: time(row.i64(2)?)?,
                        last_recorded_at: time(row.i64(3)?)?,
                    }))
                },
            )?;
            Ok(bounds.flatten())
        })
    }

    fn sql(&self) -> crate::sql::SqlDb {
        crate::sql::SqlDb::Sqlite(self.writer.clone())
    }

    fn appended(&self) -> &tokio::sync::Notify {
        &self.appended
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.readers
            .with(|connection| Ok(connection.execute_batch("SELECT 1")?))
    }
}
