//! The audit log: every event with who, what, when, why and from where, plus the running global
//! hash and its seals.
//!
//! The per-stream hash chains (in the store) prove no event was changed; they cannot see an
//! event removed from the end of a stream, a whole stream removed, or rows reordered. The audit
//! projection folds the global log, in checkpoint order, into a running hash,
//! `running(seq) = SHA-256(running(seq - 1) || position as 8 big-endian bytes || event hash)`,
//! stored on each audit row, and every [`SEAL_INTERVAL`] events writes a seal `(seq, position,
//! running hash)` into `audit_seals`, an append-only table that a rebuild never touches.
//! [`verify_seals`] recomputes the fold from the events table and names the first event where
//! the log and the audit trail part ways.

use adapters::sql::{SqlDb, SqlTx, SqlValue};
use adapters::store::{Checkpoint, EventStore, RecordedEvent, MAX_READ_BATCH};
use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{Projection, ProjectionError, SnapshotKeep};

/// Events between two seals. Small enough that a removed or reordered event is pinned to a
/// short range by the seals alone; at 32 bytes a seal, a million events cost 4,000 rows.
pub const SEAL_INTERVAL: i64 = 250;

/// What a snapshot keeps of the trail: its last row. The fold reads it for the running hash
/// ([`AuditLog::apply_batch`]) and the summary ([`Projection::render`], [`summary`]) for the
/// count and the head; the events per type are kept in `audit_event_types`. The trail's pages
/// as of a moment ([`entries_as_of`]) read the rows before an as-of copy's first row from the
/// live trail, which holds them as they were: a row never changes once written.
pub const SNAPSHOT_TRAIL: SnapshotKeep = SnapshotKeep::Newest {
    per: &[],
    by: &["seq"],
    rows: 1,
};

/// The running hash before the first event.
pub const GENESIS_RUNNING_HASH: [u8; 32] = [0; 32];

pub struct AuditLog;

/// One step of the running hash.
pub fn next_running_hash(previous: &[u8; 32], position: i64, event_hash: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(position.to_be_bytes());
    hasher.update(event_hash);
    hasher.finalize().into()
}

fn metadata_text(metadata: &Value, key: &str) -> SqlValue {
    match metadata.get(key) {
        Some(Value::String(text)) => SqlValue::Text(text.clone()),
        Some(Value::Null) | None => SqlValue::Null,
        Some(other) => SqlValue::Text(other.to_string()),
    }
}

fn decode_hash(text: &str) -> Option<[u8; 32]> {
    hex::decode(text).ok()?.try_into().ok()
}

/// The last audit row's sequence number and running hash (0 and genesis when there is none).
async fn last_row(
    tx: &mut SqlTx,
    next: &RecordedEvent,
) -> Result<(i64, [u8; 32]), ProjectionError> {
    let last = tx
        .fetch_optional(
            "SELECT seq, running_hash FROM audit_log ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .await?;
    let Some(row) = last else {
        return Ok((0, GENESIS_RUNNING_HASH));
    };
    let text = row.text(1)?;
    let hash = decode_hash(&text).ok_or(ProjectionError::Undecodable {
        position: next.position,
        event_type: next.event_type.clone(),
        reason: format!("the previous running hash {text:?} is not 32 bytes of hex"),
    })?;
    Ok((row.i64(0)?, hash))
}

/// Writes the audit row `seq` for `event`.
async fn write_row(
    tx: &mut SqlTx,
    seq: i64,
    running: &str,
    event: &RecordedEvent,
) -> Result<(), ProjectionError> {
    let metadata = &event.metadata;
    tx.write(
        "INSERT INTO audit_log (seq, position, transaction_id, event_id, stream_id, stream_type, \
             version, event_type, actor, command_id, correlation_id, causation_id, request_id, \
             delivery_id, source, recorded_at_us, event_hash, running_hash) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        &[
            seq.into(),
            event.position.into(),
            event.transaction_id.into(),
            event.event_id.to_string().into(),
            event.stream_id.as_str().into(),
            event.stream_type.as_str().into(),
            event.version.into(),
            event.event_type.as_str().into(),
            metadata_text(metadata, "actor"),
            metadata_text(metadata, "command_id"),
            metadata_text(metadata, "correlation_id"),
            metadata_text(metadata, "causation_id"),
            metadata_text(metadata, "request_id"),
            metadata_text(metadata, "delivery_id"),
            metadata_text(metadata, "source"),
            adapters::clock::unix_micros(event.recorded_at).into(),
            event.hash.to_hex().into(),
            running.into(),
        ],
    )
    .await?;
    Ok(())
}

