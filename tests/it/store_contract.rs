//! The event-store contract, run against SQLite and PostgreSQL alike.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use adapters::store::{
    self, AppendRequest, Checkpoint, EventMetadata, EventStore, ExpectedVersion, NewEvent,
    StoreError, GENESIS_HASH,
};
use serde_json::json;
use tokio::sync::Barrier;
use uuid::Uuid;

use crate::helpers::{Engine, TestDb};

crate::on_both_engines!(
    appended_events_read_back_in_version_order_with_a_chained_hash,
    appending_at_a_stale_version_is_a_typed_conflict,
    expecting_no_stream_conflicts_once_the_stream_exists,
    expecting_a_version_beyond_the_head_conflicts,
    two_concurrent_appends_at_the_same_expected_version_let_exactly_one_win,
    sixty_four_concurrent_appends_each_get_their_own_outcome,
    concurrent_appends_among_replays_each_get_their_own_outcome_and_command_record,
    the_same_command_id_appended_again_returns_the_original_positions_and_no_new_rows,
    the_same_event_ids_appended_again_return_the_original_positions,
    an_event_id_reused_in_another_stream_is_rejected,
    an_empty_append_is_invalid,
    the_global_log_is_read_in_batches_from_a_checkpoint,
    eight_writers_and_a_tailing_reader_see_every_event_once_in_checkpoint_order,
    an_untouched_store_verifies,
    verify_names_the_event_whose_payload_was_altered,
    verify_names_an_event_removed_from_the_middle_of_a_stream,
    the_database_rejects_update_and_delete_of_events,
    a_payload_round_trips_unchanged,
    an_append_of_several_commands_records_each_with_its_own_events,
);

fn event(event_type: &str, payload: serde_json::Value) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: event_type.to_owned(),
        schema_version: 1,
        payload,
        metadata: EventMetadata {
            actor: Some("test".into()),
            source: Some("test".into()),
            ..Default::default()
        },
    }
}

fn request(stream_id: &str, expected: ExpectedVersion, events: Vec<NewEvent>) -> AppendRequest {
    AppendRequest {
        stream_id: stream_id.to_owned(),
        stream_type: stream_id.split('-').next().unwrap_or("test").to_owned(),
        expected_version: expected,
        command_id: None,
        events,
        inbox: None,
    }
}

async fn append_n(store: &dyn EventStore, stream_id: &str, n: u64) {
    for version in 0..n {
        store
            .append(request(
                stream_id,
                ExpectedVersion::from_loaded(version),
                vec![event("Counted", json!({"n": version}))],
            ))
            .await
            .expect("append");
    }
}

async fn appended_events_read_back_in_version_order_with_a_chained_hash(db: &TestDb) {
    let store = db.store.as_ref();
    let first = store
        .append(request(
            "lead-1",
            ExpectedVersion::NoStream,
            vec![
                event("LeadCaptured", json!({"name": "Aisha"})),
                event("LeadQualified", json!({})),
            ],
        ))
        .await
        .unwrap();
    assert_eq!(
        (first.first_version, first.last_version, first.replayed),
        (1, 2, false)
    );
    assert!(first.first_position < first.last_position);
    store
        .append(request(
            "lead-1",
            ExpectedVersion::Exact(2),
            vec![event("DemoBooked", json!({}))],
        ))
        .await
        .unwrap();

    let events = store.read_stream("lead-1", 1, 100).await.unwrap();
    let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
    assert_eq!(versions, vec![1, 2, 3]);
    assert_eq!(events[0].event_type, "LeadCaptured");
    assert_eq!(events[0].stream_type, "lead");
    assert_eq!(events[0].prev_hash, GENESIS_HASH);
    assert_eq!(events[1].prev_hash, events[0].hash);
    assert_eq!(events[2].prev_hash, events[1].hash);
    assert_eq!(store.read_stream("lead-1", 3, 100).await.unwrap().len(), 1);
    assert_eq!(store.head_position().await.unwrap(), events[2].position);
}

