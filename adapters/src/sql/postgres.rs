//! PostgreSQL transactions for read models, and the writes they keep until their next read.
//!
//! A projection batch makes tens of writes per event; one round trip each was the whole cost
//! of a read model on PostgreSQL. [`SqlTx::write`](super::SqlTx::write) therefore keeps its
//! writes in a [`Batch`] and sends them all in one round trip before the transaction's next
//! read, `execute` or commit, as one call of `revledger_write_batch` (migration `0013`): the
//! batch's statements, which step runs which, and every step's values as one JSON document,
//! all three bound parameters. The function runs the steps in order, each statement with its
//! own values bound (`EXECUTE … USING`), so the transaction sees exactly what it would have
//! seen had each write been sent at once, and no value is ever part of SQL text.
//!
//! Runs of one insert become one statement: consecutive single-row `INSERT … VALUES (…)`
//! writes of the same statement with values of the same types are one step, whose rows the
//! statement reads from the JSON (`jsonb_array_elements`, in order), so PostgreSQL parses,
//! plans and starts it once for a run of thousands (the audit log writes one row per event).

use std::collections::HashMap;
use std::io::Write as _;

use sqlx::{Postgres, Transaction};

use super::placeholders::{mask, placeholders, replace_placeholders};
use super::SqlValue;
use crate::store::StoreError;

/// Deferred writes sent in one round trip at most: enough to take the round trips out of a
/// projection batch, few enough that one message stays a few megabytes.
const MAX_PENDING_WRITES: usize = 4_096;
const MAX_PENDING_BYTES: usize = 4 << 20;

/// The one statement a batch is sent as: the statements, the step list, the values.
const SEND_BATCH: &str = "SELECT revledger_write_batch($1, $2, $3::jsonb)";

/// A PostgreSQL transaction, with the writes it has not sent yet.
pub struct PgTx {
    pub(super) tx: Transaction<'static, Postgres>,
    /// Its registration when it writes derived state only (see `SqlDb::begin_derived`).
    _derived: Option<crate::store::postgres::DerivedTransaction>,
    batch: Batch,
}

impl PgTx {
    pub(super) fn new(
        tx: Transaction<'static, Postgres>,
        derived: Option<crate::store::postgres::DerivedTransaction>,
    ) -> PgTx {
        PgTx {
            tx,
            _derived: derived,
            batch: Batch::default(),
        }
    }

