//! The typed document: a tax invoice (388), credit note (381) or debit note (383), standard
//! (B2B, cleared) or simplified (B2C, reported), with everything ZATCA's XML carries for a
//! seller that invoices at the standard rate.
//!
//! Amounts are whole halalas (`i64`); nothing here is a float. The totals are not inputs:
//! they follow from the lines ([`Document::totals`]), so a document cannot disagree with
//! itself. The rounding is ZATCA's (and `domain::vat`'s): each line's VAT is its net amount
//! at 15%, rounded half away from zero (KSA-11, shown on the line), and the document's VAT is
//! computed *once* on the sum of the line nets (BR-S-09) — not the sum of the line VATs,
//! which can differ by a halala per line. ZATCA documents carry positive amounts whatever
//! their type (BR-KSA-F-04): a credit note says "credit" by its type code, not by its sign.
//!
//! [`Document::validate`] checks the rules of ZATCA's validation schematron (SDK
//! `Data/Rules/schematrons/20210819_ZATCA_E-invoice_Validation_Rules.xsl`) that depend on
//! the input rather than on how the XML is written; each error names the field and the rule.

use thiserror::Error;
use time::{Date, Time};

/// The VAT rate of category S, in percent: the only category this crate writes.
pub const VAT_RATE_PERCENT: i64 = 15;

/// The most lines a document may have. ZATCA sets no number, but its API refuses large
/// bodies; a few thousand lines stay far below that and keep every sum well inside `i64`.
pub const MAX_LINES: usize = 5_000;

/// The longest value a name, street, reason or reference may have, in characters
/// (BR-KSA-F-06: names, streets and reasons at most 1000; city and district at most 127).
pub const MAX_TEXT_CHARS: usize = 1_000;

/// The longest city or district name, in characters (BR-KSA-F-06-C7, -C9, -C25, -C28).
pub const MAX_PLACE_CHARS: usize = 127;

/// The largest line quantity or unit price accepted. Their product and every sum of line
/// amounts then stay inside `i64` halalas for up to [`MAX_LINES`] lines.
pub const MAX_LINE_FACTOR: i64 = 1_000_000_000;

/// What kind of document: the UN/CEFACT 1001 code of `cbc:InvoiceTypeCode` (BR-KSA-05).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    /// A tax invoice, 388.
    Invoice,
    /// A credit note, 381: money handed back or a charge reduced.
    CreditNote,
    /// A debit note, 383: a charge increased.
    DebitNote,
}

impl DocumentKind {
    /// The type code written in `cbc:InvoiceTypeCode`.
    pub fn type_code(self) -> &'static str {
        match self {
            DocumentKind::Invoice => "388",
            DocumentKind::CreditNote => "381",
            DocumentKind::DebitNote => "383",
        }
    }

    /// Whether the document corrects another one (and so needs a billing reference and a
    /// reason, BR-KSA-56 and BR-KSA-17).
    pub fn is_note(self) -> bool {
        !matches!(self, DocumentKind::Invoice)
    }
}

/// Standard (B2B, cleared before the buyer gets it) or simplified (B2C, reported within 24
/// hours): the first two digits of the transaction code (KSA-2, the `name` of
/// `cbc:InvoiceTypeCode`), the rest of which flag third-party, nominal, export, summary and
/// self-billed documents, none of which this crate writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceSubtype {
    Standard,
    Simplified,
}

impl InvoiceSubtype {
    /// The transaction code (KSA-2).
    pub fn transaction_code(self) -> &'static str {
        match self {
            InvoiceSubtype::Standard => "0100000",
            InvoiceSubtype::Simplified => "0200000",
        }
    }
}

/// How the buyer pays: the UNTDID 4461 code of `cbc:PaymentMeansCode` (BR-KSA-16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentMeans {
    /// 10, in cash.
    Cash,
    /// 30, credit transfer.
    CreditTransfer,
    /// 42, payment to a bank account.
    BankAccount,
    /// 48, bank card (a card payment through a gateway such as Moyasar).
    BankCard,
    /// 1, not defined.
    NotDefined,
}

