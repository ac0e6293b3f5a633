//! Onboarding and renewing an EGS unit (`app::zatca::onboarding`, `revledger zatca onboard`,
//! `renew`, `status` and `config check`) against the local fake of Fatoora
//! ([`crate::fake_fatoora`]), which checks each sample document with the `zatca` crate and
//! gates the production CSID on the six compliance steps.

use std::path::{Path, PathBuf};
use std::process::Output;

use adapters::fatoora::{Credentials, FatooraConfig, FatooraEnvironment};
use adapters::webhooks::Secret;
use adapters::zatca_keys::{KeyStore, COMPLIANCE_FILE, KEY_FILE, PRODUCTION_FILE};
use app::zatca::onboarding::{
    self, Expiry, Onboarded, OnboardingError, Progress, Renewed, Step, WhenOnboarded,
};
use app::zatca::{UnitProfile, ZatcaConfig};
use domain::invoice::Seller;
use domain::phase2::{NationalAddress, SellerRegistration};
use serde_json::Value;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::fake_fatoora::{
    Behaviour, ComplianceStep, FakeFatoora, FakeMessage, Gate, RenewalAnswer, OTP,
};
use crate::helpers::temp_dir;

/// When the tests onboard (the fake's certificates are valid until 2030-03-17).
const NOW: OffsetDateTime = datetime!(2026-03-01 09:30:00 UTC);

/// The fake's certificates' notAfter (1,900,000,000 seconds after 1970).
const FAKE_NOT_AFTER: &str = "2030-03-17T17:46:40Z";

/// The seller's settings, as the binary reads them.
const SELLER_ENV: [(&str, &str); 8] = [
    ("REVLEDGER_SELLER_NAME", "Dealix"),
    ("REVLEDGER_SELLER_VAT_NUMBER", "310122393500003"),
    ("REVLEDGER_SELLER_CRN", "1010010000"),
    ("REVLEDGER_SELLER_STREET", "Prince Sultan"),
    ("REVLEDGER_SELLER_BUILDING_NUMBER", "2322"),
    ("REVLEDGER_SELLER_DISTRICT", "Al-Murabba"),
    ("REVLEDGER_SELLER_CITY", "Riyadh"),
    ("REVLEDGER_SELLER_POSTAL_CODE", "23333"),
];

/// A unit onboarded in simulation against `fake`, its keys in a fresh temporary directory.
struct Unit {
    dir: PathBuf,
    config: ZatcaConfig,
}

impl Unit {
    fn new(fake: &FakeFatoora) -> Unit {
        Unit::with_invoice_types(fake, "1100")
    }

    fn with_invoice_types(fake: &FakeFatoora, invoice_types: &str) -> Unit {
        let dir = temp_dir();
        let registration = SellerRegistration {
            commercial_registration_number: "1010010000".to_owned(),
            address: NationalAddress {
                street: "Prince Sultan".to_owned(),
                building_number: "2322".to_owned(),
                district: "Al-Murabba".to_owned(),
                city: "Riyadh".to_owned(),
                postal_code: "23333".to_owned(),
                country_code: "SA".to_owned(),
            },
        };
        let mut unit = UnitProfile::for_unit("egs-1", &registration);
        unit.invoice_types = invoice_types.to_owned();
        let config = ZatcaConfig {
            environment: FatooraEnvironment::Simulation,
            fatoora: FatooraConfig::with_base_url(fake.base_url.clone()),
            egs_unit: "egs-1".to_owned(),
            seller: Seller {
                name: "Dealix".to_owned(),
                vat_number: "310122393500003".to_owned(),
            },
            registration,
            keys: KeyStore::new(dir.join("keys")),
            unit,
        };
        Unit { dir, config }
    }

    fn keys(&self) -> &KeyStore {
        &self.config.keys
    }

    fn file(&self, name: &str) -> PathBuf {
        self.keys().dir().join(name)
    }

    fn production(&self) -> Option<Credentials> {
        self.keys().credentials(PRODUCTION_FILE).unwrap()
    }

    /// `onboard` with `otp`, and the progress lines it printed.
    async fn onboard(
        &self,
        otp: &str,
        when_onboarded: WhenOnboarded,
    ) -> (Result<Onboarded, OnboardingError>, Vec<String>) {
        let mut lines = Vec::new();
        let mut record = |progress: &Progress| lines.push(progress.to_string());
        let onboarded = onboarding::onboard(
            &self.config,
            &Secret::new(otp),
            NOW,
            when_onboarded,
            &mut record,
        )
        .await;
        (onboarded, lines)
    }

