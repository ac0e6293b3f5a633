//! Which replica runs the background workers.
//!
//! Several `revledger serve` processes may share one PostgreSQL database: all of them answer
//! HTTP (commands and webhooks are safe anywhere: the store's version checks and command ids
//! arbitrate), but the projections, process managers, the cold-lead sweep and the webhook
//! retries run in exactly one. That one holds a session-level advisory lock on a dedicated
//! connection; when its process dies the connection closes, PostgreSQL releases the lock, and
//! another replica takes it within [`CONTEND_INTERVAL`]. A leader whose lock connection stops
//! answering stops its workers before contending again. (Checkpoints are also moved by
//! compare-and-set, so even an overlap of two leaders cannot apply a batch twice.)
//!
//! With SQLite there is one process, which always leads.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::sql::SqlDb;
use sqlx::Connection;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often a follower tries to take the lock, and how often the leader checks it still has
/// its connection: a dead leader is replaced within about this long.
pub const CONTEND_INTERVAL: Duration = Duration::from_secs(1);

/// How long a leader that lost its lock (or is shutting down) waits for each worker to finish
/// its current batch.
pub const WORKER_DRAIN: Duration = Duration::from_secs(10);

/// The advisory lock key: the first 8 bytes of SHA-256("revledger:workers").
pub fn lock_key() -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(b"revledger:workers");
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// Runs `start_workers` whenever this process holds the lead, until `shutdown` turns true.
/// `start_workers` gets a stop signal and returns the workers' handles.
pub async fn lead<F, Fut>(
    db: SqlDb,
    leader: Arc<AtomicBool>,
    mut shutdown: watch::Receiver<bool>,
    start_workers: F,
) where
    F: Fn(watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = Vec<JoinHandle<()>>>,
{
    let SqlDb::Postgres(pool) = db else {
        // One process owns an SQLite file: it leads for its whole life.
        leader.store(true, Ordering::SeqCst);
        let (stop, stopped) = watch::channel(false);
        let workers = start_workers(stopped).await;
        let _ = shutdown.changed().await;
        stop_all(stop, workers).await;
        return;
    };
    let options = pool.connect_options();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let held = match sqlx::PgConnection::connect_with(&options).await {
            Ok(mut connection) => {
                let taken: Result<bool, sqlx::Error> =
                    sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                        .bind(lock_key())
                        .fetch_one(&mut connection)
                        .await;
                match taken {
                    Ok(true) => Some(connection),
                    _ => None,
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot reach the database to contend for the lead");
                None
            }
        };
        let Some(mut connection) = held else {
            tokio::select! {
                () = tokio::time::sleep(CONTEND_INTERVAL) => continue,
                _ = shutdown.changed() => return,
            }
        };
        tracing::info!("this replica leads: running projections and process managers");
        leader.store(true, Ordering::SeqCst);
        let (stop, stopped) = watch::channel(false);
        let workers = start_workers(stopped).await;
        let shut_down = loop {
            tokio::select! {
                () = tokio::time::sleep(CONTEND_INTERVAL) => {}
                _ = shutdown.changed() => break true,
            }
            if sqlx::query("SELECT 1")
                .execute(&mut connection)
                .await
                .is_err()
            {
                tracing::warn!(
                    "lost the lock connection: stopping the workers and contending again"
                );
                break false;
            }
        };
        leader.store(false, Ordering::SeqCst);
        stop_all(stop, workers).await;
        let _ = connection.close().await;
        if shut_down {
            return;
        }
    }
}

async fn stop_all(stop: watch::Sender<bool>, workers: Vec<JoinHandle<()>>) {
    let _ = stop.send(true);
    for worker in workers {
        if tokio::time::timeout(WORKER_DRAIN, worker).await.is_err() {
            tracing::warn!("a background worker did not stop in time");
        }
    }
}

/// The right to run one exclusive job (a rebuild) on a database, held until it is dropped or
/// the process dies.
///
/// - PostgreSQL: a session-level advisory lock on a dedicated connection, as the lead's, keyed
///   by the job's name; any process on any machine contends for the same one.
/// - SQLite: an advisory lock (`flock`) on a file beside the database (`<file>-<name>.lock`),
///   which the operating system releases when the process ends. An in-memory database is
///   private to its process and needs none.
pub struct Exclusive {
    _connection: Option<sqlx::PgConnection>,
    _file: Option<std::fs::File>,
}

/// Takes the exclusive right to run `name` on `db`, or `None` when another holder has it.
pub async fn try_exclusive(
    db: &SqlDb,
    name: &str,
) -> Result<Option<Exclusive>, crate::store::StoreError> {
    let held = match db {
        SqlDb::Postgres(pool) => {
            let mut connection = sqlx::PgConnection::connect_with(&pool.connect_options()).await?;
            let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(job_key(name))
                .fetch_one(&mut connection)
                .await?;
            taken.then_some(Exclusive {
                _connection: Some(connection),
                _file: None,
            })
        }
        SqlDb::Sqlite(_) => {
            let file = db
                .fetch_optional(
                    "SELECT file FROM pragma_database_list WHERE name = 'main'",
                    &[],
                )
                .await?
                .map(|row| row.text(0))
                .transpose()?
                .unwrap_or_default();
            if file.is_empty() {
                Some(Exclusive {
                    _connection: None,
                    _file: None,
                })
            } else {
                let path = format!("{file}-{name}.lock");
                let lock = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
                    .map_err(|error| {
                        crate::store::StoreError::InvalidValue(format!(
                            "cannot open the lock file {path}: {error}"
                        ))
                    })?;
                match lock.try_lock() {
                    Ok(()) => Some(Exclusive {
                        _connection: None,
                        _file: Some(lock),
                    }),
                    Err(std::fs::TryLockError::WouldBlock) => None,
                    Err(std::fs::TryLockError::Error(error)) => {
                        return Err(crate::store::StoreError::InvalidValue(format!(
                            "cannot lock {path}: {error}"
                        )))
                    }
                }
            }
        }
    };
    Ok(held)
}

/// The advisory lock key of job `name`: the first 8 bytes of SHA-256("revledger:job:<name>").
fn job_key(name: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("revledger:job:{name}").as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}