impl PaymentMeans {
    pub fn code(self) -> &'static str {
        match self {
            PaymentMeans::Cash => "10",
            PaymentMeans::CreditTransfer => "30",
            PaymentMeans::BankAccount => "42",
            PaymentMeans::BankCard => "48",
            PaymentMeans::NotDefined => "1",
        }
    }
}

/// A Saudi national address (or, for a foreign buyer, its equivalent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// `cbc:StreetName` (BT-35 / BT-50).
    pub street: String,
    /// `cbc:BuildingNumber`, four digits in Saudi Arabia (KSA-17 / KSA-18, BR-KSA-37).
    pub building_number: String,
    /// `cbc:CitySubdivisionName`, the district (KSA-3 / KSA-4).
    pub district: String,
    /// `cbc:CityName` (BT-37 / BT-52).
    pub city: String,
    /// `cbc:PostalZone`, five digits in Saudi Arabia (BR-KSA-66, BR-KSA-67).
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 country code (`SA` for the seller, BR-KSA-09).
    pub country_code: String,
}

/// The seller: the taxpayer whose EGS unit issues the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seller {
    /// The legal name (BT-27); also QR tag 1.
    pub registration_name: String,
    /// The VAT registration number (BT-31): 15 digits, first and last `3` (BR-KSA-40); also
    /// QR tag 2.
    pub vat_number: String,
    /// The commercial registration number, written with scheme `CRN` (BT-29, BR-KSA-08).
    pub commercial_registration_number: String,
    pub address: Address,
}

/// The buyer. A standard document needs the VAT number and the address; a simplified one
/// may leave the buyer out entirely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buyer {
    /// The legal name (BT-44).
    pub registration_name: String,
    /// The VAT registration number (BT-48), 15 digits, first and last `3` (BR-KSA-44).
    pub vat_number: Option<String>,
    pub address: Option<Address>,
}

/// One line: a quantity of one thing at one price, standard-rated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// What was sold (BT-153).
    pub name: String,
    /// Whole units, at least 1 (BR-KSA-F-04).
    pub quantity: i64,
    /// Price of one unit before VAT (BT-146).
    pub unit_price_halalas: i64,
}

/// The invoice a credit or debit note corrects, and why (BT-25, KSA-10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingReference {
    /// The corrected invoice's number (its `cbc:ID`).
    pub original_invoice_id: String,
    /// Why the note is issued (KSA-10), written as `cbc:InstructionNote`.
    pub reason: String,
}

/// A document to be written, hashed and stamped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub kind: DocumentKind,
    pub subtype: InvoiceSubtype,
    /// The invoice number (BT-1), the seller's own sequential reference.
    pub id: String,
    /// The document's UUID (KSA-1): letters, digits and dashes (BR-KSA-03).
    pub uuid: String,
    /// Issue date (BT-2) and time (KSA-25), in Saudi local time as ZATCA's samples write them.
    pub issue_date: Date,
    pub issue_time: Time,
    /// The supply date (KSA-5), required on a standard tax invoice (BR-KSA-15).
    pub supply_date: Option<Date>,
    /// The invoice counter value (KSA-16): the EGS unit's gap-free counter.
    pub icv: u64,
    /// The previous document's hash (KSA-13), base64 (BR-KSA-26, BR-KSA-61).
    pub previous_invoice_hash: String,
    pub seller: Seller,
    pub buyer: Option<Buyer>,
    pub payment_means: PaymentMeans,
    /// Required for credit and debit notes, refused on invoices.
    pub billing_reference: Option<BillingReference>,
    pub lines: Vec<Line>,
}

/// A line's amounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineAmounts {
    /// Quantity times unit price (BT-131, BR-KSA-EN16931-11).
    pub net_halalas: i64,
    /// The line's VAT, rounded on its own (KSA-11).
    pub vat_halalas: i64,
    /// Net plus VAT (KSA-12, written as `cbc:RoundingAmount`, BR-KSA-51).
    pub with_vat_halalas: i64,
}

