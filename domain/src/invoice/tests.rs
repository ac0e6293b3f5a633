//! Given/when/then tests of every invoice transition and rejection.

use cqrs_es::test::TestFramework;
use cqrs_es::Aggregate;
use cqrs_es::DomainEvent;
use proptest::prelude::*;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::*;
use crate::money::{MAX_AMOUNT_HALALAS, MAX_LINE_QUANTITY};
use crate::zatca::{decode_qr, FIRST_INVOICE_PIH};

type InvoiceTest = TestFramework<Invoice>;

const INVOICE: &str = "invoice-1";
const VAT_NUMBER: &str = "310122393500003";
const TOTAL: i64 = 344_885;

fn issued_at() -> OffsetDateTime {
    datetime!(2022-04-25 15:30:00 UTC)
}

fn due_at() -> OffsetDateTime {
    issued_at() + Duration::days(7)
}

fn later(days: i64) -> OffsetDateTime {
    issued_at() + Duration::days(days)
}

fn customer() -> Customer {
    Customer {
        lead_id: "lead-1".into(),
        name: "Harbi Logistics".into(),
    }
}

fn seller() -> Seller {
    Seller {
        name: "Dealix".into(),
        vat_number: VAT_NUMBER.into(),
    }
}

fn growth_line() -> InvoiceLine {
    InvoiceLine {
        description: "Growth plan, April".into(),
        quantity: 1,
        unit_price_halalas: 299_900,
        plan: Some(Plan::Growth),
    }
}

fn issue_command() -> InvoiceCommand {
    InvoiceCommand::Issue {
        invoice_id: INVOICE.into(),
        customer: customer(),
        lines: vec![growth_line()],
        issued_at: issued_at(),
        due_at: due_at(),
        seller: seller(),
        icv: 1,
        previous_invoice_hash: FIRST_INVOICE_PIH.into(),
        moyasar_invoice_id: None,
        phase2: None,
    }
}

fn issue_with(change: impl FnOnce(&mut InvoiceCommand)) -> InvoiceCommand {
    let mut command = issue_command();
    change(&mut command);
    command
}

fn issued() -> InvoiceEvent {
    Invoice::default()
        .decide(issue_command())
        .unwrap()
        .remove(0)
}

/// The issued invoice's hash: the PIH of the seller's next document, here its credit note.
fn issued_hash() -> String {
    match issued() {
        InvoiceEvent::InvoiceIssued { invoice_hash, .. } => invoice_hash,
        other => panic!("expected InvoiceIssued, got {other:?}"),
    }
}

fn payment(payment_id: &str, amount_halalas: i64) -> InvoiceCommand {
    InvoiceCommand::RecordPayment {
        payment_id: payment_id.into(),
        amount_halalas,
        at: later(1),
    }
}

fn recorded(payment_id: &str, amount_halalas: i64, paid: i64) -> InvoiceEvent {
    InvoiceEvent::PaymentRecorded {
        invoice_id: INVOICE.into(),
        payment_id: payment_id.into(),
        amount_halalas,
        paid_halalas: paid,
        outstanding_halalas: (TOTAL - paid).max(0),
        recorded_at: later(1),
    }
}

fn invoice_paid(paid: i64) -> InvoiceEvent {
    InvoiceEvent::InvoicePaid {
        invoice_id: INVOICE.into(),
        lead_id: "lead-1".into(),
        subtotal_halalas: 299_900,
        total_halalas: TOTAL,
        paid_halalas: paid,
        paid_at: later(1),
    }
}

fn fully_paid() -> Vec<InvoiceEvent> {
    vec![
        issued(),
        recorded("pay-1", TOTAL, TOTAL),
        invoice_paid(TOTAL),
    ]
}

fn refund(refund_id: &str, amount_halalas: i64) -> InvoiceCommand {
    InvoiceCommand::Refund {
        refund_id: refund_id.into(),
        amount_halalas,
        reason: "customer canceled in the first week".into(),
        credit_note_icv: 2,
        credit_note_previous_hash: issued_hash(),
        at: later(3),
    }
}

fn refunded(refund_id: &str, amount_halalas: i64, total_refunded: i64) -> InvoiceEvent {
    let split = DocumentTotals::from_gross(amount_halalas).unwrap();
    InvoiceEvent::InvoiceRefunded {
        invoice_id: INVOICE.into(),
        lead_id: "lead-1".into(),
        refund_id: refund_id.into(),
        amount_halalas,
        refunded_halalas: total_refunded,
        invoice_subtotal_halalas: 299_900,
        reason: "customer canceled in the first week".into(),
        credit_note: CreditNote {
            credit_note_icv: 2,
            credit_note_previous_hash: issued_hash(),
            document_type_code: 381,
            invoice_id: INVOICE.into(),
            refund_id: refund_id.into(),
            reason: "customer canceled in the first week".into(),
            subtotal_halalas: split.subtotal_halalas,
            vat_halalas: split.vat_halalas,
            total_halalas: split.total_halalas,
            issued_at: later(3),
        },
        refunded_at: later(3),
    }
}

