//! The overview: the sales funnel (a chart, each stage's leads now, how many reached it and the
//! conversion from the stage before) and, for roles that read finance, revenue and the charts
//! of MRR and collections per month ([`super::charts`]).

use axum::extract::{Query, State};
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use maud::{html, Markup};
use projections::funnel::{FunnelNow, StageLeads, FUNNEL};
use projections::revenue::RevenueFigures;

use super::charts::monthly_chart;
use super::format::{money, money_cell, percent, ratio_bps};
use super::labels::{stage_label, Lang};
use super::layout::{as_of_note, Page, PageQuery, Visit};
use super::CHART_MONTHS;
use crate::auth::Area;
use crate::finance::read_db;
use crate::{ApiError, AppState};

/// `GET /dashboard`.
pub async fn page(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(query): Query<PageQuery>,
) -> Response {
    let visit = match Visit::begin(&state, &jar, &query, Page::Overview).await {
        Ok(visit) => visit,
        Err(answer) => return answer,
    };
    let body = body(&state, &visit, &query).await;
    visit.finish(body)
}

async fn body(state: &AppState, visit: &Visit, query: &PageQuery) -> Result<Markup, ApiError> {
    let db = read_db(state, "funnel", query.as_of()).await?;
    let funnel = projections::funnel::funnel_now(&db).await?;
    let revenue = if visit.principal.can_read(Area::Finance) {
        let db = read_db(state, "revenue", query.as_of()).await?;
        Some(projections::revenue::figures(&db).await?)
    } else {
        None
    };
    // The monthly charts are of the present (the as-of view replays one read model at a time;
    // these read two).
    let monthly = if visit.principal.can_read(Area::Finance) && query.as_of().is_none() {
        let db = state.store.sql();
        let now = adapters::clock::now_micros();
        Some((
            projections::monthly::mrr_by_month(&db, now, CHART_MONTHS).await?,
            projections::monthly::collections_by_month(&db, now, CHART_MONTHS).await?,
        ))
    } else {
        None
    };
    let lang = visit.lang;
    Ok(html! {
        (as_of_note(lang, query))
        (funnel_section(lang, &funnel))
        @if let Some(revenue) = &revenue {
            (revenue_section(lang, revenue))
        }
        @if let Some((mrr, collections)) = &monthly {
            h2 { (lang.desk().mrr_chart) }
            (monthly_chart(lang, "mrr-chart", lang.desk().mrr_chart, mrr))
            h2 { (lang.desk().collections_chart) }
            (monthly_chart(lang, "collections-chart", lang.desk().collections_chart, collections))
        }
    })
}

fn card(label: &str, id: &str, value: impl maud::Render) -> Markup {
    html! {
        div class="card" { div class="label" { (label) } div class="value" id=(id) { (value) } }
    }
}

fn funnel_section(lang: Lang, funnel: &FunnelNow) -> Markup {
    let labels = lang.labels();
    let reached = funnel.reached();
    let first = reached.first().copied().unwrap_or(0);
    let active = reached.get(FUNNEL.len() - 1).copied().unwrap_or(0);
    html! {
        div class="cards" {
            (card(labels.total_leads, "total-leads", funnel.leads))
            (card(labels.lead_to_active, "lead-to-active", percent(ratio_bps(active, first))))
        }
        h2 { (labels.funnel) }
        (funnel_chart(lang, &funnel.stages))
        table id="funnel" {
            thead { tr {
                th { (labels.stage) }
                th class="num" { (labels.leads_now) }
                th class="num" { (labels.reached) }
                th class="num" { (labels.conversion) }
            } }
            tbody {
                @for stage in &funnel.stages {
                    @let position = FUNNEL.iter().position(|s| s.as_str() == stage.stage);
                    tr {
                        th scope="row" { (stage_label(lang, stage.stage)) }
                        td data-stage=(stage.stage) class="count num" id={ "funnel-count-" (stage.stage) } { (stage.leads) }
                        @match position.and_then(|p| reached.get(p)) {
                            Some(n) => td class="num reached" data-stage=(stage.stage) { (n) },
                            None => td class="num" { "—" },
                        }
                        @match position.filter(|p| *p > 0).and_then(|p| funnel.conversion.get(p - 1)) {
                            Some(step) => td class="num conversion" data-stage=(stage.stage) data-bps=(step.rate_bps) { (percent(step.rate_bps)) },
                            None => td class="num" { "—" },
                        }
                    }
                }
            }
        }
    }
}

