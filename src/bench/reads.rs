//! `bench reads`: what every read costs on a store of N events (issue 27).
//!
//! The store is generated as `bench replay` generates it (or reused), and every read model is
//! rebuilt from position zero, timed: that is the catch-up figure, and it gives a store made by
//! an older binary this binary's tables. The service is then started in this process on
//! loopback, and its own `/openapi.json` says what to call: every GET operation, its path
//! filled with real values read from the store (a lead, an invoice, a payment, a partner, a
//! commission, a statement month, ledger accounts, a stream), once with its query parameters
//! at their defaults and once more for each filter the store gives a real value for. Then
//! every dashboard page in English, signed in as a browser is (the admin's session; a partner
//! token's session for the partner page). Each case is called once to warm up, then
//! `--queries` times in a row on one keep-alive connection.
//!
//! As-of parameters are never sent (history at scale is issue 24's figure); the routes
//! that accept one are listed. A route whose path cannot be filled from the store is listed
//! under `skipped` with the reason, never dropped, and an answer that is not 2xx is reported
//! with its status (`non_2xx`) rather than hidden.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use api::dashboard::format::query_value;
use api::dashboard::layout::Page;
use serde_json::{json, Value};

use super::*;

/// The target for every read route and dashboard page, at 1M events.
const TARGET_P99_MS: f64 = 50.0;

/// The dashboard pages are asked for in English (the Arabic pages read the same data).
const DASHBOARD_LANGUAGE: &str = "en";

// ---------------------------------------------------------------------------------------------
// reads

pub(super) async fn reads(args: ReadsArgs) -> anyhow::Result<Value> {
    let (db, generation) = generated_or_reused(&args.target, args.events, args.reuse).await?;
    let engine = db.store.engine();
    let events = count_events(db.store.as_ref()).await?;
    let started = Instant::now();
    rebuild_all(&db.store, ReplayMode::SinglePass).await?;
    let catch_up = started.elapsed();

    let service = RunningService::start(db.store.clone()).await?;
    service.wait_caught_up().await?;
    let measured = measure_routes(&service, &args).await;
    service.stop().await?;
    let Measured { routes, skipped } = measured?;

    let over_target: Vec<&Value> = routes
        .iter()
        .filter(|route| p99_of(route) > TARGET_P99_MS)
        .map(|route| &route["name"])
        .collect();
    let non_2xx: Vec<&Value> = routes
        .iter()
        .filter(|route| !(200..300).contains(&route["status"].as_u64().unwrap_or(0)))
        .map(|route| &route["name"])
        .collect();
    let slowest = routes
        .iter()
        .max_by(|a, b| p99_of(a).total_cmp(&p99_of(b)))
        .map(|route| json!({"name": route["name"], "p99_ms": route["p99_ms"]}));
    let as_of_routes: BTreeSet<&str> = routes
        .iter()
        .filter(|route| route["accepts_as_of"] == true)
        .filter_map(|route| route["route"].as_str())
        .collect();
    Ok(json!({
        "bench": "reads",
        "engine": engine,
        "database": db.name,
        "events": events,
        "queries": args.queries,
        "target_p99_ms": TARGET_P99_MS,
        "generation": generation,
        "catch_up": {
            "read_models": projections::read_models().len(),
            "seconds": rounded(catch_up.as_secs_f64(), 3),
            "events_per_sec": per_second(events as u64, catch_up),
        },
        "routes": routes,
        "skipped": skipped,
        "slowest": slowest,
        "over_50ms": over_target,
        "non_2xx": non_2xx,
        "as_of_routes": as_of_routes,
    }))
}

fn p99_of(route: &Value) -> f64 {
    route["p99_ms"].as_f64().unwrap_or(0.0)
}

/// Every case's figures, and the routes that could not be filled.
struct Measured {
    routes: Vec<Value>,
    skipped: Vec<Value>,
}

