//! `bench replay`: a generated store of N events, then a rebuild of every read model.

use adapters::store::{EventMetadata, EventStore};
use anyhow::{bail, Context};
use app::command::{CommandEnvelope, CommandError};
use app::handlers::Handlers;
use app::process::{process_managers, ProcessRunner};
use domain::invoice::{Customer, InvoiceLine, IssueInvoice, Seller};
use domain::lead::LeadCommand;
use domain::partner::{PartnerCommand, PartnerTier};
use domain::payment::{PaymentCommand, PaymentStatus};
use projections::Projector;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use uuid::Uuid;

use super::*;

// ---------------------------------------------------------------------------------------------
// replay

pub(super) async fn replay(args: ReplayArgs) -> anyhow::Result<Value> {
    let (db, generation) = generated_or_reused(&args.target, args.events, args.reuse).await?;
    let engine = db.store.engine();
    let events = count_events(db.store.as_ref()).await?;
    if args.generate_only {
        return Ok(json!({
            "bench": "replay",
            "engine": engine,
            "database": db.name,
            "events": events,
            "generation": generation,
            "rebuilt": false,
            "peak_rss_mb": peak_rss_mb(),
        }));
    }
    let started = Instant::now();
    let read_models = projections::read_models().len();
    let rebuilt = rebuild_all(&db.store, args.mode).await?;
    let elapsed = started.elapsed();
    let peak_rss_mb = peak_rss_mb();
    Ok(json!({
        "bench": "replay",
        "engine": engine,
        "database": db.name,
        "events": events,
        "read_models": read_models,
        "mode": format!("{:?}", args.mode),
        "seconds": rounded(elapsed.as_secs_f64(), 3),
        "events_per_sec": per_second(events as u64, elapsed),
        "applications_per_sec": per_second(events as u64 * read_models as u64, elapsed),
        "peak_rss_mb": peak_rss_mb,
        "rss_includes_generation": !args.reuse,
        "generation": generation,
        "projections": rebuilt
            .iter()
            .map(|(name, applied, seconds)| json!({
                "name": name,
                "events": applied,
                "seconds": rounded(seconds.as_secs_f64(), 3),
                "events_per_sec": per_second(*applied, *seconds),
            }))
            .collect::<Vec<_>>(),
    }))
}

/// The store a bench measures: the target's events as they are (`reuse`, refused when it
/// holds none), or a store of `events` generated events with the generation's figures
/// (`null` when reused).
pub(super) async fn generated_or_reused(
    target: &Target,
    events: i64,
    reuse: bool,
) -> anyhow::Result<(BenchDb, Value)> {
    if !reuse {
        return generate_store(target, events).await;
    }
    let db = open_target(target).await?;
    if count_events(db.store.as_ref()).await? == 0 {
        bail!("--reuse: {} holds no events; generate first", db.name);
    }
    Ok((db, Value::Null))
}

/// Empties every read model and refolds it from position zero; per read model (or for all of
/// them in one pass): the name, the events applied and how long it took.
pub(super) async fn rebuild_all(
    store: &Arc<dyn EventStore>,
    mode: ReplayMode,
) -> anyhow::Result<Vec<(&'static str, u64, Duration)>> {
    if mode == ReplayMode::SinglePass {
        let started = Instant::now();
        let mut rebuild =
            projections::Rebuild::start(store.clone(), projections::read_models()).await?;
        while rebuild.step().await? > 0 {}
        let elapsed = started.elapsed();
        let applied = u64::try_from(rebuild.events_applied()).unwrap_or(0);
        let mut rebuilt = vec![("all read models", applied, elapsed)];
        // The swap's parts, timed within the whole: what readers (PostgreSQL) or appends
        // (SQLite) wait for is its transaction alone.
        if let Some(swap) = rebuild.swap_times() {
            rebuilt.push(("swap: staging", 0, swap.staging));
            rebuilt.push(("swap: transaction", 0, swap.transaction));
        }
        return Ok(rebuilt);
    }
    let rebuild = |projector: Projector| async move {
        let started = Instant::now();
        projector.reset().await?;
        let applied = projector.catch_up().await?;
        anyhow::Ok((projector.name(), applied, started.elapsed()))
    };
    let projectors: Vec<Projector> = projections::read_models()
        .into_iter()
        .map(|projection| Projector::new(store.clone(), projection))
        .collect();
    let mut results = Vec::with_capacity(projectors.len());
    if mode == ReplayMode::Parallel {
        let mut tasks = tokio::task::JoinSet::new();
        for projector in projectors {
            tasks.spawn(rebuild(projector));
        }
        while let Some(result) = tasks.join_next().await {
            results.push(result??);
        }
    } else {
        for projector in projectors {
            results.push(rebuild(projector).await?);
        }
    }
    Ok(results)
}

