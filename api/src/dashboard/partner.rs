//! A partner's own page: its statement (the months it has lines in, the chosen month's lines
//! with opening and closing balances and totals by kind) and its commissions. Only a partner
//! token sees it, and every query is by the session's own partner id: no other partner's
//! figures are read, and no partner id is taken from the request.

use axum::extract::{Query, State};
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use maud::{html, Markup};
use projections::partner_view;
use serde::Deserialize;

use super::desk_labels::line_kind_label;
use super::format::{money_cell, when};
use super::labels::status_label;
use super::layout::{Page, PageQuery, Visit};
use super::{MAX_COMMISSION_ROWS, MAX_STATEMENT_LINES, MAX_STATEMENT_MONTHS};
use crate::finance::read_db;
use crate::{ApiError, AppState};

#[derive(Debug, Default, Deserialize)]
pub struct MonthQuery {
    month: Option<String>,
}

/// `GET /dashboard/partner?month=YYYY-MM`.
pub async fn page(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(query): Query<PageQuery>,
    Query(chosen): Query<MonthQuery>,
) -> Response {
    let visit = match Visit::begin(&state, &jar, &query, Page::Partner).await {
        Ok(visit) => visit,
        Err(answer) => return answer,
    };
    let body = body(&state, &visit, chosen.month.as_deref()).await;
    visit.finish(body)
}

async fn body(state: &AppState, visit: &Visit, month: Option<&str>) -> Result<Markup, ApiError> {
    let lang = visit.lang;
    let (labels, desk) = (lang.labels(), lang.desk());
    // A partner token always names its partner ([`app::tokens::create`]); the check is kept.
    let Some(partner_id) = visit.principal.partner_id.as_deref() else {
        return Ok(html! { p id="not-a-partner" { (desk.not_a_partner) } });
    };
    if let Some(month) = month.filter(|m| !crate::finance::valid_month(m)) {
        return Err(ApiError::BadRequest {
            code: "invalid_month",
            detail: format!("{month:?} is not a month: use YYYY-MM, e.g. 2026-11"),
            field: Some("month".into()),
        });
    }
    let db = read_db(state, "partner_statements", None).await?;
    let months = partner_view::months(&db, partner_id, MAX_STATEMENT_MONTHS).await?;
    let chosen = month
        .map(str::to_owned)
        .or_else(|| months.first().map(|m| m.month.clone()));
    let statement = match &chosen {
        Some(month) => {
            let opening = partner_view::opening_balance(&db, partner_id, month).await?;
            let lines = partner_view::lines(&db, partner_id, month, MAX_STATEMENT_LINES).await?;
            Some((month.clone(), opening, lines))
        }
        None => None,
    };
    let commissions = partner_view::commissions(&db, partner_id, MAX_COMMISSION_ROWS).await?;
    Ok(html! {
        p { (labels.partner) " " strong class="id" id="partner-id" { (partner_id) } }
        h2 { (desk.months) }
        table id="statement-months" {
            thead { tr {
                th { (desk.month) }
                th class="num" { (labels.statement_lines) }
                th class="num" { (labels.net) }
            } }
            tbody {
                @if months.is_empty() {
                    tr { td colspan="3" class="muted" { (labels.none) } }
                }
                @for month in &months {
                    tr data-month=(month.month) {
                        th scope="row" {
                            a href={ "/dashboard/partner?month=" (month.month) } { (month.month) }
                        }
                        td class="num" { (month.lines) }
                        (money_cell(lang, month.net_halalas))
                    }
                }
            }
        }
        @if let Some((month, opening, lines)) = &statement {
            @let closing = opening + lines.iter().map(|l| l.amount_halalas).sum::<i64>();
            h2 { (labels.statement_lines) " " bdi { (month) } }
            table id="statement-lines" data-month=(month) {
                thead { tr {
                    th { (desk.occurred_at) }
                    th { (labels.kind) }
                    th { (labels.commission) }
                    th { (desk.reference) }
                    th class="num" { (labels.amount) }
                } }
                tbody {
                    tr id="opening" { th scope="row" colspan="4" { (desk.opening) } (money_cell(lang, *opening)) }
                    @for line in lines {
                        tr data-kind=(line.kind) data-commission=(line.commission_id) {
                            td { (when(lang, line.occurred_at_us)) }
                            td { (line_kind_label(lang, &line.kind)) }
                            td class="id" { (line.commission_id) }
                            td class="id" { (line.reference.as_deref().unwrap_or("")) }
                            (money_cell(lang, line.amount_halalas))
                        }
                    }
                    tr id="closing" { th scope="row" colspan="4" { (desk.closing) } (money_cell(lang, closing)) }
                }
            }
            h2 { (desk.totals) }
            table id="statement-totals" {
                tbody {
                    @for kind in ["accrued", "rejected", "adjusted", "clawed_back", "paid_out", "carried"] {
                        @let total: i64 = lines.iter().filter(|l| l.kind == kind).map(|l| l.amount_halalas).sum();
                        tr data-kind=(kind) {
                            th scope="row" { (line_kind_label(lang, kind)) }
                            (money_cell(lang, total))
                        }
                    }
                }
            }
        }
        h2 { (desk.my_commissions) }
        table id="partner-commissions" {
            thead { tr {
                th { (labels.commission) }
                th { (labels.invoice) }
                th { (labels.status) }
                th class="num" { (labels.accrued) }
                th class="num" { (labels.net) }
                th { (labels.held_until) }
                th { (labels.payout) }
            } }
            tbody {
                @if commissions.is_empty() {
                    tr { td colspan="7" class="muted" { (labels.none) } }
                }
                @for commission in &commissions {
                    tr data-commission=(commission.commission_id) data-status=(commission.status) {
                        td class="id" { (commission.commission_id) }
                        td class="id" { (commission.invoice_id) }
                        td { (status_label(lang, &commission.status)) }
                        (money_cell(lang, commission.accrued_halalas))
                        (money_cell(lang, commission.net_halalas))
                        td { (when(lang, commission.held_until_us)) }
                        td class="id" { (commission.payout_id.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use crate::finance::valid_month as is_month;

    #[test]
    fn only_a_calendar_month_is_a_month() {
        assert!(is_month("2026-11"));
        assert!(!is_month("2026-13"));
        assert!(!is_month("2026-1"));
        assert!(!is_month("2026/11"));
        assert!(!is_month("' OR 1"));
    }
}
