//! As-of reads from snapshots (issue 24), on both engines: over a generated history, every
//! read model read as of sampled positions and times from its snapshots equals a full replay
//! (`runtime::as_of_full`): in the rows each table's snapshot rule keeps, in what `render`
//! answers, and in every other query read from an as-of copy (an account's lines, partner
//! statements, the reconciliation page, the audit trail's pages); it still does when a
//! snapshot's body is damaged (its hash no longer matches) or undecodable (its hash does);
//! taking snapshots again takes only what is due; a rebuild deletes a read model's snapshots.
//!
//! The journal is snapshotted here with the newest [`TEST_ACCOUNT_LINES`] lines per account
//! instead of `MAX_ACCOUNT_LINES`, so that a short history trims its accounts (the rule and its
//! code are the same), and its account pages are read that many lines deep.

use std::sync::Arc;

use adapters::sql::{SqlDb, SqlTx};
use adapters::store::{EventStore, RecordedEvent};
use app::handlers::Handlers;
use async_trait::async_trait;
use base64::Engine as _;
use projections::audit_log::{self, AuditLog, AuditQuery};
use projections::ledger::{self, Ledger};
use projections::reconciliation::{report_page, PageRequest};
use projections::runtime::as_of_full;
use projections::snapshots::{self, SnapshotSettings};
use projections::{AsOf, Projection, ProjectionError, Projector, SnapshotKeep};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use sha2::{Digest, Sha256};

use crate::helpers::TestDb;
use crate::history::{run_process_managers, Generator};

crate::on_both_engines!(
    as_of_from_snapshots_equals_a_full_replay_at_sampled_moments_for_every_read_model,
    a_damaged_or_undecodable_snapshot_is_skipped_for_the_one_before,
    taking_snapshots_again_takes_only_what_is_due_and_a_rebuild_deletes_them,
);

/// Events between snapshots in these tests: small, so a short history has many of them.
const EVERY: u64 = 300;

/// Moments sampled per test: each is a full replay and a read from snapshots of every model.
const SAMPLED_POSITIONS: usize = 6;
const SAMPLED_TIMES: usize = 3;

/// A history of every kind of event (process managers' reactions included), and the generator
/// that can go on with it.
async fn history(db: &TestDb, seed: u64, events: i64) -> (Generator, Arc<Handlers>) {
    let handlers = Handlers::new(db.store.clone());
    let mut generator = Generator::new(handlers.clone(), seed);
    generator.partners().await;
    generator.until(events).await;
    run_process_managers(&handlers).await;
    (generator, handlers)
}

/// Lines per account the journal's snapshots keep in these tests.
const TEST_ACCOUNT_LINES: i64 = 4;

/// The journal, with snapshots that keep [`TEST_ACCOUNT_LINES`] lines per account.
struct ShortJournal;

#[async_trait]
impl Projection for ShortJournal {
    fn name(&self) -> &'static str {
        Ledger.name()
    }

    fn tables(&self) -> &'static [&'static str] {
        Ledger.tables()
    }

    async fn apply_batch(
        &self,
        tx: &mut SqlTx,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        Ledger.apply_batch(tx, events).await
    }

    fn folds_money(&self) -> bool {
        Ledger.folds_money()
    }

    fn snapshot_keeps(&self, table: &str) -> SnapshotKeep {
        match Ledger.snapshot_keeps(table) {
            SnapshotKeep::Newest { per, by, .. } => SnapshotKeep::Newest {
                per,
                by,
                rows: TEST_ACCOUNT_LINES,
            },
            rule => rule,
        }
    }

    async fn render(&self, db: &SqlDb) -> Result<serde_json::Value, ProjectionError> {
        Ledger.render(db).await
    }
}

/// Every read model, the journal as [`ShortJournal`].
fn read_models() -> Vec<Arc<dyn Projection>> {
    projections::read_models()
        .into_iter()
        .map(|projection| match projection.name() {
            "ledger" => Arc::new(ShortJournal) as Arc<dyn Projection>,
            _ => projection,
        })
        .collect()
}