async fn appending_at_a_stale_version_is_a_typed_conflict(db: &TestDb) {
    let store = db.store.as_ref();
    append_n(store, "invoice-1", 2).await;
    let error = store
        .append(request(
            "invoice-1",
            ExpectedVersion::Exact(1),
            vec![event("Late", json!({}))],
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::Conflict { ref stream_id, expected: ExpectedVersion::Exact(1), .. } if stream_id == "invoice-1"),
        "{error:?}"
    );
    assert_eq!(
        store.read_stream("invoice-1", 1, 100).await.unwrap().len(),
        2
    );
}

async fn expecting_no_stream_conflicts_once_the_stream_exists(db: &TestDb) {
    let store = db.store.as_ref();
    append_n(store, "lead-2", 1).await;
    let error = store
        .append(request(
            "lead-2",
            ExpectedVersion::NoStream,
            vec![event("LeadCaptured", json!({}))],
        ))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict { .. }), "{error:?}");
}

async fn expecting_a_version_beyond_the_head_conflicts(db: &TestDb) {
    let store = db.store.as_ref();
    append_n(store, "lead-3", 1).await;
    let error = store
        .append(request(
            "lead-3",
            ExpectedVersion::Exact(5),
            vec![event("Skipped", json!({}))],
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Conflict {
                actual: Some(1),
                ..
            }
        ),
        "{error:?}"
    );
}

async fn two_concurrent_appends_at_the_same_expected_version_let_exactly_one_win(db: &TestDb) {
    // Twenty rounds, each a real race: both writers are released by one barrier.
    for round in 0..20u64 {
        let barrier = Arc::new(Barrier::new(2));
        let writers = (0..2).map(|writer| {
            let store = db.store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .append(request(
                        "payment-race",
                        ExpectedVersion::from_loaded(round),
                        vec![event("Raced", json!({"writer": writer}))],
                    ))
                    .await
            })
        });
        let mut wins = 0;
        let mut conflicts = 0;
        for writer in writers.collect::<Vec<_>>() {
            match writer.await.unwrap() {
                Ok(_) => wins += 1,
                Err(StoreError::Conflict { .. }) => conflicts += 1,
                Err(other) => panic!("round {round}: unexpected {other:?}"),
            }
        }
        assert_eq!((wins, conflicts), (1, 1), "round {round}");
    }
    let events = db.store.read_stream("payment-race", 1, 100).await.unwrap();
    assert_eq!(events.len(), 20);
}

/// Concurrent appends are committed in groups on SQLite, where a caller whose append another
/// caller committed returns on its answer: each must get its own outcome (its stream, its
/// position) or its own conflict, never a neighbour's.
async fn sixty_four_concurrent_appends_each_get_their_own_outcome(db: &TestDb) {
    let barrier = Arc::new(Barrier::new(64));
    let writers: Vec<_> = (0..64u64)
        .map(|writer| {
            let store = db.store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                // Every fourth writer expects a stream that is not there: a conflict that
                // must roll back alone and reach that writer.
                let expected = if writer % 4 == 3 {
                    ExpectedVersion::from_loaded(1)
                } else {
                    ExpectedVersion::NoStream
                };
                let stream = format!("payment-crowd-{writer}");
                barrier.wait().await;
                let outcome = store
                    .append(request(
                        &stream,
                        expected,
                        vec![event("Crowded", json!({"writer": writer}))],
                    ))
                    .await;
                (writer, stream, outcome)
            })
        })
        .collect();
    let mut positions = HashSet::new();
    for writer in writers {
        let (index, stream, outcome) = writer.await.unwrap();
        match outcome {
            Ok(outcome) => {
                assert_ne!(index % 4, 3, "writer {index} should have conflicted");
                assert_eq!(outcome.stream_id, stream);
                assert_eq!((outcome.first_version, outcome.last_version), (1, 1));
                assert!(positions.insert(outcome.first_position), "{outcome:?}");
                let stored = db.store.read_stream(&stream, 1, 10).await.unwrap();
                assert_eq!(stored.len(), 1, "{stream}");
                assert_eq!(stored[0].position, outcome.first_position, "{stream}");
                assert_eq!(stored[0].payload["writer"], json!(index), "{stream}");
            }
            Err(StoreError::Conflict { .. }) => assert_eq!(index % 4, 3, "writer {index}"),
            Err(other) => panic!("writer {index}: unexpected {other:?}"),
        }
    }
    assert_eq!(positions.len(), 48);
    // On PostgreSQL the global read stops below the oldest write transaction running anywhere
    // on the cluster (invariant 4), and other tests share the cluster: wait for theirs to end
    // rather than read while one is open. Every append has committed, so all 48 show.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let all = loop {
        let all = db.store.read_all(Checkpoint::START, 1_000).await.unwrap();
        if all.len() >= 48 || tokio::time::Instant::now() > deadline {
            break all;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(all.len(), 48);
}