fn fold(events: Vec<InvoiceEvent>) -> Invoice {
    let mut invoice = Invoice::default();
    for event in events {
        invoice.apply(event);
    }
    invoice
}

// --- issue -------------------------------------------------------------------

#[test]
fn an_invoice_is_issued_with_document_level_vat_a_hash_and_a_qr() {
    let events = InvoiceTest::with(())
        .given_no_previous_events()
        .when(issue_command())
        .inspect_result()
        .unwrap();
    let [InvoiceEvent::InvoiceIssued {
        subtotal_halalas,
        vat_halalas,
        total_halalas,
        icv,
        previous_invoice_hash,
        invoice_hash,
        qr_code,
        currency,
        ..
    }] = events.as_slice()
    else {
        panic!("expected one InvoiceIssued, got {events:?}");
    };
    assert_eq!(
        (*subtotal_halalas, *vat_halalas, *total_halalas),
        (299_900, 44_985, 344_885)
    );
    assert_eq!(*icv, 1);
    assert_eq!(*currency, Currency::Sar);
    assert_eq!(previous_invoice_hash, FIRST_INVOICE_PIH);
    assert!(zatca::is_base64(invoice_hash));
    assert_eq!(
        decode_qr(qr_code).unwrap(),
        vec![
            (1, "Dealix".to_owned()),
            (2, VAT_NUMBER.to_owned()),
            (3, "2022-04-25T15:30:00Z".to_owned()),
            (4, "3448.85".to_owned()),
            (5, "449.85".to_owned()),
        ]
    );
    let invoice = fold(events);
    assert_eq!(invoice.status(), Some(InvoiceStatus::Issued));
    assert_eq!(invoice.outstanding_halalas(), TOTAL);
}

#[test]
fn the_invoice_hash_is_deterministic_and_covers_every_field() {
    let first = issued();
    assert_eq!(first, issued());
    let hash_of = |event: &InvoiceEvent| match event {
        InvoiceEvent::InvoiceIssued { invoice_hash, .. } => invoice_hash.clone(),
        _ => unreachable!(),
    };
    let other = Invoice::default()
        .decide(issue_with(|command| {
            if let InvoiceCommand::Issue { icv, .. } = command {
                *icv = 2;
            }
        }))
        .unwrap()
        .remove(0);
    assert_ne!(hash_of(&first), hash_of(&other));
}

#[test]
fn vat_on_several_lines_is_rounded_once_on_their_sum() {
    let line = InvoiceLine {
        description: "add-on".into(),
        quantity: 1,
        unit_price_halalas: 10,
        plan: None,
    };
    let command = issue_with(|command| {
        if let InvoiceCommand::Issue { lines, .. } = command {
            *lines = vec![line.clone(), line.clone(), line];
        }
    });
    let invoice = fold(Invoice::default().decide(command).unwrap());
    assert_eq!(invoice.subtotal_halalas(), 30);
    assert_eq!(invoice.vat_halalas(), 5);
    assert_eq!(invoice.total_halalas(), 35);
}

#[test]
fn an_arabic_seller_name_goes_into_the_qr_as_utf8() {
    let command = issue_with(|command| {
        if let InvoiceCommand::Issue { seller, .. } = command {
            seller.name = "شركة ديليكس".into();
        }
    });
    let invoice = fold(Invoice::default().decide(command).unwrap());
    let fields = decode_qr(invoice.qr_code()).unwrap();
    assert_eq!(fields[0], (1, "شركة ديليكس".to_owned()));
}

#[test]
fn issuing_an_invoice_twice_is_rejected() {
    InvoiceTest::with(())
        .given(vec![issued()])
        .when(issue_command())
        .then_expect_error(InvoiceError::InvoiceAlreadyIssued);
}

#[test]
fn an_invoice_without_an_id_is_rejected() {
    InvoiceTest::with(())
        .given_no_previous_events()
        .when(issue_with(|command| {
            if let InvoiceCommand::Issue { invoice_id, .. } = command {
                invoice_id.clear();
            }
        }))
        .then_expect_error(InvoiceError::InvoiceIdRequired);
}