/// The process's peak resident set (`VmHWM`), in MB.
pub(super) fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(rounded(kib / 1024.0, 1))
}

/// Executes a command through a handler, deciding it again when its stream changed
/// concurrently (a bounded number of times on top of the handler's own retries). A macro, not
/// a function, because the handler's bound names `cqrs_es::Aggregate`, which this crate does
/// not depend on.
macro_rules! execute {
    ($handler:expr, $aggregate_id:expr, $command:expr) => {
        execute!($handler, $aggregate_id, $command, Uuid::now_v7())
    };
    ($handler:expr, $aggregate_id:expr, $command:expr, $command_id:expr) => {{
        let handler = $handler;
        let aggregate_id: &str = $aggregate_id;
        let command = $command;
        let command_id: Uuid = $command_id;
        let mut attempts = 0;
        loop {
            let envelope = bench_envelope(aggregate_id, command_id, command.clone());
            match handler.execute(envelope).await {
                Err(CommandError::Conflict { .. }) if attempts < MAX_TRANSIENT_RETRIES => {
                    attempts += 1;
                }
                other => break other,
            }
        }
    }};
}

pub(super) fn bench_envelope<C>(
    aggregate_id: &str,
    command_id: Uuid,
    command: C,
) -> CommandEnvelope<C> {
    CommandEnvelope {
        aggregate_id: aggregate_id.to_owned(),
        command_id,
        command,
        metadata: EventMetadata {
            actor: Some("bench".into()),
            source: Some("bench".into()),
            ..Default::default()
        },
        inbox: None,
        fresh_id: false,
    }
}

/// Fills an empty target with at least `events` events of the lifecycle mix and returns it
/// with the generation figures.
///
/// Generation is not what is measured, so it is made fast without changing what is stored:
/// on SQLite, a new file is generated on tmpfs (`/dev/shm`, where a commit's fsync costs
/// nothing) and copied into place with `VACUUM INTO`; on PostgreSQL, the database's
/// `synchronous_commit` is off while generating and reset afterwards. Events still go through
/// the command handlers and the store's append (hash chains and all), and the chains are
/// verified before the rebuild.
pub(super) async fn generate_store(
    target: &Target,
    events: i64,
) -> anyhow::Result<(BenchDb, Value)> {
    let url = if target.fresh {
        fresh_database(&target.database_url).await?
    } else {
        target.database_url.clone()
    };
    let started = Instant::now();
    let staging = match sqlite_path(&url) {
        Some(path) if !path.exists() && Path::new("/dev/shm").is_dir() => Some(path),
        _ => None,
    };
    let generated_in = match &staging {
        Some(_) => format!(
            "sqlite:///dev/shm/revledger-bench-{}.db",
            Uuid::now_v7().simple()
        ),
        None => url.clone(),
    };
    let generated = generate_into(&url, &generated_in, staging.as_deref(), events, started).await;
    if generated.is_err() && staging.is_some() {
        remove_sqlite_files(&generated_in);
    }
    generated
}

/// Removes a SQLite database file and its WAL and shared-memory files.
pub(super) fn remove_sqlite_files(url: &str) {
    if let Some(path) = sqlite_path(url) {
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(format!("{}-wal", path.display()));
        let _ = std::fs::remove_file(format!("{}-shm", path.display()));
    }
}