    async fn renew(&self, otp: &str) -> (Result<Renewed, OnboardingError>, Vec<String>) {
        let mut lines = Vec::new();
        let mut record = |progress: &Progress| lines.push(progress.to_string());
        let renewed = onboarding::renew(&self.config, &Secret::new(otp), NOW, &mut record).await;
        (renewed, lines)
    }

    /// The settings the binary is given for this unit.
    fn env(&self, fake: &FakeFatoora) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = SELLER_ENV
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        for (name, value) in [
            ("REVLEDGER_ZATCA_ENVIRONMENT", "simulation".to_owned()),
            ("REVLEDGER_ZATCA_BASE_URL", fake.base_url.clone()),
            ("REVLEDGER_ZATCA_EGS_UNIT", "egs-1".to_owned()),
            (
                "REVLEDGER_ZATCA_KEY_DIR",
                self.keys().dir().display().to_string(),
            ),
        ] {
            env.push((name.to_owned(), value));
        }
        env
    }

    /// Runs the binary with `args` and this unit's settings, off the runtime that serves the
    /// fake.
    async fn run(&self, fake: &FakeFatoora, args: &[&str]) -> Output {
        let mut command = crate::cli::revledger(&self.dir);
        command.args(args).envs(self.env(fake));
        tokio::task::spawn_blocking(move || command.output().expect("run revledger"))
            .await
            .unwrap()
    }

    /// What nothing may ever print: the CSIDs' secrets and tokens, and the key's PEM lines.
    fn secrets(&self) -> Vec<String> {
        let mut secrets = Vec::new();
        for file in [COMPLIANCE_FILE, PRODUCTION_FILE] {
            if let Some(credentials) = self.keys().credentials(file).unwrap() {
                secrets.push(credentials.secret.expose().to_owned());
                secrets.push(credentials.binary_security_token.clone());
            }
        }
        if let Ok(pem) = std::fs::read_to_string(self.file(KEY_FILE)) {
            secrets.extend(
                pem.lines()
                    .filter(|line| !line.starts_with("-----") && !line.is_empty())
                    .map(str::to_owned),
            );
        }
        secrets
    }

    fn assert_shows_no_secret(&self, shown: &str) {
        let secrets = self.secrets();
        assert!(!secrets.is_empty());
        for secret in secrets {
            assert!(!shown.contains(&secret), "a secret is shown: {shown}");
        }
    }
}

impl Drop for Unit {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn onboarding_passes_the_six_compliance_checks_and_keeps_the_production_csid_private() {
    let fake = FakeFatoora::start(Gate::Simulation).await;
    let unit = Unit::new(&fake);

    let (onboarded, lines) = unit.onboard(OTP, WhenOnboarded::SayAndStop).await;