#[test]
fn an_invoice_without_lines_is_rejected() {
    InvoiceTest::with(())
        .given_no_previous_events()
        .when(issue_with(|command| {
            if let InvoiceCommand::Issue { lines, .. } = command {
                lines.clear();
            }
        }))
        .then_expect_error(InvoiceError::InvoiceHasNoLines);
}

#[test]
fn a_line_with_quantity_zero_is_rejected() {
    InvoiceTest::with(())
        .given_no_previous_events()
        .when(issue_with(|command| {
            if let InvoiceCommand::Issue { lines, .. } = command {
                lines[0].quantity = 0;
            }
        }))
        .then_expect_error(InvoiceError::LineQuantityZero { line_index: 0 });
}

#[test]
fn a_line_with_a_negative_price_is_rejected() {
    InvoiceTest::with(())
        .given_no_previous_events()
        .when(issue_with(|command| {
            if let InvoiceCommand::Issue { lines, .. } = command {
                lines[0].unit_price_halalas = -1;
            }
        }))
        .then_expect_error(InvoiceError::NegativeUnitPrice {
            line_index: 0,
            unit_price_halalas: -1,
        });
}

#[test]
fn an_invoice_for_nothing_is_rejected() {
    InvoiceTest::with(())
        .given_no_previous_events()
        .when(issue_with(|command| {
            if let InvoiceCommand::Issue { lines, .. } = command {
                lines[0].unit_price_halalas = 0;
            }
        }))
        .then_expect_error(InvoiceError::InvoiceTotalNotPositive { total_halalas: 0 });
}

fn above_ceiling(field: &str, amount_halalas: i128) -> InvoiceError {
    InvoiceError::Money(MoneyError::AboveCeiling {
        field: field.to_owned(),
        amount_halalas,
    })
}

fn issue_lines(lines: Vec<(u32, i64)>) -> InvoiceCommand {
    issue_with(|command| {
        if let InvoiceCommand::Issue { lines: issued, .. } = command {
            let template = issued[0].clone();
            *issued = lines
                .into_iter()
                .map(|(quantity, unit_price_halalas)| InvoiceLine {
                    quantity,
                    unit_price_halalas,
                    ..template.clone()
                })
                .collect();
        }
    })
}

#[test]
fn a_unit_price_above_the_amount_ceiling_is_rejected_naming_its_line() {
    InvoiceTest::with(())
        .given_no_previous_events()
        .when(issue_lines(vec![(1, 100), (1, 8_000_000_000_000_000_000)]))
        .then_expect_error(above_ceiling(
            "lines[1].unit_price_halalas",
            8_000_000_000_000_000_000,
        ));
}

#[test]
fn a_quantity_above_the_line_ceiling_is_rejected() {
    InvoiceTest::with(())
        .given_no_previous_events()
        .when(issue_lines(vec![(u32::MAX, i64::MAX)]))
        .then_expect_error(InvoiceError::LineQuantityAboveCeiling {
            line_index: 0,
            quantity: u32::MAX,
        });
}

#[test]
fn a_line_whose_net_is_above_the_amount_ceiling_is_rejected() {
    InvoiceTest::with(())
        .given_no_previous_events()
        .when(issue_lines(vec![(MAX_LINE_QUANTITY, MAX_AMOUNT_HALALAS)]))
        .then_expect_error(above_ceiling(
            "lines[0].net_halalas",
            i128::from(MAX_LINE_QUANTITY) * i128::from(MAX_AMOUNT_HALALAS),
        ));
}

#[test]
fn a_document_whose_subtotal_is_above_the_amount_ceiling_is_rejected() {
    let half = MAX_AMOUNT_HALALAS / 2 + 1;
    InvoiceTest::with(())
        .given_no_previous_events()
        .when(issue_lines(vec![(1, half), (1, half)]))
        .then_expect_error(above_ceiling("subtotal_halalas", i128::from(2 * half)));
}

#[test]
fn a_document_whose_total_with_vat_is_above_the_amount_ceiling_is_rejected() {
    // The subtotal is at the ceiling; its VAT takes the total over it.
    InvoiceTest::with(())
        .given_no_previous_events()
        .when(issue_lines(vec![(1, MAX_AMOUNT_HALALAS)]))
        .then_expect_error(above_ceiling(
            "total_halalas",
            i128::from(MAX_AMOUNT_HALALAS + MAX_AMOUNT_HALALAS * 15 / 100),
        ));
}

