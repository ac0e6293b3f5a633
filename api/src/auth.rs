//! Bearer tokens and roles.
//!
//! A token is 244 random bits, shown once (`revledger token create`, `POST /api/tokens`) and
//! stored only as its SHA-256, with its role, partner, label, creation time, optional expiry
//! and revocation time. An expired or revoked token is refused exactly like an unknown one
//! (401), at once: every request looks the token up again. Revoking a token also ends its
//! dashboard sessions ([`crate::sessions`]). A partner token is made only for a partner that
//! exists (its stream has events), so a typo cannot mint a token that sees nothing today and a
//! stranger's data once someone enrolls that id. `REVLEDGER_ADMIN_TOKEN` bootstraps an
//! administrator without a database row (token id [`BOOTSTRAP_ADMIN_TOKEN_ID`]). Roles:
//! **admin** (everything), **sales** (leads, CRM), **finance** (invoices, commissions, payouts,
//! reconciliation, the ledger), **auditor** (reads everything, changes nothing) and **partner**
//! (its own partner record and statements; any other partner id is answered 404, so ids cannot
//! be probed). Every command records the principal's token id as the event's actor.

use adapters::clock::{from_unix_micros, now_micros, unix_micros};
use adapters::sql::{SqlDb, SqlRow};
use adapters::webhooks::Secret;
use app::handlers::Handlers;
use axum::http::HeaderMap;
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{ApiError, AppState};

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

/// What a route is about, for deciding who may use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Area {
    /// Leads and the CRM board.
    Sales,
    /// Invoices, commissions, payouts, reconciliation, the ledger.
    Finance,
    /// The audit trail, the event feed, verification, webhooks' dead letters.
    Audit,
}

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub token_id: String,
    pub role: Role,
    pub partner_id: Option<String>,
}

impl Principal {
    /// The actor recorded in event metadata.
    pub fn actor(&self) -> String {
        format!("token:{}", self.token_id)
    }

    /// May read what `area` covers.
    pub fn can_read(&self, area: Area) -> bool {
        match self.role {
            Role::Admin | Role::Auditor => true,
            Role::Sales => area == Area::Sales,
            Role::Finance => matches!(area, Area::Finance | Area::Sales),
            Role::Partner => false,
        }
    }

