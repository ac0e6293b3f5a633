//! `revledger`: the command line that wires the crates together.
//!
//! `serve` runs the HTTP service, `migrate` applies the schema, `verify` recomputes every hash
//! chain, `events` prints the global log as NDJSON. The database is `sqlite://revledger.db` by
//! default (created on first use) or any `postgres://` URL.

mod bench;
mod config_cli;
mod log_cli;
mod reconcile_cli;
mod token_cli;
mod zatca_cli;

use config_cli::config_check;
use log_cli::{print_events, rebuild, verify};
use token_cli::{token_command, TokenCommand};

use std::net::SocketAddr;
use std::process::ExitCode;

use adapters::store;
use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "revledger", version, about = "Event-sourced revenue ledger")]
struct Cli {
    /// Where the events live: sqlite://PATH (created if missing) or postgres://USER@HOST/DB.
    #[arg(
        long,
        env = "REVLEDGER_DATABASE_URL",
        default_value = "sqlite://revledger.db",
        global = true
    )]
    database_url: String,

    /// A file holding the master key (32 bytes, or 64 hexadecimal digits) that wraps every
    /// personal data key in the database; without it, keys are stored unwrapped.
    #[arg(long, env = "REVLEDGER_MASTER_KEY_FILE", global = true)]
    master_key_file: Option<std::path::PathBuf>,

    /// The erasure log, kept apart from the database so that a restored backup is erased again
    /// (default: beside an embedded database's file, else `revledger-erasures.jsonl`).
    #[arg(long, env = "REVLEDGER_ERASURE_LOG", global = true)]
    erasure_log: Option<std::path::PathBuf>,

    /// Log line format on stderr.
    #[arg(long, env = "REVLEDGER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "REVLEDGER_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Moyasar webhooks: the `secret_token` configured for the webhook, comma-separated while
    /// rotating (each is accepted; enables /webhooks/moyasar).
    #[arg(
        long,
        env = "REVLEDGER_MOYASAR_SECRET_TOKEN",
        hide_env_values = true,
        value_delimiter = ','
    )]
    moyasar_secret_token: Vec<String>,
    /// A sandbox deployment: the whole ledger is test data, so Moyasar's test-mode payments
    /// (`live: false`) are applied and live ones are ignored. Off (the default): test-mode
    /// payments never touch the ledger.
    #[arg(long, env = "REVLEDGER_SANDBOX", value_parser = clap::builder::BoolishValueParser::new())]
    sandbox: bool,
    /// Calendly webhooks: the signing key (enables /webhooks/calendly).
    #[arg(long, env = "REVLEDGER_CALENDLY_SIGNING_KEY", hide_env_values = true)]
    calendly_signing_key: Option<String>,
    /// Calendly: how far a signature timestamp may be from now, in seconds.
    #[arg(long, env = "REVLEDGER_CALENDLY_TOLERANCE_SECS", default_value_t = 180)]
    calendly_tolerance_secs: i64,
    /// Partner and lead sources (Standard Webhooks): `whsec_…` secrets, comma-separated while
    /// rotating (enables /webhooks/partners).
    #[arg(
        long,
        env = "REVLEDGER_PARTNER_WEBHOOK_SECRET",
        hide_env_values = true,
        value_delimiter = ','
    )]
    partner_webhook_secret: Vec<String>,
    /// Standard Webhooks timestamp tolerance, in seconds.
    #[arg(
        long,
        env = "REVLEDGER_PARTNER_WEBHOOK_TOLERANCE_SECS",
        default_value_t = 300
    )]
    partner_webhook_tolerance_secs: i64,
    /// Webhook providers that must be enabled (moyasar, calendly, partners): starting without
    /// the secret of one listed here is an error, not a silently disabled endpoint.
    #[arg(long, env = "REVLEDGER_WEBHOOKS", value_delimiter = ',')]
    webhooks: Vec<String>,
    /// Load a generated demo history (hundreds of leads over 90 days, partners, invoices,
    /// payments, commissions) into an empty store before serving; skipped if it holds events.
    #[arg(long, env = "REVLEDGER_DEMO", value_parser = clap::builder::BoolishValueParser::new())]
    demo: bool,
    /// Bearer token of the bootstrap administrator.
    #[arg(long, env = "REVLEDGER_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    #[command(flatten)]
    seller: zatca_cli::SellerArgs,
    #[command(flatten)]
    zatca: zatca_cli::ZatcaArgs,
    /// Days a partner commission is held before it can be approved.
    #[arg(long, env = "REVLEDGER_COMMISSION_HOLD_DAYS", default_value_t = 30)]
    commission_hold_days: u32,
    /// Which referral earns a lead several partners referred.
    #[arg(long, env = "REVLEDGER_ATTRIBUTION", value_enum, default_value_t = Attribution::FirstTouch)]
    attribution: Attribution,
    /// A partner is paid out only when its approved total reaches this many halalas.
    #[arg(
        long,
        env = "REVLEDGER_PAYOUT_MINIMUM_HALALAS",
        default_value_t = 50_000
    )]
    payout_minimum_halalas: i64,
    /// Moyasar API secret key (`sk_live_…`); when set, each issued invoice without a Moyasar
    /// invoice id gets a Moyasar hosted invoice, whose id and payment URL are recorded.
    #[arg(long, env = "REVLEDGER_MOYASAR_API_KEY", hide_env_values = true)]
    moyasar_api_key: Option<String>,
    /// Moyasar API base URL (every path is relative to it).
    #[arg(long, env = "REVLEDGER_MOYASAR_BASE_URL", default_value = adapters::moyasar_api::DEFAULT_BASE_URL)]
    moyasar_base_url: String,
    /// Where Moyasar POSTs a created invoice once it is paid (its `callback_url`); not sent when
    /// unset. Payments are recorded from the Moyasar webhook either way.
    #[arg(long, env = "REVLEDGER_MOYASAR_CALLBACK_URL")]
    moyasar_callback_url: Option<String>,
    /// Seconds an open invoice with a Moyasar invoice waits for its payment webhook before the
    /// missed-payment sweep asks Moyasar (with the API key set; every open invoice is also
    /// checked once a day).
    #[arg(long, env = "REVLEDGER_MOYASAR_SWEEP_DELAY_SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    moyasar_sweep_delay_secs: u64,
    /// Seconds a request may take, its body included, before it is answered 408.
    #[arg(long, env = "REVLEDGER_REQUEST_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    request_timeout_secs: u64,
    /// Seconds a client may take to send its request headers (and a keep-alive connection may
    /// stay idle) before the connection is closed.
    #[arg(long, env = "REVLEDGER_HEADER_READ_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    header_read_timeout_secs: u64,
    /// Connections open at once. When all are taken, a newcomer takes the slot of the one that
    /// has waited longest without a request in flight (reading its headers, or idle); only when
    /// every one has a request in flight is it answered 503 and closed.
    #[arg(long, env = "REVLEDGER_MAX_CONNECTIONS", default_value_t = api::service::DEFAULT_MAX_CONNECTIONS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_connections: usize,
    /// Connections open at once from one client address (an IPv6 client is its /64); one
    /// beyond is answered 503 and closed. Behind a reverse proxy, raise it to --max-connections.
    #[arg(long, env = "REVLEDGER_MAX_CONNECTIONS_PER_CLIENT", default_value_t = api::service::DEFAULT_MAX_CONNECTIONS_PER_CLIENT, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_connections_per_client: usize,
    /// As-of reads replayed at once, each on its own low-priority thread; one beyond them is
    /// answered 429 with Retry-After. Moments before the first event or at the head need none.
    #[arg(long, env = "REVLEDGER_AS_OF_MAX_CONCURRENT", default_value_t = projections::as_of::DEFAULT_MAX_CONCURRENT, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=projections::as_of::MAX_CONCURRENT_LIMIT as u64))]
    as_of_max_concurrent: usize,
    #[command(flatten)]
    snapshots: SnapshotArgs,
    /// A bearer token Prometheus presents to `GET /metrics` on the main listener (admin and
    /// auditor tokens work too); without one of them /metrics is 401.
    #[arg(long, env = "REVLEDGER_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// A second address serving only `GET /metrics`, without a token, for a Prometheus on a
    /// private network (bind it to loopback or an internal interface).
    #[arg(long, env = "REVLEDGER_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Attribution {
    FirstTouch,
    LastTouch,
}