/// Writes the seal of `seq`, which closes an interval.
async fn write_seal(
    tx: &mut SqlTx,
    seq: i64,
    running: String,
    event: &RecordedEvent,
) -> Result<(), ProjectionError> {
    // A rebuild refolds the same log and must find the same seal; it never rewrites one.
    tx.write(
        "INSERT INTO audit_seals (seq, transaction_id, position, running_hash, sealed_at_us) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (seq) DO NOTHING",
        &[
            seq.into(),
            event.transaction_id.into(),
            event.position.into(),
            running.into(),
            adapters::clock::unix_micros(event.recorded_at).into(),
        ],
    )
    .await?;
    Ok(())
}

#[async_trait]
impl Projection for AuditLog {
    fn name(&self) -> &'static str {
        "audit_log"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["audit_log", "audit_event_types"]
    }

    fn kept_tables(&self) -> &'static [&'static str] {
        &["audit_seals"]
    }

    fn snapshot_keeps(&self, table: &str) -> SnapshotKeep {
        match table {
            "audit_log" => SNAPSHOT_TRAIL,
            _ => SnapshotKeep::Every,
        }
    }

    /// Reads the last row once for the whole run: each row's hash chains on the one before.
    /// Every [`SEAL_INTERVAL`]th row is sealed.
    async fn apply_batch(
        &self,
        tx: &mut SqlTx,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let Some(first) = events.first() else {
            return Ok(());
        };
        let (mut seq, mut running) = last_row(tx, first).await?;
        // The seals after all the rows: each table's rows then go in as one run, which
        // PostgreSQL takes as one statement (a seal between rows would end the run).
        let mut seals = Vec::new();
        let mut types: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
        for event in events {
            *types.entry(event.event_type.as_str()).or_default() += 1;
            seq += 1;
            running = next_running_hash(&running, event.position, &event.hash.0);
            let hex = hex::encode(running);
            write_row(tx, seq, &hex, event).await?;
            if seq % SEAL_INTERVAL == 0 {
                seals.push((seq, hex, event));
            }
        }
        for (seq, running, event) in seals {
            write_seal(tx, seq, running, event).await?;
        }
        for (event_type, events) in types {
            tx.write(
                "INSERT INTO audit_event_types (event_type, events) VALUES (?, ?) \
                 ON CONFLICT (event_type) DO UPDATE SET events = audit_event_types.events + excluded.events",
                &[event_type.into(), events.into()],
            )
            .await?;
        }
        Ok(())
    }

    async fn render(&self, db: &SqlDb) -> Result<Value, ProjectionError> {
        Ok(serde_json::json!(summary(db).await?))
    }
}

/// The trail's last entry: its running hash and the event position it covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditHead {
    pub running_hash: String,
    pub position: i64,
}

/// The trail at a glance: how many events, its head (none while empty), and how many events
/// of each type (by type name).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditSummary {
    pub events: i64,
    pub head: Option<AuditHead>,
    pub events_by_type: std::collections::BTreeMap<String, i64>,
}

/// The trail at a glance ([`AuditSummary`]), read in constant time: rows are numbered 1, 2, …
/// with no gap, so the last row's `seq` is how many there are, and the events per type are
/// kept as rows are written.
pub async fn summary(db: &SqlDb) -> Result<AuditSummary, ProjectionError> {
    let last = db
        .fetch_optional(
            "SELECT seq, running_hash, position FROM audit_log ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .await?;
    let (events, head) = match last {
        Some(row) => (
            row.i64(0)?,
            Some(AuditHead {
                running_hash: row.text(1)?,
                position: row.i64(2)?,
            }),
        ),
        None => (0, None),
    };
    let events_by_type = db
        .fetch_all(
            "SELECT event_type, events FROM audit_event_types ORDER BY event_type",
            &[],
        )
        .await?
        .iter()
        .map(|row| Ok((row.text(0)?, row.i64(1)?)))
        .collect::<Result<_, ProjectionError>>()?;
    Ok(AuditSummary {
        events,
        head,
        events_by_type,
    })
}

/// Where the events table and the audit trail disagree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SealBreak {
    /// The audit sequence number where they part.
    pub seq: i64,
    /// The event position there, as the events table has it now (None: the log ended).
    pub position: Option<i64>,
    pub reason: String,
}