    /// Keeps a write for the next [`Self::flush`], sending the batch first when it is full.
    pub(super) async fn write(&mut self, sql: &str, params: &[SqlValue]) -> Result<(), StoreError> {
        self.batch.push(sql, params)?;
        if self.batch.writes >= MAX_PENDING_WRITES || self.batch.bytes() >= MAX_PENDING_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends the deferred writes, in the order they were made, in one round trip. PostgreSQL
    /// runs them in order inside the transaction; the first that fails aborts it.
    pub(super) async fn flush(&mut self) -> Result<(), StoreError> {
        let Some(sent) = self.batch.take() else {
            return Ok(());
        };
        sqlx::query(SEND_BATCH)
            .bind(sent.statements)
            .bind(sent.steps)
            .bind(sent.values)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }
}

/// Writes kept for one round trip: the distinct statements, as PostgreSQL will run them, and
/// the steps, each a statement and its values. Nothing in it depends on a value but the
/// values' JSON: a statement's text comes from the SQL and its values' types alone.
#[derive(Default)]
pub(super) struct Batch {
    /// Each distinct statement, its placeholders turned into references to its values.
    statements: Vec<String>,
    statement_bytes: usize,
    /// The statements made so far, by SQL text and value types ([`Shape`]).
    shapes: HashMap<String, Vec<Shape>>,
    /// For each step, the number of its statement (from 1, as PostgreSQL counts array
    /// elements).
    steps: Vec<i32>,
    /// The steps' values as a JSON array, one element per step (a row of values, or for a run
    /// of an insert the array of its rows); its closing brackets are written by `take`.
    values: Vec<u8>,
    /// The statement of the last step when it is a run that the next row may join.
    open_run: Option<i32>,
    /// Writes kept, rows joined to a run included.
    writes: usize,
}

/// One SQL text with one list of value types, as a statement of the batch.
struct Shape {
    types: Vec<&'static str>,
    /// Its number in [`Batch::statements`], from 1.
    statement: i32,
    placeholders: usize,
    /// A single-row insert, sent as a run that later rows join.
    run: bool,
}

/// What [`Batch::take`] hands over: the three parameters of `revledger_write_batch`.
pub(super) struct SentBatch {
    pub statements: Vec<String>,
    pub steps: Vec<i32>,
    pub values: String,
}

impl Batch {
    /// Adds a write. Nothing is kept when it fails: its placeholders and values must match in
    /// number, and no text may hold a NUL character, which PostgreSQL text cannot hold.
    pub(super) fn push(&mut self, sql: &str, params: &[SqlValue]) -> Result<(), StoreError> {
        if params
            .iter()
            .any(|value| matches!(value, SqlValue::Text(text) if text.contains('\0')))
        {
            return Err(StoreError::InvalidValue(
                "text contains a NUL character, which PostgreSQL cannot store".to_owned(),
            ));
        }
        let types: Vec<&'static str> = params.iter().map(value_type).collect();
        let (statement, run) = self.shape(sql, &types)?;
        if run && self.open_run == Some(statement) {
            self.values.push(b',');
            write_row(&mut self.values, params);
        } else {
            self.close_run();
            self.values
                .push(if self.steps.is_empty() { b'[' } else { b',' });
            if run {
                self.values.push(b'[');
                self.open_run = Some(statement);
            }
            write_row(&mut self.values, params);
            self.steps.push(statement);
        }
        self.writes += 1;
        Ok(())
    }

    /// The batch so far, leaving it empty; `None` when it holds no write.
    pub(super) fn take(&mut self) -> Option<SentBatch> {
        if self.steps.is_empty() {
            return None;
        }
        self.close_run();
        self.values.push(b']');
        let taken = std::mem::take(self);
        Some(SentBatch {
            statements: taken.statements,
            steps: taken.steps,
            // Only `write_row` writes here, and serde_json writes UTF-8.
            values: String::from_utf8(taken.values).unwrap_or_default(),
        })
    }

    /// How much the batch would send now, roughly.
    fn bytes(&self) -> usize {
        self.statement_bytes + self.values.len()
    }

    fn close_run(&mut self) {
        if self.open_run.take().is_some() {
            self.values.push(b']');
        }
    }

