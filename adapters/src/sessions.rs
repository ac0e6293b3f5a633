//! Dashboard sessions as stored (`dashboard_sessions`): a session id is kept only as its
//! SHA-256, with the token id, role and partner it was started for, its creation and expiry
//! times and, for the bootstrap admin (which has no token row), the binding to the admin
//! token it was started with.
//!
//! The table and nothing more: when a session starts, how many a token holds and whether one
//! still stands are `app::sessions`'. Session ids are hashed here, as tokens are in
//! [`crate::tokens`], so no path stores one in the clear. Expired rows are deleted by
//! [`purge_expired`], [`PURGE_BATCH`] at a time, from the same hourly sweep as expired
//! Idempotency-Keys.

use time::OffsetDateTime;

use crate::clock::unix_micros;
use crate::sql::SqlDb;
use crate::store::StoreError;
use crate::tokens::sha256_hex;
use crate::webhooks::Secret;

/// Expired sessions deleted per statement, so a sweep never holds the writer for long.
pub const PURGE_BATCH: i64 = 1_000;

/// A session about to be stored.
#[derive(Debug)]
pub struct NewSession<'a> {
    /// Hashed here; never stored as it is.
    pub session_id: &'a Secret,
    pub token_id: &'a str,
    pub role: &'a str,
    pub partner_id: Option<&'a str>,
    pub created_at_us: i64,
    pub expires_at_us: i64,
    /// For the bootstrap admin only: a hash of the session id and the admin token together.
    pub admin_binding_sha256: Option<String>,
}

/// A session that has not expired, with whether its token still works.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSession {
    pub token_id: String,
    pub role: String,
    pub partner_id: Option<String>,
    pub admin_binding_sha256: Option<String>,
    /// The session's token is stored and neither revoked nor expired (never for the bootstrap
    /// admin, which has no row).
    pub token_is_live: bool,
}

/// Deletes a token's sessions but its newest `keep`; returns how many it deleted.
pub async fn keep_newest(db: &SqlDb, token_id: &str, keep: i64) -> Result<u64, StoreError> {
    db.execute(
        "DELETE FROM dashboard_sessions WHERE token_id = ? AND session_sha256 NOT IN \
         (SELECT session_sha256 FROM dashboard_sessions WHERE token_id = ? \
          ORDER BY created_at_us DESC, session_sha256 DESC LIMIT ?)",
        &[token_id.into(), token_id.into(), keep.into()],
    )
    .await
}

/// Stores a new session (its id's hash).
pub async fn insert(db: &SqlDb, session: &NewSession<'_>) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO dashboard_sessions (session_sha256, token_id, role, partner_id, \
         created_at_us, expires_at_us, admin_binding_sha256) VALUES (?, ?, ?, ?, ?, ?, ?)",
        &[
            sha256_hex(session.session_id.expose()).into(),
            session.token_id.into(),
            session.role.into(),
            session.partner_id.into(),
            session.created_at_us.into(),
            session.expires_at_us.into(),
            session.admin_binding_sha256.as_deref().into(),
        ],
    )
    .await?;
    Ok(())
}

/// The session `session_id` names, when it is stored and not expired at `now_us`, with
/// whether its token works at `now_us` (one read: the session and its token together).
pub async fn find_unexpired(
    db: &SqlDb,
    session_id: &str,
    now_us: i64,
) -> Result<Option<StoredSession>, StoreError> {
    let row = db
        .fetch_optional(
            "SELECT s.token_id, s.role, s.partner_id, s.admin_binding_sha256, t.token_id \
             FROM dashboard_sessions s LEFT JOIN api_tokens t ON t.token_id = s.token_id \
               AND t.revoked_at_us IS NULL AND (t.expires_at_us IS NULL OR t.expires_at_us > ?) \
             WHERE s.session_sha256 = ? AND s.expires_at_us > ?",
            &[now_us.into(), sha256_hex(session_id).into(), now_us.into()],
        )
        .await?;
    row.map(|row| {
        Ok(StoredSession {
            token_id: row.text(0)?,
            role: row.text(1)?,
            partner_id: row.opt_text(2)?,
            admin_binding_sha256: row.opt_text(3)?,
            token_is_live: row.opt_text(4)?.is_some(),
        })
    })
    .transpose()
}

/// Deletes a session. An unknown id deletes nothing and is not an error.
pub async fn delete(db: &SqlDb, session_id: &str) -> Result<(), StoreError> {
    db.execute(
        "DELETE FROM dashboard_sessions WHERE session_sha256 = ?",
        &[sha256_hex(session_id).into()],
    )
    .await?;
    Ok(())
}

/// Deletes every session of a token; returns how many there were.
pub async fn delete_all_of_token(db: &SqlDb, token_id: &str) -> Result<u64, StoreError> {
    db.execute(
        "DELETE FROM dashboard_sessions WHERE token_id = ?",
        &[token_id.into()],
    )
    .await
}

/// Deletes sessions expired at `now`, [`PURGE_BATCH`] at a time; returns how many.
pub async fn purge_expired(db: &SqlDb, now: OffsetDateTime) -> Result<u64, StoreError> {
    let mut purged = 0;
    loop {
        let deleted = db
            .execute(
                "DELETE FROM dashboard_sessions WHERE session_sha256 IN \
                 (SELECT session_sha256 FROM dashboard_sessions WHERE expires_at_us <= ? LIMIT ?)",
                &[unix_micros(now).into(), PURGE_BATCH.into()],
            )
            .await?;
        purged += deleted;
        if deleted < PURGE_BATCH as u64 {
            return Ok(purged);
        }
    }
}

/// The dashboard form token of a session: `HMAC-SHA256(key = session id, "revledger
/// dashboard form")`, hex. Every form of a signed-in page carries it and every POST must
/// present it ([`form_token_matches`]): a page of another site can make the browser send the
/// session cookie (were SameSite ever relaxed or bypassed) but cannot read the token, and the
/// token says nothing about the session id it was made from. Computed, not stored, so every
/// replica agrees on it and it ends with its session.
pub fn form_token(session_id: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(session_id.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(b"revledger dashboard form");
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Whether `presented` is the form token of `session_id`, compared in constant time.
pub fn form_token_matches(session_id: &str, presented: &str) -> bool {
    crate::webhooks::constant_time_eq(form_token(session_id).as_bytes(), presented.as_bytes())
}

#[cfg(test)]
mod form_token_tests {
    use super::*;

    #[test]
    fn a_form_token_belongs_to_its_session_alone() {
        let token = form_token("session-a");
        assert_eq!(token.len(), 64);
        assert_eq!(token, form_token("session-a"));
        assert_ne!(token, form_token("session-b"));
        assert!(form_token_matches("session-a", &token));
        assert!(!form_token_matches("session-b", &token));
        assert!(!form_token_matches("session-a", ""));
        assert!(!form_token_matches("session-a", &token[..63]));
        assert!(!token.contains("session-a"));
    }
}
