//! The webhook inbox: what makes a delivery an idempotent command.
//!
//! Every delivery that passes its signature check is kept here with its raw body and the answer
//! we gave, keyed by `(provider, delivery_id)`. An accepted delivery's row is written **in the
//! same transaction as the events it caused** (the store's append takes an [`InboxRecord`]), so
//! there is never an effect without its inbox row nor a row claiming an effect that did not
//! happen. A repeat is answered from here without touching any aggregate; a repeat with a
//! different body is a conflict, kept for review. Deliveries that refer to something not known
//! yet are `parked` and retried with backoff, and after [`MAX_ATTEMPTS`] become dead letters.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::clock::{now_micros, unix_micros};
use crate::sql::{SqlDb, SqlValue};
use crate::store::StoreError;

/// Tries of a parked delivery before it becomes a dead letter. With [`BACKOFF_BASE_SECONDS`]
/// doubling from 2 s, eight tries span about eight and a half minutes: long enough for an
/// invoice issued "right after" to arrive, short enough that finance sees a stuck one today.
pub const MAX_ATTEMPTS: i64 = 8;

/// The first retry waits this long; each next one twice as long.
pub const BACKOFF_BASE_SECONDS: i64 = 2;

/// Rows one listing returns at most.
pub const MAX_LIST: i64 = 200;

/// The namespace of inbox ids and of webhook command ids (uuid v5).
pub const INBOX_NAMESPACE: Uuid = Uuid::from_u128(0x3c2a_9b7e_0f41_4d2c_8e55_a1b2_c3d4_e5f6);

/// The inbox row written with an accepted delivery's events.
#[derive(Clone, Debug, PartialEq)]
pub struct InboxRecord {
    pub provider: String,
    pub delivery_id: String,
    pub body_sha256: String,
    pub raw_body: String,
    pub body_encoding: &'static str,
    pub received_at: OffsetDateTime,
    pub http_status: u16,
    pub response: Value,
    /// Who replayed this delivery by hand (a dead letter tried again by an operator), recorded
    /// as the actor of the events it appends; `None` for the provider's own deliveries and
    /// the retry worker. Not stored in the inbox row.
    pub replayed_by: Option<String>,
}

impl InboxRecord {
    pub fn new(
        provider: &str,
        delivery_id: &str,
        body: &[u8],
        received_at: OffsetDateTime,
    ) -> InboxRecord {
        let (raw_body, body_encoding) = encode_body(body);
        InboxRecord {
            provider: provider.to_owned(),
            delivery_id: delivery_id.to_owned(),
            body_sha256: body_sha256(body),
            raw_body,
            body_encoding,
            received_at,
            http_status: 200,
            response: Value::Null,
            replayed_by: None,
        }
    }

    /// The stable id of this delivery's row (also used in dead-letter URLs).
    pub fn inbox_id(&self) -> String {
        inbox_id(&self.provider, &self.delivery_id)
    }

    /// The command id every attempt at this delivery uses, so it is applied once.
    pub fn command_id(&self) -> Uuid {
        Uuid::new_v5(
            &INBOX_NAMESPACE,
            format!("command:{}:{}", self.provider, self.delivery_id).as_bytes(),
        )
    }
}

pub fn inbox_id(provider: &str, delivery_id: &str) -> String {
    Uuid::new_v5(
        &INBOX_NAMESPACE,
        format!("{provider}:{delivery_id}").as_bytes(),
    )
    .to_string()
}

pub fn body_sha256(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// Raw bytes as storable text: UTF-8 as is, anything else as base64 (marked).
pub fn encode_body(body: &[u8]) -> (String, &'static str) {
    match std::str::from_utf8(body) {
        // NUL is valid UTF-8 but PostgreSQL text cannot hold it: such a body goes as base64.
        Ok(text) if !text.contains('\0') => (text.to_owned(), "utf8"),
        _ => {
            use base64::Engine;
            (
                base64::engine::general_purpose::STANDARD.encode(body),
                "base64",
            )
        }
    }
}

/// What an encoding is called once the body in that encoding is sealed
/// ([`crate::personal`]): `sealed_utf8`, `sealed_base64`. The body is then an envelope of its
/// text in the inner encoding.
pub const SEALED_ENCODING_PREFIX: &str = "sealed_";

/// The sealed form of `encoding`.
pub fn sealed_encoding(encoding: &str) -> &'static str {
    match encoding {
        "base64" | "sealed_base64" => "sealed_base64",
        _ => "sealed_utf8",
    }
}

/// The inverse of [`encode_body`].
pub fn decode_body(raw: &str, encoding: &str) -> Vec<u8> {
    if encoding == "base64" {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(raw)
            .unwrap_or_default()
    } else {
        raw.as_bytes().to_vec()
    }
}

