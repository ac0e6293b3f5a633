//! Commissions and payouts: what each partner is owed, every payout with what it paid, and the
//! latest commissions with where each stands. For a role that may change finance (finance,
//! admin), the desk's forms too: approve or reject (with a reason) each undecided commission,
//! and create payout batches ([`super::actions`]); an auditor sees the same page without them.

use axum::extract::{Query, State};
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use maud::{html, Markup};
use projections::statements;

use super::format::{money_cell, when};
use super::labels::status_label;
use super::layout::{as_of_note, Page, PageQuery, Visit};
use super::MAX_COMMISSION_ROWS;
use crate::auth::Area;
use crate::finance::read_db;
use crate::{ApiError, AppState};

/// `GET /dashboard/commissions`.
pub async fn page(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(query): Query<PageQuery>,
) -> Response {
    let visit = match Visit::begin(&state, &jar, &query, Page::Commissions).await {
        Ok(visit) => visit,
        Err(answer) => return answer,
    };
    let body = body(&state, &visit, &query).await;
    visit.finish(body)
}

async fn body(state: &AppState, visit: &Visit, query: &PageQuery) -> Result<Markup, ApiError> {
    let db = read_db(state, "partner_statements", query.as_of()).await?;
    let partners = statements::balances(&db).await?;
    let payouts = statements::payout_totals(&db).await?;
    let commissions = statements::latest_commissions(&db, MAX_COMMISSION_ROWS).await?;
    let lang = visit.lang;
    let labels = lang.labels();
    let acts = visit.principal.can_change(Area::Finance);
    Ok(html! {
        (as_of_note(lang, query))
        h2 { (labels.balances) }
        table id="balances" {
            thead { tr {
                th { (labels.partner) }
                th class="num" { (labels.statement_lines) }
                th class="num" { (labels.balance) }
            } }
            tbody {
                @if partners.is_empty() {
                    tr { td colspan="3" class="muted" { (labels.none) } }
                }
                @for partner in &partners {
                    tr data-partner=(partner.partner_id) {
                        th scope="row" class="id" { (partner.partner_id) }
                        td class="num" { (partner.lines) }
                        (money_cell(lang, partner.balance_halalas))
                    }
                }
            }
        }
        h2 { (labels.payouts) }
        @if acts {
            (payout_form(visit, &partners))
        }
        table id="payouts" {
            thead { tr {
                th { (labels.payout) }
                th { (labels.partner) }
                th class="num" { (labels.commission_list) }
                th class="num" { (labels.amount) }
            } }
            tbody {
                @if payouts.is_empty() {
                    tr { td colspan="4" class="muted" { (labels.none) } }
                }
                @for payout in &payouts {
                    tr {
                        td class="id" { (payout.payout_id) }
                        td class="id" { (payout.partner_id) }
                        td class="num" { (payout.commissions) }
                        (money_cell(lang, payout.net_halalas))
                    }
                }
            }
        }
        h2 { (labels.commission_list) }
        table id="commissions" {
            thead { tr {
                th { (labels.commission) }
                th { (labels.partner) }
                th { (labels.invoice) }
                th { (labels.lead) }
                th { (labels.status) }
                th class="num" { (labels.accrued) }
                th class="num" { (labels.net) }
                th { (labels.held_until) }
                th { (labels.payout) }
                @if acts { th { (lang.desk().actions) } }
            } }
            tbody {
                @if commissions.is_empty() {
                    tr { td colspan="10" class="muted" { (labels.none) } }
                }
                @for commission in &commissions {
                    @let short_id: String = commission.commission_id.chars().take(8).collect();
                    tr data-commission=(commission.commission_id) data-status=(commission.status) {
                        td class="id" title=(commission.commission_id) { (short_id) }
                        td class="id" { (commission.partner_id) }
                        td class="id" { (commission.invoice_id) }
                        td class="id" { (commission.lead_id) }
                        td { (status_label(lang, &commission.status)) }
                        (money_cell(lang, commission.accrued_halalas))
                        (money_cell(lang, commission.net_halalas))
                        td { (when(lang, commission.held_until_us)) }
                        td class="id" { (commission.payout_id.as_deref().unwrap_or("")) }
                        @if acts {
                            td { (decision_forms(visit, &commission.commission_id, &commission.status)) }
                        }
                    }
                }
            }
        }
    })
}

/// The form that creates payout batches: for every partner, or the one chosen.
fn payout_form(visit: &Visit, partners: &[statements::PartnerBalance]) -> Markup {
    let lang = visit.lang;
    let desk = lang.desk();
    html! {
        form method="post" action="/dashboard/payouts" class="filters" id="create-payouts" {
            input type="hidden" name="csrf" value=(visit.form_token);
            input type="hidden" name="lang" value=(lang.code());
            label {
                (lang.labels().partner)
                select name="partner_id" {
                    option value="" { (desk.all_partners) }
                    @for partner in partners {
                        option value=(partner.partner_id) { (partner.partner_id) }
                    }
                }
            }
            button class="primary" type="submit" { (desk.create_payouts) }
        }
    }
}

/// Approve and reject for a commission still undecided (held); reject alone for one approved
/// and not yet paid out. A decided one has no form.
fn decision_forms(visit: &Visit, commission_id: &str, status: &str) -> Markup {
    let lang = visit.lang;
    let desk = lang.desk();
    let action = |decision: &str| format!("/dashboard/commissions/{commission_id}/{decision}");
    html! {
        @if status == "held" {
            form method="post" action=(action("approve")) class="decide approve" {
                input type="hidden" name="csrf" value=(visit.form_token);
                input type="hidden" name="lang" value=(lang.code());
                button class="primary" type="submit" { (desk.approve) }
            }
        }
        @if status == "held" || status == "approved" {
            form method="post" action=(action("reject")) class="decide reject" {
                input type="hidden" name="csrf" value=(visit.form_token);
                input type="hidden" name="lang" value=(lang.code());
                input type="text" name="reason" required maxlength="500"
                    aria-label=(desk.reject_reason) placeholder=(desk.reject_reason);
                button type="submit" { (desk.reject) }
            }
        }
    }
}