    let Onboarded::Completed { not_after } = onboarded.unwrap() else {
        panic!("a first onboarding completes");
    };
    assert_eq!(onboarding::rfc3339(not_after), FAKE_NOT_AFTER);
    let compliance = unit.keys().credentials(COMPLIANCE_FILE).unwrap().unwrap();
    assert_eq!(
        fake.passed_steps(&compliance.binary_security_token),
        ComplianceStep::ALL,
        "the fake saw all six steps pass"
    );
    assert_eq!(fake.received_on("POST /compliance/invoices").len(), 6);
    let production = unit.production().expect("the production CSID is kept");
    let key = unit
        .keys()
        .existing_key()
        .unwrap()
        .expect("the key is kept");
    assert_eq!(
        production.certificate().unwrap().verifying_key().unwrap(),
        *key.verifying_key(),
        "the production certificate is for the kept key"
    );
    #[cfg(unix)]
    {
        for file in [KEY_FILE, COMPLIANCE_FILE, PRODUCTION_FILE] {
            assert_eq!(mode(&unit.file(file)), 0o600, "{file}");
        }
        assert_eq!(mode(unit.keys().dir()), 0o700);
    }
    assert!(lines[0].starts_with("key: made"), "{lines:?}");
    assert_eq!(
        lines.iter().filter(|line| line.ends_with("passed")).count(),
        6,
        "{lines:?}"
    );
    assert!(lines.last().unwrap().starts_with("production CSID: issued"));
    unit.assert_shows_no_secret(&lines.join("\n"));
    let status = onboarding::status(&unit.config).unwrap();
    assert!(status.is_complete() && status.compliance_csid);
}

#[tokio::test]
async fn onboarding_an_onboarded_unit_says_so_and_changes_nothing() {
    let fake = FakeFatoora::start(Gate::Simulation).await;
    let unit = Unit::new(&fake);
    unit.onboard(OTP, WhenOnboarded::SayAndStop)
        .await
        .0
        .unwrap();
    let files = || {
        [KEY_FILE, COMPLIANCE_FILE, PRODUCTION_FILE]
            .map(|file| std::fs::read(unit.file(file)).unwrap())
    };
    let before = files();
    let requests = fake.received().len();

    let (again, lines) = unit.onboard(OTP, WhenOnboarded::SayAndStop).await;

    assert!(
        matches!(again.unwrap(), Onboarded::AlreadyOnboarded { .. }),
        "already onboarded"
    );
    assert!(lines.is_empty(), "no step was taken: {lines:?}");
    assert_eq!(fake.received().len(), requests, "nothing was sent");
    assert_eq!(files(), before, "nothing was changed");
}

#[tokio::test]
async fn onboarding_again_with_force_keeps_the_key_and_replaces_the_production_csid() {
    let fake = FakeFatoora::start(Gate::Simulation).await;
    let unit = Unit::new(&fake);
    unit.onboard(OTP, WhenOnboarded::SayAndStop)
        .await
        .0
        .unwrap();
    let key = std::fs::read(unit.file(KEY_FILE)).unwrap();
    let first = unit.production().unwrap();

    let (again, lines) = unit.onboard(OTP, WhenOnboarded::OnboardAgain).await;

    assert!(matches!(again.unwrap(), Onboarded::Completed { .. }));
    assert!(lines[0].starts_with("key: the one kept"), "{lines:?}");
    assert_eq!(std::fs::read(unit.file(KEY_FILE)).unwrap(), key);
    assert_ne!(
        unit.production().unwrap().binary_security_token,
        first.binary_security_token
    );
}

#[tokio::test]
async fn a_wrong_otp_is_named_invalid_otp_and_leaves_no_csid() {
    let fake = FakeFatoora::start(Gate::Simulation).await;
    let unit = Unit::new(&fake);

    let (refused, lines) = unit.onboard("999999", WhenOnboarded::SayAndStop).await;

    let error = refused.unwrap_err();
    assert!(
        matches!(&error, OnboardingError::Fatoora { step: Step::ComplianceCsid, error } if error.has_code("Invalid-OTP")),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("Invalid-OTP"), "{message}");
    assert!(message.contains("new OTP"), "says what to do: {message}");
    assert!(unit.production().is_none(), "no production CSID");
    assert!(unit.keys().credentials(COMPLIANCE_FILE).unwrap().is_none());
    assert_eq!(lines.len(), 1, "only the key was made: {lines:?}");
    assert!(!onboarding::status(&unit.config).unwrap().is_complete());
}

#[tokio::test]
async fn a_sample_zatca_does_not_pass_is_named_with_its_messages_and_no_production_csid_is_asked_for(
) {
    let fake = FakeFatoora::start(Gate::Simulation).await;
    let unit = Unit::new(&fake);
    fake.set(Behaviour::Reject(vec![FakeMessage::new(
        "BR-KSA-25",
        "KSA",
        "The seller's address is incomplete",
    )]));

    let (refused, _) = unit.onboard(OTP, WhenOnboarded::SayAndStop).await;

    let message = refused.unwrap_err().to_string();
    assert!(
        message.contains("standard tax invoice (ICV 1)"),
        "names the document: {message}"
    );
    assert!(
        message.contains("BR-KSA-25: The seller's address is incomplete"),
        "{message}"
    );
    assert!(fake.received_on("POST /production/csids").is_empty());
    assert!(unit.production().is_none());
    assert!(
        unit.keys().credentials(COMPLIANCE_FILE).unwrap().is_some(),
        "the compliance CSID is kept (nothing but onboarding uses it)"
    );
}

#[tokio::test]
async fn a_production_csid_zatca_refuses_leaves_no_production_csid_file() {
    // A standard-only unit checks three samples; the fake, like simulation for a unit
    // registered for both kinds, wants all six before the production CSID.
    let fake = FakeFatoora::start(Gate::Simulation).await;
    let unit = Unit::with_invoice_types(&fake, "1000");

    let (refused, lines) = unit.onboard(OTP, WhenOnboarded::SayAndStop).await;

    assert_eq!(fake.received_on("POST /compliance/invoices").len(), 3);
    assert_eq!(
        lines.iter().filter(|line| line.ends_with("passed")).count(),
        3
    );
    let message = refused.unwrap_err().to_string();
    assert!(
        message.starts_with("obtaining the production CSID"),
        "{message}"
    );
    assert!(message.contains("Missing-ComplianceSteps"), "{message}");
    assert!(
        message.contains("REVLEDGER_ZATCA_INVOICE_TYPES"),
        "{message}"
    );
    assert!(unit.production().is_none());
}

#[tokio::test]
async fn an_outage_says_to_run_again_and_leaves_no_production_csid() {
    let fake = FakeFatoora::start(Gate::Simulation).await;
    let unit = Unit::new(&fake);
    fake.set(Behaviour::Fail(axum::http::StatusCode::SERVICE_UNAVAILABLE));

    let (refused, _) = unit.onboard(OTP, WhenOnboarded::SayAndStop).await;

    let message = refused.unwrap_err().to_string();
    assert!(message.contains("run the command again"), "{message}");
    assert!(unit.production().is_none());
}

#[tokio::test]
async fn a_renewal_answered_200_replaces_the_production_csid_and_keeps_the_key() {
    let fake = FakeFatoora::start(Gate::Simulation).await;
    let unit = Unit::new(&fake);
    unit.onboard(OTP, WhenOnboarded::SayAndStop)
        .await
        .0
        .unwrap();
    let before = unit.production().unwrap();
    let key = std::fs::read(unit.file(KEY_FILE)).unwrap();

    let (renewed, lines) = unit.renew(OTP).await;

    let renewed = renewed.unwrap();
    assert!(!renewed.after_compliance_checks);
    let after = unit.production().unwrap();
    assert_ne!(after.binary_security_token, before.binary_security_token);
    assert_eq!(std::fs::read(unit.file(KEY_FILE)).unwrap(), key);
    let renewal = &fake.received_on("PATCH /production/csids")[0];
    assert_eq!(renewal.header("otp"), Some(OTP));
    assert!(lines.last().unwrap().starts_with("production CSID: issued"));
    #[cfg(unix)]
    assert_eq!(mode(&unit.file(PRODUCTION_FILE)), 0o600);
    unit.assert_shows_no_secret(&lines.join("\n"));
}

#[tokio::test]
async fn a_renewal_answered_428_passes_the_compliance_checks_then_gets_the_production_csid() {
    let fake = FakeFatoora::start(Gate::Simulation).await;
    let unit = Unit::new(&fake);
    unit.onboard(OTP, WhenOnboarded::SayAndStop)
        .await
        .0
        .unwrap();
    let before = unit.production().unwrap();
    fake.set_renewal(RenewalAnswer::NotCompliantYet);

    let (renewed, lines) = unit.renew(OTP).await;

    let renewed = renewed.unwrap();
    assert!(renewed.after_compliance_checks);
    let compliance = unit.keys().credentials(COMPLIANCE_FILE).unwrap().unwrap();
    assert_eq!(
        fake.passed_steps(&compliance.binary_security_token),
        ComplianceStep::ALL,
        "the renewal's compliance CSID passed all six checks"
    );
    let after = unit.production().unwrap();
    assert_ne!(after.binary_security_token, before.binary_security_token);
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with("renewal: ZATCA asks for the compliance checks")),
        "{lines:?}"
    );
    assert_eq!(fake.received_on("POST /production/csids").len(), 2);
}

