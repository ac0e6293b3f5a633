//! What every page shares: the pages and who may see them ([`Page`]), the document around a
//! page's body ([`layout`]), the protective headers ([`html_response`]), the check that opens
//! each signed-in visit ([`Visit`]) and the failure page.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde::Deserialize;

use super::labels::{role_label, Labels, Lang};
use super::session::{lang_cookie, language, session_principal};
use super::LOGIN_PATH;
use crate::auth::{Area, Principal};
use crate::{ApiError, AppState};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    Overview,
    Crm,
    Commissions,
    Reconciliation,
    Audit,
    Lag,
    DeadLetters,
    Partner,
}

impl Page {
    pub const ALL: [Page; 8] = [
        Page::Overview,
        Page::Crm,
        Page::Commissions,
        Page::Reconciliation,
        Page::Audit,
        Page::Lag,
        Page::DeadLetters,
        Page::Partner,
    ];

    pub fn path(self) -> &'static str {
        match self {
            Page::Overview => "/dashboard",
            Page::Crm => "/dashboard/crm",
            Page::Commissions => "/dashboard/commissions",
            Page::Reconciliation => "/dashboard/reconciliation",
            Page::Audit => "/dashboard/audit",
            Page::Lag => "/dashboard/lag",
            Page::DeadLetters => "/dashboard/dead-letters",
            Page::Partner => "/dashboard/partner",
        }
    }

    fn id(self) -> &'static str {
        match self {
            Page::Overview => "overview",
            Page::Crm => "crm",
            Page::Commissions => "commissions",
            Page::Reconciliation => "reconciliation",
            Page::Audit => "audit",
            Page::Lag => "lag",
            Page::DeadLetters => "dead-letters",
            Page::Partner => "partner",
        }
    }

    /// Who may see the page. Lag is operational: any staff role sees it. The dead letters are
    /// finance's to replay (and an auditor's to read); the partner page is a partner token's
    /// own, and only a partner's.
    pub fn visible_to(self, principal: &Principal) -> bool {
        match self {
            Page::Overview | Page::Crm | Page::Lag => principal.can_read(Area::Sales),
            Page::Commissions | Page::Reconciliation | Page::DeadLetters => {
                principal.can_read(Area::Finance)
            }
            Page::Audit => principal.can_read(Area::Audit),
            Page::Partner => principal.role == crate::auth::Role::Partner,
        }
    }

    pub fn title(self, labels: &Labels) -> &'static str {
        match self {
            Page::Overview => labels.overview,
            Page::Crm => labels.crm,
            Page::Commissions => labels.commissions,
            Page::Reconciliation => labels.reconciliation,
            Page::Audit => labels.audit,
            Page::Lag => labels.lag,
            Page::DeadLetters => Lang::desk_of(labels).dead_letters,
            Page::Partner => Lang::desk_of(labels).partner_page,
        }
    }
}

