//! Writing a [`Document`] as a UBL 2.1 `Invoice`, the way ZATCA's XML Implementation Standard
//! lays it out (the root is `Invoice` for credit and debit notes too; the type code says
//! which), in the element order of the UBL 2.1 schema.
//!
//! [`to_unsigned_xml`] writes the document *without* the three parts the stamp adds — the
//! `ext:UBLExtensions` holding the signature, the QR `cac:AdditionalDocumentReference` and
//! `cac:Signature` — and [`crate::sign()`] writes the same document with them. Those three are
//! exactly what the invoice hash leaves out, and each is written *glued* to the tag before it,
//! with no whitespace of its own: removing them gives back the unsigned text byte for byte, so
//! the unsigned document, the signed one, and the hash a verifier recomputes all agree. (The
//! hash keeps the whitespace around removed elements; an indented insertion would change it.)
//!
//! Every text value and attribute value goes through `quick-xml`'s escaping; the document
//! validation has already refused control characters, which XML cannot carry.

use quick_xml::escape::{escape, partial_escape};

use crate::document::{sar_text, Address, Document, DocumentError, Party};
use crate::hash::{AGGREGATE_NAMESPACE, BASIC_NAMESPACE, EXTENSION_NAMESPACE};

/// The UBL invoice namespace, the root's default namespace.
pub const INVOICE_NAMESPACE: &str = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2";

/// ZATCA's business process (BT-23, BR-KSA-EN16931-01).
pub const PROFILE_ID: &str = "reporting:1.0";

/// The only currency this crate writes, for the document and for VAT (BR-KSA-EN16931-02).
pub const CURRENCY: &str = "SAR";

/// `cac:Signature`'s and the XAdES signature information's references to each other
/// (BR-KSA-28, BR-KSA-29, BR-KSA-30).
pub const SIGNATURE_ID: &str = "urn:oasis:names:specification:ubl:signature:Invoice";
pub const SIGNATURE_METHOD: &str = "urn:oasis:names:specification:ubl:dsig:enveloped:xades";

/// The unit code of every line: one piece (UN/ECE recommendation 20), as in ZATCA's samples.
pub const UNIT_CODE: &str = "PCE";

/// The document as UBL XML without the stamp's parts; see the module documentation.
pub fn to_unsigned_xml(document: &Document) -> Result<String, DocumentError> {
    document.validate()?;
    Ok(write_invoice(document, None))
}

/// What the stamp adds, already rendered: the `ext:UBLExtensions` element and the QR.
pub(crate) struct StampParts<'a> {
    pub extensions: &'a dyn Fn(&mut XmlWriter),
    pub qr_base64: &'a str,
}

/// Writes the invoice, with the stamp's parts when given.
pub(crate) fn write_invoice(document: &Document, stamp: Option<&StampParts<'_>>) -> String {
    let mut xml = XmlWriter::default();
    xml.raw("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml.start(
        "Invoice",
        &[
            ("xmlns", INVOICE_NAMESPACE),
            ("xmlns:cac", AGGREGATE_NAMESPACE),
            ("xmlns:cbc", BASIC_NAMESPACE),
            ("xmlns:ext", EXTENSION_NAMESPACE),
        ],
    );
    if let Some(stamp) = stamp {
        xml.glued(stamp.extensions);
    }
    write_header(&mut xml, document);
    if let Some(stamp) = stamp {
        xml.glued(&|xml: &mut XmlWriter| write_qr_reference(xml, stamp.qr_base64));
        xml.glued(&write_signature_reference);
    }
    write_party(
        &mut xml,
        "cac:AccountingSupplierParty",
        Some(&document.seller.party()),
    );
    write_party(
        &mut xml,
        "cac:AccountingCustomerParty",
        document.buyer.as_ref().map(|buyer| buyer.party()).as_ref(),
    );
    write_delivery_and_payment(&mut xml, document);
    write_totals(&mut xml, document);
    write_lines(&mut xml, document);
    xml.end("Invoice");
    xml.raw("\n");
    xml.into_string()
}

