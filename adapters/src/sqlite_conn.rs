//! A SQLite connection called in place: statements run on the calling thread.
//!
//! sqlx gives every SQLite connection a worker thread and sends it each statement, and each row
//! back, over channels. On the write path that hop is most of the cost: profiles of the
//! lifecycle benchmark spent about 45% of the CPU in the kernel waking those threads, and a
//! projection batch makes several statements per event. The one writer connection of the
//! embedded store (appends, read models, checkpoints, the inbox) is therefore this type: a
//! plain `sqlite3*` behind a `tokio::sync::Mutex`, whose holder calls SQLite directly, with a
//! cache of prepared statements that lives as long as the connection.
//!
//! Only the calls the store and the read models need are wrapped: open, run a script, run one
//! statement with parameters, read rows. Every statement is reset and its bindings cleared
//! before a call returns, so no statement outlives the borrow of its parameters or holds a read
//! open between calls. Errors carry SQLite's extended result code, which is how callers tell a
//! constraint violation from anything else (never by message text).

use std::collections::HashMap;
use std::ffi::{c_char, c_int, CStr, CString};
use std::path::Path;
use std::ptr::{self, NonNull};

use libsqlite3_sys as ffi;

/// How long a write waits for another connection's write lock before failing (the same as the
/// sqlx connections to the file are given).
pub const BUSY_TIMEOUT_MS: c_int = 5_000;

/// Prepared statements kept per connection. The read models' SQL is a fixed set of a few
/// hundred texts; past the limit the cache is emptied rather than grown, so SQL built at run
/// time cannot make it unbounded.
const STATEMENT_CACHE_CAPACITY: usize = 512;

/// SQLite's extended result codes for a violated UNIQUE or PRIMARY KEY constraint.
const SQLITE_CONSTRAINT_UNIQUE: c_int = 2067;
const SQLITE_CONSTRAINT_PRIMARYKEY: c_int = 1555;

/// A failed SQLite call: its extended result code and SQLite's message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("sqlite error {code}: {message}")]
pub struct SqliteError {
    pub code: c_int,
    pub message: String,
}

impl SqliteError {
    fn new(code: c_int, message: impl Into<String>) -> SqliteError {
        SqliteError {
            code,
            message: message.into(),
        }
    }

    /// A UNIQUE or PRIMARY KEY constraint refused the write.
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self.code,
            SQLITE_CONSTRAINT_UNIQUE | SQLITE_CONSTRAINT_PRIMARYKEY
        )
    }
}

/// A parameter to bind, borrowed for the call.
#[derive(Clone, Copy, Debug)]
pub enum Param<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// One column of a fetched row, owned.
#[derive(Clone, Debug, PartialEq)]
pub enum Column {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// An open connection. Not `Sync`: one caller at a time, which the store's mutex guarantees.
///
/// What makes the calls into SQLite sound, named in each `// SAFETY:` comment below:
///
/// - **open handle**: `db` came from a successful `sqlite3_open_v2` and is closed only in
///   `Drop`, so it is an open connection for as long as the `Connection` exists.
/// - **owned statements**: every pointer in `statements` was prepared on `db` and is not
///   finalized; a statement is finalized only as it leaves the map (`finalize_all`, which
///   `Drop` runs before closing), so it is never used after, nor finalized twice.
/// - **idle between calls**: `query` resets every statement it runs and clears its bindings
///   before it returns, whatever happened, so between calls no statement is part way through
///   its rows or holds a pointer into a caller's parameters.
/// - **one thread at a time**: every call that runs a statement takes `&mut self`, and the
///   type is not `Sync`, so no two threads are ever inside the same connection; the library
///   is built thread-safe and opened in multi-thread mode (`SQLITE_OPEN_NOMUTEX`), where that
///   is all SQLite asks.
pub struct Connection {
    db: NonNull<ffi::sqlite3>,
    statements: HashMap<String, NonNull<ffi::sqlite3_stmt>>,
}

// SAFETY: one thread at a time. The library is built thread-safe (SQLITE_THREADSAFE=1) and the
// connection is opened in multi-thread mode, where a connection and its statements may be used
// from any thread as long as no two use them at once. `Connection` is not `Sync`, and the
// statements move with the connection that owns them, so moving it between threads is allowed.
unsafe impl Send for Connection {}

impl Connection {
    /// Opens (creating if missing) the database file at `path`, or a private in-memory
    /// database for `:memory:`, with the settings every writer of the store uses: WAL,
    /// synced commits, foreign keys, and a busy timeout for another process's lock.
    pub fn open(path: &Path) -> Result<Connection, SqliteError> {
        let mut connection =
            Connection::open_with(path, ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE)?;
        let journal = if path == Path::new(":memory:") {
            ""
        } else {
            "PRAGMA journal_mode = WAL;"
        };
        connection.execute_batch(&format!(
            "{journal} PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
        ))?;
        Ok(connection)
    }