#[tokio::test]
async fn a_failed_renewal_keeps_the_production_csid_it_had() {
    let fake = FakeFatoora::start(Gate::Simulation).await;
    let unit = Unit::new(&fake);
    unit.onboard(OTP, WhenOnboarded::SayAndStop)
        .await
        .0
        .unwrap();
    let before = std::fs::read(unit.file(PRODUCTION_FILE)).unwrap();

    let (refused, _) = unit.renew("999999").await;
    assert!(refused.unwrap_err().to_string().contains("Invalid-OTP"));
    assert_eq!(std::fs::read(unit.file(PRODUCTION_FILE)).unwrap(), before);

    fake.set_renewal(RenewalAnswer::NotCompliantYet);
    fake.set(Behaviour::Reject(vec![FakeMessage::new(
        "BR-KSA-25",
        "KSA",
        "The seller's address is incomplete",
    )]));
    let (refused, _) = unit.renew(OTP).await;
    assert!(matches!(
        refused.unwrap_err(),
        OnboardingError::CheckNotPassed { icv: 1, .. }
    ));
    assert_eq!(std::fs::read(unit.file(PRODUCTION_FILE)).unwrap(), before);
}

#[tokio::test]
async fn renewing_a_unit_never_onboarded_says_to_onboard_it_first() {
    let fake = FakeFatoora::start(Gate::Simulation).await;
    let unit = Unit::new(&fake);

    let (refused, _) = unit.renew(OTP).await;

    assert!(matches!(refused, Err(OnboardingError::NotOnboarded)));
    assert!(fake.received().is_empty());
}

