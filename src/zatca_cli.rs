//! `revledger zatca …` and the ZATCA Phase 2 settings `serve` shares: the EGS unit, the seller's
//! registration, where the unit's key and CSIDs are kept, and which Fatoora to talk to.
//!
//! `zatca onboard`, `renew` and `status` are `app::zatca::onboarding`'s use cases with their
//! steps printed as they are done (never the OTP, a key, a token or a secret); a failure exits 1
//! naming the step and what to do. `config check`'s ZATCA lines are [`ConfigCheckSection`].

use std::path::PathBuf;
use std::process::ExitCode;

use adapters::fatoora::{FatooraConfig, FatooraEnvironment};
use adapters::webhooks::Secret;
use adapters::zatca_keys::KeyStore;
use anyhow::Context as _;
use app::zatca::onboarding::{
    self, rfc3339, Onboarded, OnboardingError, OnboardingStatus, Progress, WhenOnboarded,
};
use app::zatca::{UnitProfile, ZatcaConfig};
use clap::{Subcommand, ValueEnum};
use domain::phase2::{NationalAddress, SellerRegistration};

/// Which of ZATCA's environments; unset, Phase 2 is off (Phase 1 invoices only).
#[derive(Clone, Copy, ValueEnum, Debug)]
pub enum Environment {
    DeveloperPortal,
    Simulation,
    Production,
}

impl From<Environment> for FatooraEnvironment {
    fn from(environment: Environment) -> FatooraEnvironment {
        match environment {
            Environment::DeveloperPortal => FatooraEnvironment::DeveloperPortal,
            Environment::Simulation => FatooraEnvironment::Simulation,
            Environment::Production => FatooraEnvironment::Production,
        }
    }
}

/// The seller's name and VAT number (Phase 1 and 2) and its registration (Phase 2).
#[derive(clap::Args, Clone, Debug)]
pub struct SellerArgs {
    /// The seller's name on invoices and in the ZATCA QR.
    #[arg(long, env = "REVLEDGER_SELLER_NAME", default_value = api::service::DEFAULT_SELLER_NAME)]
    pub seller_name: String,
    /// The seller's VAT registration number (15 digits, starting and ending with 3).
    #[arg(long, env = "REVLEDGER_SELLER_VAT_NUMBER", default_value = api::service::DEFAULT_SELLER_VAT_NUMBER)]
    pub seller_vat_number: String,
    /// Phase 2: the seller's commercial registration number (CRN).
    #[arg(long, env = "REVLEDGER_SELLER_CRN")]
    pub seller_crn: Option<String>,
    /// Phase 2: the seller's national address, street.
    #[arg(long, env = "REVLEDGER_SELLER_STREET")]
    pub seller_street: Option<String>,
    /// Phase 2: building number (4 digits).
    #[arg(long, env = "REVLEDGER_SELLER_BUILDING_NUMBER")]
    pub seller_building_number: Option<String>,
    /// Phase 2: district.
    #[arg(long, env = "REVLEDGER_SELLER_DISTRICT")]
    pub seller_district: Option<String>,
    /// Phase 2: city.
    #[arg(long, env = "REVLEDGER_SELLER_CITY")]
    pub seller_city: Option<String>,
    /// Phase 2: postal code (5 digits).
    #[arg(long, env = "REVLEDGER_SELLER_POSTAL_CODE")]
    pub seller_postal_code: Option<String>,
}

impl SellerArgs {
    pub fn seller(&self) -> domain::invoice::Seller {
        domain::invoice::Seller {
            name: self.seller_name.clone(),
            vat_number: self.seller_vat_number.clone(),
        }
    }