fn write_header(xml: &mut XmlWriter, document: &Document) {
    xml.leaf("cbc:ProfileID", &[], PROFILE_ID);
    xml.leaf("cbc:ID", &[], &document.id);
    xml.leaf("cbc:UUID", &[], &document.uuid);
    xml.leaf("cbc:IssueDate", &[], &date_text(document.issue_date));
    xml.leaf("cbc:IssueTime", &[], &time_text(document.issue_time));
    xml.leaf(
        "cbc:InvoiceTypeCode",
        &[("name", document.subtype.transaction_code())],
        document.kind.type_code(),
    );
    xml.leaf("cbc:DocumentCurrencyCode", &[], CURRENCY);
    xml.leaf("cbc:TaxCurrencyCode", &[], CURRENCY);
    if let Some(reference) = &document.billing_reference {
        xml.start("cac:BillingReference", &[]);
        xml.start("cac:InvoiceDocumentReference", &[]);
        xml.leaf("cbc:ID", &[], &reference.original_invoice_id);
        xml.end("cac:InvoiceDocumentReference");
        xml.end("cac:BillingReference");
    }
    xml.start("cac:AdditionalDocumentReference", &[]);
    xml.leaf("cbc:ID", &[], "ICV");
    xml.leaf("cbc:UUID", &[], &document.icv.to_string());
    xml.end("cac:AdditionalDocumentReference");
    xml.start("cac:AdditionalDocumentReference", &[]);
    xml.leaf("cbc:ID", &[], "PIH");
    xml.start("cac:Attachment", &[]);
    xml.leaf(
        "cbc:EmbeddedDocumentBinaryObject",
        &[("mimeCode", "text/plain")],
        &document.previous_invoice_hash,
    );
    xml.end("cac:Attachment");
    xml.end("cac:AdditionalDocumentReference");
}

fn write_qr_reference(xml: &mut XmlWriter, qr_base64: &str) {
    xml.start("cac:AdditionalDocumentReference", &[]);
    xml.leaf("cbc:ID", &[], crate::hash::QR_REFERENCE_ID);
    xml.start("cac:Attachment", &[]);
    xml.leaf(
        "cbc:EmbeddedDocumentBinaryObject",
        &[("mimeCode", "text/plain")],
        qr_base64,
    );
    xml.end("cac:Attachment");
    xml.end("cac:AdditionalDocumentReference");
}

fn write_signature_reference(xml: &mut XmlWriter) {
    xml.start("cac:Signature", &[]);
    xml.leaf("cbc:ID", &[], SIGNATURE_ID);
    xml.leaf("cbc:SignatureMethod", &[], SIGNATURE_METHOD);
    xml.end("cac:Signature");
}

fn write_party(xml: &mut XmlWriter, role: &str, party: Option<&Party<'_>>) {
    let Some(party) = party else {
        // UBL requires the customer party; a simplified document may leave it empty.
        xml.empty(role, &[]);
        return;
    };
    xml.start(role, &[]);
    xml.start("cac:Party", &[]);
    if let Some(crn) = party.commercial_registration_number {
        xml.start("cac:PartyIdentification", &[]);
        xml.leaf("cbc:ID", &[("schemeID", "CRN")], crn);
        xml.end("cac:PartyIdentification");
    }
    if let Some(address) = party.address {
        write_address(xml, address);
    }
    if let Some(vat_number) = party.vat_number {
        xml.start("cac:PartyTaxScheme", &[]);
        xml.leaf("cbc:CompanyID", &[], vat_number);
        xml.start("cac:TaxScheme", &[]);
        xml.leaf("cbc:ID", &[], "VAT");
        xml.end("cac:TaxScheme");
        xml.end("cac:PartyTaxScheme");
    }
    if !party.registration_name.is_empty() {
        xml.start("cac:PartyLegalEntity", &[]);
        xml.leaf("cbc:RegistrationName", &[], party.registration_name);
        xml.end("cac:PartyLegalEntity");
    }
    xml.end("cac:Party");
    xml.end(role);
}

fn write_address(xml: &mut XmlWriter, address: &Address) {
    xml.start("cac:PostalAddress", &[]);
    xml.leaf("cbc:StreetName", &[], &address.street);
    if !address.building_number.is_empty() {
        xml.leaf("cbc:BuildingNumber", &[], &address.building_number);
    }
    if !address.district.is_empty() {
        xml.leaf("cbc:CitySubdivisionName", &[], &address.district);
    }
    xml.leaf("cbc:CityName", &[], &address.city);
    if !address.postal_code.is_empty() {
        xml.leaf("cbc:PostalZone", &[], &address.postal_code);
    }
    xml.start("cac:Country", &[]);
    xml.leaf("cbc:IdentificationCode", &[], &address.country_code);
    xml.end("cac:Country");
    xml.end("cac:PostalAddress");
}

