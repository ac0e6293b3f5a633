//! The dashboard: server-rendered HTML pages over the read models, in English or Arabic.
//!
//! No JavaScript and no build step. Each page reads the typed queries of the read models that
//! the JSON API reads (`projections::crm_board::stage_leads`, `projections::zatca::not_accepted`
//! and the like) and is written by a [maud](https://maud.lambda.xyz) template. Maud rather than
//! askama: a template is a Rust expression over those typed results, so a renamed field fails
//! to compile where it is used, with no template files to keep beside the structs, and every
//! value written into a page is escaped unless it is wrapped in `PreEscaped` (only the
//! constant style sheet is). The responses carry a Content-Security-Policy that allows no
//! script at all, so a lead named `<script>` is text twice over.
//!
//! - [`session`]: signing in and out, one-time login links, the session and language cookies
//!   (axum-extra's cookie jar);
//! - [`layout`]: the pages, who may see each, the document around a page, the failure page;
//! - [`labels`]: every word the dashboard says, in English and Arabic (right to left);
//! - [`desk_labels`]: the finance desk's words (actions, results, charts, the time zone);
//! - [`format`]: money, percentages, times (in Asia/Riyadh, the zone named) and query values;
//! - [`actions`]: the finance desk's forms (approve or reject a commission, create payout
//!   batches, replay a dead letter), each checked for the session's form token (CSRF) and a
//!   role that may change finance, run through the same `app` use case as the JSON API, and
//!   answered with a redirect to the page showing the result;
//! - [`charts`]: MRR and collections per month as inline SVG;
//! - one module per page: [`overview`] (the funnel, revenue and the monthly charts), [`crm`]
//!   (the board), [`commissions`] (balances, payouts, commissions, and the desk's forms),
//!   [`reconciliation`] (mismatches and ZATCA's status), [`audit`] (the trail, filtered),
//!   [`lag`] (projections and process managers), [`dead_letters`] (with replay) and
//!   [`partner`] (a partner token's own statements and commissions).
//!
//! **Signing in.** A page without a valid session redirects to the login form; a page the
//! role may not read answers 403 with an HTML explanation. Each page looks the session up
//! again, with its token, so signing out, a session's end of day, and a revoked or expired
//! token all stop it at once.
//!
//! **Languages.** `?lang=ar` or `?lang=en` switches and is remembered in a cookie; Arabic pages
//! are `<html lang="ar" dir="rtl">` with every heading and label in Arabic. Data (names, ids,
//! event types) is shown as stored.
//!
//! **Numbers.** Money is integer halalas formatted with integer arithmetic
//! ([`domain::money::Halalas::to_display_string`]); percentages come from basis points.

use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;

use crate::AppState;

pub mod actions;
pub mod audit;
pub mod charts;
pub mod commissions;
pub mod crm;
pub mod dead_letters;
pub mod desk_labels;
pub mod format;
pub mod labels;
pub mod lag;
pub mod layout;
pub mod overview;
pub mod partner;
pub mod reconciliation;
pub mod session;

pub use labels::{Labels, Lang, AR, EN};

/// The session cookie: a session id ([`crate::sessions`]), never the token.
pub const SESSION_COOKIE: &str = "revledger_session";
/// The language cookie: `en` or `ar`.
pub const LANG_COOKIE: &str = "revledger_lang";
/// The cookie lives as long as its session: a working day, then the token is asked for again.
pub const SESSION_MAX_AGE_SECS: u64 = crate::sessions::SESSION_LIFETIME.as_secs();
/// The language choice is kept for a year.
pub const LANG_MAX_AGE_SECS: u64 = 365 * 24 * 60 * 60;
/// How long a one-time login link works.
pub const LOGIN_LINK_TTL: Duration = Duration::from_secs(60);
/// Outstanding login links at most (the oldest is dropped beyond it): a bound on memory.
pub const MAX_LOGIN_LINKS: usize = 256;
/// Leads listed per CRM stage; the count above each list is the whole stage.
pub const MAX_LEADS_PER_STAGE: i64 = 100;
/// Commission rows on the commissions page.
pub const MAX_COMMISSION_ROWS: i64 = 200;
/// Audit rows per page (older pages through `before`).
pub const AUDIT_PAGE_ROWS: i64 = 100;
/// Mismatches listed on the reconciliation page.
pub const MAX_MISMATCH_ROWS: usize = 200;
/// ZATCA documents not accepted (pending or rejected) listed on the reconciliation page.
pub const MAX_ZATCA_ROWS: i64 = 200;
/// Dead letters listed on their page (the oldest first; replaying one makes room).
pub const MAX_DEAD_LETTER_ROWS: i64 = 200;
/// Months of a partner's statements listed on its page (the latest first).
pub const MAX_STATEMENT_MONTHS: i64 = 36;
/// Statement lines shown for the chosen month.
pub const MAX_STATEMENT_LINES: i64 = 500;
/// Months in the MRR and collections charts, ending with the current month.
pub const CHART_MONTHS: u32 = 12;

/// The sign-in form (its route is spelled out in [`routes`], where tests/it/openapi.rs reads
/// every route's path literal).
const LOGIN_PATH: &str = "/dashboard/login";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(overview::page))
        .route("/dashboard/", get(overview::page))
        .route("/dashboard/crm", get(crm::page))
        .route("/dashboard/commissions", get(commissions::page))
        .route("/dashboard/reconciliation", get(reconciliation::page))
        .route("/dashboard/audit", get(audit::page))
        .route("/dashboard/lag", get(lag::page))
        .route("/dashboard/dead-letters", get(dead_letters::page))
        .route("/dashboard/partner", get(partner::page))
        .route(
            "/dashboard/commissions/{id}/{decision}",
            post(actions::decide_commission),
        )
        .route("/dashboard/payouts", post(actions::create_payouts))
        .route(
            "/dashboard/dead-letters/{id}/replay",
            post(actions::replay_dead_letter),
        )
        .route(
            "/dashboard/login",
            get(session::login_form).post(session::login),
        )
        .route("/dashboard/login/links", post(session::create_login_link))
        .route("/dashboard/login/link", get(session::redeem_login_link))
        .route("/dashboard/logout", post(session::logout))
}