#[test]
fn an_invoice_due_before_it_was_issued_is_rejected() {
    InvoiceTest::with(())
        .given_no_previous_events()
        .when(issue_with(|command| {
            if let InvoiceCommand::Issue { due_at, .. } = command {
                *due_at = issued_at() - Duration::days(1);
            }
        }))
        .then_expect_error(InvoiceError::DueBeforeIssue);
}

#[test]
fn an_invoice_with_counter_value_zero_is_rejected() {
    InvoiceTest::with(())
        .given_no_previous_events()
        .when(issue_with(|command| {
            if let InvoiceCommand::Issue { icv, .. } = command {
                *icv = 0;
            }
        }))
        .then_expect_error(InvoiceError::IcvMustBePositive);
}

#[test]
fn an_invoice_with_a_previous_hash_that_is_not_base64_is_rejected() {
    InvoiceTest::with(())
        .given_no_previous_events()
        .when(issue_with(|command| {
            if let InvoiceCommand::Issue {
                previous_invoice_hash,
                ..
            } = command
            {
                *previous_invoice_hash = "not base64!".into();
            }
        }))
        .then_expect_error(InvoiceError::InvalidPreviousInvoiceHash);
}

#[test]
fn an_invoice_with_a_malformed_seller_vat_number_is_rejected() {
    InvoiceTest::with(())
        .given_no_previous_events()
        .when(issue_with(|command| {
            if let InvoiceCommand::Issue { seller, .. } = command {
                seller.vat_number = "123".into();
            }
        }))
        .then_expect_error(InvoiceError::InvalidSellerVatNumber {
            vat_number: "123".into(),
        });
}

#[test]
fn a_seller_name_too_long_for_the_qr_is_rejected() {
    InvoiceTest::with(())
        .given_no_previous_events()
        .when(issue_with(|command| {
            if let InvoiceCommand::Issue { seller, .. } = command {
                seller.name = "x".repeat(256);
            }
        }))
        .then_expect_error(InvoiceError::Qr(ZatcaError::QrValueTooLong {
            tag: 1,
            length_bytes: 256,
        }));
}

#[test]
fn saudi_vat_numbers_are_fifteen_digits_between_threes() {
    assert!(is_saudi_vat_number("310122393500003"));
    assert!(!is_saudi_vat_number("210122393500003"));
    assert!(!is_saudi_vat_number("310122393500002"));
    assert!(!is_saudi_vat_number("31012239350003"));
    assert!(!is_saudi_vat_number("3101223935000a3"));
}

// --- payments ----------------------------------------------------------------

#[test]
fn a_payment_below_the_total_is_recorded_as_partial() {
    InvoiceTest::with(())
        .given(vec![issued()])
        .when(payment("pay-1", 100_000))
        .then_expect_events(vec![recorded("pay-1", 100_000, 100_000)]);
    let invoice = fold(vec![issued(), recorded("pay-1", 100_000, 100_000)]);
    assert_eq!(invoice.status(), Some(InvoiceStatus::PartiallyPaid));
    assert_eq!(invoice.outstanding_halalas(), TOTAL - 100_000);
}

#[test]
fn a_payment_of_exactly_the_outstanding_amount_pays_the_invoice() {
    InvoiceTest::with(())
        .given(vec![issued()])
        .when(payment("pay-1", TOTAL))
        .then_expect_events(vec![recorded("pay-1", TOTAL, TOTAL), invoice_paid(TOTAL)]);
    let invoice = fold(fully_paid());
    assert_eq!(invoice.status(), Some(InvoiceStatus::Paid));
    assert_eq!(invoice.outstanding_halalas(), 0);
}

#[test]
fn a_second_payment_covering_the_rest_pays_the_invoice() {
    InvoiceTest::with(())
        .given(vec![issued(), recorded("pay-1", 100_000, 100_000)])
        .when(payment("pay-2", TOTAL - 100_000))
        .then_expect_events(vec![
            recorded("pay-2", TOTAL - 100_000, TOTAL),
            invoice_paid(TOTAL),
        ]);
}

#[test]
fn an_overpayment_pays_the_invoice_and_records_the_excess() {
    InvoiceTest::with(())
        .given(vec![issued()])
        .when(payment("pay-1", TOTAL + 500))
        .then_expect_events(vec![
            recorded("pay-1", TOTAL + 500, TOTAL + 500),
            invoice_paid(TOTAL + 500),
            overpaid_by_500(),
        ]);
}

/// `pay-1` paid 500 halalas more than the total.
fn overpaid_by_500() -> InvoiceEvent {
    InvoiceEvent::InvoiceOverpaid {
        invoice_id: INVOICE.into(),
        payment_id: "pay-1".into(),
        excess_halalas: 500,
        overpaid_at: later(1),
    }
}