    /// Creates the database file at `path` for throwaway state: no journal and no syncing
    /// (a crash may leave it torn; it is then deleted, never read).
    pub fn open_unjournaled(path: &Path) -> Result<Connection, SqliteError> {
        let mut connection =
            Connection::open_with(path, ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE)?;
        connection.execute_batch(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA foreign_keys = ON;",
        )?;
        Ok(connection)
    }

    /// Opens an existing database file for reading only (a reader of the store's log).
    pub fn open_read_only(path: &Path) -> Result<Connection, SqliteError> {
        Connection::open_with(path, ffi::SQLITE_OPEN_READONLY)
    }

    fn open_with(path: &Path, mode: c_int) -> Result<Connection, SqliteError> {
        let text = path.to_str().ok_or_else(|| {
            SqliteError::new(ffi::SQLITE_CANTOPEN, "the database path is not UTF-8")
        })?;
        let name = CString::new(text)
            .map_err(|_| SqliteError::new(ffi::SQLITE_CANTOPEN, "the path contains NUL"))?;
        let flags = mode | ffi::SQLITE_OPEN_NOMUTEX | ffi::SQLITE_OPEN_EXRESCODE;
        let mut db = ptr::null_mut();
        // SAFETY: `name` is a NUL-terminated C string that outlives the call, `db` a valid place
        // for the handle (which SQLite sets even on failure, and which is then closed by the
        // `Connection` built from it below), and no VFS name is given.
        let rc = unsafe { ffi::sqlite3_open_v2(name.as_ptr(), &mut db, flags, ptr::null()) };
        let Some(db) = NonNull::new(db) else {
            return Err(SqliteError::new(
                rc,
                "sqlite could not allocate a connection",
            ));
        };
        let connection = Connection {
            db,
            statements: HashMap::new(),
        };
        if rc != ffi::SQLITE_OK {
            return Err(connection.error(rc));
        }
        // SAFETY: open handle (the open just succeeded); no statement exists yet.
        unsafe { ffi::sqlite3_busy_timeout(connection.db.as_ptr(), BUSY_TIMEOUT_MS) };
        Ok(connection)
    }

    /// A private in-memory database.
    pub fn open_in_memory() -> Result<Connection, SqliteError> {
        Connection::open(Path::new(":memory:"))
    }

