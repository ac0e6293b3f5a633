//! Onboarding an EGS unit with ZATCA, and renewing its production CSID later.
//!
//! # Onboarding ([`onboard`])
//!
//! 1. **The key.** The unit's secp256k1 key is made from the operating system's randomness on
//!    the first run and kept (`adapters::zatca_keys`, a 0600 file in a 0700 directory); every
//!    later run, and every renewal, uses the same key.
//! 2. **The CSR**, from [`ZatcaConfig::csr_fields`]: the environment's certificate template,
//!    the EGS serial, the seller's VAT number as organisation identifier, the invoice-type
//!    flags, the location and the industry.
//! 3. **The compliance CSID**, asked for with the CSR and the OTP from the Fatoora portal, and
//!    kept (`compliance-csid.json`).
//! 4. **The compliance checks**: one signed sample document per kind the unit's invoice-type
//!    flags announce ([`Sample::required_by`]: `1100` all six, `1000` the three standard ones,
//!    `0100` the three simplified ones), each of which must pass.
//! 5. **The production CSID**, asked for with the compliance CSID and its request id, and kept
//!    (`production-csid.json`).
//!
//! Every certificate ZATCA issues is checked to be for the unit's key before it is kept: a
//! certificate for another key would have every document it stamps rejected.
//!
//! **The production CSID file is the mark of a completed onboarding.** It is written last,
//! whole (a rename), and only once ZATCA has issued it; a run that stops earlier leaves the key
//! and perhaps the compliance CSID, which nothing but onboarding uses. `config check` and
//! [`status`] read the files, never a flag of their own.
//!
//! **Decision: a failed onboarding is run again from the start, with a new OTP.** Each run asks
//! for a new compliance CSID rather than resuming with the kept one: the OTP is what authorises
//! a run, and a kept compliance CSID may be of other settings or another environment, which
//! would fail later and more confusingly. The key is kept, so the unit's identity does not
//! change between runs.
//!
//! **Decision: onboarding an onboarded unit changes nothing** ([`WhenOnboarded::SayAndStop`])
//! and says so: a new certificate is [`renew`]'s job. [`WhenOnboarded::OnboardAgain`]
//! (`zatca onboard --force`) is for a production CSID that can no longer be renewed (expired
//! or revoked): it runs every step again, and the kept production CSID is replaced only when
//! the new one is issued.
//!
//! # The compliance samples ([`compliance_documents`])
//!
//! Built here directly as `zatca::Document`s, not through the domain: they are not the
//! seller's documents and take no place in the unit's chain (`domain::sequence`), whose first
//! document is still ICV 1 after onboarding. They carry ICVs 1 to n, chained by their invoice
//! hashes from `domain::zatca::FIRST_INVOICE_PIH`, the seller of the settings, a sample
//! business buyer on the standard ones, and for each note the sample invoice it corrects and a
//! reason. They are issued and signed at `now` (Saudi local time, as the domain writes it).
//!
//! # Renewal ([`renew`])
//!
//! A new CSR with the unit's key, sent with the production CSID and a new OTP. ZATCA answers a
//! new production CSID, or 428 with a compliance CSID that must pass the compliance checks
//! first; then the production CSID is asked for with it, as in onboarding. The kept production
//! CSID is replaced only when the new one is issued, by one rename, so a failed renewal leaves
//! the unit signing with the old one until it expires.
//!
//! **Decision: renewal keeps the key.** Replacing it would need the key file and the production
//! CSID file replaced together, which two renames cannot do atomically: a crash between them
//! would leave a key that does not match the certificate, and every document rejected. A key
//! that must change (a leak) is a new onboarding in a new key directory.
//!
//! # Secrets
//!
//! The OTP, the CSIDs' secrets and tokens and the key never leave the key store and the
//! requests: [`Progress`], [`Onboarded`], [`Renewed`], [`OnboardingStatus`] and
//! [`OnboardingError`] carry none of them, and nothing here logs.

use std::fmt;

use adapters::fatoora::{
    Credentials, FatooraClient, FatooraError, Renewal, RequestId, ValidationMessage,
};
use adapters::webhooks::Secret;
use adapters::zatca_keys::{KeyStore, KeyStoreError, COMPLIANCE_FILE, PRODUCTION_FILE};
use k256::ecdsa::SigningKey;
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

use crate::zatca::ZatcaConfig;