/// Appends committed together (a group on either engine) where some are replays of commands
/// already in: one refused row must not cost the others theirs. Each gets its own outcome,
/// a replay its original positions, and every command's record names its own events.
async fn concurrent_appends_among_replays_each_get_their_own_outcome_and_command_record(
    db: &TestDb,
) {
    const WRITERS: u64 = 48;
    let command_ids: Vec<Uuid> = (0..WRITERS).map(|_| Uuid::now_v7()).collect();
    let stream = |writer: u64| format!("lead-grouped-{writer}");
    let three = |writer: u64| {
        (0..3)
            .map(|n| event("Grouped", json!({"writer": writer, "n": n})))
            .collect::<Vec<_>>()
    };
    // Every sixth writer's command is in already: its append below is a replay.
    let mut originals = std::collections::HashMap::new();
    for writer in (0..WRITERS).filter(|w| w % 6 == 5) {
        let mut first = request(&stream(writer), ExpectedVersion::NoStream, three(writer));
        first.command_id = Some(command_ids[writer as usize]);
        originals.insert(writer, db.store.append(first).await.unwrap());
    }
    let barrier = Arc::new(Barrier::new(WRITERS as usize));
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = db.store.clone();
            let barrier = barrier.clone();
            let mut append = request(&stream(writer), ExpectedVersion::NoStream, three(writer));
            append.command_id = Some(command_ids[writer as usize]);
            tokio::spawn(async move {
                barrier.wait().await;
                (writer, store.append(append).await)
            })
        })
        .collect();
    let mut positions = HashSet::new();
    for handle in writers {
        let (writer, outcome) = handle.await.unwrap();
        let outcome = outcome.unwrap_or_else(|e| panic!("writer {writer}: {e:?}"));
        assert_eq!(outcome.stream_id, stream(writer));
        assert_eq!((outcome.first_version, outcome.last_version), (1, 3));
        if let Some(original) = originals.get(&writer) {
            assert!(outcome.replayed, "writer {writer}");
            assert_eq!(
                (outcome.first_position, outcome.last_position),
                (original.first_position, original.last_position),
                "writer {writer}"
            );
        } else {
            assert!(!outcome.replayed, "writer {writer}");
        }
        let stored = db.store.read_stream(&stream(writer), 1, 10).await.unwrap();
        assert_eq!(stored.len(), 3, "writer {writer}: a replay adds nothing");
        assert_eq!(
            stored[0].position, outcome.first_position,
            "writer {writer}"
        );
        assert_eq!(stored[2].position, outcome.last_position, "writer {writer}");
        for (n, recorded) in stored.iter().enumerate() {
            assert_eq!(recorded.payload, json!({"writer": writer, "n": n}));
            assert!(positions.insert(recorded.position), "{recorded:?}");
        }
        let record = db
            .store
            .find_command(command_ids[writer as usize])
            .await
            .unwrap()
            .expect("every command is recorded");
        assert_eq!(
            (record.first_position, record.last_position),
            (outcome.first_position, outcome.last_position),
            "writer {writer}"
        );
    }
    assert_eq!(positions.len(), 3 * WRITERS as usize);
}

async fn the_same_command_id_appended_again_returns_the_original_positions_and_no_new_rows(
    db: &TestDb,
) {
    let store = db.store.as_ref();
    let command_id = Uuid::now_v7();
    let mut first_request = request(
        "invoice-9",
        ExpectedVersion::NoStream,
        vec![event("InvoiceIssued", json!({}))],
    );
    first_request.command_id = Some(command_id);
    let first = store.append(first_request).await.unwrap();
    assert!(!first.replayed);

    // A retry: new event ids (the caller re-decided), and even an expectation that now fails.
    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Any,
        ExpectedVersion::Exact(1),
    ] {
        let mut retry = request(
            "invoice-9",
            expected,
            vec![event("InvoiceIssued", json!({}))],
        );
        retry.command_id = Some(command_id);
        let again = store.append(retry).await.unwrap();
        assert!(again.replayed, "{expected:?}");
        assert_eq!(
            (
                again.first_position,
                again.last_position,
                again.first_version,
                again.last_version
            ),
            (
                first.first_position,
                first.last_position,
                first.first_version,
                first.last_version
            )
        );
    }
    assert_eq!(
        store.read_stream("invoice-9", 1, 100).await.unwrap().len(),
        1
    );
    assert_eq!(
        store
            .find_command(command_id)
            .await
            .unwrap()
            .unwrap()
            .first_position,
        first.first_position
    );
    assert!(store.find_command(Uuid::now_v7()).await.unwrap().is_none());
}

