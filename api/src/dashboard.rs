//! The dashboard: server-rendered HTML pages over the read models, in English or Arabic.
//!
//! No JavaScript and no build step: each page is a string of HTML with a little inline CSS,
//! built here from the same read models the JSON API serves. Every value that comes from data
//! goes through [`esc`] before it is written into the page, and the responses carry a
//! Content-Security-Policy that allows no script at all, so a lead named `<script>` is text.
//!
//! **Signing in.** `GET /dashboard/login` shows a form for an API token; `POST` checks it with
//! [`crate::auth::principal_of_token`] (the same hashing, roles, expiry and revocation as the
//! API), starts a server-side session ([`crate::sessions`]) and sets an `HttpOnly;
//! SameSite=Strict` cookie scoped to `/dashboard` holding only the session's random id, never
//! the token. Each page looks the session up again, with its token, so signing out, a
//! session's end of day, and a revoked or expired token all stop it at once. A page without a
//! valid session redirects to the login form; a page the role may not read answers 403 with
//! an HTML explanation. For a browser that cannot post a form (a headless test, a link from
//! the CLI), a caller holding a token can ask for a one-time login link
//! (`POST /dashboard/login/links`): it is valid for [`LOGIN_LINK_TTL`], works once, and never
//! puts the token itself in a URL; redeeming it starts a session as signing in does.
//!
//! **Languages.** `?lang=ar` or `?lang=en` switches and is remembered in a cookie; Arabic pages
//! are `<html lang="ar" dir="rtl">` with every heading and label in Arabic ([`Labels`]). Data
//! (names, ids, event types) is shown as stored.
//!
//! **Numbers.** Money is integer halalas formatted with integer arithmetic
//! ([`domain::money::Halalas::to_display_string`]); percentages come from basis points.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use adapters::webhooks::Secret;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use domain::lead::LeadStage;
use domain::money::Halalas;
use projections::audit_log::{self, AuditQuery};
use projections::funnel::FUNNEL;
use projections::{crm_board, statements};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{authenticate, bearer, principal_of_token, Area, Principal};
use crate::finance::read_db;
use crate::{sessions, ApiError, AppState};

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
/// The longest filter value accepted (longer ones are cut): ids are far shorter.
const MAX_FILTER_CHARS: usize = 200;

pub fn routes() -> axum::Router<AppState> {
    Router::new()
        .route("/dashboard", get(overview))
        .route("/dashboard/", get(overview))
        .route("/dashboard/crm", get(crm))
        .route("/dashboard/commissions", get(commissions))
        .route("/dashboard/reconciliation", get(reconciliation))
        .route("/dashboard/audit", get(audit))
        .route("/dashboard/lag", get(lag))
        .route("/dashboard/login", get(login_form).post(login))
        .route("/dashboard/login/links", post(create_login_link))
        .route("/dashboard/login/link", get(redeem_login_link))
        .route("/dashboard/logout", post(logout))
}

// ---------------------------------------------------------------------------------------------
// Languages

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    En,
    Ar,
}

impl Lang {
    fn parse(text: &str) -> Option<Lang> {
        match text {
            "en" => Some(Lang::En),
            "ar" => Some(Lang::Ar),
            _ => None,
        }
    }

    fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ar => "ar",
        }
    }

    fn dir(self) -> &'static str {
        match self {
            Lang::En => "ltr",
            Lang::Ar => "rtl",
        }
    }

    fn other(self) -> Lang {
        match self {
            Lang::En => Lang::Ar,
            Lang::Ar => Lang::En,
        }
    }

    fn labels(self) -> &'static Labels {
        match self {
            Lang::En => &EN,
            Lang::Ar => &AR,
        }
    }
}

/// Every heading and label of the dashboard, in one language.
pub struct Labels {
    pub language_name: &'static str,
    pub brand: &'static str,
    pub overview: &'static str,
    pub crm: &'static str,
    pub commissions: &'static str,
    pub reconciliation: &'static str,
    pub audit: &'static str,
    pub lag: &'static str,
    pub signed_in_as: &'static str,
    pub sign_out: &'static str,
    pub sign_in: &'static str,
    pub token: &'static str,
    pub token_hint: &'static str,
    pub token_invalid: &'static str,
    pub link_invalid: &'static str,
    pub forbidden: &'static str,
    pub forbidden_detail: &'static str,
    pub failed: &'static str,
    pub failed_detail: &'static str,
    pub as_of: &'static str,
    pub funnel: &'static str,
    pub funnel_chart: &'static str,
    pub stage: &'static str,
    pub leads_now: &'static str,
    pub reached: &'static str,
    pub conversion: &'static str,
    pub total_leads: &'static str,
    pub lead_to_active: &'static str,
    pub revenue: &'static str,
    pub mrr: &'static str,
    pub arpu: &'static str,
    pub paying_customers: &'static str,
    pub plan: &'static str,
    pub customers: &'static str,
    pub follow_ups_due: &'static str,
    pub due: &'static str,
    pub name: &'static str,
    pub company: &'static str,
    pub owner: &'static str,
    pub source: &'static str,
    pub partner: &'static str,
    pub last_contact: &'static str,
    pub next_follow_up: &'static str,
    pub reason: &'static str,
    pub showing_first: &'static str,
    pub none: &'static str,
    pub balances: &'static str,
    pub balance: &'static str,
    pub statement_lines: &'static str,
    pub commission: &'static str,
    pub commission_list: &'static str,
    pub invoice: &'static str,
    pub lead: &'static str,
    pub status: &'static str,
    pub accrued: &'static str,
    pub net: &'static str,
    pub held_until: &'static str,
    pub payouts: &'static str,
    pub payout: &'static str,
    pub amount: &'static str,
    pub count: &'static str,
    pub reconciled: &'static str,
    pub mismatches: &'static str,
    pub checked: &'static str,
    pub invoices: &'static str,
    pub payments: &'static str,
    pub kind: &'static str,
    pub streams: &'static str,
    pub detail: &'static str,
    pub expected: &'static str,
    pub actual: &'static str,
    pub filters: &'static str,
    pub stream: &'static str,
    pub actor: &'static str,
    pub event_type: &'static str,
    pub any: &'static str,
    pub apply: &'static str,
    pub clear: &'static str,
    pub sequence: &'static str,
    pub recorded_at: &'static str,
    pub request: &'static str,
    pub older: &'static str,
    pub events: &'static str,
    pub running_hash: &'static str,
    pub projection: &'static str,
    pub process_managers: &'static str,
    pub checkpoint: &'static str,
    pub events_applied: &'static str,
    pub log_head: &'static str,
    pub events_behind: &'static str,
    pub seconds_behind: &'static str,
    pub caught_up: &'static str,
    pub behind: &'static str,
    pub updated_at: &'static str,
    pub currency: &'static str,
    pub zatca: &'static str,
    pub zatca_not_accepted: &'static str,
    pub document: &'static str,
    pub icv: &'static str,
    pub flow: &'static str,
    pub attempts: &'static str,
    pub next_attempt: &'static str,
    pub last_reason: &'static str,
    pub zatca_messages: &'static str,
    pub documents: &'static str,
}