    fn registration(&self) -> anyhow::Result<SellerRegistration> {
        let required = |value: &Option<String>, variable: &str| {
            value
                .clone()
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| anyhow::anyhow!("ZATCA Phase 2 needs {variable}"))
        };
        Ok(SellerRegistration {
            commercial_registration_number: required(&self.seller_crn, "REVLEDGER_SELLER_CRN")?,
            address: NationalAddress {
                street: required(&self.seller_street, "REVLEDGER_SELLER_STREET")?,
                building_number: required(
                    &self.seller_building_number,
                    "REVLEDGER_SELLER_BUILDING_NUMBER",
                )?,
                district: required(&self.seller_district, "REVLEDGER_SELLER_DISTRICT")?,
                city: required(&self.seller_city, "REVLEDGER_SELLER_CITY")?,
                postal_code: required(&self.seller_postal_code, "REVLEDGER_SELLER_POSTAL_CODE")?,
                country_code: "SA".to_owned(),
            },
        })
    }
}

/// The EGS unit and its way to Fatoora.
#[derive(clap::Args, Clone, Debug)]
pub struct ZatcaArgs {
    /// ZATCA Phase 2: the Fatoora environment the unit is onboarded in. Unset, Phase 2 is off.
    #[arg(long, env = "REVLEDGER_ZATCA_ENVIRONMENT", value_enum)]
    pub zatca_environment: Option<Environment>,
    /// Fatoora's base URL, when not the environment's own.
    #[arg(long, env = "REVLEDGER_ZATCA_BASE_URL")]
    pub zatca_base_url: Option<String>,
    /// The EGS unit's id: its own ICV counter and hash chain.
    #[arg(long, env = "REVLEDGER_ZATCA_EGS_UNIT", default_value = "egs-1")]
    pub zatca_egs_unit: String,
    /// Where the unit's signing key and CSIDs are kept (a 0700 directory of 0600 files).
    #[arg(long, env = "REVLEDGER_ZATCA_KEY_DIR", default_value = "zatca-keys")]
    pub zatca_key_dir: PathBuf,
    /// The unit's serial in its CSR (`1-solution|2-model|3-serial`); derived from the unit id
    /// when unset.
    #[arg(long, env = "REVLEDGER_ZATCA_EGS_SERIAL")]
    pub zatca_egs_serial: Option<String>,
    /// The branch (the CSR's OU).
    #[arg(long, env = "REVLEDGER_ZATCA_BRANCH", default_value = "Main")]
    pub zatca_branch: String,
    /// Which documents the unit issues: standard, simplified, reserved, reserved (1100: both).
    #[arg(long, env = "REVLEDGER_ZATCA_INVOICE_TYPES", default_value = "1100")]
    pub zatca_invoice_types: String,
    /// The seller's industry (the CSR's businessCategory).
    #[arg(long, env = "REVLEDGER_ZATCA_INDUSTRY", default_value = "Software")]
    pub zatca_industry: String,
}

impl ZatcaArgs {
    /// The unit's settings, `None` when Phase 2 is off; an error names what is missing or
    /// invalid.
    pub fn config(&self, seller: &SellerArgs) -> anyhow::Result<Option<ZatcaConfig>> {
        let Some(environment) = self.zatca_environment else {
            return Ok(None);
        };
        let environment = FatooraEnvironment::from(environment);
        let registration = seller.registration()?;
        let mut unit = UnitProfile::for_unit(&self.zatca_egs_unit, &registration);
        if let Some(serial) = self.zatca_egs_serial.clone().filter(|s| !s.is_empty()) {
            unit.egs_serial_number = serial;
        }
        unit.branch = self.zatca_branch.clone();
        unit.invoice_types = self.zatca_invoice_types.clone();
        unit.industry = self.zatca_industry.clone();
        let fatoora = match self.zatca_base_url.clone().filter(|u| !u.is_empty()) {
            Some(url) => FatooraConfig::with_base_url(url),
            None => FatooraConfig::new(environment),
        };
        let config = ZatcaConfig {
            environment,
            fatoora,
            egs_unit: self.zatca_egs_unit.clone(),
            seller: seller.seller(),
            registration,
            keys: KeyStore::new(&self.zatca_key_dir),
            unit,
        };
        config
            .check()
            .map_err(|problem| anyhow::anyhow!("ZATCA Phase 2 settings: {problem}"))?;
        Ok(Some(config))
    }
}

