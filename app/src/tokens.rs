//! API tokens: making one, listing them, revoking one, and who a presented token stands for.
//!
//! The one set of use cases behind `revledger token create|list|revoke` and the admin API's
//! token routes. A token is 244 random bits, shown once and stored only as its SHA-256
//! ([`adapters::tokens`]), with its role, partner, label, creation time, optional expiry and
//! revocation time. An expired or revoked token stands for no one ([`holder_of_token`]), at
//! once: every request looks its token up again. Revoking a token also ends its dashboard
//! sessions ([`crate::sessions`]). A partner token is made only for a partner that exists (its
//! stream has events), so a typo cannot mint a token that sees nothing today and a stranger's
//! data once someone enrolls that id.
//!
//! Roles: **admin** (everything), **sales** (leads, CRM), **finance** (invoices, commissions,
//! payouts, reconciliation, the ledger), **auditor** (reads everything, changes nothing) and
//! **partner** (its own partner record and statements). What each may read or change is the
//! API's to check (`api::auth::Principal`).

use adapters::clock::{from_unix_micros, truncate_to_micros, unix_micros};
use adapters::sql::SqlDb;
use adapters::store::StoreError;
use adapters::tokens::{NewToken, StoredToken};
use adapters::webhooks::Secret;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::handlers::Handlers;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Sales,
    Finance,
    Auditor,
    Partner,
}

impl Role {
    pub fn parse(text: &str) -> Option<Role> {
        Some(match text {
            "admin" => Role::Admin,
            "sales" => Role::Sales,
            "finance" => Role::Finance,
            "auditor" => Role::Auditor,
            "partner" => Role::Partner,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Sales => "sales",
            Role::Finance => "finance",
            Role::Auditor => "auditor",
            Role::Partner => "partner",
        }
    }
}

/// The token id of the administrator configured by `REVLEDGER_ADMIN_TOKEN` (it has no row).
pub const BOOTSTRAP_ADMIN_TOKEN_ID: &str = "bootstrap-admin";

/// The longest expiry a token can be given, in days: ten years. Beyond that an expiry is
/// "never" in all but name; leave it out for that.
pub const MAX_TOKEN_LIFETIME_DAYS: u32 = 3650;

/// Tokens listed at most, newest first. An installation has tens (one per person or
/// integration); the bound keeps a listing's size fixed whatever happens to the table.
pub const MAX_TOKENS_LISTED: i64 = 1000;

/// Why a token use case did not happen; each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "a partner token names its partner (partner_id; --partner on the command line), and \
         only a partner token does"
    )]
    PartnerOnlyForPartnerTokens,
    #[error(
        "no partner {partner_id:?}: a partner token is made for an enrolled partner \
         (POST /api/partners first)"
    )]
    UnknownPartner { partner_id: String },
    #[error(
        "expires_in_days is {days}; a token expires after 1 to {MAX_TOKEN_LIFETIME_DAYS} days \
         (leave it out for no expiry)"
    )]
    LifetimeOutOfRange { days: u32 },
    #[error("no token {token_id}")]
    NotFound { token_id: String },
    #[error(
        "bootstrap-admin is REVLEDGER_ADMIN_TOKEN, a setting rather than a stored token: \
         change or unset it and restart (its dashboard sessions end with it)"
    )]
    BootstrapAdminIsASetting,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored row that cannot be read back, or a partner that could not be looked up.
    #[error("{0}")]
    Internal(String),
}

/// Who a token stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenHolder {
    pub token_id: String,
    pub role: Role,
    pub partner_id: Option<String>,
}

/// What a new token is for.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    pub role: Role,
    /// The partner of a partner token (it must exist); `None` for every other role.
    pub partner_id: Option<String>,
    /// A note saying whose token this is.
    pub label: Option<String>,
    /// When the token stops working; `None`: until revoked.
    pub expires_at: Option<OffsetDateTime>,
}

impl TokenRequest {
    pub fn new(role: Role) -> TokenRequest {
        TokenRequest {
            role,
            partner_id: None,
            label: None,
            expires_at: None,
        }
    }
}

/// The expiry `days` after `now`; `None` without `days`. Out of
/// `1..=MAX_TOKEN_LIFETIME_DAYS` is [`TokenError::LifetimeOutOfRange`].
pub fn expiry_after_days(
    now: OffsetDateTime,
    days: Option<u32>,
) -> Result<Option<OffsetDateTime>, TokenError> {
    match days {
        None => Ok(None),
        Some(days @ 1..=MAX_TOKEN_LIFETIME_DAYS) => {
            Ok(Some(now + time::Duration::days(i64::from(days))))
        }
        Some(days) => Err(TokenError::LifetimeOutOfRange { days }),
    }
}

/// Where a token stands at a given moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    Active,
    Expired,
    Revoked,
}

impl TokenStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenStatus::Active => "active",
            TokenStatus::Expired => "expired",
            TokenStatus::Revoked => "revoked",
        }
    }

    fn at(
        now: OffsetDateTime,
        expires_at: Option<OffsetDateTime>,
        revoked_at: Option<OffsetDateTime>,
    ) -> TokenStatus {
        match (revoked_at, expires_at) {
            (Some(_), _) => TokenStatus::Revoked,
            (None, Some(expires_at)) if expires_at <= now => TokenStatus::Expired,
            _ => TokenStatus::Active,
        }
    }
}

/// A stored token as listed: everything but the token and its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    pub token_id: String,
    pub role: Role,
    pub partner_id: Option<String>,
    pub label: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// As of the moment it was read.
    pub status: TokenStatus,
}