/// The result of checking the running hash and the seals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SealReport {
    pub events_checked: i64,
    pub seals_checked: i64,
    pub first_break: Option<SealBreak>,
}

struct AuditRow {
    seq: i64,
    position: i64,
    running_hash: String,
}

/// Recomputes the running hash from the events table, in checkpoint order, and compares it
/// with every audit row and every seal written so far.
pub async fn verify_seals(
    store: &dyn EventStore,
    db: &SqlDb,
) -> Result<SealReport, ProjectionError> {
    let seals = db
        .fetch_all(
            "SELECT seq, position, running_hash FROM audit_seals ORDER BY seq",
            &[],
        )
        .await?
        .iter()
        .map(|row| {
            Ok(AuditRow {
                seq: row.i64(0)?,
                position: row.i64(1)?,
                running_hash: row.text(2)?,
            })
        })
        .collect::<Result<Vec<_>, ProjectionError>>()?;
    let audited: i64 = db
        .fetch_optional("SELECT COALESCE(MAX(seq), 0) FROM audit_log", &[])
        .await?
        .map_or(Ok(0), |row| row.i64(0))?;
    let last_sealed = seals.last().map_or(0, |seal| seal.seq);
    let until = audited.max(last_sealed);

    let mut report = SealReport::default();
    let mut running = GENESIS_RUNNING_HASH;
    let mut seq = 0i64;
    let mut seals = seals.into_iter().peekable();
    let mut after = Checkpoint::START;
    while seq < until {
        let batch = store.read_committed(after, MAX_READ_BATCH).await?;
        let audit_rows = audit_rows(db, seq, MAX_READ_BATCH as i64).await?;
        let mut audit_rows = audit_rows.into_iter().peekable();
        if batch.is_empty() {
            report.first_break = Some(SealBreak {
                seq: seq + 1,
                position: None,
                reason: format!("the audit trail covers {until} events but the events table ends after {seq}: events were removed"),
            });
            break;
        }
        for event in &batch {
            if seq == until {
                break;
            }
            seq += 1;
            running = next_running_hash(&running, event.position, &event.hash.0);
            let running_hex = hex::encode(running);
            report.events_checked += 1;
            if let Some(row) = audit_rows.next_if(|row| row.seq == seq) {
                if row.position != event.position || row.running_hash != running_hex {
                    report.first_break = Some(SealBreak {
                        seq,
                        position: Some(event.position),
                        reason: format!(
                            "audit row {seq} recorded position {} and running hash {}, the events table now gives position {} and {running_hex}: an event was removed, added, reordered or altered at or before position {}",
                            row.position, row.running_hash, event.position, event.position
                        ),
                    });
                    return Ok(report);
                }
            }
            if let Some(seal) = seals.next_if(|seal| seal.seq == seq) {
                report.seals_checked += 1;
                if seal.position != event.position || seal.running_hash != running_hex {
                    report.first_break = Some(SealBreak {
                        seq,
                        position: Some(event.position),
                        reason: format!(
                            "seal {seq} (position {}) does not match the recomputed running hash: the log was changed at or before position {}",
                            seal.position, event.position
                        ),
                    });
                    return Ok(report);
                }
            }
        }
        after = Checkpoint::after(batch.last().expect("batch is not empty"));
    }
    Ok(report)
}

async fn audit_rows(
    db: &SqlDb,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<AuditRow>, ProjectionError> {
    db.fetch_all(
        "SELECT seq, position, running_hash FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?",
        &[after_seq.into(), limit.into()],
    )
    .await?
    .iter()
    .map(|row| {
        Ok(AuditRow {
            seq: row.i64(0)?,
            position: row.i64(1)?,
            running_hash: row.text(2)?,
        })
    })
    .collect()
}

// ---------------------------------------------------------------------------------------------
// Queries: the trail as typed rows, filtered and paged.

/// Entries in one page of the trail at most.
pub const MAX_PAGE_ROWS: i64 = 200;

/// One event of the audit trail: who, what, when, why and from which request or delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub position: i64,
    pub event_id: String,
    pub stream_id: String,
    pub stream_type: String,
    pub version: i64,
    pub event_type: String,
    pub actor: Option<String>,
    pub command_id: Option<String>,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    pub request_id: Option<String>,
    pub delivery_id: Option<String>,
    pub source: Option<String>,
    /// RFC 3339.
    pub recorded_at: String,
    pub event_hash: String,
    pub running_hash: String,
    /// Unix microseconds of `recorded_at` (the dashboard formats it its own way).
    #[serde(skip)]
    pub recorded_at_us: i64,
}

