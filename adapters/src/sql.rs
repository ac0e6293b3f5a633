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

use std::borrow::Cow;
use std::str::FromStr;

use sqlx::postgres::{PgPool, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteRow};
use sqlx::{Postgres, Row, Sqlite, Transaction};

use crate::store::StoreError;

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
const SQLITE_BEGIN_DURABLE: &str = "PRAGMA synchronous = FULL; BEGIN IMMEDIATE";
const SQLITE_BEGIN_DERIVED: &str = "PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE";

/// A pool on either engine.
#[derive(Clone, Debug)]
pub enum SqlDb {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A transaction on either engine.
pub enum SqlTx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// A fetched row on either engine, read by column index with the type the caller expects.
pub enum SqlRow {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

/// Rewrites `?` placeholders to `$1, $2, …` for PostgreSQL. A `?` inside a single-quoted
/// string literal is left alone.
pub fn to_postgres_placeholders(sql: &str) -> Cow<'_, str> {
    if !sql.contains('?') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut index = 0;
    let mut in_literal = false;
    for ch in sql.chars() {
        match ch {
            '\'' => {
                in_literal = !in_literal;
                out.push(ch);
            }
            '?' if !in_literal => {
                index += 1;
                out.push('$');
                out.push_str(&index.to_string());
            }
            _ => out.push(ch),
        }
    }
    Cow::Owned(out)
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

/// Binds one value to a SQLite query (for statements the store runs inside its own
/// transactions).
pub fn bind_sqlite<'q>(
    query: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    value: SqlValue,
) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    match value {
        SqlValue::Null => query.bind(None::<String>),
        SqlValue::NullInt => query.bind(None::<i64>),
        SqlValue::NullBool => query.bind(None::<bool>),
        SqlValue::Int(v) => query.bind(v),
        SqlValue::Text(v) => query.bind(v),
        SqlValue::Bool(v) => query.bind(v),
    }
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
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?;
        // One connection: every connection to `:memory:` is a different database.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        crate::store::sqlite::MIGRATOR.run(&pool).await?;
        Ok(SqlDb::Sqlite(pool))
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
            SqlDb::Sqlite(pool) => SqlTx::Sqlite(pool.begin_with(SQLITE_BEGIN_DURABLE).await?),
            SqlDb::Postgres(pool) => SqlTx::Postgres(pool.begin().await?),
        })
    }

    /// A transaction for state derived from the log (read models and checkpoints, which
    /// commit together): its commit does not wait for the disk. A crash can lose the last
    /// such commits, never tear one; the projector then reads those events again from the log,
    /// whose appends are always durable. This takes the fsync out of every projection batch.
    pub async fn begin_derived(&self) -> Result<SqlTx, StoreError> {
        Ok(match self {
            SqlDb::Sqlite(pool) => SqlTx::Sqlite(pool.begin_with(SQLITE_BEGIN_DERIVED).await?),
            SqlDb::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("SET LOCAL synchronous_commit = off")
                    .execute(&mut *tx)
                    .await?;
                SqlTx::Postgres(tx)
            }
        })
    }

    /// One statement in its own durable transaction.
    pub async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<u64, StoreError> {
        Ok(match self {
            SqlDb::Sqlite(pool) => {
                let mut connection = pool.acquire().await?;
                sqlx::query(SQLITE_DURABLE)
                    .execute(&mut *connection)
                    .await?;
                bind_all!(sqlx::query(sql), params)
                    .execute(&mut *connection)
                    .await?
                    .rows_affected()
            }
            SqlDb::Postgres(pool) => {
                let sql = to_postgres_placeholders(sql);
                bind_all!(sqlx::query(&sql), params)
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
        })
    }

    pub async fn fetch_all(
        &self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Vec<SqlRow>, StoreError> {
        Ok(match self {
            SqlDb::Sqlite(pool) => bind_all!(sqlx::query(sql), params)
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(SqlRow::Sqlite)
                .collect(),
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
            SqlTx::Sqlite(tx) => bind_all!(sqlx::query(sql), params)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
            SqlTx::Postgres(tx) => {
                let sql = to_postgres_placeholders(sql);
                bind_all!(sqlx::query(&sql), params)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected()
            }
        })
    }

    pub async fn fetch_all(
        &mut self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Vec<SqlRow>, StoreError> {
        Ok(match self {
            SqlTx::Sqlite(tx) => bind_all!(sqlx::query(sql), params)
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(SqlRow::Sqlite)
                .collect(),
            SqlTx::Postgres(tx) => {
                let sql = to_postgres_placeholders(sql);
                bind_all!(sqlx::query(&sql), params)
                    .fetch_all(&mut **tx)
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

    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            SqlTx::Sqlite(tx) => tx.commit().await?,
            SqlTx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<(), StoreError> {
        match self {
            SqlTx::Sqlite(tx) => tx.rollback().await?,
            SqlTx::Postgres(tx) => tx.rollback().await?,
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
        if let Ok(value) = self.opt_i64(index) {
            return Ok(value.map_or(SqlValue::Null, SqlValue::Int));
        }
        if let Ok(value) = self.opt_text(index) {
            return Ok(value.map_or(SqlValue::Null, SqlValue::Text));
        }
        let value: Option<bool> = match self {
            SqlRow::Sqlite(row) => row.try_get(index)?,
            SqlRow::Postgres(row) => row.try_get(index)?,
        };
        Ok(value.map_or(SqlValue::Null, |v| SqlValue::Int(i64::from(v))))
    }

    pub fn i64(&self, index: usize) -> Result<i64, StoreError> {
        Ok(match self {
            SqlRow::Sqlite(row) => row.try_get(index)?,
            SqlRow::Postgres(row) => row.try_get(index)?,
        })
    }

    pub fn opt_i64(&self, index: usize) -> Result<Option<i64>, StoreError> {
        Ok(match self {
            SqlRow::Sqlite(row) => row.try_get(index)?,
            SqlRow::Postgres(row) => row.try_get(index)?,
        })
    }

    pub fn text(&self, index: usize) -> Result<String, StoreError> {
        Ok(match self {
            SqlRow::Sqlite(row) => row.try_get(index)?,
            SqlRow::Postgres(row) => row.try_get(index)?,
        })
    }

    pub fn opt_text(&self, index: usize) -> Result<Option<String>, StoreError> {
        Ok(match self {
            SqlRow::Sqlite(row) => row.try_get(index)?,
            SqlRow::Postgres(row) => row.try_get(index)?,
        })
    }

    pub fn bool(&self, index: usize) -> Result<bool, StoreError> {
        Ok(match self {
            SqlRow::Sqlite(row) => row.try_get(index)?,
            SqlRow::Postgres(row) => row.try_get(index)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_marks_become_numbered_placeholders_outside_literals() {
        assert_eq!(
            to_postgres_placeholders("SELECT ? , '?' , ? WHERE a = '?x' AND b = ?"),
            "SELECT $1 , '?' , $2 WHERE a = '?x' AND b = $3"
        );
        assert!(matches!(
            to_postgres_placeholders("SELECT 1"),
            Cow::Borrowed(_)
        ));
    }
}
