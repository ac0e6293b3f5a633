//! Tampering with the stored log, one column at a time, on a realistic history (both engines).
//!
//! The attacker has database access: the append-only guard is lifted, one stored value of one
//! event in the middle of the log is changed, and the operator's verification — the per-stream
//! hash chains ([`store::verify`]) and then the audit trail's running hash and seals
//! ([`verify_seals`]), the two checks `revledger verify` and `GET /api/verify` run, in that
//! order — must fail and name that event. Deleting a row (in the middle of a stream, and the
//! last event of a stream, which no per-stream chain can see) and swapping two rows' positions
//! are detected too. After each case the events table is restored from a copy and must verify
//! intact again, so each detection is owed to that one change.

use std::process::Command;

use adapters::store;
use projections::audit_log::{verify_seals, SEAL_INTERVAL};

use crate::helpers::{Engine, TestDb};
use crate::history::Generator;

crate::on_both_engines!(
    changing_any_column_deleting_or_reordering_an_event_is_detected_and_names_it,
);

/// One stored event, as the tamperer sees it.
#[derive(Clone, Debug)]
struct Row {
    position: i64,
    stream_id: String,
    version: i64,
}

/// What verification said: the first break of the chains, else of the audit trail.
#[derive(Debug)]
enum Verdict {
    Intact,
    Chain {
        stream_id: String,
        version: u64,
        position: i64,
        reason: String,
    },
    Seal {
        position: Option<i64>,
        reason: String,
    },
}

impl Verdict {
    /// Whether the verdict points at the event at `position`: by its position, or by the
    /// audit row that recorded it ("recorded position P").
    fn names_position(&self, position: i64) -> bool {
        let mentions = |reason: &str| {
            [" ", ":", ",", ")"]
                .iter()
                .any(|end| reason.contains(&format!("position {position}{end}")))
        };
        match self {
            Verdict::Intact => false,
            Verdict::Chain {
                position: at,
                reason,
                ..
            } => *at == position || mentions(reason),
            Verdict::Seal {
                position: at,
                reason,
            } => *at == Some(position) || mentions(reason),
        }
    }
}

/// The operator's verification, as `revledger verify` runs it: chains first, then seals.
async fn verify_all(db: &TestDb) -> Verdict {
    let chains = store::verify(db.store.as_ref()).await.unwrap();
    if let Some(broken) = chains.first_break {
        return Verdict::Chain {
            stream_id: broken.stream_id,
            version: broken.version,
            position: broken.position,
            reason: broken.reason,
        };
    }
    let seals = verify_seals(db.store.as_ref(), &db.store.sql())
        .await
        .unwrap();
    match seals.first_break {
        None => Verdict::Intact,
        Some(broken) => Verdict::Seal {
            position: broken.position,
            reason: broken.reason,
        },
    }
}

async fn rows(db: &TestDb) -> Vec<Row> {
    db.store
        .sql()
        .fetch_all(
            "SELECT position, stream_id, version FROM events ORDER BY position",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| Row {
            position: row.i64(0).unwrap(),
            stream_id: row.text(1).unwrap(),
            version: row.i64(2).unwrap(),
        })
        .collect()
}

/// Runs `sql` with the guard lifted (it stays lifted: the attacker does not put it back).
async fn tamper(db: &TestDb, sql: &str) -> u64 {
    db.execute_raw(sql)
        .await
        .unwrap_or_else(|error| panic!("tampering with `{sql}` failed: {error}"))
}

/// Puts the events table back as it was before the case (from `tamper_backup`).
async fn restore(db: &TestDb) {
    let insert = match db.engine {
        Engine::Sqlite => "INSERT INTO events SELECT * FROM tamper_backup",
        Engine::Postgres => {
            "INSERT INTO events OVERRIDING SYSTEM VALUE SELECT * FROM tamper_backup"
        }
    };
    tamper(db, &format!("DELETE FROM events; {insert};")).await;
}

/// The first event in the middle of the log that has events of its stream before and after it.
fn middle_of_a_stream(rows: &[Row]) -> Row {
    let last_version = |stream: &str| {
        rows.iter()
            .filter(|r| r.stream_id == stream)
            .map(|r| r.version)
            .max()
            .unwrap()
    };
    rows[rows.len() / 2..]
        .iter()
        .find(|r| r.version > 1 && r.version < last_version(&r.stream_id))
        .expect("an event in the middle of a stream, in the middle of the log")
        .clone()
}

/// An event in the middle of the log that is the last of its stream (no chain sees it go).
fn last_of_a_stream(rows: &[Row]) -> Row {
    let max_position = rows.last().unwrap().position;
    rows[rows.len() / 2..]
        .iter()
        .find(|r| {
            r.position < max_position - 10
                && !rows
                    .iter()
                    .any(|o| o.stream_id == r.stream_id && o.version > r.version)
        })
        .expect("the last event of some stream in the middle of the log")
        .clone()
}

