//! The audit trail: how many events and the running hash, a filter form (stream or stream
//! type, actor, event type; a GET, so a filtered view is a link), and the newest entries, each
//! value a link that filters by it, with a link to older ones.

use axum::extract::{Query, State};
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use maud::{html, Markup};
use projections::audit_log::{self, AuditEntry, AuditQuery};

use super::format::{query_value, when};
use super::labels::{Labels, Lang};
use super::layout::{as_of_note, Page, PageQuery, Visit};
use super::AUDIT_PAGE_ROWS;
use crate::finance::read_db;
use crate::{ApiError, AppState};

/// The longest filter value accepted (longer ones are cut): ids are far shorter.
const MAX_FILTER_CHARS: usize = 200;

/// `GET /dashboard/audit`.
pub async fn page(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(query): Query<PageQuery>,
) -> Response {
    let visit = match Visit::begin(&state, &jar, &query, Page::Audit).await {
        Ok(visit) => visit,
        Err(answer) => return answer,
    };
    let body = body(&state, &visit, &query).await;
    visit.finish(body)
}

fn filter(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| v.chars().take(MAX_FILTER_CHARS).collect())
}

/// The filters a page was asked for.
struct Filters {
    stream: Option<String>,
    actor: Option<String>,
    event_type: Option<String>,
    before: Option<i64>,
}

impl Filters {
    fn of(query: &PageQuery) -> Result<Filters, ApiError> {
        let before = match filter(query.before.as_deref()) {
            Some(text) => Some(text.parse::<i64>().map_err(|_| ApiError::BadRequest {
                code: "invalid_before",
                detail: format!("before={text:?} is not an audit sequence number"),
                field: Some("before".into()),
            })?),
            None => None,
        };
        Ok(Filters {
            stream: filter(query.stream.as_deref()),
            actor: filter(query.actor.as_deref()),
            event_type: filter(query.event_type.as_deref()),
            before,
        })
    }

    /// The page of older entries, before `last`, with the same filters.
    fn older(&self, last: &str, as_of: Option<&str>) -> String {
        let mut older = format!("/dashboard/audit?before={}", query_value(last));
        let kept = [
            ("stream", self.stream.as_deref()),
            ("actor", self.actor.as_deref()),
            ("event_type", self.event_type.as_deref()),
            ("as_of", as_of),
        ];
        for (key, value) in kept {
            if let Some(value) = value {
                older.push_str(&format!("&{key}={}", query_value(value)));
            }
        }
        older
    }
}

async fn body(state: &AppState, visit: &Visit, query: &PageQuery) -> Result<Markup, ApiError> {
    let db = read_db(state, "audit_log", query.as_of()).await?;
    let filters = Filters::of(query)?;
    let summary = audit_log::summary(&db).await?;
    let trail = audit_log::entries_as_of(
        &state.store.sql(),
        &db,
        &AuditQuery {
            stream: filters.stream.as_deref(),
            stream_type_too: true,
            actor: filters.actor.as_deref(),
            event_type: filters.event_type.as_deref(),
            cursor: filters.before,
            newest_first: true,
            limit: AUDIT_PAGE_ROWS,
            ..AuditQuery::default()
        },
    )
    .await?;
    let lang = visit.lang;
    let labels = lang.labels();
    let head_hash = summary
        .head
        .map(|head| head.running_hash)
        .unwrap_or_default();
    let short_hash: String = head_hash.chars().take(16).collect();
    Ok(html! {
        (as_of_note(lang, query))
        div class="cards" {
            div class="card" {
                div class="label" { (labels.events) }
                div class="value" id="audit-events" { (summary.events) }
            }
            div class="card" {
                div class="label" { (labels.running_hash) }
                div class="value" { code title=(head_hash) { (short_hash) "…" } }
            }
        }
        (filter_form(labels, &filters, &summary.events_by_type, query.as_of()))
        table id="audit" {
            thead { tr {
                th class="num" { (labels.sequence) }
                th { (labels.recorded_at) }
                th { (labels.stream) }
                th { (labels.event_type) }
                th { (labels.actor) }
                th { (labels.source) }
                th { (labels.request) }
            } }
            tbody {
                @if trail.items.is_empty() {
                    tr { td colspan="7" class="muted" { (labels.none) } }
                }
                @for entry in &trail.items {
                    (entry_row(lang, entry))
                }
            }
        }
        @if let Some(last) = &trail.next_cursor {
            p { a id="older" href=(filters.older(last, query.as_of())) { (labels.older) " →" } }
        }
    })
}

/// The filter form: a GET, so a filtered view is a link.
fn filter_form(
    labels: &Labels,
    filters: &Filters,
    events_by_type: &std::collections::BTreeMap<String, i64>,
    as_of: Option<&str>,
) -> Markup {
    html! {
        form class="filters" method="get" action="/dashboard/audit" aria-label=(labels.filters) {
            label {
                (labels.stream)
                input name="stream" value=(filters.stream.as_deref().unwrap_or("")) placeholder="lead-… / invoice";
            }
            label {
                (labels.actor)
                input name="actor" value=(filters.actor.as_deref().unwrap_or("")) placeholder="webhook:moyasar";
            }
            label {
                (labels.event_type)
                select name="event_type" {
                    option value="" { (labels.any) }
                    @for (name, count) in events_by_type {
                        option value=(name) selected[filters.event_type.as_deref() == Some(name.as_str())] {
                            (name) " (" (count) ")"
                        }
                    }
                }
            }
            @if let Some(as_of) = as_of {
                input type="hidden" name="as_of" value=(as_of);
            }
            button class="primary" type="submit" { (labels.apply) }
            a href="/dashboard/audit" { (labels.clear) }
        }
    }
}

fn entry_row(lang: Lang, entry: &AuditEntry) -> Markup {
    let link = |key: &str, value: &str| format!("/dashboard/audit?{key}={}", query_value(value));
    let actor = entry.actor.as_deref().unwrap_or_default();
    let reference = entry
        .request_id
        .as_deref()
        .or(entry.delivery_id.as_deref())
        .unwrap_or_default();
    html! {
        tr data-seq=(entry.seq) data-position=(entry.position) {
            td class="num" { (entry.seq) }
            td { (when(lang, entry.recorded_at_us)) }
            td class="id" { a href=(link("stream", &entry.stream_id)) { (entry.stream_id) } }
            td { a href=(link("event_type", &entry.event_type)) { (entry.event_type) } }
            td class="id" { a href=(link("actor", actor)) { (actor) } }
            td class="id" { (entry.source.as_deref().unwrap_or("")) }
            td class="id" { (reference) }
        }
    }
}