/// The upsert that records an accepted delivery; the store runs it inside the append.
pub const UPSERT_ACCEPTED_SQL: &str = "INSERT INTO webhook_inbox (inbox_id, provider, delivery_id, body_sha256, \
     raw_body, body_encoding, received_at_us, status, http_status, response, attempts, next_attempt_at_us, \
     last_error, updated_at_us) VALUES (?, ?, ?, ?, ?, ?, ?, 'accepted', ?, ?, 1, NULL, NULL, ?) \
     ON CONFLICT (provider, delivery_id) DO UPDATE SET status = 'accepted', http_status = excluded.http_status, \
     response = excluded.response, attempts = webhook_inbox.attempts + 1, next_attempt_at_us = NULL, \
     last_error = NULL, updated_at_us = excluded.updated_at_us";

/// [`UPSERT_ACCEPTED_SQL`] with its row's values given by `select` (the ten values in
/// [`accepted_params`]' order, then the constant columns as in `VALUES`): for a statement that
/// computes the response from the rows it has just inserted.
pub fn upsert_accepted_from(select: &str) -> String {
    let (insert, rest) = UPSERT_ACCEPTED_SQL
        .split_once(" VALUES ")
        .expect("the upsert has a VALUES list");
    let (_, on_conflict) = rest
        .split_once(" ON CONFLICT ")
        .expect("the upsert has an ON CONFLICT clause");
    format!("{insert} {select} ON CONFLICT {on_conflict}")
}

/// What the inbox keeps as the answer to a delivery whose events were appended: the answer
/// made for it with where its events landed. The webhook answers it as written, and repeats of
/// the delivery get it from the row.
pub fn accepted_response(
    response: &Value,
    stream_id: &str,
    version: u64,
    first_position: i64,
    last_position: i64,
) -> Value {
    let mut answer = match response {
        Value::Object(map) => map.clone(),
        _ => serde_json::Map::new(),
    };
    answer.insert("stream_id".into(), Value::from(stream_id));
    answer.insert("version".into(), Value::from(version));
    answer.insert("first_position".into(), Value::from(first_position));
    answer.insert("last_position".into(), Value::from(last_position));
    Value::Object(answer)
}

/// The parameters of [`UPSERT_ACCEPTED_SQL`] for `record`.
pub fn accepted_params(record: &InboxRecord) -> Vec<SqlValue> {
    vec![
        record.inbox_id().into(),
        record.provider.as_str().into(),
        record.delivery_id.as_str().into(),
        record.body_sha256.as_str().into(),
        record.raw_body.as_str().into(),
        record.body_encoding.into(),
        unix_micros(record.received_at).into(),
        i64::from(record.http_status).into(),
        record.response.to_string().into(),
        unix_micros(now_micros()).into(),
    ]
}

/// A row of the inbox.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InboxEntry {
    pub inbox_id: String,
    pub provider: String,
    pub delivery_id: String,
    pub body_sha256: String,
    #[serde(skip)]
    pub raw_body: String,
    #[serde(skip)]
    pub body_encoding: String,
    pub received_at_us: i64,
    pub status: String,
    pub http_status: u16,
    pub response: Value,
    pub attempts: i64,
    pub next_attempt_at_us: Option<i64>,
    pub last_error: Option<String>,
}

impl InboxEntry {
    pub fn body(&self) -> Vec<u8> {
        decode_body(&self.raw_body, &self.body_encoding)
    }
}

const ENTRY_COLUMNS: &str =
    "inbox_id, provider, delivery_id, body_sha256, raw_body, body_encoding, received_at_us, \
     status, http_status, response, attempts, next_attempt_at_us, last_error";

fn entry(row: &crate::sql::SqlRow) -> Result<InboxEntry, StoreError> {
    Ok(InboxEntry {
        inbox_id: row.text(0)?,
        provider: row.text(1)?,
        delivery_id: row.text(2)?,
        body_sha256: row.text(3)?,
        raw_body: row.text(4)?,
        body_encoding: row.text(5)?,
        received_at_us: row.i64(6)?,
        status: row.text(7)?,
        http_status: u16::try_from(row.i64(8)?).unwrap_or(500),
        response: serde_json::from_str(&row.text(9)?).unwrap_or(Value::Null),
        attempts: row.i64(10)?,
        next_attempt_at_us: row.opt_i64(11)?,
        last_error: row.opt_text(12)?,
    })
}

/// The inbox row of a delivery, if it was seen before.
pub async fn find(
    db: &SqlDb,
    provider: &str,
    delivery_id: &str,
) -> Result<Option<InboxEntry>, StoreError> {
    let sql =
        format!("SELECT {ENTRY_COLUMNS} FROM webhook_inbox WHERE provider = ? AND delivery_id = ?");
    db.fetch_optional(&sql, &[provider.into(), delivery_id.into()])
        .await?
        .as_ref()
        .map(entry)
        .transpose()
}

