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

use std::sync::Arc;

use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Postgres, Row, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::sqlite_conn::{Column, Connection, Param, SqliteError};
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
pub(crate) const SQLITE_BEGIN_DURABLE: &str = "PRAGMA synchronous = FULL; BEGIN IMMEDIATE";
const SQLITE_BEGIN_DERIVED: &str = "PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE";
const SQLITE_DERIVED: &str = "PRAGMA synchronous = NORMAL";

/// A pool on either engine.
#[derive(Clone, Debug)]
pub enum SqlDb {
    Sqlite(SqliteDb),
    Postgres(PgPool),
}

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
    async fn execute_at(
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
    async fn read(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<SqlRow>, StoreError> {
        match &self.readers {
            Some(readers) => readers.with(|connection| sqlite_rows(connection, sql, params)),
            None => sqlite_rows(&mut *self.lock().await, sql, params),
        }
    }
}

/// A transaction on either engine.
pub enum SqlTx {
    Sqlite(SqliteTx),
    Postgres(PgTx),
}

/// A PostgreSQL transaction, with the writes it has not sent yet ([`SqlTx::write`]).
pub struct PgTx {
    tx: Transaction<'static, Postgres>,
    /// Its registration when it writes derived state only (see `begin_derived`).
    _derived: Option<crate::store::postgres::DerivedTransaction>,
    /// Statements with their values inlined, `;`-separated, sent as one simple query.
    pending: String,
    pending_statements: usize,
    /// The last pending statement when it is a single-row `INSERT … VALUES (…)` that further
    /// rows may join ([`OpenInsert`]).
    open_insert: Option<OpenInsert>,
    /// Statements of the pending batch that repeat ([`Repeats`]); derived transactions only.
    repeats: Option<Box<Repeats>>,
}

/// The statements a pending batch of a derived transaction has written, other than as rows
/// joined to an open insert, by text and value types. A statement written often enough is
/// prepared (`PREPARE`, with its values' types) and from then on sent as `EXECUTE name(…)`:
/// PostgreSQL parses, analyses and plans it once per batch instead of once per row. A
/// read-model batch updates thousands of rows with a handful of statements (a rebuild spent
/// more of PostgreSQL's time parsing and planning them than running them). The batch ends
/// with a `DEALLOCATE` of each name. Names are unique in the process, so a batch that fails
/// before its `DEALLOCATE`s leaves names no later batch uses; the next derived transaction on
/// that connection removes them ([`STRANDED`]).
#[derive(Default)]
struct Repeats {
    seen: std::collections::HashMap<String, Vec<Shape>>,
    /// Names prepared in the pending batch, in order.
    prepared: Vec<String>,
    /// Their `PREPARE` statements. They go out in a message of their own ahead of the batch:
    /// PostgreSQL keeps a prepared statement's whole source message and copies it for every
    /// `EXECUTE`, which inside a batch of megabytes cost more than the statements themselves.
    prepares: String,
}

/// One statement text with one set of value types: how often the batch has it, and its
/// prepared name once it has one.
struct Shape {
    types: Vec<&'static str>,
    written: usize,
    name: Option<String>,
}

/// The write of a statement from which on it is prepared. Preparing costs a round trip of its
/// own ([`Repeats::prepares`]) and a `DEALLOCATE`; a live batch of a few events, which repeats
/// a statement a handful of times, was slower for it.
const PREPARE_AFTER: usize = 16;

/// Prefix of the names [`Repeats`] prepares.
const PREPARED_PREFIX: &str = "revledger_w";

/// Numbers the names [`Repeats`] prepares.
static NEXT_PREPARED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Set when a batch with prepared statements failed: some connection may still hold them, so
/// derived transactions look for and remove such names when they begin.
static STRANDED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// How a write joins the pending batch.
enum Deferred {
    /// As a row of the open insert, starting at this offset of its text.
    Row(usize),
    /// As a statement of its own, values inlined.
    Inline,
    /// As `EXECUTE` of this prepared name (prepared first when new).
    Execute { name: String, new: bool },
}

impl Repeats {
    /// How `sql` with values of `types` goes into the batch, and records that it did.
    fn place(&mut self, sql: &str, types: &[&'static str]) -> Deferred {
        // Looked up by `&str` first: the text is copied once per batch, not once per write.
        let seen = match self.seen.get_mut(sql) {
            Some(seen) => seen,
            None => self.seen.entry(sql.to_owned()).or_default(),
        };
        let index = match seen.iter().position(|shape| shape.types == types) {
            Some(index) => index,
            None => {
                seen.push(Shape {
                    types: types.to_vec(),
                    written: 0,
                    name: None,
                });
                seen.len() - 1
            }
        };
        let shape = &mut seen[index];
        shape.written += 1;
        if shape.name.is_none() && shape.written < PREPARE_AFTER {
            return Deferred::Inline;
        }
        let name = &mut shape.name;
        let new = name.is_none();
        if new {
            let number = NEXT_PREPARED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let fresh = format!("{PREPARED_PREFIX}{number}");
            self.prepared.push(fresh.clone());
            *name = Some(fresh);
        }
        Deferred::Execute {
            name: name.clone().unwrap_or_default(),
            new,
        }
    }

    /// Forgets the last [`Self::place`] of `sql` and `types`, which was not written after all.
    fn unplace(&mut self, sql: &str, types: &[&'static str], placed_new: bool) {
        let Some(seen) = self.seen.get_mut(sql) else {
            return;
        };
        let Some(index) = seen.iter().position(|shape| shape.types == types) else {
            return;
        };
        let shape = &mut seen[index];
        shape.written -= 1;
        if placed_new {
            shape.name = None;
            self.prepared.pop();
        }
    }
}

/// `PREPARE name (types) AS sql`, `sql` with `$n` placeholders.
fn write_prepare(out: &mut String, name: &str, sql: &str, types: &[&str]) {
    out.push_str("PREPARE ");
    out.push_str(name);
    if !types.is_empty() {
        out.push_str(" (");
        out.push_str(&types.join(", "));
        out.push(')');
    }
    out.push_str(" AS ");
    out.push_str(&to_postgres_placeholders(sql));
    out.push_str(";\n");
}

/// `EXECUTE name(values)`, each value an untyped literal ([`write_literal`]): the `PREPARE`
/// declared the types.
fn write_execute(out: &mut String, name: &str, params: &[SqlValue]) -> Result<(), StoreError> {
    out.push_str("EXECUTE ");
    out.push_str(name);
    for (index, value) in params.iter().enumerate() {
        out.push_str(if index == 0 { "(" } else { ", " });
        write_literal(out, value, Typed::No)?;
    }
    if !params.is_empty() {
        out.push(')');
    }
    Ok(())
}

/// A pending `INSERT … VALUES (…)` still open to more rows: the next write of the same
/// statement with values of the same types adds its row to it (`VALUES (…), (…)`) instead of
/// becoming a statement of its own. PostgreSQL then parses, plans and starts one statement
/// for a run of rows: a read-model batch writes runs of thousands (the audit log's one row
/// per event). Rows keep their order; a plain insert of many rows does what the single-row
/// inserts would, and its failure fails the transaction as theirs would.
struct OpenInsert {
    sql: String,
    /// Where the row starts in `sql` ([`values_row`]).
    row: usize,
    types: Vec<&'static str>,
}

/// Where the row of `sql` starts when `sql` is `INSERT INTO … VALUES (…)` and nothing follows
/// the row (no `ON CONFLICT`, no `RETURNING`) and no quote could hide a parenthesis.
fn values_row(sql: &str) -> Option<usize> {
    let trimmed = sql.trim_end();
    if !trimmed.get(..12)?.eq_ignore_ascii_case("INSERT INTO ") || trimmed.contains(['\'', '"']) {
        return None;
    }
    let start = trimmed.find(" VALUES (")? + " VALUES ".len();
    let mut depth = 0usize;
    for (offset, ch) in trimmed[start..].char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return (start + offset + 1 == trimmed.len()).then_some(start);
                }
            }
            _ => {}
        }
    }
    None
}

