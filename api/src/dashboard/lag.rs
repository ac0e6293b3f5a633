//! Projection lag: the log's head, and how far each read model and each process manager is
//! behind it.

use axum::extract::{Query, State};
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use maud::{html, Markup};

use super::format::when;
use super::layout::{Page, PageQuery, Visit};
use crate::{ApiError, AppState};

/// `GET /dashboard/lag`.
pub async fn page(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(query): Query<PageQuery>,
) -> Response {
    let visit = match Visit::begin(&state, &jar, &query, Page::Lag).await {
        Ok(visit) => visit,
        Err(answer) => return answer,
    };
    let body = body(&state, &visit).await;
    visit.finish(body)
}

async fn body(state: &AppState, visit: &Visit) -> Result<Markup, ApiError> {
    let head = state.store.head_position().await?;
    let mut lags = Vec::with_capacity(state.projectors.len());
    for projector in state.projectors.iter() {
        lags.push(projector.lag().await?);
    }
    let processes = app::process::checkpoints(&state.store.sql()).await?;
    let labels = visit.lang.labels();
    Ok(html! {
        div class="cards" {
            div class="card" {
                div class="label" { (labels.log_head) }
                div class="value" id="log-head" { (head) }
            }
        }
        table id="projections" {
            thead { tr {
                th { (labels.projection) }
                th class="num" { (labels.checkpoint) }
                th class="num" { (labels.events_applied) }
                th class="num" { (labels.events_behind) }
                th class="num" { (labels.seconds_behind) }
                th { (labels.status) }
            } }
            tbody {
                @for lag in &lags {
                    tr data-projection=(lag.name) {
                        th scope="row" class="id" { (lag.name) }
                        td class="num checkpoint" { (lag.checkpoint.position) }
                        td class="num" { (lag.events_applied) }
                        td class="num behind" { (lag.events_behind) }
                        td class="num" { (lag.seconds_behind) }
                        td { (if lag.events_behind == 0 { labels.caught_up } else { labels.behind }) }
                    }
                }
            }
        }
        h2 { (labels.process_managers) }
        table id="process-managers" {
            thead { tr {
                th { (labels.projection) }
                th class="num" { (labels.checkpoint) }
                th class="num" { (labels.events_applied) }
                th class="num" { (labels.events_behind) }
                th { (labels.updated_at) }
            } }
            tbody {
                @if processes.is_empty() {
                    tr { td colspan="5" class="muted" { (labels.none) } }
                }
                @for process in &processes {
                    tr {
                        th scope="row" class="id" { (process.name) }
                        td class="num" { (process.position) }
                        td class="num" { (process.events_applied) }
                        td class="num" { ((head - process.position).max(0)) }
                        td { (when(visit.lang, process.updated_at_us)) }
                    }
                }
            }
        }
    })
}
