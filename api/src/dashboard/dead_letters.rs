//! Dead letters: webhook deliveries that never applied, with why, and (for a role that may
//! change finance) a form to replay each now ([`super::actions::replay_dead_letter`]). The
//! bodies are not shown: they are the API's (`GET /api/webhooks/dead-letters`).

use axum::extract::{Query, State};
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use maud::{html, Markup};

use super::format::when;
use super::layout::{Page, PageQuery, Visit};
use super::MAX_DEAD_LETTER_ROWS;
use crate::auth::Area;
use crate::{ApiError, AppState};

/// `GET /dashboard/dead-letters`.
pub async fn page(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(query): Query<PageQuery>,
) -> Response {
    let visit = match Visit::begin(&state, &jar, &query, Page::DeadLetters).await {
        Ok(visit) => visit,
        Err(answer) => return answer,
    };
    let body = body(&state, &visit).await;
    visit.finish(body)
}

async fn body(state: &AppState, visit: &Visit) -> Result<Markup, ApiError> {
    let letters = state.deliveries.dead_letters(MAX_DEAD_LETTER_ROWS).await?;
    let lang = visit.lang;
    let (labels, desk) = (lang.labels(), lang.desk());
    let acts = visit.principal.can_change(Area::Finance);
    Ok(html! {
        table id="dead-letters" {
            thead { tr {
                th { (desk.provider) }
                th { (desk.delivery) }
                th { (desk.received_at) }
                th class="num" { (labels.attempts) }
                th { (labels.reason) }
                @if acts { th { (desk.actions) } }
            } }
            tbody {
                @if letters.is_empty() {
                    tr { td colspan="6" class="muted" { (labels.none) } }
                }
                @for letter in &letters {
                    tr data-dead-letter=(letter.id) {
                        td { (letter.provider) }
                        td class="id" { (letter.delivery_id) }
                        td { (when(lang, letter.received_at_us)) }
                        td class="num" { (letter.attempts) }
                        td { (letter.reason.as_deref().unwrap_or("")) }
                        @if acts {
                            td {
                                form method="post" class="replay"
                                    action={ "/dashboard/dead-letters/" (letter.id) "/replay" } {
                                    input type="hidden" name="csrf" value=(visit.form_token);
                                    input type="hidden" name="lang" value=(lang.code());
                                    button class="primary" type="submit" { (desk.replay) }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}