impl ServeArgs {
    fn into_config(self) -> anyhow::Result<api::Config> {
        use adapters::webhooks::{standard, Secret};
        let required = [
            (
                "moyasar",
                "REVLEDGER_MOYASAR_SECRET_TOKEN",
                self.moyasar_secret_token.iter().any(|s| !s.is_empty()),
            ),
            (
                "calendly",
                "REVLEDGER_CALENDLY_SIGNING_KEY",
                self.calendly_signing_key
                    .as_deref()
                    .is_some_and(|s| !s.is_empty()),
            ),
            (
                "partners",
                "REVLEDGER_PARTNER_WEBHOOK_SECRET",
                self.partner_webhook_secret.iter().any(|s| !s.is_empty()),
            ),
        ];
        for provider in self
            .webhooks
            .iter()
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
        {
            match required.iter().find(|(name, _, _)| *name == provider) {
                None => anyhow::bail!("REVLEDGER_WEBHOOKS lists {provider:?}: the providers are moyasar, calendly and partners"),
                Some((_, variable, false)) => anyhow::bail!("REVLEDGER_WEBHOOKS enables {provider} but {variable} is not set"),
                Some(_) => {}
            }
        }
        if !domain::invoice::is_saudi_vat_number(&self.seller.seller_vat_number) {
            anyhow::bail!(
                "REVLEDGER_SELLER_VAT_NUMBER {:?} is not a Saudi VAT number (15 digits, first and last 3)",
                self.seller.seller_vat_number
            );
        }
        let zatca = self.zatca.config(&self.seller)?;
        let partner_webhook_secrets: Vec<Secret> = self
            .partner_webhook_secret
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(Secret::new)
            .collect();
        for (index, secret) in partner_webhook_secrets.iter().enumerate() {
            standard::decode_secret(secret).map_err(|_| {
                anyhow::anyhow!(
                    "REVLEDGER_PARTNER_WEBHOOK_SECRET entry {} is not a whsec_<base64> secret",
                    index + 1
                )
            })?;
        }
        Ok(api::Config {
            listen: self.listen,
            moyasar_secret_tokens: self
                .moyasar_secret_token
                .into_iter()
                .filter(|s| !s.is_empty())
                .map(Secret::new)
                .collect(),
            sandbox: self.sandbox,
            calendly_signing_key: self
                .calendly_signing_key
                .filter(|s| !s.is_empty())
                .map(Secret::new),
            calendly_tolerance_secs: self.calendly_tolerance_secs,
            partner_webhook_secrets,
            partner_tolerance_secs: self.partner_webhook_tolerance_secs,
            admin_token: self.admin_token.filter(|s| !s.is_empty()).map(Secret::new),
            program: app::process::commissions::ProgramConfig {
                hold_days: self.commission_hold_days,
                attribution: match self.attribution {
                    Attribution::FirstTouch => domain::partner::AttributionModel::FirstTouch,
                    Attribution::LastTouch => domain::partner::AttributionModel::LastTouch,
                },
                payout_minimum_halalas: self.payout_minimum_halalas,
            },
            seller: self.seller.seller(),
            zatca,
            moyasar_api: self
                .moyasar_api_key
                .filter(|key| !key.is_empty())
                .map(|key| adapters::moyasar_api::MoyasarApiConfig {
                    base_url: self.moyasar_base_url,
                    callback_url: self.moyasar_callback_url.filter(|url| !url.is_empty()),
                    ..adapters::moyasar_api::MoyasarApiConfig::new(Secret::new(key))
                }),
            moyasar_sweep: app::moyasar_sweep::SweepConfig {
                delay: std::time::Duration::from_secs(self.moyasar_sweep_delay_secs),
            },
            run_workers: true,
            request_timeout: std::time::Duration::from_secs(self.request_timeout_secs),
            header_read_timeout: std::time::Duration::from_secs(self.header_read_timeout_secs),
            max_connections: self.max_connections,
            max_connections_per_client: self.max_connections_per_client,
            as_of_max_concurrent: self.as_of_max_concurrent,
            snapshots: self.snapshots.settings(),
            metrics_token: self
                .metrics_token
                .filter(|s| !s.is_empty())
                .map(Secret::new),
            metrics_listen: self.metrics_listen,
            // Set by `serve` from the global `--erasure-log`.
            erasure_log: None,
        })
    }
}

