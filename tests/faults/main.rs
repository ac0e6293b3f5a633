//! Fault injection: the real `revledger serve` under load while it is SIGKILLed and restarted,
//! and while its PostgreSQL connections are terminated and the cluster is restarted.
//!
//! A separate test binary from `tests/it` because it kills processes and restarts the shared
//! PostgreSQL server: cargo runs test binaries one after another, so nothing in `tests/it` runs
//! while these do, and [`SERIAL`] keeps these tests from overlapping each other.
//!
//! - [`harness`]: the child-process server, the load driver (concurrent clients sending lead
//!   lifecycle commands with Idempotency-Keys and signed Moyasar `payment_paid` deliveries,
//!   retrying unacknowledged ones with the same key or delivery id), and the checks.
//! - Item 1 (crash under load): [`sqlite::sigkill_under_load_loses_and_doubles_nothing`] and
//!   its PostgreSQL twin.
//! - Item 2 (database faults, PostgreSQL only):
//!   [`postgres_backends_terminated_and_cluster_restarted_under_load_service_recovers`].
//!
//! Seeded: each run prints its seed; `REVLEDGER_FAULTS_SEED=<seed>` repeats the kill moments.
//! Each run prints one summary line: `faults: … sent=… acknowledged=… kills=… lost=0 doubled=0`.

#[path = "../it/helpers.rs"]
#[allow(dead_code, unused_macros)]
mod helpers;

mod harness;

use std::process::Command;
use std::time::{Duration, Instant};

use api::auth::Role;
use harness::{Load, Rng, Server, Tally, Token};
use helpers::{Engine, TestDb};

/// The fault tests never overlap: one kills servers, the other stops PostgreSQL.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Concurrent clients of the driver.
const CLIENTS: usize = 4;
/// SIGKILLs per run of item 1.
const KILLS: usize = 6;
/// Requests acknowledged after each restart before the next fault: the service did work again.
const PROGRESS: u64 = 8;
/// The whole load of one test must be done within this (a failure names what was pending).
const LOAD_DEADLINE: Duration = Duration::from_secs(150);

fn summary(engine: &str, seed: u64, kills: usize, faults: &str, tally: &Tally) {
    println!(
        "faults: engine={engine} seed={seed} sent={} acknowledged={} interrupted={} \
         unacked_abandoned={} unacked_applied={} kills={kills} {faults} lost={} doubled={}",
        tally.sent,
        tally.acknowledged,
        tally.interrupted,
        tally.unacked_abandoned,
        tally.unacked_applied,
        tally.lost,
        tally.doubled
    );
    assert!(
        tally.problems.is_empty() && tally.lost == 0 && tally.doubled == 0,
        "seed {seed}: {} problems:\n{}",
        tally.problems.len(),
        tally.problems.join("\n")
    );
    assert!(tally.acknowledged > 0);
}