fn write_delivery_and_payment(xml: &mut XmlWriter, document: &Document) {
    if let Some(supply_date) = document.supply_date {
        xml.start("cac:Delivery", &[]);
        xml.leaf("cbc:ActualDeliveryDate", &[], &date_text(supply_date));
        xml.end("cac:Delivery");
    }
    xml.start("cac:PaymentMeans", &[]);
    xml.leaf("cbc:PaymentMeansCode", &[], document.payment_means.code());
    if let Some(reference) = &document.billing_reference {
        xml.leaf("cbc:InstructionNote", &[], &reference.reason);
    }
    xml.end("cac:PaymentMeans");
}

/// The two tax totals ZATCA requires (BR-KSA-EN16931-08 and -09): one in the tax currency
/// with only the amount, one in the document currency with the breakdown.
fn write_totals(xml: &mut XmlWriter, document: &Document) {
    let totals = document.totals();
    let currency = [("currencyID", CURRENCY)];
    let vat = sar_text(totals.vat_halalas);
    xml.start("cac:TaxTotal", &[]);
    xml.leaf("cbc:TaxAmount", &currency, &vat);
    xml.end("cac:TaxTotal");
    xml.start("cac:TaxTotal", &[]);
    xml.leaf("cbc:TaxAmount", &currency, &vat);
    xml.start("cac:TaxSubtotal", &[]);
    xml.leaf(
        "cbc:TaxableAmount",
        &currency,
        &sar_text(totals.line_extension_halalas),
    );
    xml.leaf("cbc:TaxAmount", &currency, &vat);
    xml.start("cac:TaxCategory", &[]);
    xml.leaf(
        "cbc:ID",
        &[("schemeID", "UN/ECE 5305"), ("schemeAgencyID", "6")],
        "S",
    );
    xml.leaf("cbc:Percent", &[], &percent_text());
    xml.start("cac:TaxScheme", &[]);
    xml.leaf(
        "cbc:ID",
        &[("schemeID", "UN/ECE 5153"), ("schemeAgencyID", "6")],
        "VAT",
    );
    xml.end("cac:TaxScheme");
    xml.end("cac:TaxCategory");
    xml.end("cac:TaxSubtotal");
    xml.end("cac:TaxTotal");
    xml.start("cac:LegalMonetaryTotal", &[]);
    let net = sar_text(totals.line_extension_halalas);
    let gross = sar_text(totals.tax_inclusive_halalas);
    xml.leaf("cbc:LineExtensionAmount", &currency, &net);
    xml.leaf("cbc:TaxExclusiveAmount", &currency, &net);
    xml.leaf("cbc:TaxInclusiveAmount", &currency, &gross);
    xml.leaf("cbc:PayableAmount", &currency, &gross);
    xml.end("cac:LegalMonetaryTotal");
}

fn write_lines(xml: &mut XmlWriter, document: &Document) {
    let currency = [("currencyID", CURRENCY)];
    for (index, (line, amounts)) in document
        .lines
        .iter()
        .zip(document.line_amounts())
        .enumerate()
    {
        xml.start("cac:InvoiceLine", &[]);
        xml.leaf("cbc:ID", &[], &(index + 1).to_string());
        xml.leaf(
            "cbc:InvoicedQuantity",
            &[("unitCode", UNIT_CODE)],
            &line.quantity.to_string(),
        );
        xml.leaf(
            "cbc:LineExtensionAmount",
            &currency,
            &sar_text(amounts.net_halalas),
        );
        xml.start("cac:TaxTotal", &[]);
        xml.leaf("cbc:TaxAmount", &currency, &sar_text(amounts.vat_halalas));
        xml.leaf(
            "cbc:RoundingAmount",
            &currency,
            &sar_text(amounts.with_vat_halalas),
        );
        xml.end("cac:TaxTotal");
        xml.start("cac:Item", &[]);
        xml.leaf("cbc:Name", &[], &line.name);
        xml.start("cac:ClassifiedTaxCategory", &[]);
        xml.leaf("cbc:ID", &[], "S");
        xml.leaf("cbc:Percent", &[], &percent_text());
        xml.start("cac:TaxScheme", &[]);
        xml.leaf("cbc:ID", &[], "VAT");
        xml.end("cac:TaxScheme");
        xml.end("cac:ClassifiedTaxCategory");
        xml.end("cac:Item");
        xml.start("cac:Price", &[]);
        xml.leaf(
            "cbc:PriceAmount",
            &currency,
            &sar_text(line.unit_price_halalas),
        );
        xml.end("cac:Price");
        xml.end("cac:InvoiceLine");
    }
}