async fn the_same_event_ids_appended_again_return_the_original_positions(db: &TestDb) {
    let store = db.store.as_ref();
    let events = vec![event("A", json!({})), event("B", json!({}))];
    let first = store
        .append(request("lead-7", ExpectedVersion::NoStream, events.clone()))
        .await
        .unwrap();
    let again = store
        .append(request("lead-7", ExpectedVersion::Any, events))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(
        (again.first_position, again.last_position),
        (first.first_position, first.last_position)
    );
    assert_eq!(store.read_stream("lead-7", 1, 100).await.unwrap().len(), 2);
}

async fn an_event_id_reused_in_another_stream_is_rejected(db: &TestDb) {
    let store = db.store.as_ref();
    let shared = event("A", json!({}));
    store
        .append(request(
            "lead-8",
            ExpectedVersion::NoStream,
            vec![shared.clone()],
        ))
        .await
        .unwrap();
    let error = store
        .append(request("lead-9", ExpectedVersion::NoStream, vec![shared]))
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::DuplicateEventId { .. }),
        "{error:?}"
    );
    assert!(store.read_stream("lead-9", 1, 10).await.unwrap().is_empty());
}

async fn an_empty_append_is_invalid(db: &TestDb) {
    let error = db
        .store
        .append(request("lead-0", ExpectedVersion::Any, vec![]))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::InvalidAppend(_)), "{error:?}");
}

async fn the_global_log_is_read_in_batches_from_a_checkpoint(db: &TestDb) {
    let store = db.store.as_ref();
    for stream in 0..5 {
        append_n(store, &format!("lead-{stream}"), 3).await;
    }
    // Tail like a projector: on PostgreSQL, write transactions of other tests on the same
    // cluster hold the read watermark back for a moment, so an empty batch means "not yet".
    let mut seen = Vec::new();
    let mut checkpoint = Checkpoint::START;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < 15 && tokio::time::Instant::now() < deadline {
        let batch = store.read_all(checkpoint, 4).await.unwrap();
        assert!(batch.len() <= 4);
        let Some(last) = batch.last() else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        checkpoint = Checkpoint::after(last);
        seen.extend(batch.into_iter().map(|e| e.position));
    }
    assert!(
        store.read_all(checkpoint, 4).await.unwrap().is_empty(),
        "nothing after the end"
    );
    assert_eq!(seen.len(), 15);
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 15, "no event read twice");
}

async fn eight_writers_and_a_tailing_reader_see_every_event_once_in_checkpoint_order(db: &TestDb) {
    const WRITERS: usize = 8;
    const EVENTS: usize = 2_000;
    let per_writer = EVENTS / WRITERS;
    let reader = {
        let store = db.store.clone();
        tokio::spawn(async move {
            let mut seen = Vec::with_capacity(EVENTS);
            let mut checkpoint = Checkpoint::START;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            while seen.len() < EVENTS && tokio::time::Instant::now() < deadline {
                let batch = store.read_all(checkpoint, 100).await.unwrap();
                if batch.is_empty() {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
                for recorded in batch {
                    let next = Checkpoint::after(&recorded);
                    assert!(
                        next > checkpoint,
                        "checkpoint order: {next:?} after {checkpoint:?}"
                    );
                    checkpoint = next;
                    seen.push(recorded.event_id);
                }
            }
            seen
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = db.store.clone();
            tokio::spawn(async move {
                let mut ids = Vec::with_capacity(per_writer);
                for n in 0..per_writer {
                    // Every writer appends to its own streams, ten events per stream.
                    let stream = format!("lead-w{writer}s{}", n / 10);
                    let new = event("Counted", json!({"writer": writer, "n": n}));
                    ids.push(new.event_id);
                    store
                        .append(request(
                            &stream,
                            ExpectedVersion::from_loaded((n % 10) as u64),
                            vec![new],
                        ))
                        .await
                        .unwrap();
                }
                ids
            })
        })
        .collect();
    let mut written = HashSet::new();
    for writer in writers {
        written.extend(writer.await.unwrap());
    }
    let seen = reader.await.unwrap();
    assert_eq!(seen.len(), EVENTS, "the reader saw every event");
    let distinct: HashSet<_> = seen.iter().copied().collect();
    assert_eq!(distinct.len(), EVENTS, "no event seen twice");
    assert_eq!(distinct, written);
}

async fn an_untouched_store_verifies(db: &TestDb) {
    append_n(db.store.as_ref(), "lead-a", 5).await;
    append_n(db.store.as_ref(), "invoice-b", 3).await;
    let report = store::verify(db.store.as_ref()).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.events_checked, report.streams_checked), (8, 2));
}

