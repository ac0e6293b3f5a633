//! Work sent in batches, on both engines: writes a transaction defers until its next read, and
//! process managers run as one group.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adapters::sql::SqlValue;
use adapters::store::{Checkpoint, RecordedEvent, StoreError, MAX_READ_BATCH};
use app::handlers::Handlers;
use app::process::{Context, ProcessManager, ProcessRunner, BATCH_SIZE};
use async_trait::async_trait;
use projections::runtime::RETRY_DELAY;
use projections::ProjectionError;

use crate::helpers::{Engine, TestDb};
use crate::history::Generator;

crate::on_both_engines!(
    deferred_writes_are_seen_by_the_next_read_and_keep_every_character,
    a_failing_deferred_write_fails_the_transaction_and_leaves_nothing,
    a_process_group_gives_each_member_its_own_events_and_a_failing_member_holds_back_only_itself,
    a_derived_write_is_read_back_and_a_read_does_not_wait_for_an_open_write,
    runs_of_one_insert_keep_every_row_in_order_between_other_writes,
    repeated_statements_run_in_order_and_leave_nothing_prepared,
    every_value_comes_back_as_it_was_written_whichever_way_it_was_written,
);

const INSERT_REJECTION: &str = "INSERT INTO process_rejections (process, command_id, position, \
     event_type, target_stream, reason, recorded_at_us) VALUES (?, ?, ?, ?, ?, ?, ?)";

fn rejection(command_id: &str, reason: &str) -> Vec<SqlValue> {
    vec![
        "test".into(),
        command_id.into(),
        7i64.into(),
        "Tested".into(),
        "stream-1".into(),
        reason.into(),
        i64::MIN.into(),
    ]
}

/// Text that breaks naive quoting: quotes, backslashes, placeholders, a statement separator,
/// a dollar quote, Arabic and an emoji.
const AWKWARD: &str = "it's \\ a 'quoted' \\' back\\\\slash ? $1 $$ ; -- not a comment\n\
     فاتورة ضريبية ✓ 🧾 E'x'";