/// Waits (bounded) until `CLIENTS + 1` more leads than `since` completed their lifecycle. Then
/// some client completed two leads after that moment, so the second one's payment was sent,
/// and reached its lead through the process managers (onboarding needs it), after it: the
/// workers run.
async fn wait_workers_ran(load: &Load, since: usize, deadline: Instant, what: &str) {
    while load.completed() < since + CLIENTS + 1 {
        assert!(
            Instant::now() < deadline,
            "process managers did not carry payments to leads {what}: {} leads completed, waiting for {}",
            load.completed(),
            since + CLIENTS + 1
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (bounded by `deadline`) until `load` has `count` more acknowledged requests than
/// `since`; `what` names the phase in the failure.
async fn wait_progress(load: &Load, since: u64, count: u64, deadline: Instant, what: &str) {
    while load.acked() < since + count {
        assert!(
            Instant::now() < deadline,
            "no progress {what}: {} acknowledged, waiting for {}",
            load.acked(),
            since + count
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Item 1: crash under load

async fn sigkill_under_load(engine: Engine) {
    let _serial = SERIAL.lock().await;
    let Some(db) = TestDb::new(engine).await else {
        return;
    };
    let seed = harness::seed();
    println!("seed {seed} (REVLEDGER_FAULTS_SEED={seed} repeats it)");
    let mut rng = Rng::new(seed);
    let dir = harness::run_dir("crash");
    let log = dir.join("serve.log");
    let sales = Token::create(&db.url, Role::Sales);
    let finance = Token::create(&db.url, Role::Finance);
    let deadline = Instant::now() + LOAD_DEADLINE;
    let load = Load::new(sales, finance, format!("{seed:x}"), deadline);

    let mut server = Server::start(&db.url, &log).await;
    load.point_at(Some(server.address.clone()));
    let clients = load.spawn_clients(CLIENTS);
    let mut kills = 0;
    for _ in 0..KILLS {
        let since = load.acked();
        wait_progress(&load, since, PROGRESS, deadline, "after a (re)start").await;
        tokio::time::sleep(rng.millis(100, 1200)).await;
        // Clients are mid-request: whatever the server was doing is cut off.
        server.kill();
        load.point_at(None);
        kills += 1;
        tokio::time::sleep(rng.millis(0, 300)).await;
        server = Server::start(&db.url, &log).await;
        load.point_at(Some(server.address.clone()));
    }
    let since = load.acked();
    wait_progress(&load, since, PROGRESS, deadline, "after the last restart").await;
    load.stop();
    harness::join_clients(&load, clients).await;

    let head = harness::wait_caught_up(&server.address, deadline).await;
    let status = server.terminate().await;
    assert!(status.success(), "serve exits 0 on SIGTERM: {status:?}");
    let tally = harness::check_after(&db.url, &load, head).await;
    let name = match engine {
        Engine::Sqlite => "sqlite",
        Engine::Postgres => "postgres",
    };
    summary(name, seed, kills, "", &tally);
    assert_eq!(kills, KILLS);
    db.cleanup().await;
    let _ = std::fs::remove_dir_all(dir);
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sigkill_under_load_loses_and_doubles_nothing() {
        super::sigkill_under_load(super::Engine::Sqlite).await;
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sigkill_under_load_loses_and_doubles_nothing() {
        super::sigkill_under_load(super::Engine::Postgres).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Item 2: database faults (PostgreSQL)

fn postgres_required() -> bool {
    std::env::var("REVLEDGER_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

fn postgres_admin_url() -> String {
    std::env::var("REVLEDGER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| helpers::DEFAULT_POSTGRES_URL.into())
}

/// The local cluster serving the test URL's port, as `(version, name)`, when this process may
/// stop and start it (`pg_ctlcluster`, run as root or as postgres).
fn restartable_cluster() -> Result<(String, String), String> {
    let admin_url = postgres_admin_url();
    let port = admin_url
        .rsplit_once('@')
        .map_or(admin_url.as_str(), |(_, host)| host)
        .split('/')
        .next()
        .and_then(|host| host.rsplit_once(':'))
        .map_or("5432", |(_, port)| port)
        .to_owned();
    let user = Command::new("id")
        .arg("-un")
        .output()
        .map_err(|e| format!("id -un: {e}"))?;
    let user = String::from_utf8_lossy(&user.stdout).trim().to_owned();
    if user != "root" && user != "postgres" {
        return Err(format!(
            "restarting PostgreSQL needs root or postgres, this is {user}"
        ));
    }
    let clusters = Command::new("pg_lsclusters")
        .arg("-h")
        .output()
        .map_err(|e| format!("pg_lsclusters: {e}"))?;
    String::from_utf8_lossy(&clusters.stdout)
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|fields| fields.len() >= 4 && fields[2] == port && fields[3] == "online")
        .map(|fields| (fields[0].to_owned(), fields[1].to_owned()))
        .ok_or_else(|| format!("no online local cluster on port {port} (pg_lsclusters)"))
}

/// `pg_ctlcluster --skip-systemctl-redirect VERSION NAME ACTION`.
fn pg_ctlcluster(cluster: &(String, String), action: &str) {
    let status = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &cluster.0, &cluster.1, action])
        .status()
        .expect("run pg_ctlcluster");
    assert!(status.success(), "pg_ctlcluster {action}: {status:?}");
}

/// Waits (bounded) for `pg_isready -h 127.0.0.1`.
async fn wait_pg_isready() {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = Command::new("pg_isready")
            .args(["-h", "127.0.0.1", "-q"])
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "PostgreSQL not ready 60 s after start"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Starts the cluster again if a failing test leaves it stopped (other builders share it).
struct StartOnDrop(Option<(String, String)>);

impl Drop for StartOnDrop {
    fn drop(&mut self) {
        if let Some(cluster) = self.0.take() {
            let _ = Command::new("pg_ctlcluster")
                .args(["--skip-systemctl-redirect", &cluster.0, &cluster.1, "start"])
                .status();
        }
    }
}

/// Terminates every backend connected to `database` (the service's pool and its leadership
/// lock connection among them); returns how many.
async fn terminate_backends(database: &str) -> usize {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&postgres_admin_url())
        .await
        .expect("admin connection");
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(database)
    .fetch_all(&mut admin)
    .await
    .expect("pg_terminate_backend");
    let _ = admin.close().await;
    terminated.into_iter().filter(|t| *t).count()
}

/// Polls `/readyz` until it answers 200 with `"leader": true` (the workers run again), bounded.
async fn wait_ready_and_leading(address: &str, deadline: Instant, what: &str) {
    let mut last = None;
    loop {
        assert!(
            Instant::now() < deadline,
            "/readyz not ready and leading {what}; last answer {last:?}"
        );
        if let Some(answer) = harness::readyz(address).await {
            if answer.status == 200 && answer.body["leader"] == true {
                return;
            }
            last = Some(answer);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_backends_terminated_and_cluster_restarted_under_load_service_recovers() {
    let _serial = SERIAL.lock().await;
    let cluster = match restartable_cluster() {
        Ok(cluster) => cluster,
        Err(reason) if postgres_required() => {
            panic!("REVLEDGER_REQUIRE_POSTGRES=1 but PostgreSQL cannot be restarted: {reason}")
        }
        Err(reason) => {
            eprintln!("SKIPPED (cannot restart PostgreSQL: {reason})");
            return;
        }
    };
    let Some(db) = TestDb::new(Engine::Postgres).await else {
        return;
    };
    let database = db.url.rsplit('/').next().expect("database name").to_owned();
    let seed = harness::seed();
    println!("seed {seed} (REVLEDGER_FAULTS_SEED={seed} repeats it)");
    let mut rng = Rng::new(seed);
    let dir = harness::run_dir("pgfaults");
    let log = dir.join("serve.log");
    let sales = Token::create(&db.url, Role::Sales);
    let finance = Token::create(&db.url, Role::Finance);
    let deadline = Instant::now() + LOAD_DEADLINE;
    let load = Load::new(sales, finance, format!("{seed:x}"), deadline);
    let server = Server::start(&db.url, &log).await;
    let address = server.address.clone();
    load.point_at(Some(address.clone()));
    let clients = load.spawn_clients(CLIENTS);
    wait_progress(&load, 0, PROGRESS, deadline, "before any fault").await;
    wait_ready_and_leading(&address, deadline, "before any fault").await;

    // (a) Every connection of the service's database is terminated mid-load.
    tokio::time::sleep(rng.millis(100, 1000)).await;
    let terminated = terminate_backends(&database).await;
    assert!(terminated > 0, "the service had connections to terminate");
    let since = load.acked();
    let completed = load.completed();
    wait_progress(
        &load,
        since,
        PROGRESS,
        deadline,
        "after pg_terminate_backend",
    )
    .await;
    wait_ready_and_leading(&address, deadline, "after pg_terminate_backend").await;
    wait_workers_ran(&load, completed, deadline, "after pg_terminate_backend").await;

    // (b) The cluster restarts mid-load: stopped, and started again once the service has
    // said it is not ready (so the outage is observed whatever the machine's speed).
    tokio::time::sleep(rng.millis(100, 1000)).await;
    let mut restart_guard = StartOnDrop(Some(cluster.clone()));
    pg_ctlcluster(&cluster, "stop");
    let outage_deadline = Instant::now() + Duration::from_secs(60);
    let not_ready = loop {
        assert!(
            Instant::now() < outage_deadline,
            "/readyz kept answering ready while PostgreSQL was down"
        );
        match harness::readyz(&address).await {
            Some(answer) if !(200..300).contains(&answer.status) => break answer,
            Some(_) => {}
            None => panic!("the service stopped answering /readyz while PostgreSQL was down"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "/readyz during the outage: {} {}",
        not_ready.status, not_ready.text
    );
    let acked_in_outage = load.acked();
    let completed = load.completed();
    pg_ctlcluster(&cluster, "start");
    restart_guard.0 = None;
    wait_pg_isready().await;
    // The same process, never restarted, becomes ready and leading again by itself.
    wait_ready_and_leading(&address, deadline, "after the cluster restart").await;
    wait_progress(
        &load,
        acked_in_outage,
        PROGRESS,
        deadline,
        "after the cluster restart",
    )
    .await;
    wait_workers_ran(&load, completed, deadline, "after the cluster restart").await;
    load.stop();
    harness::join_clients(&load, clients).await;

    let head = harness::wait_caught_up(&address, deadline).await;
    let status = server.terminate().await;
    assert!(status.success(), "serve exits 0 on SIGTERM: {status:?}");
    let tally = harness::check_after(&db.url, &load, head).await;
    summary(
        "postgres",
        seed,
        0,
        &format!(
            "terminated_backends={terminated} cluster_restarts=1 not_ready_status={}",
            not_ready.status
        ),
        &tally,
    );
    db.cleanup().await;
    let _ = std::fs::remove_dir_all(dir);
}