    /// The statement `sql` with values of `types` runs as, made on its first write; and
    /// whether it is a run.
    fn shape(&mut self, sql: &str, types: &[&'static str]) -> Result<(i32, bool), StoreError> {
        // Looked up by `&str` first: the text is copied once per batch, not once per write.
        if let Some(shape) = self
            .shapes
            .get(sql)
            .and_then(|shapes| shapes.iter().find(|shape| shape.types == types))
        {
            return check_count(sql, shape.placeholders, types.len())
                .map(|()| (shape.statement, shape.run));
        }
        let at = placeholders(sql);
        check_count(sql, at.len(), types.len())?;
        let (text, run) = match values_row(sql) {
            Some(row) => (run_statement(sql, &row, &at, types), true),
            None => (step_statement(sql, &at, types), false),
        };
        self.statement_bytes += text.len();
        self.statements.push(text);
        let statement = i32::try_from(self.statements.len())
            .map_err(|_| StoreError::InvalidValue("too many statements in one batch".into()))?;
        self.shapes.entry(sql.to_owned()).or_default().push(Shape {
            types: types.to_vec(),
            statement,
            placeholders: at.len(),
            run,
        });
        Ok((statement, run))
    }
}

fn check_count(sql: &str, placeholders: usize, values: usize) -> Result<(), StoreError> {
    if placeholders == values {
        return Ok(());
    }
    let more = if placeholders > values {
        "more"
    } else {
        "fewer"
    };
    Err(StoreError::InvalidValue(format!(
        "{sql:?} has {more} placeholders than values"
    )))
}

/// `sql` as one step runs it: each placeholder a reference to the step's value, `$1` being
/// the step's JSON array of values (`($1->>0)::int8`).
fn step_statement(sql: &str, at: &[usize], types: &[&'static str]) -> String {
    let mut out = String::with_capacity(sql.len() + at.len() * 16);
    replace_placeholders(&mut out, sql, at, |out, index| {
        write_reference(out, "$1", index, types[index]);
    });
    out
}

/// The single-row insert `sql` as a run of rows: `INSERT INTO t (…) SELECT <the row> FROM
/// jsonb_array_elements($1)` in the rows' order, each placeholder a reference to its row's
/// value. An untyped literal in the row (`'issued'`, `NULL`) still takes its column's type:
/// PostgreSQL resolves an `INSERT … SELECT` list against the target columns as it does a
/// `VALUES` row.
fn run_statement(sql: &str, row: &ValuesRow, at: &[usize], types: &[&'static str]) -> String {
    let mut out = String::with_capacity(sql.len() + at.len() * 24 + 128);
    out.push_str(&sql[..row.keyword]);
    out.push_str(" SELECT ");
    let first = at.partition_point(|&offset| offset <= row.open);
    let inside: Vec<usize> = at[first..]
        .iter()
        .map(|offset| offset - row.open - 1)
        .collect();
    replace_placeholders(
        &mut out,
        &sql[row.open + 1..row.close],
        &inside,
        |out, index| {
            write_reference(out, "revledger_row", first + index, types[first + index]);
        },
    );
    out.push_str(
        " FROM jsonb_array_elements($1) WITH ORDINALITY AS revledger_rows(revledger_row, revledger_n) \
         ORDER BY revledger_n",
    );
    out
}

/// `(array->>index)` with a cast to `sql_type` unless it is text, which `->>` already gives.
fn write_reference(out: &mut String, array: &str, index: usize, sql_type: &str) {
    out.push('(');
    out.push_str(array);
    out.push_str("->>");
    out.push_str(&index.to_string());
    out.push(')');
    if sql_type != "text" {
        out.push_str("::");
        out.push_str(sql_type);
    }
}

/// The SQL type a value is bound as, which a run's rows must agree on down each column.
pub(super) fn value_type(value: &SqlValue) -> &'static str {
    match value {
        SqlValue::Null | SqlValue::Text(_) => "text",
        SqlValue::NullInt | SqlValue::Int(_) => "int8",
        SqlValue::NullBool | SqlValue::Bool(_) => "bool",
    }
}

/// `params` as a JSON array. Text goes through serde_json, which escapes what JSON requires;
/// integers are JSON numbers, which PostgreSQL's `jsonb` keeps exactly (as `numeric`).
fn write_row(out: &mut Vec<u8>, params: &[SqlValue]) {
    out.push(b'[');
    for (index, value) in params.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        // Writing into a Vec cannot fail.
        let _ = match value {
            SqlValue::Null | SqlValue::NullInt | SqlValue::NullBool => out.write_all(b"null"),
            SqlValue::Int(v) => write!(out, "{v}"),
            SqlValue::Bool(v) => out.write_all(if *v { b"true" } else { b"false" }),
            SqlValue::Text(text) => serde_json::to_writer(&mut *out, text).map_err(Into::into),
        };
    }
    out.push(b']');
}

/// Where the parts of a single-row `INSERT INTO … VALUES (…)` are, as byte offsets.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ValuesRow {
    /// The space before `VALUES`.
    keyword: usize,
    /// The row's opening and closing parentheses.
    open: usize,
    close: usize,
}

/// The row of `sql` when `sql` is `INSERT INTO … VALUES (…)` with one row and nothing after
/// it (no `ON CONFLICT`, no `RETURNING`), read as code ([`mask`]), so a parenthesis or a
/// keyword inside a literal or a comment counts for nothing.
pub(super) fn values_row(sql: &str) -> Option<ValuesRow> {
    let masked = mask(sql);
    // Where the code ends: trailing comments are blank once masked.
    let end = masked.iter().rposition(|b| !b.is_ascii_whitespace())? + 1;
    let masked = &masked[..end];
    if !masked.get(..12)?.eq_ignore_ascii_case(b"INSERT INTO ") {
        return None;
    }
    let keyword = masked
        .windows(b" VALUES (".len())
        .position(|window| window == b" VALUES (")?;
    let open = keyword + " VALUES ".len();
    let mut depth = 0usize;
    for (offset, &b) in masked[open..].iter().enumerate() {
        match b {
            b'(' => depth += 1,
            b')' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    let close = open + offset;
                    return (close + 1 == masked.len()).then_some(ValuesRow {
                        keyword,
                        open,
                        close,
                    });
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const INSERT: &str = "INSERT INTO t (a, b, c, d) VALUES (?, COALESCE(?, 0), ?, 'x?')";
    const UPDATE: &str = "UPDATE t SET a = ? /* ? */ WHERE b = ? AND c = 'it''s ?'";

    #[test]
    fn only_a_plain_single_row_insert_is_open_to_more_rows() {
        let plain = "INSERT INTO t (a, b) VALUES (?, COALESCE(?, 0))";
        let row = values_row(plain).expect("a run");
        assert_eq!(&plain[row.open..=row.close], "(?, COALESCE(?, 0))");
        assert_eq!(&plain[..row.keyword], "INSERT INTO t (a, b)");
        let quoted = "INSERT INTO t (a) VALUES ('(', ?) -- )";
        assert!(
            values_row(quoted).is_some(),
            "a parenthesis in a literal is text"
        );
        let lower = "insert into t (a) values (?)";
        assert_eq!(values_row(lower), None, "VALUES is matched as written here");
        for closed in [
            "INSERT INTO t (a) VALUES (?) ON CONFLICT (a) DO NOTHING",
            "INSERT INTO t (a) VALUES (?) RETURNING a",
            "INSERT INTO t (a) SELECT ?",
            "UPDATE t SET a = ? WHERE b IN (VALUES (1))",
            "INSERT INTO t (a) VALUES (?), (?)",
            "INSERT INTO t (a) VALUES (?",
            "INSERT INTO t (a) SELECT ' VALUES (?)'",
        ] {
            assert_eq!(values_row(closed), None, "{closed}");
        }
    }

    #[test]
    fn a_run_reads_each_row_from_its_values_in_order() {
        let mut batch = Batch::default();
        for n in 0..3 {
            batch
                .push(INSERT, &["a".into(), SqlValue::Int(n), SqlValue::NullBool])
                .unwrap();
        }
        batch.push(UPDATE, &[1i64.into(), "b".into()]).unwrap();
        batch
            .push(INSERT, &["late".into(), SqlValue::NullInt, true.into()])
            .unwrap();
        let sent = batch.take().expect("writes");
        assert_eq!(
            sent.statements,
            [
                "INSERT INTO t (a, b, c, d) SELECT (revledger_row->>0), COALESCE((revledger_row->>1)::int8, 0), \
                 (revledger_row->>2)::bool, 'x?' FROM jsonb_array_elements($1) WITH ORDINALITY AS \
                 revledger_rows(revledger_row, revledger_n) ORDER BY revledger_n",
                "UPDATE t SET a = ($1->>0)::int8 /* ? */ WHERE b = ($1->>1) AND c = 'it''s ?'",
            ]
        );
        assert_eq!(sent.steps, [1, 2, 1]);
        assert_eq!(
            sent.values,
            r#"[[["a",0,null],["a",1,null],["a",2,null]],[1,"b"],[["late",null,true]]]"#
        );
        assert!(batch.take().is_none(), "taking empties the batch");
    }

    #[test]
    fn rows_join_only_when_their_values_have_the_same_types() {
        let mut batch = Batch::default();
        batch
            .push(INSERT, &["a".into(), 1i64.into(), true.into()])
            .unwrap();
        batch
            .push(
                INSERT,
                &[SqlValue::Null, SqlValue::NullInt, SqlValue::NullBool],
            )
            .unwrap();
        batch
            .push(INSERT, &[1i64.into(), 1i64.into(), true.into()])
            .unwrap();
        let sent = batch.take().unwrap();
        assert_eq!(
            sent.steps,
            [1, 2],
            "an integer where text was is a statement of its own"
        );
        assert_eq!(sent.statements.len(), 2);
    }

    #[test]
    fn a_write_that_cannot_be_sent_leaves_the_batch_as_it_was() {
        let mut batch = Batch::default();
        batch.push(UPDATE, &[1i64.into(), "b".into()]).unwrap();
        assert!(batch.push(UPDATE, &[1i64.into()]).is_err());
        assert!(batch
            .push(UPDATE, &[1i64.into(), "b".into(), "c".into()])
            .is_err());
        let nul = batch.push(UPDATE, &[1i64.into(), "nul\0".into()]);
        assert!(matches!(nul, Err(StoreError::InvalidValue(ref m)) if m.contains("NUL")));
        assert_eq!(batch.writes, 1);
        assert_eq!(batch.take().unwrap().values, r#"[[1,"b"]]"#);
    }

    fn any_value() -> impl Strategy<Value = SqlValue> {
        prop_oneof![
            Just(SqlValue::Null),
            Just(SqlValue::NullInt),
            Just(SqlValue::NullBool),
            any::<i64>().prop_map(SqlValue::Int),
            any::<bool>().prop_map(SqlValue::Bool),
            "[^\u{0}]{0,24}".prop_map(SqlValue::Text),
            prop::sample::select(vec![
                "'", "''", "\\", "\\'", "$1", "?", "$$", "$a$", "--", "/*", "\"", ";", "E'"
            ])
            .prop_map(|s| SqlValue::Text(s.to_owned())),
        ]
    }

    /// The same value in every position: what the statements must come out as when no
    /// value is part of their text.
    fn neutral(value: &SqlValue) -> SqlValue {
        match value {
            SqlValue::Text(_) => SqlValue::Text(String::new()),
            SqlValue::Int(_) => SqlValue::Int(0),
            SqlValue::Bool(_) => SqlValue::Bool(false),
            null => null.clone(),
        }
    }

    proptest! {
        /// The test that fails if a value reaches the SQL text: the statements a batch sends
        /// are the same whatever its values are (only their types count), and each value is
        /// found again, intact, in the bound JSON.
        #[test]
        fn no_value_is_ever_part_of_the_sql_text(
            rows in prop::collection::vec((any::<bool>(), prop::collection::vec(any_value(), 3)), 1..12)
        ) {
            let mut batch = Batch::default();
            let mut blank = Batch::default();
            for (insert, values) in &rows {
                let (sql, values) = if *insert { (INSERT, &values[..]) } else { (UPDATE, &values[..2]) };
                batch.push(sql, values).unwrap();
                blank.push(sql, &values.iter().map(neutral).collect::<Vec<_>>()).unwrap();
            }
            let sent = batch.take().unwrap();
            let blank = blank.take().unwrap();
            prop_assert_eq!(&sent.statements, &blank.statements);
            prop_assert_eq!(&sent.steps, &blank.steps);
            let json: serde_json::Value = serde_json::from_str(&sent.values).unwrap();
            let mut found = Vec::new();
            for step in json.as_array().unwrap() {
                let step = step.as_array().unwrap();
                match step.first() {
                    Some(serde_json::Value::Array(_)) => found.extend(step.iter().map(|row| row.as_array().unwrap().clone())),
                    _ => found.push(step.clone()),
                }
            }
            prop_assert_eq!(found.len(), rows.len());
            for ((insert, values), row) in rows.iter().zip(&found) {
                let values = if *insert { &values[..] } else { &values[..2] };
                for (value, json) in values.iter().zip(row) {
                    let expected = match value {
                        SqlValue::Null | SqlValue::NullInt | SqlValue::NullBool => serde_json::Value::Null,
                        SqlValue::Int(v) => serde_json::Value::from(*v),
                        SqlValue::Bool(v) => serde_json::Value::from(*v),
                        SqlValue::Text(v) => serde_json::Value::from(v.as_str()),
                    };
                    prop_assert_eq!(json, &expected);
                }
            }
        }
    }
}