#[tokio::test]
async fn config_check_shows_onboarding_and_the_certificates_expiry_never_a_secret() {
    let fake = FakeFatoora::start(Gate::Simulation).await;
    let unit = Unit::new(&fake);

    let before = unit.run(&fake, &["config", "check"]).await;
    assert!(before.status.success(), "{}", text(&before));
    let effective: Value = serde_json::from_slice(&before.stdout).unwrap();
    assert_eq!(effective["zatca"]["phase2"], "on");
    assert_eq!(effective["zatca"]["onboarding"], "not complete");
    assert_eq!(effective["zatca"]["production_csid"], "absent");
    assert!(
        String::from_utf8_lossy(&before.stderr).contains("onboarding is not complete"),
        "{}",
        text(&before)
    );

    unit.onboard(OTP, WhenOnboarded::SayAndStop)
        .await
        .0
        .unwrap();
    let after = unit.run(&fake, &["config", "check"]).await;

    assert!(after.status.success(), "{}", text(&after));
    let effective: Value = serde_json::from_slice(&after.stdout).unwrap();
    let zatca = &effective["zatca"];
    assert_eq!(zatca["environment"], "simulation");
    assert_eq!(zatca["egs_unit"], "egs-1");
    assert_eq!(zatca["key"], "present");
    assert_eq!(zatca["compliance_csid"], "present");
    assert_eq!(zatca["production_csid"], "present");
    assert_eq!(zatca["onboarding"], "complete");
    assert_eq!(zatca["certificate_expires"], FAKE_NOT_AFTER);
    assert_eq!(zatca["warnings"], serde_json::json!([]), "{}", text(&after));
    unit.assert_shows_no_secret(&text(&after));
}

#[tokio::test]
async fn a_certificate_expiring_within_thirty_days_or_expired_is_a_warning_naming_what_to_run() {
    let fake = FakeFatoora::start(Gate::Simulation).await;
    let unit = Unit::new(&fake);
    unit.onboard(OTP, WhenOnboarded::SayAndStop)
        .await
        .0
        .unwrap();
    let not_after = unit
        .production()
        .unwrap()
        .certificate()
        .unwrap()
        .not_after();

    let valid = onboarding::report(&unit.config, not_after - Duration::days(31)).unwrap();
    assert!(valid.warnings.is_empty() && valid.can_submit(), "{valid:?}");

    let soon = onboarding::report(&unit.config, not_after - Duration::days(10)).unwrap();
    assert_eq!(soon.expiry, Some(Expiry::ExpiresSoon { days_left: 10 }));
    assert!(soon.can_submit());
    assert_eq!(soon.warnings.len(), 1, "{soon:?}");
    assert!(
        soon.warnings[0].contains("expires in 10 days") && soon.warnings[0].contains("zatca renew"),
        "{soon:?}"
    );

    let expired = onboarding::report(&unit.config, not_after + Duration::seconds(1)).unwrap();
    assert_eq!(expired.expiry, Some(Expiry::Expired));
    assert!(!expired.can_submit());
    assert!(expired.warnings[0].contains("expired"), "{expired:?}");
}

#[tokio::test]
async fn a_production_certificate_not_for_the_kept_key_is_not_a_complete_onboarding() {
    let fake = FakeFatoora::start(Gate::Simulation).await;
    let unit = Unit::new(&fake);
    unit.onboard(OTP, WhenOnboarded::SayAndStop)
        .await
        .0
        .unwrap();
    // Another key in the key file: the kept certificate no longer matches it.
    std::fs::remove_file(unit.file(KEY_FILE)).unwrap();
    unit.keys().signing_key().unwrap();

    let report = onboarding::report(&unit.config, NOW).unwrap();

    assert!(!report.status.is_complete());
    assert!(
        report.warnings[0].contains("not for the kept key"),
        "{report:?}"
    );
}

