//! `revledger reconcile`: the ledger's own reconciliation (invoices, payments, commissions
//! against each other), or with `--provider moyasar --date YYYY-MM-DD` the reconciliation of
//! one Riyadh day against Moyasar's payments ([`app::moyasar_sweep::Sweeper::reconcile_day`]),
//! recorded as a run of that day. Either prints a readable summary and exits 1 when anything
//! differs.

use std::process::ExitCode;
use std::sync::Arc;

use adapters::moyasar_api::{MoyasarApiConfig, MoyasarClient};
use adapters::store::EventStore;
use adapters::webhooks::Secret;
use anyhow::Context;
use clap::{Args, ValueEnum};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReconcileProvider {
    Moyasar,
}

#[derive(Args)]
pub struct ReconcileArgs {
    /// Reconcile against a payment provider's own records instead of the ledger's events
    /// against each other.
    #[arg(long, value_enum, requires = "date")]
    provider: Option<ReconcileProvider>,
    /// The Riyadh day whose payments are compared (`YYYY-MM-DD`), with `--provider`.
    #[arg(long, requires = "provider")]
    date: Option<String>,
    /// Moyasar API secret key (`sk_live_…`).
    #[arg(long, env = "REVLEDGER_MOYASAR_API_KEY", hide_env_values = true)]
    moyasar_api_key: Option<String>,
    /// Moyasar API base URL.
    #[arg(long, env = "REVLEDGER_MOYASAR_BASE_URL", default_value = adapters::moyasar_api::DEFAULT_BASE_URL)]
    moyasar_base_url: String,
}

/// Brings the reconciliation read model up to the log's head.
/// The reconciliation read model brought up to everything committed. On PostgreSQL one pass
/// can stop short: a transaction another session holds open keeps later commits below the
/// reader's watermark for a moment (`adapters::store::postgres`), so passes repeat, for at most
/// [`CATCH_UP_LIMIT`], until nothing committed is left unapplied.
async fn catch_up(store: &Arc<dyn EventStore>) -> anyhow::Result<()> {
    let projector =
        projections::Projector::new(store.clone(), projections::read_model("reconciliation")?);
    let deadline = tokio::time::Instant::now() + CATCH_UP_LIMIT;
    loop {
        projector.catch_up().await?;
        if projector.is_caught_up().await? {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the reconciliation read model did not catch up with the log within {} s",
            CATCH_UP_LIMIT.as_secs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// How long `revledger reconcile` waits for the read model to have every committed event.
const CATCH_UP_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

pub async fn run(store: Arc<dyn EventStore>, args: ReconcileArgs) -> anyhow::Result<ExitCode> {
    store.migrate().await.context("migrating the database")?;
    catch_up(&store).await?;
    match (args.provider, args.date) {
        (Some(ReconcileProvider::Moyasar), Some(date)) => {
            let key = args.moyasar_api_key.filter(|key| !key.is_empty()).context(
                "REVLEDGER_MOYASAR_API_KEY (or --moyasar-api-key) is required to ask Moyasar",
            )?;
            let client = MoyasarClient::new(&MoyasarApiConfig {
                base_url: args.moyasar_base_url,
                ..MoyasarApiConfig::new(Secret::new(key))
            })?;
            moyasar(store, Arc::new(client), &date).await
        }
        _ => ledger(&store).await,
    }
}

async fn ledger(store: &Arc<dyn EventStore>) -> anyhow::Result<ExitCode> {
    let mismatches = projections::reconciliation::mismatches(&store.sql()).await?;
    for mismatch in &mismatches {
        println!("{}", serde_json::to_string(mismatch)?);
    }
    if mismatches.is_empty() {
        println!("reconciled: no mismatches");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{} mismatches", mismatches.len());
        Ok(ExitCode::FAILURE)
    }
}

async fn moyasar(
    store: Arc<dyn EventStore>,
    client: Arc<MoyasarClient>,
    date: &str,
) -> anyhow::Result<ExitCode> {
    if app::moyasar_sweep::riyadh_day(date).is_none() {
        anyhow::bail!("--date {date:?} is not a calendar day written YYYY-MM-DD");
    }
    let handlers = app::handlers::Handlers::new(store.clone());
    let sweeper = app::moyasar_sweep::Sweeper::new(
        handlers,
        client,
        app::moyasar_sweep::SweepConfig::default(),
    );
    let report = sweeper
        .reconcile_day(date, adapters::clock::now_micros())
        .await
        .with_context(|| format!("reconciling {date} against Moyasar"))?;
    catch_up(&store).await?;
    println!(
        "moyasar {}: {} Moyasar payment(s), {} in the ledger, {} difference(s){}",
        report.date,
        report.provider_payments,
        report.ledger_payments,
        report.findings.len(),
        if report.recorded {
            ""
        } else {
            " (as the last recorded run)"
        }
    );
    for finding in &report.findings {
        println!(
            "  {:<20} {:<38} {}",
            finding.kind.as_str(),
            finding.payment_id,
            finding.detail
        );
    }
    if report.findings.is_empty() {
        println!("reconciled: Moyasar and the ledger agree");
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}
