//! Checkpoints as stored: loaded one or many at a time, and moved by compare-and-set, a
//! group's in one statement.

use crate::ProjectionError;
use adapters::clock::{now_micros, unix_micros};
use adapters::sql::{SqlDb, SqlTx};
use adapters::store::{Checkpoint, RecordedEvent};

use super::*;

/// A checkpoint as stored, or the start when there is none.
pub async fn load_checkpoint(db: &SqlDb, name: &str) -> Result<(Checkpoint, i64), ProjectionError> {
    let mut found = load_checkpoints(db, &[name]).await?;
    Ok(found.pop().unwrap_or((Checkpoint::START, 0)))
}

/// Each named checkpoint and its events applied, in the order of `names` (one query); the
/// start for a name that has none yet.
pub async fn load_checkpoints(
    db: &SqlDb,
    names: &[&str],
) -> Result<Vec<(Checkpoint, i64)>, ProjectionError> {
    let (placeholders, params) = adapters::sql::in_list(names.iter().copied());
    let rows = db
        .fetch_all(
            &format!(
                "SELECT name, transaction_id, position, events_applied FROM projection_checkpoints \
                 WHERE name IN ({placeholders})"
            ),
            &params,
        )
        .await?;
    let mut stored = std::collections::HashMap::with_capacity(rows.len());
    for row in &rows {
        let checkpoint = Checkpoint {
            transaction_id: row.i64(1)?,
            position: row.i64(2)?,
        };
        stored.insert(row.text(0)?, (checkpoint, row.i64(3)?));
    }
    Ok(names
        .iter()
        .map(|name| stored.get(*name).copied().unwrap_or((Checkpoint::START, 0)))
        .collect())
}

/// A stored checkpoint with its name, as the lag page lists them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NamedCheckpoint {
    pub name: String,
    pub position: i64,
    pub events_applied: i64,
    pub updated_at_us: i64,
}

/// Checkpoints whose names start with `prefix` (process managers keep theirs under
/// `process:`), in name order.
pub async fn checkpoints_with_prefix(
    db: &SqlDb,
    prefix: &str,
) -> Result<Vec<NamedCheckpoint>, ProjectionError> {
    // LIKE narrows the read; `starts_with` keeps a `_` or `%` in `prefix` from matching more.
    let rows = db
        .fetch_all(
            "SELECT name, position, events_applied, updated_at_us FROM projection_checkpoints \
             WHERE name LIKE ? ORDER BY name",
            &[format!("{prefix}%").into()],
        )
        .await?;
    rows.iter()
        .filter(|row| row.text(0).is_ok_and(|name| name.starts_with(prefix)))
        .map(|row| {
            Ok(NamedCheckpoint {
                name: row.text(0)?,
                position: row.i64(1)?,
                events_applied: row.i64(2)?,
                updated_at_us: row.i64(3)?,
            })
        })
        .collect()
}

/// The earliest of `checkpoints`: where a group of runners reads the log from.
pub fn earliest<'a>(checkpoints: impl IntoIterator<Item = &'a Checkpoint>) -> Option<Checkpoint> {
    checkpoints.into_iter().copied().min_by_key(order_key)
}

/// The events of `batch` (read in checkpoint order) after `checkpoint`: a suffix of it.
pub fn events_after<'a>(
    batch: &'a [RecordedEvent],
    checkpoint: &Checkpoint,
) -> &'a [RecordedEvent] {
    let start = batch
        .partition_point(|event| order_key(&Checkpoint::after(event)) <= order_key(checkpoint));
    &batch[start..]
}

/// One checkpoint's move: its name, where it must still stand, and its events applied after.
pub struct Move<'a> {
    pub name: &'a str,
    pub from: Checkpoint,
    pub events_applied: i64,
}

/// Moves each checkpoint in `moves` to `to`, each only if it still stands where its move says
/// (a missing row counts as the start), in one statement. If any had moved (another runner
/// got there first) the error names them, and the caller's transaction must roll back.
pub async fn save_checkpoints(
    tx: &mut SqlTx,
    moves: &[Move<'_>],
    to: Checkpoint,
) -> Result<(), ProjectionError> {
    if moves.is_empty() {
        return Ok(());
    }
    let rows = adapters::sql::value_rows(7, moves.len());
    let now = unix_micros(now_micros());
    let mut params = Vec::with_capacity(moves.len() * 7);
    for step in moves {
        params.extend([
            step.name.into(),
            step.from.transaction_id.into(),
            step.from.position.into(),
            to.transaction_id.into(),
            to.position.into(),
            step.events_applied.into(),
            now.into(),
        ]);
    }
    // `WHERE true` keeps SQLite from reading `ON CONFLICT` as part of the SELECT's join.
    let sql = format!(
        "WITH moves (name, from_transaction_id, from_position, transaction_id, position, \
         events_applied, updated_at_us) AS (VALUES {rows}) \
         INSERT INTO projection_checkpoints (name, transaction_id, position, events_applied, updated_at_us) \
         SELECT name, transaction_id, position, events_applied, updated_at_us FROM moves WHERE true \
         ON CONFLICT (name) DO UPDATE SET transaction_id = excluded.transaction_id, \
         position = excluded.position, events_applied = excluded.events_applied, \
         updated_at_us = excluded.updated_at_us \
         WHERE projection_checkpoints.transaction_id = \
         (SELECT from_transaction_id FROM moves WHERE moves.name = excluded.name) \
         AND projection_checkpoints.position = \
         (SELECT from_position FROM moves WHERE moves.name = excluded.name) \
         RETURNING name"
    );
    let moved = tx.fetch_all(&sql, &params).await?;
    if moved.len() == moves.len() {
        return Ok(());
    }
    let moved: Vec<String> = moved
        .iter()
        .map(|row| row.text(0))
        .collect::<Result<_, _>>()?;
    let stale: Vec<&str> = moves
        .iter()
        .map(|step| step.name)
        .filter(|name| !moved.iter().any(|m| m == name))
        .collect();
    Err(ProjectionError::CheckpointMoved(stale.join(", ")))
}