pub const EN: Labels = Labels {
    language_name: "English",
    brand: "revledger",
    overview: "Overview",
    crm: "CRM board",
    commissions: "Commissions & payouts",
    reconciliation: "Reconciliation",
    audit: "Audit trail",
    lag: "Projection lag",
    signed_in_as: "Signed in as",
    sign_out: "Sign out",
    sign_in: "Sign in",
    token: "API token",
    token_hint: "Paste a token from `revledger token create` (or the bootstrap admin token).",
    token_invalid: "That token is not valid.",
    link_invalid: "That sign-in link has expired or was already used.",
    forbidden: "Not allowed",
    forbidden_detail: "Your role cannot see this page:",
    failed: "Something went wrong",
    failed_detail: "The page could not be built; the cause is in the server log.",
    as_of: "As of",
    funnel: "Sales funnel",
    funnel_chart: "Leads in each stage now",
    stage: "Stage",
    leads_now: "Leads now",
    reached: "Reached",
    conversion: "Conversion from previous stage",
    total_leads: "Total leads",
    lead_to_active: "Lead to active customer",
    revenue: "Revenue",
    mrr: "Monthly recurring revenue",
    arpu: "Average revenue per paying customer",
    paying_customers: "Paying customers",
    plan: "Plan",
    customers: "Customers",
    follow_ups_due: "Follow-ups due",
    due: "Due",
    name: "Name",
    company: "Company",
    owner: "Owner",
    source: "Source",
    partner: "Partner",
    last_contact: "Last contact",
    next_follow_up: "Next follow-up",
    reason: "Reason",
    showing_first: "Showing the first",
    none: "None",
    balances: "Partner balances",
    balance: "Balance",
    statement_lines: "Statement lines",
    commission: "Commission",
    commission_list: "Commissions",
    invoice: "Invoice",
    lead: "Lead",
    status: "Status",
    accrued: "Accrued",
    net: "Net",
    held_until: "Held until",
    payouts: "Payouts",
    payout: "Payout",
    amount: "Amount",
    count: "Count",
    reconciled: "Reconciled: payments, invoices and commissions agree.",
    mismatches: "Mismatches",
    checked: "Checked",
    invoices: "Invoices",
    payments: "Payments",
    kind: "Kind",
    streams: "Streams",
    detail: "Detail",
    expected: "Expected",
    actual: "Actual",
    filters: "Filters",
    stream: "Stream or stream type",
    actor: "Actor",
    event_type: "Event type",
    any: "Any",
    apply: "Apply",
    clear: "Clear",
    sequence: "#",
    recorded_at: "Recorded at",
    request: "Request or delivery",
    older: "Older events",
    events: "Events",
    running_hash: "Running hash",
    projection: "Projection",
    process_managers: "Process managers",
    checkpoint: "Checkpoint",
    events_applied: "Events applied",
    log_head: "Log head",
    events_behind: "Events behind",
    seconds_behind: "Seconds behind",
    caught_up: "Caught up",
    behind: "Behind",
    updated_at: "Updated at",
    currency: "SAR",
    zatca: "ZATCA e-invoicing",
    zatca_not_accepted: "Documents not accepted yet",
    document: "Document",
    icv: "ICV",
    flow: "Flow",
    attempts: "Attempts",
    next_attempt: "Next attempt",
    last_reason: "Last reason",
    zatca_messages: "ZATCA's messages",
    documents: "Documents",
};

pub const AR: Labels = Labels {
    language_name: "العربية",
    brand: "دفتر الإيرادات",
    overview: "نظرة عامة",
    crm: "لوحة العملاء",
    commissions: "العمولات والمدفوعات",
    reconciliation: "المطابقة",
    audit: "سجل التدقيق",
    lag: "تأخر الإسقاطات",
    signed_in_as: "مسجّل الدخول بصفة",
    sign_out: "تسجيل الخروج",
    sign_in: "تسجيل الدخول",
    token: "رمز الوصول",
    token_hint: "الصق رمزًا من الأمر revledger token create (أو رمز المسؤول الأولي).",
    token_invalid: "هذا الرمز غير صالح.",
    link_invalid: "انتهت صلاحية رابط الدخول أو سبق استخدامه.",
    forbidden: "غير مسموح",
    forbidden_detail: "لا يسمح دورك بعرض هذه الصفحة:",
    failed: "حدث خطأ",
    failed_detail: "تعذّر إنشاء الصفحة؛ السبب مسجّل في سجل الخادم.",
    as_of: "كما في",
    funnel: "مسار المبيعات",
    funnel_chart: "العملاء المحتملون في كل مرحلة الآن",
    stage: "المرحلة",
    leads_now: "العملاء المحتملون الآن",
    reached: "بلغوا المرحلة",
    conversion: "التحويل من المرحلة السابقة",
    total_leads: "إجمالي العملاء المحتملين",
    lead_to_active: "من عميل محتمل إلى عميل نشط",
    revenue: "الإيرادات",
    mrr: "الإيراد الشهري المتكرر",
    arpu: "متوسط الإيراد لكل عميل دافع",
    paying_customers: "العملاء الدافعون",
    plan: "الخطة",
    customers: "العملاء",
    follow_ups_due: "متابعات مستحقة",
    due: "مستحقة",
    name: "الاسم",
    company: "الشركة",
    owner: "المسؤول",
    source: "المصدر",
    partner: "الشريك",
    last_contact: "آخر تواصل",
    next_follow_up: "المتابعة التالية",
    reason: "السبب",
    showing_first: "يُعرض أول",
    none: "لا يوجد",
    balances: "أرصدة الشركاء",
    balance: "الرصيد",
    statement_lines: "بنود الكشف",
    commission: "العمولة",
    commission_list: "العمولات",
    invoice: "الفاتورة",
    lead: "العميل المحتمل",
    status: "الحالة",
    accrued: "المستحق",
    net: "الصافي",
    held_until: "محتجزة حتى",
    payouts: "دفعات الصرف",
    payout: "دفعة الصرف",
    amount: "المبلغ",
    count: "العدد",
    reconciled: "مطابق: المدفوعات والفواتير والعمولات متفقة.",
    mismatches: "حالات عدم التطابق",
    checked: "تم فحص",
    invoices: "الفواتير",
    payments: "المدفوعات",
    kind: "النوع",
    streams: "السجلات",
    detail: "التفاصيل",
    expected: "المتوقع",
    actual: "الفعلي",
    filters: "التصفية",
    stream: "السجل أو نوعه",
    actor: "المنفّذ",
    event_type: "نوع الحدث",
    any: "الكل",
    apply: "تطبيق",
    clear: "مسح",
    sequence: "#",
    recorded_at: "وقت التسجيل",
    request: "الطلب أو التسليم",
    older: "أحداث أقدم",
    events: "الأحداث",
    running_hash: "البصمة التراكمية",
    projection: "الإسقاط",
    process_managers: "مديرو العمليات",
    checkpoint: "نقطة التحقق",
    events_applied: "الأحداث المطبّقة",
    log_head: "رأس السجل",
    events_behind: "أحداث متأخرة",
    seconds_behind: "ثوانٍ متأخرة",
    caught_up: "محدّث",
    behind: "متأخر",
    updated_at: "آخر تحديث",
    currency: "ر.س",
    zatca: "الفوترة الإلكترونية لدى هيئة الزكاة والضريبة والجمارك",
    zatca_not_accepted: "مستندات لم تُقبل بعد",
    document: "المستند",
    icv: "عدّاد الفاتورة",
    flow: "المسار",
    attempts: "المحاولات",
    next_attempt: "المحاولة التالية",
    last_reason: "آخر سبب",
    zatca_messages: "رسائل الهيئة",
    documents: "المستندات",
};

fn stage_label(lang: Lang, stage: &str) -> &str {
    let (en, ar) = match stage {
        "new" => ("New", "جديد"),
        "qualified" => ("Qualified", "مؤهَّل"),
        "demo_booked" => ("Demo booked", "عرض توضيحي محجوز"),
        "proposal" => ("Proposal", "عرض سعر"),
        "paid" => ("Paid", "مدفوع"),
        "onboarding" => ("Onboarding", "قيد التهيئة"),
        "active" => ("Active", "نشط"),
        "archived" => ("Archived", "مؤرشف"),
        other => return other,
    };
    match lang {
        Lang::En => en,
        Lang::Ar => ar,
    }
}

fn status_label(lang: Lang, status: &str) -> &str {
    let (en, ar) = match status {
        "held" => ("Held", "محتجزة"),
        "approved" => ("Approved", "معتمدة"),
        "rejected" => ("Rejected", "مرفوضة"),
        "paid_out" => ("Paid out", "مصروفة"),
        other => return other,
    };
    match lang {
        Lang::En => en,
        Lang::Ar => ar,
    }
}

/// Where a ZATCA document stands, in words.
fn zatca_status_label(lang: Lang, status: &str) -> &str {
    let (en, ar) = match status {
        "pending" => ("Pending", "قيد الانتظار"),
        "cleared" => ("Cleared", "معتمدة"),
        "reported" => ("Reported", "مُبلَّغ عنها"),
        "rejected" => ("Rejected", "مرفوضة"),
        other => return other,
    };
    match lang {
        Lang::En => en,
        Lang::Ar => ar,
    }
}

/// A ZATCA flow in words: clearance (standard documents) or reporting (simplified ones).
fn flow_label(lang: Lang, flow: &str) -> &str {
    let (en, ar) = match flow {
        "clearance" => ("Clearance", "الاعتماد"),
        "reporting" => ("Reporting", "الإبلاغ"),
        other => return other,
    };
    match lang {
        Lang::En => en,
        Lang::Ar => ar,
    }
}

