//! Issue 27's property test for the funnel, on both engines: the figures the funnel keeps as the
//! events arrive (leads per stage, leads that reached each stage per group, each stage's stays
//! and their median with its place) equal a count from scratch over its fact tables, at every
//! step of a generated history as it grows, whatever size the batches are cut to; and the
//! migration that adds them computes the same from facts already there.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use adapters::sql::SqlDb;
use app::handlers::Handlers;
use projections::funnel::{Funnel, FunnelCounts, StayMedian, NO_PARTNER};
use projections::runtime::dump_table;
use projections::{Projection, Projector};

use crate::helpers::TestDb;
use crate::history::{self, run_process_managers, Generator};

crate::on_both_engines!(the_maintained_funnel_equals_a_from_scratch_count_at_every_step);

/// The tables the funnel keeps its figures in (migration 0017).
const COUNTERS: [&str; 4] = [
    "funnel_stage_counts",
    "funnel_reached_counts",
    "funnel_stay_lengths",
    "funnel_stay_medians",
];

/// Events the history grows to before each check, and the funnel's batch size on the way
/// there: one event at a time, a few, a lead's worth, and many leads per batch.
const STEPS: [(i64, usize); 8] = [
    (150, 1),
    (400, 3),
    (700, 500),
    (1_000, 7),
    (1_400, 1),
    (1_900, 40),
    (2_500, 2),
    (3_200, 1_000),
];

async fn the_maintained_funnel_equals_a_from_scratch_count_at_every_step(db: &TestDb) {
    let handlers = Handlers::new(db.store.clone());
    let mut generator = Generator::new(handlers.clone(), 41);
    generator.partners().await;
    let sql = db.store.sql();
    for (events, batch_size) in STEPS {
        while db.store.head_position().await.unwrap() < events {
            generator.lead().await;
        }
        run_process_managers(&handlers).await;
        catch_up(Projector::new(db.store.clone(), Arc::new(Funnel)).with_batch_size(batch_size))
            .await;
        let maintained = FunnelCounts::read(&sql).await.unwrap();
        assert_eq!(maintained, from_scratch(&sql).await, "at {events} events");
        assert!(
            maintained.reached.len() > 4,
            "every kind of group has leads"
        );
        assert_eq!(
            stay_places(&sql).await,
            stay_places_from_scratch(&sql).await,
            "at {events} events"
        );
    }
    let counters = dump_counters(&sql).await;

    // The same history folded one event per batch into a scratch database.
    let scratch = SqlDb::scratch().await.unwrap();
    let one_by_one = Projector::new(db.store.clone(), Arc::new(Funnel))
        .with_db(scratch.clone())
        .with_batch_size(1);
    catch_up(one_by_one).await;
    for table in Funnel.tables() {
        assert_eq!(
            dump_table(&sql, table).await.unwrap(),
            dump_table(&scratch, table).await.unwrap(),
            "{table} folded one event at a time"
        );
    }

    // A database migrated with facts already there gets the counters they imply.
    for table in COUNTERS {
        sql.execute(&format!("DELETE FROM {table}"), &[])
            .await
            .unwrap();
    }
    for statement in backfill_statements() {
        sql.execute(&statement, &[]).await.unwrap();
    }
    assert_eq!(
        dump_counters(&sql).await,
        counters,
        "the migration's backfill"
    );
}

/// Applies everything committed, as the live read models' worker would.
async fn catch_up(projector: Projector) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    history::catch_up(&projector, deadline).await.unwrap();
}