#[test]
fn the_same_payment_recorded_twice_is_rejected() {
    InvoiceTest::with(())
        .given(vec![issued(), recorded("pay-1", 100_000, 100_000)])
        .when(payment("pay-1", 100_000))
        .then_expect_error(InvoiceError::PaymentAlreadyRecorded {
            payment_id: "pay-1".into(),
        });
}

#[test]
fn a_payment_on_a_paid_invoice_is_rejected() {
    InvoiceTest::with(())
        .given(fully_paid())
        .when(payment("pay-2", 1))
        .then_expect_error(InvoiceError::InvoiceAlreadyPaid);
}

#[test]
fn a_payment_that_is_not_positive_is_rejected() {
    for amount_halalas in [0, -1, i64::MIN] {
        InvoiceTest::with(())
            .given(vec![issued()])
            .when(payment("pay-1", amount_halalas))
            .then_expect_error(InvoiceError::PaymentAmountNotPositive { amount_halalas });
    }
}

#[test]
fn a_payment_above_the_amount_ceiling_is_rejected() {
    InvoiceTest::with(())
        .given(vec![issued(), recorded("pay-1", 1, 1)])
        .when(payment("pay-2", i64::MAX))
        .then_expect_error(above_ceiling("amount_halalas", i128::from(i64::MAX)));
}

#[test]
fn a_payment_on_a_canceled_invoice_is_rejected() {
    InvoiceTest::with(())
        .given(vec![issued(), canceled()])
        .when(payment("pay-1", TOTAL))
        .then_expect_error(InvoiceError::InvoiceIsCanceled);
}

#[test]
fn a_payment_on_an_expired_invoice_is_rejected() {
    InvoiceTest::with(())
        .given(vec![issued(), expired()])
        .when(payment("pay-1", TOTAL))
        .then_expect_error(InvoiceError::InvoiceIsExpired);
}

#[test]
fn a_payment_on_an_invoice_never_issued_is_rejected() {
    InvoiceTest::with(())
        .given_no_previous_events()
        .when(payment("pay-1", TOTAL))
        .then_expect_error(InvoiceError::InvoiceNotIssued);
}

// --- refunds -----------------------------------------------------------------

#[test]
fn a_full_refund_issues_a_credit_note_mirroring_the_invoice() {
    let events = InvoiceTest::with(())
        .given(fully_paid())
        .when(refund("refund-1", TOTAL))
        .inspect_result()
        .unwrap();
    assert_eq!(events, vec![refunded("refund-1", TOTAL, TOTAL)]);
    let InvoiceEvent::InvoiceRefunded { credit_note, .. } = &events[0] else {
        unreachable!()
    };
    assert_eq!(credit_note.document_type_code, 381);
    assert_eq!(credit_note.invoice_id, INVOICE);
    assert_eq!(credit_note.subtotal_halalas, 299_900);
    assert_eq!(credit_note.vat_halalas, 44_985);
    let mut given = fully_paid();
    given.extend(events);
    let invoice = fold(given);
    assert_eq!(invoice.refunded_halalas(), TOTAL);
    assert_eq!(invoice.status(), Some(InvoiceStatus::Paid));
}

#[test]
fn a_partial_refund_shows_as_partially_refunded_and_a_full_one_as_refunded_while_the_rules_still_read_paid(
) {
    let mut given = fully_paid();
    assert_eq!(fold(given.clone()).standing(), Some(InvoiceStanding::Paid));
    given.push(refunded("refund-1", 100_000, 100_000));
    let partly = fold(given.clone());
    assert_eq!(partly.standing(), Some(InvoiceStanding::PartiallyRefunded));
    assert_eq!(partly.status(), Some(InvoiceStatus::Paid));
    given.push(refunded("refund-2", TOTAL - 100_000, TOTAL));
    let wholly = fold(given);
    assert_eq!(wholly.standing(), Some(InvoiceStanding::Refunded));
    assert_eq!(wholly.status(), Some(InvoiceStatus::Paid));
    let refunds: Vec<(&str, i64)> = wholly
        .credit_notes()
        .iter()
        .map(|note| (note.refund_id.as_str(), note.total_halalas))
        .collect();
    assert_eq!(
        refunds,
        [("refund-1", 100_000), ("refund-2", TOTAL - 100_000)]
    );
    assert_eq!(wholly.payments().len(), 1);
    assert_eq!(wholly.payments()[0].payment_id, "pay-1");
    assert_eq!(wholly.payments()[0].amount_halalas, TOTAL);
    assert_eq!(wholly.chain(), seller().vat_number);
}

