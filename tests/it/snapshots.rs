//! As-of reads from snapshots (issue 24), on both engines: over a generated history, every
//! read model read as of sampled positions and times from its snapshots equals a full replay
//! (`runtime::as_of_full`), table for table and in what `render` answers; it still does when a
//! snapshot's body is damaged (its hash no longer matches) or undecodable (its hash does); taking
//! snapshots again takes only what is due; a rebuild deletes a read model's snapshots.

use std::sync::Arc;

use adapters::sql::SqlDb;
use adapters::store::EventStore;
use app::handlers::Handlers;
use base64::Engine as _;
use projections::runtime::{as_of_full, dump_table};
use projections::snapshots::{self, SnapshotSettings};
use projections::{AsOf, Projection};
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

/// The whole state of `projection` in `db`: its tables' rows and its rendering.
async fn state(projection: &Arc<dyn Projection>, db: &SqlDb) -> String {
    let mut tables = Vec::new();
    for table in projection.tables() {
        tables.push(format!(
            "{table}: {:?}",
            dump_table(db, table).await.unwrap()
        ));
    }
    format!(
        "{}\n{}",
        tables.join("\n"),
        projection.render(db).await.unwrap()
    )
}

/// Asserts that every read model as of `moment` from snapshots equals its full replay.
async fn assert_equal_to_full_replay(store: &Arc<dyn EventStore>, moment: AsOf) {
    for projection in projections::read_models() {
        let from_snapshots = projections::runtime::as_of(store.clone(), projection.clone(), moment)
            .await
            .unwrap();
        let full = as_of_full(store.clone(), projection.clone(), moment)
            .await
            .unwrap();
        assert_eq!(
            state(&projection, &from_snapshots).await,
            state(&projection, &full).await,
            "{} as of {moment:?}",
            projection.name()
        );
    }
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
    snapshots::take_all_due(store, &projections::read_models(), settings)
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
    for moment in sampled_moments(&db.store).await {
        assert_equal_to_full_replay(&db.store, moment).await;
    }
}

async fn a_damaged_or_undecodable_snapshot_is_skipped_for_the_one_before(db: &TestDb) {
    let (mut generator, handlers) = history(db, 43, 1_500).await;
    take(&db.store, true).await;
    let live = db.store.sql();
    let stored = snapshots::list(&live).await.unwrap();
    let mut moments = Vec::new();
    for projection in projections::read_models() {
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
    for moment in moments {
        assert_equal_to_full_replay(&db.store, moment).await;
    }

    // The chain goes on from the last snapshot that loads.
    generator.until(2_200).await;
    run_process_managers(&handlers).await;
    let taken = take(&db.store, true).await;
    assert!(taken.iter().all(|t| t.snapshots >= 1), "{taken:?}");
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
