//! Bearer tokens and roles.
//!
//! A token is 32 random bytes, shown once (`revledger token create`) and stored only as its
//! SHA-256. `REVLEDGER_ADMIN_TOKEN` bootstraps an administrator without a database row (token
//! id [`BOOTSTRAP_ADMIN_TOKEN_ID`]). The dashboard signs a token in once and keeps a session
//! ([`crate::sessions`]) rather than the token. Roles:
//! **admin** (everything), **sales** (leads, CRM), **finance** (invoices, commissions, payouts,
//! reconciliation, the ledger), **auditor** (reads everything, changes nothing) and **partner**
//! (its own partner record and statements; any other partner id is answered 404, so ids cannot
//! be probed). Every command records the principal's token id as the event's actor.

use adapters::clock::{now_micros, unix_micros};
use adapters::sql::SqlDb;
use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
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
/// that is not revoked. Anything else is [`ApiError::Unauthorized`].
pub async fn principal_of_token(state: &AppState, presented: &str) -> Result<Principal, ApiError> {
    if is_bootstrap_admin_token(state, presented) {
        return Ok(Principal {
            token_id: BOOTSTRAP_ADMIN_TOKEN_ID.into(),
            role: Role::Admin,
            partner_id: None,
        });
    }
    let row = state
        .store
        .sql()
        .fetch_optional(
            "SELECT token_id, role, partner_id FROM api_tokens WHERE token_sha256 = ? AND revoked_at_us IS NULL",
            &[sha256_hex(presented).into()],
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

/// A new token: returns `(token_id, token)`; the token is shown once and stored hashed.
pub async fn create_token(
    db: &SqlDb,
    role: Role,
    partner_id: Option<&str>,
    label: Option<&str>,
) -> Result<(String, String), ApiError> {
    if (role == Role::Partner) != partner_id.is_some() {
        return Err(ApiError::BadRequest {
            code: "invalid_token_request",
            detail: "a partner token needs --partner, and only a partner token takes it".into(),
            field: Some("partner".into()),
        });
    }
    let token_id = Uuid::now_v7().to_string();
    // Two random (v4) uuids: 244 bits from the operating system's random source.
    let token = format!("rl_{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    db.execute(
        "INSERT INTO api_tokens (token_id, token_sha256, role, partner_id, label, created_at_us, revoked_at_us) \
         VALUES (?, ?, ?, ?, ?, ?, NULL)",
        &[
            token_id.as_str().into(),
            sha256_hex(&token).into(),
            role.as_str().into(),
            partner_id.into(),
            label.into(),
            unix_micros(now_micros()).into(),
        ],
    )
    .await?;
    Ok((token_id, token))
}