#[tokio::test]
async fn config_check_exits_1_when_the_key_store_cannot_be_read_without_quoting_it() {
    let fake = FakeFatoora::start(Gate::Simulation).await;
    let unit = Unit::new(&fake);
    unit.onboard(OTP, WhenOnboarded::SayAndStop)
        .await
        .0
        .unwrap();
    let production = unit.production().unwrap();
    // A secret written as a number, as a hand edit might leave it: a JSON parser's message
    // would quote it.
    let secret = "4242424242";
    let broken = format!(
        r#"{{"request_id": "1", "binary_security_token": "{}", "secret": {secret}}}"#,
        production.binary_security_token,
    );
    std::fs::write(unit.file(PRODUCTION_FILE), broken).unwrap();

    let output = unit.run(&fake, &["config", "check"]).await;

    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let shown = text(&output);
    assert!(shown.contains("the ZATCA unit cannot sign"), "{shown}");
    assert!(shown.contains("reading the unit's key store"), "{shown}");
    assert!(shown.contains(PRODUCTION_FILE), "{shown}");
    assert!(
        !shown.contains(&production.binary_security_token),
        "{shown}"
    );
    assert!(!shown.contains(secret), "{shown}");
}

#[tokio::test]
async fn config_check_with_phase_2_off_says_so() {
    let dir = temp_dir();
    let mut command = crate::cli::revledger(&dir);
    command.args(["config", "check"]);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let effective: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(effective["zatca"], serde_json::json!({"phase2": "off"}));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_binary_onboards_against_fatoora_prints_each_step_and_says_when_already_done() {
    let fake = FakeFatoora::start(Gate::Simulation).await;
    let unit = Unit::new(&fake);

    let refused = unit
        .run(&fake, &["zatca", "onboard", "--otp", "999999"])
        .await;
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(text(&refused).contains("Invalid-OTP"), "{}", text(&refused));
    assert!(!unit.file(PRODUCTION_FILE).exists());

    let onboarded = unit.run(&fake, &["zatca", "onboard", "--otp", OTP]).await;
    assert!(onboarded.status.success(), "{}", text(&onboarded));
    let printed = String::from_utf8_lossy(&onboarded.stdout).into_owned();
    for step in [
        "key: the one kept",
        "compliance CSID: issued",
        "compliance check: standard tax invoice (ICV 1) passed",
        "compliance check: simplified debit note (ICV 6) passed",
        "production CSID: issued",
        "onboarding complete",
    ] {
        assert!(printed.contains(step), "{step} is not printed: {printed}");
    }
    #[cfg(unix)]
    for file in [KEY_FILE, PRODUCTION_FILE] {
        assert_eq!(mode(&unit.file(file)), 0o600, "{file}");
    }
    unit.assert_shows_no_secret(&text(&onboarded));

    let again = unit.run(&fake, &["zatca", "onboard", "--otp", OTP]).await;
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        text(&again).contains("already onboarded"),
        "{}",
        text(&again)
    );

    let status = unit.run(&fake, &["zatca", "status"]).await;
    assert!(status.status.success(), "{}", text(&status));
    let shown = text(&status);
    assert!(shown.contains("onboarding: complete"), "{shown}");
    assert!(shown.contains(FAKE_NOT_AFTER), "{shown}");
    unit.assert_shows_no_secret(&shown);
}

#[tokio::test]
async fn the_binary_renews_and_status_exits_1_before_onboarding() {
    let fake = FakeFatoora::start(Gate::Simulation).await;
    let unit = Unit::new(&fake);

    let status = unit.run(&fake, &["zatca", "status"]).await;
    assert_eq!(status.status.code(), Some(1), "{}", text(&status));
    assert!(text(&status).contains("onboarding: not complete"));

    let early = unit.run(&fake, &["zatca", "renew", "--otp", OTP]).await;
    assert_eq!(early.status.code(), Some(1), "{}", text(&early));
    assert!(
        text(&early).contains("onboard it first"),
        "{}",
        text(&early)
    );

    unit.onboard(OTP, WhenOnboarded::SayAndStop)
        .await
        .0
        .unwrap();
    fake.set_renewal(RenewalAnswer::NotCompliantYet);
    let renewed = unit.run(&fake, &["zatca", "renew", "--otp", OTP]).await;
    assert!(renewed.status.success(), "{}", text(&renewed));
    assert!(
        text(&renewed).contains("renewal complete (after the compliance checks)"),
        "{}",
        text(&renewed)
    );
    unit.assert_shows_no_secret(&text(&renewed));
}
