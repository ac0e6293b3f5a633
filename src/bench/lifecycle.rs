//! `bench lifecycle` and `bench webhooks`: a revenue lifecycle and webhook deliveries driven
//! over HTTP against the service, with their latencies.

use anyhow::{bail, Context};
use domain::partner::PartnerTier;
use domain::plan::Plan;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::*;

// ---------------------------------------------------------------------------------------------
// lifecycle

/// One lead of a run: who it is, who referred it, what it buys.
#[derive(Clone)]
pub(super) struct LeadPlan {
    pub(super) index: u64,
    pub(super) lead_id: String,
    pub(super) email: String,
    pub(super) partner_id: Option<String>,
    pub(super) plan: Plan,
}

impl LeadPlan {
    pub(super) fn new(index: u64) -> LeadPlan {
        let partner_id = index
            .is_multiple_of(REFERRED_EVERY)
            .then(|| partner_id(((index / REFERRED_EVERY) % PARTNERS as u64) as usize));
        LeadPlan {
            index,
            lead_id: format!("bench-lead-{index}"),
            email: format!("lead{index}@bench.example.sa"),
            partner_id,
            plan: PLANS[(index % PLANS.len() as u64) as usize],
        }
    }
}

pub(super) fn partner_id(index: usize) -> String {
    format!("bench-partner-{index}")
}

pub(super) fn rfc3339(at: OffsetDateTime) -> anyhow::Result<String> {
    Ok(at.format(&Rfc3339)?)
}

/// A worker driving leads over one connection.
pub(super) struct Driver {
    pub(super) connection: kit::Connection,
    pub(super) admin_token: String,
    pub(super) moyasar_token: String,
    pub(super) stats: WorkerStats,
}

impl Driver {
    /// Sends a command until it is accepted (2xx), resending on 409/503 a bounded number of
    /// times; records the accepted attempt's latency.
    pub(super) async fn command(
        &mut self,
        label: &'static str,
        method: &str,
        path: &str,
        authenticated: bool,
        body: &[u8],
    ) -> anyhow::Result<kit::Raw> {
        let mut transient = 0;
        loop {
            let token = authenticated.then_some(self.admin_token.as_str());
            let started = Instant::now();
            let answer = self.connection.send(method, path, token, body).await?;
            let elapsed_us = started.elapsed().as_micros() as u64;
            match answer.status {
                200..=299 => {
                    self.stats.record(label, elapsed_us);
                    return Ok(answer);
                }
                409 | 503 if transient < MAX_TRANSIENT_RETRIES => {
                    transient += 1;
                    self.stats.transient_retries += 1;
                }
                status => bail!("{method} {path} answered {status}: {}", answer.text()),
            }
        }
    }

    /// Starts onboarding, retrying (with a short backoff) while the lead is not paid yet.
    pub(super) async fn onboard(&mut self, lead_id: &str) -> anyhow::Result<()> {
        let path = format!("/api/leads/{lead_id}/onboard");
        let deadline = Instant::now() + ONBOARD_DEADLINE;
        let mut backoff = ONBOARD_BACKOFF_START;
        loop {
            let started = Instant::now();
            let answer = self
                .connection
                .send("POST", &path, Some(&self.admin_token), b"")
                .await?;
            let elapsed_us = started.elapsed().as_micros() as u64;
            match answer.status {
                200..=299 => {
                    self.stats.record("onboard", elapsed_us);
                    return Ok(());
                }
                422 | 409 | 503 if Instant::now() < deadline => {
                    self.stats.onboard_retries += 1;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(ONBOARD_BACKOFF_MAX);
                }
                status => bail!(
                    "onboarding {lead_id} answered {status} (after {ONBOARD_DEADLINE:?} of retries at most): {}",
                    answer.text()
                ),
            }
        }
    }