fn role_label(lang: Lang, role: crate::auth::Role) -> &'static str {
    use crate::auth::Role;
    match (lang, role) {
        (Lang::En, role) => role.as_str(),
        (Lang::Ar, Role::Admin) => "مسؤول",
        (Lang::Ar, Role::Sales) => "مبيعات",
        (Lang::Ar, Role::Finance) => "مالية",
        (Lang::Ar, Role::Auditor) => "مدقق",
        (Lang::Ar, Role::Partner) => "شريك",
    }
}

// ---------------------------------------------------------------------------------------------
// Formatting: escaping, money, percentages, times

/// `text` made safe to place in HTML text or in a quoted attribute.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` percent-encoded for a URL query value (everything but unreserved characters).
fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// An amount for people: `3,448.85 SAR` (or `ر.س`), from integer halalas.
fn money(lang: Lang, halalas: i64) -> String {
    let display = Halalas(halalas).to_display_string();
    let amount = display.strip_suffix(" SAR").unwrap_or(&display);
    format!("{amount} {}", lang.labels().currency)
}

/// A money table cell, with the exact halalas for machines.
fn money_cell(lang: Lang, halalas: i64) -> String {
    format!(
        r#"<td class="num" data-halalas="{halalas}"><bdi>{}</bdi></td>"#,
        esc(&money(lang, halalas))
    )
}

/// Basis points as a percentage with two decimals: 1234 -> `12.34%`.
fn percent(bps: i64) -> String {
    let sign = if bps < 0 { "-" } else { "" };
    let bps = bps.unsigned_abs();
    format!("{sign}{}.{:02}%", bps / 100, bps % 100)
}

fn ratio_bps(part: i64, whole: i64) -> i64 {
    if whole <= 0 {
        0
    } else {
        part.saturating_mul(10_000) / whole
    }
}

/// Unix microseconds as `2026-08-01 08:00 UTC`.
fn when(us: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    adapters::clock::from_unix_micros(us)
        .and_then(|at| at.format(&format).ok())
        .unwrap_or_else(|| us.to_string())
}

fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

fn i64_of(value: &Value, key: &str) -> i64 {
    value.get(key).and_then(Value::as_i64).unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Sessions and languages

fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    cookies(headers)
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The page's language: the query's `lang`, else the cookie's, else English; and whether the
/// choice is new (so the cookie is set).
fn language(headers: &HeaderMap, asked: Option<&str>) -> (Lang, bool) {
    let remembered = cookie(headers, LANG_COOKIE).and_then(Lang::parse);
    match asked.and_then(Lang::parse) {
        Some(lang) => (lang, remembered != Some(lang)),
        None => (remembered.unwrap_or(Lang::En), false),
    }
}

fn lang_cookie(lang: Lang) -> String {
    format!(
        "{LANG_COOKIE}={}; Path=/dashboard; SameSite=Strict; Max-Age={LANG_MAX_AGE_SECS}",
        lang.code()
    )
}

/// `Secure` when the request reached us over HTTPS (behind a proxy that says so).
fn secure_attribute(headers: &HeaderMap) -> &'static str {
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    if https {
        "; Secure"
    } else {
        ""
    }
}

fn session_cookie(session_id: &Secret, headers: &HeaderMap) -> String {
    format!(
        "{SESSION_COOKIE}={}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age={SESSION_MAX_AGE_SECS}{}",
        session_id.expose(),
        secure_attribute(headers)
    )
}

/// Signs `token` in: its principal and a new session's cookie, or why not.
async fn start_session(
    state: &AppState,
    token: &str,
    headers: &HeaderMap,
) -> Result<String, ApiError> {
    let principal = principal_of_token(state, token).await?;
    let session_id = sessions::start(state, &principal, adapters::clock::now_micros()).await?;
    Ok(session_cookie(&session_id, headers))
}

/// The principal of the request's session cookie.
async fn session_principal(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let session_id = cookie(headers, SESSION_COOKIE)
        .filter(|value| !value.is_empty())
        .ok_or(ApiError::Unauthorized)?;
    sessions::principal(state, session_id, adapters::clock::now_micros()).await
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

fn see_other(location: &str, cookies: &[String]) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// An HTML response with the dashboard's protective headers.
fn html_response(status: StatusCode, body: String, lang_cookie_to_set: Option<Lang>) -> Response {
    let mut response = (status, body).into_response();
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
    if let Some(lang) = lang_cookie_to_set {
        if let Ok(value) = HeaderValue::from_str(&lang_cookie(lang)) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}

// ---------------------------------------------------------------------------------------------
// Pages and layout

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Page {
    Overview,
    Crm,
    Commissions,
    Reconciliation,
    Audit,
    Lag,
}

impl Page {
    const ALL: [Page; 6] = [
        Page::Overview,
        Page::Crm,
        Page::Commissions,
        Page::Reconciliation,
        Page::Audit,
        Page::Lag,
    ];

    fn path(self) -> &'static str {
        match self {
            Page::Overview => "/dashboard",
            Page::Crm => "/dashboard/crm",
            Page::Commissions => "/dashboard/commissions",
            Page::Reconciliation => "/dashboard/reconciliation",
            Page::Audit => "/dashboard/audit",
            Page::Lag => "/dashboard/lag",
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
        }
    }

    /// What the page shows, for the role check. Lag is operational: any staff role sees it.
    fn area(self) -> Area {
        match self {
            Page::Overview | Page::Crm | Page::Lag => Area::Sales,
            Page::Commissions | Page::Reconciliation => Area::Finance,
            Page::Audit => Area::Audit,
        }
    }

    fn title(self, labels: &Labels) -> &'static str {
        match self {
            Page::Overview => labels.overview,
            Page::Crm => labels.crm,
            Page::Commissions => labels.commissions,
            Page::Reconciliation => labels.reconciliation,
            Page::Audit => labels.audit,
            Page::Lag => labels.lag,
        }
    }
}

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

/// The whole document around a page's body.
fn layout(
    lang: Lang,
    principal: Option<&Principal>,
    current: Option<Page>,
    title: &str,
    body: &str,
) -> String {
    let labels = lang.labels();
    let mut html = String::with_capacity(body.len() + 4096);
    let _ = write!(
        html,
        r#"<!DOCTYPE html>
<html lang="{code}" dir="{dir}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · {brand}</title>
<style>{CSS}</style>
</head>
<body>
<header>
<span class="brand">{brand}</span>
<nav aria-label="{brand}">"#,
        code = lang.code(),
        dir = lang.dir(),
        title = esc(title),
        brand = esc(labels.brand),
    );
    if let Some(principal) = principal {
        for page in Page::ALL
            .into_iter()
            .filter(|page| principal.can_read(page.area()))
        {
            let current_attribute = if Some(page) == current {
                r#" aria-current="page""#
            } else {
                ""
            };
            let _ = write!(
                html,
                r#"<a href="{}" id="nav-{}"{current_attribute}>{}</a>"#,
                page.path(),
                page.id(),
                esc(page.title(labels))
            );
        }
    }
    html.push_str("</nav>\n<div class=\"who\">");
    let here = current.map_or("/dashboard/login", Page::path);
    let other = lang.other();
    let _ = write!(
        html,
        r#"<a href="{here}?lang={code}" lang="{code}" hreflang="{code}" id="switch-language">{name}</a>"#,
        code = other.code(),
        name = esc(other.labels().language_name)
    );
    if let Some(principal) = principal {
        let _ = write!(
            html,
            r#"<span>{} <strong id="role">{}</strong></span><form method="post" action="/dashboard/logout"><button type="submit">{}</button></form>"#,
            esc(labels.signed_in_as),
            esc(role_label(lang, principal.role)),
            esc(labels.sign_out)
        );
    }
    let _ = write!(
        html,
        "</div>\n</header>\n<main id=\"page-{}\">\n<h1>{}</h1>\n{body}\n</main>\n</body>\n</html>\n",
        current.map_or("login", Page::id),
        esc(title)
    );
    html
}

/// Query parameters every page accepts (plus the audit filters).
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    lang: Option<String>,
    as_of: Option<String>,
    stream: Option<String>,
    actor: Option<String>,
    event_type: Option<String>,
    before: Option<String>,
}

impl PageQuery {
    fn as_of(&self) -> Option<&str> {
        self.as_of
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }
}

/// A signed-in visit to a page the principal may read.
struct Visit {
    principal: Principal,
    lang: Lang,
    remember_lang: bool,
    page: Page,
}