async fn measure_routes(service: &RunningService, args: &ReadsArgs) -> anyhow::Result<Measured> {
    let mut connection = service.connect().await?;
    let admin = Auth::Bearer(service.admin_token.clone());
    let answer = connection.send("GET", "/openapi.json", None, b"").await?;
    if answer.status != 200 {
        bail!("GET /openapi.json answered {}", answer.status);
    }
    let document = answer.json()?;
    let fixture = Fixture::read(service).await?;
    let (mut cases, mut skipped) = api_cases(&document, &fixture, &admin);

    let admin_session = sign_in(&mut connection, &service.admin_token).await?;
    let partner = match &fixture.partner_id {
        Some(partner_id) => Some(partner_sign_in(&mut connection, &admin, partner_id).await?),
        None => None,
    };
    let partner_session = partner.as_ref().map(|(_, session)| session.as_str());
    let (pages, pages_skipped) = dashboard_cases(&fixture, &admin_session, partner_session);
    cases.extend(pages);
    skipped.extend(pages_skipped);

    let budget = Duration::from_secs(args.route_seconds);
    let mut routes = Vec::with_capacity(cases.len());
    for case in &cases {
        routes.push(time_case(&mut connection, service, case, args.queries, budget).await?);
    }

    sign_out(&mut connection, &admin_session).await?;
    if let Some((token_id, session)) = &partner {
        sign_out(&mut connection, session).await?;
        let revoke = format!("/api/tokens/{}/revoke", query_value(token_id));
        let answer = admin.send(&mut connection, "POST", &revoke, b"").await?;
        if answer.status != 200 {
            bail!(
                "revoking the bench's partner token answered {}",
                answer.status
            );
        }
    }
    Ok(Measured { routes, skipped })
}

// ---------------------------------------------------------------------------------------------
// What is called

/// How a case is authenticated.
#[derive(Clone)]
enum Auth {
    Public,
    Bearer(String),
    /// A dashboard session cookie, `name=value`.
    Session(String),
}

impl Auth {
    async fn send(
        &self,
        connection: &mut kit::Connection,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> anyhow::Result<kit::Raw> {
        match self {
            Auth::Public => Ok(connection.send(method, path, None, body).await?),
            Auth::Bearer(token) => Ok(connection.send(method, path, Some(token), body).await?),
            Auth::Session(cookie) => {
                let headers = [("Cookie", cookie.as_str())];
                Ok(connection.fetch(method, path, &headers, body).await?)
            }
        }
    }
}

/// One request to time: a route (as documented) with real values in it.
struct Case {
    /// `GET /api/ledger/accounts/{account}`.
    route: String,
    /// What this case fills in, when a route has more than one case (`account=cash`).
    case: Option<String>,
    /// What is requested.
    path: String,
    auth: Auth,
    accepts_as_of: bool,
}

impl Case {
    fn name(&self) -> String {
        match &self.case {
            Some(case) => format!("{} ({case})", self.route),
            None => self.route.clone(),
        }
    }
}

/// Real values from the store, for paths and filters.
#[derive(Default)]
struct Fixture {
    lead_id: Option<String>,
    lead_stage: Option<String>,
    lead_stream_id: Option<String>,
    /// The actor and type of the lead's first event (filters of the audit trail).
    lead_first_actor: Option<String>,
    lead_first_event_type: Option<String>,
    invoice_id: Option<String>,
    payment_id: Option<String>,
    partner_id: Option<String>,
    commission_id: Option<String>,
    commission_status: Option<String>,
    /// The partner's latest statement month.
    statement_month: Option<String>,
    /// A stamped ZATCA Phase 2 document: its invoice and its document id.
    signed_document: Option<(String, String)>,
    /// Where a reader of the event feed who is one default page behind starts.
    feed_after: i64,
}

impl Fixture {
    /// The newest stream of each kind, and what the read models say about it. Read from the
    /// log (whatever the read models hold) and from typed queries.
    async fn read(service: &RunningService) -> anyhow::Result<Fixture> {
        let state = &service.state;
        let store = state.store.as_ref();
        let db = store.sql();
        let lead_id = newest_stream(store, "lead").await?;
        let mut fixture = Fixture {
            invoice_id: newest_stream(store, "invoice").await?,
            payment_id: newest_stream(store, "payment").await?,
            partner_id: newest_stream(store, "partner").await?,
            commission_id: newest_stream(store, "commission").await?,
            feed_after: (store.head_position().await? - api::queries::DEFAULT_FEED_EVENTS as i64)
                .max(0),
            ..Fixture::default()
        };
        if let Some(lead_id) = &lead_id {
            let (lead, _) = state.handlers.leads.load_aggregate(lead_id).await?;
            fixture.lead_stage = lead.stage().map(|stage| stage.as_str().to_owned());
            let stream_id = domain::ids::stream_id("lead", lead_id);
            if let Some(first) = store.read_stream(&stream_id, 1, 1).await?.first() {
                fixture.lead_first_actor = first.metadata["actor"].as_str().map(str::to_owned);
                fixture.lead_first_event_type = Some(first.event_type.clone());
            }
            fixture.lead_stream_id = Some(stream_id);
        }
        fixture.lead_id = lead_id;
        if let Some(commission_id) = &fixture.commission_id {
            fixture.commission_status = projections::commissions::one(&db, commission_id)
                .await?
                .map(|row| row.status);
        }
        if let Some(partner_id) = &fixture.partner_id {
            fixture.statement_month = projections::partner_view::months(&db, partner_id, 1)
                .await?
                .first()
                .map(|month| month.month.clone());
        }
        if let Some(document_id) = newest_of_type(store, "DocumentSigned").await? {
            let (submission, _) = state
                .handlers
                .submissions
                .load_aggregate(&document_id)
                .await?;
            fixture.signed_document = Some((submission.invoice_id().to_owned(), document_id));
        }
        Ok(fixture)
    }