/// A production certificate expiring within this many days is a warning (`config check`,
/// `zatca status`): a month leaves time to get an OTP and renew, and to renew again if ZATCA
/// asks for the compliance checks first.
pub const RENEWAL_WARNING_DAYS: i64 = 30;

/// A step of onboarding or renewal, as errors name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Reading what the key store holds.
    KeyStore,
    /// Making or reading the unit's key.
    Key,
    /// Asking for the compliance CSID.
    ComplianceCsid,
    /// The compliance check of one sample.
    ComplianceCheck { sample: Sample, icv: u64 },
    /// Asking for the production CSID.
    ProductionCsid,
    /// Asking for a renewed production CSID.
    Renewal,
}

impl fmt::Display for Step {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::KeyStore => formatter.write_str("reading the unit's key store"),
            Step::Key => formatter.write_str("making or reading the unit's key"),
            Step::ComplianceCsid => formatter.write_str("obtaining the compliance CSID"),
            Step::ComplianceCheck { sample, icv } => {
                write!(
                    formatter,
                    "the compliance check of the {sample} (ICV {icv})"
                )
            }
            Step::ProductionCsid => formatter.write_str("obtaining the production CSID"),
            Step::Renewal => formatter.write_str("renewing the production CSID"),
        }
    }
}

/// Why onboarding or renewal stopped. None carries a secret: Fatoora's errors keep only
/// ZATCA's codes and messages, and the key store's only paths and positions.
#[derive(Debug, thiserror::Error)]
pub enum OnboardingError {
    /// The settings cannot make a CSR or valid documents; nothing was sent.
    #[error("the ZATCA settings: {0}")]
    Settings(String),
    /// The key store cannot be read or written; its error names the file.
    #[error("{step}: {error}")]
    Keys { step: Step, error: KeyStoreError },
    /// Fatoora did not give what was asked; the advice says what to do.
    #[error("{step}: {error}; {}", advice(error))]
    Fatoora { step: Step, error: FatooraError },
    /// ZATCA judged a sample document and did not pass it.
    #[error(
        "the compliance check of the {sample} (ICV {icv}) was not passed: {}; \
         the production CSID was not asked for: fix what ZATCA names and run again with a new OTP",
        messages(errors)
    )]
    CheckNotPassed {
        sample: Sample,
        icv: u64,
        errors: Vec<ValidationMessage>,
    },
    /// A certificate ZATCA issued cannot be read, or is not for the unit's key; it was not kept.
    #[error("{step}: the certificate ZATCA issued cannot be used ({reason}); it was not kept")]
    Certificate { step: Step, reason: String },
    /// The kept production CSID's certificate cannot be read.
    #[error(
        "the kept production CSID's certificate cannot be read ({reason}): restore the key \
         directory from its backup, or onboard again (`revledger zatca onboard --force --otp OTP`)"
    )]
    KeptCertificate { reason: String },
    /// A sample document cannot be built or stamped.
    #[error("the {sample} of the compliance checks cannot be made: {reason}")]
    Sample { sample: Sample, reason: String },
    #[error(
        "the unit has no production CSID to renew: onboard it first (`revledger zatca onboard --otp OTP`)"
    )]
    NotOnboarded,
    #[error(
        "the unit has a production CSID but no key in {dir}: restore the key file from the \
         backup of the key directory, or onboard again in a new key directory"
    )]
    KeyMissing { dir: String },
}

/// What to do about a Fatoora error, in the operator's words.
fn advice(error: &FatooraError) -> &'static str {
    if error.has_code("Invalid-OTP") || error.has_code("Missing-OTP") {
        "get a new OTP from the Fatoora portal (an OTP is valid for one hour) and run again"
    } else if error.has_code("Missing-ComplianceSteps") {
        "ZATCA counts a compliance check as not passed: check REVLEDGER_ZATCA_INVOICE_TYPES \
         against what the unit was registered for, and run again with a new OTP"
    } else if error.is_retryable() {
        "ZATCA did not answer usably (an outage or a timeout): run the command again, with a new \
         OTP if ZATCA then refuses this one"
    } else {
        match error {
            FatooraError::Unauthorized => {
                "ZATCA refused the unit's credentials: run again with a new OTP; a production \
                 CSID that expired or was revoked is replaced by onboarding again \
                 (`zatca onboard --force`)"
            }
            FatooraError::Configuration { .. } => {
                "check REVLEDGER_ZATCA_BASE_URL and the OTP as typed"
            }
            _ => "ZATCA refused the request: act on its message, then run again with a new OTP",
        }
    }
}

