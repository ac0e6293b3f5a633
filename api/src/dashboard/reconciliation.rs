//! Reconciliation: whether invoices, payments and commissions agree (each mismatch with its
//! streams and amounts), and ZATCA's status: Phase 2 documents by status and flow, and each
//! one ZATCA has not accepted (still pending, or rejected) with what ZATCA said. Each mismatch
//! says who found it (the ledger, or the daily reconciliation against Moyasar), and the days
//! reconciled against Moyasar are listed with their counts, clean days included. The counts
//! cover every open mismatch; the first [`MAX_MISMATCH_ROWS`] are listed.

use axum::extract::{Query, State};
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use maud::{html, Markup};
use projections::reconciliation::{PageRequest, ReconciliationReport};
use projections::zatca::{StatusCount, ZatcaDocument};

use super::format::{money_cell, when};
use super::labels::{flow_label, source_label, zatca_status_label, Lang};
use super::layout::{as_of_note, Page, PageQuery, Visit};
use super::{MAX_MISMATCH_ROWS, MAX_ZATCA_ROWS};
use crate::finance::read_db;
use crate::{ApiError, AppState};

/// `GET /dashboard/reconciliation`.
pub async fn page(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(query): Query<PageQuery>,
) -> Response {
    let visit = match Visit::begin(&state, &jar, &query, Page::Reconciliation).await {
        Ok(visit) => visit,
        Err(answer) => return answer,
    };
    let body = body(&state, &visit, &query).await;
    visit.finish(body)
}

async fn body(state: &AppState, visit: &Visit, query: &PageQuery) -> Result<Markup, ApiError> {
    let db = read_db(state, "reconciliation", query.as_of()).await?;
    let first_page = PageRequest::first(MAX_MISMATCH_ROWS);
    let report = projections::reconciliation::report_page(&db, &first_page).await?;
    let db = read_db(state, "zatca", query.as_of()).await?;
    let counts = projections::zatca::status_counts(&db).await?;
    let documents = if counts.is_empty() {
        Vec::new()
    } else {
        projections::zatca::not_accepted(&db, MAX_ZATCA_ROWS).await?
    };
    let lang = visit.lang;
    Ok(html! {
        (as_of_note(lang, query))
        (mismatches_section(lang, &report))
        (provider_runs_section(lang, &report))
        @if !counts.is_empty() {
            (zatca_section(lang, &counts, &documents))
        }
    })
}

fn mismatches_section(lang: Lang, report: &ReconciliationReport) -> Markup {
    let labels = lang.labels();
    let checked = [
        (labels.invoices, report.checked.invoices),
        (labels.payments, report.checked.payments),
        (labels.commission_list, report.checked.commissions),
    ];
    let amount = |halalas: Option<i64>| match halalas {
        Some(halalas) => money_cell(lang, halalas),
        None => html! { td class="num" { "—" } },
    };
    html! {
        @if report.reconciled {
            p class="banner ok" id="reconciled" data-mismatches="0" { (labels.reconciled) }
        } @else {
            p class="banner bad" id="reconciled" data-mismatches=(report.mismatch_count) {
                (labels.mismatches) ": " (report.mismatch_count)
            }
        }
        div class="cards" {
            @for (what, count) in checked {
                div class="card" {
                    div class="label" { (labels.checked) " · " (what) }
                    div class="value" { (count) }
                }
            }
        }
        @if !report.by_kind.is_empty() {
            table id="mismatch-kinds" {
                thead { tr { th { (labels.kind) } th class="num" { (labels.count) } } }
                tbody {
                    @for (kind, count) in &report.by_kind {
                        tr { td { code { (kind) } } td class="num" { (count) } }
                    }
                }
            }
        }
        @if !report.mismatches.is_empty() {
            h2 { (labels.mismatches) }
            table id="mismatches" {
                thead { tr {
                    th { (labels.found_by) }
                    th { (labels.kind) }
                    th { (labels.streams) }
                    th { (labels.detail) }
                    th class="num" { (labels.expected) }
                    th class="num" { (labels.actual) }
                } }
                tbody {
                    @for mismatch in &report.mismatches {
                        tr data-kind=(mismatch.kind) data-source=(mismatch.source) {
                            td { (source_label(lang, &mismatch.source)) }
                            td { code { (mismatch.kind) } }
                            td class="id" {
                                @for (i, stream) in mismatch.streams.iter().enumerate() {
                                    @if i > 0 { br; }
                                    (stream)
                                }
                            }
                            td { (mismatch.detail) }
                            (amount(mismatch.expected_halalas))
                            (amount(mismatch.actual_halalas))
                        }
                    }
                }
            }
            @if report.mismatch_count > report.mismatches.len() {
                p class="muted" id="mismatches-shown" {
                    (labels.showing_first) " " (report.mismatches.len()) " / " (report.mismatch_count)
                }
            }
        }
    }
}