    /// Captures a lead and issues its invoice (the first five commands); returns the invoice
    /// id and its total with VAT.
    pub(super) async fn capture_to_invoice(
        &mut self,
        lead: &LeadPlan,
    ) -> anyhow::Result<(String, i64)> {
        let id = &lead.lead_id;
        let capture = json!({
            "lead_id": id,
            "name": format!("Lead {}", lead.index),
            "company": format!("Company {}", lead.index),
            "email": lead.email,
            "source": if lead.partner_id.is_some() { "partner" } else { "landing_page" },
            "partner_id": lead.partner_id,
            "owner": "sales-1",
        });
        self.command(
            "capture",
            "POST",
            "/api/leads",
            true,
            &serde_json::to_vec(&capture)?,
        )
        .await?;
        self.command(
            "qualify",
            "POST",
            &format!("/api/leads/{id}/qualify"),
            true,
            b"",
        )
        .await?;
        let demo = json!({
            "booking_id": format!("bench-booking-{}", lead.index),
            "scheduled_for": rfc3339(adapters::clock::now_micros() + time::Duration::days(2))?,
        });
        let path = format!("/api/leads/{id}/book-demo");
        self.command(
            "book_demo",
            "POST",
            &path,
            true,
            &serde_json::to_vec(&demo)?,
        )
        .await?;
        let proposal = json!({ "plan": lead.plan });
        let path = format!("/api/leads/{id}/proposal");
        self.command(
            "proposal",
            "POST",
            &path,
            true,
            &serde_json::to_vec(&proposal)?,
        )
        .await?;
        let invoice = json!({ "lead_id": id, "plan": lead.plan });
        let answer = self
            .command(
                "issue_invoice",
                "POST",
                "/api/invoices",
                true,
                &serde_json::to_vec(&invoice)?,
            )
            .await?
            .json()?;
        let invoice_id = answer["invoice_id"]
            .as_str()
            .context("the invoice answer has no invoice_id")?
            .to_owned();
        let total = answer["total_halalas"]
            .as_i64()
            .context("the invoice answer has no total_halalas")?;
        Ok((invoice_id, total))
    }

    /// The payment as Moyasar reports it: `payment_paid`, our invoice id in the metadata.
    pub(super) async fn pay(&mut self, delivery: &[u8]) -> anyhow::Result<()> {
        let answer = self
            .command(
                "payment_webhook",
                "POST",
                "/webhooks/moyasar",
                false,
                delivery,
            )
            .await?;
        let body = answer.json()?;
        if answer.status != 200 || body["status"] != "accepted" {
            bail!(
                "the payment_paid delivery was not accepted: {}",
                answer.text()
            );
        }
        Ok(())
    }

    /// A lead's first six commands: capture to the payment webhook.
    pub(super) async fn sell(&mut self, lead: &LeadPlan) -> anyhow::Result<()> {
        let sold = async {
            let (invoice_id, total) = self.capture_to_invoice(lead).await?;
            let delivery = payment_paid(
                &self.moyasar_token,
                &format!("bench-delivery-{}", lead.index),
                &format!("bench-payment-{}", lead.index),
                &invoice_id,
                total,
            )?;
            self.pay(&delivery).await
        };
        sold.await.with_context(|| format!("lead {}", lead.lead_id))
    }

    /// A paid lead's last two commands: onboard and activate.
    pub(super) async fn deliver(&mut self, lead: &LeadPlan) -> anyhow::Result<()> {
        let delivered = async {
            self.onboard(&lead.lead_id).await?;
            let path = format!("/api/leads/{}/activate", lead.lead_id);
            self.command("activate", "POST", &path, true, b"").await?;
            anyhow::Ok(())
        };
        delivered
            .await
            .with_context(|| format!("lead {}", lead.lead_id))
    }

    /// Takes `leads` through their eight commands, one request at a time. A lead can be
    /// onboarded only once the process managers have marked it paid (payment → invoice paid →
    /// lead paid), so the worker does not wait for that right after the payment: it sells its
    /// next [`PAYING_LEADS`] leads first and then onboards the paid one, as a sales team goes
    /// on with its next customers while a payment clears. Onboarding still retries while the
    /// lead is not paid.
    pub(super) async fn lifecycles(&mut self, leads: &[LeadPlan]) -> anyhow::Result<()> {
        let mut paying = std::collections::VecDeque::with_capacity(PAYING_LEADS + 1);
        for lead in leads {
            self.sell(lead).await?;
            paying.push_back(lead);
            if paying.len() > PAYING_LEADS {
                let paid = paying.pop_front().expect("it holds more than PAYING_LEADS");
                self.deliver(paid).await?;
            }
        }
        for paid in paying {
            self.deliver(paid).await?;
        }
        Ok(())
    }
}

/// A Moyasar `payment_paid` delivery (the documented shape) for our invoice.
pub(super) fn payment_paid(
    secret_token: &str,
    delivery_id: &str,
    payment_id: &str,
    invoice_id: &str,
    amount_halalas: i64,
) -> anyhow::Result<Vec<u8>> {
    let now = rfc3339(adapters::clock::now_micros())?;
    let body = json!({
        "id": delivery_id,
        "type": "payment_paid",
        "created_at": now,
        "secret_token": secret_token,
        "account_name": "Dealix",
        "live": true,
        "data": {
            "id": payment_id,
            "status": "paid",
            "amount": amount_halalas,
            "fee": amount_halalas / 50,
            "currency": "SAR",
            "refunded": 0,
            "refunded_at": null,
            "captured": 0,
            "captured_at": null,
            "voided_at": null,
            "description": format!("Invoice {invoice_id}"),
            "invoice_id": null,
            "ip": "127.0.0.1",
            "callback_url": null,
            "created_at": now,
            "updated_at": now,
            "metadata": { "invoice_id": invoice_id },
            "source": {
                "type": "creditcard",
                "company": "mada",
                "name": "Bench Customer",
                "number": "XXXX-XXXX-XXXX-1111",
                "gateway_id": "moyasar_cc_bench",
                "reference_number": null,
                "token": null,
                "message": "Succeeded!",
                "transaction_url": null
            }
        }
    });
    Ok(serde_json::to_vec(&body)?)
}