/// The document's totals (BG-22).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Sum of the line nets (BT-106); also the taxable amount (BT-116) and, with no
    /// document-level allowances, the total without VAT (BT-109).
    pub line_extension_halalas: i64,
    /// VAT on the taxable amount, rounded once (BT-110, BR-S-09); QR tag 5.
    pub vat_halalas: i64,
    /// Total with VAT (BT-112), and the amount due (BT-115) with nothing prepaid; QR tag 4.
    pub tax_inclusive_halalas: i64,
}

/// A seller or buyer as the XML writes it.
pub(crate) struct Party<'a> {
    pub registration_name: &'a str,
    pub vat_number: Option<&'a str>,
    pub commercial_registration_number: Option<&'a str>,
    pub address: Option<&'a Address>,
}

impl Seller {
    pub(crate) fn party(&self) -> Party<'_> {
        Party {
            registration_name: &self.registration_name,
            vat_number: Some(&self.vat_number),
            commercial_registration_number: Some(&self.commercial_registration_number),
            address: Some(&self.address),
        }
    }
}

impl Buyer {
    pub(crate) fn party(&self) -> Party<'_> {
        Party {
            registration_name: &self.registration_name,
            vat_number: self.vat_number.as_deref(),
            commercial_registration_number: None,
            address: self.address.as_ref(),
        }
    }
}