    /// The values of a path parameter, named by the segment before it, or why there are none.
    fn path_values(&self, path: &str, resource: &str, name: &str) -> Result<Vec<String>, String> {
        let one = |value: &Option<String>, what: &str| {
            value
                .clone()
                .map(|value| vec![value])
                .ok_or_else(|| format!("the store holds no {what}"))
        };
        match (resource, name) {
            ("invoices", "id") if path.ends_with("/xml") => self
                .signed_document
                .as_ref()
                .map(|(invoice_id, _)| vec![invoice_id.clone()])
                .ok_or_else(|| {
                    "the store holds no stamped ZATCA Phase 2 document (no DocumentSigned event: \
                     its invoices were issued under Phase 1)"
                        .to_owned()
                }),
            ("leads", "id") => one(&self.lead_id, "lead"),
            ("invoices", "id") => one(&self.invoice_id, "invoice"),
            ("payments", "id") => one(&self.payment_id, "payment"),
            ("partners", "id") => one(&self.partner_id, "partner"),
            ("commissions", "id") => one(&self.commission_id, "commission"),
            ("statements", "month") => one(&self.statement_month, "statement line"),
            ("streams", "stream_id") => one(&self.lead_stream_id, "stream"),
            ("accounts", "account") => {
                use projections::ledger::accounts;
                let mut accounts = vec![accounts::CASH.to_owned()];
                accounts.extend(self.lead_id.as_deref().map(accounts::receivable));
                accounts.extend(self.partner_id.as_deref().map(accounts::commission_payable));
                Ok(accounts)
            }
            _ => Err(format!(
                "the bench knows no value for {{{name}}} after /{resource}/: teach Fixture::path_values"
            )),
        }
    }

