//! The CRM board: how many follow-ups are due, then each stage's leads, those due soonest
//! first (a due follow-up highlighted), archived leads with their reason.

use axum::extract::{Query, State};
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use domain::lead::LeadStage;
use maud::{html, Markup};
use projections::crm_board::{self, BoardRow};
use projections::funnel::FUNNEL;

use super::format::when;
use super::labels::{stage_label, Lang};
use super::layout::{as_of_note, Page, PageQuery, Visit};
use super::MAX_LEADS_PER_STAGE;
use crate::finance::read_db;
use crate::{ApiError, AppState};

/// `GET /dashboard/crm`.
pub async fn page(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(query): Query<PageQuery>,
) -> Response {
    let visit = match Visit::begin(&state, &jar, &query, Page::Crm).await {
        Ok(visit) => visit,
        Err(answer) => return answer,
    };
    let body = body(&state, &visit, &query).await;
    visit.finish(body)
}

/// One stage's column: its whole count and its first leads.
struct Column {
    stage: LeadStage,
    count: i64,
    leads: Vec<BoardRow>,
}

async fn body(state: &AppState, visit: &Visit, query: &PageQuery) -> Result<Markup, ApiError> {
    let db = read_db(state, "crm_board", query.as_of()).await?;
    let now_us = adapters::clock::unix_micros(adapters::clock::now_micros());
    let counts: std::collections::BTreeMap<String, i64> =
        crm_board::stage_counts(&db).await?.into_iter().collect();
    let due_total = crm_board::follow_ups_due_count(&db, now_us).await?;
    let mut columns = Vec::new();
    for stage in FUNNEL.into_iter().chain([LeadStage::Archived]) {
        let count = counts.get(stage.as_str()).copied().unwrap_or(0);
        let leads = if count == 0 {
            Vec::new()
        } else {
            crm_board::stage_leads(&db, stage, MAX_LEADS_PER_STAGE).await?
        };
        columns.push(Column {
            stage,
            count,
            leads,
        });
    }
    let lang = visit.lang;
    let labels = lang.labels();
    Ok(html! {
        (as_of_note(lang, query))
        div class="cards" {
            div class="card" {
                div class="label" { (labels.follow_ups_due) }
                div class="value" id="follow-ups-due" { (due_total) }
            }
        }
        @for column in &columns {
            (stage_section(lang, column, now_us))
        }
    })
}

fn stage_section(lang: Lang, column: &Column, now_us: i64) -> Markup {
    let labels = lang.labels();
    let stage = column.stage.as_str();
    let archived = column.stage == LeadStage::Archived;
    html! {
        section id={ "stage-" (stage) } {
            h2 {
                (stage_label(lang, stage)) " "
                span class="muted" data-stage-total=(stage) { "(" (column.count) ")" }
            }
            @if column.count == 0 {
                p class="muted" { (labels.none) }
            } @else {
                table class="board" {
                    thead { tr {
                        th { (labels.name) }
                        th { (labels.company) }
                        th { (labels.owner) }
                        th { (labels.source) }
                        th { (labels.partner) }
                        th { (labels.last_contact) }
                        th { (if archived { labels.reason } else { labels.next_follow_up }) }
                    } }
                    tbody {
                        @for lead in &column.leads {
                            (lead_row(lang, lead, archived, now_us))
                        }
                    }
                }
                @if column.count > MAX_LEADS_PER_STAGE {
                    p class="muted" { (labels.showing_first) " " (MAX_LEADS_PER_STAGE) " / " (column.count) }
                }
            }
        }
    }
}

fn lead_row(lang: Lang, lead: &BoardRow, archived: bool, now_us: i64) -> Markup {
    let due_us = lead.next_follow_up_due_us;
    let is_due = due_us.is_some_and(|due| due <= now_us);
    html! {
        tr data-lead=(lead.lead_id) class=[is_due.then_some("due")] {
            td { (lead.name) }
            td { (lead.company.as_deref().unwrap_or("")) }
            td { (lead.owner.as_deref().unwrap_or("")) }
            td { (lead.source) }
            td class="id" { (lead.partner_id.as_deref().unwrap_or("")) }
            td { (when(lang, lead.last_contact_at_us)) }
            td {
                @if archived {
                    (lead.archived_reason.as_deref().unwrap_or(""))
                } @else {
                    @match due_us {
                        Some(due) if is_due => {
                            span class="badge due" { (lang.labels().due) } " " (when(lang, due))
                        },
                        Some(due) => (when(lang, due)),
                        None => "—",
                    }
                }
            }
        }
    }
}