#[test]
fn an_unpaid_invoice_stands_as_its_status() {
    for (status, standing) in [
        (InvoiceStatus::Issued, InvoiceStanding::Issued),
        (InvoiceStatus::PartiallyPaid, InvoiceStanding::PartiallyPaid),
        (InvoiceStatus::Canceled, InvoiceStanding::Canceled),
        (InvoiceStatus::Expired, InvoiceStanding::Expired),
    ] {
        assert_eq!(InvoiceStanding::of(status, 0, 0), standing);
    }
    assert_eq!(
        InvoiceStanding::of(InvoiceStatus::PartiallyPaid, 500, 500),
        InvoiceStanding::Refunded
    );
}

#[test]
fn partial_refunds_accumulate_up_to_what_was_paid() {
    let mut given = fully_paid();
    given.push(refunded("refund-1", 100_000, 100_000));
    InvoiceTest::with(())
        .given(given)
        .when(refund("refund-2", TOTAL - 100_000))
        .then_expect_events(vec![refunded("refund-2", TOTAL - 100_000, TOTAL)]);
}

#[test]
fn a_refund_larger_than_what_was_paid_is_rejected() {
    InvoiceTest::with(())
        .given(vec![issued(), recorded("pay-1", 100_000, 100_000)])
        .when(refund("refund-1", 100_001))
        .then_expect_error(InvoiceError::RefundExceedsPaid {
            paid_halalas: 100_000,
            already_refunded_halalas: 0,
            requested_halalas: 100_001,
        });
}

#[test]
fn a_refund_beyond_what_remains_after_earlier_refunds_is_rejected() {
    let mut given = fully_paid();
    given.push(refunded("refund-1", 300_000, 300_000));
    InvoiceTest::with(())
        .given(given)
        .when(refund("refund-2", TOTAL - 300_000 + 1))
        .then_expect_error(InvoiceError::RefundExceedsPaid {
            paid_halalas: TOTAL,
            already_refunded_halalas: 300_000,
            requested_halalas: TOTAL - 300_000 + 1,
        });
}

#[test]
fn a_refund_on_an_unpaid_invoice_is_rejected() {
    InvoiceTest::with(())
        .given(vec![issued()])
        .when(refund("refund-1", 1))
        .then_expect_error(InvoiceError::RefundExceedsPaid {
            paid_halalas: 0,
            already_refunded_halalas: 0,
            requested_halalas: 1,
        });
}

#[test]
fn the_same_refund_recorded_twice_is_rejected() {
    let mut given = fully_paid();
    given.push(refunded("refund-1", 100, 100));
    InvoiceTest::with(())
        .given(given)
        .when(refund("refund-1", 100))
        .then_expect_error(InvoiceError::RefundAlreadyRecorded {
            refund_id: "refund-1".into(),
        });
}

#[test]
fn a_refund_without_a_reason_is_rejected() {
    InvoiceTest::with(())
        .given(fully_paid())
        .when(InvoiceCommand::Refund {
            refund_id: "refund-1".into(),
            amount_halalas: 100,
            reason: "  ".into(),
            credit_note_icv: 2,
            credit_note_previous_hash: issued_hash(),
            at: later(3),
        })
        .then_expect_error(InvoiceError::RefundReasonRequired);
}

#[test]
fn a_credit_note_whose_previous_hash_is_not_base64_is_rejected() {
    InvoiceTest::with(())
        .given(fully_paid())
        .when(InvoiceCommand::Refund {
            refund_id: "refund-1".into(),
            amount_halalas: 100,
            reason: "goodwill".into(),
            credit_note_icv: 2,
            credit_note_previous_hash: String::new(),
            at: later(3),
        })
        .then_expect_error(InvoiceError::InvalidPreviousInvoiceHash);
}

#[test]
fn an_invoice_issued_from_an_issue_and_its_place_hashes_as_invoice_hash_says() {
    let issue = IssueInvoice {
        invoice_id: INVOICE.into(),
        customer: customer(),
        lines: vec![growth_line()],
        issued_at: issued_at(),
        due_at: due_at(),
        seller: seller(),
        moyasar_invoice_id: None,
    };
    assert_eq!(
        issue
            .clone()
            .into_command(1, FIRST_INVOICE_PIH.into(), None),
        issue_command()
    );
    assert_eq!(
        invoice_hash(&issue, 1, FIRST_INVOICE_PIH).unwrap(),
        issued_hash()
    );
    assert_eq!(
        invoice_hash(&issue, 0, FIRST_INVOICE_PIH),
        Err(InvoiceError::IcvMustBePositive)
    );
}

