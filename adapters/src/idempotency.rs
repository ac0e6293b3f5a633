//! `Idempotency-Key`: a request sent twice is applied once, with Stripe's semantics.
//!
//! A key is **claimed atomically before the command runs**: one insert into
//! `idempotency_requests`, keyed by `(principal, key)`, that only one request can win. The
//! winner gets a command id minted for the claim and runs; the command id makes the store
//! apply the command once however often it is retried. What the others get:
//! - the same key while the first is still running: [`Claim::InProgress`] (HTTP 409);
//! - the same key and body once it has answered: the stored answer ([`Claim::Done`]);
//! - the same key with another request or body: [`Claim::Mismatch`] (HTTP 422).
//!
//! Only a success is stored. A refusal or failure is not (a rule refused now may hold later: a
//! lead is onboarded once its payment arrives): the claim is released ([`release`]) and the
//! next request with the key takes it over with the **same** command id ([`Claim::Resumed`]),
//! so an attempt that did apply before failing is recognised rather than applied again. A claim whose request died
//! without a word (the process killed, the connection dropped) is taken over the same way once
//! it is older than the caller's `stale_after`.
//!
//! Keys live [`KEY_LIFETIME_SECONDS`] (Stripe's 24 hours): after that the key names a new
//! request, with a new command id, and [`purge_expired`] deletes the old row.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::clock::unix_micros;
use crate::sql::SqlDb;
use crate::store::StoreError;

/// How long a key is remembered: a client retrying a request does so within minutes or hours,
/// and a day is what Stripe keeps.
pub const KEY_LIFETIME_SECONDS: i64 = 24 * 60 * 60;

/// The longest key accepted (Stripe's bound): a uuid or a hash fits many times over.
pub const MAX_KEY_CHARS: usize = 255;

/// Expired rows deleted per purge statement, so a purge never holds the writer for long.
pub const PURGE_BATCH: i64 = 1_000;

/// What a request with an `Idempotency-Key` may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The key is new (or its earlier use expired): run the command under this fresh id.
    Fresh { command_id: Uuid },
    /// An earlier attempt with this key and body ended without an answer: run the command
    /// again under the same id, which the store recognises if it was applied.
    Resumed { command_id: Uuid },
    /// Answered before: send this answer again.
    Done { status: u16, response: String },
    /// A request with this key is running now.
    InProgress,
    /// The key was used for a different request or body.
    Mismatch,
}

/// Why a key cannot be used at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the Idempotency-Key header is empty: send a unique key, or no header")]
    Empty,
    #[error("the Idempotency-Key is longer than {MAX_KEY_CHARS} characters")]
    TooLong,
    #[error("the Idempotency-Key holds a character outside printable ASCII")]
    NotPrintable,
}

/// Checks a key's form: 1..=[`MAX_KEY_CHARS`] printable ASCII characters (a header value
/// cannot hold more, and a key is compared byte for byte).
pub fn validate_key(key: &str) -> Result<(), KeyError> {
    if key.trim().is_empty() {
        return Err(KeyError::Empty);
    }
    if key.len() > MAX_KEY_CHARS {
        return Err(KeyError::TooLong);
    }
    if !key.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err(KeyError::NotPrintable);
    }
    Ok(())
}

/// One request's identity under a key.
#[derive(Clone, Copy, Debug)]
pub struct KeyedRequest<'a> {
    pub principal: &'a str,
    pub key: &'a str,
    /// Method and path, e.g. `POST /api/leads`.
    pub request: &'a str,
    pub body_sha256: &'a str,
}

const CLAIM_SQL: &str = "INSERT INTO idempotency_requests (principal, idempotency_key, request, \
     body_sha256, command_id, state, status, response, claimed_at_us, created_at_us) \
     VALUES (?, ?, ?, ?, ?, 'in_progress', NULL, NULL, ?, ?) \
     ON CONFLICT (principal, idempotency_key) DO NOTHING";