async fn verify_names_the_event_whose_payload_was_altered(db: &TestDb) {
    let store = db.store.as_ref();
    append_n(store, "invoice-t", 4).await;
    append_n(store, "lead-t", 2).await;
    let target = store
        .read_stream("invoice-t", 3, 1)
        .await
        .unwrap()
        .remove(0);
    let change = match db.engine {
        Engine::Sqlite => format!(
            "UPDATE events SET payload = '{{\"n\":7}}' WHERE position = {}",
            target.position
        ),
        Engine::Postgres => format!(
            "UPDATE events SET payload = '{{\"n\":7}}'::jsonb WHERE position = {}",
            target.position
        ),
    };
    db.execute_raw(&format!("{} {change}", db.disable_append_only_guard_sql()))
        .await
        .unwrap();
    let report = store::verify(store).await.unwrap();
    let broken = report.first_break.expect("tampering detected");
    assert_eq!(
        (broken.stream_id.as_str(), broken.version, broken.position),
        ("invoice-t", 3, target.position)
    );
    assert!(broken.reason.contains("altered"), "{}", broken.reason);
}

async fn verify_names_an_event_removed_from_the_middle_of_a_stream(db: &TestDb) {
    let store = db.store.as_ref();
    append_n(store, "lead-d", 4).await;
    let removed = store.read_stream("lead-d", 2, 1).await.unwrap().remove(0);
    let next = store.read_stream("lead-d", 3, 1).await.unwrap().remove(0);
    db.execute_raw(&format!(
        "{} DELETE FROM events WHERE position = {}",
        db.disable_append_only_guard_sql(),
        removed.position
    ))
    .await
    .unwrap();
    let broken = store::verify(store)
        .await
        .unwrap()
        .first_break
        .expect("gap detected");
    assert_eq!((broken.version, broken.position), (3, next.position));
}

async fn the_database_rejects_update_and_delete_of_events(db: &TestDb) {
    append_n(db.store.as_ref(), "lead-g", 2).await;
    assert!(db
        .execute_raw("UPDATE events SET event_type = 'Forged'")
        .await
        .is_err());
    assert!(db.execute_raw("DELETE FROM events").await.is_err());
    if db.engine == Engine::Postgres {
        assert!(db.execute_raw("TRUNCATE events").await.is_err());
    }
    assert_eq!(
        db.store.read_stream("lead-g", 1, 10).await.unwrap().len(),
        2
    );
    assert!(store::verify(db.store.as_ref()).await.unwrap().is_intact());
}