/// What an as-of copy of `projection` answers: the rows each of its tables' snapshot rule
/// keeps, its rendering, and the queries the API reads from an as-of copy of it (`asked`).
/// `live` is the live database, from which the audit trail's pages read the rows before a
/// copy's first.
async fn answers(
    projection: &Arc<dyn Projection>,
    db: &SqlDb,
    asked: &Asked,
    live: &SqlDb,
) -> String {
    let mut answers = Vec::new();
    for table in projection.tables() {
        let kept = snapshots::kept_rows(db, projection.as_ref(), table)
            .await
            .unwrap();
        answers.push(format!("{table}: {kept:?}"));
    }
    answers.push(projection.render(db).await.unwrap().to_string());
    match projection.name() {
        "ledger" => {
            for account in &asked.accounts {
                let page = ledger::account(db, account, TEST_ACCOUNT_LINES)
                    .await
                    .unwrap();
                answers.push(page.to_string());
            }
        }
        "partner_statements" => {
            for (partner, month) in &asked.statement_months {
                let statement = projections::statements::statement(db, partner, month)
                    .await
                    .unwrap();
                answers.push(statement.to_string());
            }
            let latest = projections::statements::latest_commissions(db, 20)
                .await
                .unwrap();
            answers.push(format!("{latest:?}"));
        }
        "reconciliation" => {
            let page = report_page(db, &PageRequest::first(20)).await.unwrap();
            answers.push(format!("{page:?}"));
        }
        "audit_log" => {
            for query in &asked.trail {
                let query = query.as_query();
                let page = audit_log::entries_as_of(live, db, &query).await.unwrap();
                answers.push(format!("{page:?}"));
            }
        }
        _ => {}
    }
    answers.join("\n")
}

/// Which accounts, partners' months and pages of the trail are asked of both copies.
struct Asked {
    accounts: Vec<String>,
    statement_months: Vec<(String, String)>,
    trail: Vec<TrailQuery>,
}

impl Asked {
    /// Read from the full replay `full` (and `from_snapshots`, where its trail starts).
    async fn of(projection: &Arc<dyn Projection>, full: &SqlDb, from_snapshots: &SqlDb) -> Asked {
        let mut asked = Asked {
            accounts: Vec::new(),
            statement_months: Vec::new(),
            trail: Vec::new(),
        };
        match projection.name() {
            "ledger" => asked.accounts = accounts(full).await,
            "partner_statements" => asked.statement_months = statement_months(full).await,
            "audit_log" => asked.trail = trail_queries(full, from_snapshots).await,
            _ => {}
        }
        asked
    }
}

/// The accounts with the most lines and a few with the fewest.
async fn accounts(full: &SqlDb) -> Vec<String> {
    let mut accounts = Vec::new();
    for order in ["DESC", "ASC"] {
        let rows = full
            .fetch_all(
                &format!(
                    "SELECT account FROM ledger_accounts ORDER BY lines {order}, account LIMIT 3"
                ),
                &[],
            )
            .await
            .unwrap();
        for row in rows {
            accounts.push(row.text(0).unwrap());
        }
    }
    accounts
}

/// The partners' months with the most statement lines.
async fn statement_months(full: &SqlDb) -> Vec<(String, String)> {
    full.fetch_all(
        "SELECT partner_id, month FROM statement_months ORDER BY lines DESC, partner_id, month LIMIT 3",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|row| (row.text(0).unwrap(), row.text(1).unwrap()))
    .collect()
}

/// An audit trail query, owning its filter.
struct TrailQuery {
    stream: Option<String>,
    stream_type_too: bool,
    event_type: Option<String>,
    cursor: Option<i64>,
    newest_first: bool,
    limit: i64,
}

impl TrailQuery {
    fn as_query(&self) -> AuditQuery<'_> {
        AuditQuery {
            stream: self.stream.as_deref(),
            stream_type_too: self.stream_type_too,
            event_type: self.event_type.as_deref(),
            cursor: self.cursor,
            newest_first: self.newest_first,
            limit: self.limit,
            ..AuditQuery::default()
        }
    }
}

/// Pages of the trail: across the row where the copy from snapshots starts (both ways), from
/// the start, around the middle, back from the end, and filtered by a stream type and an event
/// type as the dashboard and the API filter.
async fn trail_queries(full: &SqlDb, from_snapshots: &SqlDb) -> Vec<TrailQuery> {
    let events = audit_log::summary(full).await.unwrap().events;
    let starts = from_snapshots
        .fetch_optional("SELECT MIN(seq) FROM audit_log", &[])
        .await
        .unwrap()
        .and_then(|row| row.opt_i64(0).unwrap())
        .unwrap_or(1);
    let plain = |cursor, newest_first, limit| TrailQuery {
        stream: None,
        stream_type_too: false,
        event_type: None,
        cursor,
        newest_first,
        limit,
    };
    let mut queries = vec![
        plain(Some(starts - 4), false, 10),
        plain(Some(starts + 4), true, 10),
        plain(Some(starts), true, 3),
        plain(Some(starts - 1), false, 1),
        plain(None, false, 50),
        plain(Some(events / 2), false, 200),
        plain(Some(events / 2), true, 200),
        plain(None, true, 200),
        plain(Some(events.saturating_sub(150)), true, 200),
        TrailQuery {
            stream: Some("invoice".into()),
            stream_type_too: true,
            ..plain(None, true, 100)
        },
    ];
    let common = full
        .fetch_optional(
            "SELECT event_type FROM audit_event_types ORDER BY events DESC, event_type LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    if let Some(row) = common {
        queries.push(TrailQuery {
            event_type: Some(row.text(0).unwrap()),
            ..plain(Some(events / 3), false, 200)
        });
    }
    queries
}