/// Why a document cannot be issued as given.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DocumentError {
    #[error("{field} is empty; ZATCA requires it ({rule})")]
    MissingField {
        field: &'static str,
        rule: &'static str,
    },
    #[error("{field} is {length_chars} characters; at most {max_chars} are allowed (BR-KSA-F-06)")]
    FieldTooLong {
        field: &'static str,
        length_chars: usize,
        max_chars: usize,
    },
    #[error("{field} contains a control character, which XML cannot carry as text")]
    ControlCharacter { field: &'static str },
    #[error("{field} {value:?} is not a VAT number: 15 digits, first and last 3 ({rule})")]
    InvalidVatNumber {
        field: &'static str,
        value: String,
        rule: &'static str,
    },
    #[error("{field} {value:?} must be 4 digits (BR-KSA-37)")]
    InvalidBuildingNumber { field: &'static str, value: String },
    #[error("{field} {value:?} must be 5 digits ({rule})")]
    InvalidPostalCode {
        field: &'static str,
        value: String,
        rule: &'static str,
    },
    #[error("seller.address.country_code is {value:?}; the seller's address is in SA (BR-KSA-09)")]
    SellerOutsideSaudiArabia { value: String },
    #[error("{field} {value:?} is not a two-letter ISO 3166 country code")]
    InvalidCountryCode { field: &'static str, value: String },
    #[error("seller.commercial_registration_number {value:?} must be alphanumeric (BR-KSA-08)")]
    InvalidCommercialRegistration { value: String },
    #[error("uuid {value:?} must be a UUID of letters, digits and dashes (BR-KSA-03)")]
    InvalidUuid { value: String },
    #[error("previous_invoice_hash is not base64 (BR-KSA-26)")]
    InvalidPreviousInvoiceHash,
    #[error("a document has at least one line (BR-16)")]
    NoLines,
    #[error("{count} lines; at most {MAX_LINES} are accepted")]
    TooManyLines { count: usize },
    #[error("line {line_number}: quantity {quantity} must be between 1 and {MAX_LINE_FACTOR} (BR-KSA-F-04)")]
    InvalidQuantity { line_number: usize, quantity: i64 },
    #[error("line {line_number}: unit price {unit_price_halalas} halalas must be between 0 and {MAX_LINE_FACTOR} (BR-KSA-F-04)")]
    InvalidUnitPrice {
        line_number: usize,
        unit_price_halalas: i64,
    },
    #[error("a credit or debit note names the invoice it corrects and why (BR-KSA-56, BR-KSA-17)")]
    MissingBillingReference,
    #[error("a tax invoice corrects nothing, so it carries no billing reference")]
    UnexpectedBillingReference,
}

impl Document {
    /// Checks the document against ZATCA's rules that depend on its content.
    pub fn validate(&self) -> Result<(), DocumentError> {
        required_text("id", &self.id, "BR-02", MAX_TEXT_CHARS)?;
        if !is_uuid(&self.uuid) {
            return Err(DocumentError::InvalidUuid {
                value: self.uuid.clone(),
            });
        }
        if !is_base64(&self.previous_invoice_hash) {
            return Err(DocumentError::InvalidPreviousInvoiceHash);
        }
        self.validate_seller()?;
        self.validate_buyer()?;
        if self.kind == DocumentKind::Invoice
            && self.subtype == InvoiceSubtype::Standard
            && self.supply_date.is_none()
        {
            return Err(DocumentError::MissingField {
                field: "supply_date",
                rule: "BR-KSA-15",
            });
        }
        match (&self.billing_reference, self.kind.is_note()) {
            (None, true) => return Err(DocumentError::MissingBillingReference),
            (Some(_), false) => return Err(DocumentError::UnexpectedBillingReference),
            (Some(reference), true) => {
                required_text(
                    "billing_reference.original_invoice_id",
                    &reference.original_invoice_id,
                    "BR-KSA-56",
                    MAX_TEXT_CHARS,
                )?;
                required_text(
                    "billing_reference.reason",
                    &reference.reason,
                    "BR-KSA-17",
                    MAX_TEXT_CHARS,
                )?;
            }
            (None, false) => {}
        }
        self.validate_lines()
    }

    fn validate_seller(&self) -> Result<(), DocumentError> {
        let seller = &self.seller;
        required_text(
            "seller.registration_name",
            &seller.registration_name,
            "BR-06",
            MAX_TEXT_CHARS,
        )?;
        vat_number("seller.vat_number", &seller.vat_number, "BR-KSA-40")?;
        let crn = &seller.commercial_registration_number;
        if crn.is_empty() || !crn.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(DocumentError::InvalidCommercialRegistration { value: crn.clone() });
        }
        if seller.address.country_code != "SA" {
            return Err(DocumentError::SellerOutsideSaudiArabia {
                value: seller.address.country_code.clone(),
            });
        }
        saudi_address(&seller.address, &SELLER_ADDRESS_FIELDS)
    }

    fn validate_buyer(&self) -> Result<(), DocumentError> {
        let standard = self.subtype == InvoiceSubtype::Standard;
        let Some(buyer) = &self.buyer else {
            return if standard {
                Err(DocumentError::MissingField {
                    field: "buyer",
                    rule: "BR-KSA-10, BR-KSA-44",
                })
            } else {
                Ok(())
            };
        };
        if standard || !buyer.registration_name.is_empty() {
            required_text(
                "buyer.registration_name",
                &buyer.registration_name,
                "BR-KSA-F-06-C12",
                MAX_TEXT_CHARS,
            )?;
        }
        match &buyer.vat_number {
            Some(number) => vat_number("buyer.vat_number", number, "BR-KSA-44")?,
            None if standard => {
                return Err(DocumentError::MissingField {
                    field: "buyer.vat_number",
                    rule: "BR-KSA-44, BR-KSA-81",
                })
            }
            None => {}
        }
        match &buyer.address {
            Some(address) if address.country_code == "SA" => {
                saudi_address(address, &BUYER_ADDRESS_FIELDS)
            }
            Some(address) => foreign_address(address),
            None if standard => Err(DocumentError::MissingField {
                field: "buyer.address",
                rule: "BR-KSA-10",
            }),
            None => Ok(()),
        }
    }

    fn validate_lines(&self) -> Result<(), DocumentError> {
        if self.lines.is_empty() {
            return Err(DocumentError::NoLines);
        }
        if self.lines.len() > MAX_LINES {
            return Err(DocumentError::TooManyLines {
                count: self.lines.len(),
            });
        }
        for (index, line) in self.lines.iter().enumerate() {
            let line_number = index + 1;
            required_text("lines[].name", &line.name, "BR-25", MAX_TEXT_CHARS)?;
            if !(1..=MAX_LINE_FACTOR).contains(&line.quantity) {
                return Err(DocumentError::InvalidQuantity {
                    line_number,
                    quantity: line.quantity,
                });
            }
            if !(0..=MAX_LINE_FACTOR).contains(&line.unit_price_halalas) {
                return Err(DocumentError::InvalidUnitPrice {
                    line_number,
                    unit_price_halalas: line.unit_price_halalas,
                });
            }
        }
        Ok(())
    }

    /// Each line's amounts. Meaningful for a validated document: with the limits on
    /// quantity, price and line count no amount can overflow.
    pub fn line_amounts(&self) -> Vec<LineAmounts> {
        self.lines
            .iter()
            .map(|line| {
                let net_halalas = line.quantity.saturating_mul(line.unit_price_halalas);
                let vat_halalas = vat_halalas(net_halalas);
                LineAmounts {
                    net_halalas,
                    vat_halalas,
                    with_vat_halalas: net_halalas.saturating_add(vat_halalas),
                }
            })
            .collect()
    }

    /// The document's totals, VAT computed once on the sum of the line nets (BR-S-09).
    pub fn totals(&self) -> Totals {
        let line_extension_halalas = self
            .line_amounts()
            .iter()
            .fold(0i64, |sum, line| sum.saturating_add(line.net_halalas));
        let vat_halalas = vat_halalas(line_extension_halalas);
        Totals {
            line_extension_halalas,
            vat_halalas,
            tax_inclusive_halalas: line_extension_halalas.saturating_add(vat_halalas),
        }
    }
}

/// VAT at 15% on a non-negative taxable amount, rounded half away from zero: the same rule as
/// `domain::vat::vat_halalas` (which this crate cannot depend on: the domain crate pulls an
/// async runtime through `cqrs-es`, and this one stays free of I/O crates).
pub fn vat_halalas(taxable_halalas: i64) -> i64 {
    let numerator = i128::from(taxable_halalas) * i128::from(VAT_RATE_PERCENT);
    let rounded = (numerator.abs() + 50) / 100 * numerator.signum();
    i64::try_from(rounded).unwrap_or(if rounded < 0 { i64::MIN } else { i64::MAX })
}

/// Writes whole halalas as SAR with two decimals, `"1234.50"`, the way every amount in the
/// XML and the QR is written.
pub fn sar_text(halalas: i64) -> String {
    let sign = if halalas < 0 { "-" } else { "" };
    let magnitude = halalas.unsigned_abs();
    format!("{sign}{}.{:02}", magnitude / 100, magnitude % 100)
}

struct AddressFields {
    street: &'static str,
    building_number: &'static str,
    district: &'static str,
    city: &'static str,
    postal_code: &'static str,
    postal_rule: &'static str,
    address_rule: &'static str,
}

const SELLER_ADDRESS_FIELDS: AddressFields = AddressFields {
    street: "seller.address.street",
    building_number: "seller.address.building_number",
    district: "seller.address.district",
    city: "seller.address.city",
    postal_code: "seller.address.postal_code",
    postal_rule: "BR-KSA-66",
    address_rule: "BR-KSA-09",
};

const BUYER_ADDRESS_FIELDS: AddressFields = AddressFields {
    street: "buyer.address.street",
    building_number: "buyer.address.building_number",
    district: "buyer.address.district",
    city: "buyer.address.city",
    postal_code: "buyer.address.postal_code",
    postal_rule: "BR-KSA-67",
    address_rule: "BR-KSA-63",
};

fn saudi_address(address: &Address, fields: &AddressFields) -> Result<(), DocumentError> {
    required_text(
        fields.street,
        &address.street,
        fields.address_rule,
        MAX_TEXT_CHARS,
    )?;
    required_text(
        fields.district,
        &address.district,
        fields.address_rule,
        MAX_PLACE_CHARS,
    )?;
    required_text(
        fields.city,
        &address.city,
        fields.address_rule,
        MAX_PLACE_CHARS,
    )?;
    if !is_digits(&address.building_number, 4) {
        return Err(DocumentError::InvalidBuildingNumber {
            field: fields.building_number,
            value: address.building_number.clone(),
        });
    }
    if !is_digits(&address.postal_code, 5) {
        return Err(DocumentError::InvalidPostalCode {
            field: fields.postal_code,
            value: address.postal_code.clone(),
            rule: fields.postal_rule,
        });
    }
    Ok(())
}

/// A buyer abroad: street, city and country are required (BR-KSA-10); the Saudi formats of
/// building number and postal code do not apply, but what is given must still be text.
fn foreign_address(address: &Address) -> Result<(), DocumentError> {
    required_text(
        "buyer.address.street",
        &address.street,
        "BR-KSA-10",
        MAX_TEXT_CHARS,
    )?;
    required_text(
        "buyer.address.city",
        &address.city,
        "BR-KSA-10",
        MAX_PLACE_CHARS,
    )?;
    optional_text("buyer.address.district", &address.district, MAX_PLACE_CHARS)?;
    optional_text(
        "buyer.address.building_number",
        &address.building_number,
        MAX_PLACE_CHARS,
    )?;
    optional_text(
        "buyer.address.postal_code",
        &address.postal_code,
        MAX_PLACE_CHARS,
    )?;
    let code = &address.country_code;
    if code.len() != 2 || !code.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(DocumentError::InvalidCountryCode {
            field: "buyer.address.country_code",
            value: code.clone(),
        });
    }
    Ok(())
}