async fn a_payload_round_trips_unchanged(db: &TestDb) {
    let payload = json!({
        "name": "شركة الرياض للتقنية",
        "amount_halalas": 344_885,
        "big": i64::MAX,
        "negative": -29_990,
        "nested": {"z": [1, 2, {"a": null}], "flag": true},
        "quote": "\"'\\\n"
    });
    db.store
        .append(request(
            "invoice-p",
            ExpectedVersion::NoStream,
            vec![event("InvoiceIssued", payload.clone())],
        ))
        .await
        .unwrap();
    let stored = db
        .store
        .read_stream("invoice-p", 1, 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(stored.payload, payload);
    assert!(store::verify(db.store.as_ref()).await.unwrap().is_intact());
}

/// PostgreSQL only: a transaction that took a lower position but commits after a higher one
/// must not be skipped by a reader that already saw the higher one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_lower_position_committed_late_is_not_skipped() {
    use sqlx::Connection;
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    append_n(db.store.as_ref(), "lead-before", 1).await;

    // Transaction A takes the next position and holds it open, uncommitted.
    let mut held = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let mut tx = held.begin().await.unwrap();
    let held_position: i64 = sqlx::query_scalar(
        "INSERT INTO events (event_id, stream_id, stream_type, version, event_type, schema_version, \
         payload, metadata, recorded_at, prev_hash, hash) \
         VALUES ($1, 'lead-held', 'lead', 1, 'Held', 1, '{}', '{}', now(), $2, $2) RETURNING position",
    )
    .bind(Uuid::now_v7())
    .bind(vec![0u8; 32])
    .fetch_one(&mut *tx)
    .await
    .unwrap();

    // Transaction B takes a higher position and commits first.
    let later = db
        .store
        .append(request(
            "lead-later",
            ExpectedVersion::NoStream,
            vec![event("Later", json!({}))],
        ))
        .await
        .unwrap();
    assert!(later.first_position > held_position);

    // While A is open the reader must not move past it: it sees only what came before.
    let mut checkpoint = Checkpoint::START;
    let mut seen = Vec::new();
    for recorded in db.store.read_all(checkpoint, 100).await.unwrap() {
        checkpoint = Checkpoint::after(&recorded);
        seen.push(recorded.position);
    }
    assert!(
        !seen.contains(&later.first_position),
        "read past an open transaction: {seen:?}"
    );

    tx.commit().await.unwrap();
    // Tail on: other tests' write transactions on this cluster may hold the watermark a moment.
    tail_until_seen(
        db.store.as_ref(),
        &mut checkpoint,
        &mut seen,
        later.first_position,
        Duration::from_secs(60),
    )
    .await;
    assert!(
        seen.contains(&held_position),
        "the late-committing lower position was skipped: {seen:?}"
    );
    assert!(seen.contains(&later.first_position));
    assert_eq!(seen.iter().filter(|p| **p == held_position).count(), 1);
    let index_of = |position: i64| seen.iter().position(|p| *p == position).unwrap();
    assert!(
        index_of(held_position) < index_of(later.first_position),
        "checkpoint order is commit order: {seen:?}"
    );
    drop(held);
    db.cleanup().await;
}

/// PostgreSQL only: an append chains onto the head this process remembers without reading it,
/// so a head another process moved must still be caught (two stores on one database stand for
/// two replicas), and every chain must still verify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_head_another_process_moved_is_a_conflict_not_a_fork() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let here = db.store.as_ref();
    let there = store::postgres::PostgresStore::open(&db.url).await.unwrap();
    append_n(here, "lead-shared", 2).await;
    there
        .append(request(
            "lead-shared",
            ExpectedVersion::Exact(2),
            vec![event("There", json!({}))],
        ))
        .await
        .unwrap();

    // This process still remembers version 2 as the head.
    let stale = here
        .append(request(
            "lead-shared",
            ExpectedVersion::Exact(2),
            vec![event("StaleHere", json!({}))],
        ))
        .await
        .unwrap_err();
    assert!(matches!(stale, StoreError::Conflict { .. }), "{stale:?}");
    let fresh = here
        .append(request(
            "lead-shared",
            ExpectedVersion::Exact(3),
            vec![event("Here", json!({}))],
        ))
        .await
        .unwrap();
    assert_eq!((fresh.first_version, fresh.last_version), (4, 4));
    // And the other way round: `there` remembers 3, the stream is at 4.
    let stale = there
        .append(request(
            "lead-shared",
            ExpectedVersion::Exact(3),
            vec![event("StaleThere", json!({}))],
        ))
        .await
        .unwrap_err();
    assert!(matches!(stale, StoreError::Conflict { .. }), "{stale:?}");

    let events = here.read_stream("lead-shared", 1, 100).await.unwrap();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["Counted", "Counted", "There", "Here"]);
    assert_eq!(events[3].prev_hash, events[2].hash);
    assert!(store::verify(here).await.unwrap().is_intact());
    drop(there);
    db.cleanup().await;
}

