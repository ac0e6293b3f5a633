//! Portable SQL for read models: one API over SQLite and PostgreSQL.
//!
//! Read models (projections, the webhook inbox, idempotency keys) are plain tables whose SQL is
//! written once, in the common subset of both engines: `?` placeholders (rewritten to `$n` for
//! PostgreSQL), `BIGINT`/`TEXT`/`BOOLEAN` columns, timestamps as integer Unix microseconds,
//! money as integer halalas, JSON as text, `INSERT … ON CONFLICT … DO UPDATE`. That one text
//! runs on the live database of either engine and on a scratch in-memory SQLite, which is how
//! any read model is computed *as of* a past position without touching the live tables.
//!
//! Aggregates that PostgreSQL widens (`SUM(bigint)` is `numeric`) must be cast back with
//! `CAST(… AS BIGINT)` so both engines return an `i64`.
//!
//! Every value is bound, on both engines, never written into SQL text: SQLite binds each
//! statement's parameters ([`sqlite`]); PostgreSQL binds them too, and the writes a
//! transaction defers go out as one call whose values are bound as one JSON document
//! ([`postgres`]). The modules: [`placeholders`] reads SQL text for its `?` placeholders,
//! [`sqlite`] and [`postgres`] are the two engines' transactions.

mod placeholders;
mod postgres;
mod sqlite;

use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Postgres, Row};

use crate::sqlite_conn::{Column, Connection};
use crate::store::StoreError;

pub use placeholders::to_postgres_placeholders;
pub use postgres::PgTx;
pub(crate) use sqlite::{blocking, sqlite_params};
use sqlite::{sqlite_column, sqlite_mismatch, sqlite_rows};
pub use sqlite::{SqliteDb, SqliteTx};

/// A bound parameter: the only types read models use.
///
/// Nulls carry their column's type: PostgreSQL prepares a statement with the parameter types
/// of its first execution, so a NULL bound as the wrong type would poison the cached statement
/// for every later non-null value.
#[derive(Clone, Debug, PartialEq)]
pub enum SqlValue {
    /// A NULL text (also how dumps show any NULL).
    Null,
    NullInt,
    NullBool,
    Int(i64),
    Text(String),
    Bool(bool),
}

impl From<i64> for SqlValue {
    fn from(value: i64) -> Self {
        SqlValue::Int(value)
    }
}
impl From<u64> for SqlValue {
    fn from(value: u64) -> Self {
        SqlValue::Int(i64::try_from(value).unwrap_or(i64::MAX))
    }
}
impl From<i32> for SqlValue {
    fn from(value: i32) -> Self {
        SqlValue::Int(i64::from(value))
    }
}
impl From<bool> for SqlValue {
    fn from(value: bool) -> Self {
        SqlValue::Bool(value)
    }
}
impl From<&str> for SqlValue {
    fn from(value: &str) -> Self {
        SqlValue::Text(value.to_owned())
    }
}
impl From<String> for SqlValue {
    fn from(value: String) -> Self {
        SqlValue::Text(value)
    }
}
impl From<&String> for SqlValue {
    fn from(value: &String) -> Self {
        SqlValue::Text(value.clone())
    }
}
impl From<Option<i64>> for SqlValue {
    fn from(value: Option<i64>) -> Self {
        value.map_or(SqlValue::NullInt, SqlValue::Int)
    }
}
impl From<Option<bool>> for SqlValue {
    fn from(value: Option<bool>) -> Self {
        value.map_or(SqlValue::NullBool, SqlValue::Bool)
    }
}
impl From<Option<String>> for SqlValue {
    fn from(value: Option<String>) -> Self {
        value.map_or(SqlValue::Null, SqlValue::Text)
    }
}
impl From<Option<&str>> for SqlValue {
    fn from(value: Option<&str>) -> Self {
        value.map_or(SqlValue::Null, Into::into)
    }
}

