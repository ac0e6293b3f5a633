//! `/metrics` after a short scripted run shows every metric family, in Prometheus's text
//! format, with the labels the alert rules and the dashboard use.

use std::collections::BTreeMap;

use serde_json::json;

use crate::app::{spawn_app, ADMIN_TOKEN, MOYASAR_TOKEN};
use crate::helpers::Engine;

/// `name{labels} value` lines into name -> [(labels, value)].
fn parse(text: &str) -> BTreeMap<String, Vec<(String, f64)>> {
    let mut families: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("a sample is `series value`");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, labels.trim_end_matches('}')),
            None => (series, ""),
        };
        families
            .entry(name.to_owned())
            .or_default()
            .push((labels.to_owned(), value));
    }
    families
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_show_every_family_after_a_short_run() {
    let app = spawn_app(Engine::Sqlite).await.unwrap();
    let auth = vec![
        ("Authorization", format!("Bearer {ADMIN_TOKEN}")),
        ("Content-Type", "application/json".to_owned()),
    ];
    let lead =
        json!({"name": "Metric Lead", "email": "metric@example.sa", "source": "landing_page"});
    let created = app
        .request(
            "POST",
            "/api/leads",
            &auth,
            &serde_json::to_vec(&lead).unwrap(),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let forged =
        json!({"id": "evt-m", "type": "payment_paid", "secret_token": "wrong", "data": {}});
    assert_eq!(app.post_moyasar_webhook(&forged).await.status, 401);
    let mut verification: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/tests/fixtures/moyasar_webhook_verification.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    verification["secret_token"] = json!(MOYASAR_TOKEN);
    assert_eq!(app.post_moyasar_webhook(&verification).await.status, 200);
    app.settle().await;
    assert_eq!(app.get("/api/verify", Some(ADMIN_TOKEN)).await.status, 200);
    api::metrics::sample_gauges(&app.state).await;

    let scraped = app.get("/metrics", Some(ADMIN_TOKEN)).await;
    assert_eq!(scraped.status, 200);
    let families = parse(&scraped.text);
    let has = |name: &str, label: &str| {
        families
            .get(name)
            .is_some_and(|samples| samples.iter().any(|(labels, _)| labels.contains(label)))
    };
    assert!(
        has("revledger_http_requests_total", r#"route="/api/leads""#),
        "{:?}",
        families.keys()
    );
    assert!(has("revledger_http_requests_total", r#"status="201""#));
    assert!(has(
        "revledger_http_request_duration_seconds_bucket",
        r#"route="/api/leads""#
    ));
    assert!(
        has("revledger_commands_total", r#"aggregate="lead""#)
            && has("revledger_commands_total", r#"outcome="ok""#)
    );
    assert!(has(
        "revledger_events_appended_total",
        r#"event_type="LeadCaptured""#
    ));
    assert!(has("revledger_store_append_duration_seconds_bucket", "le="));
    assert!(has(
        "revledger_webhook_deliveries_total",
        r#"outcome="forged""#
    ));
    assert!(has(
        "revledger_webhook_deliveries_total",
        r#"outcome="accepted""#
    ));
    for gauge in [
        "revledger_projection_checkpoint_position",
        "revledger_projection_lag_events",
        "revledger_projection_lag_seconds",
    ] {
        assert!(has(gauge, r#"projection="crm_board""#), "{gauge}");
    }
    assert!(has("revledger_webhook_inbox", r#"status="dead_lettered""#));
    assert!(has(
        "revledger_provider_reconciliation_findings",
        r#"kind="amount_differs""#
    ));
    assert!(families.contains_key("revledger_last_event_timestamp_seconds"));
    assert_eq!(families["revledger_chain_intact"][0].1, 1.0);
    let secret_leaked = scraped.text.contains(MOYASAR_TOKEN) || scraped.text.contains(ADMIN_TOKEN);
    assert!(!secret_leaked, "no secret in the metrics");
    app.stop().await;
}

/// Prometheus's `increase()` needs a sample before the first increment: a counter that first
/// appears with the value 1 shows no increase, and the first dead letter after a start would
/// never fire `RevledgerDeadLettersGrowing`. Every provider's outcome is exported from the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_delivery_outcome_is_exported_before_the_first_delivery() {
    let app = spawn_app(Engine::Sqlite).await.unwrap();
    let scraped = app.get("/metrics", Some(ADMIN_TOKEN)).await;
    assert_eq!(scraped.status, 200);
    let families = parse(&scraped.text);
    let samples = &families["revledger_webhook_deliveries_total"];
    for provider in ["moyasar", "calendly", "partners"] {
        for outcome in app::webhooks::OUTCOMES {
            let labels_present = samples.iter().any(|(labels, _)| {
                labels.contains(&format!(r#"provider="{provider}""#))
                    && labels.contains(&format!(r#"outcome="{outcome}""#))
            });
            assert!(labels_present, "{provider} {outcome} not exported");
        }
    }
    app.stop().await;
}
