//! Test fixtures: a fresh store per test on either engine.
//!
//! PostgreSQL tests connect to `REVLEDGER_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), create a database named `revledger_test_<uuid>`
//! and drop it when the test passes. When that server is unreachable the test prints
//! `SKIPPED (postgres unavailable)` and passes, unless `REVLEDGER_REQUIRE_POSTGRES=1` (set by
//! `.ci/run`), in which case it fails: CI never silently skips the PostgreSQL half.

use std::path::PathBuf;
use std::sync::Arc;

use adapters::store::{self, EventStore};
use sqlx::Connection;
use uuid::Uuid;

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Which engine a fixture runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// A fresh, migrated store and what is needed to reach it directly (to tamper, to inspect).
pub struct TestDb {
    pub engine: Engine,
    pub url: String,
    pub store: Arc<dyn EventStore>,
    cleanup: Cleanup,
}

enum Cleanup {
    File(PathBuf),
    Database { admin_url: String, name: String },
}

fn postgres_admin_url() -> String {
    std::env::var("REVLEDGER_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into())
}

fn postgres_required() -> bool {
    std::env::var("REVLEDGER_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// `value` with every sealed personal value in it opened, as the service's edge shows it (a
/// sealed value is different in every run: each has a fresh nonce).
pub async fn opened(
    store: &Arc<dyn EventStore>,
    mut value: serde_json::Value,
) -> serde_json::Value {
    let vault = store.vault().expect("the store seals personal data");
    vault.reveal_json(&mut value).await.expect("open");
    value
}

/// A stored text opened if it is a sealed value (a webhook's raw body, a read-model column).
pub async fn opened_text(store: &Arc<dyn EventStore>, text: &str) -> String {
    let vault = store.vault().expect("the store seals personal data");
    vault.open_text(text).await.expect("open")
}

/// A fresh directory under the system temp dir.
pub fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("revledger-test-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

impl TestDb {
    /// A fresh database on `engine`; `None` only when PostgreSQL is unavailable and not required.
    pub async fn new(engine: Engine) -> Option<TestDb> {
        match engine {
            Engine::Sqlite => Some(TestDb::sqlite().await),
            Engine::Postgres => TestDb::postgres().await,
        }
    }

    /// A fresh database on `engine` that nothing has migrated yet; `None` as for `new`.
    pub async fn unmigrated(engine: Engine) -> Option<TestDb> {
        match engine {
            Engine::Sqlite => Some(TestDb::unmigrated_sqlite().await),
            Engine::Postgres => TestDb::unmigrated_postgres().await,
        }
    }

    pub async fn sqlite() -> TestDb {
        let db = TestDb::unmigrated_sqlite().await;
        db.store.migrate().await.expect("migrate sqlite");
        db
    }

    async fn unmigrated_sqlite() -> TestDb {
        let dir = temp_dir();
        let url = format!("sqlite://{}", dir.join("events.db").display());
        let store = store::open(&url).await.expect("open sqlite store");
        TestDb {
            engine: Engine::Sqlite,
            url,
            store,
            cleanup: Cleanup::File(dir),
        }
    }

    pub async fn postgres() -> Option<TestDb> {
        let db = TestDb::unmigrated_postgres().await?;
        db.store.migrate().await.expect("migrate postgres");
        Some(db)
    }

    async fn unmigrated_postgres() -> Option<TestDb> {
        let (url, admin_url, name) = match create_postgres_database().await {
            Ok(created) => created,
            Err(error) if !postgres_required() => {
                eprintln!("SKIPPED (postgres unavailable: {error})");
                return None;
            }
            Err(error) => panic!(
                "REVLEDGER_REQUIRE_POSTGRES=1 but PostgreSQL at {} is unavailable: {error}",
                postgres_admin_url()
            ),
        };
        let store = store::open(&url).await.expect("open postgres store");
        Some(TestDb {
            engine: Engine::Postgres,
            url,
            store,
            cleanup: Cleanup::Database { admin_url, name },
        })
    }

    /// Runs raw SQL against the database behind the store's back (to tamper with it).
    pub async fn execute_raw(&self, sql: &str) -> Result<u64, sqlx::Error> {
        match self.engine {
            Engine::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await?;
                let result = sqlx::raw_sql(sql).execute(&mut conn).await?;
                Ok(result.rows_affected())
            }
            Engine::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await?;
                let result = sqlx::raw_sql(sql).execute(&mut conn).await?;
                Ok(result.rows_affected())
            }
        }
    }

    /// SQL that lifts the append-only guard so a test can play the attacker.
    pub fn disable_append_only_guard_sql(&self) -> &'static str {
        match self.engine {
            Engine::Sqlite => "DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete;",
            Engine::Postgres => "ALTER TABLE events DISABLE TRIGGER events_append_only;",
        }
    }

    /// Removes the database (called at the end of a passing test; a failing one leaves it to
    /// inspect).
    pub async fn cleanup(self) {
        let TestDb { store, cleanup, .. } = self;
        drop(store);
        match cleanup {
            Cleanup::File(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Database { admin_url, name } => {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ =
                        sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                            .execute(&mut conn)
                            .await;
                }
            }
        }
    }
}

async fn create_postgres_database() -> Result<(String, String, String), sqlx::Error> {
    let admin_url = postgres_admin_url();
    let mut conn = sqlx::PgConnection::connect(&admin_url).await?;
    let name = format!("revledger_test_{}", Uuid::now_v7().simple());
    sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await?;
    let base = admin_url
        .rsplit_once('/')
        .map(|(base, _)| base)
        .unwrap_or(&admin_url);
    Ok((format!("{base}/{name}"), admin_url, name))
}

/// Declares each listed `async fn name(db: &TestDb)` as two tests, `sqlite::name` and
/// `postgres::name`, each on a fresh database.
#[macro_export]
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = $crate::helpers::TestDb::new($crate::helpers::Engine::Sqlite)
                        .await
                        .expect("sqlite is always available");
                    super::$name(&db).await;
                    db.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(db) = $crate::helpers::TestDb::new($crate::helpers::Engine::Postgres).await
                    else {
                        return;
                    };
                    super::$name(&db).await;
                    db.cleanup().await;
                }
            )*
        }
    };
}

/// Declares each listed `async fn name(app: &TestApp)` as two tests, `sqlite::name` and
/// `postgres::name`, each on a freshly spawned app (see [`crate::app::spawn_app`]).
#[macro_export]
macro_rules! on_both_apps {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let app = $crate::app::spawn_app($crate::helpers::Engine::Sqlite).await.unwrap();
                    super::$name(&app).await;
                    app.stop().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(app) = $crate::app::spawn_app($crate::helpers::Engine::Postgres).await
                    else {
                        return;
                    };
                    super::$name(&app).await;
                    app.stop().await;
                }
            )*
        }
    };
}

/// Declares each listed `async fn name(engine: Engine)` as two tests, `sqlite::name` and
/// `postgres::name`, each given its engine (the test sets up what it needs).
#[macro_export]
macro_rules! per_engine {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::helpers::Engine::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::helpers::Engine::Postgres).await;
                }
            )*
        }
    };
}