fn messages(messages: &[ValidationMessage]) -> String {
    if messages.is_empty() {
        return "ZATCA gave no message".to_owned();
    }
    messages
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn keys_error(step: Step) -> impl FnOnce(KeyStoreError) -> OnboardingError {
    move |error| OnboardingError::Keys { step, error }
}

fn fatoora_error(step: Step) -> impl FnOnce(FatooraError) -> OnboardingError {
    move |error| OnboardingError::Fatoora { step, error }
}

/// What was done, one step at a time, for the operator to read. Never a secret: a request id
/// is ZATCA's reference for support, not a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The key was made and kept in `dir`.
    KeyMade {
        dir: String,
    },
    /// The key kept in `dir` is used.
    KeyKept {
        dir: String,
    },
    ComplianceCsidIssued {
        request_id: RequestId,
    },
    CheckPassed {
        sample: Sample,
        icv: u64,
        warnings: Vec<ValidationMessage>,
    },
    /// A renewal answered 428: the compliance checks come first.
    RenewalNeedsComplianceChecks {
        request_id: RequestId,
    },
    ProductionCsidIssued {
        request_id: RequestId,
        not_after: OffsetDateTime,
    },
}

impl fmt::Display for Progress {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Progress::KeyMade { dir } => write!(formatter, "key: made and kept in {dir} (0600)"),
            Progress::KeyKept { dir } => write!(formatter, "key: the one kept in {dir}"),
            Progress::ComplianceCsidIssued { request_id } => {
                write!(formatter, "compliance CSID: issued (request {request_id})")
            }
            Progress::CheckPassed {
                sample,
                icv,
                warnings,
            } => {
                write!(formatter, "compliance check: {sample} (ICV {icv}) passed")?;
                if !warnings.is_empty() {
                    write!(formatter, " with warnings: {}", messages(warnings))?;
                }
                Ok(())
            }
            Progress::RenewalNeedsComplianceChecks { request_id } => write!(
                formatter,
                "renewal: ZATCA asks for the compliance checks first (compliance CSID, request {request_id})"
            ),
            Progress::ProductionCsidIssued {
                request_id,
                not_after,
            } => write!(
                formatter,
                "production CSID: issued (request {request_id}), valid until {}",
                rfc3339(*not_after)
            ),
        }
    }
}

/// An instant as RFC 3339, for messages.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}

/// Whether [`onboard`] runs for a unit that already has a production CSID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenOnboarded {
    /// Say so and change nothing (renewal is [`renew`]).
    SayAndStop,
    /// Onboard again (a production CSID that expired or was revoked); the kept one is
    /// replaced only when the new one is issued.
    OnboardAgain,
}

/// How onboarding ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Onboarded {
    /// Every step passed; the production certificate is valid until `not_after`.
    Completed { not_after: OffsetDateTime },
    /// The unit was onboarded already; nothing was changed or sent.
    AlreadyOnboarded { not_after: OffsetDateTime },
}

/// How a renewal ended: the new production certificate's expiry, and whether ZATCA asked for
/// the compliance checks first (428).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renewed {
    pub not_after: OffsetDateTime,
    pub after_compliance_checks: bool,
}