/// [`generate_store`] once the place is chosen: generates into `generated_in`, then copies
/// it to `staging` (the target SQLite file) when staged.
pub(super) async fn generate_into(
    url: &str,
    generated_in: &str,
    staging: Option<&Path>,
    events: i64,
    started: Instant,
) -> anyhow::Result<(BenchDb, Value)> {
    let store = adapters::store::open(generated_in).await?;
    store.migrate().await?;
    let existing = count_events(store.as_ref()).await?;
    if existing > 0 {
        bail!(
            "refusing to generate into {}: it already holds {existing} events (use --reuse to measure them, or --fresh)",
            database_name(url)
        );
    }
    let postgres = store.engine() == "postgres";
    let store = if postgres {
        set_synchronous_commit(store.as_ref(), false).await?;
        drop(store);
        adapters::store::open(generated_in).await?
    } else {
        store
    };
    let leads = generate_leads(store.clone(), events).await;
    if postgres {
        set_synchronous_commit(store.as_ref(), true).await?;
    }
    let leads = leads?;
    let generation_elapsed = started.elapsed();
    let verify_started = Instant::now();
    let report = adapters::store::verify(store.as_ref()).await?;
    if let Some(broken) = &report.first_break {
        bail!(
            "the generated store does not verify: stream {} version {}: {}",
            broken.stream_id,
            broken.version,
            broken.reason
        );
    }
    let verify_elapsed = verify_started.elapsed();
    let (store, copied) = match staging {
        Some(path) => {
            let copied = Instant::now();
            let into = path.display().to_string().replace('\'', "''");
            store
                .sql()
                .execute(&format!("VACUUM INTO '{into}'"), &[])
                .await?;
            drop(store);
            remove_sqlite_files(generated_in);
            (adapters::store::open(url).await?, Some(copied.elapsed()))
        }
        None => (store, None),
    };
    let figures = json!({
        "leads": leads,
        "seconds": rounded(generation_elapsed.as_secs_f64(), 3),
        "events_per_sec": per_second(report.events_checked, generation_elapsed),
        "staged_on_tmpfs": staging.is_some(),
        "copy_seconds": copied.map(|d| rounded(d.as_secs_f64(), 3)),
        "verified_events": report.events_checked,
        "verified_streams": report.streams_checked,
        "verify_seconds": rounded(verify_elapsed.as_secs_f64(), 3),
        "invoices_per_seller": INVOICES_PER_SELLER,
    });
    Ok((
        BenchDb {
            store,
            name: database_name(url),
        },
        figures,
    ))
}

/// Sets (or resets to the server default) the current database's `synchronous_commit` for new
/// connections.
pub(super) async fn set_synchronous_commit(store: &dyn EventStore, on: bool) -> anyhow::Result<()> {
    let setting = if on {
        "RESET synchronous_commit"
    } else {
        "SET synchronous_commit = off"
    };
    let sql = format!(
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I {setting}', current_database()); END $$"
    );
    store.sql().execute(&sql, &[]).await?;
    Ok(())
}

/// Drives lead stories through the command handlers until the log holds `events` events, with
/// the process managers running alongside; returns the number of leads.
pub(super) async fn generate_leads(store: Arc<dyn EventStore>, events: i64) -> anyhow::Result<u64> {
    let handlers = Handlers::new(store.clone());
    let (stop, stopped) = watch::channel(false);
    let runner = tokio::spawn(
        ProcessRunner::group(handlers.clone(), process_managers()).run(stopped.clone()),
    );
    let result = drive_generation(&handlers, events).await;
    // The background runner stops first: two runners of one process manager would race for
    // its checkpoint.
    let _ = stop.send(true);
    let _ = runner.await;
    let leads = result?;
    settle_process_managers(&handlers).await?;
    Ok(leads)
}

pub(super) async fn drive_generation(handlers: &Arc<Handlers>, events: i64) -> anyhow::Result<u64> {
    let at = adapters::clock::now_micros();
    for index in 0..PARTNERS {
        let id = partner_id(index);
        let enroll = PartnerCommand::Enroll {
            partner_id: id.clone(),
            name: format!("Partner {index}"),
            email: format!("{id}@partners.example.sa"),
            tier: PartnerTier::Referral,
            at,
        };
        execute!(&handlers.partners, &id, enroll)?;
    }
    let next_lead = Arc::new(AtomicU64::new(1));
    let head = Arc::new(AtomicI64::new(handlers.store.head_position().await?));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..GENERATION_CONCURRENCY {
        let handlers = handlers.clone();
        let next_lead = next_lead.clone();
        let head = head.clone();
        workers.spawn(async move {
            loop {
                let index = next_lead.fetch_add(1, Ordering::SeqCst);
                if index.is_multiple_of(HEAD_REFRESH_EVERY) {
                    head.store(handlers.store.head_position().await?, Ordering::SeqCst);
                }
                if head.load(Ordering::SeqCst) >= events {
                    return anyhow::Ok(());
                }
                lead_in_process(&handlers, &LeadPlan::new(index))
                    .await
                    .with_context(|| format!("generating lead {index}"))?;
            }
        });
    }
    while let Some(result) = workers.join_next().await {
        result??;
    }
    Ok(next_lead
        .load(Ordering::SeqCst)
        .saturating_sub(1 + GENERATION_CONCURRENCY as u64))
}