/// Enrolls the partners and records a referral click for every referred lead (setup, not
/// measured), each partner's referrals on its own connection so they do not race one stream.
pub(super) async fn enroll_partners(
    service: &RunningService,
    leads: &[LeadPlan],
) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..PARTNERS {
        let partner = partner_id(index);
        let emails: Vec<String> = leads
            .iter()
            .filter(|lead| lead.partner_id.as_deref() == Some(partner.as_str()))
            .map(|lead| lead.email.clone())
            .collect();
        let mut connection = service.connect().await?;
        let token = service.admin_token.clone();
        tasks.spawn(async move {
            let enroll = json!({
                "partner_id": partner,
                "name": format!("Partner {index}"),
                "email": format!("{partner}@partners.example.sa"),
                "tier": PartnerTier::Referral,
            });
            let answer = connection
                .send(
                    "POST",
                    "/api/partners",
                    Some(&token),
                    &serde_json::to_vec(&enroll)?,
                )
                .await?;
            if answer.status != 201 {
                bail!(
                    "enrolling {partner} answered {}: {}",
                    answer.status,
                    answer.text()
                );
            }
            let path = format!("/api/partners/{partner}/referrals");
            for email in emails {
                let referral = json!({
                    "lead_email": email,
                    "clicked_at": rfc3339(adapters::clock::now_micros())?,
                });
                let answer = connection
                    .send("POST", &path, Some(&token), &serde_json::to_vec(&referral)?)
                    .await?;
                if answer.status != 201 {
                    bail!(
                        "a referral for {partner} answered {}: {}",
                        answer.status,
                        answer.text()
                    );
                }
            }
            Ok(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    Ok(())
}

pub(super) async fn lifecycle(args: LifecycleArgs) -> anyhow::Result<Value> {
    if args.concurrency == 0 || args.leads == 0 {
        bail!("--leads and --concurrency must be at least 1");
    }
    let db = open_empty(&args.target).await?;
    let engine = db.store.engine();
    let service = RunningService::start(db.store.clone()).await?;
    let leads: Vec<LeadPlan> = (1..=args.leads).map(LeadPlan::new).collect();
    enroll_partners(&service, &leads).await?;
    service.wait_caught_up().await?;

    let head_before = db.store.head_position().await?;
    let events_before = count_events(db.store.as_ref()).await?;
    let mut workers = tokio::task::JoinSet::new();
    let mut drivers = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        drivers.push(Driver {
            connection: service.connect().await?,
            admin_token: service.admin_token.clone(),
            moyasar_token: service.moyasar_token.clone(),
            stats: WorkerStats::default(),
        });
    }
    let started = Instant::now();
    for (worker, mut driver) in drivers.into_iter().enumerate() {
        let mine: Vec<LeadPlan> = leads
            .iter()
            .skip(worker)
            .step_by(args.concurrency)
            .cloned()
            .collect();
        workers.spawn(async move {
            driver.lifecycles(&mine).await?;
            anyhow::Ok(driver.stats)
        });
    }
    let mut stats = WorkerStats::default();
    while let Some(result) = workers.join_next().await {
        stats.merge(result??);
    }
    let elapsed = started.elapsed();
    let catch_up = service.wait_caught_up().await?;
    let events_appended = count_events(db.store.as_ref()).await? - events_before;
    let head_after = db.store.head_position().await?;
    service.stop().await?;

    let latencies_us = stats.latencies_sorted();
    let commands = latencies_us.len() as u64;
    Ok(json!({
        "bench": "lifecycle",
        "engine": engine,
        "database": db.name,
        "leads": args.leads,
        "concurrency": args.concurrency,
        "partners": PARTNERS,
        "referred_leads": leads.iter().filter(|lead| lead.partner_id.is_some()).count(),
        "commands": commands,
        "seconds": rounded(elapsed.as_secs_f64(), 3),
        "commands_per_sec": per_second(commands, elapsed),
        "p50_ms": percentile_ms(&latencies_us, 50),
        "p99_ms": percentile_ms(&latencies_us, 99),
        "max_ms": latencies_us.last().map_or(0.0, |us| *us as f64 / 1_000.0),
        "by_command": stats.by_command_figures(),
        "events_appended": events_appended,
        "head_position": head_after,
        "first_position": head_before + 1,
        "catch_up_ms": rounded(catch_up.as_secs_f64() * 1_000.0, 1),
        "onboard_retries": stats.onboard_retries,
        "conflict_retries": stats.transient_retries,
    }))
}

// ---------------------------------------------------------------------------------------------
// webhooks

pub(super) async fn webhooks(args: WebhooksArgs) -> anyhow::Result<Value> {
    if args.concurrency == 0 || args.invoices == 0 {
        bail!("--invoices and --concurrency must be at least 1");
    }
    let db = open_empty(&args.target).await?;
    let engine = db.store.engine();
    let service = RunningService::start(db.store.clone()).await?;

    // Setup: a lead and an invoice per delivery, over the same API (not measured).
    let leads: Vec<LeadPlan> = (1..=args.invoices)
        .map(|index| LeadPlan {
            partner_id: None,
            ..LeadPlan::new(index)
        })
        .collect();
    let mut setup = tokio::task::JoinSet::new();
    for worker in 0..args.concurrency {
        let mut driver = Driver {
            connection: service.connect().await?,
            admin_token: service.admin_token.clone(),
            moyasar_token: service.moyasar_token.clone(),
            stats: WorkerStats::default(),
        };
        let mine: Vec<LeadPlan> = leads
            .iter()
            .skip(worker)
            .step_by(args.concurrency)
            .cloned()
            .collect();
        setup.spawn(async move {
            let mut deliveries = Vec::with_capacity(mine.len());
            for lead in &mine {
                let (invoice_id, total) = driver.capture_to_invoice(lead).await?;
                deliveries.push(payment_paid(
                    &driver.moyasar_token,
                    &format!("bench-delivery-{}", lead.index),
                    &format!("bench-payment-{}", lead.index),
                    &invoice_id,
                    total,
                )?);
            }
            anyhow::Ok(deliveries)
        });
    }
    let mut deliveries = Vec::with_capacity(leads.len());
    while let Some(result) = setup.join_next().await {
        deliveries.extend(result??);
    }
    service.wait_caught_up().await?;
    let deliveries = Arc::new(deliveries);

    let events_before = count_events(db.store.as_ref()).await?;
    let (unique, unique_elapsed) = send_deliveries(&service, &deliveries, args.concurrency).await?;
    let events_from_unique = count_events(db.store.as_ref()).await? - events_before;
    let catch_up = service.wait_caught_up().await?;
    let events_before_repeats = count_events(db.store.as_ref()).await?;
    let (repeats, repeats_elapsed) =
        send_deliveries(&service, &deliveries, args.concurrency).await?;
    let events_from_repeats = count_events(db.store.as_ref()).await? - events_before_repeats;
    service.stop().await?;

    let unique_figures = phase_figures(&unique, unique_elapsed);
    let repeat_figures = phase_figures(&repeats, repeats_elapsed);
    Ok(json!({
        "bench": "webhooks",
        "engine": engine,
        "database": db.name,
        "invoices": args.invoices,
        "concurrency": args.concurrency,
        "unique": unique_figures,
        "repeats": repeat_figures,
        "requests_per_sec": unique_figures["requests_per_sec"],
        "p50_ms": unique_figures["p50_ms"],
        "p99_ms": unique_figures["p99_ms"],
        "repeat_requests_per_sec": repeat_figures["requests_per_sec"],
        "repeat_p50_ms": repeat_figures["p50_ms"],
        "repeat_p99_ms": repeat_figures["p99_ms"],
        "events_appended_by_unique": events_from_unique,
        "events_appended_by_repeats": events_from_repeats,
        "catch_up_after_unique_ms": rounded(catch_up.as_secs_f64() * 1_000.0, 1),
    }))
}

/// Posts every delivery once, over `concurrency` connections taking them round-robin; each
/// must be answered 200 `accepted` (a repeat gets the first answer again).
pub(super) async fn send_deliveries(
    service: &RunningService,
    deliveries: &Arc<Vec<Vec<u8>>>,
    concurrency: usize,
) -> anyhow::Result<(WorkerStats, Duration)> {
    let mut connections = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        connections.push(service.connect().await?);
    }
    let mut workers = tokio::task::JoinSet::new();
    let started = Instant::now();
    for (worker, connection) in connections.into_iter().enumerate() {
        let deliveries = deliveries.clone();
        let mut driver = Driver {
            connection,
            admin_token: String::new(),
            moyasar_token: service.moyasar_token.clone(),
            stats: WorkerStats::default(),
        };
        workers.spawn(async move {
            for delivery in deliveries.iter().skip(worker).step_by(concurrency) {
                driver.pay(delivery).await?;
            }
            anyhow::Ok(driver.stats)
        });
    }
    let mut stats = WorkerStats::default();
    while let Some(result) = workers.join_next().await {
        stats.merge(result??);
    }
    Ok((stats, started.elapsed()))
}