fn required_text(
    field: &'static str,
    value: &str,
    rule: &'static str,
    max_chars: usize,
) -> Result<(), DocumentError> {
    if value.trim().is_empty() {
        return Err(DocumentError::MissingField { field, rule });
    }
    optional_text(field, value, max_chars)
}

fn optional_text(field: &'static str, value: &str, max_chars: usize) -> Result<(), DocumentError> {
    let length_chars = value.chars().count();
    if length_chars > max_chars {
        return Err(DocumentError::FieldTooLong {
            field,
            length_chars,
            max_chars,
        });
    }
    if value.chars().any(char::is_control) {
        return Err(DocumentError::ControlCharacter { field });
    }
    Ok(())
}

fn vat_number(field: &'static str, value: &str, rule: &'static str) -> Result<(), DocumentError> {
    let valid = is_digits(value, 15) && value.starts_with('3') && value.ends_with('3');
    if valid {
        Ok(())
    } else {
        Err(DocumentError::InvalidVatNumber {
            field,
            value: value.to_owned(),
            rule,
        })
    }
}

fn is_digits(value: &str, count: usize) -> bool {
    value.len() == count && value.bytes().all(|byte| byte.is_ascii_digit())
}

/// The 8-4-4-4-12 hexadecimal form.
fn is_uuid(value: &str) -> bool {
    let groups: Vec<&str> = value.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(group, length)| {
            group.len() == length && group.bytes().all(|byte| byte.is_ascii_hexdigit())
        })
}