impl TokenInfo {
    fn of_stored(stored: StoredToken, now: OffsetDateTime) -> Result<TokenInfo, TokenError> {
        let role = Role::parse(&stored.role).ok_or_else(|| {
            TokenError::Internal(format!("a stored token has role {:?}", stored.role))
        })?;
        let time_of = |micros: i64| {
            from_unix_micros(micros).ok_or_else(|| {
                TokenError::Internal(format!("a stored token time {micros} is out of range"))
            })
        };
        let expires_at = stored.expires_at_us.map(time_of).transpose()?;
        let revoked_at = stored.revoked_at_us.map(time_of).transpose()?;
        Ok(TokenInfo {
            token_id: stored.token_id,
            role,
            partner_id: stored.partner_id,
            label: stored.label,
            created_at: time_of(stored.created_at_us)?,
            expires_at,
            revoked_at,
            status: TokenStatus::at(now, expires_at, revoked_at),
        })
    }
}

/// A token just made: the token itself is here once and never again.
#[derive(Debug)]
pub struct IssuedToken {
    pub info: TokenInfo,
    pub token: Secret,
}

/// Makes a token for `request` at `now`; the token is returned once and stored hashed.
/// A partner token needs a partner that exists (its stream has events).
pub async fn create(
    handlers: &Handlers,
    request: &TokenRequest,
    now: OffsetDateTime,
) -> Result<IssuedToken, TokenError> {
    let partner_id = request
        .partner_id
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty());
    if (request.role == Role::Partner) != partner_id.is_some() {
        return Err(TokenError::PartnerOnlyForPartnerTokens);
    }
    if let Some(partner_id) = partner_id {
        let (_, version) = handlers
            .partners
            .load_aggregate(partner_id)
            .await
            .map_err(|error| TokenError::Internal(error.to_string()))?;
        if version == 0 {
            return Err(TokenError::UnknownPartner {
                partner_id: partner_id.to_owned(),
            });
        }
    }
    let now = truncate_to_micros(now);
    let token_id = Uuid::now_v7().to_string();
    // Two random (v4) uuids: 244 bits from the operating system's random source.
    let token = Secret::new(format!(
        "rl_{}{}",
        Uuid::new_v4().simple(),
        Uuid::new_v4().simple()
    ));
    let expires_at = request.expires_at.map(truncate_to_micros);
    adapters::tokens::insert(
        &handlers.store.sql(),
        &NewToken {
            token_id: &token_id,
            token: &token,
            role: request.role.as_str(),
            partner_id,
            label: request.label.as_deref(),
            created_at_us: unix_micros(now),
            expires_at_us: expires_at.map(unix_micros),
        },
    )
    .await?;
    Ok(IssuedToken {
        info: TokenInfo {
            token_id,
            role: request.role,
            partner_id: partner_id.map(str::to_owned),
            label: request.label.clone(),
            created_at: now,
            expires_at,
            revoked_at: None,
            status: TokenStatus::at(now, expires_at, None),
        },
        token,
    })
}

/// The stored tokens, newest first ([`MAX_TOKENS_LISTED`] at most), as of `now`.
pub async fn list(db: &SqlDb, now: OffsetDateTime) -> Result<Vec<TokenInfo>, TokenError> {
    adapters::tokens::list(db, MAX_TOKENS_LISTED)
        .await?
        .into_iter()
        .map(|stored| TokenInfo::of_stored(stored, now))
        .collect()
}

/// One stored token, as of `now`.
pub async fn find(
    db: &SqlDb,
    token_id: &str,
    now: OffsetDateTime,
) -> Result<Option<TokenInfo>, TokenError> {
    adapters::tokens::find(db, token_id)
        .await?
        .map(|stored| TokenInfo::of_stored(stored, now))
        .transpose()
}

/// What revoking did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RevokedToken {
    #[serde(flatten)]
    pub token: TokenInfo,
    /// Dashboard sessions this revocation ended (0 when it was revoked already).
    pub sessions_ended: u64,
}

/// Revokes a token at `now` and ends its dashboard sessions. Idempotent: a token revoked
/// before keeps its first revocation time. An unknown id is [`TokenError::NotFound`] (the
/// bootstrap admin's is [`TokenError::BootstrapAdminIsASetting`]: a setting, not a row).
pub async fn revoke(
    db: &SqlDb,
    token_id: &str,
    now: OffsetDateTime,
) -> Result<RevokedToken, TokenError> {
    let now = truncate_to_micros(now);
    adapters::tokens::mark_revoked(db, token_id, unix_micros(now)).await?;
    let Some(token) = find(db, token_id, now).await? else {
        return Err(if token_id == BOOTSTRAP_ADMIN_TOKEN_ID {
            TokenError::BootstrapAdminIsASetting
        } else {
            TokenError::NotFound {
                token_id: token_id.to_owned(),
            }
        });
    };
    // Sessions also check their token on every page; deleting them is so that nothing of a
    // revoked token stays behind.
    let sessions_ended = adapters::sessions::delete_all_of_token(db, token_id).await?;
    Ok(RevokedToken {
        token,
        sessions_ended,
    })
}

/// Who the stored token `presented` stands for at `now`: `None` when it is unknown, revoked,
/// expired, or holds a role this version does not know. (The bootstrap admin token is a
/// setting, not a row: the API checks it before asking here.)
pub async fn holder_of_token(
    db: &SqlDb,
    presented: &str,
    now: OffsetDateTime,
) -> Result<Option<TokenHolder>, TokenError> {
    let Some(live) = adapters::tokens::live(db, presented, unix_micros(now)).await? else {
        return Ok(None);
    };
    Ok(Role::parse(&live.role).map(|role| TokenHolder {
        token_id: live.token_id,
        role,
        partner_id: live.partner_id,
    }))
}