impl Visit {
    /// Checks the session and the role; the `Err` is the answer to send instead (a redirect
    /// to the login form, or a 403 page).
    async fn begin(
        state: &AppState,
        headers: &HeaderMap,
        query: &PageQuery,
        page: Page,
    ) -> Result<Visit, Response> {
        let (lang, remember_lang) = language(headers, query.lang.as_deref());
        let remembered = remember_lang.then_some(lang);
        let principal = match session_principal(state, headers).await {
            Ok(principal) => principal,
            Err(ApiError::Unauthorized | ApiError::Unauthenticated(_)) => {
                let next = format!("/dashboard/login?next={}", url_encode(page.path()));
                let cookies: Vec<String> = remembered.map(lang_cookie).into_iter().collect();
                return Err(see_other(&next, &cookies));
            }
            Err(error) => return Err(failure_page(lang, None, error)),
        };
        if !principal.can_read(page.area()) {
            let labels = lang.labels();
            let body = format!(
                r#"<p id="forbidden">{} <strong>{}</strong></p>"#,
                esc(labels.forbidden_detail),
                esc(page.title(labels))
            );
            let html = layout(lang, Some(&principal), Some(page), labels.forbidden, &body);
            return Err(html_response(StatusCode::FORBIDDEN, html, remembered));
        }
        Ok(Visit {
            principal,
            lang,
            remember_lang,
            page,
        })
    }

    /// The page with its body, or the failure page when the body could not be built.
    fn finish(self, body: Result<String, ApiError>) -> Response {
        let remembered = self.remember_lang.then_some(self.lang);
        match body {
            Ok(body) => {
                let title = self.page.title(self.lang.labels());
                let html = layout(
                    self.lang,
                    Some(&self.principal),
                    Some(self.page),
                    title,
                    &body,
                );
                html_response(StatusCode::OK, html, remembered)
            }
            Err(error) => failure_page(self.lang, Some(&self.principal), error),
        }
    }
}

