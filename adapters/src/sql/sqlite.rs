//! The embedded store's SQL: its one writer connection, called in place
//! ([`crate::sqlite_conn`]), shared by every writer and held from `BEGIN` to the end of a
//! transaction, and its read-only connections for reads outside one.

use std::sync::Arc;

use tokio::sync::{Mutex, OwnedMutexGuard};

use super::{SqlRow, SqlValue, SQLITE_BEGIN_DERIVED, SQLITE_BEGIN_DURABLE};
use crate::sqlite_conn::{Column, Connection, Param, SqliteError};
use crate::store::StoreError;

/// The embedded store's one writer connection, called in place ([`crate::sqlite_conn`]).
/// Whoever holds the lock owns the connection: a transaction holds it from `BEGIN` to its
/// end, so SQLite's single writer is also a single holder here, and a statement outside a
/// transaction waits for the one inside to finish rather than for SQLite's busy timeout.
///
/// Reads outside a transaction go to the store's read-only connections when it has them: a
/// read then never waits for a write transaction (and its fsync) to let go of the writer, and
/// it sees every transaction committed before it started (WAL readers do), which includes the
/// caller's own earlier writes.
#[derive(Clone)]
pub struct SqliteDb {
    writer: Arc<Mutex<Connection>>,
    readers: Option<Arc<crate::store::sqlite::ReadPool>>,
}

impl std::fmt::Debug for SqliteDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteDb")
    }
}

impl SqliteDb {
    /// The writer alone: reads use it too.
    pub fn new(connection: Connection) -> SqliteDb {
        SqliteDb {
            writer: Arc::new(Mutex::new(connection)),
            readers: None,
        }
    }

    /// The writer, and read-only connections for reads outside a transaction.
    pub(crate) fn with_readers(
        connection: Connection,
        readers: Arc<crate::store::sqlite::ReadPool>,
    ) -> SqliteDb {
        SqliteDb {
            writer: Arc::new(Mutex::new(connection)),
            readers: Some(readers),
        }
    }

    /// The connection, once every earlier holder is done with it.
    pub async fn lock(&self) -> OwnedMutexGuard<Connection> {
        self.writer.clone().lock_owned().await
    }

    /// One statement in its own transaction on the writer, at the durability `level` (a
    /// `PRAGMA synchronous` setting, read at commit).
    pub(super) async fn execute_at(
        &self,
        level: &str,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<u64, StoreError> {
        let mut connection = self.lock().await;
        connection.execute_batch(level)?;
        let params = sqlite_params(params);
        Ok(blocking(|| connection.execute(sql, &params))?)
    }

    /// `sql`'s rows, read on a read-only connection when there is one, else on the writer.
    pub(super) async fn read(
        &self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Vec<SqlRow>, StoreError> {
        match &self.readers {
            Some(readers) => readers.with(|connection| sqlite_rows(connection, sql, params)),
            None => sqlite_rows(&mut *self.lock().await, sql, params),
        }
    }
}

/// it rolls back (as sqlx's transactions do).
pub struct SqliteTx {
    pub(super) connection: OwnedMutexGuard<Connection>,
    durable: bool,
    /// The schema name of a file attached for this transaction, detached at its end.
    attached: Option<String>,
}

impl SqliteTx {
    pub(super) async fn begin(db: &SqliteDb, durable: bool) -> Result<SqliteTx, StoreError> {
        let mut connection = db.lock().await;
        let begin = if durable {
            SQLITE_BEGIN_DURABLE
        } else {
            SQLITE_BEGIN_DERIVED
        };
        connection.execute_batch(begin)?;
        Ok(SqliteTx {
            connection,
            durable,
            attached: None,
        })
    }

    /// A derived transaction with the file at `path` attached as `schema` (see
    /// [`super::SqlDb::begin_derived_attached`]).
    pub(super) async fn begin_attached(
        db: &SqliteDb,
        path: &std::path::Path,
        schema: &str,
    ) -> Result<SqliteTx, StoreError> {
        if schema.is_empty() || !schema.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            return Err(StoreError::InvalidValue(format!(
                "{schema:?} is not a schema name (lowercase letters and underscores)"
            )));
        }
        let file = path.to_str().ok_or_else(|| {
            StoreError::InvalidValue(format!("{} is not a UTF-8 path", path.display()))
        })?;
        let mut connection = db.lock().await;
        connection.execute(
            &format!("ATTACH DATABASE ? AS {schema}"),
            &[Param::Text(file)],
        )?;
        let mut tx = SqliteTx {
            connection,
            durable: false,
            attached: Some(schema.to_owned()),
        };
        // Dropped on failure: the drop detaches.
        tx.connection.execute_batch(SQLITE_BEGIN_DERIVED)?;
        Ok(tx)
    }

    pub(super) fn finish(mut self, sql: &'static str) -> Result<(), StoreError> {
        let durable = self.durable;
        let connection = &mut *self.connection;
        if durable {
            blocking(|| connection.execute_batch(sql))?;
        } else {
            connection.execute_batch(sql)?;
        }
        Ok(())
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if !self.connection.is_autocommit() {
            // A failed rollback leaves nothing to undo: SQLite ends the transaction anyway.
            let _ = self.connection.execute_batch("ROLLBACK");
        }
        if let Some(schema) = self.attached.take() {
            // Outside any transaction now, so SQLite lets it go; a failure leaves the file
            // attached to the writer, which no unqualified name ever reaches.
            if let Err(error) = self
                .connection
                .execute_batch(&format!("DETACH DATABASE {schema}"))
            {
                tracing::warn!(%error, schema, "cannot detach a file from the writer");
            }
        }
    }
}

/// Runs `work`, which waits for the disk (a synced commit), without holding up the other tasks
/// of this runtime worker: on a multi-threaded runtime the worker hands its tasks to another
/// thread first. Elsewhere (a single-threaded test runtime) it simply runs.
pub(crate) fn blocking<T>(work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// The parameters as the SQLite connection binds them (booleans as 0 and 1, as SQLite keeps
/// them).
pub(crate) fn sqlite_params(params: &[SqlValue]) -> Vec<Param<'_>> {
    params
        .iter()
        .map(|param| match param {
            SqlValue::Null | SqlValue::NullInt | SqlValue::NullBool => Param::Null,
            SqlValue::Int(v) => Param::Int(*v),
            SqlValue::Text(v) => Param::Text(v),
            SqlValue::Bool(v) => Param::Int(i64::from(*v)),
        })
        .collect()
}

pub(super) fn sqlite_rows(
    connection: &mut Connection,
    sql: &str,
    params: &[SqlValue],
) -> Result<Vec<SqlRow>, StoreError> {
    Ok(connection
        .fetch_all(sql, &sqlite_params(params))?
        .into_iter()
        .map(SqlRow::Sqlite)
        .collect())
}

pub(super) fn sqlite_column(row: &[Column], index: usize) -> Result<&Column, StoreError> {
    row.get(index).ok_or_else(|| {
        StoreError::Sqlite(SqliteError {
            code: libsqlite3_sys::SQLITE_RANGE,
            message: format!("column {index} is out of range ({} columns)", row.len()),
        })
    })
}

pub(super) fn sqlite_mismatch(
    index: usize,
    wanted: &str,
    found: impl std::fmt::Debug,
) -> StoreError {
    StoreError::Sqlite(SqliteError {
        code: libsqlite3_sys::SQLITE_MISMATCH,
        message: format!("column {index} is {found:?}, not {wanted}"),
    })
}