/// `revledger zatca onboard`.
#[derive(clap::Args)]
pub struct OnboardArgs {
    /// The one-time password from the Fatoora portal.
    #[arg(long, env = "REVLEDGER_ZATCA_OTP", hide_env_values = true)]
    pub otp: String,
    /// Onboard again although a production CSID is kept (it expired or was revoked); the kept
    /// one is replaced only when the new one is issued.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub seller: SellerArgs,
    #[command(flatten)]
    pub zatca: ZatcaArgs,
}

/// `revledger zatca renew`.
#[derive(clap::Args)]
pub struct RenewArgs {
    /// A new one-time password from the Fatoora portal.
    #[arg(long, env = "REVLEDGER_ZATCA_OTP", hide_env_values = true)]
    pub otp: String,
    #[command(flatten)]
    pub seller: SellerArgs,
    #[command(flatten)]
    pub zatca: ZatcaArgs,
}

/// `revledger zatca status`.
#[derive(clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub seller: SellerArgs,
    #[command(flatten)]
    pub zatca: ZatcaArgs,
}

/// `revledger zatca …`.
#[derive(Subcommand)]
pub enum ZatcaCommand {
    /// Onboard the EGS unit: key, CSR, compliance CSID, compliance checks, production CSID.
    Onboard(Box<OnboardArgs>),
    /// Renew the unit's production CSID (a new CSR with the unit's key, and a new OTP).
    Renew(Box<RenewArgs>),
    /// Whether the unit is onboarded and when its certificate expires (exit 1 when it cannot
    /// submit: not onboarded, or the certificate expired).
    Status(Box<StatusArgs>),
    /// Write every Phase 2 document issued in a period (its legal XML) for an audit.
    Export {
        /// The first day, YYYY-MM-DD (Riyadh time).
        #[arg(long)]
        from: String,
        /// The last day, YYYY-MM-DD, included.
        #[arg(long)]
        to: String,
        /// The directory to write into (created).
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs `revledger zatca …`.
pub async fn run(database_url: &str, command: ZatcaCommand) -> anyhow::Result<ExitCode> {
    match command {
        ZatcaCommand::Onboard(args) => onboard(*args).await,
        ZatcaCommand::Renew(args) => renew(*args).await,
        ZatcaCommand::Status(args) => status(&args),
        ZatcaCommand::Export { from, to, out } => export(database_url, &from, &to, &out).await,
    }
}

/// The unit's settings for a `zatca` command, which needs Phase 2 on.
fn unit_config(seller: &SellerArgs, zatca: &ZatcaArgs) -> anyhow::Result<ZatcaConfig> {
    zatca.config(seller)?.ok_or_else(|| {
        anyhow::anyhow!(
            "ZATCA Phase 2 is off: set REVLEDGER_ZATCA_ENVIRONMENT (developer-portal, simulation \
             or production) and the unit's settings"
        )
    })
}

/// An environment as the settings spell it.
fn environment_name(environment: FatooraEnvironment) -> &'static str {
    match environment {
        FatooraEnvironment::DeveloperPortal => "developer-portal",
        FatooraEnvironment::Simulation => "simulation",
        FatooraEnvironment::Production => "production",
    }
}

fn print_unit(config: &ZatcaConfig) {
    println!(
        "EGS unit {} in {} ({}), key directory {}",
        config.egs_unit,
        environment_name(config.environment),
        config.fatoora.base_url,
        config.keys.dir().display()
    );
}

/// `revledger zatca onboard`: prints each step as it is done; exit 1 naming the step that
/// failed.
async fn onboard(args: OnboardArgs) -> anyhow::Result<ExitCode> {
    let config = unit_config(&args.seller, &args.zatca)?;
    print_unit(&config);
    let when_onboarded = if args.force {
        WhenOnboarded::OnboardAgain
    } else {
        WhenOnboarded::SayAndStop
    };
    let otp = Secret::new(args.otp);
    let mut print = |progress: &Progress| println!("{progress}");
    let onboarded = onboarding::onboard(
        &config,
        &otp,
        adapters::clock::now_micros(),
        when_onboarded,
        &mut print,
    )
    .await
    .context("onboarding did not complete")?;
    match onboarded {
        Onboarded::Completed { not_after } => println!(
            "onboarding complete: the production certificate is valid until {}",
            rfc3339(not_after)
        ),
        Onboarded::AlreadyOnboarded { not_after } => println!(
            "already onboarded (the production certificate is valid until {}): nothing changed. \
             `revledger zatca renew --otp OTP` renews the certificate; `--force` onboards again",
            rfc3339(not_after)
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// `revledger zatca renew`: prints each step as it is done; exit 1 naming the step that failed
/// (the kept production CSID is then unchanged).
async fn renew(args: RenewArgs) -> anyhow::Result<ExitCode> {
    let config = unit_config(&args.seller, &args.zatca)?;
    print_unit(&config);
    let otp = Secret::new(args.otp);
    let mut print = |progress: &Progress| println!("{progress}");
    let renewed = match onboarding::renew(&config, &otp, adapters::clock::now_micros(), &mut print)
        .await
    {
        Ok(renewed) => renewed,
        Err(error @ OnboardingError::NotOnboarded) => return Err(error.into()),
        Err(error) => {
            return Err(anyhow::Error::new(error).context(
                "renewal did not complete; the kept production CSID is unchanged and signs until it expires",
            ))
        }
    };
    println!(
        "renewal complete{}: the production certificate is valid until {}",
        if renewed.after_compliance_checks {
            " (after the compliance checks)"
        } else {
            ""
        },
        rfc3339(renewed.not_after)
    );
    Ok(ExitCode::SUCCESS)
}

/// `revledger zatca status`: exit 0 when the unit can submit, 1 when not.
fn status(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let config = unit_config(&args.seller, &args.zatca)?;
    print_unit(&config);
    let report = onboarding::report(&config, adapters::clock::now_micros())?;
    let present = |present: bool| if present { "present" } else { "absent" };
    println!("key: {}", present(report.status.key));
    println!(
        "compliance CSID: {}",
        present(report.status.compliance_csid)
    );
    println!(
        "production CSID: {}",
        present(report.status.production.is_some())
    );
    println!("onboarding: {}", onboarding_word(&report.status));
    if let (Some(production), Some(expiry)) = (report.status.production, report.expiry) {
        println!(
            "certificate: until {}, {expiry}",
            rfc3339(production.not_after)
        );
    }
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(if report.can_submit() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn onboarding_word(status: &OnboardingStatus) -> &'static str {
    if status.is_complete() {
        "complete"
    } else {
        "not complete"
    }
}

/// The `zatca` part of `config check`.
pub struct ConfigCheckSection {
    /// What is printed under `zatca`.
    pub effective: serde_json::Value,
    /// What the operator should act on; `serve` would run.
    pub warnings: Vec<String>,
    /// Why the unit could not sign at all (its key store cannot be read): `config check` exits 1.
    pub error: Option<String>,
}

impl ConfigCheckSection {
    /// The section for the unit of `config` (Phase 2 off when `None`), seen at `now`.
    pub fn of(config: Option<&ZatcaConfig>, now: time::OffsetDateTime) -> ConfigCheckSection {
        let Some(config) = config else {
            return ConfigCheckSection {
                effective: serde_json::json!({"phase2": "off"}),
                warnings: Vec::new(),
                error: None,
            };
        };
        let mut effective = serde_json::json!({
            "phase2": "on",
            "environment": environment_name(config.environment),
            "base_url": config.fatoora.base_url,
            "egs_unit": config.egs_unit,
            "egs_serial_number": config.unit.egs_serial_number,
            "invoice_types": config.unit.invoice_types,
            "key_dir": config.keys.dir().display().to_string(),
        });
        let report = match onboarding::report(config, now) {
            Ok(report) => report,
            Err(error) => {
                let problem = format!("the ZATCA unit cannot sign: {error}");
                effective["key_store"] = serde_json::json!(problem);
                return ConfigCheckSection {
                    effective,
                    warnings: Vec::new(),
                    error: Some(problem),
                };
            }
        };
        let present = |present: bool| if present { "present" } else { "absent" };
        let production = report.status.production;
        effective["key"] = present(report.status.key).into();
        effective["compliance_csid"] = present(report.status.compliance_csid).into();
        effective["production_csid"] = present(production.is_some()).into();
        effective["onboarding"] = onboarding_word(&report.status).into();
        effective["certificate_expires"] =
            serde_json::json!(production.map(|production| rfc3339(production.not_after)));
        effective["certificate"] =
            serde_json::json!(report.expiry.map(|expiry| expiry.to_string()));
        effective["warnings"] = serde_json::json!(report.warnings);
        ConfigCheckSection {
            effective,
            warnings: report.warnings,
            error: None,
        }
    }
}

/// The instant a Riyadh calendar day `YYYY-MM-DD` begins, in Unix microseconds.
fn riyadh_day_start(day: &str, flag: &str) -> anyhow::Result<i64> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(day, &format)
        .map_err(|_| anyhow::anyhow!("{flag} {day:?} is not a date (YYYY-MM-DD)"))?;
    let offset = time::UtcOffset::from_hms(domain::phase2::RIYADH_OFFSET_HOURS, 0, 0)?;
    let start = date.midnight().assume_offset(offset);
    Ok(adapters::clock::unix_micros(start))
}

/// `revledger zatca export`: every Phase 2 document issued in the period, its legal XML (ZATCA's
/// cleared copy of a standard document, the stamped simplified one) in `OUT/<unit>/`, named by
/// ICV and id, and `OUT/manifest.json` listing each with its chain place, UUID, hash, PIH,
/// status, ZATCA's messages and the SHA-256 of the file written. A document not stamped yet is
/// listed without a file.
async fn export(
    database_url: &str,
    from: &str,
    to: &str,
    out: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    use sha2::{Digest, Sha256};
    let from_us = riyadh_day_start(from, "--from")?;
    let to_us = riyadh_day_start(to, "--to")? + 24 * 3600 * 1_000_000;
    if to_us <= from_us {
        anyhow::bail!("--to {to} is before --from {from}");
    }
    let store = adapters::store::open(database_url).await?;
    store.migrate().await.context("migrating the database")?;
    projections::Projector::new(store.clone(), projections::read_model("zatca")?)
        .catch_up()
        .await?;
    let documents = projections::zatca::issued_between(&store.sql(), from_us, to_us).await?;
    let handlers = app::handlers::Handlers::new(store.clone());
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut manifest = Vec::with_capacity(documents.len());
    let mut written = 0;
    for document in documents {
        let (submission, _) = handlers
            .submissions
            .load_aggregate(&document.document_id)
            .await?;
        let mut entry = serde_json::to_value(&document)?;
        if let Some(xml) = submission.legal_xml() {
            let dir = out.join(&document.egs_unit);
            std::fs::create_dir_all(&dir)?;
            let name = format!("{:08}-{}.xml", document.icv, document.document_id);
            let path = dir.join(&name);
            std::fs::write(&path, xml).with_context(|| format!("writing {}", path.display()))?;
            entry["file"] = format!("{}/{name}", document.egs_unit).into();
            entry["sha256"] = hex::encode(Sha256::digest(xml.as_bytes())).into();
            written += 1;
        }
        manifest.push(entry);
    }
    let manifest_path = out.join("manifest.json");
    std::fs::write(
        &manifest_path,
        serde_json::to_vec_pretty(&serde_json::json!({
            "from": from,
            "to": to,
            "time_zone": "Asia/Riyadh",
            "documents": manifest,
        }))?,
    )?;
    println!(
        "{} documents issued {from} to {to}; {written} XML files and {} written",
        manifest.len(),
        manifest_path.display()
    );
    Ok(ExitCode::SUCCESS)
}