/// The funnel as a horizontal bar chart; mirrored for right-to-left pages.
fn funnel_chart(lang: Lang, stages: &[StageLeads]) -> Markup {
    const WIDTH: i64 = 700;
    const LABEL: i64 = 170;
    const ROW: i64 = 32;
    const BAR_HEIGHT: i64 = 22;
    const NUMBER_ROOM: i64 = 60;
    let max = stages.iter().map(|s| s.leads).max().unwrap_or(0).max(1);
    let room = WIDTH - LABEL - NUMBER_ROOM;
    let height = ROW * stages.len() as i64 + 8;
    let view_box = format!("0 0 {WIDTH} {height}");
    let rtl = lang == Lang::Ar;
    html! {
        figure class="chart" {
            svg id="funnel-chart" direction="ltr" role="img" aria-labelledby="funnel-chart-title"
                width=(WIDTH) height=(height) viewBox=(view_box) xmlns="http://www.w3.org/2000/svg" {
                title id="funnel-chart-title" { (lang.labels().funnel_chart) }
                @for (row, stage) in stages.iter().enumerate() {
                    @let y = ROW * row as i64 + 4;
                    @let text_y = y + BAR_HEIGHT / 2 + 5;
                    @let bar = if stage.leads == 0 { 0 } else { (stage.leads * room / max).max(2) };
                    // The SVG is laid out left to right (its `direction` is fixed); a
                    // right-to-left page gets the mirror image: labels on the right, bars
                    // growing leftwards.
                    @let (label_x, bar_x, number_x, number_anchor) = if rtl {
                        (WIDTH - 8, WIDTH - LABEL - bar, WIDTH - LABEL - bar - 6, "end")
                    } else {
                        (LABEL - 8, LABEL, LABEL + bar + 6, "start")
                    };
                    g data-stage=(stage.stage) {
                        text x=(label_x) y=(text_y) text-anchor="end" { (stage_label(lang, stage.stage)) }
                        rect class=(if stage.stage == "archived" { "bar archived" } else { "bar" })
                            x=(bar_x) y=(y) width=(bar) height=(BAR_HEIGHT) rx="3" {}
                        text class="bar-count" x=(number_x) y=(text_y) text-anchor=(number_anchor) { (stage.leads) }
                    }
                }
            }
        }
    }
}

fn revenue_section(lang: Lang, revenue: &RevenueFigures) -> Markup {
    let labels = lang.labels();
    let money_card = |label: &str, id: &str, halalas: i64| {
        html! {
            div class="card" {
                div class="label" { (label) }
                div class="value" id=(id) data-halalas=(halalas) { bdi { (money(lang, halalas)) } }
            }
        }
    };
    html! {
        h2 { (labels.revenue) }
        div class="cards" {
            (money_card(labels.mrr, "mrr", revenue.mrr_halalas))
            (money_card(labels.arpu, "arpu", revenue.arpu_halalas))
            (card(labels.paying_customers, "paying-customers", revenue.paying_customers))
        }
        table id="plan-mix" {
            thead { tr {
                th { (labels.plan) }
                th class="num" { (labels.customers) }
                th class="num" { (labels.mrr) }
            } }
            tbody {
                @for (plan, figures) in &revenue.plan_mix {
                    tr {
                        th scope="row" { (plan) }
                        td class="num" { (figures.customers) }
                        (money_cell(lang, figures.mrr_halalas))
                    }
                }
            }
        }
    }
}