/// Claims `keyed` at `now` (see the module docs). A claim in progress for longer than
/// `stale_after` is taken over.
pub async fn claim(
    db: &SqlDb,
    keyed: KeyedRequest<'_>,
    now: OffsetDateTime,
    stale_after: std::time::Duration,
) -> Result<Claim, StoreError> {
    let now_us = unix_micros(now);
    // Two rounds at most: an expired row replaced under us by another request's claim is
    // read again, and then it is that request's.
    for _ in 0..2 {
        let command_id = Uuid::now_v7();
        let inserted = db
            .execute(
                CLAIM_SQL,
                &[
                    keyed.principal.into(),
                    keyed.key.into(),
                    keyed.request.into(),
                    keyed.body_sha256.into(),
                    command_id.to_string().into(),
                    now_us.into(),
                    now_us.into(),
                ],
            )
            .await?;
        if inserted == 1 {
            return Ok(Claim::Fresh { command_id });
        }
        let Some(row) = find(db, keyed).await? else {
            continue;
        };
        if row.created_at_us < now_us - KEY_LIFETIME_SECONDS * 1_000_000 {
            if replace_expired(db, keyed, &row, command_id, now_us).await? {
                return Ok(Claim::Fresh { command_id });
            }
            continue;
        }
        if row.request != keyed.request || row.body_sha256 != keyed.body_sha256 {
            return Ok(Claim::Mismatch);
        }
        if row.state == "done" {
            return Ok(Claim::Done {
                status: row
                    .status
                    .and_then(|s| u16::try_from(s).ok())
                    .unwrap_or(200),
                response: row.response.unwrap_or_default(),
            });
        }
        let stale_us = i64::try_from(stale_after.as_micros()).unwrap_or(i64::MAX);
        let Some(command_id) = row.command_id else {
            return Ok(Claim::InProgress);
        };
        if row.claimed_at_us > now_us.saturating_sub(stale_us) {
            return Ok(Claim::InProgress);
        }
        return Ok(if take_over(db, keyed, row.claimed_at_us, now_us).await? {
            Claim::Resumed { command_id }
        } else {
            Claim::InProgress
        });
    }
    Ok(Claim::InProgress)
}

struct Row {
    request: String,
    body_sha256: String,
    command_id: Option<Uuid>,
    state: String,
    status: Option<i64>,
    response: Option<String>,
    claimed_at_us: i64,
    created_at_us: i64,
}

async fn find(db: &SqlDb, keyed: KeyedRequest<'_>) -> Result<Option<Row>, StoreError> {
    let row = db
        .fetch_optional(
            "SELECT request, body_sha256, command_id, state, status, response, claimed_at_us, \
             created_at_us FROM idempotency_requests WHERE principal = ? AND idempotency_key = ?",
            &[keyed.principal.into(), keyed.key.into()],
        )
        .await?;
    row.map(|row| {
        Ok(Row {
            request: row.text(0)?,
            body_sha256: row.text(1)?,
            command_id: row.opt_text(2)?.and_then(|id| Uuid::parse_str(&id).ok()),
            state: row.text(3)?,
            status: row.opt_i64(4)?,
            response: row.opt_text(5)?,
            claimed_at_us: row.i64(6)?,
            created_at_us: row.i64(7)?,
        })
    })
    .transpose()
}

/// Replaces an expired row with a fresh claim, unless another request replaced it first.
async fn replace_expired(
    db: &SqlDb,
    keyed: KeyedRequest<'_>,
    expired: &Row,
    command_id: Uuid,
    now_us: i64,
) -> Result<bool, StoreError> {
    let replaced = db
        .execute(
            "UPDATE idempotency_requests SET request = ?, body_sha256 = ?, command_id = ?, \
             state = 'in_progress', status = NULL, response = NULL, claimed_at_us = ?, \
             created_at_us = ? WHERE principal = ? AND idempotency_key = ? AND created_at_us = ?",
            &[
                keyed.request.into(),
                keyed.body_sha256.into(),
                command_id.to_string().into(),
                now_us.into(),
                now_us.into(),
                keyed.principal.into(),
                keyed.key.into(),
                expired.created_at_us.into(),
            ],
        )
        .await?;
    Ok(replaced == 1)
}

/// Takes over a claim left in progress since `claimed_at_us`, unless another request did.
async fn take_over(
    db: &SqlDb,
    keyed: KeyedRequest<'_>,
    claimed_at_us: i64,
    now_us: i64,
) -> Result<bool, StoreError> {
    let taken = db
        .execute(
            "UPDATE idempotency_requests SET claimed_at_us = ? WHERE principal = ? \
             AND idempotency_key = ? AND state = 'in_progress' AND claimed_at_us = ?",
            &[
                now_us.into(),
                keyed.principal.into(),
                keyed.key.into(),
                claimed_at_us.into(),
            ],
        )
        .await?;
    Ok(taken == 1)
}

/// Stores the final answer of the claim holding `command_id`.
pub async fn complete(
    db: &SqlDb,
    keyed: KeyedRequest<'_>,
    command_id: Uuid,
    status: u16,
    response: &str,
) -> Result<(), StoreError> {
    db.execute(
        "UPDATE idempotency_requests SET state = 'done', status = ?, response = ? \
         WHERE principal = ? AND idempotency_key = ? AND command_id = ?",
        &[
            i64::from(status).into(),
            response.into(),
            keyed.principal.into(),
            keyed.key.into(),
            command_id.to_string().into(),
        ],
    )
    .await?;
    Ok(())
}

/// Lets the next request with the key take the claim over at once (same command id): the
/// attempt ended without an answer worth keeping.
pub async fn release(
    db: &SqlDb,
    principal: &str,
    key: &str,
    command_id: Uuid,
) -> Result<(), StoreError> {
    db.execute(
        "UPDATE idempotency_requests SET claimed_at_us = 0 WHERE principal = ? \
         AND idempotency_key = ? AND command_id = ? AND state = 'in_progress'",
        &[principal.into(), key.into(), command_id.to_string().into()],
    )
    .await?;
    Ok(())
}

