//! `revledger token create|list|revoke`: the same use cases as the admin API's token routes.

use std::process::ExitCode;

use adapters::store;
use clap::Subcommand;

#[derive(Subcommand)]
pub(crate) enum TokenCommand {
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

/// `revledger token create|list|revoke`: the same use cases as the admin API's token routes.
pub(crate) async fn token_command(
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

pub(crate) fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `token list` as an aligned table; `-` for what a token does not have.
pub(crate) fn print_token_table(tokens: &[app::tokens::TokenInfo]) {
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
