//! Dashboard sessions: what the dashboard's cookie stands for, kept on the server.
//!
//! Signing in with a token starts a session: a random id (244 bits from the operating
//! system, as tokens are made) that goes into the cookie and is stored only as its SHA-256
//! ([`adapters::sessions`]), with the token's id, role and partner and the session's creation
//! and expiry times. The cookie never holds the token, in any encoding, so a cookie read off a
//! machine cannot be used as a bearer token, and it stops working when:
//!
//! - the user signs out ([`end`] deletes the row);
//! - it is [`SESSION_LIFETIME`] old (a working day, then the token is asked for again);
//! - its token is revoked or expires (every page looks the token up again; revoking also
//!   deletes the token's sessions, [`crate::tokens::revoke`]);
//! - for the configured admin token, which has no row: when `REVLEDGER_ADMIN_TOKEN` changes.
//!   Such a session stores `SHA-256(session id, admin token)`, which only the cookie's holder
//!   and the server (holding both) can compute, so the table offers nothing to test guesses of
//!   the admin token against.
//!
//! A token holds at most [`MAX_SESSIONS_PER_TOKEN`] sessions (its oldest ends first), and
//! expired rows are deleted by the same hourly sweep as expired Idempotency-Keys
//! ([`adapters::sessions::purge_expired`]).

use std::time::Duration;

use adapters::clock::unix_micros;
use adapters::sessions::NewSession;
use adapters::sql::SqlDb;
use adapters::store::StoreError;
use adapters::tokens::sha256_hex;
use adapters::webhooks::{constant_time_eq, Secret};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::tokens::{Role, TokenHolder, BOOTSTRAP_ADMIN_TOKEN_ID};

/// How long a session lasts: a working day, then the token is asked for again.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 60 * 60);

/// Sessions one token may hold at once; signing in beyond ends its oldest. A person signs in
/// from a few browsers; the bound keeps a token signing in in a loop from growing the table.
pub const MAX_SESSIONS_PER_TOKEN: i64 = 32;

/// Why a session could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("a bootstrap admin session without REVLEDGER_ADMIN_TOKEN")]
    NoAdminToken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `SHA-256(session id, admin token)`: binds a bootstrap admin's session to the admin token
/// it was started with.
fn admin_binding(session_id: &str, admin_token: &str) -> String {
    sha256_hex(&format!("{session_id}\n{admin_token}"))
}

/// Starts a session for `holder` (just authenticated by its token) at `now`; returns the
/// session id for the cookie (given to this browser only, never stored). `admin_token` is the
/// configured `REVLEDGER_ADMIN_TOKEN`, which a bootstrap admin's session is bound to.
pub async fn start(
    db: &SqlDb,
    holder: &TokenHolder,
    admin_token: Option<&Secret>,
    now: OffsetDateTime,
) -> Result<Secret, SessionError> {
    // Two random (v4) uuids: 244 bits from the operating system's random source.
    let session_id = Secret::new(format!(
        "{}{}",
        Uuid::new_v4().simple(),
        Uuid::new_v4().simple()
    ));
    let admin_binding_sha256 = if holder.token_id == BOOTSTRAP_ADMIN_TOKEN_ID {
        let admin = admin_token.ok_or(SessionError::NoAdminToken)?;
        Some(admin_binding(session_id.expose(), admin.expose()))
    } else {
        None
    };
    // Make room first, so the session started now is never the one that ends.
    adapters::sessions::keep_newest(db, &holder.token_id, MAX_SESSIONS_PER_TOKEN - 1).await?;
    adapters::sessions::insert(
        db,
        &NewSession {
            session_id: &session_id,
            token_id: &holder.token_id,
            role: holder.role.as_str(),
            partner_id: holder.partner_id.as_deref(),
            created_at_us: unix_micros(now),
            expires_at_us: unix_micros(now + SESSION_LIFETIME),
            admin_binding_sha256,
        },
    )
    .await?;
    Ok(session_id)
}

/// Who a live session stands for: not signed out, not expired, its token neither revoked nor
/// expired (the bootstrap admin's: still the configured `admin_token`). `None` for anything
/// else.
pub async fn holder(
    db: &SqlDb,
    session_id: &str,
    admin_token: Option<&Secret>,
    now: OffsetDateTime,
) -> Result<Option<TokenHolder>, StoreError> {
    let Some(session) =
        adapters::sessions::find_unexpired(db, session_id, unix_micros(now)).await?
    else {
        return Ok(None);
    };
    let token_is_good = if session.token_id == BOOTSTRAP_ADMIN_TOKEN_ID {
        match (admin_token, &session.admin_binding_sha256) {
            (Some(admin), Some(stored)) => constant_time_eq(
                admin_binding(session_id, admin.expose()).as_bytes(),
                stored.as_bytes(),
            ),
            _ => false,
        }
    } else {
        session.token_is_live
    };
    if !token_is_good {
        return Ok(None);
    }
    Ok(Role::parse(&session.role).map(|role| TokenHolder {
        token_id: session.token_id,
        role,
        partner_id: session.partner_id,
    }))
}

/// Ends a session (signing out). An unknown id ends nothing and is not an error.
pub async fn end(db: &SqlDb, session_id: &str) -> Result<(), StoreError> {
    adapters::sessions::delete(db, session_id).await
}