async fn deferred_writes_are_seen_by_the_next_read_and_keep_every_character(db: &TestDb) {
    let sql = db.store.sql();
    let mut tx = sql.begin_derived().await.unwrap();
    tx.write(INSERT_REJECTION, &rejection("a", AWKWARD))
        .await
        .unwrap();
    tx.write(INSERT_REJECTION, &rejection("b", "second"))
        .await
        .unwrap();
    tx.write(
        "UPDATE process_rejections SET reason = reason || ? WHERE command_id = ?",
        &["!".into(), "b".into()],
    )
    .await
    .unwrap();
    // A read inside the transaction sees the writes before it, in order.
    let seen = tx
        .fetch_all(
            "SELECT command_id, reason, target_stream, recorded_at_us FROM process_rejections \
             ORDER BY command_id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].text(1).unwrap(), AWKWARD);
    assert_eq!(seen[0].text(2).unwrap(), "stream-1");
    assert_eq!(seen[0].i64(3).unwrap(), i64::MIN);
    assert_eq!(seen[1].text(1).unwrap(), "second!");
    // So does `execute`, which returns its count.
    let counted = tx
        .execute("UPDATE process_rejections SET position = position + 1", &[])
        .await
        .unwrap();
    assert_eq!(counted, 2);
    tx.write(
        "DELETE FROM process_rejections WHERE command_id = ?",
        &["b".into()],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let stored = sql
        .fetch_all(
            "SELECT command_id, reason, position FROM process_rejections",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(stored.len(), 1, "the deferred delete was sent at commit");
    assert_eq!(stored[0].text(1).unwrap(), AWKWARD);
    assert_eq!(stored[0].i64(2).unwrap(), 8);

    // Placeholders and values must match in number, before anything is sent.
    let mut tx = sql.begin_derived().await.unwrap();
    assert!(tx
        .write(INSERT_REJECTION, &rejection("c", "x")[..6])
        .await
        .is_err());
    tx.rollback().await.unwrap();
    if db.engine == Engine::Postgres {
        // PostgreSQL text cannot hold a NUL: refused with a typed error, nothing sent.
        let mut tx = sql.begin_derived().await.unwrap();
        let refused = tx
            .write(INSERT_REJECTION, &rejection("d", "nul\0here"))
            .await;
        assert!(
            matches!(refused, Err(StoreError::InvalidValue(ref m)) if m.contains("NUL")),
            "{refused:?}"
        );
        tx.rollback().await.unwrap();
    }
}

/// A process manager's own writes (`execute_derived`) are read back at once outside any
/// transaction, and such a read does not queue behind a write transaction that holds the
/// writer (on SQLite it goes to a read-only connection; it sees what was committed).
async fn a_derived_write_is_read_back_and_a_read_does_not_wait_for_an_open_write(db: &TestDb) {
    let sql = db.store.sql();
    let written = sql
        .execute_derived(INSERT_REJECTION, &rejection("derived", AWKWARD))
        .await
        .unwrap();
    assert_eq!(written, 1);
    let select = "SELECT reason FROM process_rejections WHERE command_id = ?";
    let row = sql
        .fetch_optional(select, &["derived".into()])
        .await
        .unwrap()
        .expect("the derived write is visible to the next read");
    assert_eq!(row.text(0).unwrap(), AWKWARD);

    let mut open = sql.begin().await.unwrap();
    open.execute(INSERT_REJECTION, &rejection("uncommitted", "not yet"))
        .await
        .unwrap();
    let seen = tokio::time::timeout(
        Duration::from_secs(30),
        sql.fetch_all(
            "SELECT command_id FROM process_rejections ORDER BY command_id",
            &[],
        ),
    )
    .await
    .expect("a read outside the transaction must not wait for it to end")
    .unwrap();
    let ids: Vec<String> = seen.iter().map(|row| row.text(0).unwrap()).collect();
    assert_eq!(ids, ["derived"], "only what was committed");
    open.commit().await.unwrap();
    assert_eq!(
        sql.fetch_all("SELECT 1 FROM process_rejections", &[])
            .await
            .unwrap()
            .len(),
        2
    );
}

/// On PostgreSQL a run of the same single-row insert goes out as one multi-row statement;
/// rows must keep their values and order, other statements between them must still run in
/// between, and values of other types in a column must not be forced into one row list.
async fn runs_of_one_insert_keep_every_row_in_order_between_other_writes(db: &TestDb) {
    let sql = db.store.sql();
    let mut tx = sql.begin_derived().await.unwrap();
    for n in 0..300 {
        tx.write(
            INSERT_REJECTION,
            &rejection(&format!("run-{n:03}"), AWKWARD),
        )
        .await
        .unwrap();
        if n == 150 {
            // Between two rows of the run: it must see the 151 rows before it, not the rest.
            tx.write(
                "UPDATE process_rejections SET reason = ? WHERE command_id LIKE 'run-%'",
                &["updated".into()],
            )
            .await
            .unwrap();
        }
    }
    // The same statement with an integer where text was: its own statement.
    let mut odd = rejection("odd", "typed");
    odd[3] = 5i64.into();
    tx.write(INSERT_REJECTION, &odd).await.unwrap();
    let rows = tx
        .fetch_all(
            "SELECT command_id, reason, event_type FROM process_rejections ORDER BY command_id",
            &[],
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(rows.len(), 301);
    assert_eq!(rows[0].text(0).unwrap(), "odd");
    assert_eq!(rows[0].text(2).unwrap(), "5");
    for (n, row) in rows[1..].iter().enumerate() {
        assert_eq!(row.text(0).unwrap(), format!("run-{n:03}"));
        let expected = if n <= 150 { "updated" } else { AWKWARD };
        assert_eq!(row.text(1).unwrap(), expected, "row {n}");
    }
}

/// On PostgreSQL a statement written again in a derived batch is prepared once and executed
/// per row: every execution must run in its place among the other writes, with its own
/// values, and the batch must leave no prepared statement behind on the connection.
async fn repeated_statements_run_in_order_and_leave_nothing_prepared(db: &TestDb) {
    const APPEND: &str = "UPDATE process_rejections SET reason = reason || ? WHERE command_id = ?";
    const MOVE: &str = "UPDATE process_rejections SET position = position + ? WHERE command_id = ?";
    const BUMP_FIRST: &str =
        "UPDATE process_rejections SET position = position + 1000 WHERE command_id = 'r-00'";
    let sql = db.store.sql();
    let mut tx = sql.begin_derived().await.unwrap();
    for n in 0..20 {
        tx.write(INSERT_REJECTION, &rejection(&format!("r-{n:02}"), ""))
            .await
            .unwrap();
    }
    // Enough rounds that each statement is prepared part way (adapters' `PREPARE_AFTER`).
    const ROUNDS: i64 = 20;
    for round in 0..ROUNDS {
        for n in 0..20 {
            let id = format!("r-{n:02}");
            let piece = if n == 7 {
                AWKWARD.to_owned()
            } else {
                round.to_string()
            };
            tx.write(APPEND, &[piece.into(), id.as_str().into()])
                .await
                .unwrap();
            tx.write(MOVE, &[(round * 100 + n).into(), id.into()])
                .await
                .unwrap();
        }
        // No values at all: prepared and executed without a value list.
        tx.write(BUMP_FIRST, &[]).await.unwrap();
        // A row joining nothing between the runs: the insert statement seen before, again.
        tx.write(INSERT_REJECTION, &rejection(&format!("x-{round}"), "late"))
            .await
            .unwrap();
    }
    let rows = tx
        .fetch_all(
            "SELECT command_id, reason, position FROM process_rejections \
             WHERE command_id LIKE 'r-%' ORDER BY command_id",
            &[],
        )
        .await
        .unwrap();
    let late = tx
        .fetch_all(
            "SELECT command_id FROM process_rejections WHERE reason = 'late'",
            &[],
        )
        .await
        .unwrap();
    if db.engine == Engine::Postgres {
        let left = tx
            .fetch_all(
                "SELECT name FROM pg_prepared_statements WHERE starts_with(name, 'revledger_w')",
                &[],
            )
            .await
            .unwrap();
        assert!(left.is_empty(), "the batch deallocates what it prepared");
    }
    tx.commit().await.unwrap();
    assert_eq!(rows.len(), 20);
    assert_eq!(late.len(), ROUNDS as usize);
    let rounds: String = (0..ROUNDS).map(|round| round.to_string()).collect();
    for (n, row) in rows.iter().enumerate() {
        let n = n as i64;
        let expected = if n == 7 {
            AWKWARD.repeat(ROUNDS as usize)
        } else {
            rounds.clone()
        };
        assert_eq!(row.text(1).unwrap(), expected, "row {n}");
        let bumps = if n == 0 { ROUNDS * 1000 } else { 0 };
        // 7 at insert, then round * 100 + n in each round.
        let moved: i64 = (0..ROUNDS).map(|round| round * 100 + n).sum();
        assert_eq!(row.i64(2).unwrap(), 7 + moved + bumps, "row {n}");
    }
}

/// A batch that fails leaves its connection as it found it: nothing prepared, and the next
/// derived transaction there writes and commits as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_failed_batch_leaves_its_connection_ready_for_the_next_transaction() {
    let Some(db) = TestDb::new(Engine::Postgres).await else {
        return;
    };
    // One connection, so the next transaction is on the same session.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&db.url)
        .await
        .unwrap();
    let sql = adapters::sql::SqlDb::Postgres(pool.clone());
    let mut tx = sql.begin_derived().await.unwrap();
    tx.write(INSERT_REJECTION, &rejection("a", "first"))
        .await
        .unwrap();
    for _ in 0..20 {
        tx.write(
            "UPDATE process_rejections SET reason = reason || ? WHERE command_id = ?",
            &["!".into(), "a".into()],
        )
        .await
        .unwrap();
    }
    // The insert again (not joining the first, which the updates closed): its key is taken.
    tx.write(INSERT_REJECTION, &rejection("a", "again"))
        .await
        .unwrap();
    let refused = tx.commit().await;
    assert!(
        matches!(
            refused,
            Err(StoreError::Conflict { .. }) | Err(StoreError::Database(_))
        ),
        "a duplicate key cannot commit: {refused:?}"
    );
    let mut next = sql.begin_derived().await.unwrap();
    let prepared = next
        .fetch_all(
            "SELECT name FROM pg_prepared_statements WHERE from_sql",
            &[],
        )
        .await
        .unwrap();
    assert!(prepared.is_empty(), "a batch prepares nothing by name");
    next.write(INSERT_REJECTION, &rejection("b", "after"))
        .await
        .unwrap();
    next.commit().await.unwrap();
    let rows = sql
        .fetch_all("SELECT command_id FROM process_rejections", &[])
        .await
        .unwrap();
    let ids: Vec<String> = rows.iter().map(|row| row.text(0).unwrap()).collect();
    assert_eq!(ids, ["b"], "nothing of the failed batch is kept");
    pool.close().await;
    db.cleanup().await;
}

/// Texts that break hand-made quoting or placeholder rewriting, each a value of its own.
const AWKWARD_TEXTS: &[&str] = &[
    "",
    "'",
    "''",
    "\\",
    "\\'",
    "it's",
    "$1",
    "$$",
    "$tag$ x $tag$",
    "?",
    "? ?",
    "-- not a comment",
    "/* not a comment",
    "\"",
    "E'\\x'",
    "'); DROP TABLE process_rejections; --",
    "فاتورة ضريبية",
    "🧾 ✓",
    "\t\r\n",
    "\u{7f}\u{1}",
];

/// Integers at the edges: beyond 2^53 a float would round them.
const AWKWARD_INTEGERS: &[i64] = &[
    i64::MIN,
    i64::MIN + 1,
    -1,
    0,
    9_007_199_254_740_993,
    i64::MAX - 1,
    i64::MAX,
];

/// A row of `round_trip`: key, integer, text, boolean.
type RoundTripRow = (i64, Option<i64>, Option<String>, Option<bool>);

/// Every awkward value goes in through each way a value is written (a deferred run of one
/// insert, a deferred single statement, `SqlTx::execute`, `SqlDb::execute`) and comes back
/// equal, and finds its row again when bound in a read.
async fn every_value_comes_back_as_it_was_written_whichever_way_it_was_written(db: &TestDb) {
    let sql = db.store.sql();
    sql.execute(
        "CREATE TABLE round_trip (k BIGINT PRIMARY KEY, n BIGINT, t TEXT, b BOOLEAN)",
        &[],
    )
    .await
    .unwrap();
    const INSERT: &str = "INSERT INTO round_trip (k, n, t, b) VALUES (?, ?, ?, ?)";
    let rows: Vec<RoundTripRow> = (0..AWKWARD_TEXTS.len())
        .map(|i| {
            let n = AWKWARD_INTEGERS[i % AWKWARD_INTEGERS.len()];
            (
                i as i64,
                Some(n),
                Some(AWKWARD_TEXTS[i].to_owned()),
                Some(i % 2 == 0),
            )
        })
        .chain([(1_000, None, None, None)])
        .collect();
    let values = |(k, n, t, b): &RoundTripRow| -> Vec<SqlValue> {
        vec![(*k).into(), (*n).into(), t.clone().into(), (*b).into()]
    };
    let mut tx = sql.begin_derived().await.unwrap();
    for row in &rows {
        // A run of one insert (on PostgreSQL, one statement for all of them).
        tx.write(INSERT, &values(row)).await.unwrap();
    }
    for row in &rows {
        // The same values again, each through a statement of its own, then through execute.
        let (k, n, t, b) = row;
        let shifted = (k + 10_000, *n, t.clone(), *b);
        tx.write(INSERT, &values(&shifted)).await.unwrap();
        tx.write(
            "UPDATE round_trip SET t = ?, n = ?, b = ? WHERE k = ? AND 1 = 1",
            &[
                t.clone().into(),
                (*n).into(),
                (*b).into(),
                (k + 10_000).into(),
            ],
        )
        .await
        .unwrap();
        tx.execute(INSERT, &values(&(k + 20_000, *n, t.clone(), *b)))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    for row in &rows {
        let (k, n, t, b) = row;
        sql.execute(INSERT, &values(&(k + 30_000, *n, t.clone(), *b)))
            .await
            .unwrap();
    }
    let stored = sql
        .fetch_all("SELECT k, n, t, b FROM round_trip ORDER BY k", &[])
        .await
        .unwrap();
    assert_eq!(stored.len(), rows.len() * 4);
    for (index, row) in stored.iter().enumerate() {
        let (k, n, t, b) = &rows[index % rows.len()];
        let k = k + 10_000 * (index / rows.len()) as i64;
        assert_eq!(row.i64(0).unwrap(), k);
        assert_eq!(row.opt_i64(1).unwrap(), *n, "k = {k}");
        assert_eq!(row.opt_text(2).unwrap(), *t, "k = {k}");
        assert_eq!(
            row.value(3).unwrap(),
            b.map_or(SqlValue::Null, |b| SqlValue::Int(i64::from(b))),
            "k = {k}"
        );
    }
    for (k, n, t, _) in rows.iter().filter(|row| row.1.is_some()) {
        let found = sql
            .fetch_all(
                "SELECT k FROM round_trip WHERE t = ? AND n = ? AND k < 10000",
                &[t.clone().into(), (*n).into()],
            )
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{t:?}");
        assert_eq!(found[0].i64(0).unwrap(), *k);
    }
}

async fn a_failing_deferred_write_fails_the_transaction_and_leaves_nothing(db: &TestDb) {
    let sql = db.store.sql();
    let mut tx = sql.begin_derived().await.unwrap();
    tx.write(INSERT_REJECTION, &rejection("a", "first"))
        .await
        .unwrap();
    // The same key again breaks the primary key: SQLite says so now, PostgreSQL when the
    // writes are sent (here at commit). Either way nothing of the transaction is kept.
    let outcome = match tx.write(INSERT_REJECTION, &rejection("a", "again")).await {
        Ok(()) => tx.commit().await,
        Err(error) => {
            tx.rollback().await.unwrap();
            Err(error)
        }
    };
    assert!(outcome.is_err(), "a duplicate key cannot commit");
    let left = sql
        .fetch_all("SELECT command_id FROM process_rejections", &[])
        .await
        .unwrap();
    assert!(left.is_empty(), "nothing of the failed transaction is kept");
}

/// Records the position of every event it sees; fails on one position while told to.
struct Recorder {
    name: &'static str,
    seen: Mutex<Vec<i64>>,
    fail_at: Option<i64>,
    failing: AtomicBool,
}

impl Recorder {
    fn new(name: &'static str, fail_at: Option<i64>) -> Arc<Recorder> {
        Arc::new(Recorder {
            name,
            seen: Mutex::new(Vec::new()),
            fail_at,
            failing: AtomicBool::new(fail_at.is_some()),
        })
    }

    fn seen(&self) -> Vec<i64> {
        self.seen.lock().unwrap().clone()
    }
}

#[async_trait]
impl ProcessManager for Recorder {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn react(&self, _: &Context, event: &RecordedEvent) -> Result<(), ProjectionError> {
        if self.failing.load(Ordering::SeqCst) && self.fail_at == Some(event.position) {
            return Err(ProjectionError::Command("told to fail".into()));
        }
        self.seen.lock().unwrap().push(event.position);
        Ok(())
    }
}

async fn a_process_group_gives_each_member_its_own_events_and_a_failing_member_holds_back_only_itself(
    db: &TestDb,
) {
    let handlers = Handlers::new(db.store.clone());
    let mut generator = Generator::new(handlers.clone(), 11);
    generator.partners().await;
    generator.until(BATCH_SIZE as i64 + 120).await;
    let log: Vec<i64> = db
        .store
        .read_all(Checkpoint::START, MAX_READ_BATCH)
        .await
        .unwrap()
        .iter()
        .map(|event| event.position)
        .collect();
    assert!(log.len() > BATCH_SIZE);

    // `ahead` has already handled the first batch on its own.
    let ahead = Recorder::new("test-ahead", None);
    let alone = ProcessRunner::new(handlers.clone(), ahead.clone());
    assert_eq!(alone.step().await.unwrap(), BATCH_SIZE);
    let fresh = Recorder::new("test-fresh", None);
    let broken = Recorder::new("test-broken", Some(log[9]));
    let members: Vec<Arc<dyn ProcessManager>> = vec![ahead.clone(), fresh.clone(), broken.clone()];
    let group = ProcessRunner::group(handlers.clone(), members);

    // The broken member fails on the tenth event and sits out; the others catch up.
    group.catch_up().await.unwrap();
    assert_eq!(
        ahead.seen(),
        log,
        "each event once, in order, across both runners"
    );
    assert_eq!(fresh.seen(), log);
    assert_eq!(broken.seen(), log[..9]);
    assert!(
        !group.is_caught_up().await.unwrap(),
        "the broken member is behind"
    );
    let checkpoints = db
        .store
        .sql()
        .fetch_all(
            "SELECT name, position FROM projection_checkpoints WHERE name LIKE 'process:test-%' \
             ORDER BY name",
            &[],
        )
        .await
        .unwrap();
    let checkpoints: Vec<(String, i64)> = checkpoints
        .iter()
        .map(|row| (row.text(0).unwrap(), row.i64(1).unwrap()))
        .collect();
    let head = *log.last().unwrap();
    assert_eq!(
        checkpoints,
        vec![
            ("process:test-ahead".to_owned(), head),
            ("process:test-fresh".to_owned(), head),
        ],
        "the broken member's checkpoint never moved"
    );

    // Mended, it retries after its rest, from its own checkpoint: it sees its first nine
    // events again (reactions are idempotent), the others see nothing twice.
    broken.failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(RETRY_DELAY + Duration::from_millis(50)).await;
    group.catch_up().await.unwrap();
    assert!(group.is_caught_up().await.unwrap());
    assert_eq!(broken.seen(), [&log[..9], &log[..]].concat());
    assert_eq!(ahead.seen(), log);
    assert_eq!(fresh.seen(), log);
}