#[derive(Subcommand)]
enum WebhooksCommand {
    /// Retry dead-lettered deliveries now (one by id, or all of them).
    Replay {
        /// The dead letter's id (as listed by GET /api/webhooks/dead-letters).
        #[arg(long, conflicts_with = "all")]
        id: Option<String>,
        /// Replay every dead letter.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand)]
enum SubjectCommand {
    /// Print everything held about a person as JSON, personal values opened.
    Export {
        /// A lead id, or an email address.
        #[arg(long)]
        subject: String,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration (secrets redacted); exit 1 when it would not start.
    Check(ServeArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// When read models' snapshots are taken (by the service's worker and `revledger snapshot`);
/// an as-of read loads the latest one before its moment and folds the events after it.
#[derive(clap::Args, Clone, Copy)]
struct SnapshotArgs {
    /// Have the service's worker take snapshots as the log grows (off by default: each holds
    /// its read model's per-entity state, so storing one every N events still grows with
    /// history times that state; `revledger snapshot` takes them on demand).
    #[arg(long, env = "REVLEDGER_SNAPSHOT_WORKER", default_value_t = false, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    snapshot_worker: bool,
    /// A snapshot of each read model every this many events: an as-of read folds at most
    /// this many after loading one; fewer cost more storage.
    #[arg(long, env = "REVLEDGER_SNAPSHOT_EVERY_EVENTS", default_value_t = projections::snapshots::DEFAULT_EVERY_EVENTS, value_parser = clap::value_parser!(u64).range(1..=projections::snapshots::MAX_EVERY_EVENTS))]
    snapshot_every_events: u64,
    /// Also a snapshot at the end of each UTC day (of the events' recording times), so an
    /// as-of read at a day's end folds nothing.
    #[arg(long, env = "REVLEDGER_SNAPSHOT_AT_DAY_END", default_value_t = true, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    snapshot_at_day_end: bool,
}

impl SnapshotArgs {
    fn settings(self) -> projections::snapshots::SnapshotSettings {
        projections::snapshots::SnapshotSettings {
            worker: self.snapshot_worker,
            every_events: self.snapshot_every_events,
            at_day_end: self.snapshot_at_day_end,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service with its projections and process managers (migrates first).
    Serve(ServeArgs),
    /// Apply the embedded migrations and exit.
    Migrate,
    /// Recompute every per-stream hash chain and the audit seals; exit 0 when intact, 1 naming
    /// the first event that does not match.
    Verify {
        /// Also derive the journal's kept balances (each account, each account's day, the
        /// counters) again from its lines and name every one that differs.
        #[arg(long)]
        ledger: bool,
    },
    /// Rebuild read models from position zero (all of them when no name is given).
    Rebuild {
        /// Read models to rebuild: audit_log, funnel, crm_board, revenue, …
        names: Vec<String>,
    },
    /// Take every read-model snapshot due now (as the service's worker does) and print what
    /// was taken, one JSON line per read model.
    Snapshot {
        #[command(flatten)]
        settings: SnapshotArgs,
    },
    /// Print a read model as it was at a past position or time.
    Replay {
        /// A global position (`1234`) or an RFC 3339 time (`2026-11-01T00:00:00Z`).
        #[arg(long)]
        as_of: String,
        /// The read model to compute.
        #[arg(long)]
        projection: String,
    },
    /// Print the ZATCA Phase 1 QR (base64 TLV) for the values printed on an invoice, exactly as
    /// given, so support staff can check a printed code.
    ZatcaQr {
        #[arg(long)]
        seller_name: String,
        #[arg(long)]
        vat_number: String,
        /// As printed, e.g. 2026-11-27T09:30:00Z.
        #[arg(long)]
        timestamp: String,
        /// Total with VAT, as printed (e.g. 3448.85).
        #[arg(long)]
        total: String,
        /// VAT total, as printed (e.g. 449.85).
        #[arg(long)]
        vat: String,
    },
    /// ZATCA Phase 2: onboard the EGS unit, renew its certificate, show its status, export a
    /// period's documents.
    #[command(subcommand)]
    Zatca(zatca_cli::ZatcaCommand),
    /// Compare invoices, payments and commissions; list every mismatch (exit 1 if any). With
    /// `--provider moyasar --date YYYY-MM-DD`: compare that Riyadh day's Moyasar payments with
    /// the ledger, record the run, print the differences (exit 1 if any).
    Reconcile(reconcile_cli::ReconcileArgs),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Benchmarks: lifecycle, replay, webhooks, reads (one JSON line of figures each).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Check the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Operate on the webhook inbox.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// Erase a person's data at their request (PDPL): delete the keys of everything held about
    /// them and record it; or, with --reapply, apply the erasure log again (after a restore).
    Erase {
        /// A lead id, or an email address.
        #[arg(long, required_unless_present = "reapply", conflicts_with = "reapply")]
        subject: Option<String>,
        /// Apply every erasure of the erasure log again (idempotent).
        #[arg(long)]
        reapply: bool,
    },
    /// A person's data (PDPL subject access).
    #[command(subcommand)]
    Subject(SubjectCommand),
    /// Print the global log as NDJSON, one event per line.
    Events {
        /// Print only events with a position greater than this.
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// Stop after this many events.
        #[arg(long)]
        limit: Option<u64>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("revledger: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("revledger: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Config(ConfigCommand::Check(args)) = cli.command {
        return config_check(&cli.database_url, args);
    }
    if let Command::Bench(command) = cli.command {
        return bench::run(command).await;
    }
    if let Command::Zatca(command) = cli.command {
        return zatca_cli::run(&cli.database_url, command).await;
    }
    if let Command::ZatcaQr {
        seller_name,
        vat_number,
        timestamp,
        total,
        vat,
    } = &cli.command
    {
        use domain::zatca::{
            encode_tlv, TAG_SELLER_NAME, TAG_TIMESTAMP, TAG_TOTAL_WITH_VAT, TAG_VAT_NUMBER,
            TAG_VAT_TOTAL,
        };
        let qr = encode_tlv(&[
            (TAG_SELLER_NAME, seller_name),
            (TAG_VAT_NUMBER, vat_number),
            (TAG_TIMESTAMP, timestamp),
            (TAG_TOTAL_WITH_VAT, total),
            (TAG_VAT_TOTAL, vat),
        ])?;
        println!("{qr}");
        return Ok(ExitCode::SUCCESS);
    }
    let master_key = match &cli.master_key_file {
        Some(path) => {
            Some(adapters::personal::Vault::read_master_key(path).map_err(anyhow::Error::msg)?)
        }
        None => None,
    };
    let store = store::open_with_master_key(&cli.database_url, master_key)
        .await
        .with_context(|| format!("opening the {} store", engine_name(&cli.database_url)))?;
    let erasure_log = match &cli.erasure_log {
        Some(path) => app::personal::ErasureLog::new(path),
        None => app::personal::ErasureLog::default_for(&cli.database_url),
    };
    match cli.command {
        Command::Serve(args) => {
            let demo = args.demo;
            let mut config = args.into_config()?;
            config.erasure_log = Some(erasure_log);
            for weak in config.weak_secrets() {
                tracing::warn!(
                    setting = weak.setting,
                    entry = weak.entry,
                    problem = %weak.problem,
                    "weak secret: {weak}; serving anyway (`revledger config check` refuses it)"
                );
            }
            if let Some(zatca) = &config.zatca {
                match app::zatca::onboarding::status(zatca) {
                    Ok(status) if status.is_complete() => {}
                    Ok(_) => tracing::warn!(
                        egs_unit = %zatca.egs_unit,
                        "ZATCA Phase 2 is on but the EGS unit is not onboarded: documents wait unsent until `revledger zatca onboard --otp …`"
                    ),
                    Err(error) => tracing::warn!(%error, "the ZATCA key store cannot be read"),
                }
            }
            let listen = config.listen;
            if demo {
                load_demo(&store, &config.seller).await?;
            }
            let service = api::Service::start(store, config)
                .await
                .with_context(|| format!("starting on {listen}"))?;
            let shutdown = shutdown_signal();
            tracing::info!(address = %service.local_addr()?, "revledger listening");
            if let Some(address) = service.metrics_addr() {
                tracing::info!(address = %address?, "metrics listening (GET /metrics, no token)");
            }
            if demo {
                eprintln!("dashboard: http://{}/dashboard", service.local_addr()?);
            }
            service.run(shutdown).await?;
            tracing::info!("revledger stopped");
            Ok(ExitCode::SUCCESS)
        }
        Command::Webhooks(WebhooksCommand::Replay { id, all }) => {
            store.migrate().await.context("migrating the database")?;
            // The application's delivery use case itself: nothing is served, no worker runs.
            let config = api::Config {
                run_workers: false,
                ..Default::default()
            };
            let deliveries = app::webhooks::Deliveries::new(
                store.clone(),
                app::handlers::Handlers::new(store.clone()),
                config.delivery_config(),
            );
            let ids: Vec<String> = match (id, all) {
                (Some(id), _) => vec![id],
                (None, true) => {
                    adapters::inbox::dead_letters(&store.sql(), adapters::inbox::MAX_LIST)
                        .await?
                        .into_iter()
                        .map(|entry| entry.inbox_id)
                        .collect()
                }
                (None, false) => anyhow::bail!("say which dead letter: --id ID, or --all"),
            };
            for id in ids {
                match deliveries.replay(&id, "cli").await {
                    Ok(answer) => println!("{id}: {}", answer.status),
                    Err(error) => println!("{id}: {error}"),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            store.migrate().await.context("migrating the database")?;
            println!("migrations applied ({})", store.engine());
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { ledger } => verify(store, ledger).await,
        Command::Rebuild { names } => {
            store.migrate().await.context("migrating the database")?;
            rebuild(store, &names).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Snapshot { settings } => {
            store.migrate().await.context("migrating the database")?;
            let read_models = projections::read_models();
            let taken =
                projections::snapshots::take_all_due(&store, &read_models, settings.settings())
                    .await?;
            for taken in &taken {
                println!("{}", serde_json::to_string(taken)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay { as_of, projection } => {
            let moment = projections::AsOf::parse(&as_of).map_err(anyhow::Error::msg)?;
            let projection = projections::read_model(&projection)?;
            let scratch = projections::runtime::as_of(store, projection.clone(), moment).await?;
            let state = projection.render(&scratch).await?;
            println!("{}", serde_json::to_string_pretty(&state)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::ZatcaQr { .. } | Command::Config(_) | Command::Bench(_) | Command::Zatca(_) => {
            unreachable!("handled before the store is opened")
        }
        Command::Reconcile(args) => reconcile_cli::run(store, args).await,
        Command::Token(command) => {
            store.migrate().await.context("migrating the database")?;
            token_command(store, command).await
        }
        Command::Events { after, limit } => {
            print_events(store.as_ref(), after, limit.unwrap_or(u64::MAX)).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Erase { subject, reapply } => {
            store.migrate().await.context("migrating the database")?;
            let erasures = match subject {
                Some(subject) => {
                    let subject = app::personal::SubjectRef::parse(&subject)?;
                    vec![app::personal::erase(&store, &erasure_log, &subject, "cli").await?]
                }
                None if reapply => app::personal::reapply(&store, &erasure_log, "cli").await?,
                None => anyhow::bail!("name a --subject, or --reapply the erasure log"),
            };
            for erasure in &erasures {
                println!("{}", serde_json::to_string(erasure)?);
            }
            eprintln!(
                "{} erasure(s) applied; erasure log: {}",
                erasures.len(),
                erasure_log.path().display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Subject(SubjectCommand::Export { subject }) => {
            let subject = app::personal::SubjectRef::parse(&subject)?;
            let export = app::personal::export(&store, &subject).await?;
            println!("{}", serde_json::to_string_pretty(&export)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `serve --demo`: loads the demo history before the workers start (its process managers run
/// inside the load; the projections catch up as the service starts).
async fn load_demo(
    store: &std::sync::Arc<dyn store::EventStore>,
    seller: &domain::invoice::Seller,
) -> anyhow::Result<()> {
    store.migrate().await.context("migrating the database")?;
    let handlers = app::handlers::Handlers::new(store.clone());
    let started = std::time::Instant::now();
    match app::demo::load_demo(&handlers, seller, adapters::clock::now_micros()).await {
        Ok(summary) => tracing::info!(
            leads = summary.leads,
            invoices = summary.invoices,
            events = summary.events,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "demo history loaded"
        ),
        Err(app::demo::DemoError::StoreNotEmpty { events }) => {
            tracing::warn!(events, "--demo skipped: the store already holds events")
        }
        Err(error) => return Err(error).context("loading the demo history"),
    }
    Ok(())
}

fn engine_name(url: &str) -> &'static str {
    if url.starts_with("sqlite:") {
        "SQLite"
    } else {
        "PostgreSQL"
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("REVLEDGER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Resolves on SIGINT or SIGTERM.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    // Registered now, not on first poll: a signal that arrives between "listening" and the
    // server's first poll must still drain rather than kill the process.
    use tokio::signal::unix::{signal, SignalKind};
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        match (interrupt, terminate) {
            (Ok(mut interrupt), Ok(mut terminate)) => {
                tokio::select! {
                    _ = interrupt.recv() => {},
                    _ = terminate.recv() => {},
                }
            }
            _ => std::future::pending::<()>().await,
        }
        tracing::info!("shutdown signal received; draining");
    }
}
