//! The dashboard's sessions as the HTTP layer uses them: the configured admin token handed to
//! `app::sessions` (which keeps the rules: lifetime, bound per token, the bootstrap admin's
//! binding), and its answers turned into a [`Principal`] or [`ApiError::Unauthorized`].

use adapters::webhooks::Secret;
use time::OffsetDateTime;

use crate::auth::Principal;
use crate::{ApiError, AppState};

pub use app::sessions::SESSION_LIFETIME;

/// Starts a session for `principal` (just authenticated by its token); returns the session id
/// for the cookie.
pub async fn start(
    state: &AppState,
    principal: &Principal,
    now: OffsetDateTime,
) -> Result<Secret, ApiError> {
    let holder = app::tokens::TokenHolder {
        token_id: principal.token_id.clone(),
        role: principal.role,
        partner_id: principal.partner_id.clone(),
    };
    let admin_token = state.config.admin_token.as_ref();
    Ok(app::sessions::start(&state.store.sql(), &holder, admin_token, now).await?)
}

/// The principal of a live session; anything else is [`ApiError::Unauthorized`].
pub async fn principal(
    state: &AppState,
    session_id: &str,
    now: OffsetDateTime,
) -> Result<Principal, ApiError> {
    let admin_token = state.config.admin_token.as_ref();
    app::sessions::holder(&state.store.sql(), session_id, admin_token, now)
        .await?
        .map(Principal::from)
        .ok_or(ApiError::Unauthorized)
}
