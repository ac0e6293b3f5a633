//! The `revledger` binary end to end: serve on the embedded default, verify, events.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use adapters::store::{self, AppendRequest, EventMetadata, ExpectedVersion, NewEvent};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::temp_dir;

pub(crate) fn revledger(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_revledger"));
    command
        .current_dir(dir)
        .env_remove("REVLEDGER_DATABASE_URL")
        .env("REVLEDGER_LOG_FORMAT", "json");
    command
}

/// A running `revledger serve`, killed when dropped.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `revledger serve --listen 127.0.0.1:0` in `dir` and reads the bound address from its
/// JSON log.
fn serve(dir: &Path) -> Server {
    serve_with(dir, &[], &[])
}

/// [`serve`] with more arguments and environment variables.
pub(crate) fn serve_with(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Server {
    let mut command = revledger(dir);
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args);
    for (name, value) in envs {
        command.env(name, value);
    }
    let mut child = command
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn revledger serve");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let address = loop {
        let line = lines
            .next()
            .expect("serve exited before listening")
            .expect("read log");
        let entry: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(address) = entry["fields"]["address"].as_str() {
            break address.to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Server { child, address }
}

#[tokio::test]
async fn serve_with_no_configuration_answers_healthz_on_an_embedded_sqlite_file() {
    let dir = temp_dir();
    let server = serve(&dir);
    let health = crate::app::http_request(&server.address, "GET", "/healthz", &[], b"").await;
    assert_eq!(health.status, 200, "{}", health.text);
    assert!(health.text.contains("ok"));
    let ready = crate::app::http_request(&server.address, "GET", "/readyz", &[], b"").await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert!(ready.text.contains("sqlite"));
    assert!(
        dir.join("revledger.db").exists(),
        "the default database file is ./revledger.db"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn serve_exits_cleanly_on_sigterm() {
    let dir = temp_dir();
    let mut server = serve(&dir);
    let started = Instant::now();
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    let _ = std::fs::remove_dir_all(dir);
}

async fn seed(url: &str) {
    let store = store::open(url).await.unwrap();
    store.migrate().await.unwrap();
    for stream in ["lead-a", "invoice-b"] {
        for version in 0..3u64 {
            store
                .append(AppendRequest {
                    stream_id: stream.into(),
                    stream_type: stream.split('-').next().unwrap().into(),
                    expected_version: ExpectedVersion::from_loaded(version),
                    command_id: None,
                    inbox: None,
                    events: vec![NewEvent {
                        event_id: Uuid::now_v7(),
                        event_type: "Counted".into(),
                        schema_version: 1,
                        payload: json!({"amount_halalas": 1000 + version}),
                        metadata: EventMetadata::default(),
                    }],
                })
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn verify_passes_on_an_untouched_store_and_names_the_event_changed_by_hand() {
    let dir = temp_dir();
    let url = format!("sqlite://{}", dir.join("ledger.db").display());
    seed(&url).await;

    let intact = revledger(&dir)
        .args(["verify", "--database-url", &url])
        .output()
        .unwrap();
    assert!(intact.status.success(), "{intact:?}");
    assert!(String::from_utf8_lossy(&intact.stdout).contains("intact: 6 events in 2 streams"));

    // Play the attacker with file access: lift the guard and change one byte of one payload.
    let tamper = "DROP TRIGGER events_no_update; \
                  UPDATE events SET payload = replace(payload, '1001', '1009') WHERE stream_id = 'invoice-b' AND version = 2;";
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let changed = sqlx::raw_sql(tamper)
        .execute(&mut conn)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(changed, 1);
    drop(conn);

    let broken = revledger(&dir)
        .args(["verify", "--database-url", &url])
        .output()
        .unwrap();
    assert_eq!(broken.status.code(), Some(1), "{broken:?}");
    let stdout = String::from_utf8_lossy(&broken.stdout);
    assert!(
        stdout.contains("BROKEN: stream invoice-b version 2 position 5"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn events_prints_the_global_log_as_ndjson_from_a_position() {
    let dir = temp_dir();
    let url = format!("sqlite://{}", dir.join("ledger.db").display());
    seed(&url).await;
    let output = revledger(&dir)
        .args(["events", "--after", "2", "--database-url", &url])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    let positions: Vec<i64> = lines
        .iter()
        .map(|e| e["position"].as_i64().unwrap())
        .collect();
    assert_eq!(positions, vec![3, 4, 5, 6]);
    assert_eq!(lines[0]["stream_id"], "lead-a");
    assert_eq!(lines[0]["hash"].as_str().unwrap().len(), 64);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_unsupported_database_url_is_a_clear_error() {
    let dir = temp_dir();
    let output = revledger(&dir)
        .args(["verify", "--database-url", "mysql://x"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unsupported database url"));
    let _ = std::fs::remove_dir_all(dir);
}

/// Seeds a small generated history into a fresh SQLite file through the real handlers.
async fn seeded_history(dir: &Path) -> (String, std::sync::Arc<app::handlers::Handlers>) {
    let url = format!("sqlite://{}", dir.join("ledger.db").display());
    let store = store::open(&url).await.unwrap();
    store.migrate().await.unwrap();
    let handlers = app::handlers::Handlers::new(store);
    let mut generator = crate::history::Generator::new(handlers.clone(), 99);
    generator.partners().await;
    generator.until(600).await;
    (url, handlers)
}

#[tokio::test]
async fn snapshot_takes_what_is_due_and_prints_one_line_per_read_model() {
    let dir = temp_dir();
    let (url, handlers) = seeded_history(&dir).await;
    let snapshot = || {
        revledger(&dir)
            .args([
                "snapshot",
                "--snapshot-every-events",
                "100",
                "--snapshot-at-day-end",
                "false",
                "--database-url",
                &url,
            ])
            .output()
            .unwrap()
    };
    let lines = |output: &std::process::Output| -> Vec<serde_json::Value> {
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    };
    let head = handlers.store.head_position().await.unwrap();
    let first = lines(&snapshot());
    assert_eq!(first.len(), projections::read_models().len(), "{first:?}");
    for taken in &first {
        assert_eq!(taken["snapshots"], head / 100, "{taken}");
        assert_eq!(
            taken["latest"]["events_applied"],
            head / 100 * 100,
            "{taken}"
        );
    }
    let again = lines(&snapshot());
    assert!(
        again.iter().all(|taken| taken["snapshots"] == 0),
        "{again:?}"
    );
}

#[tokio::test]
async fn replay_as_of_prints_the_funnel_as_it_was_at_that_position() {
    let dir = temp_dir();
    let (url, handlers) = seeded_history(&dir).await;
    let middle = handlers.store.head_position().await.unwrap() / 2;
    let projection = projections::read_model("funnel").unwrap();
    let expected = projection
        .render(
            &projections::runtime::as_of(
                handlers.store.clone(),
                projection.clone(),
                projections::AsOf::Position(middle),
            )
            .await
            .unwrap(),
        )
        .await
        .unwrap();
    let output = revledger(&dir)
        .args([
            "replay",
            "--as-of",
            &middle.to_string(),
            "--projection",
            "funnel",
            "--database-url",
            &url,
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed, expected);
    let full = projection
        .render(
            &projections::runtime::as_of(
                handlers.store.clone(),
                projection.clone(),
                projections::AsOf::Position(i64::MAX),
            )
            .await
            .unwrap(),
        )
        .await
        .unwrap();
    assert_ne!(
        printed["leads"], full["leads"],
        "the middle of the history is not its end"
    );

    let bad = revledger(&dir)
        .args([
            "replay",
            "--as-of",
            "yesterday",
            "--projection",
            "funnel",
            "--database-url",
            &url,
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("neither a position nor an RFC 3339 time")
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn rebuild_reports_events_seconds_and_rate_and_verify_checks_the_seals_and_the_ledger() {
    let dir = temp_dir();
    let (url, handlers) = seeded_history(&dir).await;
    let head = handlers.store.head_position().await.unwrap();
    let output = revledger(&dir)
        .args(["rebuild", "--database-url", &url])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    for name in ["audit_log", "funnel", "crm_board", "revenue"] {
        assert!(
            stdout.contains(&format!("rebuilt {name}: {head} events in")),
            "{stdout}"
        );
    }
    assert!(stdout.contains("events/s"), "{stdout}");
    let verified = revledger(&dir)
        .args(["verify", "--database-url", &url])
        .output()
        .unwrap();
    let verified_out = String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success(), "{verified_out}");
    assert!(
        verified_out.contains(&format!("audit trail intact: {head} events")),
        "{verified_out}"
    );

    // `--ledger`: the journal's kept balances derived again from its lines; a damaged total is
    // named, and the check exits 1.
    let ledger = revledger(&dir)
        .args(["verify", "--ledger", "--database-url", &url])
        .output()
        .unwrap();
    let ledger_out = String::from_utf8_lossy(&ledger.stdout);
    assert!(ledger.status.success(), "{ledger_out}");
    assert!(
        ledger_out.contains("ledger balances intact:") && !ledger_out.contains(" 0 entries"),
        "{ledger_out}"
    );
    handlers
        .store
        .sql()
        .execute(
            "UPDATE ledger_counters SET value = value + 5 WHERE name = 'credit_halalas'",
            &[],
        )
        .await
        .unwrap();
    let damaged = revledger(&dir)
        .args(["verify", "--ledger", "--database-url", &url])
        .output()
        .unwrap();
    let damaged_out = String::from_utf8_lossy(&damaged.stdout);
    assert_eq!(damaged.status.code(), Some(1), "{damaged_out}");
    assert!(
        damaged_out.contains("BROKEN: ledger counter credit_halalas"),
        "{damaged_out}"
    );
    handlers
        .store
        .sql()
        .execute(
            "UPDATE ledger_counters SET value = value - 5 WHERE name = 'credit_halalas'",
            &[],
        )
        .await
        .unwrap();

    // Remove the last event of a stream: no chain notices, the audit trail does.
    let last = handlers
        .store
        .sql()
        .fetch_optional("SELECT MAX(position) FROM events", &[])
        .await
        .unwrap()
        .unwrap()
        .i64(0)
        .unwrap();
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::raw_sql(&format!(
        "DROP TRIGGER events_no_delete; DELETE FROM events WHERE position = {last};"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    drop(conn);
    let broken = revledger(&dir)
        .args(["verify", "--database-url", &url])
        .output()
        .unwrap();
    let broken_out = String::from_utf8_lossy(&broken.stdout);
    assert_eq!(broken.status.code(), Some(1), "{broken_out}");
    assert!(
        broken_out.contains("BROKEN: audit sequence"),
        "{broken_out}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn zatca_qr_prints_the_published_arabic_vector() {
    let dir = temp_dir();
    let output = revledger(&dir)
        .args([
            "zatca-qr",
            "--seller-name",
            "مرسول",
            "--vat-number",
            "310228833400003",
            "--timestamp",
            "2021-10-20T19:29:32+03:00",
            "--total",
            "115",
            "--vat",
            "15",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "AQrZhdix2LPZiNmEAg8zMTAyMjg4MzM0MDAwMDMDGTIwMjEtMTAtMjBUMTk6Mjk6MzIrMDM6MDAEAzExNQUCMTU="
    );
    assert!(
        !dir.join("revledger.db").exists(),
        "printing a QR touches no database"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn config_check_redacts_secrets_and_refuses_an_enabled_provider_without_its_secret() {
    let dir = temp_dir();
    let ok = revledger(&dir)
        .args(["config", "check"])
        .env(
            "REVLEDGER_DATABASE_URL",
            "postgres://ledger:s3cr3t-pw@127.0.0.1:5432/prod",
        )
        .env("REVLEDGER_MOYASAR_SECRET_TOKEN", "moyasar-very-secret")
        .env("REVLEDGER_WEBHOOKS", "moyasar")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{stdout}");
    assert!(
        stdout.contains("1 secret(s) [redacted]") && stdout.contains("ledger:[redacted]@"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("moyasar-very-secret") && !stdout.contains("s3cr3t-pw"),
        "{stdout}"
    );
    let missing = revledger(&dir)
        .args(["config", "check"])
        .env("REVLEDGER_WEBHOOKS", "moyasar,calendly")
        .env("REVLEDGER_MOYASAR_SECRET_TOKEN", "x")
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stdout)
        .contains("enables calendly but REVLEDGER_CALENDLY_SIGNING_KEY is not set"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn logs_carry_request_ids_and_never_a_secret_and_events_record_the_request_id() {
    let dir = temp_dir();
    let secrets = [
        ("REVLEDGER_ADMIN_TOKEN", "admin-secret-4e1f"),
        ("REVLEDGER_MOYASAR_SECRET_TOKEN", "moyasar-secret-9a2b"),
        ("REVLEDGER_CALENDLY_SIGNING_KEY", "calendly-secret-77c1"),
    ];
    let mut command = revledger(&dir);
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("REVLEDGER_LOG", "debug");
    for (name, value) in secrets {
        command.env(name, value);
    }
    let mut child = command
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let address = loop {
        let line = receiver
            .recv_timeout(Duration::from_secs(30))
            .expect("serve logs its address");
        let entry: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(address) = entry["fields"]["address"].as_str() {
            break address.to_owned();
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (created, _) = runtime.block_on(async {
        let auth = vec![("Authorization", "Bearer admin-secret-4e1f".to_owned()), ("x-request-id", "req-test-1".to_owned()), ("Content-Type", "application/json".to_owned())];
        let lead = json!({"name": "Logged", "email": "logged@example.sa", "source": "landing_page"});
        let created = crate::app::http_request(&address, "POST", "/api/leads", &auth, &serde_json::to_vec(&lead).unwrap()).await;
        let forged = json!({"id": "evt-log", "type": "payment_paid", "secret_token": "moyasar-secret-9a2X", "data": {}});
        crate::app::http_request(&address, "POST", "/webhooks/moyasar", &[], &serde_json::to_vec(&forged).unwrap()).await;
        let wrong_token = vec![("Authorization", "Bearer admin-secret-4e1X".to_owned())];
        crate::app::http_request(&address, "GET", "/api/funnel", &wrong_token, b"").await;
        (created, ())
    });
    assert_eq!(created.status, 201, "{}", created.text);
    let stream = created.body["stream_id"].as_str().unwrap().to_owned();
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    child.wait().unwrap();
    let logs: Vec<String> = receiver.try_iter().collect();
    let all = logs.join("\n");
    assert!(
        all.contains("req-test-1"),
        "the request id is in the request's log lines"
    );
    for (_, secret) in secrets {
        assert!(!all.contains(secret), "a secret leaked into the logs");
    }
    assert!(
        !all.contains("admin-secret-4e1X") && !all.contains("moyasar-secret-9a2X"),
        "presented credentials are not logged either"
    );
    let url = format!("sqlite://{}", dir.join("revledger.db").display());
    let recorded = runtime.block_on(async {
        let store = store::open(&url).await.unwrap();
        store.read_stream(&stream, 1, 10).await.unwrap()
    });
    assert_eq!(recorded[0].metadata["request_id"], "req-test-1");
    let _ = std::fs::remove_dir_all(dir);
}

/// `revledger bench <args>` on a new SQLite file in `dir`: its one JSON line of figures.
fn bench(dir: &Path, args: &[&str]) -> serde_json::Value {
    let url = format!("sqlite://{}", dir.join("bench.db").display());
    let output = revledger(dir)
        .arg("bench")
        .args(args)
        .args(["--database-url", &url])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).expect("one JSON line")
}

#[test]
fn bench_lifecycle_takes_every_lead_through_its_eight_commands_and_reports_each() {
    let dir = temp_dir();
    let figures = bench(&dir, &["lifecycle", "--leads", "12", "--concurrency", "3"]);
    assert_eq!(figures["commands"], 12 * 8, "{figures}");
    assert_eq!(figures["referred_leads"], 4, "{figures}");
    // Per lead: captured, qualified, demo booked, proposal sent, number allocated, invoice
    // issued, payment paid and recorded, invoice paid, lead paid, onboarding started,
    // activated; per referred lead also the commission and the partner's customer activated.
    assert_eq!(figures["events_appended"], 12 * 12 + 4 * 2, "{figures}");
    let by_command = figures["by_command"].as_object().expect("by_command");
    let commands: Vec<&str> = by_command.keys().map(String::as_str).collect();
    assert_eq!(
        commands,
        [
            "activate",
            "book_demo",
            "capture",
            "issue_invoice",
            "onboard",
            "payment_webhook",
            "proposal",
            "qualify"
        ]
    );
    for (command, latency) in by_command {
        let p50 = latency["p50_ms"].as_f64().expect("p50_ms");
        let p99 = latency["p99_ms"].as_f64().expect("p99_ms");
        assert!(0.0 < p50 && p50 <= p99, "{command}: {latency}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// `bench reads` on a small generated store: every GET operation of the OpenAPI document and
/// every dashboard page is timed with real values and answers 2xx, so the bench cannot rot
/// silently when a route is added or a parameter changes.
#[test]
fn bench_reads_times_every_get_route_of_the_document_and_every_dashboard_page() {
    let dir = temp_dir();
    let figures = bench(&dir, &["reads", "--events", "2000", "--queries", "2"]);
    assert!(figures["events"].as_i64().unwrap() >= 2000, "{figures}");
    assert!(figures["catch_up"]["events_per_sec"].as_f64().unwrap() > 0.0);

    // A generated history is Phase 1: no document is stamped, so the XML route has nothing to
    // name, and that is the one route the bench may skip, saying why.
    let skipped = figures["skipped"].as_array().expect("skipped");
    let skipped_routes: Vec<&str> = skipped
        .iter()
        .map(|s| s["route"].as_str().unwrap())
        .collect();
    assert_eq!(
        skipped_routes,
        ["GET /api/invoices/{id}/xml"],
        "{skipped:?}"
    );
    assert!(skipped[0]["reason"].as_str().unwrap().contains("Phase 2"));

    let routes = figures["routes"].as_array().expect("routes");
    let timed: std::collections::BTreeSet<&str> = routes
        .iter()
        .map(|r| r["route"].as_str().unwrap())
        .collect();
    let document = api::openapi::build();
    let get_routes = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, item)| item.get("get").is_some())
        .map(|(path, _)| format!("GET {path}"))
        .filter(|route| !skipped_routes.contains(&route.as_str()));
    let pages = api::dashboard::layout::Page::ALL
        .into_iter()
        .map(|page| format!("GET {}", page.path()));
    for route in get_routes.chain(pages) {
        assert!(timed.contains(route.as_str()), "{route} was not timed");
    }
    for route in routes {
        let status = route["status"].as_u64().unwrap();
        assert!((200..300).contains(&status), "{route}");
        assert_eq!(route["calls"], 2, "{route}");
        let (p50, p99, max) = (
            route["p50_ms"].as_f64().unwrap(),
            route["p99_ms"].as_f64().unwrap(),
            route["max_ms"].as_f64().unwrap(),
        );
        assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{route}");
    }
    // Filters get real values too: the board by the lead's stage, the ledger's cash account.
    let names: Vec<&str> = routes.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert!(
        names.contains(&"GET /api/crm/board (stage=active)"),
        "{names:?}"
    );
    assert!(
        names.contains(&"GET /api/ledger/accounts/{account} (account=cash)"),
        "{names:?}"
    );
    assert_eq!(figures["non_2xx"], serde_json::json!([]));
    let _ = std::fs::remove_dir_all(dir);
}

/// `revledger webhooks replay --all`: each dead letter tried again through the application's
/// delivery use case, answered per line, with `cli` as the actor of what it records; then
/// none is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_replay_all_tries_each_dead_letter_again_as_the_cli() {
    let app = crate::app::spawn_app(crate::helpers::Engine::Sqlite)
        .await
        .unwrap();
    let stream = crate::desk::dead_letter(&app, "lead-cli-replay").await;
    let letters = app.state.deliveries.dead_letters(10).await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let db = app.stop_keeping_db().await;

    let dir = temp_dir();
    let replayed = revledger(&dir)
        .args(["webhooks", "replay", "--all", "--database-url", &db.url])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&replayed.stdout);
    assert!(replayed.status.success(), "{stdout}");
    assert_eq!(stdout.trim(), format!("{}: 200", letters[0].id));

    let events = db.store.read_stream(&stream, 1, 100).await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.event_type, "DemoCanceled");
    assert_eq!(last.metadata["actor"], "cli", "{:?}", last.metadata);
    let again = revledger(&dir)
        .args(["webhooks", "replay", "--all", "--database-url", &db.url])
        .output()
        .unwrap();
    assert!(again.status.success());
    assert_eq!(String::from_utf8_lossy(&again.stdout), "", "none is left");
    db.cleanup().await;
    let _ = std::fs::remove_dir_all(dir);
}