/// Onboards the unit of `config` with the OTP from the Fatoora portal; see the module docs.
/// `progress` hears of each step as it is done.
pub async fn onboard(
    config: &ZatcaConfig,
    otp: &Secret,
    now: OffsetDateTime,
    when_onboarded: WhenOnboarded,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<Onboarded, OnboardingError> {
    let keys = &config.keys;
    if when_onboarded == WhenOnboarded::SayAndStop {
        let kept = keys
            .credentials(PRODUCTION_FILE)
            .map_err(keys_error(Step::KeyStore))?;
        if let Some(production) = kept {
            return Ok(Onboarded::AlreadyOnboarded {
                not_after: kept_certificate(&production)?.not_after(),
            });
        }
    }
    let checks = prepare(config, now)?;
    let client = client(config)?;
    let key = unit_key(keys, progress)?;
    let csr = csr(config, &key)?;
    let compliance = client
        .compliance_csid(&csr, otp)
        .await
        .map_err(fatoora_error(Step::ComplianceCsid))?;
    let certificate = certificate_for_key(&compliance, &key, Step::ComplianceCsid)?;
    keys.save_credentials(COMPLIANCE_FILE, &compliance)
        .map_err(keys_error(Step::ComplianceCsid))?;
    progress(&Progress::ComplianceCsidIssued {
        request_id: compliance.request_id.clone(),
    });
    pass_compliance_checks(&client, &key, &compliance, &certificate, &checks, progress).await?;
    let not_after = production_csid(&client, keys, &key, &compliance, progress).await?;
    Ok(Onboarded::Completed { not_after })
}

/// Renews the unit's production CSID with a new OTP; see the module docs.
pub async fn renew(
    config: &ZatcaConfig,
    otp: &Secret,
    now: OffsetDateTime,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<Renewed, OnboardingError> {
    let keys = &config.keys;
    let production = keys
        .credentials(PRODUCTION_FILE)
        .map_err(keys_error(Step::KeyStore))?
        .ok_or(OnboardingError::NotOnboarded)?;
    let checks = prepare(config, now)?;
    let client = client(config)?;
    let key = keys
        .existing_key()
        .map_err(keys_error(Step::Key))?
        .ok_or_else(|| OnboardingError::KeyMissing {
            dir: keys.dir().display().to_string(),
        })?;
    progress(&Progress::KeyKept {
        dir: keys.dir().display().to_string(),
    });
    let csr = csr(config, &key)?;
    let renewal = client
        .renew_production_csid(&production, &csr, otp)
        .await
        .map_err(fatoora_error(Step::Renewal))?;
    match renewal {
        Renewal::Issued(renewed) => {
            let not_after = keep_production_csid(keys, &key, &renewed, Step::Renewal, progress)?;
            Ok(Renewed {
                not_after,
                after_compliance_checks: false,
            })
        }
        Renewal::NotCompliantYet(compliance) => {
            let certificate = certificate_for_key(&compliance, &key, Step::Renewal)?;
            keys.save_credentials(COMPLIANCE_FILE, &compliance)
                .map_err(keys_error(Step::Renewal))?;
            progress(&Progress::RenewalNeedsComplianceChecks {
                request_id: compliance.request_id.clone(),
            });
            pass_compliance_checks(&client, &key, &compliance, &certificate, &checks, progress)
                .await?;
            let not_after = production_csid(&client, keys, &key, &compliance, progress).await?;
            Ok(Renewed {
                not_after,
                after_compliance_checks: true,
            })
        }
    }
}

/// The compliance samples, ready to sign at `now`.
struct Checks {
    documents: Vec<ComplianceDocument>,
    signing_time: PrimitiveDateTime,
}

/// Everything that can be known wrong before anything is sent or kept: the settings, and the
/// samples they make.
fn prepare(config: &ZatcaConfig, now: OffsetDateTime) -> Result<Checks, OnboardingError> {
    config.check().map_err(OnboardingError::Settings)?;
    let documents = compliance_documents(config, now)?;
    let (date, time) = domain::phase2::riyadh_local(now);
    Ok(Checks {
        documents,
        signing_time: PrimitiveDateTime::new(date, time),
    })
}

fn client(config: &ZatcaConfig) -> Result<FatooraClient, OnboardingError> {
    FatooraClient::new(&config.fatoora)
        .map_err(|error| OnboardingError::Settings(error.to_string()))
}

/// The unit's key: the kept one, or a new one made and kept now.
fn unit_key(
    keys: &KeyStore,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<SigningKey, OnboardingError> {
    let dir = keys.dir().display().to_string();
    if let Some(key) = keys.existing_key().map_err(keys_error(Step::Key))? {
        progress(&Progress::KeyKept { dir });
        return Ok(key);
    }
    let key = keys.signing_key().map_err(keys_error(Step::Key))?;
    progress(&Progress::KeyMade { dir });
    Ok(key)
}

/// The unit's CSR, as the API takes it (base64 of the PEM).
fn csr(config: &ZatcaConfig, key: &SigningKey) -> Result<String, OnboardingError> {
    zatca::csr::build_csr(&config.csr_fields(), key)
        .map(|csr| csr.base64_pem())
        .map_err(|error| OnboardingError::Settings(format!("the unit's CSR: {error}")))
}

/// The certificate of the kept production CSID.
fn kept_certificate(production: &Credentials) -> Result<zatca::Certificate, OnboardingError> {
    production
        .certificate()
        .map_err(|error| OnboardingError::KeptCertificate {
            reason: error.to_string(),
        })
}

/// The certificate of `credentials` ZATCA just issued, if it is for `key`.
fn certificate_for_key(
    credentials: &Credentials,
    key: &SigningKey,
    step: Step,
) -> Result<zatca::Certificate, OnboardingError> {
    let certificate = credentials
        .certificate()
        .map_err(|error| OnboardingError::Certificate {
            step,
            reason: error.to_string(),
        })?;
    match certificate.verifying_key() {
        Ok(public) if public == *key.verifying_key() => Ok(certificate),
        Ok(_) => Err(OnboardingError::Certificate {
            step,
            reason: "it is not for the unit's key".to_owned(),
        }),
        Err(error) => Err(OnboardingError::Certificate {
            step,
            reason: error.to_string(),
        }),
    }
}

/// Signs each sample with the compliance CSID's certificate and has ZATCA check it; stops at
/// the first that does not pass.
async fn pass_compliance_checks(
    client: &FatooraClient,
    key: &SigningKey,
    compliance: &Credentials,
    certificate: &zatca::Certificate,
    checks: &Checks,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<(), OnboardingError> {
    for ComplianceDocument { sample, document } in &checks.documents {
        let (sample, icv) = (*sample, document.icv);
        let signed =
            zatca::sign(document, key, certificate, checks.signing_time).map_err(|error| {
                OnboardingError::Sample {
                    sample,
                    reason: error.to_string(),
                }
            })?;
        let check = client
            .compliance_check(
                compliance,
                &signed.invoice_hash,
                &document.uuid,
                &signed.xml,
            )
            .await
            .map_err(fatoora_error(Step::ComplianceCheck { sample, icv }))?;
        let validation = check.validation;
        if !check.passed {
            // A verdict without errors still says why in its warnings.
            let errors = if validation.errors.is_empty() {
                validation.warnings
            } else {
                validation.errors
            };
            return Err(OnboardingError::CheckNotPassed {
                sample,
                icv,
                errors,
            });
        }
        progress(&Progress::CheckPassed {
            sample,
            icv,
            warnings: validation.warnings,
        });
    }
    Ok(())
}

/// Asks for the production CSID with a compliance CSID that passed the checks, and keeps it.
async fn production_csid(
    client: &FatooraClient,
    keys: &KeyStore,
    key: &SigningKey,
    compliance: &Credentials,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<OffsetDateTime, OnboardingError> {
    let production = client
        .production_csid(compliance, &compliance.request_id)
        .await
        .map_err(fatoora_error(Step::ProductionCsid))?;
    keep_production_csid(keys, key, &production, Step::ProductionCsid, progress)
}

/// Keeps a production CSID whose certificate is for the unit's key, replacing the kept one
/// whole; answers its expiry.
fn keep_production_csid(
    keys: &KeyStore,
    key: &SigningKey,
    production: &Credentials,
    step: Step,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<OffsetDateTime, OnboardingError> {
    let not_after = certificate_for_key(production, key, step)?.not_after();
    keys.save_credentials(PRODUCTION_FILE, production)
        .map_err(keys_error(step))?;
    progress(&Progress::ProductionCsidIssued {
        request_id: production.request_id.clone(),
        not_after,
    });
    Ok(not_after)
}

/// What the key store holds, for `config check` and `zatca status`: whether each file is there
/// and when the production certificate expires. Never a key, a token or a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnboardingStatus {
    pub key: bool,
    pub compliance_csid: bool,
    pub production: Option<ProductionCertificate>,
}

/// The kept production certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProductionCertificate {
    pub not_after: OffsetDateTime,
    /// Whether it is for the kept key (if not, every document it stamps is rejected).
    pub matches_key: bool,
}

impl OnboardingStatus {
    /// Whether the unit can sign and submit: a key, and a production CSID for it.
    pub fn is_complete(&self) -> bool {
        self.key
            && self
                .production
                .is_some_and(|production| production.matches_key)
    }
}

/// Reads what the unit's key store holds.
pub fn status(config: &ZatcaConfig) -> Result<OnboardingStatus, OnboardingError> {
    let keys = &config.keys;
    let key = keys.existing_key().map_err(keys_error(Step::KeyStore))?;
    let compliance_csid = keys
        .credentials(COMPLIANCE_FILE)
        .map_err(keys_error(Step::KeyStore))?
        .is_some();
    let production = match keys
        .credentials(PRODUCTION_FILE)
        .map_err(keys_error(Step::KeyStore))?
    {
        None => None,
        Some(credentials) => {
            let certificate = kept_certificate(&credentials)?;
            let public = certificate.verifying_key().ok();
            Some(ProductionCertificate {
                not_after: certificate.not_after(),
                matches_key: key
                    .as_ref()
                    .is_some_and(|key| public == Some(*key.verifying_key())),
            })
        }
    };
    Ok(OnboardingStatus {
        key: key.is_some(),
        compliance_csid,
        production,
    })
}

/// What `config check` and `zatca status` say about the unit at a moment: what the key store
/// holds, the certificate's expiry, and what the operator should act on. Never a key, a token
/// or a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnboardingReport {
    pub status: OnboardingStatus,
    /// The production certificate's, when there is one.
    pub expiry: Option<Expiry>,
    /// Not onboarded, a certificate not for the kept key, one expired or expiring within
    /// [`RENEWAL_WARNING_DAYS`].
    pub warnings: Vec<String>,
}

impl OnboardingReport {
    /// Whether the unit can sign and submit now: onboarded, and its certificate not expired.
    pub fn can_submit(&self) -> bool {
        self.status.is_complete() && self.expiry != Some(Expiry::Expired)
    }
}

/// The unit's [`OnboardingReport`] at `now`.
pub fn report(
    config: &ZatcaConfig,
    now: OffsetDateTime,
) -> Result<OnboardingReport, OnboardingError> {
    let status = status(config)?;
    let expiry = status
        .production
        .map(|production| Expiry::at(production.not_after, now));
    let mut warnings = Vec::new();
    if status.production.is_none() {
        warnings.push(
            "ZATCA onboarding is not complete: Phase 2 documents wait unsent until \
             `revledger zatca onboard --otp OTP` completes"
                .to_owned(),
        );
    } else if !status.is_complete() {
        warnings.push(
            "the production certificate is not for the kept key: ZATCA would reject every \
             document; restore the key directory from its backup, or onboard again"
                .to_owned(),
        );
    }
    if let Some(expiry) = expiry.filter(|expiry| expiry.is_warning()) {
        warnings.push(format!("the production certificate {expiry}"));
    }
    Ok(OnboardingReport {
        status,
        expiry,
        warnings,
    })
}

/// How a certificate's expiry stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// More than [`RENEWAL_WARNING_DAYS`] left.
    Valid { days_left: i64 },
    /// Within [`RENEWAL_WARNING_DAYS`]: renew now.
    ExpiresSoon { days_left: i64 },
    /// Past: ZATCA refuses what it stamps; renew, or onboard again if renewal is refused.
    Expired,
}

impl Expiry {
    /// The expiry of a certificate valid until `not_after`, seen at `now`.
    pub fn at(not_after: OffsetDateTime, now: OffsetDateTime) -> Expiry {
        let left = not_after - now;
        if left <= Duration::ZERO {
            Expiry::Expired
        } else if left < Duration::days(RENEWAL_WARNING_DAYS) {
            Expiry::ExpiresSoon {
                days_left: left.whole_days(),
            }
        } else {
            Expiry::Valid {
                days_left: left.whole_days(),
            }
        }
    }

    /// Whether the operator should act.
    pub fn is_warning(self) -> bool {
        !matches!(self, Expiry::Valid { .. })
    }
}

impl fmt::Display for Expiry {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expiry::Valid { days_left } => write!(formatter, "valid ({days_left} days left)"),
            Expiry::ExpiresSoon { days_left } => write!(
                formatter,
                "expires in {days_left} days: renew it (`revledger zatca renew --otp OTP`)"
            ),
            Expiry::Expired => formatter.write_str(
                "expired: ZATCA refuses what it stamps; renew it (`revledger zatca renew --otp OTP`), \
                 or onboard again (`revledger zatca onboard --force --otp OTP`) if renewal is refused",
            ),
        }
    }
}

mod samples;
#[cfg(test)]
mod tests;

pub use samples::{compliance_documents, ComplianceDocument, Sample};