/// Asserts that every read model as of `moment` from snapshots answers as its full replay.
/// The live audit log must have caught up (its pages read the rows before a copy's first).
async fn assert_equal_to_full_replay(store: &Arc<dyn EventStore>, moment: AsOf) {
    let live = store.sql();
    for projection in read_models() {
        let from_snapshots = projections::runtime::as_of(store.clone(), projection.clone(), moment)
            .await
            .unwrap();
        let full = as_of_full(store.clone(), projection.clone(), moment)
            .await
            .unwrap();
        let asked = Asked::of(&projection, &full, &from_snapshots).await;
        assert_eq!(
            answers(&projection, &from_snapshots, &asked, &live).await,
            answers(&projection, &full, &asked, &live).await,
            "{} as of {moment:?}",
            projection.name()
        );
    }
}

/// Catches the live audit log up with the log.
async fn catch_up_live_trail(store: &Arc<dyn EventStore>) {
    Projector::new(store.clone(), Arc::new(AuditLog))
        .catch_up()
        .await
        .unwrap();
}

/// Positions and times sampled (deterministically) over the log, with the edges and the
/// snapshots' own bounds among them, where an off-by-one would show.
async fn sampled_moments(store: &Arc<dyn EventStore>) -> Vec<AsOf> {
    let bounds = store.log_bounds().await.unwrap().expect("a history");
    let mut runner = TestRunner::deterministic();
    let mut moments = vec![
        AsOf::Position(0),
        AsOf::Position(bounds.last_position),
        AsOf::Position(bounds.last_position - 1),
    ];
    let stored = snapshots::list(&store.sql()).await.unwrap();
    if let Some(snapshot) = stored.get(stored.len() / 2) {
        moments.push(AsOf::Position(snapshot.mark.max_position));
        moments.push(AsOf::Position(snapshot.mark.max_position - 1));
        moments.push(AsOf::Position(snapshot.mark.max_position + 1));
    }
    let positions = bounds.first_position..=bounds.last_position;
    for _ in 0..SAMPLED_POSITIONS {
        let position = positions.clone().new_tree(&mut runner).unwrap().current();
        moments.push(AsOf::Position(position));
    }
    let first = bounds.first_recorded_at.unix_timestamp_nanos() / 1_000;
    let last = bounds.last_recorded_at.unix_timestamp_nanos() / 1_000;
    for _ in 0..SAMPLED_TIMES {
        let micros = (first..=last).new_tree(&mut runner).unwrap().current();
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(micros * 1_000).unwrap();
        moments.push(AsOf::Time(at));
    }
    moments
}

/// Takes the snapshots due every [`EVERY`] events (and at each day's end when asked: the
/// events of a test are recorded within seconds, so that adds one only across midnight UTC).
async fn take(store: &Arc<dyn EventStore>, at_day_end: bool) -> Vec<snapshots::Taken> {
    let settings = SnapshotSettings {
        worker: false,
        every_events: EVERY,
        at_day_end,
    };
    snapshots::take_all_due(store, &read_models(), settings)
        .await
        .unwrap()
}

async fn as_of_from_snapshots_equals_a_full_replay_at_sampled_moments_for_every_read_model(
    db: &TestDb,
) {
    history(db, 41, 2_000).await;
    let taken = take(&db.store, true).await;
    for taken in &taken {
        assert!(
            taken.snapshots >= 4,
            "{}: {} snapshots of a 2,000-event history every {EVERY}",
            taken.name,
            taken.snapshots
        );
    }
    assert_the_trail_waits_for_the_live_one(&db.store).await;
    catch_up_live_trail(&db.store).await;
    for moment in sampled_moments(&db.store).await {
        assert_equal_to_full_replay(&db.store, moment).await;
    }
}

/// While the live audit log has not reached the row a copy starts at (here an empty one), a
/// page of the trail as of a moment whose copy starts after row 1 is refused as behind, not
/// answered with rows missing.
async fn assert_the_trail_waits_for_the_live_one(store: &Arc<dyn EventStore>) {
    let head = store.head_position().await.unwrap();
    let trail: Arc<dyn Projection> = Arc::new(AuditLog);
    let copy = projections::runtime::as_of(store.clone(), trail, AsOf::Position(head))
        .await
        .unwrap();
    let starts = copy
        .fetch_optional("SELECT MIN(seq) FROM audit_log", &[])
        .await
        .unwrap()
        .and_then(|row| row.opt_i64(0).unwrap());
    assert!(
        starts > Some(EVERY as i64),
        "the copy starts at row {starts:?}"
    );
    let behind = SqlDb::scratch().await.unwrap();
    let answer = audit_log::entries_as_of(
        &behind,
        &copy,
        &AuditQuery {
            limit: 10,
            ..AuditQuery::default()
        },
    )
    .await;
    assert!(
        matches!(answer, Err(ProjectionError::Behind(_))),
        "{answer:?}"
    );
}