pub async fn find_by_id(db: &SqlDb, inbox_id: &str) -> Result<Option<InboxEntry>, StoreError> {
    let sql = format!("SELECT {ENTRY_COLUMNS} FROM webhook_inbox WHERE inbox_id = ?");
    db.fetch_optional(&sql, &[inbox_id.into()])
        .await?
        .as_ref()
        .map(entry)
        .transpose()
}

/// Records a delivery that caused no events (acknowledged, rejected as malformed, or refused
/// by the domain) with the answer given. A row already accepted is never downgraded.
pub async fn record_without_events(
    db: &SqlDb,
    record: &InboxRecord,
    status: &str,
    error: Option<&str>,
) -> Result<(), StoreError> {
    let now = unix_micros(now_micros());
    db.execute(
        "INSERT INTO webhook_inbox (inbox_id, provider, delivery_id, body_sha256, raw_body, body_encoding, \
         received_at_us, status, http_status, response, attempts, next_attempt_at_us, last_error, updated_at_us) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, NULL, ?, ?) \
         ON CONFLICT (provider, delivery_id) DO UPDATE SET status = excluded.status, \
         http_status = excluded.http_status, response = excluded.response, \
         attempts = webhook_inbox.attempts + 1, last_error = excluded.last_error, updated_at_us = excluded.updated_at_us \
         WHERE webhook_inbox.status <> 'accepted'",
        &[
            record.inbox_id().into(),
            record.provider.as_str().into(),
            record.delivery_id.as_str().into(),
            record.body_sha256.as_str().into(),
            record.raw_body.as_str().into(),
            record.body_encoding.into(),
            unix_micros(record.received_at).into(),
            status.into(),
            i64::from(record.http_status).into(),
            record.response.to_string().into(),
            error.into(),
            now.into(),
        ],
    )
    .await?;
    Ok(())
}

/// Parks a delivery (or re-parks it after a failed retry) with exponential backoff; after
/// [`MAX_ATTEMPTS`] it becomes a dead letter. Returns the new status.
pub async fn park(
    db: &SqlDb,
    record: &InboxRecord,
    reason: &str,
    now: OffsetDateTime,
) -> Result<&'static str, StoreError> {
    let attempts = find(db, &record.provider, &record.delivery_id)
        .await?
        .map_or(0, |e| e.attempts)
        + 1;
    let (status, next) = if attempts >= MAX_ATTEMPTS {
        ("dead_lettered", None)
    } else {
        let wait = BACKOFF_BASE_SECONDS.saturating_mul(1 << (attempts - 1).min(20));
        ("parked", Some(unix_micros(now) + wait * 1_000_000))
    };
    let now_us = unix_micros(now);
    db.execute(
        "INSERT INTO webhook_inbox (inbox_id, provider, delivery_id, body_sha256, raw_body, body_encoding, \
         received_at_us, status, http_status, response, attempts, next_attempt_at_us, last_error, updated_at_us) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (provider, delivery_id) DO UPDATE SET status = excluded.status, \
         http_status = excluded.http_status, response = excluded.response, attempts = excluded.attempts, \
         next_attempt_at_us = excluded.next_attempt_at_us, last_error = excluded.last_error, \
         updated_at_us = excluded.updated_at_us WHERE webhook_inbox.status <> 'accepted'",
        &[
            record.inbox_id().into(),
            record.provider.as_str().into(),
            record.delivery_id.as_str().into(),
            record.body_sha256.as_str().into(),
            record.raw_body.as_str().into(),
            record.body_encoding.into(),
            unix_micros(record.received_at).into(),
            status.into(),
            i64::from(record.http_status).into(),
            record.response.to_string().into(),
            attempts.into(),
            next.into(),
            reason.into(),
            now_us.into(),
        ],
    )
    .await?;
    Ok(status)
}

/// Keeps a delivery whose id was seen with a different body.
pub async fn record_conflict(db: &SqlDb, record: &InboxRecord) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO webhook_conflicts (provider, delivery_id, body_sha256, raw_body, body_encoding, received_at_us) \
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (provider, delivery_id, body_sha256) DO NOTHING",
        &[
            record.provider.as_str().into(),
            record.delivery_id.as_str().into(),
            record.body_sha256.as_str().into(),
            record.raw_body.as_str().into(),
            record.body_encoding.into(),
            unix_micros(record.received_at).into(),
        ],
    )
    .await?;
    Ok(())
}

