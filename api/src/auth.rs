//! Bearer tokens and roles, as the HTTP layer sees them: who is calling, and what each role
//! may read or change.
//!
//! Tokens themselves (made, listed, revoked, looked up) are `app::tokens`; here a request's
//! `Authorization: Bearer` header becomes a [`Principal`] (a route takes one as an extractor,
//! so it is checked before the path, the query or the body is read), and every route asks it
//! `require_*`. `REVLEDGER_ADMIN_TOKEN` bootstraps an administrator without a database row
//! (token id [`BOOTSTRAP_ADMIN_TOKEN_ID`]). An expired or revoked token is refused exactly like
//! an unknown one (401). Roles: **admin** (everything), **sales** (leads, CRM), **finance**
//! (invoices, commissions, payouts, reconciliation, the ledger), **auditor** (reads
//! everything, changes nothing) and **partner** (its own partner record and statements; any
//! other partner id is answered 404, so ids cannot be probed). Every command records the
//! principal's token id as the event's actor.

use app::tokens::TokenHolder;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use crate::{ApiError, AppState};

pub use app::tokens::{Role, BOOTSTRAP_ADMIN_TOKEN_ID, MAX_TOKEN_LIFETIME_DAYS};

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

impl From<TokenHolder> for Principal {
    fn from(holder: TokenHolder) -> Principal {
        Principal {
            token_id: holder.token_id,
            role: holder.role,
            partner_id: holder.partner_id,
        }
    }
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

/// A route's caller, from its `Authorization: Bearer` header; a request without a token that
/// stands for someone is answered 401 before anything else of it is read.
impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(state, &parts.headers).await
    }
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
    let now = adapters::clock::now_micros();
    app::tokens::holder_of_token(&state.store.sql(), presented, now)
        .await?
        .map(Principal::from)
        .ok_or(ApiError::Unauthorized)
}

/// Whether `presented` is the configured `REVLEDGER_ADMIN_TOKEN` (compared in constant time).
pub(crate) fn is_bootstrap_admin_token(state: &AppState, presented: &str) -> bool {
    state.config.admin_token.as_ref().is_some_and(|admin| {
        adapters::webhooks::constant_time_eq(presented.as_bytes(), admin.expose().as_bytes())
    })
}