    /// Runs a script of statements without parameters (pragmas, `BEGIN`, migrations).
    pub fn execute_batch(&mut self, sql: &str) -> Result<(), SqliteError> {
        let text = CString::new(sql)
            .map_err(|_| SqliteError::new(ffi::SQLITE_MISUSE, "the SQL contains NUL"))?;
        // SAFETY: open handle; one thread at a time (`&mut self`); `text` is a NUL-terminated
        // C string alive for the call; no callback is given, so no user data is passed, and no
        // error-message pointer, so SQLite allocates nothing for us to free.
        let rc = unsafe {
            ffi::sqlite3_exec(
                self.db.as_ptr(),
                text.as_ptr(),
                None,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        self.check(rc)
    }

    /// Runs one statement to completion; the number of rows it changed.
    pub fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, SqliteError> {
        self.query(sql, params, |_| Ok::<_, SqliteError>(()))?;
        // SAFETY: open handle; one thread at a time (`&mut self`), so the count is this
        // statement's.
        let changes = unsafe { ffi::sqlite3_changes64(self.db.as_ptr()) };
        Ok(u64::try_from(changes).unwrap_or(0))
    }

    /// Runs one statement, handing each row to `on_row`; an error from it (of the caller's own
    /// type) stops the statement and is returned as it is.
    pub fn query<E, F>(&mut self, sql: &str, params: &[Param<'_>], mut on_row: F) -> Result<(), E>
    where
        E: From<SqliteError>,
        F: FnMut(&Row<'_>) -> Result<(), E>,
    {
        let statement = self.prepare(sql)?;
        let result = self.run(statement, params, &mut on_row);
        // SAFETY: owned statements (`statement` came from `prepare` and nothing has finalized it
        // since: `run` cannot reach the cache). This keeps the connection idle between calls:
        // resetting ends the statement's read, clearing drops the bindings.
        unsafe {
            ffi::sqlite3_reset(statement.as_ptr());
            ffi::sqlite3_clear_bindings(statement.as_ptr());
        }
        result
    }

    /// What `read` makes of the statement's first row; `None` when it returns no row.
    pub fn query_first<T, E, F>(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        mut read: F,
    ) -> Result<Option<T>, E>
    where
        E: From<SqliteError>,
        F: FnMut(&Row<'_>) -> Result<T, E>,
    {
        let mut first = None;
        self.query(sql, params, |row| {
            if first.is_none() {
                first = Some(read(row)?);
            }
            Ok::<_, E>(())
        })?;
        Ok(first)
    }

    /// Every row of one statement, each as its columns.
    pub fn fetch_all(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<Vec<Column>>, SqliteError> {
        let mut rows = Vec::new();
        self.query(sql, params, |row| {
            rows.push(
                (0..row.len())
                    .map(|i| row.column(i))
                    .collect::<Result<_, SqliteError>>()?,
            );
            Ok::<_, SqliteError>(())
        })?;
        Ok(rows)
    }

    /// Whether no transaction is open.
    pub fn is_autocommit(&self) -> bool {
        // SAFETY: open handle; reading the autocommit flag changes nothing, and the type is not
        // `Sync`, so `&self` is still one thread at a time.
        unsafe { ffi::sqlite3_get_autocommit(self.db.as_ptr()) != 0 }
    }

    fn run<E: From<SqliteError>>(
        &mut self,
        statement: NonNull<ffi::sqlite3_stmt>,
        params: &[Param<'_>],
        on_row: &mut dyn FnMut(&Row<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let stmt = statement.as_ptr();
        // SAFETY: owned statements (`statement` came from `prepare` in this same call).
        let expected = unsafe { ffi::sqlite3_bind_parameter_count(stmt) };
        if usize::try_from(expected).ok() != Some(params.len()) {
            return Err(SqliteError::new(
                ffi::SQLITE_RANGE,
                format!(
                    "the statement takes {expected} parameters, {} given",
                    params.len()
                ),
            )
            .into());
        }
        for (index, param) in params.iter().enumerate() {
            let at = c_int::try_from(index + 1).unwrap_or(c_int::MAX);
            // SAFETY: owned statements; idle between calls, so the statement is reset and may be
            // bound; `at` is in 1..=parameter count (checked above). Text and blobs are given
            // with their exact length and copied by SQLite (SQLITE_TRANSIENT), so no pointer
            // into `params` is kept past this call; text is UTF-8, as `&str` guarantees.
            let rc = unsafe {
                match param {
                    Param::Null => ffi::sqlite3_bind_null(stmt, at),
                    Param::Int(value) => ffi::sqlite3_bind_int64(stmt, at, *value),
                    Param::Text(text) => ffi::sqlite3_bind_text64(
                        stmt,
                        at,
                        text.as_ptr().cast::<c_char>(),
                        text.len() as u64,
                        ffi::SQLITE_TRANSIENT(),
                        ffi::SQLITE_UTF8 as u8,
                    ),
                    Param::Blob(bytes) => ffi::sqlite3_bind_blob64(
                        stmt,
                        at,
                        bytes.as_ptr().cast(),
                        bytes.len() as u64,
                        ffi::SQLITE_TRANSIENT(),
                    ),
                }
            };
            self.check(rc)?;
        }
        loop {
            // SAFETY: owned statements, every parameter bound above; one thread at a time
            // (`&mut self`), and `on_row` cannot reach the connection (it is borrowed here),
            // so nothing resets or finalizes the statement between steps.
            match unsafe { ffi::sqlite3_step(stmt) } {
                ffi::SQLITE_ROW => on_row(&Row {
                    stmt: statement,
                    _connection: std::marker::PhantomData,
                })?,
                ffi::SQLITE_DONE => return Ok(()),
                rc => return Err(self.error(rc).into()),
            }
        }
    }

    /// The cached statement for `sql`, prepared on first use.
    fn prepare(&mut self, sql: &str) -> Result<NonNull<ffi::sqlite3_stmt>, SqliteError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(*statement);
        }
        if self.statements.len() >= STATEMENT_CACHE_CAPACITY {
            self.finalize_all();
        }
        let length = c_int::try_from(sql.len())
            .map_err(|_| SqliteError::new(ffi::SQLITE_TOOBIG, "the SQL is too long"))?;
        let mut statement = ptr::null_mut();
        let mut tail: *const c_char = ptr::null();
        // SAFETY: open handle; one thread at a time (`&mut self`); `sql` is valid for `length`
        // bytes (its exact length, so no NUL terminator is read); `statement` and `tail` are
        // valid places for the results, and `tail` points into `sql`, which outlives its use.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                self.db.as_ptr(),
                sql.as_ptr().cast::<c_char>(),
                length,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut statement,
                &mut tail,
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(self.error(rc));
        }
        let Some(statement) = NonNull::new(statement) else {
            return Err(SqliteError::new(
                ffi::SQLITE_MISUSE,
                "the SQL holds no statement",
            ));
        };
        let consumed = (tail as usize).saturating_sub(sql.as_ptr() as usize);
        if !sql[consumed.min(sql.len())..]
            .trim()
            .trim_matches(';')
            .trim()
            .is_empty()
        {
            // SAFETY: owned statements holds for the map; this statement was just prepared on
            // the open handle, never entered the map and is finalized once, here.
            unsafe { ffi::sqlite3_finalize(statement.as_ptr()) };
            return Err(SqliteError::new(
                ffi::SQLITE_MISUSE,
                "one statement expected; use execute_batch for scripts",
            ));
        }
        self.statements.insert(sql.to_owned(), statement);
        Ok(statement)
    }

    fn finalize_all(&mut self) {
        for (_, statement) in self.statements.drain() {
            // SAFETY: owned statements: each leaves the map as it is finalized, so once; and idle
            // between calls: no statement is mid-step (this runs from `prepare`, before a
            // statement is run, and from `Drop`).
            unsafe { ffi::sqlite3_finalize(statement.as_ptr()) };
        }
    }

    fn check(&self, rc: c_int) -> Result<(), SqliteError> {
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(self.error(rc))
        }
    }

    fn error(&self, rc: c_int) -> SqliteError {
        // SAFETY: open handle; one thread at a time, so the last error is this call's. The
        // message is a NUL-terminated string owned by SQLite, valid until the next call on the
        // connection, and copied before this block ends.
        let (code, message) = unsafe {
            let code = ffi::sqlite3_extended_errcode(self.db.as_ptr());
            let message = ffi::sqlite3_errmsg(self.db.as_ptr());
            let message = if message.is_null() {
                String::new()
            } else {
                CStr::from_ptr(message).to_string_lossy().into_owned()
            };
            (code, message)
        };
        // The connection's last error is the call's unless the call's code is its own (the
        // primary code of `rc` differs, as for SQLITE_MISUSE).
        let code = if code & 0xff == rc & 0xff { code } else { rc };
        SqliteError::new(code, message)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.finalize_all();
        // SAFETY: open handle, closed once, here, as the `Connection` ends; owned statements:
        // `finalize_all` above finalized every statement (the only objects this type creates),
        // so the close succeeds and nothing refers to the handle afterwards.
        unsafe { ffi::sqlite3_close(self.db.as_ptr()) };
    }
}

/// The current row of a running statement.
///
/// **On a row**: a `Row` exists only inside `Connection::run`, handed to the caller's
/// callback while `stmt`'s last `sqlite3_step` returned `SQLITE_ROW`; the callback cannot
/// reach the connection (`run` holds it mutably, the lifetime `'a`), so nothing steps, resets
/// or finalizes `stmt` while the `Row` lives. What a `Row` lends (text, blobs) is borrowed
/// from it, so it cannot outlive the row either.
pub struct Row<'a> {
    stmt: NonNull<ffi::sqlite3_stmt>,
    _connection: std::marker::PhantomData<&'a mut Connection>,
}

impl Row<'_> {
    /// Number of columns.
    pub fn len(&self) -> usize {
        // SAFETY: on a row (`stmt` is a live statement).
        let count = unsafe { ffi::sqlite3_column_count(self.stmt.as_ptr()) };
        usize::try_from(count).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Column `index` in its stored type.
    pub fn column(&self, index: usize) -> Result<Column, SqliteError> {
        let at = self.index(index)?;
        let stmt = self.stmt.as_ptr();
        // SAFETY: on a row, and `at` is below the column count (`index`). Text and blobs are
        // read by `text_at` and `blob_at`, only for a column of that type, so no conversion
        // moves them, and are copied before this block ends.
        unsafe {
            Ok(match ffi::sqlite3_column_type(stmt, at) {
                ffi::SQLITE_NULL => Column::Null,
                ffi::SQLITE_INTEGER => Column::Int(ffi::sqlite3_column_int64(stmt, at)),
                ffi::SQLITE_FLOAT => Column::Real(ffi::sqlite3_column_double(stmt, at)),
                ffi::SQLITE_TEXT => Column::Text(self.text_at(at)?.to_owned()),
                _ => Column::Blob(self.blob_at(at).to_vec()),
            })
        }
    }

    /// An INTEGER column; `None` when NULL, an error for any other type.
    pub fn opt_i64(&self, index: usize) -> Result<Option<i64>, SqliteError> {
        match self.column_type(index)? {
            (ffi::SQLITE_NULL, _) => Ok(None),
            // SAFETY: on a row, `at` checked by `column_type`; an integer needs no pointer.
            (ffi::SQLITE_INTEGER, at) => Ok(Some(unsafe {
                ffi::sqlite3_column_int64(self.stmt.as_ptr(), at)
            })),
            (other, _) => Err(mismatch(index, "INTEGER", other)),
        }
    }

    pub fn i64(&self, index: usize) -> Result<i64, SqliteError> {
        self.opt_i64(index)?
            .ok_or_else(|| mismatch(index, "INTEGER", ffi::SQLITE_NULL))
    }

    /// A TEXT column, borrowed until the next row; `None` when NULL.
    pub fn opt_text(&self, index: usize) -> Result<Option<&str>, SqliteError> {
        match self.column_type(index)? {
            (ffi::SQLITE_NULL, _) => Ok(None),
            (ffi::SQLITE_TEXT, at) => self.text_at(at).map(Some),
            (other, _) => Err(mismatch(index, "TEXT", other)),
        }
    }

    pub fn text(&self, index: usize) -> Result<&str, SqliteError> {
        self.opt_text(index)?
            .ok_or_else(|| mismatch(index, "TEXT", ffi::SQLITE_NULL))
    }

    /// A BLOB column, borrowed until the next row; `None` when NULL.
    pub fn opt_blob(&self, index: usize) -> Result<Option<&[u8]>, SqliteError> {
        match self.column_type(index)? {
            (ffi::SQLITE_NULL, _) => Ok(None),
            (ffi::SQLITE_BLOB, at) => Ok(Some(self.blob_at(at))),
            (other, _) => Err(mismatch(index, "BLOB", other)),
        }
    }

    fn column_type(&self, index: usize) -> Result<(c_int, c_int), SqliteError> {
        let at = self.index(index)?;
        // SAFETY: on a row, and `at` is below the column count (`index`).
        Ok((
            unsafe { ffi::sqlite3_column_type(self.stmt.as_ptr(), at) },
            at,
        ))
    }

    fn index(&self, index: usize) -> Result<c_int, SqliteError> {
        if index >= self.len() {
            return Err(SqliteError::new(
                ffi::SQLITE_RANGE,
                format!("column {index} is out of range ({} columns)", self.len()),
            ));
        }
        Ok(c_int::try_from(index).unwrap_or(c_int::MAX))
    }

    fn text_at(&self, at: c_int) -> Result<&str, SqliteError> {
        // SAFETY: on a row, and callers pass only a TEXT column's checked index. For such a
        // column `column_text` then `column_bytes` (in that order, as SQLite asks) give the
        // UTF-8 text and its length without a conversion; the bytes stay valid until the row
        // changes, which cannot happen while `self` is borrowed, and the slice borrows `self`.
        let bytes = unsafe {
            let data = ffi::sqlite3_column_text(self.stmt.as_ptr(), at);
            let length = ffi::sqlite3_column_bytes(self.stmt.as_ptr(), at);
            if data.is_null() {
                &[][..]
            } else {
                std::slice::from_raw_parts(data, usize::try_from(length).unwrap_or(0))
            }
        };
        std::str::from_utf8(bytes)
            .map_err(|e| SqliteError::new(ffi::SQLITE_MISMATCH, format!("column {at}: {e}")))
    }

    fn blob_at(&self, at: c_int) -> &[u8] {
        // SAFETY: on a row, and callers pass only a BLOB column's checked index: `column_blob`
        // then `column_bytes` give its bytes without a conversion, valid while `self` is
        // borrowed, as in `text_at`.
        unsafe {
            let data = ffi::sqlite3_column_blob(self.stmt.as_ptr(), at);
            let length = ffi::sqlite3_column_bytes(self.stmt.as_ptr(), at);
            if data.is_null() {
                &[]
            } else {
                std::slice::from_raw_parts(data.cast::<u8>(), usize::try_from(length).unwrap_or(0))
            }
        }
    }
}

fn mismatch(index: usize, wanted: &str, found: c_int) -> SqliteError {
    let found = match found {
        ffi::SQLITE_NULL => "NULL",
        ffi::SQLITE_INTEGER => "INTEGER",
        ffi::SQLITE_FLOAT => "REAL",
        ffi::SQLITE_TEXT => "TEXT",
        _ => "BLOB",
    };
    SqliteError::new(
        ffi::SQLITE_MISMATCH,
        format!("column {index} is {found}, not {wanted}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> Connection {
        let mut db = Connection::open_in_memory().expect("open");
        db.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE, data BLOB, score REAL)",
        )
        .expect("create");
        db
    }

    #[test]
    fn rows_come_back_in_their_stored_types() {
        let mut db = memory();
        let inserted = db
            .execute(
                "INSERT INTO t (id, name, data, score) VALUES (?, ?, ?, 1.5), (?, ?, ?, NULL)",
                &[
                    Param::Int(1),
                    Param::Text("one"),
                    Param::Blob(&[1, 2]),
                    Param::Int(2),
                    Param::Null,
                    Param::Null,
                ],
            )
            .expect("insert");
        assert_eq!(inserted, 2);
        let rows = db
            .fetch_all("SELECT id, name, data, score FROM t ORDER BY id", &[])
            .expect("select");
        assert_eq!(
            rows,
            vec![
                vec![
                    Column::Int(1),
                    Column::Text("one".into()),
                    Column::Blob(vec![1, 2]),
                    Column::Real(1.5)
                ],
                vec![Column::Int(2), Column::Null, Column::Null, Column::Null],
            ]
        );
    }

    #[test]
    fn a_cached_statement_runs_again_with_new_parameters() {
        let mut db = memory();
        for id in 0..10 {
            db.execute(
                "INSERT INTO t (id, name) VALUES (?, ?)",
                &[Param::Int(id), Param::Text(&format!("n{id}"))],
            )
            .expect("insert");
        }
        let mut seen = Vec::new();
        db.query(
            "SELECT name FROM t WHERE id >= ? ORDER BY id",
            &[Param::Int(8)],
            |row| {
                seen.push(row.text(0)?.to_owned());
                Ok::<_, SqliteError>(())
            },
        )
        .expect("select");
        assert_eq!(seen, ["n8", "n9"]);
        assert_eq!(db.statements.len(), 2);
    }

    #[test]
    fn a_unique_violation_is_told_by_its_code_and_the_connection_goes_on() {
        let mut db = memory();
        db.execute("INSERT INTO t (id, name) VALUES (1, 'a')", &[])
            .expect("first");
        let error = db
            .execute("INSERT INTO t (id, name) VALUES (2, 'a')", &[])
            .expect_err("duplicate name");
        assert!(error.is_unique_violation(), "{error:?}");
        let error = db
            .execute("INSERT INTO t (id, name) VALUES (1, 'b')", &[])
            .expect_err("duplicate id");
        assert!(error.is_unique_violation(), "{error:?}");
        assert_eq!(db.execute("DELETE FROM t", &[]).expect("delete"), 1);
    }

    #[test]
    fn wrong_types_parameter_counts_and_scripts_are_errors_not_guesses() {
        let mut db = memory();
        db.execute("INSERT INTO t (id, name) VALUES (1, 'a')", &[])
            .expect("insert");
        let result = db
            .query_first("SELECT name, id FROM t", &[], |row| {
                Ok::<_, SqliteError>((
                    row.i64(0).is_err(),
                    row.text(1).is_err(),
                    row.opt_text(0)?.map(str::to_owned),
                ))
            })
            .expect("select");
        assert_eq!(result, Some((true, true, Some("a".to_owned()))));
        let none = db
            .query_first("SELECT id FROM t WHERE id = 2", &[], |row| row.i64(0))
            .expect("select nothing");
        assert_eq!(none, None);
        let error = db.execute("SELECT ?", &[]).expect_err("missing parameter");
        assert_eq!(error.code, ffi::SQLITE_RANGE);
        let error = db
            .execute("SELECT 1; SELECT 2", &[])
            .expect_err("two statements");
        assert_eq!(error.code, ffi::SQLITE_MISUSE);
        let error = db.execute("SELEKT 1", &[]).expect_err("syntax");
        assert_eq!(error.code, ffi::SQLITE_ERROR, "{error}");
    }

    #[test]
    fn the_statement_cache_is_bounded() {
        let mut db = memory();
        for i in 0..(STATEMENT_CACHE_CAPACITY + 10) {
            db.execute(&format!("SELECT {i}"), &[]).expect("select");
        }
        assert!(db.statements.len() <= STATEMENT_CACHE_CAPACITY);
    }
}