/// The SQL type a value is written as ([`write_literal`]), which a multi-row `VALUES` needs
/// to agree down each column and a `PREPARE` declares.
fn value_type(value: &SqlValue) -> &'static str {
    match value {
        SqlValue::Null | SqlValue::Text(_) => "text",
        SqlValue::NullInt | SqlValue::Int(_) => "int8",
        SqlValue::NullBool | SqlValue::Bool(_) => "bool",
    }
}

/// [`value_type`] of each value.
fn value_types(params: &[SqlValue]) -> Vec<&'static str> {
    params.iter().map(value_type).collect()
}

/// Deferred statements sent in one round trip at most: enough to take the round trips out of
/// a projection batch, few enough that one message stays a few megabytes.
const MAX_PENDING_STATEMENTS: usize = 4_096;
const MAX_PENDING_BYTES: usize = 4 << 20;

impl PgTx {
    fn new(
        tx: Transaction<'static, Postgres>,
        derived: Option<crate::store::postgres::DerivedTransaction>,
    ) -> PgTx {
        PgTx {
            tx,
            repeats: derived.is_some().then(Box::default),
            _derived: derived,
            pending: String::new(),
            pending_statements: 0,
            open_insert: None,
        }
    }

    /// Sends the deferred writes, in the order they were made, in one round trip. PostgreSQL
    /// runs them in order inside the transaction; the first that fails aborts it.
    async fn flush(&mut self) -> Result<(), StoreError> {
        if self.pending_statements == 0 {
            return Ok(());
        }
        let mut batch = std::mem::take(&mut self.pending);
        self.pending_statements = 0;
        self.open_insert = None;
        let mut prepares = String::new();
        if let Some(repeats) = &mut self.repeats {
            for name in repeats.prepared.drain(..) {
                batch.push_str(";\nDEALLOCATE ");
                batch.push_str(&name);
            }
            prepares = std::mem::take(&mut repeats.prepares);
            repeats.seen.clear();
        }
        // `Executor::execute` (a boxed `Send` future) rather than `RawSql::execute`, whose
        // future the compiler cannot prove `Send` inside the projections' `async_trait`s.
        let connection: &mut sqlx::PgConnection = &mut self.tx;
        let sent = async {
            if !prepares.is_empty() {
                sqlx::Executor::execute(&mut *connection, sqlx::raw_sql(&prepares)).await?;
            }
            sqlx::Executor::execute(connection, sqlx::raw_sql(&batch)).await
        }
        .await;
        if sent.is_err() && !prepares.is_empty() {
            STRANDED.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        sent?;
        Ok(())
    }
}

/// A SQLite transaction: the connection, held until commit or rollback. Dropped while open,
/// it rolls back (as sqlx's transactions do).
pub struct SqliteTx {
    connection: OwnedMutexGuard<Connection>,
    durable: bool,
}

impl SqliteTx {
    async fn begin(db: &SqliteDb, durable: bool) -> Result<SqliteTx, StoreError> {
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
        })
    }

    fn finish(mut self, sql: &'static str) -> Result<(), StoreError> {
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

fn sqlite_rows(
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

/// A fetched row on either engine, read by column index with the type the caller expects.
pub enum SqlRow {
    Sqlite(Vec<Column>),
    Postgres(PgRow),
}

/// Rewrites `?` placeholders to `$1, $2, …` for PostgreSQL. A `?` inside a single-quoted
/// string literal is left alone.
pub fn to_postgres_placeholders(sql: &str) -> Cow<'_, str> {
    if !sql.contains('?') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let Ok(_) = replace_placeholders(&mut out, sql, |out, index| {
        out.push('$');
        out.push_str(&(index + 1).to_string());
        Ok::<(), std::convert::Infallible>(())
    });
    Cow::Owned(out)
}

/// Appends `sql` to `out`, each `?` outside a single-quoted literal replaced by what
/// `placeholder` writes for it (given its index from 0); returns how many there were.
fn replace_placeholders<E>(
    out: &mut String,
    sql: &str,
    mut placeholder: impl FnMut(&mut String, usize) -> Result<(), E>,
) -> Result<usize, E> {
    let mut count = 0;
    let mut in_literal = false;
    for ch in sql.chars() {
        match ch {
            '\'' => {
                in_literal = !in_literal;
                out.push(ch);
            }
            '?' if !in_literal => {
                placeholder(out, count)?;
                count += 1;
            }
            _ => out.push(ch),
        }
    }
    Ok(count)
}

/// Appends `sql` to `out` with each `?` outside a string literal replaced by the next value as
/// a PostgreSQL literal of the type the value would have been bound as (`text`, `int8`,
/// `bool`), so the statement means exactly what it means with bound parameters. Text is an
/// escape string (`E'…'`, quotes and backslashes doubled), whatever
/// `standard_conforming_strings` says; a NUL character, which PostgreSQL text cannot hold, is
/// refused rather than sent.
fn inline_postgres_values(
    out: &mut String,
    sql: &str,
    params: &[SqlValue],
    typed: Typed,
) -> Result<(), StoreError> {
    let count = replace_placeholders(out, sql, |out, index| {
        let value = params.get(index).ok_or_else(|| {
            StoreError::InvalidValue(format!("{sql:?} has more placeholders than values"))
        })?;
        write_literal(out, value, typed)
    })?;
    if count < params.len() {
        return Err(StoreError::InvalidValue(format!(
            "{sql:?} has fewer placeholders than values"
        )));
    }
    Ok(())
}

/// Whether a literal names its type.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Typed {
    /// `'5'::int8`: the statement gives the value no type of its own.
    Yes,
    /// `'5'`: the type comes from elsewhere, a `VALUES` list's first row or a `PREPARE`'s
    /// declared parameters, to which PostgreSQL coerces an untyped literal. Each `::type`
    /// is a catalog lookup and a coercion while PostgreSQL parses the statement; a rebuild's
    /// batch carries hundreds of thousands of them.
    No,
}

