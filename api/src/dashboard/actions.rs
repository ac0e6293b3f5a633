//! The finance desk's actions: approving or rejecting a commission, creating payout batches
//! and replaying a dead letter, each a form posted from a dashboard page.
//!
//! Every action goes through [`begin`]: a live session (else the login form), a role that may
//! change finance (else a 403 page: an auditor or a partner reads but never acts), and the
//! session's form token ([`adapters::sessions::form_token`], compared in constant time; else a
//! 403 page and nothing changed). SameSite=Strict cookies stay; the token does not rely on
//! them. Then the same use case the JSON API calls runs ([`app::commissions::decide`],
//! [`app::process::payouts::create_payouts`], [`app::webhooks::Deliveries::replay`]) with the
//! signed-in token as the events' actor and `dashboard` as their source, and the browser is
//! sent back (303) to the page it came from, which shows the result once
//! ([`ActionResult`], carried by a short-lived cookie rather than the URL, so a link cannot
//! put words in the page).

use std::time::Duration;

use adapters::store::EventMetadata;
use app::command::CommandError;
use app::commissions::Decision;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use maud::{html, Markup};
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use uuid::Uuid;

use super::desk_labels::commission_refusal;
use super::format::{money, query_value};
use super::labels::Lang;
use super::layout::{failure_page, html_response, layout, Page};
use super::session::{form_token_is_good, lang_cookie, language, see_other, session_principal};
use super::LOGIN_PATH;
use crate::auth::{Area, Principal};
use crate::finance::{command_error, READ_MODEL_WAIT};
use crate::{ApiError, AppState};

/// The cookie carrying an action's result to the page it redirects to.
const RESULT_COOKIE: &str = "revledger_result";
/// The result is shown by the page the redirect opens, a moment later; after this it is gone.
const RESULT_MAX_AGE: Duration = Duration::from_secs(60);
/// A result's text at most (an error's message is cut there), so the cookie stays small.
const MAX_RESULT_CHARS: usize = 600;

/// What an action did, shown once on the page it came from: a success, or why it was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionResult {
    pub ok: bool,
    pub text: String,
}

impl ActionResult {
    fn ok(text: String) -> ActionResult {
        ActionResult { ok: true, text }
    }

    fn refused(lang: Lang, detail: &str) -> ActionResult {
        ActionResult {
            ok: false,
            text: format!("{} {detail}", lang.desk().refused),
        }
    }

    fn cookie(&self) -> Cookie<'static> {
        let text: String = self.text.chars().take(MAX_RESULT_CHARS).collect();
        let value = format!(
            "{}.{}",
            if self.ok { "ok" } else { "bad" },
            query_value(&text)
        );
        Cookie::build((RESULT_COOKIE, value))
            .path("/dashboard")
            .http_only(true)
            .same_site(SameSite::Strict)
            .max_age(time::Duration::seconds(RESULT_MAX_AGE.as_secs() as i64))
            .build()
    }

    /// The cookie that removes a shown result.
    pub fn expired_cookie() -> Cookie<'static> {
        Cookie::build((RESULT_COOKIE, ""))
            .path("/dashboard")
            .http_only(true)
            .same_site(SameSite::Strict)
            .max_age(time::Duration::ZERO)
            .build()
    }

    /// The result a redirect left for this page, if any.
    pub fn from_jar(jar: &CookieJar) -> Option<ActionResult> {
        let value = jar.get(RESULT_COOKIE)?.value();
        let (kind, text) = value.split_once('.')?;
        let text = percent_decode_str(text).decode_utf8().ok()?.into_owned();
        match kind {
            "ok" => Some(ActionResult { ok: true, text }),
            "bad" => Some(ActionResult { ok: false, text }),
            _ => None,
        }
    }

    /// The banner at the top of the page.
    pub fn banner(&self) -> Markup {
        html! {
            p class=(if self.ok { "banner ok" } else { "banner bad" }) id="action-result"
                role="status" data-ok=(self.ok) { (self.text) }
        }
    }
}

