//! Dashboard sessions: what the dashboard's cookie stands for, kept on the server.
//!
//! Signing in with a token starts a session: a random id (244 bits from the operating
//! system, as tokens are made) that goes into the cookie and is stored only as its SHA-256,
//! with the token's id, role and partner and the session's creation and expiry times. The
//! cookie never holds the token, in any encoding, so a cookie read off a machine cannot be
//! used as a bearer token, and it stops working when:
//!
//! - the user signs out ([`end`] deletes the row);
//! - it is [`SESSION_LIFETIME`] old (a working day, then the token is asked for again);
//! - its token is revoked or expires (every page looks the token up again; revoking also
//!   deletes the token's sessions, [`end_all_of_token`]);
//! - for the configured admin token, which has no row: when `REVLEDGER_ADMIN_TOKEN` changes.
//!   Such a session stores `SHA-256(session id, admin token)`, which only the cookie's holder
//!   and the server (holding both) can compute, so the table offers nothing to test guesses of
//!   the admin token against.
//!
//! A token holds at most [`MAX_SESSIONS_PER_TOKEN`] sessions (its oldest ends first), and
//! expired rows are deleted by the same hourly sweep as expired Idempotency-Keys.

use std::time::Duration;

use adapters::clock::unix_micros;
use adapters::sql::SqlDb;
use adapters::store::StoreError;
use adapters::webhooks::{constant_time_eq, Secret};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::{sha256_hex, Principal, Role, BOOTSTRAP_ADMIN_TOKEN_ID};
use crate::{ApiError, AppState};

/// How long a session lasts: a working day, then the token is asked for again.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 60 * 60);

/// Sessions one token may hold at once; signing in beyond ends its oldest. A person signs in
/// from a few browsers; the bound keeps a token signing in in a loop from growing the table.
pub const MAX_SESSIONS_PER_TOKEN: i64 = 32;

/// Expired sessions deleted per statement, so a sweep never holds the writer for long.
pub const PURGE_BATCH: i64 = 1_000;

/// `SHA-256(session id, admin token)`: binds a bootstrap admin's session to the admin token
/// it was started with.
fn admin_binding(session_id: &str, admin_token: &str) -> String {
    sha256_hex(&format!("{session_id}\n{admin_token}"))
}

/// Starts a session for `principal` (just authenticated by its token); returns the session id
/// for the cookie (given to this browser only, never stored).
pub async fn start(
    state: &AppState,
    principal: &Principal,
    now: OffsetDateTime,
) -> Result<Secret, ApiError> {
    let db = state.store.sql();
    // Two random (v4) uuids: 244 bits from the operating system's random source.
    let session_id = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    let binding = if principal.token_id == BOOTSTRAP_ADMIN_TOKEN_ID {
        let admin = state.config.admin_token.as_ref().ok_or_else(|| {
            ApiError::internal("a bootstrap admin session without REVLEDGER_ADMIN_TOKEN")
        })?;
        Some(admin_binding(&session_id, admin.expose()))
    } else {
        None
    };
    // Make room first, so the session started now is never the one that ends.
    db.execute(
        "DELETE FROM dashboard_sessions WHERE token_id = ? AND session_sha256 NOT IN \
         (SELECT session_sha256 FROM dashboard_sessions WHERE token_id = ? \
          ORDER BY created_at_us DESC, session_sha256 DESC LIMIT ?)",
        &[
            principal.token_id.as_str().into(),
            principal.token_id.as_str().into(),
            (MAX_SESSIONS_PER_TOKEN - 1).into(),
        ],
    )
    .await?;
    let lifetime = time::Duration::try_from(SESSION_LIFETIME).map_err(ApiError::internal)?;
    db.execute(
        "INSERT INTO dashboard_sessions (session_sha256, token_id, role, partner_id, \
         created_at_us, expires_at_us, admin_binding_sha256) VALUES (?, ?, ?, ?, ?, ?, ?)",
        &[
            sha256_hex(&session_id).into(),
            principal.token_id.as_str().into(),
            principal.role.as_str().into(),
            principal.partner_id.as_deref().into(),
            unix_micros(now).into(),
            unix_micros(now + lifetime).into(),
            binding.into(),
        ],
    )
    .await?;
    Ok(Secret::new(session_id))
}

/// The principal of a live session: not signed out, not expired, its token neither revoked
/// nor expired (the bootstrap admin's: still the configured admin token). Anything else is
/// [`ApiError::Unauthorized`].
pub async fn principal(
    state: &AppState,
    session_id: &str,
    now: OffsetDateTime,
) -> Result<Principal, ApiError> {
    let now_us = unix_micros(now);
    let row = state
        .store
        .sql()
        .fetch_optional(
            "SELECT s.token_id, s.role, s.partner_id, s.admin_binding_sha256, t.token_id \
             FROM dashboard_sessions s LEFT JOIN api_tokens t ON t.token_id = s.token_id \
               AND t.revoked_at_us IS NULL AND (t.expires_at_us IS NULL OR t.expires_at_us > ?) \
             WHERE s.session_sha256 = ? AND s.expires_at_us > ?",
            &[now_us.into(), sha256_hex(session_id).into(), now_us.into()],
        )
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let token_id = row.text(0)?;
    let token_is_good = if token_id == BOOTSTRAP_ADMIN_TOKEN_ID {
        match (&state.config.admin_token, row.opt_text(3)?) {
            (Some(admin), Some(stored)) => constant_time_eq(
                admin_binding(session_id, admin.expose()).as_bytes(),
                stored.as_bytes(),
            ),
            _ => false,
        }
    } else {
        row.opt_text(4)?.is_some()
    };
    if !token_is_good {
        return Err(ApiError::Unauthorized);
    }
    Ok(Principal {
        token_id,
        role: Role::parse(&row.text(1)?).ok_or(ApiError::Unauthorized)?,
        partner_id: row.opt_text(2)?,
    })
}

/// Ends a session (signing out). An unknown id ends nothing and is not an error.
pub async fn end(db: &SqlDb, session_id: &str) -> Result<(), StoreError> {
    db.execute(
        "DELETE FROM dashboard_sessions WHERE session_sha256 = ?",
        &[sha256_hex(session_id).into()],
    )
    .await?;
    Ok(())
}

/// Ends every session of a token; returns how many there were.
pub async fn end_all_of_token(db: &SqlDb, token_id: &str) -> Result<u64, StoreError> {
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