/// SQLite's durability is a setting of the connection, read at each commit; the one writer
/// connection serves durable writes (appends, the inbox, tokens) and derived ones (read
/// models), so every write states its level as it begins. `FULL` syncs the WAL at commit;
/// `NORMAL` leaves that to the next synced commit or checkpoint (WAL frames are appended in
/// order, so syncing a later commit makes the earlier ones durable too).
pub const SQLITE_DURABLE: &str = "PRAGMA synchronous = FULL";
/// The page cache of a [`SqlDb::scratch_file`], in KiB.
pub const SCRATCH_FILE_CACHE_KIB: u32 = 32 * 1024;
pub(crate) const SQLITE_BEGIN_DURABLE: &str = "PRAGMA synchronous = FULL; BEGIN IMMEDIATE";
const SQLITE_BEGIN_DERIVED: &str = "PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE";
const SQLITE_DERIVED: &str = "PRAGMA synchronous = NORMAL";

/// A pool on either engine.
#[derive(Clone, Debug)]
pub enum SqlDb {
    Sqlite(SqliteDb),
    Postgres(PgPool),
}

/// A transaction on either engine.
pub enum SqlTx {
    Sqlite(SqliteTx),
    Postgres(PgTx),
}

/// A fetched row on either engine, read by column index with the type the caller expects.
pub enum SqlRow {
    Sqlite(Vec<Column>),
    Postgres(PgRow),
}

macro_rules! bind_all {
    ($query:expr, $params:expr) => {{
        let mut query = $query;
        for param in $params {
            query = match param {
                SqlValue::Null => query.bind(None::<String>),
                SqlValue::NullInt => query.bind(None::<i64>),
                SqlValue::NullBool => query.bind(None::<bool>),
                SqlValue::Int(v) => query.bind(*v),
                SqlValue::Text(v) => query.bind(v.as_str()),
                SqlValue::Bool(v) => query.bind(*v),
            };
        }
        query
    }};
}

/// `?, ?, …` for `values`, and the values as its parameters: the inside of an `IN (…)` list,
/// every value bound.
pub fn in_list<'a>(values: impl IntoIterator<Item = &'a str>) -> (String, Vec<SqlValue>) {
    let params: Vec<SqlValue> = values.into_iter().map(SqlValue::from).collect();
    (vec!["?"; params.len()].join(", "), params)
}

/// `(?, ?, …), (?, ?, …), …`: the marks of a multi-row `VALUES` of `rows` rows of `columns`
/// values each.
pub fn value_rows(columns: usize, rows: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

/// Binds one value to a PostgreSQL query.
pub fn bind_postgres<'q>(
    query: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    value: SqlValue,
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    match value {
        SqlValue::Null => query.bind(None::<String>),
        SqlValue::NullInt => query.bind(None::<i64>),
        SqlValue::NullBool => query.bind(None::<bool>),
        SqlValue::Int(v) => query.bind(v),
        SqlValue::Text(v) => query.bind(v),
        SqlValue::Bool(v) => query.bind(v),
    }
}

impl SqlDb {
    /// A private in-memory SQLite with the read-model schema, for as-of computations and tests.
    pub async fn scratch() -> Result<SqlDb, StoreError> {
        let mut connection = Connection::open_in_memory()?;
        for migration in crate::store::migrations::SQLITE.iter() {
            connection.execute_batch(&migration.sql)?;
        }
        Ok(SqlDb::Sqlite(SqliteDb::new(connection)))
    }

    /// A private SQLite database in a new file at `path`, with the read-model schema, for
    /// state that lives only until it is copied elsewhere (a rebuild's fold): no journal and
    /// no syncing, so a crash leaves a file that is simply thrown away, and a page cache of
    /// [`SCRATCH_FILE_CACHE_KIB`] so a large fold stays on disk rather than in memory.
    pub async fn scratch_file(path: &std::path::Path) -> Result<SqlDb, StoreError> {
        let mut connection = Connection::open_unjournaled(path)?;
        // Statement journals (an `ON CONFLICT` that touches several rows) in memory, not in
        // temporary files.
        connection.execute_batch(&format!(
            "PRAGMA cache_size = -{SCRATCH_FILE_CACHE_KIB}; PRAGMA temp_store = MEMORY;"
        ))?;
        for migration in crate::store::migrations::SQLITE.iter() {
            connection.execute_batch(&migration.sql)?;
        }
        Ok(SqlDb::Sqlite(SqliteDb::new(connection)))
    }