/// The dashboard's one style sheet: a constant of ours, written into the page as it is.
const CSS: &str = r#"
:root { color-scheme: light; --ink: #1d2733; --muted: #5b6b7c; --line: #dde3ea; --brand: #0b6e4f;
        --soft: #f4f7f9; --warn: #b3261e; --warn-soft: #fdecea; --ok-soft: #e7f5ee; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, "Segoe UI", "Noto Sans", "Noto Sans Arabic", Tahoma, sans-serif;
       color: var(--ink); background: #fff; }
header { display: flex; flex-wrap: wrap; gap: 0.5rem 1.5rem; align-items: center; padding: 0.6rem 1.5rem;
         background: var(--brand); color: #fff; }
header a { color: #fff; text-decoration: none; padding: 0.25rem 0.5rem; border-radius: 4px; }
header a:hover, header a[aria-current="page"] { background: rgba(255,255,255,0.18); }
header .brand { font-weight: 700; font-size: 1.1rem; }
header nav { display: flex; flex-wrap: wrap; gap: 0.25rem; }
header .who { margin-inline-start: auto; display: flex; gap: 0.75rem; align-items: center; font-size: 0.9rem; }
header form { margin: 0; }
header button { background: transparent; color: #fff; border: 1px solid rgba(255,255,255,0.6); border-radius: 4px;
                padding: 0.2rem 0.6rem; cursor: pointer; font: inherit; }
main { padding: 1rem 1.5rem 3rem; max-width: 1200px; }
h1 { font-size: 1.5rem; margin: 0.5rem 0 1rem; }
h2 { font-size: 1.15rem; margin: 1.5rem 0 0.5rem; }
table { border-collapse: collapse; width: 100%; margin: 0.5rem 0 1rem; font-size: 0.92rem; }
th, td { text-align: start; padding: 0.35rem 0.6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
td.num, th.num { text-align: end; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.id, th.id { white-space: nowrap; }
figure { margin: 0 0 1rem; }
.cards { display: flex; flex-wrap: wrap; gap: 1rem; margin: 0.5rem 0 1rem; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 0.6rem 1rem; min-width: 12rem; }
.card .label { color: var(--muted); font-size: 0.85rem; }
.card .value { font-size: 1.35rem; font-weight: 600; }
.chart { border: 1px solid var(--line); border-radius: 6px; padding: 0.5rem; max-width: 720px; }
.chart text { font: 13px system-ui, "Noto Sans Arabic", sans-serif; fill: var(--ink); }
.chart rect.bar { fill: var(--brand); }
.chart rect.bar.archived { fill: #9aa7b4; }
tr.due td { background: var(--warn-soft); }
.badge { display: inline-block; padding: 0 0.4rem; border-radius: 3px; font-size: 0.8rem; font-weight: 600; }
.badge.due { background: var(--warn); color: #fff; }
.banner { padding: 0.7rem 1rem; border-radius: 6px; margin: 0.5rem 0 1rem; font-weight: 600; }
.banner.ok { background: var(--ok-soft); color: #0b5a3a; }
.banner.bad { background: var(--warn-soft); color: var(--warn); }
.muted { color: var(--muted); }
code, .id { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: 0.85rem; }
form.filters { display: flex; flex-wrap: wrap; gap: 0.75rem; align-items: end; margin: 0.5rem 0 1rem; }
form.filters label, form.login label { display: flex; flex-direction: column; gap: 0.2rem; font-size: 0.85rem; color: var(--muted); }
input, select { font: inherit; padding: 0.3rem 0.5rem; border: 1px solid var(--line); border-radius: 4px; }
button.primary { font: inherit; background: var(--brand); color: #fff; border: 0; border-radius: 4px; padding: 0.4rem 1rem; cursor: pointer; }
form.login { display: flex; flex-direction: column; gap: 0.8rem; max-width: 26rem; }
.error { color: var(--warn); font-weight: 600; }
ul.messages { margin: 0; padding-inline-start: 1rem; }
"#;

/// The whole document around a page's body: the navigation the principal may use, the
/// language switch, who is signed in, and the page's title.
pub fn layout(
    lang: Lang,
    principal: Option<&Principal>,
    current: Option<Page>,
    title: &str,
    body: Markup,
) -> Markup {
    let labels = lang.labels();
    let other = lang.other();
    let here = current.map_or(LOGIN_PATH, Page::path);
    let pages = Page::ALL
        .into_iter()
        .filter(|page| principal.is_some_and(|p| page.visible_to(p)));
    html! {
        (DOCTYPE) "\n"
        html lang=(lang.code()) dir=(lang.dir()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (labels.brand) }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    span class="brand" { (labels.brand) }
                    nav aria-label=(labels.brand) {
                        @for page in pages {
                            a href=(page.path()) id={ "nav-" (page.id()) }
                                aria-current=[(Some(page) == current).then_some("page")] {
                                (page.title(labels))
                            }
                        }
                    }
                    div class="who" {
                        a href={ (here) "?lang=" (other.code()) } lang=(other.code())
                            hreflang=(other.code()) id="switch-language" {
                            (other.labels().language_name)
                        }
                        @if let Some(principal) = principal {
                            span { (labels.signed_in_as) " " strong id="role" { (role_label(lang, principal.role)) } }
                            form method="post" action="/dashboard/logout" {
                                button type="submit" { (labels.sign_out) }
                            }
                        }
                    }
                }
                main id={ "page-" (current.map_or("login", Page::id)) } {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// An HTML response with the dashboard's protective headers (no script may run at all), and
/// the language cookie when the choice is new.
pub fn html_response(status: StatusCode, page: Markup, remember: Option<Lang>) -> Response {
    let mut response = (status, page.into_string()).into_response();
    let headers = response.headers_mut();
    let fixed = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    match remember {
        Some(lang) => (CookieJar::new().add(lang_cookie(lang)), response).into_response(),
        None => response,
    }
}

/// Query parameters every page accepts (plus the audit filters).
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    pub lang: Option<String>,
    pub as_of: Option<String>,
    pub stream: Option<String>,
    pub actor: Option<String>,
    pub event_type: Option<String>,
    pub before: Option<String>,
}

impl PageQuery {
    pub fn as_of(&self) -> Option<&str> {
        self.as_of
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }
}

/// A signed-in visit to a page the principal may read.
pub struct Visit {
    pub principal: Principal,
    pub lang: Lang,
    /// The session's form token, for every form that changes something
    /// ([`adapters::sessions::form_token`]).
    pub form_token: String,
    remember_lang: bool,
    page: Page,
    /// The result of the action that redirected here, shown once.
    result: Option<super::actions::ActionResult>,
}

impl Visit {
    /// Checks the session and the role; the `Err` is the answer to send instead (a redirect
    /// to the login form, or a 403 page).
    pub async fn begin(
        state: &AppState,
        jar: &CookieJar,
        query: &PageQuery,
        page: Page,
    ) -> Result<Visit, Response> {
        let (lang, remember_lang) = language(jar, query.lang.as_deref());
        let remembered = remember_lang.then_some(lang);
        let principal = match session_principal(state, jar).await {
            Ok(principal) => principal,
            Err(ApiError::Unauthorized | ApiError::Unauthenticated(_)) => {
                let next = format!(
                    "{LOGIN_PATH}?next={}",
                    super::format::query_value(page.path())
                );
                return Err(super::session::see_other(
                    &next,
                    remembered.map(lang_cookie),
                ));
            }
            Err(error) => return Err(failure_page(lang, None, error)),
        };
        if principal.role == crate::auth::Role::Partner && page == Page::Overview {
            // A partner's dashboard is its own page.
            return Err(super::session::see_other(
                Page::Partner.path(),
                remembered.map(lang_cookie),
            ));
        }
        if !page.visible_to(&principal) {
            let labels = lang.labels();
            let body = html! {
                p id="forbidden" { (labels.forbidden_detail) " " strong { (page.title(labels)) } }
            };
            let page = layout(lang, Some(&principal), Some(page), labels.forbidden, body);
            return Err(html_response(StatusCode::FORBIDDEN, page, remembered));
        }
        Ok(Visit {
            principal,
            lang,
            form_token: super::session::form_token_of(jar),
            remember_lang,
            page,
            result: super::actions::ActionResult::from_jar(jar),
        })
    }

    /// The page with its body, or the failure page when the body could not be built.
    pub fn finish(self, body: Result<Markup, ApiError>) -> Response {
        let remembered = self.remember_lang.then_some(self.lang);
        match body {
            Ok(body) => {
                let title = self.page.title(self.lang.labels());
                let body = html! {
                    @if let Some(result) = &self.result { (result.banner()) }
                    (body)
                };
                let page = layout(
                    self.lang,
                    Some(&self.principal),
                    Some(self.page),
                    title,
                    body,
                );
                let response = html_response(StatusCode::OK, page, remembered);
                match self.result {
                    // Shown once: the cookie that carried it is expired with this page.
                    Some(_) => (
                        CookieJar::new().add(super::actions::ActionResult::expired_cookie()),
                        response,
                    )
                        .into_response(),
                    None => response,
                }
            }
            Err(error) => failure_page(self.lang, Some(&self.principal), error),
        }
    }
}

/// An error as an HTML page: a bad `as_of` says what is wrong; a server failure says nothing
/// internal (it is logged).
pub fn failure_page(lang: Lang, principal: Option<&Principal>, error: ApiError) -> Response {
    let labels = lang.labels();
    let status = error.status();
    let detail = match &error {
        ApiError::Internal(cause) => {
            tracing::error!(%cause, "dashboard page failed");
            labels.failed_detail.to_owned()
        }
        other => other.to_string(),
    };
    let body = html! { p class="error" id="failure" { (detail) } };
    html_response(
        status,
        layout(lang, principal, None, labels.failed, body),
        None,
    )
}

/// The "as of" banner of a page read at a past moment; nothing for the present.
pub fn as_of_note(lang: Lang, query: &PageQuery) -> Markup {
    html! {
        @if let Some(as_of) = query.as_of() {
            p class="banner ok" id="as-of" { (lang.labels().as_of) " " bdi { (as_of) } }
        }
    }
}
