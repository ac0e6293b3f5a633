//! ZATCA Phase 2 (Fatoora) in the application: the EGS unit's settings, its onboarding
//! ([`onboarding`]: key, CSR, compliance CSID, compliance checks, production CSID, renewal) and
//! the submitter ([`submitter`]: every prepared document signed once and cleared or reported,
//! retried until ZATCA gives a final answer).
//!
//! The documents themselves are decided in the domain (`domain::phase2`, the EGS unit's chain in
//! `domain::sequence`, the outbox in `domain::submission`); the XML, the hash and the stamp are
//! the pure `zatca` crate's; the HTTP calls are `adapters::fatoora`'s; the key and the CSIDs are
//! files in `adapters::zatca_keys`. Nothing here keeps state of its own.

pub mod audit;
pub mod onboarding;
pub mod submitter;

use adapters::fatoora::{FatooraConfig, FatooraEnvironment};
use adapters::zatca_keys::KeyStore;
use domain::invoice::{Customer, InvoiceLine, IssueInvoice, Seller};
use domain::phase2::{Phase2Details, SellerRegistration};
use time::OffsetDateTime;

/// The EGS unit revledger runs as, when ZATCA Phase 2 is on.
#[derive(Debug, Clone)]
pub struct ZatcaConfig {
    /// Which of ZATCA's environments the unit is onboarded in.
    pub environment: FatooraEnvironment,
    /// How to reach Fatoora (the environment's URL, or a fake's in tests).
    pub fatoora: FatooraConfig,
    /// The unit's id: its chain's stream and the `3-` part of its default EGS serial.
    pub egs_unit: String,
    /// The seller's name and VAT number (also Phase 1's).
    pub seller: Seller,
    /// The seller's commercial registration and national address.
    pub registration: SellerRegistration,
    /// Where the unit's key and CSIDs are kept.
    pub keys: KeyStore,
    /// What the unit's CSR says besides the seller's name and VAT number.
    pub unit: UnitProfile,
}

/// The CSR's description of the unit (ZATCA's onboarding fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitProfile {
    /// `CN`.
    pub common_name: String,
    /// `1-<solution>|2-<model>|3-<serial>`.
    pub egs_serial_number: String,
    /// `OU`: the branch.
    pub branch: String,
    /// `title`: standard / simplified / reserved / reserved, e.g. `1100` for both kinds.
    pub invoice_types: String,
    /// `registeredAddress`: where the unit is.
    pub location: String,
    /// `businessCategory`.
    pub industry: String,
}

impl UnitProfile {
    /// The profile a unit gets when only its id is configured.
    pub fn for_unit(egs_unit: &str, registration: &SellerRegistration) -> UnitProfile {
        UnitProfile {
            common_name: format!("revledger-{egs_unit}"),
            egs_serial_number: format!("1-revledger|2-{}|3-{egs_unit}", env!("CARGO_PKG_VERSION")),
            branch: "Main".to_owned(),
            invoice_types: "1100".to_owned(),
            location: format!(
                "{} {}, {}",
                registration.address.building_number,
                registration.address.street,
                registration.address.city
            ),
            industry: "Software".to_owned(),
        }
    }
}

impl ZatcaConfig {
    /// What a document issued on this unit carries; `buyer` makes it a standard one.
    pub fn details(&self, buyer: Option<domain::phase2::BuyerRegistration>) -> Phase2Details {
        Phase2Details {
            egs_unit: self.egs_unit.clone(),
            seller: self.registration.clone(),
            buyer,
        }
    }

    /// The CSR's fields for this unit.
    pub fn csr_fields(&self) -> zatca::csr::CsrFields {
        zatca::csr::CsrFields {
            environment: csr_environment(self.environment),
            common_name: self.unit.common_name.clone(),
            egs_serial_number: self.unit.egs_serial_number.clone(),
            vat_number: self.seller.vat_number.clone(),
            organizational_unit: self.unit.branch.clone(),
            organization: self.seller.name.clone(),
            invoice_types: self.unit.invoice_types.clone(),
            location: self.unit.location.clone(),
            industry: self.unit.industry.clone(),
        }
    }

    /// Whether the settings make valid documents: a one-line simplified invoice is built and
    /// checked against ZATCA's rules, so a bad CRN, building number or postal code is named at
    /// start-up rather than at the first invoice.
    pub fn check(&self) -> Result<(), String> {
        if !domain::input::is_id(&self.egs_unit) {
            return Err(format!(
                "the EGS unit id {:?} is not an id (letters, digits and . _ : -, 1 to 128)",
                self.egs_unit
            ));
        }
        let issue = IssueInvoice {
            invoice_id: "settings-check".to_owned(),
            customer: Customer {
                lead_id: "settings-check".to_owned(),
                name: "Settings check".to_owned(),
            },
            lines: vec![InvoiceLine {
                description: "Settings check".to_owned(),
                quantity: 1,
                unit_price_halalas: 100,
                plan: None,
            }],
            issued_at: OffsetDateTime::UNIX_EPOCH,
            due_at: OffsetDateTime::UNIX_EPOCH,
            seller: self.seller.clone(),
            moyasar_invoice_id: None,
        };
        let document = domain::phase2::invoice_document(
            &issue,
            &self.details(None),
            1,
            domain::zatca::FIRST_INVOICE_PIH,
        );
        document.validate().map_err(|error| error.to_string())?;
        adapters::fatoora::FatooraClient::new(&self.fatoora)
            .map_err(|error| format!("REVLEDGER_ZATCA_BASE_URL: {error}"))?;
        zatca::csr::subject_alt_name_der(&self.csr_fields())
            .map(|_| ())
            .map_err(|error| format!("the unit's CSR fields: {error}"))
    }
}

/// The CSR template of an environment.
pub fn csr_environment(environment: FatooraEnvironment) -> zatca::csr::Environment {
    match environment {
        FatooraEnvironment::DeveloperPortal => zatca::csr::Environment::DeveloperPortal,
        FatooraEnvironment::Simulation => zatca::csr::Environment::Simulation,
        FatooraEnvironment::Production => zatca::csr::Environment::Production,
    }
}