    /// May change what `area` covers.
    pub fn can_change(&self, area: Area) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Sales => area == Area::Sales,
            Role::Finance => area == Area::Finance,
            Role::Auditor | Role::Partner => false,
        }
    }

    pub fn require_read(&self, area: Area) -> Result<(), ApiError> {
        if self.can_read(area) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "the {} role cannot read this",
                self.role.as_str()
            )))
        }
    }

    /// Only an administrator manages tokens: a token that could mint or revoke tokens is as
    /// strong as an admin token whatever its role.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "the {} role cannot manage tokens; an admin token can",
                self.role.as_str()
            )))
        }
    }

    pub fn require_change(&self, area: Area) -> Result<(), ApiError> {
        if self.can_change(area) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "the {} role cannot change this",
                self.role.as_str()
            )))
        }
    }

    /// May see this partner's record and statements. A partner asking for another partner
    /// gets 404, as if it did not exist.
    pub fn require_partner(&self, partner_id: &str) -> Result<(), ApiError> {
        match self.role {
            Role::Partner if self.partner_id.as_deref() == Some(partner_id) => Ok(()),
            Role::Partner => Err(ApiError::NotFound(format!("no partner {partner_id}"))),
            _ => self.require_read(Area::Finance),
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

pub(crate) fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The token of a request's `Authorization: Bearer` header, if it has one. The scheme is
/// case-insensitive (RFC 9110, 11.1).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token)
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The principal of a request's `Authorization: Bearer` header.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let presented = bearer(headers).ok_or(ApiError::Unauthorized)?;
    principal_of_token(state, presented).await
}

/// The principal a presented token stands for: the configured admin token, or a stored token
/// that is neither revoked nor expired. Anything else is [`ApiError::Unauthorized`].
pub async fn principal_of_token(state: &AppState, presented: &str) -> Result<Principal, ApiError> {
    if is_bootstrap_admin_token(state, presented) {
        return Ok(Principal {
            token_id: BOOTSTRAP_ADMIN_TOKEN_ID.into(),
            role: Role::Admin,
            partner_id: None,
        });
    }
    let now = unix_micros(now_micros());
    let row = state
        .store
        .sql()
        .fetch_optional(
            "SELECT token_id, role, partner_id FROM api_tokens WHERE token_sha256 = ? \
             AND revoked_at_us IS NULL AND (expires_at_us IS NULL OR expires_at_us > ?)",
            &[sha256_hex(presented).into(), now.into()],
        )
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let role = Role::parse(&row.text(1)?).ok_or(ApiError::Unauthorized)?;
    Ok(Principal {
        token_id: row.text(0)?,
        role,
        partner_id: row.opt_text(2)?,
    })
}

/// Whether `presented` is the configured `REVLEDGER_ADMIN_TOKEN` (compared in constant time).
pub(crate) fn is_bootstrap_admin_token(state: &AppState, presented: &str) -> bool {
    state.config.admin_token.as_ref().is_some_and(|admin| {
        adapters::webhooks::constant_time_eq(presented.as_bytes(), admin.expose().as_bytes())
    })
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

/// The expiry `days` after `now`; `None` without `days`. Out of `1..=MAX_TOKEN_LIFETIME_DAYS`
/// is a 400 naming the field.
pub fn expiry_after_days(
    now: OffsetDateTime,
    days: Option<u32>,
) -> Result<Option<OffsetDateTime>, ApiError> {
    match days {
        None => Ok(None),
        Some(days @ 1..=MAX_TOKEN_LIFETIME_DAYS) => {
            Ok(Some(now + time::Duration::days(i64::from(days))))
        }
        Some(days) => Err(ApiError::BadRequest {
            code: "invalid_field",
            detail: format!(
                "expires_in_days is {days}; a token expires after 1 to {MAX_TOKEN_LIFETIME_DAYS} days (leave it out for no expiry)"
            ),
            field: Some("expires_in_days".into()),
        }),
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
    const COLUMNS: &'static str =
        "token_id, role, partner_id, label, created_at_us, expires_at_us, revoked_at_us";

    fn from_row(row: &SqlRow, now: OffsetDateTime) -> Result<TokenInfo, ApiError> {
        let role_text = row.text(1)?;
        let role = Role::parse(&role_text)
            .ok_or_else(|| ApiError::internal(format!("a stored token has role {role_text:?}")))?;
        let time_of = |micros: i64| {
            from_unix_micros(micros).ok_or_else(|| {
                ApiError::internal(format!("a stored token time {micros} is out of range"))
            })
        };
        let expires_at = row.opt_i64(5)?.map(time_of).transpose()?;
        let revoked_at = row.opt_i64(6)?.map(time_of).transpose()?;
        let status = match (revoked_at, expires_at) {
            (Some(_), _) => TokenStatus::Revoked,
            (None, Some(expires_at)) if expires_at <= now => TokenStatus::Expired,
            _ => TokenStatus::Active,
        };
        Ok(TokenInfo {
            token_id: row.text(0)?,
            role,
            partner_id: row.opt_text(2)?,
            label: row.opt_text(3)?,
            created_at: time_of(row.i64(4)?)?,
            expires_at,
            revoked_at,
            status,
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
/// A partner token needs a partner that exists (its stream has events): otherwise 422
/// `unknown_partner`.
pub async fn create_token(
    handlers: &Handlers,
    request: &TokenRequest,
    now: OffsetDateTime,
) -> Result<IssuedToken, ApiError> {
    let partner_id = request
        .partner_id
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty());
    if (request.role == Role::Partner) != partner_id.is_some() {
        return Err(ApiError::BadRequest {
            code: "invalid_token_request",
            detail: "a partner token names its partner (partner_id; --partner on the command \
                     line), and only a partner token does"
                .into(),
            field: Some("partner_id".into()),
        });
    }
    if let Some(partner_id) = partner_id {
        let (_, version) = handlers
            .partners
            .load_aggregate(partner_id)
            .await
            .map_err(ApiError::internal)?;
        if version == 0 {
            return Err(ApiError::Unprocessable {
                code: "unknown_partner",
                detail: format!(
                    "no partner {partner_id:?}: a partner token is made for an enrolled partner \
                     (POST /api/partners first)"
                ),
                field: Some("partner_id".into()),
            });
        }
    }
    let now = adapters::clock::truncate_to_micros(now);
    let token_id = Uuid::now_v7().to_string();
    // Two random (v4) uuids: 244 bits from the operating system's random source.
    let token = format!("rl_{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    let expires_at = request.expires_at.map(adapters::clock::truncate_to_micros);
    handlers
        .store
        .sql()
        .execute(
            "INSERT INTO api_tokens (token_id, token_sha256, role, partner_id, label, \
             created_at_us, revoked_at_us, expires_at_us) VALUES (?, ?, ?, ?, ?, ?, NULL, ?)",
            &[
                token_id.as_str().into(),
                sha256_hex(&token).into(),
                request.role.as_str().into(),
                partner_id.into(),
                request.label.as_deref().into(),
                unix_micros(now).into(),
                expires_at.map(unix_micros).into(),
            ],
        )
        .await?;
    let status = match expires_at {
        Some(at) if at <= now => TokenStatus::Expired,
        _ => TokenStatus::Active,
    };
    Ok(IssuedToken {
        info: TokenInfo {
            token_id,
            role: request.role,
            partner_id: partner_id.map(str::to_owned),
            label: request.label.clone(),
            created_at: now,
            expires_at,
            revoked_at: None,
            status,
        },
        token: Secret::new(token),
    })
}

/// The stored tokens, newest first ([`MAX_TOKENS_LISTED`] at most), as of `now`.
pub async fn list_tokens(db: &SqlDb, now: OffsetDateTime) -> Result<Vec<TokenInfo>, ApiError> {
    let sql = format!(
        "SELECT {} FROM api_tokens ORDER BY created_at_us DESC, token_id DESC LIMIT ?",
        TokenInfo::COLUMNS
    );
    db.fetch_all(&sql, &[MAX_TOKENS_LISTED.into()])
        .await?
        .iter()
        .map(|row| TokenInfo::from_row(row, now))
        .collect()
}

/// One stored token, as of `now`.
pub async fn find_token(
    db: &SqlDb,
    token_id: &str,
    now: OffsetDateTime,
) -> Result<Option<TokenInfo>, ApiError> {
    let sql = format!(
        "SELECT {} FROM api_tokens WHERE token_id = ?",
        TokenInfo::COLUMNS
    );
    db.fetch_optional(&sql, &[token_id.into()])
        .await?
        .map(|row| TokenInfo::from_row(&row, now))
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
/// before keeps its first revocation time. An unknown id is 404 (the bootstrap admin's too:
/// it is a setting, not a row).
pub async fn revoke_token(
    db: &SqlDb,
    token_id: &str,
    now: OffsetDateTime,
) -> Result<RevokedToken, ApiError> {
    let now = adapters::clock::truncate_to_micros(now);
    db.execute(
        "UPDATE api_tokens SET revoked_at_us = ? WHERE token_id = ? AND revoked_at_us IS NULL",
        &[unix_micros(now).into(), token_id.into()],
    )
    .await?;
    let Some(token) = find_token(db, token_id, now).await? else {
        let detail = if token_id == BOOTSTRAP_ADMIN_TOKEN_ID {
            "bootstrap-admin is REVLEDGER_ADMIN_TOKEN, a setting rather than a stored token: \
             change or unset it and restart (its dashboard sessions end with it)"
                .to_owned()
        } else {
            format!("no token {token_id}")
        };
        return Err(ApiError::NotFound(detail));
    };
    // Sessions also check their token on every page; deleting them is so that nothing of a
    // revoked token stays behind.
    let sessions_ended = crate::sessions::end_all_of_token(db, token_id).await?;
    Ok(RevokedToken {
        token,
        sessions_ended,
    })
}