/// A page of the trail and the cursor of the next (`None` on the last page).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    pub next_cursor: Option<String>,
}

/// Which entries, in which order.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery<'a> {
    /// A stream id; with `stream_type_too`, a stream type matches as well (`invoice`).
    pub stream: Option<&'a str>,
    pub stream_type_too: bool,
    pub actor: Option<&'a str>,
    pub event_type: Option<&'a str>,
    /// Recorded at or after / at or before, in Unix microseconds.
    pub from_us: Option<i64>,
    pub to_us: Option<i64>,
    /// Oldest first after this sequence number, or (with `newest_first`) newest first before it.
    pub cursor: Option<i64>,
    pub newest_first: bool,
    pub limit: i64,
}

const AUDIT_COLUMNS: &str = "seq, position, event_id, stream_id, stream_type, version, \
     event_type, actor, command_id, correlation_id, causation_id, request_id, delivery_id, \
     source, recorded_at_us, event_hash, running_hash";

fn audit_entry(row: &adapters::sql::SqlRow) -> Result<AuditEntry, ProjectionError> {
    Ok(AuditEntry {
        seq: row.i64(0)?,
        position: row.i64(1)?,
        event_id: row.text(2)?,
        stream_id: row.text(3)?,
        stream_type: row.text(4)?,
        version: row.i64(5)?,
        event_type: row.text(6)?,
        actor: row.opt_text(7)?,
        command_id: row.opt_text(8)?,
        correlation_id: row.opt_text(9)?,
        causation_id: row.opt_text(10)?,
        request_id: row.opt_text(11)?,
        delivery_id: row.opt_text(12)?,
        source: row.opt_text(13)?,
        recorded_at: crate::rfc3339(row.i64(14)?),
        event_hash: row.text(15)?,
        running_hash: row.text(16)?,
        recorded_at_us: row.i64(14)?,
    })
}

/// Which column a stream filter matches.
#[derive(Clone, Copy)]
enum StreamColumn {
    Id,
    Type,
}

/// One page of the trail as `query` asks. A filter by stream id or type (the dashboard's)
/// reads each column through its own `(column, seq)` index and merges the two pages: one
/// query with `OR` would read every row of the trail.
pub async fn entries(db: &SqlDb, query: &AuditQuery<'_>) -> Result<AuditPage, ProjectionError> {
    let limit = query.limit.clamp(1, MAX_PAGE_ROWS);
    let items = entries_between(db, query, Seqs::default(), limit).await?;
    Ok(page_of(items, limit))
}

/// One page of the trail as of a moment, as `query` asks: the rows of `as_of` (the audit log
/// computed as of the moment) and, before its first row, the live trail's (`live`).
///
/// An as-of copy loaded from a snapshot holds the trail only from the snapshot's last row on
/// ([`SNAPSHOT_TRAIL`]). The rows before it are the live trail's: both folded the same prefix
/// of commit order, so they are the same rows, and the running hash of the copy's first row,
/// which chains every row before it, is checked against the live row of that number first. A
/// copy that starts at row 1 (a full replay, or `live` itself) is read alone.
pub async fn entries_as_of(
    live: &SqlDb,
    as_of: &SqlDb,
    query: &AuditQuery<'_>,
) -> Result<AuditPage, ProjectionError> {
    let first = as_of
        .fetch_optional(
            "SELECT seq, running_hash FROM audit_log ORDER BY seq LIMIT 1",
            &[],
        )
        .await?;
    let Some(first) = first else {
        return entries(as_of, query).await;
    };
    let (first_seq, first_hash) = (first.i64(0)?, first.text(1)?);
    if first_seq == 1 {
        return entries(as_of, query).await;
    }
    let live_row = live
        .fetch_optional(
            "SELECT running_hash FROM audit_log WHERE seq = ?",
            &[first_seq.into()],
        )
        .await?;
    match live_row {
        None => {
            return Err(ProjectionError::Behind(format!(
                "the audit trail as of then starts from its row {first_seq}, which the live \
                 trail has not reached yet"
            )))
        }
        Some(row) if row.text(0)? != first_hash => {
            return Err(ProjectionError::Inconsistent(format!(
                "the live audit trail's row {first_seq} has another running hash than the trail \
                 folded as of then: they part ways at or before it (revledger verify names where)"
            )))
        }
        Some(_) => {}
    }
    let limit = query.limit.clamp(1, MAX_PAGE_ROWS);
    let before = Seqs {
        below: Some(first_seq),
        ..Seqs::default()
    };
    let after = Seqs {
        from: Some(first_seq),
        ..Seqs::default()
    };
    let mut items = entries_between(live, query, before, limit).await?;
    items.extend(entries_between(as_of, query, after, limit).await?);
    items.sort_by_key(|entry| entry.seq);
    if query.newest_first {
        items.reverse();
    }
    Ok(page_of(items, limit))
}

