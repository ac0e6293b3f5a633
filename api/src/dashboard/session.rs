//! Signing in and out, and the two cookies: the session (its random id, never the token;
//! [`crate::sessions`]) and the language.
//!
//! `GET /dashboard/login` shows a form for an API token; `POST` checks it with
//! [`crate::auth::principal_of_token`] (the same hashing, roles, expiry and revocation as the
//! API), starts a server-side session and sets an `HttpOnly; SameSite=Strict` cookie scoped to
//! `/dashboard`. For a browser that cannot post a form (a headless test, a link from the CLI),
//! a caller holding a token can ask for a one-time login link (`POST /dashboard/login/links`):
//! it is valid for [`LOGIN_LINK_TTL`], works once, and never puts the token itself in a URL;
//! redeeming it starts a session as signing in does. Cookies are read and written through
//! axum-extra's cookie jar.

use std::sync::Mutex;
use std::time::Instant;

use adapters::webhooks::Secret;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use maud::html;
use serde::{Deserialize, Serialize};

use super::format::query_value;
use super::labels::Lang;
use super::layout::{failure_page, html_response, layout};
use super::{
    LANG_COOKIE, LANG_MAX_AGE_SECS, LOGIN_LINK_TTL, LOGIN_PATH, MAX_LOGIN_LINKS, SESSION_COOKIE,
    SESSION_MAX_AGE_SECS,
};
use crate::auth::{bearer, principal_of_token, Principal};
use crate::{sessions, ApiError, AppState};

/// Where the cookies apply: the dashboard's pages only, never the API.
const COOKIE_PATH: &str = "/dashboard";

/// The page's language: the query's `lang`, else the cookie's, else English; and whether the
/// choice is new (so the cookie is set).
pub fn language(jar: &CookieJar, asked: Option<&str>) -> (Lang, bool) {
    let remembered = jar
        .get(LANG_COOKIE)
        .and_then(|cookie| Lang::parse(cookie.value()));
    match asked.and_then(Lang::parse) {
        Some(lang) => (lang, remembered != Some(lang)),
        None => (remembered.unwrap_or(Lang::En), false),
    }
}

/// The cookie that remembers the language for a year.
pub fn lang_cookie(lang: Lang) -> Cookie<'static> {
    Cookie::build((LANG_COOKIE, lang.code()))
        .path(COOKIE_PATH)
        .same_site(SameSite::Strict)
        .max_age(seconds(LANG_MAX_AGE_SECS))
        .build()
}

fn seconds(secs: u64) -> time::Duration {
    time::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX))
}

/// Whether the request reached us over HTTPS (behind a proxy that says so): the session
/// cookie is then `Secure`.
fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn session_cookie(value: String, max_age_secs: u64, secure: bool) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, value))
        .path(COOKIE_PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(seconds(max_age_secs))
        .secure(secure)
        .build()
}

/// Signs `token` in: a new session's cookie, or why not.
async fn start_session(
    state: &AppState,
    token: &str,
    headers: &HeaderMap,
) -> Result<Cookie<'static>, ApiError> {
    let principal = principal_of_token(state, token).await?;
    let session_id = sessions::start(state, &principal, adapters::clock::now_micros()).await?;
    Ok(session_cookie(
        session_id.expose().to_owned(),
        SESSION_MAX_AGE_SECS,
        over_https(headers),
    ))
}

/// The principal of the request's session cookie.
pub async fn session_principal(state: &AppState, jar: &CookieJar) -> Result<Principal, ApiError> {
    let session_id = jar
        .get(SESSION_COOKIE)
        .map(Cookie::value)
        .filter(|value| !value.is_empty())
        .ok_or(ApiError::Unauthorized)?;
    sessions::principal(state, session_id, adapters::clock::now_micros()).await
}

/// The form token of the request's session ([`adapters::sessions::form_token`]); empty
/// without a session (such a request is sent to the login form before any form is shown).
pub fn form_token_of(jar: &CookieJar) -> String {
    jar.get(SESSION_COOKIE)
        .map(Cookie::value)
        .filter(|value| !value.is_empty())
        .map(adapters::sessions::form_token)
        .unwrap_or_default()
}

/// Whether `presented` is the form token of the request's session.
pub fn form_token_is_good(jar: &CookieJar, presented: Option<&str>) -> bool {
    match (jar.get(SESSION_COOKIE).map(Cookie::value), presented) {
        (Some(session_id), Some(presented)) if !session_id.is_empty() && !presented.is_empty() => {
            adapters::sessions::form_token_matches(session_id, presented)
        }
        _ => false,
    }
}

