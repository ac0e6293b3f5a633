//! `revledger zatca …` and the ZATCA Phase 2 settings `serve` shares: the EGS unit, the seller's
//! registration, where the unit's key and CSIDs are kept, and which Fatoora to talk to.

use std::path::PathBuf;
use std::process::ExitCode;

use adapters::fatoora::{FatooraConfig, FatooraEnvironment};
use adapters::zatca_keys::KeyStore;
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
        ZatcaCommand::Onboard(_) => anyhow::bail!("onboarding is being written"),
        ZatcaCommand::Export { from, to, out } => export(database_url, &from, &to, &out).await,
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