/// Two neighbouring events of different streams: swapping them keeps every stream's order.
fn neighbours_of_different_streams(rows: &[Row]) -> (Row, Row) {
    rows[rows.len() / 2..]
        .windows(2)
        .find(|pair| pair[0].stream_id != pair[1].stream_id)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .expect("two neighbours of different streams")
}

async fn changing_any_column_deleting_or_reordering_an_event_is_detected_and_names_it(db: &TestDb) {
    let handlers = app::handlers::Handlers::new(db.store.clone());
    let mut generator = Generator::new(handlers.clone(), 0x007a_3e55);
    generator.partners().await;
    // Enough for several seals, so the audit trail is evidence and not only a projection.
    generator.until(3 * SEAL_INTERVAL + 100).await;
    let intact = verify_seals(db.store.as_ref(), &db.store.sql())
        .await
        .unwrap();
    assert!(intact.seals_checked >= 3, "{intact:?}");
    assert!(matches!(verify_all(db).await, Verdict::Intact));

    // The attacker: lift the guard (and, on PostgreSQL, let positions be written).
    let lift = match db.engine {
        Engine::Sqlite => db.disable_append_only_guard_sql().to_owned(),
        Engine::Postgres => format!(
            "{} ALTER TABLE events ALTER COLUMN position SET GENERATED BY DEFAULT;",
            db.disable_append_only_guard_sql()
        ),
    };
    tamper(db, &lift).await;
    tamper(db, "CREATE TABLE tamper_backup AS SELECT * FROM events").await;

    let all = rows(db).await;
    let target = middle_of_a_stream(&all);
    let tail = last_of_a_stream(&all);
    let p = target.position;
    let (sqlite, postgres) = (db.engine == Engine::Sqlite, db.engine == Engine::Postgres);

    // One change per column (names from migrations/{sqlite,postgres}/0001_events.sql), chosen
    // as an attacker would: plausible values of the right type.
    let mut cases: Vec<(&str, String, &Row)> = vec![
        (
            "event_id",
            if sqlite {
                format!("UPDATE events SET event_id = randomblob(16) WHERE position = {p}")
            } else {
                format!("UPDATE events SET event_id = gen_random_uuid() WHERE position = {p}")
            },
            &target,
        ),
        (
            "stream_id",
            format!("UPDATE events SET stream_id = stream_id || '-moved' WHERE position = {p}"),
            &target,
        ),
        (
            "stream_type",
            format!("UPDATE events SET stream_type = 'payment' || stream_type WHERE position = {p}"),
            &target,
        ),
        (
            "version",
            format!("UPDATE events SET version = version + 1000 WHERE position = {p}"),
            &target,
        ),
        (
            "event_type",
            format!("UPDATE events SET event_type = event_type || 'd' WHERE position = {p}"),
            &target,
        ),
        (
            "schema_version",
            format!("UPDATE events SET schema_version = schema_version + 1 WHERE position = {p}"),
            &target,
        ),
        (
            "payload",
            if sqlite {
                format!("UPDATE events SET payload = json_set(payload, '$.tampered', 1) WHERE position = {p}")
            } else {
                format!("UPDATE events SET payload = payload || '{{\"tampered\": 1}}'::jsonb WHERE position = {p}")
            },
            &target,
        ),
        (
            "metadata",
            if sqlite {
                format!("UPDATE events SET metadata = json_set(metadata, '$.actor', 'someone else') WHERE position = {p}")
            } else {
                format!("UPDATE events SET metadata = metadata || '{{\"actor\": \"someone else\"}}'::jsonb WHERE position = {p}")
            },
            &target,
        ),
        (
            "command_id",
            if sqlite {
                format!("UPDATE events SET command_id = randomblob(16) WHERE position = {p}")
            } else {
                format!("UPDATE events SET command_id = gen_random_uuid() WHERE position = {p}")
            },
            &target,
        ),
        (
            "recorded_at",
            if sqlite {
                format!("UPDATE events SET recorded_at_us = recorded_at_us - 86400000000 WHERE position = {p}")
            } else {
                format!("UPDATE events SET recorded_at = recorded_at - interval '1 day' WHERE position = {p}")
            },
            &target,
        ),
        (
            "prev_hash",
            if sqlite {
                format!("UPDATE events SET prev_hash = randomblob(32) WHERE position = {p}")
            } else {
                format!("UPDATE events SET prev_hash = sha256(prev_hash) WHERE position = {p}")
            },
            &target,
        ),
        (
            "hash",
            if sqlite {
                format!("UPDATE events SET hash = randomblob(32) WHERE position = {p}")
            } else {
                format!("UPDATE events SET hash = sha256(hash) WHERE position = {p}")
            },
            &target,
        ),
        // A position is in no chain: moving the last event of a stream to the end of the log
        // keeps every stream's order; only the audit trail can see it.
        (
            "position",
            format!(
                "UPDATE events SET position = (SELECT MAX(position) + 1000 FROM tamper_backup) WHERE position = {}",
                tail.position
            ),
            &tail,
        ),
    ];
    if postgres {
        // The global read order is (transaction_id, position): moving an event's transaction
        // to the front reorders the log as reading sees it.
        cases.push((
            "transaction_id",
            format!(
                "UPDATE events SET transaction_id = (SELECT MIN(transaction_id) FROM tamper_backup) WHERE position = {}",
                tail.position
            ),
            &tail,
        ));
    }

    let mut detected = 0;
    let mut tried = 0;
    for (column, sql, event) in &cases {
        tried += 1;
        assert_eq!(tamper(db, sql).await, 1, "{column}: one row changed");
        let verdict = verify_all(db).await;
        assert!(
            verdict.names_position(event.position),
            "{column}: changing it at {event:?} must be detected and name the event: {verdict:?}"
        );
        if let Verdict::Chain {
            stream_id, version, ..
        } = &verdict
        {
            // The chains name the event itself: its stream (as now stored) and version.
            assert!(
                stream_id.starts_with(&event.stream_id),
                "{column}: {verdict:?}"
            );
            assert!(
                *version == event.version as u64 || *version == event.version as u64 + 1000,
                "{column}: {verdict:?}"
            );
        }
        detected += 1;
        println!(
            "TAMPER {:?} column={column} at position {}: {verdict:?}",
            db.engine, event.position
        );
        restore(db).await;
        assert!(
            matches!(verify_all(db).await, Verdict::Intact),
            "{column}: intact again once restored"
        );
    }

    // A row deleted from the middle of a stream: the next version no longer follows.
    tamper(db, &format!("DELETE FROM events WHERE position = {p}")).await;
    let verdict = verify_all(db).await;
    match &verdict {
        Verdict::Chain {
            stream_id,
            version,
            reason,
            ..
        } => {
            assert_eq!(
                (stream_id.as_str(), *version),
                (target.stream_id.as_str(), target.version as u64 + 1),
                "{verdict:?}"
            );
            assert!(reason.contains("missing"), "{reason}");
        }
        other => panic!("a deleted middle event is a chain break: {other:?}"),
    }
    restore(db).await;
    assert!(matches!(verify_all(db).await, Verdict::Intact));

    // The last event of a stream deleted: every chain still holds, the audit trail does not.
    tamper(
        db,
        &format!("DELETE FROM events WHERE position = {}", tail.position),
    )
    .await;
    assert!(
        store::verify(db.store.as_ref()).await.unwrap().is_intact(),
        "no per-stream chain can see its last event go"
    );
    let verdict = verify_all(db).await;
    assert!(
        matches!(verdict, Verdict::Seal { .. }) && verdict.names_position(tail.position),
        "the seals name the removed event: {verdict:?}"
    );
    restore(db).await;
    assert!(matches!(verify_all(db).await, Verdict::Intact));

    // Two neighbours of different streams swap positions: chains hold, the audit trail breaks.
    let (a, b) = neighbours_of_different_streams(&all);
    tamper(
        db,
        &format!(
            "UPDATE events SET position = -1 WHERE position = {a}; \
             UPDATE events SET position = {a} WHERE position = {b}; \
             UPDATE events SET position = {b} WHERE position = -1;",
            a = a.position,
            b = b.position
        ),
    )
    .await;
    assert!(store::verify(db.store.as_ref()).await.unwrap().is_intact());
    let verdict = verify_all(db).await;
    assert!(
        matches!(verdict, Verdict::Seal { .. }) && verdict.names_position(a.position),
        "the seals name the first reordered position: {verdict:?}"
    );

    // The operator's command says the same (exit 1, the audit sequence and position).
    let output = Command::new(env!("CARGO_BIN_EXE_revledger"))
        .args(["verify", "--database-url", &db.url])
        .env_remove("REVLEDGER_DATABASE_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        stdout.contains("BROKEN: audit sequence")
            && stdout.contains(&format!("position {}", a.position)),
        "{stdout}"
    );
    restore(db).await;
    assert!(matches!(verify_all(db).await, Verdict::Intact));

    println!(
        "TAMPER SUMMARY engine={:?} events={} columns_tampered={tried} columns_detected={detected} \
         deletes_tried=2 deletes_detected=2 reorders_tried=1 reorders_detected=1 cli_checked=1",
        db.engine,
        all.len()
    );
}
