//! API tokens as stored (`api_tokens`): a token is kept only as its SHA-256, beside its role,
//! partner, label, creation time, optional expiry and revocation time.
//!
//! This module is the table and nothing more: it hashes what it is given and reads and writes
//! rows. What a token may do, who may make one and what a listing shows are the use cases of
//! `app::tokens`. A token is never passed back out of here, and no function takes a hash from
//! its caller: the hashing happens in one place, so no path can store a token in the clear.
//! Roles are stored and returned as their names; `app::tokens::Role` reads them.

use sha2::{Digest, Sha256};

use crate::sql::{SqlDb, SqlRow};
use crate::store::StoreError;
use crate::webhooks::Secret;

/// SHA-256 of `text`, in lower-case hex: how tokens, session ids and admin bindings are stored.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A token about to be stored.
#[derive(Debug)]
pub struct NewToken<'a> {
    pub token_id: &'a str,
    /// Hashed here; never stored as it is.
    pub token: &'a Secret,
    pub role: &'a str,
    pub partner_id: Option<&'a str>,
    pub label: Option<&'a str>,
    pub created_at_us: i64,
    pub expires_at_us: Option<i64>,
}

/// A stored token: everything but the token's hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredToken {
    pub token_id: String,
    pub role: String,
    pub partner_id: Option<String>,
    pub label: Option<String>,
    pub created_at_us: i64,
    pub expires_at_us: Option<i64>,
    pub revoked_at_us: Option<i64>,
}

/// Who a token that works stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveToken {
    pub token_id: String,
    pub role: String,
    pub partner_id: Option<String>,
}

const COLUMNS: &str =
    "token_id, role, partner_id, label, created_at_us, expires_at_us, revoked_at_us";

fn stored_token(row: &SqlRow) -> Result<StoredToken, StoreError> {
    Ok(StoredToken {
        token_id: row.text(0)?,
        role: row.text(1)?,
        partner_id: row.opt_text(2)?,
        label: row.opt_text(3)?,
        created_at_us: row.i64(4)?,
        expires_at_us: row.opt_i64(5)?,
        revoked_at_us: row.opt_i64(6)?,
    })
}

/// Stores a new token (its hash), not revoked.
pub async fn insert(db: &SqlDb, token: &NewToken<'_>) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO api_tokens (token_id, token_sha256, role, partner_id, label, \
         created_at_us, revoked_at_us, expires_at_us) VALUES (?, ?, ?, ?, ?, ?, NULL, ?)",
        &[
            token.token_id.into(),
            sha256_hex(token.token.expose()).into(),
            token.role.into(),
            token.partner_id.into(),
            token.label.into(),
            token.created_at_us.into(),
            token.expires_at_us.into(),
        ],
    )
    .await?;
    Ok(())
}

/// The token `presented` stands for, when it is stored and neither revoked nor expired at
/// `now_us`.
pub async fn live(
    db: &SqlDb,
    presented: &str,
    now_us: i64,
) -> Result<Option<LiveToken>, StoreError> {
    let row = db
        .fetch_optional(
            "SELECT token_id, role, partner_id FROM api_tokens WHERE token_sha256 = ? \
             AND revoked_at_us IS NULL AND (expires_at_us IS NULL OR expires_at_us > ?)",
            &[sha256_hex(presented).into(), now_us.into()],
        )
        .await?;
    row.map(|row| {
        Ok(LiveToken {
            token_id: row.text(0)?,
            role: row.text(1)?,
            partner_id: row.opt_text(2)?,
        })
    })
    .transpose()
}

/// The stored tokens, newest first, `limit` at most.
pub async fn list(db: &SqlDb, limit: i64) -> Result<Vec<StoredToken>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM api_tokens ORDER BY created_at_us DESC, token_id DESC LIMIT ?"
    );
    db.fetch_all(&sql, &[limit.into()])
        .await?
        .iter()
        .map(stored_token)
        .collect()
}

/// One stored token.
pub async fn find(db: &SqlDb, token_id: &str) -> Result<Option<StoredToken>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE token_id = ?");
    db.fetch_optional(&sql, &[token_id.into()])
        .await?
        .as_ref()
        .map(stored_token)
        .transpose()
}

/// Marks a token revoked at `at_us` unless it was revoked before (the first time stays).
pub async fn mark_revoked(db: &SqlDb, token_id: &str, at_us: i64) -> Result<(), StoreError> {
    db.execute(
        "UPDATE api_tokens SET revoked_at_us = ? WHERE token_id = ? AND revoked_at_us IS NULL",
        &[at_us.into(), token_id.into()],
    )
    .await?;
    Ok(())
}
