//! Rebuilds without downtime (issue 24), on both engines: a reader of the live read models
//! never sees a part of one while `Rebuild` folds aside and swaps, appends that keep coming
//! meanwhile are neither lost nor doubled, and the swapped-in tables keep the schema they had
//! (keys, indexes and their names); a second rebuild is refused while one runs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use adapters::sql::SqlDb;
use app::handlers::Handlers;
use projections::ProjectorGroup;
use serde_json::Value;
use tokio::sync::watch;

use crate::helpers::TestDb;
use crate::history::{run_projections, Generator};
use crate::projections::assert_rebuild_equals_live;

crate::on_both_engines!(
    readers_see_every_read_model_whole_while_a_rebuild_folds_and_swaps,
    a_rebuild_while_commands_keep_coming_loses_and_doubles_nothing,
);

/// Every read model as the API would serve it, read from the live database.
async fn rendered(db: &SqlDb) -> BTreeMap<&'static str, Value> {
    let mut states = BTreeMap::new();
    for projection in projections::read_models() {
        let state = projection.render(db).await.unwrap();
        states.insert(projection.name(), state);
    }
    states
}

/// Each read-model table's keys and indexes as the catalog defines them, by name.
pub async fn read_model_schema(db: &SqlDb) -> Vec<(String, String)> {
    let tables: Vec<&str> = projections::read_models()
        .iter()
        .flat_map(|p| p.tables().to_vec())
        .collect();
    let marks = vec!["?"; tables.len()].join(", ");
    let params: Vec<adapters::sql::SqlValue> = tables.iter().map(|t| (*t).into()).collect();
    let sql = match db.engine() {
        "postgres" => format!(
            "SELECT indexname::text, indexdef FROM pg_indexes \
             WHERE schemaname = current_schema() AND tablename IN ({marks}) \
             UNION ALL SELECT c.conname::text, pg_get_constraintdef(c.oid) \
             FROM pg_constraint AS c JOIN pg_class AS t ON t.oid = c.conrelid \
             WHERE t.relnamespace = current_schema()::regnamespace AND t.relname IN ({marks}) \
             ORDER BY 1, 2"
        ),
        // A renamed table's definition is rewritten by SQLite (its name quoted), so the
        // tables are compared by their columns, the indexes by their definitions.
        _ => format!(
            "SELECT m.name, coalesce(m.sql, '') FROM sqlite_master AS m \
             WHERE m.type = 'index' AND m.tbl_name IN ({marks}) \
             UNION ALL SELECT m.name || '.' || c.name, c.type || ' ' || c.\"notnull\" || ' ' \
             || coalesce(c.dflt_value, '') || ' ' || c.pk \
             FROM sqlite_master AS m JOIN pragma_table_info(m.name) AS c \
             WHERE m.type = 'table' AND m.name IN ({marks}) ORDER BY 1, 2"
        ),
    };
    let params: Vec<adapters::sql::SqlValue> =
        params.iter().chain(params.iter()).cloned().collect();
    db.fetch_all(&sql, &params)
        .await
        .unwrap()
        .iter()
        .map(|row| (row.text(0).unwrap(), row.text(1).unwrap()))
        .collect()
}

async fn readers_see_every_read_model_whole_while_a_rebuild_folds_and_swaps(db: &TestDb) {
    let handlers = Handlers::new(db.store.clone());
    let mut generator = Generator::new(handlers.clone(), 24);
    generator.partners().await;
    generator.until(12_000).await;
    let live = db.store.sql();
    let before = rendered(&live).await;
    let schema = read_model_schema(&live).await;
    assert!(schema.len() >= 20, "{schema:?}");

    // A reader reads every read model again and again for the whole rebuild, the swap
    // included; nothing is appended, so each read must be exactly what was there before.
    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let reader = tokio::spawn({
        let (done, reads, live, before) =
            (done.clone(), reads.clone(), live.clone(), before.clone());
        async move {
            loop {
                let finished = done.load(Ordering::SeqCst);
                let now = rendered(&live).await;
                for (name, state) in &before {
                    assert_eq!(&now[name], state, "{name} read during the rebuild differs");
                }
                reads.fetch_add(1, Ordering::SeqCst);
                if finished {
                    return;
                }
            }
        }
    });

    // Step by step, reading between the steps too: the fold writes only its scratch files.
    // In three parts here, in two and in one below: however the read models are split, the
    // swapped-in result is the same.
    let mut rebuild =
        projections::Rebuild::start_in_parts(db.store.clone(), projections::read_models(), 3)
            .await
            .unwrap();
    assert_eq!(rebuild.parts(), 3);
    let mut steps = 0;
    while rebuild.step().await.unwrap() > 0 {
        steps += 1;
        assert_eq!(rendered(&live).await, before, "after fold step {steps}");
    }
    assert!(
        steps >= 3,
        "the fold took {steps} steps; the test needs several"
    );
    done.store(true, Ordering::SeqCst);
    reader.await.unwrap();
    assert!(reads.load(Ordering::SeqCst) >= 2);

    assert_eq!(rendered(&live).await, before, "after the swap");
    assert_eq!(
        read_model_schema(&live).await,
        schema,
        "keys and indexes after the swap"
    );
    assert_eq!(
        rebuild.events_applied(),
        db.store.head_position().await.unwrap()
    );
    assert_rebuild_equals_live(db).await;

    // A rebuild that stops half way leaves the live read models as they were, and the next
    // one clears what it left (a staging table on PostgreSQL) and finishes.
    let mut stopped =
        projections::Rebuild::start_in_parts(db.store.clone(), projections::read_models(), 2)
            .await
            .unwrap();
    assert!(stopped.step().await.unwrap() > 0);
    // While it runs, a second rebuild of the same database is refused, whatever it rebuilds.
    let second = projections::Rebuild::start(db.store.clone(), projections::read_models()).await;
    assert!(
        matches!(
            second,
            Err(projections::ProjectionError::AlreadyRunning("rebuild"))
        ),
        "a second rebuild while one runs: {:?}",
        second.err()
    );
    drop(stopped);
    assert_eq!(
        rendered(&live).await,
        before,
        "after a rebuild that stopped"
    );
    projections::Rebuild::start_in_parts(db.store.clone(), projections::read_models(), 1)
        .await
        .unwrap()
        .run()
        .await
        .unwrap();
    assert_eq!(rendered(&live).await, before, "after the next rebuild");
    assert_eq!(read_model_schema(&live).await, schema);
}

async fn a_rebuild_while_commands_keep_coming_loses_and_doubles_nothing(db: &TestDb) {
    let handlers = Handlers::new(db.store.clone());
    let mut generator = Generator::new(handlers.clone(), 25);
    generator.partners().await;
    generator.until(8_000).await;

    // The live worker tails the log throughout, as the service's does.
    let (stop, stopped) = watch::channel(false);
    let worker = tokio::spawn(
        ProjectorGroup::new(db.store.clone(), projections::read_models()).run(stopped),
    );
    let appending = tokio::spawn(async move {
        generator.leads_until(11_000).await;
        generator
    });
    projections::Rebuild::start(db.store.clone(), projections::read_models())
        .await
        .unwrap()
        .run()
        .await
        .unwrap();
    let mut generator = appending.await.unwrap();
    // And some after the swap, which the live worker applies to the swapped-in tables.
    generator.leads_until(11_500).await;
    stop.send(true).unwrap();
    worker.await.unwrap();
    run_projections(&handlers).await.unwrap();
    assert_rebuild_equals_live(db).await;
}