/// The latest run of each day reconciled against Moyasar: counts on both sides and how many
/// differences (listed with the mismatches above).
fn provider_runs_section(lang: Lang, report: &ReconciliationReport) -> Markup {
    let labels = lang.labels();
    html! {
        section id="moyasar-reconciliation" {
            h2 { (labels.moyasar_reconciliation) }
            @if report.provider_runs.is_empty() {
                p class="muted" { (labels.no_moyasar_runs) }
            } @else {
                table id="moyasar-runs" {
                    thead { tr {
                        th { (labels.day) }
                        th class="num" { (labels.run) }
                        th class="num" { (labels.moyasar_payments) }
                        th class="num" { (labels.ledger_payments) }
                        th class="num" { (labels.findings) }
                    } }
                    tbody {
                        @for run in report.provider_runs.iter().take(MAX_MISMATCH_ROWS) {
                            tr data-date=(run.date) data-findings=(run.finding_count) {
                                td { bdi { (run.date) } }
                                td class="num" { (run.run) }
                                td class="num" { (run.provider_payments) }
                                td class="num" { (run.ledger_payments) }
                                td class="num" { (run.finding_count) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// ZATCA Phase 2: documents by status and flow, and those not accepted (still pending, or
/// rejected) with where each stands and what ZATCA said.
fn zatca_section(lang: Lang, counts: &[StatusCount], documents: &[ZatcaDocument]) -> Markup {
    let labels = lang.labels();
    html! {
        section id="zatca" {
            h2 { (labels.zatca) }
            table id="zatca-counts" {
                thead { tr {
                    th { (labels.status) }
                    th { (labels.flow) }
                    th class="num" { (labels.documents) }
                } }
                tbody {
                    @for count in counts {
                        tr data-status=(count.status) data-flow=(count.flow) {
                            td { (zatca_status_label(lang, &count.status)) }
                            td { (flow_label(lang, &count.flow)) }
                            td class="num" { (count.documents) }
                        }
                    }
                }
            }
            h3 { (labels.zatca_not_accepted) }
            table id="zatca-documents" {
                thead { tr {
                    th { (labels.document) }
                    th { (labels.invoice) }
                    th class="num" { (labels.icv) }
                    th { (labels.flow) }
                    th { (labels.status) }
                    th class="num" { (labels.attempts) }
                    th { (labels.next_attempt) " / " (labels.last_reason) }
                    th { (labels.zatca_messages) }
                } }
                tbody {
                    @if documents.is_empty() {
                        tr { td colspan="8" class="muted" { (labels.none) } }
                    }
                    @for document in documents {
                        (document_row(lang, document))
                    }
                }
            }
        }
    }
}

fn document_row(lang: Lang, document: &ZatcaDocument) -> Markup {
    html! {
        tr data-document=(document.document_id) data-status=(document.status) {
            td class="id" { (document.document_id) }
            td class="id" { (document.invoice_id) }
            td class="num" { (document.icv) }
            td { (flow_label(lang, &document.flow)) }
            td { (zatca_status_label(lang, &document.status)) }
            td class="num" { (document.attempts) }
            td {
                @if let Some(at) = document.next_attempt_at_us {
                    (when(lang, at))
                }
                @if let Some(reason) = &document.last_reason {
                    @if document.next_attempt_at_us.is_some() { br; }
                    (reason)
                }
            }
            td {
                ul class="messages" {
                    @for message in &document.messages {
                        li data-kind=(message.kind) {
                            code { (message.code.as_deref().unwrap_or(&message.kind)) }
                            " "
                            bdi { (message.message) }
                        }
                    }
                }
            }
        }
    }
}
