//! Group commit on PostgreSQL: appends that arrive while another group is committing are
//! inserted together, in one statement and so one transaction and one WAL flush, instead of
//! one commit each.
//!
//! An append is staged (its rows chained and hashed, as [`super::postgres`] does for one) and
//! queued; whoever gets the committer's turn takes everything queued and commits it on a task
//! of its own, so a caller that gives up cannot cut the group short. While that group's
//! statement runs and its commit waits for the disk, the next appends queue up behind it: the
//! busier the store, the larger the groups, with no timer and no wait when it is idle.
//!
//! Isolation: the group is one statement, so one refused row (a stream that moved on, a
//! command replayed) refuses them all. Then every member is told to append alone, as it would
//! have without the group, and its own statement meets its own conflict or replay, which the
//! store resolves as usual; the others commit as before, one round trip later. Conflicts are
//! rare in a running service (commands on one stream take turns in the handler), so the retry
//! is the exception.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sqlx::postgres::PgPool;
use sqlx::Row;
use time::OffsetDateTime;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use super::{AppendOutcome, AppendRequest, PreparedEvent};

/// Appends inserted in one statement at most (the rest go in the next group).
const MAX_GROUP: usize = 64;

/// Groups committing at once. One: the next group gathers while the current one commits.
const COMMITTERS: usize = 1;

/// What a staged append hears back.
pub(super) enum GroupAnswer {
    /// Committed with the group.
    Committed(AppendOutcome),
    /// To be made alone by the caller: the group's statement failed (or its task died) and
    /// nothing of the group is in; or the append was the only one waiting, and the caller
    /// holds the committers' turn (the permit) until it is done.
    Alone(Option<OwnedSemaphorePermit>),
}

/// One append's rows, ready to insert, and where its answer goes.
pub(super) struct Staged {
    stream_id: String,
    stream_type: String,
    /// Each event's command.
    command_ids: Vec<Option<Uuid>>,
    recorded_at: OffsetDateTime,
    first_version: u64,
    last_version: u64,
    event_ids: Vec<Uuid>,
    event_types: Vec<String>,
    schema_versions: Vec<i32>,
    payloads: Vec<serde_json::Value>,
    metadata: Vec<serde_json::Value>,
    prev_hashes: Vec<Vec<u8>>,
    hashes: Vec<Vec<u8>>,
    ticket: u64,
    answer: Option<oneshot::Sender<GroupAnswer>>,
}

impl Staged {
    pub(super) fn new(
        request: &AppendRequest,
        prepared: &[PreparedEvent<'_>],
        first_version: u64,
        last_version: u64,
        recorded_at: OffsetDateTime,
    ) -> Staged {
        Staged {
            stream_id: request.stream_id.clone(),
            stream_type: request.stream_type.clone(),
            command_ids: prepared.iter().map(|p| p.command_id).collect(),
            recorded_at,
            first_version,
            last_version,
            event_ids: prepared.iter().map(|p| p.event.event_id).collect(),
            event_types: prepared
                .iter()
                .map(|p| p.event.event_type.clone())
                .collect(),
            schema_versions: prepared
                .iter()
                .map(|p| p.event.schema_version as i32)
                .collect(),
            payloads: prepared.iter().map(|p| p.event.payload.clone()).collect(),
            metadata: prepared.iter().map(|p| p.metadata.clone()).collect(),
            prev_hashes: prepared.iter().map(|p| p.prev_hash.0.to_vec()).collect(),
            hashes: prepared.iter().map(|p| p.hash.0.to_vec()).collect(),
            ticket: 0,
            answer: None,
        }
    }
}

/// The queue of staged appends and the committers' turn.
pub(super) struct GroupCommit {
    queue: Mutex<Vec<Staged>>,
    turn: Arc<Semaphore>,
    /// Numbers the staged appends, so a caller knows its own in a group.
    tickets: AtomicU64,
}

impl GroupCommit {
    pub(super) fn new() -> GroupCommit {
        GroupCommit {
            queue: Mutex::new(Vec::new()),
            turn: Arc::new(Semaphore::new(COMMITTERS)),
            tickets: AtomicU64::new(0),
        }
    }