#[test]
fn a_refund_that_is_not_positive_is_rejected() {
    InvoiceTest::with(())
        .given(fully_paid())
        .when(refund("refund-1", 0))
        .then_expect_error(InvoiceError::RefundAmountNotPositive { amount_halalas: 0 });
}

#[test]
fn a_credit_note_with_counter_value_zero_is_rejected() {
    InvoiceTest::with(())
        .given(fully_paid())
        .when(InvoiceCommand::Refund {
            refund_id: "refund-1".into(),
            amount_halalas: 100,
            reason: "goodwill".into(),
            credit_note_icv: 0,
            credit_note_previous_hash: issued_hash(),
            at: later(3),
        })
        .then_expect_error(InvoiceError::IcvMustBePositive);
}

// --- cancel and expire -----------------------------------------------------------

fn canceled() -> InvoiceEvent {
    InvoiceEvent::InvoiceCanceled {
        invoice_id: INVOICE.into(),
        reason: "wrong plan".into(),
        canceled_at: later(1),
    }
}

fn expired() -> InvoiceEvent {
    InvoiceEvent::InvoiceExpired {
        invoice_id: INVOICE.into(),
        due_at: due_at(),
        expired_at: later(8),
    }
}

#[test]
fn an_unpaid_invoice_is_canceled() {
    InvoiceTest::with(())
        .given(vec![issued()])
        .when(InvoiceCommand::Cancel {
            reason: "wrong plan".into(),
            at: later(1),
        })
        .then_expect_events(vec![canceled()]);
}

#[test]
fn canceling_an_invoice_with_a_payment_is_rejected() {
    InvoiceTest::with(())
        .given(vec![issued(), recorded("pay-1", 100, 100)])
        .when(InvoiceCommand::Cancel {
            reason: "wrong plan".into(),
            at: later(1),
        })
        .then_expect_error(InvoiceError::CannotCancelAfterPayment { paid_halalas: 100 });
}

#[test]
fn canceling_a_paid_invoice_is_rejected() {
    InvoiceTest::with(())
        .given(fully_paid())
        .when(InvoiceCommand::Cancel {
            reason: "wrong plan".into(),
            at: later(1),
        })
        .then_expect_error(InvoiceError::InvoiceAlreadyPaid);
}

#[test]
fn canceling_without_a_reason_is_rejected() {
    InvoiceTest::with(())
        .given(vec![issued()])
        .when(InvoiceCommand::Cancel {
            reason: String::new(),
            at: later(1),
        })
        .then_expect_error(InvoiceError::CancelReasonRequired);
}

#[test]
fn canceling_a_canceled_invoice_is_rejected() {
    InvoiceTest::with(())
        .given(vec![issued(), canceled()])
        .when(InvoiceCommand::Cancel {
            reason: "again".into(),
            at: later(2),
        })
        .then_expect_error(InvoiceError::InvoiceIsCanceled);
}

#[test]
fn an_unpaid_invoice_expires_after_its_due_date() {
    InvoiceTest::with(())
        .given(vec![issued()])
        .when(InvoiceCommand::Expire { at: later(8) })
        .then_expect_events(vec![expired()]);
}

#[test]
fn an_invoice_does_not_expire_on_its_due_date() {
    InvoiceTest::with(())
        .given(vec![issued()])
        .when(InvoiceCommand::Expire { at: due_at() })
        .then_expect_error(InvoiceError::NotYetDue { due_at: due_at() });
}

#[test]
fn a_partially_paid_invoice_does_not_expire() {
    InvoiceTest::with(())
        .given(vec![issued(), recorded("pay-1", 100, 100)])
        .when(InvoiceCommand::Expire { at: later(8) })
        .then_expect_error(InvoiceError::CannotExpireAfterPayment { paid_halalas: 100 });
}

#[test]
fn expiring_an_expired_invoice_is_rejected() {
    InvoiceTest::with(())
        .given(vec![issued(), expired()])
        .when(InvoiceCommand::Expire { at: later(9) })
        .then_expect_error(InvoiceError::InvoiceIsExpired);
}

#[test]
fn expiring_an_invoice_never_issued_is_rejected() {
    InvoiceTest::with(())
        .given_no_previous_events()
        .when(InvoiceCommand::Expire { at: later(9) })
        .then_expect_error(InvoiceError::InvoiceNotIssued);
}

// --- Moyasar link ------------------------------------------------------------------