/// The page of `items` (in the query's order, at most one more than a page) and its cursor.
fn page_of(mut items: Vec<AuditEntry>, limit: i64) -> AuditPage {
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next_cursor = if more {
        items.last().map(|entry| entry.seq.to_string())
    } else {
        None
    };
    AuditPage { items, next_cursor }
}

/// A range of sequence numbers: at or after `from`, before `below` (either open).
#[derive(Clone, Copy, Debug, Default)]
struct Seqs {
    from: Option<i64>,
    below: Option<i64>,
}

/// At most `limit + 1` rows of the trail within `seqs` as `query` asks, in its order.
async fn entries_between(
    db: &SqlDb,
    query: &AuditQuery<'_>,
    seqs: Seqs,
    limit: i64,
) -> Result<Vec<AuditEntry>, ProjectionError> {
    let items = match (query.stream, query.stream_type_too) {
        (Some(_), true) => {
            let id = Some(StreamColumn::Id);
            let mut merged = entries_matching(db, query, id, seqs, limit).await?;
            let kind = Some(StreamColumn::Type);
            merged.extend(entries_matching(db, query, kind, seqs, limit).await?);
            merged.sort_by_key(|entry| entry.seq);
            merged.dedup_by_key(|entry| entry.seq);
            if query.newest_first {
                merged.reverse();
            }
            merged
        }
        (Some(_), false) => {
            entries_matching(db, query, Some(StreamColumn::Id), seqs, limit).await?
        }
        (None, _) => entries_matching(db, query, None, seqs, limit).await?,
    };
    Ok(items)
}

/// At most `limit + 1` rows of the trail as `query` asks, the stream (if any) matched on
/// `column`, in `seq` order (newest first when asked).
async fn entries_matching(
    db: &SqlDb,
    query: &AuditQuery<'_>,
    column: Option<StreamColumn>,
    seqs: Seqs,
    limit: i64,
) -> Result<Vec<AuditEntry>, ProjectionError> {
    let mut sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE 1 = 1");
    let mut params: Vec<adapters::sql::SqlValue> = Vec::new();
    if let (Some(stream), Some(column)) = (query.stream, column) {
        sql.push_str(match column {
            StreamColumn::Id => " AND stream_id = ?",
            StreamColumn::Type => " AND stream_type = ?",
        });
        params.push(stream.into());
    }
    for (column, value) in [("actor", query.actor), ("event_type", query.event_type)] {
        if let Some(value) = value {
            sql.push_str(&format!(" AND {column} = ?"));
            params.push(value.into());
        }
    }
    if let Some(from) = query.from_us {
        sql.push_str(" AND recorded_at_us >= ?");
        params.push(from.into());
    }
    if let Some(to) = query.to_us {
        sql.push_str(" AND recorded_at_us <= ?");
        params.push(to.into());
    }
    for (bound, value) in [(" AND seq >= ?", seqs.from), (" AND seq < ?", seqs.below)] {
        if let Some(value) = value {
            sql.push_str(bound);
            params.push(value.into());
        }
    }
    if let Some(cursor) = query.cursor {
        sql.push_str(if query.newest_first {
            " AND seq < ?"
        } else {
            " AND seq > ?"
        });
        params.push(cursor.into());
    }
    sql.push_str(if query.newest_first {
        " ORDER BY seq DESC LIMIT ?"
    } else {
        " ORDER BY seq LIMIT ?"
    });
    params.push((limit + 1).into());
    db.fetch_all(&sql, &params)
        .await?
        .iter()
        .map(audit_entry)
        .collect()
}