    /// Queues `staged` and either commits the queue (when this caller gets the turn first) or
    /// waits for the caller that does.
    pub(super) async fn append(&self, pool: &PgPool, mut staged: Staged) -> GroupAnswer {
        let (sender, mut receiver) = oneshot::channel();
        staged.answer = Some(sender);
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        staged.ticket = ticket;
        self.lock().push(staged);
        let permit = tokio::select! {
            biased;
            answer = &mut receiver => return answer.unwrap_or(GroupAnswer::Alone(None)),
            permit = self.turn.clone().acquire_owned() => permit,
        };
        let Ok(permit) = permit else {
            return GroupAnswer::Alone(None);
        };
        let group: Vec<Staged> = {
            let mut queue = self.lock();
            let take = queue.len().min(MAX_GROUP);
            queue.drain(..take).collect()
        };
        match group.as_slice() {
            // Another caller's group took ours.
            [] => drop(permit),
            // Ours alone (an idle store): appended by the caller as without a group, with the
            // turn held so that what arrives meanwhile gathers for the next group.
            [only] if only.ticket == ticket => return GroupAnswer::Alone(Some(permit)),
            _ => {
                tokio::spawn(commit(pool.clone(), group, permit));
            }
        }
        receiver.await.unwrap_or(GroupAnswer::Alone(None))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Staged>> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Inserts `group` in one statement and answers each member; the turn is held until then.
async fn commit(pool: PgPool, mut group: Vec<Staged>, _turn: OwnedSemaphorePermit) {
    match insert(&pool, &mut group).await {
        Ok(positions) => {
            for mut staged in group {
                let answer = outcome(&staged, &positions)
                    .map_or(GroupAnswer::Alone(None), GroupAnswer::Committed);
                if let Some(sender) = staged.answer.take() {
                    let _ = sender.send(answer);
                }
            }
        }
        Err(error) => {
            if group.len() > 1 {
                tracing::debug!(%error, appends = group.len(), "group append refused; each appends alone");
            }
            for mut staged in group {
                if let Some(sender) = staged.answer.take() {
                    let _ = sender.send(GroupAnswer::Alone(None));
                }
            }
        }
    }
}

/// The outcome of a member whose events got `positions` (by stream and version).
fn outcome(staged: &Staged, positions: &HashMap<(String, i64), i64>) -> Option<AppendOutcome> {
    let mut first = i64::MAX;
    let mut last = i64::MIN;
    for version in staged.first_version..=staged.last_version {
        let position = *positions.get(&(staged.stream_id.clone(), version as i64))?;
        first = first.min(position);
        last = last.max(position);
    }
    Some(AppendOutcome {
        stream_id: staged.stream_id.clone(),
        first_version: staged.first_version,
        last_version: staged.last_version,
        first_position: first,
        last_position: last,
        replayed: false,
    })
}

/// The group's events and command records in one statement (one transaction): the positions
/// its events got, by stream and version.
async fn insert(
    pool: &PgPool,
    group: &mut [Staged],
) -> Result<HashMap<(String, i64), i64>, sqlx::Error> {
    let mut columns = EventColumns::default();
    for staged in group.iter_mut() {
        columns.push(staged);
    }
    let rows = sqlx::query(
        "WITH inserted AS (\
           INSERT INTO events (event_id, stream_id, stream_type, version, event_type, \
           schema_version, payload, metadata, command_id, recorded_at, prev_hash, hash) \
           SELECT e, st, ty, v, t, s, p, m, c, r, ph, h \
           FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::int4[], \
                       $7::jsonb[], $8::jsonb[], $9::uuid[], $10::timestamptz[], $11::bytea[], \
                       $12::bytea[]) AS u(e, st, ty, v, t, s, p, m, c, r, ph, h) \
           RETURNING position, stream_id, version, command_id, recorded_at), \
         command AS (\
           INSERT INTO commands (command_id, stream_id, first_version, last_version, \
           first_position, last_position, recorded_at) \
           SELECT command_id, stream_id, MIN(version), MAX(version), MIN(position), \
                  MAX(position), MIN(recorded_at) \
           FROM inserted WHERE command_id IS NOT NULL GROUP BY command_id, stream_id) \
         SELECT position, stream_id, version FROM inserted",
    )
    .bind(columns.event_ids)
    .bind(columns.stream_ids)
    .bind(columns.stream_types)
    .bind(columns.versions)
    .bind(columns.event_types)
    .bind(columns.schema_versions)
    .bind(columns.payloads)
    .bind(columns.metadata)
    .bind(columns.command_ids)
    .bind(columns.recorded_at)
    .bind(columns.prev_hashes)
    .bind(columns.hashes)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                (row.try_get::<String, _>(1)?, row.try_get::<i64, _>(2)?),
                row.try_get::<i64, _>(0)?,
            ))
        })
        .collect()
}

/// The group's events as one array per column, in append order.
#[derive(Default)]
struct EventColumns {
    event_ids: Vec<Uuid>,
    stream_ids: Vec<String>,
    stream_types: Vec<String>,
    versions: Vec<i64>,
    event_types: Vec<String>,
    schema_versions: Vec<i32>,
    payloads: Vec<serde_json::Value>,
    metadata: Vec<serde_json::Value>,
    command_ids: Vec<Option<Uuid>>,
    recorded_at: Vec<OffsetDateTime>,
    prev_hashes: Vec<Vec<u8>>,
    hashes: Vec<Vec<u8>>,
}

impl EventColumns {
    /// Moves the member's rows in (what is left of it is what its answer needs).
    fn push(&mut self, staged: &mut Staged) {
        let events = staged.event_ids.len();
        for offset in 0..events {
            self.stream_ids.push(staged.stream_id.clone());
            self.stream_types.push(staged.stream_type.clone());
            self.versions
                .push((staged.first_version + offset as u64) as i64);
            self.recorded_at.push(staged.recorded_at);
        }
        self.event_ids.append(&mut staged.event_ids);
        self.command_ids.append(&mut staged.command_ids);
        self.event_types.append(&mut staged.event_types);
        self.schema_versions.append(&mut staged.schema_versions);
        self.payloads.append(&mut staged.payloads);
        self.metadata.append(&mut staged.metadata);
        self.prev_hashes.append(&mut staged.prev_hashes);
        self.hashes.append(&mut staged.hashes);
    }
}