/// An error as an HTML page: a bad `as_of` says what is wrong; a server failure says nothing
/// internal (it is logged).
fn failure_page(lang: Lang, principal: Option<&Principal>, error: ApiError) -> Response {
    let labels = lang.labels();
    let status = error.status();
    let detail = match &error {
        ApiError::Internal(cause) => {
            tracing::error!(%cause, "dashboard page failed");
            labels.failed_detail.to_owned()
        }
        other => other.to_string(),
    };
    let body = format!(r#"<p class="error" id="failure">{}</p>"#, esc(&detail));
    html_response(
        status,
        layout(lang, principal, None, labels.failed, &body),
        None,
    )
}

fn as_of_note(lang: Lang, query: &PageQuery) -> String {
    match query.as_of() {
        Some(as_of) => format!(
            r#"<p class="banner ok" id="as-of">{} <bdi>{}</bdi></p>"#,
            esc(lang.labels().as_of),
            esc(as_of)
        ),
        None => String::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Sign in and out

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
    let mut body = String::new();
    if let Some(error) = error {
        let _ = write!(
            body,
            r#"<p class="error" id="login-error">{}</p>"#,
            esc(error)
        );
    }
    let _ = write!(
        body,
        r#"<form class="login" method="post" action="/dashboard/login">
<input type="hidden" name="next" value="{next}">
<label>{token}<input type="password" name="token" id="token" autocomplete="current-password" required></label>
<p class="muted">{hint}</p>
<button class="primary" type="submit">{sign_in}</button>
</form>"#,
        next = esc(next),
        token = esc(labels.token),
        hint = esc(labels.token_hint),
        sign_in = esc(labels.sign_in),
    );
    let html = layout(lang, None, None, labels.sign_in, &body);
    html_response(status, html, remember.then_some(lang))
}

/// `GET /dashboard/login`: the sign-in form.
async fn login_form(headers: HeaderMap, Query(query): Query<LoginQuery>) -> Response {
    let (lang, remember) = language(&headers, query.lang.as_deref());
    login_page(
        lang,
        &safe_next(query.next.as_deref()),
        None,
        StatusCode::OK,
        remember,
    )
}

/// `POST /dashboard/login` (form: `token`, `next`): checks the token and sets the session.
async fn login(
    State(state): State<AppState>,
    client: Option<axum::Extension<crate::connections::ClientAddress>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (lang, _) = language(&headers, None);
    if crate::signin::is_cross_site(&headers) {
        return ApiError::Forbidden(
            "a sign-in must be posted from this dashboard's own page".into(),
        )
        .into_response();
    }
    if let Some(axum::Extension(crate::connections::ClientAddress(client))) = client {
        if let Err(retry_after_secs) = state.sign_in.attempt(client, std::time::Instant::now()) {
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
    let form = std::str::from_utf8(&body)
        .ok()
        .and_then(|text| format!("/?{}", text.trim()).parse::<Uri>().ok())
        .and_then(|uri| Query::<LoginForm>::try_from_uri(&uri).ok())
        .map(|Query(form)| form)
        .unwrap_or_default();
    let next = safe_next(form.next.as_deref());
    let token = form.token.as_deref().map(str::trim).unwrap_or("");
    if token.is_empty() {
        return login_page(
            lang,
            &next,
            Some(lang.labels().token_invalid),
            StatusCode::UNAUTHORIZED,
            false,
        );
    }
    match start_session(&state, token, &headers).await {
        Ok(session) => see_other(&next, &[session]),
        Err(ApiError::Unauthorized | ApiError::Unauthenticated(_)) => login_page(
            lang,
            &next,
            Some(lang.labels().token_invalid),
            StatusCode::UNAUTHORIZED,
            false,
        ),
        Err(error) => failure_page(lang, None, error),
    }
}

/// `POST /dashboard/logout`: ends the session on the server and expires the cookie.
async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(session_id) = cookie(&headers, SESSION_COOKIE).filter(|v| !v.is_empty()) {
        if let Err(error) = app::sessions::end(&state.store.sql(), session_id).await {
            // The cookie is expired below either way; the row would end at its expiry.
            let (lang, _) = language(&headers, None);
            return failure_page(lang, None, error.into());
        }
    }
    let expired =
        format!("{SESSION_COOKIE}=; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=0");
    see_other("/dashboard/login", &[expired])
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

/// `POST /dashboard/login/links?next=…&lang=…` (bearer token): a one-time sign-in link for a
/// browser that cannot post the form. Answers `{"url", "expires_in_secs"}`.
async fn create_login_link(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Result<Json<Value>, ApiError> {
    authenticate(&state, &headers).await?;
    let token = Secret::new(bearer(&headers).ok_or(ApiError::Unauthorized)?);
    // 244 random bits from the operating system (two v4 uuids), as API tokens are made.
    let code = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    remember_link(code.clone(), token);
    let next = safe_next(query.next.as_deref());
    let mut url = format!(
        "/dashboard/login/link?code={code}&next={}",
        url_encode(&next)
    );
    if let Some(lang) = query.lang.as_deref().and_then(Lang::parse) {
        let _ = write!(url, "&lang={}", lang.code());
    }
    Ok(Json(
        json!({"url": url, "expires_in_secs": LOGIN_LINK_TTL.as_secs()}),
    ))
}

/// `GET /dashboard/login/link?code=…`: redeems a one-time link into a session.
async fn redeem_login_link(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Response {
    let (lang, remember) = language(&headers, query.lang.as_deref());
    let next = safe_next(query.next.as_deref());
    let session = match query.code.as_deref().and_then(take_link) {
        Some(token) => start_session(&state, token.expose(), &headers).await,
        None => Err(ApiError::Unauthorized),
    };
    match session {
        Ok(session) => {
            let mut cookies = vec![session];
            if remember {
                cookies.push(lang_cookie(lang));
            }
            see_other(&next, &cookies)
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

// ---------------------------------------------------------------------------------------------
// Overview: the funnel and revenue

async fn overview(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<PageQuery>,
) -> Response {
    let visit = match Visit::begin(&state, &headers, &query, Page::Overview).await {
        Ok(visit) => visit,
        Err(answer) => return answer,
    };
    let body = overview_body(&state, &visit, &query).await;
    visit.finish(body)
}

async fn overview_body(
    state: &AppState,
    visit: &Visit,
    query: &PageQuery,
) -> Result<String, ApiError> {
    let lang = visit.lang;
    let labels = lang.labels();
    let db = read_db(state, "funnel", query.as_of()).await?;
    let funnel = projections::read_model("funnel")?.render(&db).await?;
    let mut html = as_of_note(lang, query);
    // Leads in each stage now, and how many ever reached it (from the conversion steps).
    let stages: Vec<(String, i64)> = funnel["stages"]
        .as_array()
        .map(|stages| {
            stages
                .iter()
                .map(|s| (str_of(s, "stage").to_owned(), i64_of(s, "leads")))
                .collect()
        })
        .unwrap_or_default();
    let conversion = funnel["conversion"].as_array().cloned().unwrap_or_default();
    let mut reached = vec![conversion
        .first()
        .map_or(i64_of(&funnel, "leads"), |c| i64_of(c, "reached_from"))];
    reached.extend(conversion.iter().map(|c| i64_of(c, "reached_to")));
    let total = i64_of(&funnel, "leads");
    let _ = write!(
        html,
        r#"<div class="cards"><div class="card"><div class="label">{}</div><div class="value" id="total-leads">{total}</div></div>
<div class="card"><div class="label">{}</div><div class="value" id="lead-to-active">{}</div></div></div>"#,
        esc(labels.total_leads),
        esc(labels.lead_to_active),
        percent(ratio_bps(
            reached.get(6).copied().unwrap_or(0),
            reached.first().copied().unwrap_or(0)
        )),
    );
    let _ = write!(html, "<h2>{}</h2>", esc(labels.funnel));
    html.push_str(&funnel_chart(lang, &stages));
    let _ = write!(
        html,
        r#"<table id="funnel"><thead><tr><th>{}</th><th class="num">{}</th><th class="num">{}</th><th class="num">{}</th></tr></thead><tbody>"#,
        esc(labels.stage),
        esc(labels.leads_now),
        esc(labels.reached),
        esc(labels.conversion)
    );
    for (stage, leads) in &stages {
        let position = FUNNEL.iter().position(|s| s.as_str() == stage);
        let reached_cell = position.and_then(|p| reached.get(p)).map_or_else(
            || "<td class=\"num\">—</td>".to_owned(),
            |n| {
                format!(
                    r#"<td class="num reached" data-stage="{}">{n}</td>"#,
                    esc(stage)
                )
            },
        );
        let conversion_cell = match position {
            Some(p) if p > 0 => {
                let step = &conversion[p - 1];
                let bps = i64_of(step, "rate_bps");
                format!(
                    r#"<td class="num conversion" data-stage="{}" data-bps="{bps}">{}</td>"#,
                    esc(stage),
                    percent(bps)
                )
            }
            _ => "<td class=\"num\">—</td>".to_owned(),
        };
        let _ = write!(
            html,
            r#"<tr><th scope="row">{}</th><td data-stage="{}" class="count num" id="funnel-count-{}">{leads}</td>{reached_cell}{conversion_cell}</tr>"#,
            esc(stage_label(lang, stage)),
            esc(stage),
            esc(stage),
        );
    }
    html.push_str("</tbody></table>");
    if visit.principal.can_read(Area::Finance) {
        let db = read_db(state, "revenue", query.as_of()).await?;
        let revenue = projections::read_model("revenue")?.render(&db).await?;
        html.push_str(&revenue_section(lang, &revenue));
    }
    Ok(html)
}

/// The funnel as a horizontal bar chart; mirrored for right-to-left pages.
fn funnel_chart(lang: Lang, stages: &[(String, i64)]) -> String {
    const WIDTH: i64 = 700;
    const LABEL: i64 = 170;
    const ROW: i64 = 32;
    const BAR_HEIGHT: i64 = 22;
    const NUMBER_ROOM: i64 = 60;
    let labels = lang.labels();
    let max = stages.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let room = WIDTH - LABEL - NUMBER_ROOM;
    let height = ROW * stages.len() as i64 + 8;
    let rtl = lang == Lang::Ar;
    let mut svg = format!(
        r#"<figure class="chart"><svg id="funnel-chart" direction="ltr" role="img" aria-labelledby="funnel-chart-title" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" xmlns="http://www.w3.org/2000/svg"><title id="funnel-chart-title">{}</title>"#,
        esc(labels.funnel_chart)
    );
    for (row, (stage, leads)) in stages.iter().enumerate() {
        let y = ROW * row as i64 + 4;
        let text_y = y + BAR_HEIGHT / 2 + 5;
        let bar = if *leads == 0 {
            0
        } else {
            (leads * room / max).max(2)
        };
        // The SVG is laid out left to right (its `direction` is fixed below); a right-to-left
        // page gets the mirror image: labels on the right, bars growing leftwards.
        let (label_x, label_anchor, bar_x, number_x, number_anchor) = if rtl {
            (
                WIDTH - 8,
                "end",
                WIDTH - LABEL - bar,
                WIDTH - LABEL - bar - 6,
                "end",
            )
        } else {
            (LABEL - 8, "end", LABEL, LABEL + bar + 6, "start")
        };
        let class = if stage == "archived" {
            "bar archived"
        } else {
            "bar"
        };
        let _ = write!(
            svg,
            r#"<g data-stage="{stage}"><text x="{label_x}" y="{text_y}" text-anchor="{label_anchor}">{label}</text><rect class="{class}" x="{bar_x}" y="{y}" width="{bar}" height="{BAR_HEIGHT}" rx="3"></rect><text class="bar-count" x="{number_x}" y="{text_y}" text-anchor="{number_anchor}">{leads}</text></g>"#,
            stage = esc(stage),
            label = esc(stage_label(lang, stage)),
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

fn revenue_section(lang: Lang, revenue: &Value) -> String {
    let labels = lang.labels();
    let mut html = format!("<h2>{}</h2>", esc(labels.revenue));
    let _ = write!(
        html,
        r#"<div class="cards"><div class="card"><div class="label">{}</div><div class="value" id="mrr" data-halalas="{mrr}"><bdi>{}</bdi></div></div>
<div class="card"><div class="label">{}</div><div class="value" id="arpu" data-halalas="{arpu}"><bdi>{}</bdi></div></div>
<div class="card"><div class="label">{}</div><div class="value" id="paying-customers">{}</div></div></div>"#,
        esc(labels.mrr),
        esc(&money(lang, i64_of(revenue, "mrr_halalas"))),
        esc(labels.arpu),
        esc(&money(lang, i64_of(revenue, "arpu_halalas"))),
        esc(labels.paying_customers),
        i64_of(revenue, "paying_customers"),
        mrr = i64_of(revenue, "mrr_halalas"),
        arpu = i64_of(revenue, "arpu_halalas"),
    );
    let _ = write!(
        html,
        r#"<table id="plan-mix"><thead><tr><th>{}</th><th class="num">{}</th><th class="num">{}</th></tr></thead><tbody>"#,
        esc(labels.plan),
        esc(labels.customers),
        esc(labels.mrr)
    );
    if let Some(plans) = revenue["plan_mix"].as_object() {
        for (plan, figures) in plans {
            let _ = write!(
                html,
                r#"<tr><th scope="row">{}</th><td class="num">{}</td>{}</tr>"#,
                esc(plan),
                i64_of(figures, "customers"),
                money_cell(lang, i64_of(figures, "mrr_halalas"))
            );
        }
    }
    html.push_str("</tbody></table>");
    html
}

// ---------------------------------------------------------------------------------------------
// CRM board

async fn crm(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<PageQuery>,
) -> Response {
    let visit = match Visit::begin(&state, &headers, &query, Page::Crm).await {
        Ok(visit) => visit,
        Err(answer) => return answer,
    };
    let body = crm_body(&state, &visit, &query).await;
    visit.finish(body)
}

async fn crm_body(state: &AppState, visit: &Visit, query: &PageQuery) -> Result<String, ApiError> {
    let lang = visit.lang;
    let labels = lang.labels();
    let db = read_db(state, "crm_board", query.as_of()).await?;
    let now_us = adapters::clock::unix_micros(adapters::clock::now_micros());
    let counts: std::collections::BTreeMap<String, i64> =
        crm_board::stage_counts(&db).await?.into_iter().collect();
    let due_total = crm_board::follow_ups_due_count(&db, now_us).await?;
    let mut html = as_of_note(lang, query);
    let _ = write!(
        html,
        r#"<div class="cards"><div class="card"><div class="label">{}</div><div class="value" id="follow-ups-due">{due_total}</div></div></div>"#,
        esc(labels.follow_ups_due)
    );
    for lead_stage in FUNNEL.iter().chain([LeadStage::Archived].iter()) {
        let stage = lead_stage.as_str();
        let count = counts.get(stage).copied().unwrap_or(0);
        let _ = write!(
            html,
            r#"<section id="stage-{stage}"><h2>{} <span class="muted" data-stage-total="{stage}">({count})</span></h2>"#,
            esc(stage_label(lang, stage)),
        );
        if count == 0 {
            let _ = write!(
                html,
                r#"<p class="muted">{}</p></section>"#,
                esc(labels.none)
            );
            continue;
        }
        let rows = crm_board::stage_leads(&db, *lead_stage, MAX_LEADS_PER_STAGE).await?;
        let archived = stage == LeadStage::Archived.as_str();
        let _ = write!(
            html,
            r#"<table class="board"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>"#,
            esc(labels.name),
            esc(labels.company),
            esc(labels.owner),
            esc(labels.source),
            esc(labels.partner),
            esc(labels.last_contact),
            esc(if archived {
                labels.reason
            } else {
                labels.next_follow_up
            }),
        );
        for row in rows {
            let due_us = row.next_follow_up_due_us;
            let is_due = due_us.is_some_and(|due| due <= now_us);
            let last_cell = if archived {
                esc(row.archived_reason.as_deref().unwrap_or(""))
            } else {
                match due_us {
                    Some(due) if is_due => format!(
                        r#"<span class="badge due">{}</span> {}"#,
                        esc(labels.due),
                        esc(&when(due))
                    ),
                    Some(due) => esc(&when(due)),
                    None => "—".to_owned(),
                }
            };
            let _ = write!(
                html,
                r#"<tr data-lead="{id}"{due_class}><td>{name}</td><td>{company}</td><td>{owner}</td><td>{source}</td><td class="id">{partner}</td><td>{last}</td><td>{last_cell}</td></tr>"#,
                id = esc(&row.lead_id),
                due_class = if is_due { r#" class="due""# } else { "" },
                name = esc(&row.name),
                company = esc(row.company.as_deref().unwrap_or("")),
                owner = esc(row.owner.as_deref().unwrap_or("")),
                source = esc(&row.source),
                partner = esc(row.partner_id.as_deref().unwrap_or("")),
                last = esc(&when(row.last_contact_at_us)),
            );
        }
        html.push_str("</tbody></table>");
        if count > MAX_LEADS_PER_STAGE {
            let _ = write!(
                html,
                r#"<p class="muted">{} {MAX_LEADS_PER_STAGE} / {count}</p>"#,
                esc(labels.showing_first)
            );
        }
        html.push_str("</section>");
    }
    Ok(html)
}

// ---------------------------------------------------------------------------------------------
// Commissions and payouts

async fn commissions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<PageQuery>,
) -> Response {
    let visit = match Visit::begin(&state, &headers, &query, Page::Commissions).await {
        Ok(visit) => visit,
        Err(answer) => return answer,
    };
    let body = commissions_body(&state, &visit, &query).await;
    visit.finish(body)
}

async fn commissions_body(
    state: &AppState,
    visit: &Visit,
    query: &PageQuery,
) -> Result<String, ApiError> {
    let lang = visit.lang;
    let labels = lang.labels();
    let db = read_db(state, "partner_statements", query.as_of()).await?;
    let mut html = as_of_note(lang, query);
    let _ = write!(
        html,
        r#"<h2>{}</h2><table id="balances"><thead><tr><th>{}</th><th class="num">{}</th><th class="num">{}</th></tr></thead><tbody>"#,
        esc(labels.balances),
        esc(labels.partner),
        esc(labels.statement_lines),
        esc(labels.balance)
    );
    let partners = statements::balances(&db).await?;
    if partners.is_empty() {
        let _ = write!(
            html,
            r#"<tr><td colspan="3" class="muted">{}</td></tr>"#,
            esc(labels.none)
        );
    }
    for partner in &partners {
        let _ = write!(
            html,
            r#"<tr data-partner="{id}"><th scope="row" class="id">{id}</th><td class="num">{}</td>{}</tr>"#,
            partner.lines,
            money_cell(lang, partner.balance_halalas),
            id = esc(&partner.partner_id),
        );
    }
    html.push_str("</tbody></table>");
    // Payouts, from the commissions they paid.
    let payouts = statements::payout_totals(&db).await?;
    let _ = write!(
        html,
        r#"<h2>{}</h2><table id="payouts"><thead><tr><th>{}</th><th>{}</th><th class="num">{}</th><th class="num">{}</th></tr></thead><tbody>"#,
        esc(labels.payouts),
        esc(labels.payout),
        esc(labels.partner),
        esc(labels.commission_list),
        esc(labels.amount)
    );
    if payouts.is_empty() {
        let _ = write!(
            html,
            r#"<tr><td colspan="4" class="muted">{}</td></tr>"#,
            esc(labels.none)
        );
    }
    for payout in payouts {
        let _ = write!(
            html,
            r#"<tr><td class="id">{}</td><td class="id">{}</td><td class="num">{}</td>{}</tr>"#,
            esc(&payout.payout_id),
            esc(&payout.partner_id),
            payout.commissions,
            money_cell(lang, payout.net_halalas)
        );
    }
    html.push_str("</tbody></table>");
    let rows = statements::latest_commissions(&db, MAX_COMMISSION_ROWS).await?;
    let _ = write!(
        html,
        r#"<h2>{}</h2><table id="commissions"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th class="num">{}</th><th class="num">{}</th><th>{}</th><th>{}</th></tr></thead><tbody>"#,
        esc(labels.commission_list),
        esc(labels.commission),
        esc(labels.partner),
        esc(labels.invoice),
        esc(labels.lead),
        esc(labels.status),
        esc(labels.accrued),
        esc(labels.net),
        esc(labels.held_until),
        esc(labels.payout),
    );
    if rows.is_empty() {
        let _ = write!(
            html,
            r#"<tr><td colspan="9" class="muted">{}</td></tr>"#,
            esc(labels.none)
        );
    }
    for row in rows {
        let short_id: String = row.commission_id.chars().take(8).collect();
        let _ = write!(
            html,
            r#"<tr data-commission="{id}" data-status="{status}"><td class="id" title="{id}">{short}</td><td class="id">{partner}</td><td class="id">{invoice}</td><td class="id">{lead}</td><td>{status_label}</td>{accrued}{net}<td>{held}</td><td class="id">{payout}</td></tr>"#,
            id = esc(&row.commission_id),
            short = esc(&short_id),
            status = esc(&row.status),
            partner = esc(&row.partner_id),
            invoice = esc(&row.invoice_id),
            lead = esc(&row.lead_id),
            status_label = esc(status_label(lang, &row.status)),
            accrued = money_cell(lang, row.accrued_halalas),
            net = money_cell(lang, row.net_halalas),
            held = esc(&when(row.held_until_us)),
            payout = esc(row.payout_id.as_deref().unwrap_or("")),
        );
    }
    html.push_str("</tbody></table>");
    Ok(html)
}

// ---------------------------------------------------------------------------------------------
// Reconciliation

async fn reconciliation(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<PageQuery>,
) -> Response {
    let visit = match Visit::begin(&state, &headers, &query, Page::Reconciliation).await {
        Ok(visit) => visit,
        Err(answer) => return answer,
    };
    let body = reconciliation_body(&state, &visit, &query).await;
    visit.finish(body)
}

async fn reconciliation_body(
    state: &AppState,
    visit: &Visit,
    query: &PageQuery,
) -> Result<String, ApiError> {
    let lang = visit.lang;
    let labels = lang.labels();
    let db = read_db(state, "reconciliation", query.as_of()).await?;
    let report = projections::read_model("reconciliation")?
        .render(&db)
        .await?;
    let mut html = as_of_note(lang, query);
    let count = i64_of(&report, "mismatch_count");
    if report["reconciled"].as_bool().unwrap_or(false) {
        let _ = write!(
            html,
            r#"<p class="banner ok" id="reconciled" data-mismatches="0">{}</p>"#,
            esc(labels.reconciled)
        );
    } else {
        let _ = write!(
            html,
            r#"<p class="banner bad" id="reconciled" data-mismatches="{count}">{}: {count}</p>"#,
            esc(labels.mismatches)
        );
    }
    let checked = &report["checked"];
    let _ = write!(
        html,
        r#"<div class="cards"><div class="card"><div class="label">{} · {}</div><div class="value">{}</div></div><div class="card"><div class="label">{} · {}</div><div class="value">{}</div></div><div class="card"><div class="label">{} · {}</div><div class="value">{}</div></div></div>"#,
        esc(labels.checked),
        esc(labels.invoices),
        i64_of(checked, "invoices"),
        esc(labels.checked),
        esc(labels.payments),
        i64_of(checked, "payments"),
        esc(labels.checked),
        esc(labels.commission_list),
        i64_of(checked, "commissions"),
    );
    if let Some(by_kind) = report["by_kind"]
        .as_object()
        .filter(|kinds| !kinds.is_empty())
    {
        let _ = write!(
            html,
            r#"<table id="mismatch-kinds"><thead><tr><th>{}</th><th class="num">{}</th></tr></thead><tbody>"#,
            esc(labels.kind),
            esc(labels.count)
        );
        for (kind, n) in by_kind {
            let _ = write!(
                html,
                r#"<tr><td><code>{}</code></td><td class="num">{}</td></tr>"#,
                esc(kind),
                n.as_i64().unwrap_or(0)
            );
        }
        html.push_str("</tbody></table>");
    }
    let mismatches = report["mismatches"].as_array().cloned().unwrap_or_default();
    if !mismatches.is_empty() {
        let _ = write!(
            html,
            r#"<h2>{}</h2><table id="mismatches"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th class="num">{}</th><th class="num">{}</th></tr></thead><tbody>"#,
            esc(labels.mismatches),
            esc(labels.kind),
            esc(labels.streams),
            esc(labels.detail),
            esc(labels.expected),
            esc(labels.actual)
        );
        for mismatch in mismatches.iter().take(MAX_MISMATCH_ROWS) {
            let streams: Vec<String> = mismatch["streams"]
                .as_array()
                .map(|s| s.iter().filter_map(Value::as_str).map(esc).collect())
                .unwrap_or_default();
            let amount = |key: &str| {
                mismatch.get(key).and_then(Value::as_i64).map_or_else(
                    || "<td class=\"num\">—</td>".to_owned(),
                    |h| money_cell(lang, h),
                )
            };
            let _ = write!(
                html,
                r#"<tr data-kind="{kind}"><td><code>{kind}</code></td><td class="id">{}</td><td>{}</td>{}{}</tr>"#,
                streams.join("<br>"),
                esc(str_of(mismatch, "detail")),
                amount("expected_halalas"),
                amount("actual_halalas"),
                kind = esc(str_of(mismatch, "kind")),
            );
        }
        html.push_str("</tbody></table>");
    }
    let db = read_db(state, "zatca", query.as_of()).await?;
    let counts = projections::zatca::status_counts(&db).await?;
    if !counts.is_empty() {
        let documents = projections::zatca::not_accepted(&db, MAX_ZATCA_ROWS).await?;
        html.push_str(&zatca_section(lang, &counts, &documents));
    }
    Ok(html)
}

/// ZATCA Phase 2: documents by status and flow, and those not accepted (still pending, or
/// rejected) with where each stands and what ZATCA said.
fn zatca_section(
    lang: Lang,
    counts: &[projections::zatca::StatusCount],
    documents: &[projections::zatca::ZatcaDocument],
) -> String {
    let labels = lang.labels();
    let mut html = format!(
        r#"<section id="zatca"><h2>{}</h2><table id="zatca-counts"><thead><tr><th>{}</th><th>{}</th><th class="num">{}</th></tr></thead><tbody>"#,
        esc(labels.zatca),
        esc(labels.status),
        esc(labels.flow),
        esc(labels.documents),
    );
    for count in counts {
        let _ = write!(
            html,
            r#"<tr data-status="{status}" data-flow="{flow}"><td>{}</td><td>{}</td><td class="num">{}</td></tr>"#,
            esc(zatca_status_label(lang, &count.status)),
            esc(flow_label(lang, &count.flow)),
            count.documents,
            status = esc(&count.status),
            flow = esc(&count.flow),
        );
    }
    let _ = write!(
        html,
        r#"</tbody></table><h3>{}</h3><table id="zatca-documents"><thead><tr><th>{}</th><th>{}</th><th class="num">{}</th><th>{}</th><th>{}</th><th class="num">{}</th><th>{} / {}</th><th>{}</th></tr></thead><tbody>"#,
        esc(labels.zatca_not_accepted),
        esc(labels.document),
        esc(labels.invoice),
        esc(labels.icv),
        esc(labels.flow),
        esc(labels.status),
        esc(labels.attempts),
        esc(labels.next_attempt),
        esc(labels.last_reason),
        esc(labels.zatca_messages),
    );
    if documents.is_empty() {
        let _ = write!(
            html,
            r#"<tr><td colspan="8" class="muted">{}</td></tr>"#,
            esc(labels.none)
        );
    }
    for document in documents {
        let mut standing = document
            .next_attempt_at_us
            .map(|at| esc(&when(at)))
            .unwrap_or_default();
        if let Some(reason) = &document.last_reason {
            if !standing.is_empty() {
                standing.push_str("<br>");
            }
            standing.push_str(&esc(reason));
        }
        let messages: String = document
            .messages
            .iter()
            .map(|message| {
                format!(
                    r#"<li data-kind="{kind}"><code>{code}</code> <bdi>{text}</bdi></li>"#,
                    kind = esc(&message.kind),
                    code = esc(message.code.as_deref().unwrap_or(&message.kind)),
                    text = esc(&message.message),
                )
            })
            .collect();
        let _ = write!(
            html,
            r#"<tr data-document="{id}" data-status="{status}"><td class="id">{id}</td><td class="id">{invoice}</td><td class="num">{icv}</td><td>{flow}</td><td>{status_label}</td><td class="num">{attempts}</td><td>{standing}</td><td><ul class="messages">{messages}</ul></td></tr>"#,
            id = esc(&document.document_id),
            status = esc(&document.status),
            invoice = esc(&document.invoice_id),
            icv = document.icv,
            flow = esc(flow_label(lang, &document.flow)),
            status_label = esc(zatca_status_label(lang, &document.status)),
            attempts = document.attempts,
        );
    }
    html.push_str("</tbody></table></section>");
    html
}

// ---------------------------------------------------------------------------------------------
// Audit trail

async fn audit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<PageQuery>,
) -> Response {
    let visit = match Visit::begin(&state, &headers, &query, Page::Audit).await {
        Ok(visit) => visit,
        Err(answer) => return answer,
    };
    let body = audit_body(&state, &visit, &query).await;
    visit.finish(body)
}

fn filter(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| v.chars().take(MAX_FILTER_CHARS).collect())
}

async fn audit_body(
    state: &AppState,
    visit: &Visit,
    query: &PageQuery,
) -> Result<String, ApiError> {
    let lang = visit.lang;
    let labels = lang.labels();
    let db = read_db(state, "audit_log", query.as_of()).await?;
    let summary = projections::read_model("audit_log")?.render(&db).await?;
    let stream = filter(query.stream.as_deref());
    let actor = filter(query.actor.as_deref());
    let event_type = filter(query.event_type.as_deref());
    let before = match filter(query.before.as_deref()) {
        Some(text) => Some(text.parse::<i64>().map_err(|_| ApiError::BadRequest {
            code: "invalid_before",
            detail: format!("before={text:?} is not an audit sequence number"),
            field: Some("before".into()),
        })?),
        None => None,
    };
    let mut html = as_of_note(lang, query);
    let head_hash = summary["head"]["running_hash"].as_str().unwrap_or("");
    let _ = write!(
        html,
        r#"<div class="cards"><div class="card"><div class="label">{}</div><div class="value" id="audit-events">{}</div></div><div class="card"><div class="label">{}</div><div class="value"><code title="{hash}">{short}…</code></div></div></div>"#,
        esc(labels.events),
        i64_of(&summary, "events"),
        esc(labels.running_hash),
        hash = esc(head_hash),
        short = esc(&head_hash.chars().take(16).collect::<String>()),
    );
    // The filter form (GET, so a filtered view is a link).
    let _ = write!(
        html,
        r#"<form class="filters" method="get" action="/dashboard/audit" aria-label="{filters}"><label>{stream_label}<input name="stream" value="{stream}" placeholder="lead-… / invoice"></label><label>{actor_label}<input name="actor" value="{actor}" placeholder="webhook:moyasar"></label><label>{type_label}<select name="event_type"><option value="">{any}</option>"#,
        filters = esc(labels.filters),
        stream_label = esc(labels.stream),
        stream = esc(stream.as_deref().unwrap_or("")),
        actor_label = esc(labels.actor),
        actor = esc(actor.as_deref().unwrap_or("")),
        type_label = esc(labels.event_type),
        any = esc(labels.any),
    );
    if let Some(types) = summary["events_by_type"].as_object() {
        for (name, n) in types {
            let selected = if event_type.as_deref() == Some(name.as_str()) {
                " selected"
            } else {
                ""
            };
            let _ = write!(
                html,
                r#"<option value="{name}"{selected}>{name} ({})</option>"#,
                n.as_i64().unwrap_or(0),
                name = esc(name)
            );
        }
    }
    let _ = write!(
        html,
        r#"</select></label>{as_of}<button class="primary" type="submit">{apply}</button><a href="/dashboard/audit">{clear}</a></form>"#,
        as_of = query
            .as_of()
            .map(|a| format!(r#"<input type="hidden" name="as_of" value="{}">"#, esc(a)))
            .unwrap_or_default(),
        apply = esc(labels.apply),
        clear = esc(labels.clear),
    );
    let trail = audit_log::entries(
        &db,
        &AuditQuery {
            stream: stream.as_deref(),
            stream_type_too: true,
            actor: actor.as_deref(),
            event_type: event_type.as_deref(),
            cursor: before,
            newest_first: true,
            limit: AUDIT_PAGE_ROWS,
            ..AuditQuery::default()
        },
    )
    .await?;
    let rows = trail.items;
    let _ = write!(
        html,
        r#"<table id="audit"><thead><tr><th class="num">{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>"#,
        esc(labels.sequence),
        esc(labels.recorded_at),
        esc(labels.stream),
        esc(labels.event_type),
        esc(labels.actor),
        esc(labels.source),
        esc(labels.request),
    );
    if rows.is_empty() {
        let _ = write!(
            html,
            r#"<tr><td colspan="7" class="muted">{}</td></tr>"#,
            esc(labels.none)
        );
    }
    let keep = |key: &str, value: &str| format!("/dashboard/audit?{key}={}", url_encode(value));
    for row in &rows {
        let seq = row.seq;
        let stream_id = &row.stream_id;
        let event = &row.event_type;
        let actor_value = row.actor.as_deref().unwrap_or_default();
        let reference = row
            .request_id
            .as_deref()
            .or(row.delivery_id.as_deref())
            .unwrap_or_default();
        let _ = write!(
            html,
            r#"<tr data-seq="{seq}" data-position="{position}"><td class="num">{seq}</td><td>{recorded}</td><td class="id"><a href="{stream_link}">{stream}</a></td><td><a href="{type_link}">{event}</a></td><td class="id"><a href="{actor_link}">{actor}</a></td><td class="id">{source}</td><td class="id">{reference}</td></tr>"#,
            position = row.position,
            recorded = esc(&when(row.recorded_at_us)),
            stream_link = esc(&keep("stream", stream_id)),
            stream = esc(stream_id),
            type_link = esc(&keep("event_type", event)),
            event = esc(event),
            actor_link = esc(&keep("actor", actor_value)),
            actor = esc(actor_value),
            source = esc(row.source.as_deref().unwrap_or("")),
            reference = esc(reference),
        );
    }
    html.push_str("</tbody></table>");
    if let Some(last) = trail.next_cursor {
        let mut older = format!("/dashboard/audit?before={last}");
        for (key, value) in [
            ("stream", &stream),
            ("actor", &actor),
            ("event_type", &event_type),
        ] {
            if let Some(value) = value {
                let _ = write!(older, "&{key}={}", url_encode(value));
            }
        }
        if let Some(as_of) = query.as_of() {
            let _ = write!(older, "&as_of={}", url_encode(as_of));
        }
        let _ = write!(
            html,
            r#"<p><a id="older" href="{}">{} →</a></p>"#,
            esc(&older),
            esc(labels.older)
        );
    }
    Ok(html)
}

// ---------------------------------------------------------------------------------------------
// Projection lag

async fn lag(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<PageQuery>,
) -> Response {
    let visit = match Visit::begin(&state, &headers, &query, Page::Lag).await {
        Ok(visit) => visit,
        Err(answer) => return answer,
    };
    let body = lag_body(&state, &visit).await;
    visit.finish(body)
}

async fn lag_body(state: &AppState, visit: &Visit) -> Result<String, ApiError> {
    let lang = visit.lang;
    let labels = lang.labels();
    let head = state.store.head_position().await?;
    let mut html = format!(
        r#"<div class="cards"><div class="card"><div class="label">{}</div><div class="value" id="log-head">{head}</div></div></div>"#,
        esc(labels.log_head)
    );
    let _ = write!(
        html,
        r#"<table id="projections"><thead><tr><th>{}</th><th class="num">{}</th><th class="num">{}</th><th class="num">{}</th><th class="num">{}</th><th>{}</th></tr></thead><tbody>"#,
        esc(labels.projection),
        esc(labels.checkpoint),
        esc(labels.events_applied),
        esc(labels.events_behind),
        esc(labels.seconds_behind),
        esc(labels.status),
    );
    for projector in state.projectors.iter() {
        let lag = projector.lag().await?;
        let caught_up = lag.events_behind == 0;
        let _ = write!(
            html,
            r#"<tr data-projection="{name}"><th scope="row" class="id">{name}</th><td class="num checkpoint">{}</td><td class="num">{}</td><td class="num behind">{}</td><td class="num">{}</td><td>{}</td></tr>"#,
            lag.checkpoint.position,
            lag.events_applied,
            lag.events_behind,
            lag.seconds_behind,
            esc(if caught_up {
                labels.caught_up
            } else {
                labels.behind
            }),
            name = esc(&lag.name),
        );
    }
    html.push_str("</tbody></table>");
    let rows = app::process::checkpoints(&state.store.sql()).await?;
    let _ = write!(
        html,
        r#"<h2>{}</h2><table id="process-managers"><thead><tr><th>{}</th><th class="num">{}</th><th class="num">{}</th><th class="num">{}</th><th>{}</th></tr></thead><tbody>"#,
        esc(labels.process_managers),
        esc(labels.projection),
        esc(labels.checkpoint),
        esc(labels.events_applied),
        esc(labels.events_behind),
        esc(labels.updated_at),
    );
    if rows.is_empty() {
        let _ = write!(
            html,
            r#"<tr><td colspan="5" class="muted">{}</td></tr>"#,
            esc(labels.none)
        );
    }
    for row in rows {
        let _ = write!(
            html,
            r#"<tr><th scope="row" class="id">{}</th><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td></tr>"#,
            esc(&row.name),
            row.position,
            row.events_applied,
            (head - row.position).max(0),
            esc(&when(row.updated_at_us)),
        );
    }
    html.push_str("</tbody></table>");
    Ok(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup() {
        assert_eq!(
            esc(r#"<script>alert("x's")</script> & co"#),
            "&lt;script&gt;alert(&quot;x&#39;s&quot;)&lt;/script&gt; &amp; co"
        );
    }

    #[test]
    fn percentages_come_from_basis_points() {
        assert_eq!(percent(1234), "12.34%");
        assert_eq!(percent(5), "0.05%");
        assert_eq!(percent(10_000), "100.00%");
        assert_eq!(percent(-250), "-2.50%");
        assert_eq!(ratio_bps(1, 3), 3333);
        assert_eq!(ratio_bps(5, 0), 0);
    }

    #[test]
    fn money_is_shown_in_riyals_with_two_decimals() {
        assert_eq!(money(Lang::En, 344_885), "3,448.85 SAR");
        assert_eq!(money(Lang::Ar, -50), "-0.50 ر.س");
        assert_eq!(money(Lang::En, 0), "0.00 SAR");
    }

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
    fn a_query_value_is_percent_encoded() {
        assert_eq!(url_encode("lead-1 &x=ي"), "lead-1%20%26x%3D%D9%8A");
    }

    #[test]
    fn a_login_link_works_once() {
        remember_link("code-1".into(), Secret::new("token-1"));
        assert_eq!(take_link("code-1"), Some(Secret::new("token-1")));
        assert_eq!(take_link("code-1"), None);
        assert_eq!(take_link("never-made"), None);
    }
}