fn link(moyasar_invoice_id: &str) -> InvoiceCommand {
    InvoiceCommand::LinkMoyasarInvoice {
        moyasar_invoice_id: moyasar_invoice_id.into(),
        payment_url: format!("https://checkout.moyasar.com/invoices/{moyasar_invoice_id}"),
        at: later(0),
    }
}

fn linked(moyasar_invoice_id: &str) -> InvoiceEvent {
    InvoiceEvent::MoyasarInvoiceLinked {
        invoice_id: INVOICE.into(),
        moyasar_invoice_id: moyasar_invoice_id.into(),
        payment_url: format!("https://checkout.moyasar.com/invoices/{moyasar_invoice_id}"),
        linked_at: later(0),
    }
}

#[test]
fn a_moyasar_invoice_is_linked() {
    InvoiceTest::with(())
        .given(vec![issued()])
        .when(link("moy-1"))
        .then_expect_events(vec![linked("moy-1")]);
    let invoice = fold(vec![issued(), linked("moy-1")]);
    assert_eq!(invoice.moyasar_invoice_id(), Some("moy-1"));
}

#[test]
fn linking_the_same_moyasar_invoice_again_changes_nothing() {
    InvoiceTest::with(())
        .given(vec![issued(), linked("moy-1")])
        .when(link("moy-1"))
        .then_expect_events(vec![]);
}

#[test]
fn linking_a_different_moyasar_invoice_is_rejected() {
    InvoiceTest::with(())
        .given(vec![issued(), linked("moy-1")])
        .when(link("moy-2"))
        .then_expect_error(InvoiceError::MoyasarInvoiceAlreadyLinked {
            moyasar_invoice_id: "moy-1".into(),
        });
}

#[test]
fn linking_a_canceled_invoice_is_rejected() {
    InvoiceTest::with(())
        .given(vec![issued(), canceled()])
        .when(link("moy-1"))
        .then_expect_error(InvoiceError::InvoiceIsCanceled);
}

// --- events --------------------------------------------------------------------------

#[test]
fn invoice_events_are_named_for_their_variant() {
    assert_eq!(issued().event_type(), "InvoiceIssued");
    assert_eq!(invoice_paid(1).event_type(), "InvoicePaid");
    assert_eq!(expired().event_version(), "1");
    let json = serde_json::to_value(canceled()).unwrap();
    assert_eq!(
        json["InvoiceCanceled"]["canceled_at"],
        "2022-04-26T15:30:00Z"
    );
    let back: InvoiceEvent =
        serde_json::from_value(serde_json::to_value(issued()).unwrap()).unwrap();
    assert_eq!(back, issued());
}

proptest! {
    #[test]
    fn an_invoice_is_never_over_refunded_nor_paid_twice(
        steps in proptest::collection::vec((any::<bool>(), 0u8..6, -10i64..400_000), 1..25)
    ) {
        let mut invoice = fold(vec![issued()]);
        let mut paid_events = 0;
        for (is_payment, id, amount) in steps {
            let command = if is_payment {
                payment(&format!("pay-{id}"), amount)
            } else {
                refund(&format!("refund-{id}"), amount)
            };
            if let Ok(events) = invoice.decide(command) {
                for event in events {
                    if matches!(event, InvoiceEvent::InvoicePaid { .. }) {
                        paid_events += 1;
                    }
                    invoice.apply(event);
                }
            }
            prop_assert!(invoice.refunded_halalas() <= invoice.paid_halalas());
            prop_assert!(invoice.refunded_halalas() >= 0);
            prop_assert!(paid_events <= 1);
        }
    }
}

// --- schema fixtures ------------------------------------------------------------------------

/// One of each invoice event, as the rules above decide them: the source of the stored schema
/// fixtures (`crate::upcast`). The invoice is a Phase 2 one collected by Moyasar, so every
/// optional field of `InvoiceIssued` is present.
pub(crate) fn samples() -> Vec<InvoiceEvent> {
    let mut issue = issue_command();
    if let InvoiceCommand::Issue {
        phase2,
        moyasar_invoice_id,
        ..
    } = &mut issue
    {
        *phase2 = Some(Box::new(crate::sequence::tests::phase2(Some(
            "399999999900003",
        ))));
        *moyasar_invoice_id = Some("moy-invoice-1".into());
    }
    let issued = Invoice::default().decide(issue).unwrap().remove(0);
    vec![
        issued,
        recorded("pay-1", TOTAL + 500, TOTAL + 500),
        invoice_paid(TOTAL + 500),
        overpaid_by_500(),
        refunded("refund-1", 100_000, 100_000),
        canceled(),
        expired(),
        linked("moy-invoice-1"),
    ]
}