/// `value` as a PostgreSQL literal ([`inline_postgres_values`]), of its type
/// ([`value_type`]) when `typed`; `true` and `false` are booleans either way.
fn write_literal(out: &mut String, value: &SqlValue, typed: Typed) -> Result<(), StoreError> {
    use std::fmt::Write as _;
    match value {
        SqlValue::Null | SqlValue::NullInt | SqlValue::NullBool => out.push_str("NULL"),
        SqlValue::Int(v) => {
            let _ = write!(out, "'{v}'");
        }
        SqlValue::Bool(v) => {
            out.push_str(if *v { "true" } else { "false" });
            return Ok(());
        }
        SqlValue::Text(text) => {
            if text.contains('\0') {
                return Err(StoreError::InvalidValue(
                    "text contains a NUL character, which PostgreSQL cannot store".to_owned(),
                ));
            }
            out.push_str("E'");
            for ch in text.chars() {
                match ch {
                    '\'' => out.push_str("''"),
                    '\\' => out.push_str("\\\\"),
                    ch => out.push(ch),
                }
            }
            out.push('\'');
        }
    }
    if typed == Typed::Yes {
        out.push_str("::");
        out.push_str(value_type(value));
    }
    Ok(())
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
        for migration in crate::store::sqlite::MIGRATOR.iter() {
            connection.execute_batch(&migration.sql)?;
        }
        Ok(SqlDb::Sqlite(SqliteDb::new(connection)))
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
                let stranded = STRANDED.load(std::sync::atomic::Ordering::Relaxed);
                let (id, names): (String, Option<String>) = sqlx::query_as(if stranded {
                    "SELECT pg_current_xact_id()::text, (SELECT string_agg(name, ' ') \
                         FROM pg_prepared_statements WHERE starts_with(name, 'revledger_w')) \
                     FROM (SELECT set_config('synchronous_commit', 'off', true)) AS setting"
                } else {
                    "SELECT pg_current_xact_id()::text, NULL::text \
                     FROM (SELECT set_config('synchronous_commit', 'off', true)) AS setting"
                })
                .fetch_one(&mut *tx)
                .await?;
                if let Some(names) = names {
                    // Left by a failed batch on this connection ([`Repeats`]).
                    let deallocate: String = names
                        .split(' ')
                        .map(|name| format!("DEALLOCATE {name};"))
                        .collect();
                    let connection: &mut sqlx::PgConnection = &mut tx;
                    sqlx::Executor::execute(connection, sqlx::raw_sql(&deallocate)).await?;
                }
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

    /// A write whose row count is not needed. SQLite runs it now. PostgreSQL keeps it, with
    /// its values inlined as typed literals, and sends every kept write in one round trip
    /// before the transaction's next read, `execute` or commit, so the transaction sees
    /// exactly what it would have seen had each been sent at once; only a failure is reported
    /// later (by the call that sends it). A projection batch makes tens of writes per event:
    /// one round trip each was the whole cost of a read model on PostgreSQL.
    pub async fn write(&mut self, sql: &str, params: &[SqlValue]) -> Result<(), StoreError> {
        match self {
            SqlTx::Sqlite(tx) => {
                tx.connection.execute(sql, &sqlite_params(params))?;
            }
            SqlTx::Postgres(tx) => {
                let types = value_types(params);
                let joining = tx
                    .open_insert
                    .as_ref()
                    .filter(|open| open.sql == sql && open.types == types)
                    .map(|open| open.row);
                let before = tx.pending.len();
                let placed = match (joining, &mut tx.repeats) {
                    (Some(row), _) => Deferred::Row(row),
                    (None, Some(repeats)) => repeats.place(sql, &types),
                    (None, None) => Deferred::Inline,
                };
                if !matches!(placed, Deferred::Row(_)) {
                    if !tx.pending.is_empty() {
                        tx.pending.push_str(";\n");
                    }
                    tx.open_insert = None;
                }
                let (written, placed_new) = match placed {
                    Deferred::Row(row) => {
                        tx.pending.push_str(",\n");
                        (
                            inline_postgres_values(&mut tx.pending, &sql[row..], params, Typed::No),
                            None,
                        )
                    }
                    Deferred::Inline => {
                        tx.open_insert = values_row(sql).map(|row| OpenInsert {
                            sql: sql.to_owned(),
                            row,
                            types: types.clone(),
                        });
                        let written =
                            inline_postgres_values(&mut tx.pending, sql, params, Typed::Yes);
                        (written, Some(false))
                    }
                    Deferred::Execute { name, new } => {
                        let written = write_execute(&mut tx.pending, &name, params);
                        if let (Ok(()), true, Some(repeats)) = (&written, new, &mut tx.repeats) {
                            write_prepare(&mut repeats.prepares, &name, sql, &types);
                        }
                        (written, Some(new))
                    }
                };
                if let Err(error) = written {
                    // Nothing half-written stays queued, nor counted as written.
                    tx.pending.truncate(before);
                    tx.open_insert = None;
                    if let (Some(repeats), Some(placed_new)) = (&mut tx.repeats, placed_new) {
                        repeats.unplace(sql, &types, placed_new);
                    }
                    return Err(error);
                }
                tx.pending_statements += 1;
                if tx.pending_statements >= MAX_PENDING_STATEMENTS
                    || tx.pending.len() >= MAX_PENDING_BYTES
                {
                    tx.flush().await?;
                }
            }
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

fn sqlite_column(row: &[Column], index: usize) -> Result<&Column, StoreError> {
    row.get(index).ok_or_else(|| {
        StoreError::Sqlite(SqliteError {
            code: libsqlite3_sys::SQLITE_RANGE,
            message: format!("column {index} is out of range ({} columns)", row.len()),
        })
    })
}

fn sqlite_mismatch(index: usize, wanted: &str, found: impl std::fmt::Debug) -> StoreError {
    StoreError::Sqlite(SqliteError {
        code: libsqlite3_sys::SQLITE_MISMATCH,
        message: format!("column {index} is {found:?}, not {wanted}"),
    })
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

    #[test]
    fn only_a_plain_single_row_insert_is_open_to_more_rows() {
        let plain = "INSERT INTO t (a, b) VALUES (?, COALESCE(?, 0))";
        assert_eq!(
            values_row(plain).map(|at| &plain[at..]),
            Some("(?, COALESCE(?, 0))")
        );
        let lower = "insert into t (a) values (?)";
        assert_eq!(values_row(lower), None, "VALUES is matched as written here");
        for closed in [
            "INSERT INTO t (a) VALUES (?) ON CONFLICT (a) DO NOTHING",
            "INSERT INTO t (a) VALUES (?) RETURNING a",
            "INSERT INTO t (a) SELECT ?",
            "INSERT INTO t (a) VALUES ('(')",
            "UPDATE t SET a = ? WHERE b IN (VALUES (1))",
            "INSERT INTO t (a) VALUES (?), (?)",
            "INSERT INTO t (a) VALUES (?",
        ] {
            assert_eq!(values_row(closed), None, "{closed}");
        }
    }

    #[test]
    fn rows_join_only_when_their_values_have_the_same_types() {
        let text = value_types(&[SqlValue::Text("a".into()), SqlValue::NullInt]);
        assert_eq!(text, value_types(&[SqlValue::Null, SqlValue::Int(3)]));
        assert_ne!(text, value_types(&[SqlValue::Int(1), SqlValue::Int(3)]));
        assert_ne!(
            text,
            value_types(&[SqlValue::Text("a".into()), SqlValue::NullBool])
        );
    }
}