/// The funnel's figures counted over its fact tables, as `GET /api/funnel` computed them on
/// every read before they were kept: a GROUP BY over every lead and every completed stay read
/// and sorted.
async fn from_scratch(db: &SqlDb) -> FunnelCounts {
    let mut counts = FunnelCounts::default();
    for row in rows(
        db,
        "SELECT stage, COUNT(*) FROM funnel_leads GROUP BY stage",
    )
    .await
    {
        counts
            .stages
            .insert(row.text(0).unwrap(), row.i64(1).unwrap());
    }
    let partner = format!("COALESCE(partner_id, '{NO_PARTNER}')");
    for (kind, key) in [
        ("all", "''"),
        ("capture_week", "capture_week"),
        ("source", "source"),
        ("partner", partner.as_str()),
    ] {
        let sql = format!("SELECT {key}, furthest_rank, COUNT(*) FROM funnel_leads GROUP BY 1, 2");
        for row in rows(db, &sql).await {
            let group = (kind.to_owned(), row.text(0).unwrap());
            let reached = counts.reached.entry(group).or_default();
            let furthest = row.i64(1).unwrap().clamp(0, 6) as usize;
            for slot in reached.iter_mut().take(furthest + 1) {
                *slot += row.i64(2).unwrap();
            }
        }
    }
    for (stage, sorted) in completed_stays(db).await {
        let stays = StayMedian {
            stays: sorted.len() as i64,
            median_us: sorted[(sorted.len() - 1) / 2],
        };
        counts.stays.insert(stage, stays);
    }
    counts
}

/// Every completed stay's length per stage, sorted.
async fn completed_stays(db: &SqlDb) -> BTreeMap<String, Vec<i64>> {
    let sql = "SELECT stage, left_at_us - entered_at_us FROM funnel_stage_visits \
               WHERE left_at_us IS NOT NULL";
    let mut stays: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for row in rows(db, sql).await {
        let length = row.i64(1).unwrap();
        stays.entry(row.text(0).unwrap()).or_default().push(length);
    }
    stays
        .values_mut()
        .for_each(|lengths| lengths.sort_unstable());
    stays
}

/// Per stage: its stays, median, how many are shorter and how many as long; and how many
/// stays last each length.
type Places = (BTreeMap<String, [i64; 4]>, BTreeMap<(String, i64), i64>);

/// [`Places`] as the funnel keeps them.
async fn stay_places(db: &SqlDb) -> Places {
    let mut middles = BTreeMap::new();
    let sql = "SELECT stage, stays, median_us, below, at_median FROM funnel_stay_medians";
    for row in rows(db, sql).await {
        let place = [1, 2, 3, 4].map(|column| row.i64(column).unwrap());
        middles.insert(row.text(0).unwrap(), place);
    }
    let mut lengths = BTreeMap::new();
    for row in rows(db, "SELECT stage, stay_us, stays FROM funnel_stay_lengths").await {
        let length = (row.text(0).unwrap(), row.i64(1).unwrap());
        lengths.insert(length, row.i64(2).unwrap());
    }
    (middles, lengths)
}

/// [`Places`] counted over every completed stay.
async fn stay_places_from_scratch(db: &SqlDb) -> Places {
    let (mut middles, mut lengths) = Places::default();
    for (stage, sorted) in completed_stays(db).await {
        let median = sorted[(sorted.len() - 1) / 2];
        let below = sorted.partition_point(|length| *length < median) as i64;
        let through = sorted.partition_point(|length| *length <= median) as i64;
        let place = [sorted.len() as i64, median, below, through - below];
        middles.insert(stage.clone(), place);
        for length in sorted {
            *lengths.entry((stage.clone(), length)).or_default() += 1;
        }
    }
    (middles, lengths)
}

async fn rows(db: &SqlDb, sql: &str) -> Vec<adapters::sql::SqlRow> {
    db.fetch_all(sql, &[]).await.unwrap()
}

async fn dump_counters(db: &SqlDb) -> Vec<Vec<Vec<adapters::sql::SqlValue>>> {
    let mut dumps = Vec::new();
    for table in COUNTERS {
        dumps.push(dump_table(db, table).await.unwrap());
    }
    dumps
}

/// The `INSERT` statements of migration 0017: what it writes into a database that has facts.
fn backfill_statements() -> Vec<String> {
    let migration = include_str!("../../migrations/shared/0017_funnel_counters.sql");
    let code: String = migration
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    let statements: Vec<String> = code
        .split(';')
        .map(str::trim)
        .filter(|statement| statement.starts_with("INSERT"))
        .map(str::to_owned)
        .collect();
    assert_eq!(statements.len(), COUNTERS.len(), "one backfill per table");
    statements
}
