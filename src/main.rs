//! `revledger`: the command line that wires the crates together.
//!
//! `serve` runs the HTTP service, `migrate` applies the schema, `verify` recomputes every hash
//! chain, `events` prints the global log as NDJSON. The database is `sqlite://revledger.db` by
//! default (created on first use) or any `postgres://` URL.

mod bench;
mod zatca_cli;

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use adapters::store::{self, Checkpoint, MAX_READ_BATCH};
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
            run_workers: true,
            request_timeout: std::time::Duration::from_secs(self.request_timeout_secs),
            header_read_timeout: std::time::Duration::from_secs(self.header_read_timeout_secs),
            max_connections: self.max_connections,
            max_connections_per_client: self.max_connections_per_client,
            as_of_max_concurrent: self.as_of_max_concurrent,
            metrics_token: self
                .metrics_token
                .filter(|s| !s.is_empty())
                .map(Secret::new),
            metrics_listen: self.metrics_listen,
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
enum ConfigCommand {
    /// Print the effective configuration (secrets redacted); exit 1 when it would not start.
    Check(ServeArgs),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it once (only its hash is stored).
    Create {
        /// admin, sales, finance, auditor or partner.
        #[arg(long)]
        role: String,
        /// The partner a partner token belongs to (an enrolled partner).
        #[arg(long)]
        partner: Option<String>,
        /// A note saying whose token this is.
        #[arg(long)]
        label: Option<String>,
        /// The token stops working this many days from now (1 to 3650); without it, it works
        /// until revoked.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(app::tokens::MAX_TOKEN_LIFETIME_DAYS)))]
        expires_in_days: Option<u32>,
    },
    /// List the tokens, newest first: id, role, partner, label, created, expires, revoked
    /// (never a token or its hash).
    List,
    /// Revoke a token (by id, as listed): refused at once, its dashboard sessions ended.
    Revoke {
        /// The token's id.
        id: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service with its projections and process managers (migrates first).
    Serve(ServeArgs),
    /// Apply the embedded migrations and exit.
    Migrate,
    /// Recompute every per-stream hash chain and the audit seals; exit 0 when intact, 1 naming
    /// the first event that does not match.
    Verify,
    /// Rebuild read models from position zero (all of them when no name is given).
    Rebuild {
        /// Read models to rebuild: audit_log, funnel, crm_board, revenue, …
        names: Vec<String>,
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
    /// ZATCA Phase 2: onboard the EGS unit, export a period's documents.
    #[command(subcommand)]
    Zatca(zatca_cli::ZatcaCommand),
    /// Compare invoices, payments and commissions; list every mismatch (exit 1 if any).
    Reconcile,
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Benchmarks: lifecycle, replay, webhooks (one JSON line of figures each).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Check the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Operate on the webhook inbox.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
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
    let store = store::open(&cli.database_url)
        .await
        .with_context(|| format!("opening the {} store", engine_name(&cli.database_url)))?;
    match cli.command {
        Command::Serve(args) => {
            let demo = args.demo;
            let config = args.into_config()?;
            for weak in config.weak_secrets() {
                tracing::warn!(
                    setting = weak.setting,
                    entry = weak.entry,
                    problem = %weak.problem,
                    "weak secret: {weak}; serving anyway (`revledger config check` refuses it)"
                );
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
            let config = api::Config {
                run_workers: false,
                listen: "127.0.0.1:0".parse()?,
                ..Default::default()
            };
            let service = api::Service::start(store.clone(), config).await?;
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
                match service.state().deliveries.replay(&id).await {
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
        Command::Verify => verify(store).await,
        Command::Rebuild { names } => {
            store.migrate().await.context("migrating the database")?;
            rebuild(store, &names).await?;
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
        Command::Reconcile => {
            store.migrate().await.context("migrating the database")?;
            let projector = projections::Projector::new(
                store.clone(),
                projections::read_model("reconciliation")?,
            );
            projector.catch_up().await?;
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
        Command::Token(command) => {
            store.migrate().await.context("migrating the database")?;
            token_command(store, command).await
        }
        Command::Events { after, limit } => {
            print_events(store.as_ref(), after, limit.unwrap_or(u64::MAX)).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `revledger token create|list|revoke`: the same use cases as the admin API's token routes.
async fn token_command(
    store: std::sync::Arc<dyn store::EventStore>,
    command: TokenCommand,
) -> anyhow::Result<ExitCode> {
    use app::tokens::{self, Role};
    let now = adapters::clock::now_micros();
    match command {
        TokenCommand::Create {
            role,
            partner,
            label,
            expires_in_days,
        } => {
            let role = Role::parse(&role).ok_or_else(|| {
                anyhow::anyhow!("unknown role {role:?}: admin, sales, finance, auditor or partner")
            })?;
            let request = tokens::TokenRequest {
                role,
                partner_id: partner,
                label,
                expires_at: tokens::expiry_after_days(now, expires_in_days)?,
            };
            let handlers = app::handlers::Handlers::new(store);
            let issued = tokens::create(&handlers, &request, now).await?;
            let expires = issued
                .info
                .expires_at
                .map_or("never expires".to_owned(), |at| {
                    format!("expires {}", rfc3339(at))
                });
            eprintln!(
                "token {} ({}, {expires}) created; it is shown once:",
                issued.info.token_id,
                role.as_str()
            );
            println!("{}", issued.token.expose());
        }
        TokenCommand::List => {
            print_token_table(&tokens::list(&store.sql(), now).await?);
        }
        TokenCommand::Revoke { id } => {
            let revoked = tokens::revoke(&store.sql(), &id, now).await?;
            let at = revoked.token.revoked_at.map(rfc3339).unwrap_or_default();
            println!(
                "token {id} revoked at {at}; {} dashboard session(s) ended",
                revoked.sessions_ended
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `token list` as an aligned table; `-` for what a token does not have.
fn print_token_table(tokens: &[app::tokens::TokenInfo]) {
    let header = [
        "ID", "ROLE", "PARTNER", "LABEL", "CREATED", "EXPIRES", "REVOKED", "STATUS",
    ]
    .map(str::to_owned);
    let dash = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());
    let rows: Vec<[String; 8]> = tokens
        .iter()
        .map(|token| {
            [
                token.token_id.clone(),
                token.role.as_str().to_owned(),
                dash(token.partner_id.clone()),
                // A label is one line of the table whatever was typed.
                dash(
                    token
                        .label
                        .as_ref()
                        .map(|l| l.replace(['\n', '\r', '\t'], " ")),
                ),
                rfc3339(token.created_at),
                dash(token.expires_at.map(rfc3339)),
                dash(token.revoked_at.map(rfc3339)),
                token.status.as_str().to_owned(),
            ]
        })
        .collect();
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    if tokens.len() as i64 >= app::tokens::MAX_TOKENS_LISTED {
        eprintln!(
            "(the newest {} tokens; older ones are not listed)",
            app::tokens::MAX_TOKENS_LISTED
        );
    }
}

/// `revledger config check`: the configuration `serve` would run with, secrets shown only as
/// set or unset; exit 1 when `serve` would refuse it or a secret is weak.
fn config_check(database_url: &str, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let demo = args.demo;
    let config = match args.into_config() {
        Ok(config) => config,
        Err(error) => {
            println!("configuration error: {error:#}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let weak = config.weak_secrets();
    let secret = |set: bool| if set { "[set, redacted]" } else { "[unset]" };
    let effective = serde_json::json!({
        "database_url": redact_url(database_url),
        "listen": config.listen.to_string(),
        "demo": demo,
        "sandbox": config.sandbox,
        "seller": {"name": config.seller.name, "vat_number": config.seller.vat_number},
        "webhooks": {
            "moyasar": format!("{} secret(s) [redacted]", config.moyasar_secret_tokens.len()),
            "calendly": secret(config.calendly_signing_key.is_some()),
            "calendly_tolerance_secs": config.calendly_tolerance_secs,
            "partners": format!("{} secret(s) [redacted]", config.partner_webhook_secrets.len()),
            "partner_tolerance_secs": config.partner_tolerance_secs,
        },
        "admin_token": secret(config.admin_token.is_some()),
        "metrics": {
            "token": secret(config.metrics_token.is_some()),
            "listen": config.metrics_listen.map(|address| address.to_string()),
        },
        "limits": {
            "request_timeout_secs": config.request_timeout.as_secs(),
            "header_read_timeout_secs": config.header_read_timeout.as_secs(),
            "max_connections": config.max_connections,
            "max_connections_per_client": config.max_connections_per_client,
            "as_of_max_concurrent": config.as_of_max_concurrent,
        },
        "moyasar_api": secret(config.moyasar_api.is_some()),
        "program": {
            "commission_hold_days": config.program.hold_days,
            "attribution": format!("{:?}", config.program.attribution),
            "payout_minimum_halalas": config.program.payout_minimum_halalas,
        },
        "weak_secrets": weak.iter().map(ToString::to_string).collect::<Vec<_>>(),
    });
    println!("{}", serde_json::to_string_pretty(&effective)?);
    if weak.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for secret in &weak {
        eprintln!("weak secret: {secret}");
    }
    Ok(ExitCode::FAILURE)
}

/// A database URL without its password.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:[redacted]{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
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

/// Checks the per-stream chains, then the audit trail's running hash and seals.
async fn verify(store: std::sync::Arc<dyn store::EventStore>) -> anyhow::Result<ExitCode> {
    let report = store::verify(store.as_ref()).await?;
    if let Some(broken) = &report.first_break {
        println!(
            "BROKEN: stream {} version {} position {}: {}",
            broken.stream_id, broken.version, broken.position, broken.reason
        );
        return Ok(ExitCode::FAILURE);
    }
    println!(
        "intact: {} events in {} streams verified",
        report.events_checked, report.streams_checked
    );
    let chains = app::zatca::audit::verify_chains(store.as_ref()).await?;
    if let Some(broken) = &chains.first_break {
        println!(
            "BROKEN: ZATCA chain {} at position {}: {}",
            broken.stream_id, broken.position, broken.reason
        );
        return Ok(ExitCode::FAILURE);
    }
    println!(
        "ZATCA chains intact: {} documents in {} chains linked by their PIH, {} Phase 2 hashes recomputed, {} stamped or cleared XMLs checked",
        chains.documents, chains.chains, chains.recomputed, chains.xml_checked
    );
    if !store.is_migrated().await? {
        println!("audit trail not checked: the database has not been migrated by this version");
        return Ok(ExitCode::SUCCESS);
    }
    let seals = projections::audit_log::verify_seals(store.as_ref(), &store.sql()).await;
    match seals {
        Ok(seals) => match seals.first_break {
            None => {
                println!(
                    "audit trail intact: {} events against the running hash, {} seals",
                    seals.events_checked, seals.seals_checked
                );
                Ok(ExitCode::SUCCESS)
            }
            Some(broken) => {
                let position = broken
                    .position
                    .map_or("the end of the log".to_owned(), |p| format!("position {p}"));
                println!(
                    "BROKEN: audit sequence {} at {position}: {}",
                    broken.seq, broken.reason
                );
                Ok(ExitCode::FAILURE)
            }
        },
        Err(error) => Err(error.into()),
    }
}

/// Empties and refolds the named read models (all when none is named), with a progress bar.
async fn rebuild(
    store: std::sync::Arc<dyn store::EventStore>,
    names: &[String],
) -> anyhow::Result<()> {
    let selected = if names.is_empty() {
        projections::read_models()
    } else {
        names
            .iter()
            .map(|name| projections::read_model(name))
            .collect::<Result<_, _>>()?
    };
    let head = store.head_position().await?;
    let names: Vec<&'static str> = selected.iter().map(|p| p.name()).collect();
    let bar = indicatif::ProgressBar::new(u64::try_from(head).unwrap_or(0));
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>12} [{bar:40}] {pos}/{len} positions {per_sec}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(if names.len() == 1 {
        names[0]
    } else {
        "read models"
    });
    let started = std::time::Instant::now();
    // One pass over the log for all of them: each batch is read once and applied to each.
    let mut rebuild = projections::Rebuild::start(store, selected).await?;
    while rebuild.step().await? > 0 {
        bar.set_position(u64::try_from(rebuild.checkpoint().position).unwrap_or(0));
    }
    bar.finish_and_clear();
    let events = rebuild.events_applied();
    let seconds = started.elapsed().as_secs_f64();
    let rate = if seconds > 0.0 {
        events as f64 / seconds
    } else {
        0.0
    };
    for name in names {
        println!("rebuilt {name}: {events} events in {seconds:.2} s ({rate:.0} events/s)");
    }
    Ok(())
}

/// Prints committed events in checkpoint order (position order on SQLite) to stdout, batch by
/// batch, skipping those at or below `after`.
async fn print_events(store: &dyn store::EventStore, after: i64, limit: u64) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut printed = 0u64;
    // Position order is commit order only on SQLite; elsewhere start from the beginning.
    let mut checkpoint = match store.engine() {
        "sqlite" => Checkpoint {
            transaction_id: 0,
            position: after,
        },
        _ => Checkpoint::START,
    };
    while printed < limit {
        let batch = store.read_committed(checkpoint, MAX_READ_BATCH).await?;
        let Some(last) = batch.last() else { break };
        checkpoint = Checkpoint::after(last);
        for event in batch.iter().filter(|event| event.position > after) {
            if printed == limit {
                break;
            }
            serde_json::to_writer(&mut out, event)?;
            out.write_all(b"\n")?;
            printed += 1;
        }
    }
    out.flush()?;
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