/// Parked deliveries due for another try at `now`.
pub async fn due_for_retry(
    db: &SqlDb,
    now: OffsetDateTime,
    limit: i64,
) -> Result<Vec<InboxEntry>, StoreError> {
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM webhook_inbox WHERE status = 'parked' AND next_attempt_at_us <= ? \
         ORDER BY next_attempt_at_us LIMIT ?"
    );
    db.fetch_all(&sql, &[unix_micros(now).into(), limit.min(MAX_LIST).into()])
        .await?
        .iter()
        .map(entry)
        .collect()
}

/// Dead letters, oldest first, after the cursor (an inbox id) when given.
pub async fn dead_letters(db: &SqlDb, limit: i64) -> Result<Vec<InboxEntry>, StoreError> {
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM webhook_inbox WHERE status = 'dead_lettered' ORDER BY received_at_us, inbox_id LIMIT ?"
    );
    db.fetch_all(&sql, &[limit.clamp(1, MAX_LIST).into()])
        .await?
        .iter()
        .map(entry)
        .collect()
}

/// Bodies rewritten per statement by [`redact_stored`].
const REDACT_BATCH: i64 = 500;

/// Rewrites stored bodies of `provider` (the inbox and the conflicts kept for review) that
/// still hold one of `secrets` in clear, through `redact`, with the hash recomputed over what is
/// kept; returns how many. Rows stored before bodies were redacted on arrival are found this
/// way for the secrets configured now (a secret already removed from the configuration is not
/// known here). Bodies kept as base64 (not UTF-8) are not searched.
pub async fn redact_stored(
    db: &SqlDb,
    provider: &str,
    secrets: &[&str],
    redact: impl Fn(&[u8]) -> Vec<u8>,
) -> Result<u64, StoreError> {
    let contains = match db.engine() {
        "postgres" => "strpos(raw_body, ?) > 0",
        _ => "instr(raw_body, ?) > 0",
    };
    let mut rewritten = 0;
    // The inbox's hash is what a repeated delivery is recognised by, so it follows the kept
    // body; a conflict's hash is only part of its key and stays.
    for (table, rehash) in [("webhook_inbox", true), ("webhook_conflicts", false)] {
        for secret in secrets.iter().filter(|secret| !secret.is_empty()) {
            loop {
                let rows = db
                    .fetch_all(
                        &format!(
                            "SELECT delivery_id, body_sha256, raw_body FROM {table} WHERE provider = ? \
                             AND body_encoding = 'utf8' AND {contains} LIMIT ?"
                        ),
                        &[provider.into(), (*secret).into(), REDACT_BATCH.into()],
                    )
                    .await?;
                let mut changed = 0;
                for row in &rows {
                    let (delivery_id, stored_sha256, body) =
                        (row.text(0)?, row.text(1)?, row.text(2)?);
                    let kept = redact(body.as_bytes());
                    if kept == body.as_bytes() {
                        continue;
                    }
                    let (raw_body, encoding) = encode_body(&kept);
                    let sha256 = if rehash {
                        body_sha256(&kept)
                    } else {
                        stored_sha256.clone()
                    };
                    changed += db
                        .execute(
                            &format!(
                                "UPDATE {table} SET raw_body = ?, body_encoding = ?, body_sha256 = ? \
                                 WHERE provider = ? AND delivery_id = ? AND body_sha256 = ?"
                            ),
                            &[
                                raw_body.into(),
                                encoding.into(),
                                sha256.into(),
                                provider.into(),
                                delivery_id.into(),
                                stored_sha256.into(),
                            ],
                        )
                        .await?;
                }
                rewritten += changed;
                // A row the redaction cannot change would be found again: stop there.
                if changed == 0 || (rows.len() as i64) < REDACT_BATCH {
                    break;
                }
            }
        }
    }
    Ok(rewritten)
}

/// Counts by status, for metrics and the dashboard.
pub async fn counts(db: &SqlDb) -> Result<Vec<(String, i64)>, StoreError> {
    db.fetch_all(
        "SELECT status, COUNT(*) FROM webhook_inbox GROUP BY status ORDER BY status",
        &[],
    )
    .await?
    .iter()
    .map(|row| Ok((row.text(0)?, row.i64(1)?)))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::{decode_body, encode_body};

    #[test]
    fn a_body_with_nul_is_kept_as_base64_and_decodes_to_the_same_bytes() {
        for body in [&b"{\"a\":1}"[..], b"nul\0inside", b"\xff\xfe not utf-8"] {
            let (raw, encoding) = encode_body(body);
            assert!(!raw.contains('\0'));
            assert_eq!(
                encoding,
                if body.contains(&0) || std::str::from_utf8(body).is_err() {
                    "base64"
                } else {
                    "utf8"
                }
            );
            assert_eq!(decode_body(&raw, encoding), body);
        }
    }
}
