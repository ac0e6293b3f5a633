//! The backup and restore drill (issue 7, item 5), on both engines, with the real scripts and
//! the real binary: generate a history, project it, capture every read model and what
//! `revledger verify` says; `ops/backup.sh`; destroy the database; `ops/restore.sh`;
//! `revledger verify` must say the same, `revledger rebuild` must reproduce every read model.
//! Then the restore is run again over the restored database (`--clean` over tables that carry
//! the append-only triggers, or a SQLite file that is kept aside), and verified again.
//!
//! Skipped (prints SKIPPED) when `sqlite3`, or `pg_dump`/`pg_restore`/`psql`, are not installed,
//! except that `REVLEDGER_REQUIRE_POSTGRES=1` makes the PostgreSQL drill required.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use adapters::sql::{SqlDb, SqlValue};
use adapters::store::{self, EventStore};
use app::handlers::Handlers;
use projections::runtime::dump_table;
use sqlx::Connection;
use uuid::Uuid;

use crate::helpers::{temp_dir, TestDb, DEFAULT_POSTGRES_URL};
use crate::history::{run_projections, Generator};

/// Events in the drill's history.
const EVENTS: i64 = 1_500;

type Tables = BTreeMap<String, Vec<Vec<SqlValue>>>;

fn ops_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("ops").join(name)
}

fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success())
}

/// Runs a command off the async runtime and returns its output, echoing it for the test log.
async fn run(mut command: Command) -> Output {
    let shown = format!("{command:?}");
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap_or_else(|error| panic!("{shown}: {error}"));
    eprintln!(
        "$ {shown}\n{}{}-> {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        output.status
    );
    output
}

pub(crate) async fn succeed(command: Command) -> String {
    let shown = format!("{command:?}");
    let output = run(command).await;
    assert!(
        output.status.success(),
        "{shown} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

pub(crate) fn script(name: &str, url: &str, file: &Path) -> Command {
    let mut command = Command::new("bash");
    command
        .arg(ops_script(name))
        .arg(url)
        .arg(file)
        .env_remove("REVLEDGER_DATABASE_URL")
        .env("REVLEDGER_BIN", env!("CARGO_BIN_EXE_revledger"));
    command
}

pub(crate) fn revledger(args: &[&str], url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_revledger"));
    command
        .args(args)
        .args(["--database-url", url])
        .env_remove("REVLEDGER_DATABASE_URL")
        .env("REVLEDGER_LOG", "warn");
    command
}

/// Every read model's table, and the audit seals (evidence that must survive a restore).
async fn capture(db: &SqlDb) -> Tables {
    let mut tables = Tables::new();
    for projection in projections::read_models() {
        for table in projection.tables() {
            tables.insert(table.to_string(), dump_table(db, table).await.unwrap());
        }
    }
    tables.insert(
        "audit_seals".into(),
        dump_table(db, "audit_seals").await.unwrap(),
    );
    tables
}

fn assert_same_tables(expected: &Tables, actual: &Tables, when: &str) {
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        actual.keys().collect::<Vec<_>>()
    );
    for (table, rows) in expected {
        assert_eq!(rows.len(), actual[table].len(), "{table}: row count {when}");
        assert!(rows == &actual[table], "{table} differs {when}");
    }
}

/// Generates and projects the drill's history; returns the captured read models and what
/// `revledger verify` printed.
async fn history(store: Arc<dyn EventStore>, url: &str) -> (Tables, String) {
    let handlers = Handlers::new(store.clone());
    let mut generator = Generator::new(handlers.clone(), 7);
    generator.partners().await;
    generator.until(EVENTS).await;
    run_projections(&handlers).await.unwrap();
    let tables = capture(&store.sql()).await;
    for table in ["audit_log", "funnel_leads", "journal_lines"] {
        if let Some(rows) = tables.get(table) {
            assert!(!rows.is_empty(), "{table} has rows before the backup");
        }
    }
    assert!(tables.values().filter(|rows| !rows.is_empty()).count() >= 5);
    let verified = succeed(revledger(&["verify"], url)).await;
    assert!(verified.contains("audit trail intact"), "{verified}");
    (tables, verified)
}

/// After a restore into `url`: verify says what it said before, the tables are as backed up,
/// and a rebuild reproduces them.
async fn check_restored(url: &str, before: &Tables, verified_before: &str) {
    let verified = succeed(revledger(&["verify"], url)).await;
    assert_eq!(
        verified, verified_before,
        "verify after the restore reports the same events and seals"
    );
    let (restored, pool) = open(url).await;
    assert!(restored.head_position().await.unwrap() >= EVENTS);
    assert_same_tables(before, &capture(&restored.sql()).await, "after the restore");

    let rebuilt = succeed(revledger(&["rebuild"], url)).await;
    for projection in projections::read_models() {
        assert!(
            rebuilt.contains(&format!("rebuilt {}:", projection.name())),
            "{rebuilt}"
        );
    }
    assert_same_tables(before, &capture(&restored.sql()).await, "after the rebuild");
    pool.close().await;
    succeed(revledger(&["verify"], url)).await;
}

/// The store's pool, to close it before the database is destroyed or restored over (a
/// dropped sqlx pool closes its connections only eventually).
enum Pool {
    Sqlite(Arc<store::sqlite::SqliteStore>),
    Postgres(Arc<store::postgres::PostgresStore>),
}

impl Pool {
    async fn close(self) {
        match self {
            Pool::Sqlite(store) => store.pool().close().await,
            Pool::Postgres(store) => store.pool().close().await,
        }
    }
}

async fn open(url: &str) -> (Arc<dyn EventStore>, Pool) {
    if url.starts_with("sqlite:") {
        let store = Arc::new(store::sqlite::SqliteStore::open(url).await.unwrap());
        (store.clone(), Pool::Sqlite(store))
    } else {
        let store = Arc::new(store::postgres::PostgresStore::open(url).await.unwrap());
        (store.clone(), Pool::Postgres(store))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_backup_destroy_restore_verify_rebuild_equals_before() {
    if !installed("sqlite3") {
        eprintln!("SKIPPED (sqlite3 is not installed)");
        return;
    }
    let dir = temp_dir();
    let path = dir.join("ledger.db");
    let url = format!("sqlite://{}", path.display());
    let (store, pool) = open(&url).await;
    store.migrate().await.unwrap();
    let (before, verified_before) = history(store.clone(), &url).await;

    // The online backup, while the store's connections are open (WAL mode).
    let backup = dir.join("backups").join("ledger.sqlite3");
    succeed(script("backup.sh", &url, &backup)).await;
    assert!(backup.is_file());

    // Destroy: the service stops, the database and its WAL are gone.
    pool.close().await;
    drop(store);
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        if file.exists() {
            std::fs::remove_file(&file).unwrap();
        }
    }
    assert!(!path.exists());
    // verify on a missing file fails (and leaves an empty file, which the restore sets aside).
    let failed = run(revledger(&["verify"], &url)).await;
    assert!(
        !failed.status.success(),
        "nothing to verify after the destruction"
    );

    succeed(script("restore.sh", &url, &backup)).await;
    check_restored(&url, &before, &verified_before).await;

    // Not while the database is open (a running service).
    let (running, pool) = open(&url).await;
    running.head_position().await.unwrap();
    let refused = run(script("restore.sh", &url, &backup)).await;
    assert!(
        !refused.status.success(),
        "restore refuses an open database"
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("stop revledger first"));
    pool.close().await;
    drop(running);

    // Restoring over a database that exists keeps the replaced file aside.
    succeed(script("restore.sh", &url, &backup)).await;
    let kept = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with("ledger.db.before-restore-")
        })
        .count();
    assert!(kept >= 1, "the replaced database is kept");
    let verified = succeed(revledger(&["verify"], &url)).await;
    assert_eq!(verified, verified_before);

    // A backup of a file that does not exist fails rather than backing up an empty database.
    let missing = format!("sqlite://{}", dir.join("missing.db").display());
    let output = run(script("backup.sh", &missing, &dir.join("missing.bak"))).await;
    assert!(!output.status.success());
    assert!(!dir.join("missing.db").exists());

    let _ = std::fs::remove_dir_all(dir);
}