/// Deletes keys older than [`KEY_LIFETIME_SECONDS`] at `now`, [`PURGE_BATCH`] at a time;
/// returns how many.
pub async fn purge_expired(db: &SqlDb, now: OffsetDateTime) -> Result<u64, StoreError> {
    let cutoff = unix_micros(now) - KEY_LIFETIME_SECONDS * 1_000_000;
    let mut purged = 0;
    loop {
        let deleted = db
            .execute(
                "DELETE FROM idempotency_requests WHERE (principal, idempotency_key) IN \
                 (SELECT principal, idempotency_key FROM idempotency_requests \
                  WHERE created_at_us < ? LIMIT ?)",
                &[cutoff.into(), PURGE_BATCH.into()],
            )
            .await?;
        purged += deleted;
        if deleted < PURGE_BATCH as u64 {
            return Ok(purged);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_one_to_255_printable_characters() {
        assert_eq!(validate_key(""), Err(KeyError::Empty));
        assert_eq!(validate_key("   "), Err(KeyError::Empty));
        assert_eq!(validate_key(&"k".repeat(256)), Err(KeyError::TooLong));
        assert_eq!(validate_key("a\u{7f}b"), Err(KeyError::NotPrintable));
        assert_eq!(validate_key("ключ"), Err(KeyError::NotPrintable));
        assert!(validate_key(&"k".repeat(255)).is_ok());
        assert!(validate_key("order 42:retry-1").is_ok());
    }

    fn keyed<'a>(key: &'a str, body: &'a str) -> KeyedRequest<'a> {
        KeyedRequest {
            principal: "token-1",
            key,
            request: "POST /api/leads",
            body_sha256: body,
        }
    }

    async fn db() -> SqlDb {
        SqlDb::scratch().await.unwrap()
    }

    const STALE: std::time::Duration = std::time::Duration::from_secs(60);

    #[tokio::test]
    async fn one_claim_wins_the_others_wait_then_get_its_answer_or_a_mismatch() {
        let db = db().await;
        let now = OffsetDateTime::now_utc();
        let Claim::Fresh { command_id } = claim(&db, keyed("k", "a"), now, STALE).await.unwrap()
        else {
            panic!("the first claim wins");
        };
        assert_eq!(
            claim(&db, keyed("k", "a"), now, STALE).await.unwrap(),
            Claim::InProgress
        );
        assert_eq!(
            claim(&db, keyed("k", "b"), now, STALE).await.unwrap(),
            Claim::Mismatch
        );
        complete(&db, keyed("k", "a"), command_id, 201, "{\"ok\":1}")
            .await
            .unwrap();
        assert_eq!(
            claim(&db, keyed("k", "a"), now, STALE).await.unwrap(),
            Claim::Done {
                status: 201,
                response: "{\"ok\":1}".into()
            }
        );
    }

    #[tokio::test]
    async fn a_released_or_stale_claim_is_resumed_with_the_same_command_id() {
        let db = db().await;
        let now = OffsetDateTime::now_utc();
        let Claim::Fresh { command_id } = claim(&db, keyed("k", "a"), now, STALE).await.unwrap()
        else {
            panic!("fresh");
        };
        release(&db, "token-1", "k", command_id).await.unwrap();
        assert_eq!(
            claim(&db, keyed("k", "a"), now, STALE).await.unwrap(),
            Claim::Resumed { command_id }
        );
        // Held again by the one that resumed it; stale only after `STALE`.
        assert_eq!(
            claim(&db, keyed("k", "a"), now, STALE).await.unwrap(),
            Claim::InProgress
        );
        let later = now + time::Duration::seconds(61);
        assert_eq!(
            claim(&db, keyed("k", "a"), later, STALE).await.unwrap(),
            Claim::Resumed { command_id }
        );
    }

    #[tokio::test]
    async fn an_expired_key_names_a_new_request_and_is_purged() {
        let db = db().await;
        let then = OffsetDateTime::now_utc() - time::Duration::hours(25);
        let Claim::Fresh { command_id: first } =
            claim(&db, keyed("k", "a"), then, STALE).await.unwrap()
        else {
            panic!("fresh");
        };
        complete(&db, keyed("k", "a"), first, 201, "{}")
            .await
            .unwrap();
        let now = OffsetDateTime::now_utc();
        let Claim::Fresh { command_id: second } =
            claim(&db, keyed("k", "b"), now, STALE).await.unwrap()
        else {
            panic!("an expired key is fresh again, whatever its body");
        };
        assert_ne!(first, second);
        claim(&db, keyed("old", "a"), then, STALE).await.unwrap();
        assert_eq!(purge_expired(&db, now).await.unwrap(), 1);
        assert!(matches!(
            claim(&db, keyed("k", "b"), now, STALE).await.unwrap(),
            Claim::InProgress
        ));
    }
}