    /// A real value for a filter, when the store gives one (page sizes, cursors, time windows
    /// and as-of stay at their defaults).
    fn query_value(&self, path: &str, name: &str) -> Option<String> {
        match name {
            "stage" => self.lead_stage.clone(),
            "status" => self.commission_status.clone(),
            "partner_id" => self.partner_id.clone(),
            "period" => self.statement_month.clone(),
            "stream" => self.lead_stream_id.clone(),
            "subject" => self.lead_id.clone(),
            "actor" => self.lead_first_actor.clone(),
            "event_type" => self.lead_first_event_type.clone(),
            "after" if path == "/api/events" => Some(self.feed_after.to_string()),
            "document" if path.ends_with("/xml") => self
                .signed_document
                .as_ref()
                .map(|(_, document)| document.clone()),
            _ => None,
        }
    }
}

/// The aggregate id of the newest stream of a type, by its latest event.
async fn newest_stream(
    store: &dyn adapters::store::EventStore,
    stream_type: &str,
) -> anyhow::Result<Option<String>> {
    newest_where(store, "stream_type", stream_type).await
}

/// The aggregate id of the stream of the newest event of a type.
async fn newest_of_type(
    store: &dyn adapters::store::EventStore,
    event_type: &str,
) -> anyhow::Result<Option<String>> {
    newest_where(store, "event_type", event_type).await
}

async fn newest_where(
    store: &dyn adapters::store::EventStore,
    column: &'static str,
    value: &str,
) -> anyhow::Result<Option<String>> {
    let sql = format!(
        "SELECT stream_type, stream_id FROM events WHERE {column} = ? ORDER BY position DESC LIMIT 1"
    );
    let Some(row) = store.sql().fetch_optional(&sql, &[value.into()]).await? else {
        return Ok(None);
    };
    let (stream_type, stream_id) = (row.text(0)?, row.text(1)?);
    let prefix = domain::ids::stream_id(&stream_type, "");
    let aggregate_id = stream_id.strip_prefix(&prefix).with_context(|| {
        format!("stream {stream_id} does not begin with its type's prefix {prefix}")
    })?;
    Ok(Some(aggregate_id.to_owned()))
}

/// Every GET operation of the document, filled; and the ones that could not be.
fn api_cases(document: &Value, fixture: &Fixture, admin: &Auth) -> (Vec<Case>, Vec<Value>) {
    let mut cases = Vec::new();
    let mut skipped = Vec::new();
    let paths = document["paths"].as_object().into_iter().flatten();
    for (path, item) in paths {
        let Some(operation) = item.get("get") else {
            continue;
        };
        let route = format!("GET {path}");
        let parameters = parameters_of(document, operation);
        let auth = if operation["security"] == json!([]) {
            Auth::Public
        } else {
            admin.clone()
        };
        let filled = match filled_paths(path, fixture) {
            Ok(filled) => filled,
            Err(reason) => {
                skipped.push(json!({"route": route, "reason": reason}));
                continue;
            }
        };
        let accepts_as_of = parameters.iter().any(|p| p["name"] == "as_of");
        let case = |case: Option<String>, path: String| Case {
            route: route.clone(),
            case,
            path,
            auth: auth.clone(),
            accepts_as_of,
        };
        let first = filled[0].1.clone();
        let filters = parameters
            .iter()
            .filter(|parameter| parameter["in"] == "query")
            .filter_map(|parameter| parameter["name"].as_str())
            .filter_map(|name| Some((name, fixture.query_value(path, name)?)))
            .collect::<Vec<_>>();
        // A parameter the path cannot do without (the xml route's document, the export's
        // subject) goes on every case.
        let (required, optional): (Vec<_>, Vec<_>) = filters
            .into_iter()
            .partition(|(name, _)| *name == "document" || *name == "subject");
        let query_of = |pairs: &[(&str, String)]| {
            pairs
                .iter()
                .map(|(name, value)| format!("{name}={}", query_value(value)))
                .collect::<Vec<_>>()
                .join("&")
        };
        let with = |path: &str, pairs: &[(&str, String)]| match query_of(pairs).as_str() {
            "" => path.to_owned(),
            query => format!("{path}?{query}"),
        };
        for (label, path) in filled {
            cases.push(case(label, with(&path, &required)));
        }
        for filter in optional {
            let label = format!("{}={}", filter.0, filter.1);
            let mut pairs = required.clone();
            pairs.push(filter);
            cases.push(case(Some(label), with(&first, &pairs)));
        }
    }
    (cases, skipped)
}

/// An operation's parameters, `$ref`s to the document's components resolved.
fn parameters_of<'a>(document: &'a Value, operation: &'a Value) -> Vec<&'a Value> {
    let listed = operation["parameters"].as_array().into_iter().flatten();
    listed
        .map(|parameter| match parameter["$ref"].as_str() {
            Some(reference) => {
                let name = reference.rsplit('/').next().unwrap_or_default();
                &document["components"]["parameters"][name]
            }
            None => parameter,
        })
        .collect()
}

/// A path template with every `{parameter}` filled: each combination of values, labelled by
/// the parameters that have more than one.
fn filled_paths(
    template: &str,
    fixture: &Fixture,
) -> Result<Vec<(Option<String>, String)>, String> {
    let mut filled: Vec<(Vec<String>, String)> = vec![(Vec::new(), String::new())];
    let mut previous = "";
    for segment in template.split('/').skip(1) {
        let values = match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => {
                let values = fixture.path_values(template, previous, name)?;
                let labelled = values.len() > 1;
                values
                    .into_iter()
                    .map(|value| {
                        let label = labelled.then(|| format!("{name}={value}"));
                        (label, query_value(&value))
                    })
                    .collect()
            }
            None => vec![(None, segment.to_owned())],
        };
        filled = filled
            .into_iter()
            .flat_map(|(labels, path)| {
                values.iter().map(move |(label, value)| {
                    let mut labels = labels.clone();
                    labels.extend(label.clone());
                    (labels, format!("{path}/{value}"))
                })
            })
            .collect();
        previous = segment;
    }
    Ok(filled
        .into_iter()
        .map(|(labels, path)| ((!labels.is_empty()).then(|| labels.join(", ")), path))
        .collect())
}