async fn a_damaged_or_undecodable_snapshot_is_skipped_for_the_one_before(db: &TestDb) {
    let (mut generator, handlers) = history(db, 43, 1_500).await;
    take(&db.store, true).await;
    let live = db.store.sql();
    let stored = snapshots::list(&live).await.unwrap();
    let mut moments = Vec::new();
    for projection in read_models() {
        let own: Vec<_> = stored
            .iter()
            .filter(|s| s.name == projection.name())
            .collect();
        assert!(
            own.len() >= 3,
            "{}: {} snapshots",
            projection.name(),
            own.len()
        );
        // The latest: a body changed after it was hashed.
        let damaged = own[own.len() - 1];
        live.execute(
            "UPDATE read_model_snapshots SET body = 'AAAA' || body \
             WHERE name = ? AND transaction_id = ? AND position = ?",
            &[
                projection.name().into(),
                damaged.mark.checkpoint.transaction_id.into(),
                damaged.mark.checkpoint.position.into(),
            ],
        )
        .await
        .unwrap();
        // The one before: bytes that are not a snapshot, with their own hash beside them.
        let undecodable = own[own.len() - 2];
        let garbage = b"RLS1\xff\xff\xff\xff not rows".to_vec();
        live.execute(
            "UPDATE read_model_snapshots SET body = ?, sha256 = ? \
             WHERE name = ? AND transaction_id = ? AND position = ?",
            &[
                base64::engine::general_purpose::STANDARD
                    .encode(&garbage)
                    .into(),
                hex::encode(Sha256::digest(&garbage)).into(),
                projection.name().into(),
                undecodable.mark.checkpoint.transaction_id.into(),
                undecodable.mark.checkpoint.position.into(),
            ],
        )
        .await
        .unwrap();
        moments.push(AsOf::Position(damaged.mark.max_position));
        moments.push(AsOf::Position(undecodable.mark.max_position));
    }
    let head = db.store.head_position().await.unwrap();
    moments.push(AsOf::Position(head));
    catch_up_live_trail(&db.store).await;
    for moment in moments {
        assert_equal_to_full_replay(&db.store, moment).await;
    }

    // The chain goes on from the last snapshot that loads.
    generator.until(2_200).await;
    run_process_managers(&handlers).await;
    let taken = take(&db.store, true).await;
    assert!(taken.iter().all(|t| t.snapshots >= 1), "{taken:?}");
    catch_up_live_trail(&db.store).await;
    assert_equal_to_full_replay(
        &db.store,
        AsOf::Position(db.store.head_position().await.unwrap()),
    )
    .await;
}

async fn taking_snapshots_again_takes_only_what_is_due_and_a_rebuild_deletes_them(db: &TestDb) {
    history(db, 47, 1_000).await;
    let first = take(&db.store, false).await;
    let again = take(&db.store, false).await;
    for (first, again) in first.iter().zip(&again) {
        assert!(first.snapshots >= 3, "{first:?}");
        assert_eq!(again.snapshots, 0, "{again:?}");
        assert_eq!(
            again.events_folded, 0,
            "nothing loaded or folded: {again:?}"
        );
        assert_eq!(again.latest, first.latest);
    }
    let stored = snapshots::list(&db.store.sql()).await.unwrap();
    let applied: Vec<i64> = stored
        .iter()
        .filter(|s| s.name == "funnel")
        .map(|s| s.mark.events_applied)
        .collect();
    assert!(
        applied
            .iter()
            .enumerate()
            .all(|(i, n)| *n == (i as i64 + 1) * EVERY as i64),
        "one every {EVERY} events: {applied:?}"
    );

    let rebuilt = projections::read_models()
        .into_iter()
        .filter(|p| p.name() == "funnel")
        .collect();
    projections::Rebuild::start(db.store.clone(), rebuilt)
        .await
        .unwrap()
        .run()
        .await
        .unwrap();
    let stored = snapshots::list(&db.store.sql()).await.unwrap();
    assert!(stored.iter().all(|s| s.name != "funnel"), "{stored:?}");
    assert!(stored.iter().any(|s| s.name == "ledger"), "others are kept");
}