/// Runs the process managers in this task until each has reacted to everything committed.
pub(super) async fn settle_process_managers(handlers: &Arc<Handlers>) -> anyhow::Result<()> {
    let deadline = Instant::now() + CATCH_UP_DEADLINE;
    loop {
        let runner = ProcessRunner::group(handlers.clone(), process_managers());
        runner.catch_up().await?;
        if runner.is_caught_up().await? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("process managers did not catch up within {CATCH_UP_DEADLINE:?}");
        }
        tokio::time::sleep(CATCH_UP_POLL).await;
    }
}

/// The seller of a generated invoice: sellers rotate every [`INVOICES_PER_SELLER`] leads (valid
/// VAT numbers: 15 digits beginning and ending with 3).
pub(super) fn generated_seller(index: u64) -> Seller {
    let shard = index / INVOICES_PER_SELLER;
    Seller {
        name: format!("Dealix {shard}"),
        vat_number: format!("3{:013}3", shard + 1),
    }
}

/// One lead's eight commands through the handlers, as the API would run them (the payment as
/// the Moyasar webhook records it; onboarding once the process managers marked the lead paid).
pub(super) async fn lead_in_process(handlers: &Handlers, lead: &LeadPlan) -> anyhow::Result<()> {
    let id = &lead.lead_id;
    let at = adapters::clock::now_micros();
    let capture = LeadCommand::Capture {
        lead_id: id.clone(),
        name: format!("Lead {}", lead.index),
        company: Some(format!("Company {}", lead.index)),
        email: Some(lead.email.clone()),
        phone: None,
        source: if lead.partner_id.is_some() {
            "partner".into()
        } else {
            "landing_page".into()
        },
        partner_id: lead.partner_id.clone(),
        utm: None,
        owner: Some("sales-1".into()),
        at,
    };
    execute!(&handlers.leads, id, capture)?;
    execute!(&handlers.leads, id, LeadCommand::Qualify { at })?;
    let demo = LeadCommand::BookDemo {
        booking_id: format!("bench-booking-{}", lead.index),
        scheduled_for: at + time::Duration::days(2),
        at,
    };
    execute!(&handlers.leads, id, demo)?;
    let proposal = LeadCommand::SendProposal {
        plan: lead.plan,
        at,
    };
    execute!(&handlers.leads, id, proposal)?;

    let invoice_id = format!("bench-invoice-{}", lead.index);
    let seller = generated_seller(lead.index);
    let issue = IssueInvoice {
        invoice_id: invoice_id.clone(),
        customer: Customer {
            lead_id: id.clone(),
            name: format!("Company {}", lead.index),
        },
        lines: vec![InvoiceLine {
            description: format!("{} plan, one month", lead.plan.as_str()),
            quantity: 1,
            unit_price_halalas: lead.plan.price_halalas(),
            plan: Some(lead.plan),
        }],
        issued_at: at,
        due_at: at + time::Duration::days(14),
        seller: seller.clone(),
        moyasar_invoice_id: None,
    };
    let request = app::invoices::IssueRequest {
        command_id: Uuid::now_v7(),
        fresh: true,
    };
    let metadata = bench_envelope(&invoice_id, request.command_id, ()).metadata;
    let (_, invoice) = app::invoices::issue(handlers, request, issue, metadata).await?;
    let total = invoice.total_halalas();

    let payment_id = format!("bench-payment-{}", lead.index);
    let paid = PaymentCommand::RecordGatewayStatus {
        payment_id: payment_id.clone(),
        invoice_id: Some(invoice_id),
        moyasar_invoice_id: None,
        status: PaymentStatus::Paid,
        amount_halalas: total,
        fee_halalas: total / 50,
        captured_halalas: 0,
        refunded_halalas: 0,
        currency: "SAR".into(),
        at,
    };
    execute!(&handlers.payments, &payment_id, paid)?;

    let deadline = Instant::now() + ONBOARD_DEADLINE;
    let mut backoff = ONBOARD_BACKOFF_START;
    loop {
        let onboard = LeadCommand::StartOnboarding { at };
        match execute!(&handlers.leads, id, onboard) {
            Ok(_) => break,
            Err(CommandError::Rejected(_)) if Instant::now() < deadline => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ONBOARD_BACKOFF_MAX);
            }
            Err(error) => return Err(error.into()),
        }
    }
    execute!(&handlers.leads, id, LeadCommand::Activate { at })?;
    Ok(())
}