/// Every dashboard page, in English, with the audit page's filters; the sign-in form too. The
/// partner page is a partner token's own: skipped when the store holds no partner.
fn dashboard_cases(
    fixture: &Fixture,
    admin: &str,
    partner: Option<&str>,
) -> (Vec<Case>, Vec<Value>) {
    let page_case = |page: Page, session: &str, case: Option<(&str, String)>| {
        let mut path = format!("{}?lang={DASHBOARD_LANGUAGE}", page.path());
        if let Some((name, value)) = &case {
            path.push_str(&format!("&{name}={}", query_value(value)));
        }
        Case {
            route: format!("GET {}", page.path()),
            case: case.map(|(name, value)| format!("{name}={value}")),
            path,
            auth: Auth::Session(session.to_owned()),
            accepts_as_of: true,
        }
    };
    let mut cases = Vec::new();
    let mut skipped = Vec::new();
    for page in Page::ALL {
        let session = match page {
            Page::Partner => partner,
            _ => Some(admin),
        };
        let Some(session) = session else {
            let reason = "the store holds no partner to sign in as (the page is a partner's own)";
            skipped.push(json!({"route": format!("GET {}", page.path()), "reason": reason}));
            continue;
        };
        cases.push(page_case(page, session, None));
        if page == Page::Audit {
            for name in ["stream", "actor", "event_type"] {
                if let Some(value) = fixture.query_value(page.path(), name) {
                    cases.push(page_case(page, session, Some((name, value))));
                }
            }
        }
    }
    cases.push(Case {
        route: "GET /dashboard/login".into(),
        case: None,
        path: format!("/dashboard/login?lang={DASHBOARD_LANGUAGE}"),
        auth: Auth::Public,
        accepts_as_of: false,
    });
    (cases, skipped)
}

// ---------------------------------------------------------------------------------------------
// Signing in, as the dashboard's form does

/// Posts the sign-in form with `token`; returns the session cookie's `name=value`.
async fn sign_in(connection: &mut kit::Connection, token: &str) -> anyhow::Result<String> {
    let form = format!("token={}&next=%2Fdashboard", query_value(token));
    let headers = [("Content-Type", "application/x-www-form-urlencoded")];
    let answer = connection
        .fetch("POST", "/dashboard/login", &headers, form.as_bytes())
        .await?;
    if answer.status != 303 {
        bail!("signing in answered {}: {}", answer.status, answer.text());
    }
    let prefix = format!("{}=", api::dashboard::SESSION_COOKIE);
    let session = answer
        .header_values("set-cookie")
        .find(|cookie| cookie.starts_with(&prefix))
        .and_then(|cookie| cookie.split(';').next())
        .map(str::to_owned);
    session.context("signing in set no session cookie")
}