/// Where to go after signing in: a dashboard page, nothing else (no open redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if (path == "/dashboard"
                || path.starts_with("/dashboard/")
                || path.starts_with("/dashboard?"))
                && !path.contains("//")
                && !path.contains('\\')
                && path.chars().all(|c| c.is_ascii_graphic()) =>
        {
            path.to_owned()
        }
        _ => "/dashboard".to_owned(),
    }
}

/// A 303 to `location`, setting `cookies`.
pub fn see_other(location: &str, cookies: impl IntoIterator<Item = Cookie<'static>>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    let jar = cookies.into_iter().fold(CookieJar::new(), CookieJar::add);
    (jar, response).into_response()
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    lang: Option<String>,
    code: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct LoginForm {
    token: Option<String>,
    next: Option<String>,
}

fn login_page(
    lang: Lang,
    next: &str,
    error: Option<&str>,
    status: StatusCode,
    remember: bool,
) -> Response {
    let labels = lang.labels();
    let body = html! {
        @if let Some(error) = error {
            p class="error" id="login-error" { (error) }
        }
        form class="login" method="post" action=(LOGIN_PATH) {
            input type="hidden" name="next" value=(next);
            label {
                (labels.token)
                input type="password" name="token" id="token" autocomplete="current-password" required;
            }
            p class="muted" { (labels.token_hint) }
            button class="primary" type="submit" { (labels.sign_in) }
        }
    };
    let page = layout(lang, None, None, labels.sign_in, body);
    html_response(status, page, remember.then_some(lang))
}

/// `GET /dashboard/login`: the sign-in form.
pub async fn login_form(jar: CookieJar, Query(query): Query<LoginQuery>) -> Response {
    let (lang, remember) = language(&jar, query.lang.as_deref());
    login_page(
        lang,
        &safe_next(query.next.as_deref()),
        None,
        StatusCode::OK,
        remember,
    )
}

/// `POST /dashboard/login` (form: `token`, `next`): checks the token and sets the session.
pub async fn login(
    State(state): State<AppState>,
    client: Option<axum::Extension<crate::connections::ClientAddress>>,
    jar: CookieJar,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (lang, _) = language(&jar, None);
    if crate::signin::is_cross_site(&headers) {
        return ApiError::Forbidden(
            "a sign-in must be posted from this dashboard's own page".into(),
        )
        .into_response();
    }
    if let Some(axum::Extension(crate::connections::ClientAddress(client))) = client {
        if let Err(retry_after_secs) = state.sign_in.attempt(client, Instant::now()) {
            return ApiError::TooManyRequests {
                code: "too_many_sign_ins",
                detail: format!(
                    "more than {} sign-ins from this address in a minute",
                    crate::signin::MAX_ATTEMPTS
                ),
                retry_after_secs,
            }
            .into_response();
        }
    }
    // The form is read as a query string (axum's Query), whatever its Content-Type says.
    let form = std::str::from_utf8(&body)
        .ok()
        .and_then(|text| format!("/?{}", text.trim()).parse::<Uri>().ok())
        .and_then(|uri| Query::<LoginForm>::try_from_uri(&uri).ok())
        .map(|Query(form)| form)
        .unwrap_or_default();
    let next = safe_next(form.next.as_deref());
    let token = form.token.as_deref().map(str::trim).unwrap_or("");
    let refused = |lang: Lang| {
        login_page(
            lang,
            &next,
            Some(lang.labels().token_invalid),
            StatusCode::UNAUTHORIZED,
            false,
        )
    };
    if token.is_empty() {
        return refused(lang);
    }
    match start_session(&state, token, &headers).await {
        Ok(session) => see_other(&next, [session]),
        Err(ApiError::Unauthorized | ApiError::Unauthenticated(_)) => refused(lang),
        Err(error) => failure_page(lang, None, error),
    }
}

/// `POST /dashboard/logout`: ends the session on the server and expires the cookie.
pub async fn logout(State(state): State<AppState>, jar: CookieJar) -> Response {
    let session_id = jar.get(SESSION_COOKIE).map(Cookie::value);
    if let Some(session_id) = session_id.filter(|v| !v.is_empty()) {
        if let Err(error) = app::sessions::end(&state.store.sql(), session_id).await {
            // The cookie is expired below either way; the row would end at its expiry.
            let (lang, _) = language(&jar, None);
            return failure_page(lang, None, error.into());
        }
    }
    see_other(LOGIN_PATH, [session_cookie(String::new(), 0, false)])
}

struct LoginLink {
    code: String,
    token: Secret,
    expires: Instant,
}

/// Outstanding one-time login links, in this process (a link is redeemed by the process that
/// made it; it lives a minute).
static LOGIN_LINKS: Mutex<Vec<LoginLink>> = Mutex::new(Vec::new());

fn remember_link(code: String, token: Secret) {
    let mut links = LOGIN_LINKS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let now = Instant::now();
    links.retain(|link| link.expires > now);
    if links.len() >= MAX_LOGIN_LINKS {
        links.remove(0);
    }
    links.push(LoginLink {
        code,
        token,
        expires: now + LOGIN_LINK_TTL,
    });
}

fn take_link(code: &str) -> Option<Secret> {
    let mut links = LOGIN_LINKS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let now = Instant::now();
    links.retain(|link| link.expires > now);
    let index = links.iter().position(|link| {
        adapters::webhooks::constant_time_eq(link.code.as_bytes(), code.as_bytes())
    })?;
    Some(links.swap_remove(index).token)
}

/// A one-time sign-in link.
#[derive(Serialize)]
pub struct LoginLinkAnswer {
    url: String,
    expires_in_secs: u64,
}

/// `POST /dashboard/login/links?next=…&lang=…` (bearer token): a one-time sign-in link for a
/// browser that cannot post the form. Any token that stands for someone may ask (the
/// extractor refuses the rest); the link signs its browser in as that token.
pub async fn create_login_link(
    _caller: Principal,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Result<Json<LoginLinkAnswer>, ApiError> {
    let token = Secret::new(bearer(&headers).ok_or(ApiError::Unauthorized)?);
    // 244 random bits from the operating system (two v4 uuids), as API tokens are made.
    let code = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    remember_link(code.clone(), token);
    let next = safe_next(query.next.as_deref());
    let mut url = format!("{LOGIN_PATH}/link?code={code}&next={}", query_value(&next));
    if let Some(lang) = query.lang.as_deref().and_then(Lang::parse) {
        url.push_str("&lang=");
        url.push_str(lang.code());
    }
    Ok(Json(LoginLinkAnswer {
        url,
        expires_in_secs: LOGIN_LINK_TTL.as_secs(),
    }))
}

/// `GET /dashboard/login/link?code=…`: redeems a one-time link into a session.
pub async fn redeem_login_link(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Response {
    let (lang, remember) = language(&jar, query.lang.as_deref());
    let next = safe_next(query.next.as_deref());
    let session = match query.code.as_deref().and_then(take_link) {
        Some(token) => start_session(&state, token.expose(), &headers).await,
        None => Err(ApiError::Unauthorized),
    };
    match session {
        Ok(session) => {
            let language = remember.then(|| lang_cookie(lang));
            see_other(&next, std::iter::once(session).chain(language))
        }
        Err(error @ ApiError::Internal(_)) => failure_page(lang, None, error),
        Err(_) => login_page(
            lang,
            &next,
            Some(lang.labels().link_invalid),
            StatusCode::UNAUTHORIZED,
            remember,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dashboard_paths_are_redirect_targets() {
        assert_eq!(safe_next(Some("/dashboard/crm")), "/dashboard/crm");
        assert_eq!(safe_next(Some("https://evil.example/")), "/dashboard");
        assert_eq!(safe_next(Some("//evil.example/dashboard")), "/dashboard");
        assert_eq!(safe_next(Some("/dashboardx")), "/dashboard");
        assert_eq!(safe_next(Some("/dashboard/\\evil")), "/dashboard");
        assert_eq!(safe_next(None), "/dashboard");
    }

    #[test]
    fn a_login_link_works_once() {
        remember_link("code-1".into(), Secret::new("token-1"));
        assert_eq!(take_link("code-1"), Some(Secret::new("token-1")));
        assert_eq!(take_link("code-1"), None);
        assert_eq!(take_link("never-made"), None);
    }

    #[test]
    fn the_session_cookie_is_http_only_strict_and_scoped_to_the_dashboard() {
        let cookie = session_cookie("abc".into(), 60, true).to_string();
        for attribute in [
            "revledger_session=abc",
            "HttpOnly",
            "SameSite=Strict",
            "Path=/dashboard",
            "Max-Age=60",
            "Secure",
        ] {
            assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
        }
    }
}
