//! Two `revledger serve` processes on one PostgreSQL database: both take commands, exactly one
//! runs the projections and process managers, and when it is killed with SIGKILL mid-load the
//! other takes over within seconds; every projection completes and nothing is doubled.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::app::{http_request, try_http_request};
use crate::cli::serve_with;
use crate::helpers::{temp_dir, TestDb};

const TOKEN: &str = "replica-admin-token";

async fn is_leader(address: &str) -> bool {
    let answer = try_http_request(address, "GET", "/readyz", &[], b"").await;
    answer.is_some_and(|answer| answer.body["leader"].as_bool() == Some(true))
}

/// Captures a lead through `address` with an idempotency key, so a retry elsewhere lands once.
async fn capture(address: &str, n: usize) -> u16 {
    let body = serde_json::to_vec(&json!({"name": format!("Replica lead {n}"), "email": format!("r{n}@example.sa"), "source": "landing_page"})).unwrap();
    let headers = [
        ("Authorization", format!("Bearer {TOKEN}")),
        ("Content-Type", "application/json".to_owned()),
        ("Idempotency-Key", format!("lead-{n}")),
    ];
    try_http_request(address, "POST", "/api/leads", &headers, &body)
        .await
        .map_or(0, |answer| answer.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_leading_replica_mid_load_hands_the_workers_over_and_doubles_nothing() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let dir = temp_dir();
    let envs = [
        ("REVLEDGER_DATABASE_URL", db.url.as_str()),
        ("REVLEDGER_ADMIN_TOKEN", TOKEN),
    ];
    let mut replicas = vec![serve_with(&dir, &[], &envs), serve_with(&dir, &[], &envs)];

    // Exactly one leads.
    let deadline = Instant::now() + Duration::from_secs(20);
    let leader = loop {
        let leading: Vec<usize> = {
            let mut leading = Vec::new();
            for (index, replica) in replicas.iter().enumerate() {
                if is_leader(&replica.address).await {
                    leading.push(index);
                }
            }
            leading
        };
        if leading.len() == 1 {
            break leading[0];
        }
        assert!(leading.len() <= 1, "two leaders: {leading:?}");
        assert!(Instant::now() < deadline, "no replica took the lead");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    const LEADS: usize = 120;
    let mut acknowledged = 0;
    for n in 0..LEADS {
        if n == LEADS / 2 {
            // SIGKILL: no drain, no checkpoint commit, the lock connection just drops.
            replicas[leader].child.kill().unwrap();
            replicas[leader].child.wait().unwrap();
        }
        let first = &replicas[n % 2].address;
        let survivor = &replicas[1 - leader].address;
        let status = match capture(first, n).await {
            0 => capture(survivor, n).await,
            status => status,
        };
        assert!(status == 201 || status == 200, "lead {n}: {status}");
        acknowledged += 1;
    }
    let survivor = replicas[1 - leader].address.clone();

    // The survivor takes over and every projection completes.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !is_leader(&survivor).await {
        assert!(
            Instant::now() < deadline,
            "the survivor never took the lead"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let auth = [("Authorization", format!("Bearer {TOKEN}"))];
    loop {
        let lag = http_request(&survivor, "GET", "/api/projections", &auth, b"").await;
        let behind: i64 = lag.body["projections"].as_array().map_or(1, |all| {
            all.iter()
                .map(|p| p["events_behind"].as_i64().unwrap_or(1))
                .sum()
        });
        if behind == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "projections did not complete: {}",
            lag.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Each acknowledged lead exactly once, in the log and in every read model.
    let captured = db
        .store
        .sql()
        .fetch_optional(
            "SELECT COUNT(*) FROM events WHERE event_type = 'LeadCaptured'",
            &[],
        )
        .await
        .unwrap()
        .unwrap()
        .i64(0)
        .unwrap();
    assert_eq!(captured, acknowledged as i64);
    let funnel = http_request(&survivor, "GET", "/api/funnel", &auth, b"").await;
    assert_eq!(
        funnel.body["leads"].as_i64(),
        Some(acknowledged as i64),
        "{}",
        funnel.text
    );
    let events = db.store.head_position().await.unwrap();
    let audited = db
        .store
        .sql()
        .fetch_optional("SELECT COUNT(*) FROM audit_log", &[])
        .await
        .unwrap()
        .unwrap()
        .i64(0)
        .unwrap();
    assert_eq!(
        audited,
        db.store
            .sql()
            .fetch_optional("SELECT COUNT(*) FROM events", &[])
            .await
            .unwrap()
            .unwrap()
            .i64(0)
            .unwrap()
    );
    assert!(events > 0);
    for projection in projections::read_models() {
        let rebuilt = projections::runtime::as_of(
            db.store.clone(),
            projection.clone(),
            projections::AsOf::Position(i64::MAX),
        )
        .await
        .unwrap();
        for table in projection.tables() {
            assert_eq!(
                projections::runtime::dump_table(&db.store.sql(), table)
                    .await
                    .unwrap(),
                projections::runtime::dump_table(&rebuilt, table)
                    .await
                    .unwrap(),
                "{table} equals its rebuild after the failover"
            );
        }
    }
    drop(replicas);
    db.cleanup().await;
    let _ = std::fs::remove_dir_all(dir);
}