/// A partner token for `partner_id`, signed in: the token's id (to revoke it) and the session.
async fn partner_sign_in(
    connection: &mut kit::Connection,
    admin: &Auth,
    partner_id: &str,
) -> anyhow::Result<(String, String)> {
    let body = json!({"role": "partner", "partner_id": partner_id, "label": "bench reads"});
    let answer = admin
        .send(
            connection,
            "POST",
            "/api/tokens",
            body.to_string().as_bytes(),
        )
        .await?;
    if answer.status != 201 {
        bail!(
            "creating a partner token answered {}: {}",
            answer.status,
            answer.text()
        );
    }
    let created = answer.json()?;
    let (Some(token), Some(token_id)) = (created["token"].as_str(), created["token_id"].as_str())
    else {
        bail!("a created token without token or token_id: {created}");
    };
    let session = sign_in(connection, token).await?;
    Ok((token_id.to_owned(), session))
}

async fn sign_out(connection: &mut kit::Connection, session: &str) -> anyhow::Result<()> {
    let answer = Auth::Session(session.to_owned())
        .send(connection, "POST", "/dashboard/logout", b"")
        .await?;
    if answer.status != 303 {
        bail!("signing out answered {}", answer.status);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Timing

/// A warm-up call, then `queries` calls one after another (fewer when they take longer than
/// `budget` together); the latencies, the status and the answer's size.
async fn time_case(
    connection: &mut kit::Connection,
    service: &RunningService,
    case: &Case,
    queries: u32,
    budget: Duration,
) -> anyhow::Result<Value> {
    let mut statuses = Vec::new();
    let mut latencies_us = Vec::with_capacity(queries as usize);
    let mut bytes = 0;
    let mut error = None;
    let started = Instant::now();
    for call in 0..=queries {
        if call > 1 && started.elapsed() > budget {
            break;
        }
        let sent = Instant::now();
        match case.auth.send(connection, "GET", &case.path, b"").await {
            Ok(answer) => {
                let elapsed_us = sent.elapsed().as_micros() as u64;
                if call > 0 {
                    latencies_us.push(elapsed_us);
                }
                statuses.push(answer.status);
                bytes = answer.bytes.len();
            }
            Err(failure) => {
                // The connection is closed or cut: the route is reported as failed and the
                // next one starts on a new connection.
                error = Some(format!("{failure:#}"));
                *connection = service.connect().await?;
                break;
            }
        }
    }
    latencies_us.sort_unstable();
    let status = statuses
        .iter()
        .find(|status| !(200..300).contains(*status))
        .or(statuses.first())
        .copied()
        .unwrap_or(0);
    let mut figures = json!({
        "name": case.name(),
        "route": case.route,
        "path": case.path,
        "status": status,
        "p50_ms": percentile_ms(&latencies_us, 50),
        "p99_ms": percentile_ms(&latencies_us, 99),
        "max_ms": latencies_us.last().map_or(0.0, |us| *us as f64 / 1_000.0),
        "calls": latencies_us.len(),
        "bytes": bytes,
        "accepts_as_of": case.accepts_as_of,
    });
    if let Some(case) = &case.case {
        figures["case"] = Value::from(case.clone());
    }
    if latencies_us.len() < queries as usize && error.is_none() {
        figures["cut_short_after_secs"] = Value::from(budget.as_secs());
    }
    let distinct: BTreeSet<u16> = statuses.into_iter().collect();
    if distinct.len() > 1 {
        figures["statuses"] = json!(distinct);
    }
    if let Some(error) = error {
        figures["error"] = Value::from(error);
    }
    Ok(figures)
}