/// The fields every desk form may carry.
#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    /// The session's form token.
    csrf: Option<String>,
    /// The page's language, so the result is said in it.
    lang: Option<String>,
    /// A rejection's reason.
    reason: Option<String>,
    /// Payouts for one partner only (empty: every partner).
    partner_id: Option<String>,
}

/// A form body read as a query string (axum's Query), whatever its Content-Type says; an
/// unreadable one is an empty form (and so refused for its missing token).
fn read_form(body: &Bytes) -> ActionForm {
    std::str::from_utf8(body)
        .ok()
        .and_then(|text| format!("/?{}", text.trim()).parse::<Uri>().ok())
        .and_then(|uri| Query::<ActionForm>::try_from_uri(&uri).ok())
        .map(|Query(form)| form)
        .unwrap_or_default()
}

/// The posted form and a signed-in principal allowed to act from `page`, with the language to
/// answer in; the `Err` is the answer instead (the login form, or a 403 page having changed
/// nothing).
async fn begin(
    state: &AppState,
    jar: &CookieJar,
    body: &Bytes,
    page: Page,
) -> Result<(ActionForm, Principal, Lang), Response> {
    let form = read_form(body);
    let (lang, _) = language(jar, form.lang.as_deref());
    let principal = match session_principal(state, jar).await {
        Ok(principal) => principal,
        Err(ApiError::Unauthorized | ApiError::Unauthenticated(_)) => {
            let next = format!("{LOGIN_PATH}?next={}", query_value(page.path()));
            return Err(see_other(&next, []));
        }
        Err(error) => return Err(failure_page(lang, None, error)),
    };
    let refusal = if !principal.can_change(Area::Finance) {
        Some(lang.desk().action_forbidden)
    } else if !form_token_is_good(jar, form.csrf.as_deref()) {
        Some(lang.desk().csrf_refused)
    } else {
        None
    };
    if let Some(detail) = refusal {
        let labels = lang.labels();
        let body = html! { p class="error" id="forbidden" { (detail) } };
        let page = layout(lang, Some(&principal), Some(page), labels.forbidden, body);
        return Err(html_response(StatusCode::FORBIDDEN, page, None));
    }
    Ok((form, principal, lang))
}

/// Back to `page` (in `lang`), carrying `result`.
fn back_to(page: Page, lang: Lang, result: &ActionResult) -> Response {
    let location = format!("{}?lang={}", page.path(), lang.code());
    see_other(&location, [result.cookie(), lang_cookie(lang)])
}

/// An action's error as its result: the rule or input at fault; a server failure says nothing
/// internal (it is logged).
fn failed(lang: Lang, error: ApiError) -> ActionResult {
    match error {
        ApiError::Internal(cause) => {
            tracing::error!(%cause, "dashboard action failed");
            ActionResult::refused(lang, lang.labels().failed_detail)
        }
        other => ActionResult::refused(lang, &other.to_string()),
    }
}

/// The metadata of a desk action's events: the signed-in token acted, from the dashboard.
fn metadata(principal: &Principal, headers: &HeaderMap) -> EventMetadata {
    crate::finance::metadata_from(principal, headers, "dashboard")
}