fn postgres_admin_url() -> String {
    std::env::var("REVLEDGER_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into())
}

fn postgres_required() -> bool {
    std::env::var("REVLEDGER_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

async fn admin_sql(sql: &str) {
    let mut conn = sqlx::PgConnection::connect(&postgres_admin_url())
        .await
        .unwrap();
    sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
}

/// The URL of database `name` on the test server.
fn database_url(name: &str) -> String {
    let admin = postgres_admin_url();
    let base = admin
        .rsplit_once('/')
        .map(|(base, _)| base)
        .unwrap_or(&admin);
    format!("{base}/{name}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_backup_destroy_restore_verify_rebuild_equals_before() {
    let tools = ["pg_dump", "pg_restore", "psql"];
    if let Some(missing) = tools.iter().find(|tool| !installed(tool)) {
        assert!(
            !postgres_required(),
            "REVLEDGER_REQUIRE_POSTGRES=1 but {missing} is not installed"
        );
        eprintln!("SKIPPED ({missing} is not installed)");
        return;
    }
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let source = db.url.clone();
    let (before, verified_before) = history(db.store.clone(), &source).await;

    let dir = temp_dir();
    let backup = dir.join("ledger.dump");
    succeed(script("backup.sh", &source, &backup)).await;

    // Destroy the database.
    let source_name = source.rsplit_once('/').unwrap().1.to_owned();
    admin_sql(&format!("DROP DATABASE \"{source_name}\" WITH (FORCE)")).await;
    let gone = run(revledger(&["verify"], &source)).await;
    assert!(!gone.status.success(), "the source database is gone");

    // Restore into a new, empty database.
    let target_name = format!("revledger_test_{}", Uuid::now_v7().simple());
    admin_sql(&format!("CREATE DATABASE \"{target_name}\"")).await;
    let target = database_url(&target_name);
    succeed(script("restore.sh", &target, &backup)).await;
    check_restored(&target, &before, &verified_before).await;

    // Again, over the restored database: --clean drops the tables with their append-only
    // triggers (DROP is not UPDATE/DELETE/TRUNCATE) and restores them, in one transaction.
    succeed(script("restore.sh", &target, &backup)).await;
    let verified = succeed(revledger(&["verify"], &target)).await;
    assert_eq!(verified, verified_before);
    let (restored, pool) = open(&target).await;
    assert_same_tables(
        &before,
        &capture(&restored.sql()).await,
        "after a second restore",
    );
    let triggers: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'events'::regclass AND NOT tgisinternal",
    )
    .fetch_one(&mut sqlx::PgConnection::connect(&target).await.unwrap())
    .await
    .unwrap();
    assert_eq!(triggers, 2, "the append-only triggers are restored");
    pool.close().await;

    // Restoring into a database that does not exist yet creates it.
    let created_name = format!("revledger_test_{}", Uuid::now_v7().simple());
    let created = database_url(&created_name);
    succeed(script("restore.sh", &created, &backup)).await;
    let verified = succeed(revledger(&["verify"], &created)).await;
    assert_eq!(verified, verified_before);

    for name in [&target_name, &created_name] {
        admin_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
    }
    let _ = std::fs::remove_dir_all(dir);
    db.cleanup().await;
}