    /// A transaction like [`SqlDb::begin_derived`] on SQLite, with the database file at
    /// `path` attached as `schema` for its length: its tables are read as `schema.table`,
    /// while unqualified names still mean this database's own. It is detached when the
    /// transaction ends. (SQLite attaches only outside a transaction, so the attachment is
    /// made on the writer just before `BEGIN`, holding the writer throughout.)
    pub async fn begin_derived_attached(
        &self,
        path: &std::path::Path,
        schema: &str,
    ) -> Result<SqlTx, StoreError> {
        match self {
            SqlDb::Sqlite(db) => Ok(SqlTx::Sqlite(
                SqliteTx::begin_attached(db, path, schema).await?,
            )),
            SqlDb::Postgres(_) => Err(StoreError::InvalidValue(
                "only an SQLite database attaches another file".into(),
            )),
        }
    }

    pub fn engine(&self) -> &'static str {
        match self {
            SqlDb::Sqlite(_) => "sqlite",
            SqlDb::Postgres(_) => "postgres",
        }
    }

    /// A durable transaction: its commit returns once the disk has it.
    pub async fn begin(&self) -> Result<SqlTx, StoreError> {
        Ok(match self {
            SqlDb::Sqlite(db) => SqlTx::Sqlite(SqliteTx::begin(db, true).await?),
            SqlDb::Postgres(pool) => SqlTx::Postgres(PgTx::new(pool.begin().await?, None)),
        })
    }

    /// A transaction for state derived from the log (read models and checkpoints, which
    /// commit together): its commit does not wait for the disk. A crash can lose the last
    /// such commits, never tear one; the projector then reads those events again from the log,
    /// whose appends are always durable. This takes the fsync out of every projection batch.
    pub async fn begin_derived(&self) -> Result<SqlTx, StoreError> {
        Ok(match self {
            SqlDb::Sqlite(db) => SqlTx::Sqlite(SqliteTx::begin(db, false).await?),
            SqlDb::Postgres(pool) => {
                // One round trip: the commit setting, and the transaction's id taken now so it
                // can be registered as one that never inserts events (the store's readers then
                // do not wait for it; `crate::store::postgres`).
                let mut tx = pool.begin().await?;
                let (id,): (String,) = sqlx::query_as(
                    "SELECT pg_current_xact_id()::text \
                     FROM (SELECT set_config('synchronous_commit', 'off', true)) AS setting",
                )
                .fetch_one(&mut *tx)
                .await?;
                let registered = id
                    .parse()
                    .ok()
                    .map(crate::store::postgres::DerivedTransaction::register);
                SqlTx::Postgres(PgTx::new(tx, registered))
            }
        })
    }

    /// One statement in its own durable transaction.
    pub async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<u64, StoreError> {
        Ok(match self {
            SqlDb::Sqlite(db) => db.execute_at(SQLITE_DURABLE, sql, params).await?,
            SqlDb::Postgres(pool) => {
                let sql = to_postgres_placeholders(sql);
                bind_all!(sqlx::query(&sql), params)
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
        })
    }

    /// One statement in its own transaction, for state derived from the log that is written
    /// outside a read-model batch (a process manager's own tables): like
    /// [`SqlDb::begin_derived`], its commit may return before the disk has it. A crash can
    /// lose the last such writes, never reorder them: a later durable commit (an append of
    /// the command the process manager then sent) carries every earlier write to the disk
    /// with it, and a lost write is written again when the process manager reacts again from
    /// its checkpoint, which was saved after it. On SQLite this takes the fsync out of each
    /// such write; PostgreSQL commits it durably all the same (turning that off costs a round
    /// trip of its own).
    pub async fn execute_derived(&self, sql: &str, params: &[SqlValue]) -> Result<u64, StoreError> {
        match self {
            SqlDb::Sqlite(db) => db.execute_at(SQLITE_DERIVED, sql, params).await,
            SqlDb::Postgres(_) => self.execute(sql, params).await,
        }
    }

    pub async fn fetch_all(
        &self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Vec<SqlRow>, StoreError> {
        Ok(match self {
            SqlDb::Sqlite(db) => db.read(sql, params).await?,
            SqlDb::Postgres(pool) => {
                let sql = to_postgres_placeholders(sql);
                bind_all!(sqlx::query(&sql), params)
                    .fetch_all(pool)
                    .await?
                    .into_iter()
                    .map(SqlRow::Postgres)
                    .collect()
            }
        })
    }

    pub async fn fetch_optional(
        &self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Option<SqlRow>, StoreError> {
        Ok(self.fetch_all(sql, params).await?.into_iter().next())
    }
}

impl SqlTx {
    pub async fn execute(&mut self, sql: &str, params: &[SqlValue]) -> Result<u64, StoreError> {
        Ok(match self {
            SqlTx::Sqlite(tx) => tx.connection.execute(sql, &sqlite_params(params))?,
            SqlTx::Postgres(tx) => {
                tx.flush().await?;
                let sql = to_postgres_placeholders(sql);
                bind_all!(sqlx::query(&sql), params)
                    .execute(&mut *tx.tx)
                    .await?
                    .rows_affected()
            }
        })
    }

    /// A write whose row count is not needed. SQLite runs it now. PostgreSQL keeps it, its
    /// values bound ([`postgres`]), and sends every kept write in one round trip
    /// before the transaction's next read, `execute` or commit, so the transaction sees
    /// exactly what it would have seen had each been sent at once; only a failure is reported
    /// later (by the call that sends it). A projection batch makes tens of writes per event:
    /// one round trip each was the whole cost of a read model on PostgreSQL.
    pub async fn write(&mut self, sql: &str, params: &[SqlValue]) -> Result<(), StoreError> {
        match self {
            SqlTx::Sqlite(tx) => {
                tx.connection.execute(sql, &sqlite_params(params))?;
            }
            SqlTx::Postgres(tx) => tx.write(sql, params).await?,
        }
        Ok(())
    }

    pub async fn fetch_all(
        &mut self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Vec<SqlRow>, StoreError> {
        Ok(match self {
            SqlTx::Sqlite(tx) => sqlite_rows(&mut tx.connection, sql, params)?,
            SqlTx::Postgres(tx) => {
                tx.flush().await?;
                let sql = to_postgres_placeholders(sql);
                bind_all!(sqlx::query(&sql), params)
                    .fetch_all(&mut *tx.tx)
                    .await?
                    .into_iter()
                    .map(SqlRow::Postgres)
                    .collect()
            }
        })
    }

    pub async fn fetch_optional(
        &mut self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Option<SqlRow>, StoreError> {
        Ok(self.fetch_all(sql, params).await?.into_iter().next())
    }

    /// Sends `data`, rows in PostgreSQL's `COPY` text format (tab-separated, `\N` for NULL,
    /// one row per line; [`copy_text`] writes a value), into `columns` of `table`: the bulk
    /// load of a rebuild, one stream instead of a statement per row. PostgreSQL only.
    pub async fn copy_in(
        &mut self,
        table: &str,
        columns: &[String],
        data: &[u8],
    ) -> Result<u64, StoreError> {
        match self {
            SqlTx::Sqlite(_) => Err(StoreError::InvalidValue(
                "COPY is PostgreSQL's; SQLite inserts from an attached file".into(),
            )),
            SqlTx::Postgres(tx) => {
                tx.flush().await?;
                let statement = format!("COPY {table} ({}) FROM STDIN", columns.join(", "));
                let mut copy = tx.tx.copy_in_raw(&statement).await?;
                if let Err(error) = copy.send(data).await {
                    let _ = copy.abort("the rows could not be sent").await;
                    return Err(error.into());
                }
                Ok(copy.finish().await?)
            }
        }
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            SqlTx::Sqlite(tx) => tx.finish("COMMIT")?,
            // The registration ends once the commit has returned.
            SqlTx::Postgres(mut tx) => {
                tx.flush().await?;
                tx.tx.commit().await?
            }
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<(), StoreError> {
        match self {
            SqlTx::Sqlite(tx) => tx.finish("ROLLBACK")?,
            SqlTx::Postgres(tx) => tx.tx.rollback().await?,
        }
        Ok(())
    }
}

impl SqlRow {
    /// Number of columns.
    pub fn len(&self) -> usize {
        match self {
            SqlRow::Sqlite(row) => row.len(),
            SqlRow::Postgres(row) => row.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Any column as a [`SqlValue`], whatever its type, normalised so both engines compare
    /// equal: every NULL is `Null`, booleans are `Int(0 | 1)` (SQLite stores them so).
    pub fn value(&self, index: usize) -> Result<SqlValue, StoreError> {
        let row = match self {
            SqlRow::Sqlite(row) => {
                return Ok(match sqlite_column(row, index)? {
                    Column::Null => SqlValue::Null,
                    Column::Int(v) => SqlValue::Int(*v),
                    Column::Real(v) => SqlValue::Text(v.to_string()),
                    Column::Text(v) => SqlValue::Text(v.clone()),
                    Column::Blob(v) => SqlValue::Text(hex::encode(v)),
                })
            }
            SqlRow::Postgres(row) => row,
        };
        if let Ok(value) = row.try_get::<Option<i64>, _>(index) {
            return Ok(value.map_or(SqlValue::Null, SqlValue::Int));
        }
        if let Ok(value) = row.try_get::<Option<String>, _>(index) {
            return Ok(value.map_or(SqlValue::Null, SqlValue::Text));
        }
        let value: Option<bool> = row.try_get(index)?;
        Ok(value.map_or(SqlValue::Null, |v| SqlValue::Int(i64::from(v))))
    }

    /// Every column as a [`SqlValue`] ([`SqlRow::value`]), in order.
    pub fn values(&self) -> Result<Vec<SqlValue>, StoreError> {
        (0..self.len()).map(|i| self.value(i)).collect()
    }

    pub fn i64(&self, index: usize) -> Result<i64, StoreError> {
        match self {
            SqlRow::Sqlite(_) => self
                .opt_i64(index)?
                .ok_or_else(|| sqlite_mismatch(index, "an integer", "NULL")),
            SqlRow::Postgres(row) => Ok(row.try_get(index)?),
        }
    }

    pub fn opt_i64(&self, index: usize) -> Result<Option<i64>, StoreError> {
        Ok(match self {
            SqlRow::Sqlite(row) => match sqlite_column(row, index)? {
                Column::Null => None,
                Column::Int(v) => Some(*v),
                other => return Err(sqlite_mismatch(index, "an integer", other)),
            },
            SqlRow::Postgres(row) => row.try_get(index)?,
        })
    }

    pub fn text(&self, index: usize) -> Result<String, StoreError> {
        match self {
            SqlRow::Sqlite(_) => self
                .opt_text(index)?
                .ok_or_else(|| sqlite_mismatch(index, "text", "NULL")),
            SqlRow::Postgres(row) => Ok(row.try_get(index)?),
        }
    }

    pub fn opt_text(&self, index: usize) -> Result<Option<String>, StoreError> {
        Ok(match self {
            SqlRow::Sqlite(row) => match sqlite_column(row, index)? {
                Column::Null => None,
                Column::Text(v) => Some(v.clone()),
                other => return Err(sqlite_mismatch(index, "text", other)),
            },
            SqlRow::Postgres(row) => row.try_get(index)?,
        })
    }

    pub fn bool(&self, index: usize) -> Result<bool, StoreError> {
        Ok(match self {
            SqlRow::Sqlite(row) => match sqlite_column(row, index)? {
                Column::Int(v) => *v != 0,
                other => return Err(sqlite_mismatch(index, "a boolean", other)),
            },
            SqlRow::Postgres(row) => row.try_get(index)?,
        })
    }
}

/// Appends `value` to `out` as PostgreSQL's `COPY` text format reads a column of
/// `pg_type` (as `information_schema.columns.data_type` names it): `\N` for NULL, a
/// boolean as `t`/`f` (SQLite keeps it as 0/1), text with backslash, tab, newline and
/// carriage return escaped.
pub fn copy_text(out: &mut Vec<u8>, value: &SqlValue, pg_type: &str) {
    match value {
        SqlValue::Null | SqlValue::NullInt | SqlValue::NullBool => out.extend_from_slice(b"\\N"),
        SqlValue::Bool(flag) => out.push(if *flag { b't' } else { b'f' }),
        SqlValue::Int(number) if pg_type == "boolean" => {
            out.push(if *number != 0 { b't' } else { b'f' })
        }
        SqlValue::Int(number) => out.extend_from_slice(number.to_string().as_bytes()),
        SqlValue::Text(text) => {
            for byte in text.bytes() {
                match byte {
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    other => out.push(other),
                }
            }
        }
    }
}