/// `POST /dashboard/commissions/{id}/{approve|reject}` (form: `csrf`, `reason`, `lang`).
pub async fn decide_commission(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Path((commission_id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let (form, principal, lang) = match begin(&state, &jar, &body, Page::Commissions).await {
        Ok(begun) => begun,
        Err(answer) => return answer,
    };
    let Some(decision) = Decision::parse(&action, form.reason.clone()) else {
        let error = ApiError::NotFound(format!(
            "no commission action {action:?}: use approve or reject"
        ));
        return failure_page(lang, Some(&principal), error);
    };
    let desk = lang.desk();
    let done = match decision {
        Decision::Approve => desk.approved_message,
        Decision::Reject { .. } => desk.rejected_message,
    };
    let outcome = app::commissions::decide(
        &state.handlers,
        &commission_id,
        decision,
        adapters::clock::now_micros(),
        Uuid::now_v7(),
        true,
        metadata(&principal, &headers),
    )
    .await;
    let result = match outcome {
        Ok(_) => ActionResult::ok(format!("{done} {commission_id}")),
        Err(CommandError::Rejected(rule)) => {
            ActionResult::refused(lang, &commission_refusal(lang, &rule))
        }
        Err(error) => failed(lang, command_error(error)),
    };
    back_to(Page::Commissions, lang, &result)
}

/// `POST /dashboard/payouts` (form: `csrf`, `partner_id`, `lang`): payout batches for every
/// partner (or one) whose approved commissions reach the minimum.
pub async fn create_payouts(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (form, principal, lang) = match begin(&state, &jar, &body, Page::Commissions).await {
        Ok(begun) => begun,
        Err(answer) => return answer,
    };
    let partner = form
        .partner_id
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty());
    let minimum = state.config.program.payout_minimum_halalas;
    let created = async {
        if let Some(statements) = state.projector("partner_statements") {
            statements.wait_caught_up(READ_MODEL_WAIT).await?;
        }
        Ok::<_, ApiError>(
            app::process::payouts::create_payouts(
                &state.handlers,
                minimum,
                partner,
                adapters::clock::now_micros(),
                Uuid::now_v7(),
                metadata(&principal, &headers),
            )
            .await?,
        )
    }
    .await;
    let result = match created {
        Ok(results) => {
            let made: Vec<String> = results
                .iter()
                .filter_map(|r| {
                    let id = r.payout_id.as_deref()?;
                    (r.outcome == "created")
                        .then(|| format!("{id} ({}, {})", r.partner_id, money(lang, r.net_halalas)))
                })
                .collect();
            if made.is_empty() {
                ActionResult::refused(lang, lang.desk().payouts_none)
            } else {
                ActionResult::ok(format!(
                    "{} {}",
                    lang.desk().payouts_created,
                    made.join("; ")
                ))
            }
        }
        Err(error) => failed(lang, error),
    };
    back_to(Page::Commissions, lang, &result)
}

/// `POST /dashboard/dead-letters/{id}/replay` (form: `csrf`, `lang`): tries a dead letter
/// again now, as the API's replay does.
pub async fn replay_dead_letter(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let (_, principal, lang) = match begin(&state, &jar, &body, Page::DeadLetters).await {
        Ok(begun) => begun,
        Err(answer) => return answer,
    };
    let result = match state.deliveries.replay(&id, &principal.actor()).await {
        Ok(answer) => {
            let status = answer.body["status"].as_str().unwrap_or("").to_owned();
            let text = format!("{} {id}: {status}", lang.desk().replayed_message);
            if answer.status == 200 && status != "refused" {
                ActionResult::ok(text)
            } else {
                let reason = answer.body["reason"].as_str().unwrap_or("");
                ActionResult::refused(lang, &format!("{text} {reason}"))
            }
        }
        Err(error) => failed(lang, error.into()),
    };
    back_to(Page::DeadLetters, lang, &result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_survives_its_cookie_in_either_language() {
        for result in [
            ActionResult::ok("Commission approved: c-1".into()),
            ActionResult::refused(Lang::Ar, "rejecting a commission needs a reason; ي & =x"),
        ] {
            let cookie = result.cookie();
            let jar = CookieJar::new().add(cookie);
            assert_eq!(ActionResult::from_jar(&jar), Some(result));
        }
    }

    #[test]
    fn a_form_is_read_from_its_urlencoded_body() {
        let form = read_form(&Bytes::from_static(b"csrf=abc&reason=not+ours%21&lang=ar"));
        assert_eq!(form.csrf.as_deref(), Some("abc"));
        assert_eq!(form.reason.as_deref(), Some("not ours!"));
        assert_eq!(form.lang.as_deref(), Some("ar"));
        assert!(read_form(&Bytes::from_static(b"\xff")).csrf.is_none());
    }
}