/// PostgreSQL only: a transaction of this process that writes derived state only (a read-model
/// batch) never inserts an event, so the reader does not wait for it; an open append still
/// holds the reader back (the test above).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_an_open_derived_transaction_does_not_hold_the_reader_back() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    append_n(db.store.as_ref(), "lead-first", 1).await;
    let mut derived = db.store.sql().begin_derived().await.unwrap();
    derived
        .execute(
            "INSERT INTO projection_checkpoints \
             (name, position, transaction_id, events_applied, updated_at_us) \
             VALUES ('held_open', 0, 0, 0, 0)",
            &[],
        )
        .await
        .unwrap();
    let after = db
        .store
        .append(request(
            "lead-after",
            ExpectedVersion::NoStream,
            vec![event("After", json!({}))],
        ))
        .await
        .unwrap();

    // Other tests' appends on this cluster may hold the horizon a moment; the derived
    // transaction, open throughout, must not.
    let mut checkpoint = Checkpoint::START;
    let mut seen = Vec::new();
    tail_until_seen(
        db.store.as_ref(),
        &mut checkpoint,
        &mut seen,
        after.first_position,
        Duration::from_secs(30),
    )
    .await;
    assert!(
        seen.contains(&after.first_position),
        "the reader waited for an open derived transaction: {seen:?}"
    );
    derived.rollback().await.unwrap();
    db.cleanup().await;
}

/// Reads the global log on from `checkpoint` into `seen` until `position` is among what was
/// read or `patience` has passed (the caller asserts which).
async fn tail_until_seen(
    store: &dyn EventStore,
    checkpoint: &mut Checkpoint,
    seen: &mut Vec<i64>,
    position: i64,
    patience: Duration,
) {
    let deadline = tokio::time::Instant::now() + patience;
    while !seen.contains(&position) && tokio::time::Instant::now() < deadline {
        let batch = store.read_all(*checkpoint, 100).await.unwrap();
        if batch.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for recorded in batch {
            *checkpoint = Checkpoint::after(&recorded);
            seen.push(recorded.position);
        }
    }
}

/// An event of `command_id`'s.
fn event_of(command_id: Uuid, n: i64) -> NewEvent {
    let mut event = event("Added", json!({ "n": n }));
    event.metadata.command_id = Some(command_id);
    event
}

async fn an_append_of_several_commands_records_each_with_its_own_events(db: &TestDb) {
    let store = db.store.as_ref();
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    let events = vec![
        event_of(first, 1),
        event_of(first, 2),
        event_of(second, 3),
        event("Noted", json!({})),
    ];
    let mut append = request("tally-several", ExpectedVersion::NoStream, events);
    let own = Uuid::now_v7();
    append.command_id = Some(own);
    let outcome = store.append(append).await.unwrap();
    assert_eq!((outcome.first_version, outcome.last_version), (1, 4));
    let stored = store.read_stream("tally-several", 1, 10).await.unwrap();
    let commands: Vec<_> = stored.iter().map(|event| event.command_id).collect();
    assert_eq!(
        commands,
        [Some(first), Some(first), Some(second), Some(own)],
        "an event without a command of its own is the append's"
    );
    for (command_id, versions) in [(first, (1, 2)), (second, (3, 3)), (own, (4, 4))] {
        let record = store.find_command(command_id).await.unwrap().unwrap();
        let events = &stored[versions.0 as usize - 1..versions.1 as usize];
        assert_eq!(
            (record.first_version, record.last_version),
            versions,
            "command {command_id}"
        );
        assert_eq!(
            (record.first_position, record.last_position),
            (events[0].position, events[events.len() - 1].position)
        );
    }
    let report = store::verify(store).await.unwrap();
    assert!(
        report.is_intact(),
        "each event's hash covers its own command: {report:?}"
    );

    // A command's events are one run: the same command again after another is refused whole.
    let split = vec![event_of(first, 5), event_of(second, 6), event_of(first, 7)];
    let error = store
        .append(request("tally-split", ExpectedVersion::NoStream, split))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::InvalidAppend(_)), "{error:?}");
    assert!(store
        .read_stream("tally-split", 1, 10)
        .await
        .unwrap()
        .is_empty());
}
