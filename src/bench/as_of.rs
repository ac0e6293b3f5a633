//! `bench as-of`: as-of reads from snapshots on a store of N events (issue 24).
//!
//! The store is generated as `bench replay` generates it (or reused); its snapshots are
//! deleted and taken again from zero (timed apart: that is what the service's worker does once
//! over a store's whole history). Then `--queries` as-of reads, each of a read model drawn at
//! random at a position drawn at random (one in [`TIME_QUERY_EVERY`] at a recording time
//! instead), each computed into its scratch database and rendered, timed one after another.
//! For comparison, one full replay per read model at the last position shows what a read cost
//! without snapshots. Storage compares the snapshots' table and indexes with the events
//! table's (`pg_total_relation_size`; SQLite's `dbstat`).

use std::collections::BTreeMap;
use std::time::Instant;

use adapters::sql::SqlDb;
use projections::snapshots::{self, SnapshotSettings};
use projections::AsOf;
use serde_json::{json, Value};

use super::*;

/// The targets at 1M events.
const TARGET_P99_MS: f64 = 200.0;
const TARGET_STORAGE_RATIO: f64 = 0.20;

/// One query in this many is by recording time, the rest by position.
const TIME_QUERY_EVERY: u32 = 4;

pub(super) async fn as_of(args: AsOfArgs) -> anyhow::Result<Value> {
    let (db, generation) = generated_or_reused(&args.target, args.events, args.reuse).await?;
    let engine = db.store.engine();
    let events = count_events(db.store.as_ref()).await?;
    let live = db.store.sql();
    live.execute("DELETE FROM read_model_snapshots", &[])
        .await?;
    let read_models = projections::read_models();
    let settings = SnapshotSettings {
        worker: false,
        every_events: args.every_events,
        at_day_end: args.at_day_end,
    };
    let started = Instant::now();
    let taken = snapshots::take_all_due(&db.store, &read_models, settings).await?;
    let taking = started.elapsed();
    let snapshot_bytes = bytes_of(&live, "read_model_snapshots").await?;
    let events_bytes = bytes_of(&live, "events").await?;
    let ratio = snapshot_bytes as f64 / events_bytes.max(1) as f64;

    let bounds = db
        .store
        .log_bounds()
        .await?
        .context("the store holds no events")?;
    // The same queries on every run and engine.
    let mut random = app::seeded::Xorshift::new(0x2545_f491_4f6c_dd1d);
    let mut by_model: BTreeMap<&'static str, Vec<u64>> = BTreeMap::new();
    let mut by_kind: BTreeMap<&'static str, Vec<u64>> = BTreeMap::new();
    let first_us = bounds.first_recorded_at.unix_timestamp_nanos() / 1_000;
    let last_us = bounds.last_recorded_at.unix_timestamp_nanos() / 1_000;
    for query in 0..args.queries {
        let projection = read_models[random.below(read_models.len() as u64) as usize].clone();
        let (kind, moment) = if query % TIME_QUERY_EVERY == TIME_QUERY_EVERY - 1 {
            let span = (last_us - first_us).max(1) as u64;
            let micros = first_us + i128::from(random.below(span));
            let at = time::OffsetDateTime::from_unix_timestamp_nanos(micros * 1_000)?;
            ("time", AsOf::Time(at))
        } else {
            let span = (bounds.last_position - bounds.first_position).max(1) as u64;
            let position = bounds.first_position + random.below(span) as i64;
            ("position", AsOf::Position(position))
        };
        let started = Instant::now();
        let scratch =
            projections::runtime::as_of(db.store.clone(), projection.clone(), moment).await?;
        projection.render(&scratch).await?;
        let took_us = started.elapsed().as_micros() as u64;
        by_model.entry(projection.name()).or_default().push(took_us);
        by_kind.entry(kind).or_default().push(took_us);
    }
    let mut all: Vec<u64> = by_model.values().flatten().copied().collect();
    all.sort_unstable();
    let p99_ms = percentile_ms(&all, 99);

    let mut full_replay_ms = serde_json::Map::new();
    if args.compare_full {
        for projection in &read_models {
            let started = Instant::now();
            let moment = AsOf::Position(bounds.last_position - 1);
            let scratch =
                projections::runtime::as_of_full(db.store.clone(), projection.clone(), moment)
                    .await?;
            projection.render(&scratch).await?;
            full_replay_ms.insert(
                projection.name().to_owned(),
                json!(rounded(started.elapsed().as_secs_f64() * 1_000.0, 1)),
            );
        }
    }

    Ok(json!({
        "bench": "as-of",
        "engine": engine,
        "database": db.name,
        "events": events,
        "generation": generation,
        "every_events": settings.every_events,
        "at_day_end": settings.at_day_end,
        "taking": {
            "seconds": rounded(taking.as_secs_f64(), 3),
            "snapshots": taken.iter().map(|t| t.snapshots).sum::<u64>(),
            "encoded_bytes": taken.iter().map(|t| t.bytes).sum::<u64>(),
            "by_model": taken.iter().map(|t| json!({
                "name": t.name,
                "snapshots": t.snapshots,
                "encoded_bytes": t.bytes,
            })).collect::<Vec<_>>(),
        },
        "storage": {
            "snapshot_bytes": snapshot_bytes,
            "events_bytes": events_bytes,
            "ratio": rounded(ratio, 4),
            "target_ratio": TARGET_STORAGE_RATIO,
            "met": ratio <= TARGET_STORAGE_RATIO,
        },
        "queries": all.len(),
        "p50_ms": percentile_ms(&all, 50),
        "p99_ms": p99_ms,
        "max_ms": all.last().map_or(0.0, |us| *us as f64 / 1_000.0),
        "target_p99_ms": TARGET_P99_MS,
        "met": p99_ms <= TARGET_P99_MS,
        "by_kind": figures(&mut by_kind),
        "by_model": figures(&mut by_model),
        "full_replay_at_head_ms": full_replay_ms,
        "peak_rss_mb": peak_rss_mb(),
    }))
}

/// Each key's count, p50 and p99 in milliseconds.
fn figures(latencies: &mut BTreeMap<&'static str, Vec<u64>>) -> Value {
    let mut figures = serde_json::Map::new();
    for (name, latencies) in latencies {
        latencies.sort_unstable();
        figures.insert(
            (*name).to_owned(),
            json!({
                "queries": latencies.len(),
                "p50_ms": percentile_ms(latencies, 50),
                "p99_ms": percentile_ms(latencies, 99),
                "max_ms": latencies.last().map_or(0.0, |us| *us as f64 / 1_000.0),
            }),
        );
    }
    Value::Object(figures)
}

/// Bytes a table takes with its indexes (and, on PostgreSQL, its TOAST).
async fn bytes_of(db: &SqlDb, table: &str) -> anyhow::Result<i64> {
    let row = match db {
        SqlDb::Postgres(_) => {
            db.fetch_optional(
                "SELECT CAST(pg_total_relation_size(CAST(? AS regclass)) AS BIGINT)",
                &[table.into()],
            )
            .await?
        }
        SqlDb::Sqlite(_) => {
            db.fetch_optional(
                "SELECT CAST(COALESCE(SUM(pgsize), 0) AS BIGINT) FROM dbstat \
                 WHERE name = ? OR name IN (SELECT name FROM sqlite_master WHERE tbl_name = ?)",
                &[table.into(), table.into()],
            )
            .await?
        }
    };
    Ok(row.context("no size row")?.i64(0)?)
}
