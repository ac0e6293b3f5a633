//! `revledger config check`: the effective configuration, secrets redacted.

use std::process::ExitCode;

use crate::ServeArgs;

/// `revledger config check`: the configuration `serve` would run with, secrets shown only as
/// set or unset; exit 1 when `serve` would refuse it, a secret is weak or the ZATCA key store
/// cannot be read. ZATCA Phase 2's onboarding and certificate expiry are shown (never the key,
/// a token or a secret); an incomplete onboarding or a certificate expired or expiring within
/// 30 days is a warning on stderr, since `serve` runs with it.
pub(crate) fn config_check(database_url: &str, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let demo = args.demo;
    let config = match args.into_config() {
        Ok(config) => config,
        Err(error) => {
            println!("configuration error: {error:#}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let weak = config.weak_secrets();
    let zatca = crate::zatca_cli::ConfigCheckSection::of(
        config.zatca.as_ref(),
        adapters::clock::now_micros(),
    );
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
        "snapshots": config.snapshots,
        "moyasar_api": secret(config.moyasar_api.is_some()),
        "moyasar_sweep": {
            "enabled": config.moyasar_api.is_some(),
            "delay_secs": config.moyasar_sweep.delay.as_secs(),
            "pass_interval_secs": config.moyasar_sweep.pass_interval().as_secs(),
        },
        "program": {
            "commission_hold_days": config.program.hold_days,
            "attribution": format!("{:?}", config.program.attribution),
            "payout_minimum_halalas": config.program.payout_minimum_halalas,
        },
        "zatca": zatca.effective,
        "weak_secrets": weak.iter().map(ToString::to_string).collect::<Vec<_>>(),
    });
    println!("{}", serde_json::to_string_pretty(&effective)?);
    for warning in &zatca.warnings {
        eprintln!("warning: {warning}");
    }
    if let Some(error) = &zatca.error {
        eprintln!("{error}");
    }
    if weak.is_empty() && zatca.error.is_none() {
        return Ok(ExitCode::SUCCESS);
    }
    for secret in &weak {
        eprintln!("weak secret: {secret}");
    }
    Ok(ExitCode::FAILURE)
}

/// A database URL without its password.
pub(crate) fn redact_url(url: &str) -> String {
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