fn is_base64(value: &str) -> bool {
    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine as _;
    !value.is_empty() && BASE64.decode(value).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_written_with_two_decimals() {
        assert_eq!(sar_text(0), "0.00");
        assert_eq!(sar_text(5), "0.05");
        assert_eq!(sar_text(123_450), "1234.50");
        assert_eq!(sar_text(-7), "-0.07");
        assert_eq!(sar_text(i64::MIN), "-92233720368547758.08");
    }

    #[test]
    fn vat_is_rounded_half_away_from_zero() {
        assert_eq!(vat_halalas(10), 2, "1.5 halalas");
        assert_eq!(vat_halalas(3), 0, "0.45 halalas");
        assert_eq!(vat_halalas(4), 1, "0.6 halalas");
        assert_eq!(vat_halalas(-10), -2);
        assert!(vat_halalas(i64::MAX) > 0, "no overflow at the extreme");
    }

    #[test]
    fn a_uuid_has_five_hex_groups() {
        assert!(is_uuid("8e6000cf-1a98-4174-b3e7-b5d5954bc10d"));
        assert!(!is_uuid("8e6000cf1a984174b3e7b5d5954bc10d"));
        assert!(!is_uuid("8e6000cf-1a98-4174-b3e7-b5d5954bc10g"));
    }
}