fn percent_text() -> String {
    format!("{}.00", crate::document::VAT_RATE_PERCENT)
}

/// `YYYY-MM-DD` (BR-KSA-F-01).
pub(crate) fn date_text(date: time::Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// `hh:mm:ss` (BR-KSA-70).
pub(crate) fn time_text(time: time::Time) -> String {
    format!(
        "{:02}:{:02}:{:02}",
        time.hour(),
        time.minute(),
        time.second()
    )
}

/// A minimal indenting XML writer: four spaces a level, each element on its own line, text
/// inline, and a way to write a subtree glued to what precedes it.
#[derive(Default)]
pub(crate) struct XmlWriter {
    out: String,
    depth: usize,
    glue_next: bool,
}

impl XmlWriter {
    pub fn into_string(self) -> String {
        self.out
    }

    pub fn raw(&mut self, text: &str) {
        self.out.push_str(text);
    }

    fn indent(&mut self) {
        if std::mem::take(&mut self.glue_next) {
            return;
        }
        if !self.out.is_empty() {
            self.out.push('\n');
        }
        for _ in 0..self.depth {
            self.out.push_str("    ");
        }
    }

    fn open_tag(&mut self, name: &str, attributes: &[(&str, &str)]) {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        for (key, value) in attributes {
            self.out.push(' ');
            self.out.push_str(key);
            self.out.push_str("=\"");
            self.out.push_str(&escape(*value));
            self.out.push('"');
        }
    }

    pub fn start(&mut self, name: &str, attributes: &[(&str, &str)]) {
        self.open_tag(name, attributes);
        self.out.push('>');
        self.depth += 1;
    }

    pub fn end(&mut self, name: &str) {
        self.depth = self.depth.saturating_sub(1);
        self.indent();
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }

    pub fn leaf(&mut self, name: &str, attributes: &[(&str, &str)], text: &str) {
        self.open_tag(name, attributes);
        self.out.push('>');
        self.out.push_str(&partial_escape(text));
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }

    pub fn empty(&mut self, name: &str, attributes: &[(&str, &str)]) {
        self.open_tag(name, attributes);
        self.out.push_str("/>");
    }

    /// Writes a subtree whose first tag follows the previous output directly, without a line
    /// break or indentation of its own.
    pub fn glued(&mut self, write: &dyn Fn(&mut XmlWriter)) {
        self.glue_next = true;
        write(self);
        self.glue_next = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_attributes_are_escaped() {
        let mut xml = XmlWriter::default();
        xml.leaf("a", &[("b", "\"<&>'")], "<&>\"'");
        assert_eq!(
            xml.into_string(),
            "<a b=\"&quot;&lt;&amp;&gt;&apos;\">&lt;&amp;&gt;\"'</a>"
        );
    }

    #[test]
    fn a_glued_subtree_has_no_whitespace_before_it() {
        let mut xml = XmlWriter::default();
        xml.start("a", &[]);
        xml.glued(&|xml: &mut XmlWriter| {
            xml.start("g", &[]);
            xml.leaf("h", &[], "1");
            xml.end("g");
        });
        xml.leaf("b", &[], "2");
        xml.end("a");
        assert_eq!(
            xml.into_string(),
            "<a><g>\n        <h>1</h>\n    </g>\n    <b>2</b>\n</a>"
        );
    }

    #[test]
    fn dates_and_times_are_written_as_zatca_asks() {
        let date = time::Date::from_calendar_date(2022, time::Month::September, 7).unwrap();
        assert_eq!(date_text(date), "2022-09-07");
        let time = time::Time::from_hms(9, 5, 1).unwrap();
        assert_eq!(time_text(time), "09:05:01");
    }
}
