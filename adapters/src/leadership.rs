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
