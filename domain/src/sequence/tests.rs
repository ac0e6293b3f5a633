//! Given/when/then tests of the document sequence: the ICV counter, the PIH chain, and
//! agreement with the invoice it allocates for.

use cqrs_es::test::TestFramework;
use cqrs_es::Aggregate;
use cqrs_es::DomainEvent;
use proptest::prelude::*;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::*;
use crate::invoice::{Customer, InvoiceCommand, InvoiceEvent, InvoiceLine, Seller};
use crate::plan::Plan;

type SequenceTest = TestFramework<DocumentSequence>;

const VAT_NUMBER: &str = "310122393500003";
const OTHER_VAT_NUMBER: &str = "399999999900003";

fn issued_at() -> OffsetDateTime {
    datetime!(2022-04-25 15:30:00 UTC)
}

fn issue(invoice_id: &str) -> IssueInvoice {
    IssueInvoice {
        invoice_id: invoice_id.into(),
        customer: Customer {
            lead_id: "lead-1".into(),
            name: "Harbi Logistics".into(),
        },
        lines: vec![InvoiceLine {
            description: "Growth plan, April".into(),
            quantity: 1,
            unit_price_halalas: 299_900,
            plan: Some(Plan::Growth),
        }],
        issued_at: issued_at(),
        due_at: issued_at() + Duration::days(7),
        seller: Seller {
            name: "Dealix".into(),
            vat_number: VAT_NUMBER.into(),
        },
        moyasar_invoice_id: None,
    }
}

fn allocate_invoice(invoice_id: &str) -> SequenceCommand {
    SequenceCommand::AllocateInvoice {
        issue: issue(invoice_id),
        phase2: None,
    }
}

fn allocate_credit_note(invoice_id: &str, refund_id: &str) -> SequenceCommand {
    SequenceCommand::AllocateCreditNote {
        invoice_id: invoice_id.into(),
        refund_id: refund_id.into(),
        amount_halalas: 100_000,
        reason: "customer canceled in the first week".into(),
        at: issued_at() + Duration::days(3),
    }
}

/// Decides each command on the sequence folded so far, and returns every event.
fn allocated(commands: Vec<SequenceCommand>) -> Vec<SequenceEvent> {
    let mut sequence = DocumentSequence::default();
    let mut events = Vec::new();
    for command in commands {
        for event in sequence.decide(command).unwrap() {
            sequence.apply(event.clone());
            events.push(event);
        }
    }
    events
}

fn fold(events: Vec<SequenceEvent>) -> DocumentSequence {
    let mut sequence = DocumentSequence::default();
    for event in events {
        sequence.apply(event);
    }
    sequence
}

/// `(icv, previous_invoice_hash, document_hash)` of an allocation.
fn place(event: &SequenceEvent) -> (u64, String, String) {
    let SequenceEvent::DocumentAllocated {
        icv,
        previous_invoice_hash,
        document_hash,
        ..
    } = event;
    (*icv, previous_invoice_hash.clone(), document_hash.clone())
}

fn when(given: Vec<SequenceEvent>, command: SequenceCommand) -> Vec<SequenceEvent> {
    SequenceTest::with(())
        .given(given)
        .when(command)
        .inspect_result()
        .unwrap()
}

// --- the chain -----------------------------------------------------------------------

#[test]
fn the_first_allocation_gets_icv_one_and_the_zero_pih() {
    let events = SequenceTest::with(())
        .given_no_previous_events()
        .when(allocate_invoice("invoice-1"))
        .inspect_result()
        .unwrap();
    let [SequenceEvent::DocumentAllocated {
        seller_vat_number,
        document_id,
        document_type_code,
        icv,
        previous_invoice_hash,
        document_hash,
        allocated_at,
        issue: Some(allocated_issue),
        credit_note: None,
        ..
    }] = events.as_slice()
    else {
        panic!("expected one invoice allocation, got {events:?}");
    };
    assert_eq!(seller_vat_number, VAT_NUMBER);
    assert_eq!(document_id, "invoice-1");
    assert_eq!(*document_type_code, 388);
    assert_eq!(*icv, 1);
    assert_eq!(previous_invoice_hash, FIRST_INVOICE_PIH);
    assert!(zatca::is_base64(document_hash));
    assert_eq!(*allocated_at, issued_at());
    assert_eq!(*allocated_issue, issue("invoice-1"));
    let sequence = fold(events.clone());
    assert_eq!(sequence.next_icv(), 2);
    assert_eq!(sequence.last_document_hash(), Some(document_hash.as_str()));
    assert_eq!(
        sequence.allocation("invoice-1"),
        Some((1, FIRST_INVOICE_PIH, document_hash.as_str()))
    );
    assert_eq!(sequence.allocation("invoice-2"), None);
}

#[test]
fn an_empty_sequence_starts_at_one_with_the_zero_pih() {
    let sequence = DocumentSequence::default();
    assert_eq!(sequence.next_icv(), 1);
    assert_eq!(sequence.last_document_hash(), None);
    assert_eq!(sequence.next_previous_invoice_hash(), FIRST_INVOICE_PIH);
}

#[test]
fn the_second_allocation_chains_on_the_first_documents_hash() {
    let given = allocated(vec![allocate_invoice("invoice-1")]);
    let (_, _, first_hash) = place(&given[0]);
    let events = when(given, allocate_invoice("invoice-2"));
    let (icv, previous_invoice_hash, second_hash) = place(&events[0]);
    assert_eq!(icv, 2);
    assert_eq!(previous_invoice_hash, first_hash);
    assert_ne!(second_hash, first_hash);
}

#[test]
fn invoices_and_credit_notes_share_one_counter_and_one_chain() {
    let events = allocated(vec![
        allocate_invoice("invoice-1"),
        allocate_credit_note("invoice-1", "refund-1"),
        allocate_invoice("invoice-2"),
    ]);
    let places: Vec<_> = events.iter().map(place).collect();
    assert_eq!(
        places.iter().map(|(icv, _, _)| *icv).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(places[1].1, places[0].2);
    assert_eq!(places[2].1, places[1].2);
    let SequenceEvent::DocumentAllocated {
        document_id,
        document_type_code,
        seller_vat_number,
        issue,
        credit_note,
        ..
    } = &events[1];
    assert_eq!(
        (document_id.as_str(), *document_type_code),
        ("refund-1", 381)
    );
    assert_eq!(seller_vat_number, VAT_NUMBER);
    assert_eq!(*issue, None);
    assert_eq!(
        *credit_note,
        Some(CreditNoteAllocation {
            invoice_id: "invoice-1".into(),
            refund_id: "refund-1".into(),
            amount_halalas: 100_000,
            reason: "customer canceled in the first week".into(),
        })
    );
}

#[test]
fn the_credit_note_hash_covers_its_place_and_its_content() {
    let credit_note = CreditNoteAllocation {
        invoice_id: "invoice-1".into(),
        refund_id: "refund-1".into(),
        amount_halalas: 100,
        reason: "goodwill".into(),
    };
    let input = CreditNoteHashInput {
        seller_vat_number: VAT_NUMBER,
        credit_note: &credit_note,
        icv: 2,
        previous_invoice_hash: FIRST_INVOICE_PIH,
        issued_at: issued_at(),
    };
    let other_amount = CreditNoteAllocation {
        amount_halalas: 101,
        ..credit_note.clone()
    };
    assert_eq!(input.hash(), input.hash());
    assert_ne!(input.hash(), CreditNoteHashInput { icv: 3, ..input }.hash());
    assert_ne!(
        input.hash(),
        CreditNoteHashInput {
            credit_note: &other_amount,
            ..input
        }
        .hash()
    );
    assert!(input.canonical().starts_with("11:credit_note,3:381,"));
}

// --- agreement with the invoice ------------------------------------------------------

#[test]
fn the_allocated_hash_is_the_hash_the_invoice_records_when_issued() {
    let given = allocated(vec![allocate_invoice("invoice-1")]);
    let events = when(given.clone(), allocate_invoice("invoice-2"));
    for event in given.iter().chain(&events) {
        let SequenceEvent::DocumentAllocated {
            icv,
            previous_invoice_hash,
            document_hash,
            issue: Some(issue),
            ..
        } = event
        else {
            panic!("expected an invoice allocation, got {event:?}");
        };
        let issued = Invoice::default()
            .decide(
                issue
                    .clone()
                    .into_command(*icv, previous_invoice_hash.clone(), None),
            )
            .unwrap();
        let [InvoiceEvent::InvoiceIssued {
            icv: issued_icv,
            previous_invoice_hash: issued_pih,
            invoice_hash,
            ..
        }] = issued.as_slice()
        else {
            panic!("expected one InvoiceIssued, got {issued:?}");
        };
        assert_eq!(issued_icv, icv);
        assert_eq!(issued_pih, previous_invoice_hash);
        assert_eq!(invoice_hash, document_hash);
    }
}

#[test]
fn a_credit_note_allocation_is_enough_to_refund_the_invoice() {
    let events = allocated(vec![
        allocate_invoice("invoice-1"),
        allocate_credit_note("invoice-1", "refund-1"),
    ]);
    let SequenceEvent::DocumentAllocated {
        icv,
        previous_invoice_hash,
        allocated_at,
        issue: None,
        credit_note: Some(credit_note),
        ..
    } = &events[1]
    else {
        panic!("expected a credit note allocation, got {:?}", events[1]);
    };
    let mut invoice = Invoice::default();
    let SequenceEvent::DocumentAllocated {
        issue: Some(issue),
        icv: invoice_icv,
        previous_invoice_hash: invoice_pih,
        ..
    } = &events[0]
    else {
        unreachable!()
    };
    let issue_command = issue
        .clone()
        .into_command(*invoice_icv, invoice_pih.clone(), None);
    let payment = InvoiceCommand::RecordPayment {
        payment_id: "pay-1".into(),
        amount_halalas: 344_885,
        at: issued_at(),
    };
    for command in [issue_command, payment] {
        for event in invoice.decide(command).unwrap() {
            invoice.apply(event);
        }
    }
    let refunded = invoice
        .decide(InvoiceCommand::Refund {
            refund_id: credit_note.refund_id.clone(),
            amount_halalas: credit_note.amount_halalas,
            reason: credit_note.reason.clone(),
            credit_note_icv: *icv,
            credit_note_previous_hash: previous_invoice_hash.clone(),
            at: *allocated_at,
        })
        .unwrap();
    let [InvoiceEvent::InvoiceRefunded {
        credit_note: recorded,
        ..
    }] = refunded.as_slice()
    else {
        panic!("expected one InvoiceRefunded, got {refunded:?}");
    };
    assert_eq!(recorded.credit_note_icv, 2);
    assert_eq!(&recorded.credit_note_previous_hash, previous_invoice_hash);
    assert_eq!(recorded.credit_note_previous_hash, place(&events[0]).2);
}

// --- idempotency ---------------------------------------------------------------------

#[test]
fn allocating_the_same_invoice_again_changes_nothing() {
    SequenceTest::with(())
        .given(allocated(vec![allocate_invoice("invoice-1")]))
        .when(allocate_invoice("invoice-1"))
        .then_expect_events(vec![]);
}

#[test]
fn allocating_the_same_credit_note_again_changes_nothing() {
    SequenceTest::with(())
        .given(allocated(vec![
            allocate_invoice("invoice-1"),
            allocate_credit_note("invoice-1", "refund-1"),
        ]))
        .when(allocate_credit_note("invoice-1", "refund-1"))
        .then_expect_events(vec![]);
}

#[test]
fn allocating_an_invoice_again_with_different_content_is_rejected() {
    let mut changed = issue("invoice-1");
    changed.lines[0].unit_price_halalas += 1;
    SequenceTest::with(())
        .given(allocated(vec![
            allocate_invoice("invoice-1"),
            allocate_invoice("invoice-2"),
        ]))
        .when(SequenceCommand::AllocateInvoice {
            issue: changed,
            phase2: None,
        })
        .then_expect_error(SequenceError::DocumentAlreadyAllocated {
            document_id: "invoice-1".into(),
            icv: 1,
        });
}

#[test]
fn allocating_a_credit_note_again_with_a_different_amount_is_rejected() {
    SequenceTest::with(())
        .given(allocated(vec![
            allocate_invoice("invoice-1"),
            allocate_credit_note("invoice-1", "refund-1"),
        ]))
        .when(SequenceCommand::AllocateCreditNote {
            invoice_id: "invoice-1".into(),
            refund_id: "refund-1".into(),
            amount_halalas: 1,
            reason: "customer canceled in the first week".into(),
            at: issued_at() + Duration::days(3),
        })
        .then_expect_error(SequenceError::DocumentAlreadyAllocated {
            document_id: "refund-1".into(),
            icv: 2,
        });
}

#[test]
fn a_credit_note_reusing_an_invoice_id_is_rejected() {
    SequenceTest::with(())
        .given(allocated(vec![allocate_invoice("invoice-1")]))
        .when(allocate_credit_note("invoice-1", "invoice-1"))
        .then_expect_error(SequenceError::DocumentAlreadyAllocated {
            document_id: "invoice-1".into(),
            icv: 1,
        });
}

// --- rejections ----------------------------------------------------------------------

#[test]
fn an_invoice_that_cannot_be_issued_is_rejected_before_an_icv_is_taken() {
    let mut no_lines = issue("invoice-2");
    no_lines.lines.clear();
    let given = allocated(vec![allocate_invoice("invoice-1")]);
    SequenceTest::with(())
        .given(given.clone())
        .when(SequenceCommand::AllocateInvoice {
            issue: no_lines,
            phase2: None,
        })
        .then_expect_error(SequenceError::InvalidInvoice(
            InvoiceError::InvoiceHasNoLines,
        ));
    let sequence = fold(given);
    assert_eq!(sequence.next_icv(), 2);
    assert_eq!(sequence.allocation("invoice-2"), None);
}

#[test]
fn an_invoice_for_nothing_is_rejected_by_the_invoices_own_rule() {
    let mut free = issue("invoice-1");
    free.lines[0].unit_price_halalas = 0;
    SequenceTest::with(())
        .given_no_previous_events()
        .when(SequenceCommand::AllocateInvoice {
            issue: free,
            phase2: None,
        })
        .then_expect_error(SequenceError::InvalidInvoice(
            InvoiceError::InvoiceTotalNotPositive { total_halalas: 0 },
        ));
}

#[test]
fn an_invoice_whose_qr_cannot_be_encoded_is_rejected() {
    let mut long_name = issue("invoice-1");
    long_name.seller.name = "x".repeat(256);
    SequenceTest::with(())
        .given_no_previous_events()
        .when(SequenceCommand::AllocateInvoice {
            issue: long_name,
            phase2: None,
        })
        .then_expect_error(SequenceError::InvalidInvoice(InvoiceError::Qr(
            zatca::ZatcaError::QrValueTooLong {
                tag: 1,
                length_bytes: 256,
            },
        )));
}

#[test]
fn an_invoice_from_another_seller_is_rejected() {
    let mut other_seller = issue("invoice-2");
    other_seller.seller.vat_number = OTHER_VAT_NUMBER.into();
    SequenceTest::with(())
        .given(allocated(vec![allocate_invoice("invoice-1")]))
        .when(SequenceCommand::AllocateInvoice {
            issue: other_seller,
            phase2: None,
        })
        .then_expect_error(SequenceError::SellerMismatch {
            sequence_vat_number: VAT_NUMBER.into(),
            document_vat_number: OTHER_VAT_NUMBER.into(),
        });
}

#[test]
fn a_credit_note_without_a_reason_is_rejected() {
    SequenceTest::with(())
        .given(allocated(vec![allocate_invoice("invoice-1")]))
        .when(SequenceCommand::AllocateCreditNote {
            invoice_id: "invoice-1".into(),
            refund_id: "refund-1".into(),
            amount_halalas: 100,
            reason: "  ".into(),
            at: issued_at(),
        })
        .then_expect_error(SequenceError::CreditNoteReasonRequired);
}

#[test]
fn a_credit_note_that_is_not_positive_is_rejected() {
    for amount_halalas in [0, -1, i64::MIN] {
        SequenceTest::with(())
            .given(allocated(vec![allocate_invoice("invoice-1")]))
            .when(SequenceCommand::AllocateCreditNote {
                invoice_id: "invoice-1".into(),
                refund_id: "refund-1".into(),
                amount_halalas,
                reason: "goodwill".into(),
                at: issued_at(),
            })
            .then_expect_error(SequenceError::CreditNoteAmountNotPositive { amount_halalas });
    }
}

#[test]
fn a_credit_note_without_a_refund_id_is_rejected() {
    SequenceTest::with(())
        .given(allocated(vec![allocate_invoice("invoice-1")]))
        .when(allocate_credit_note("invoice-1", ""))
        .then_expect_error(SequenceError::RefundIdRequired);
}

#[test]
fn a_credit_note_for_an_invoice_this_seller_never_allocated_is_rejected() {
    SequenceTest::with(())
        .given_no_previous_events()
        .when(allocate_credit_note("invoice-1", "refund-1"))
        .then_expect_error(SequenceError::CreditNoteForUnknownInvoice {
            invoice_id: "invoice-1".into(),
        });
    SequenceTest::with(())
        .given(allocated(vec![
            allocate_invoice("invoice-1"),
            allocate_credit_note("invoice-1", "refund-1"),
        ]))
        .when(allocate_credit_note("refund-1", "refund-2"))
        .then_expect_error(SequenceError::CreditNoteForUnknownInvoice {
            invoice_id: "refund-1".into(),
        });
}

#[test]
fn an_exhausted_counter_refuses_another_document() {
    let mut given = allocated(vec![allocate_invoice("invoice-1")]);
    let SequenceEvent::DocumentAllocated { icv, .. } = &mut given[0];
    *icv = u64::MAX;
    SequenceTest::with(())
        .given(given)
        .when(allocate_invoice("invoice-2"))
        .then_expect_error(SequenceError::IcvExhausted);
}

// --- events ----------------------------------------------------------------------------

#[test]
fn sequence_events_are_named_for_their_variant_and_round_trip() {
    let events = allocated(vec![allocate_invoice("invoice-1")]);
    assert_eq!(events[0].event_type(), "DocumentAllocated");
    assert_eq!(events[0].event_version(), "1");
    assert_eq!(DocumentSequence::TYPE, "document_sequence");
    let json = serde_json::to_value(&events[0]).unwrap();
    assert_eq!(json["DocumentAllocated"]["icv"], 1);
    assert_eq!(
        json["DocumentAllocated"]["allocated_at"],
        "2022-04-25T15:30:00Z"
    );
    let back: SequenceEvent = serde_json::from_value(json).unwrap();
    assert_eq!(back, events[0]);
}

/// One step of a random run: a new invoice, a credit note on an earlier invoice, or a
/// repeat of an earlier request.
#[derive(Debug, Clone)]
enum Step {
    Invoice,
    CreditNote { invoice: usize },
    Repeat { request: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        Just(Step::Invoice),
        any::<usize>().prop_map(|invoice| Step::CreditNote { invoice }),
        any::<usize>().prop_map(|request| Step::Repeat { request }),
    ]
}

proptest! {
    #[test]
    fn any_run_of_allocations_numbers_its_documents_one_to_n_and_chains_their_hashes(
        steps in proptest::collection::vec(step(), 1..40)
    ) {
        let mut sequence = DocumentSequence::default();
        let mut invoices: Vec<String> = Vec::new();
        let mut requests: Vec<SequenceCommand> = Vec::new();
        let mut places = Vec::new();
        for (index, step) in steps.into_iter().enumerate() {
            let command = match step {
                Step::Invoice => {
                    invoices.push(format!("invoice-{index}"));
                    allocate_invoice(&format!("invoice-{index}"))
                }
                Step::CreditNote { invoice } if !invoices.is_empty() => {
                    allocate_credit_note(&invoices[invoice % invoices.len()], &format!("refund-{index}"))
                }
                Step::Repeat { request } if !requests.is_empty() => {
                    requests[request % requests.len()].clone()
                }
                _ => continue,
            };
            let is_repeat = requests.contains(&command);
            let events = sequence.decide(command.clone()).unwrap();
            prop_assert_eq!(events.len(), usize::from(!is_repeat));
            for event in events {
                places.push(place(&event));
                sequence.apply(event);
            }
            requests.push(command);
        }
        let icvs: Vec<u64> = places.iter().map(|(icv, _, _)| *icv).collect();
        let expected: Vec<u64> = (1..=u64::try_from(places.len()).unwrap()).collect();
        prop_assert_eq!(icvs, expected);
        let mut previous_hash = FIRST_INVOICE_PIH.to_owned();
        for (_, previous_invoice_hash, document_hash) in places {
            prop_assert_eq!(previous_invoice_hash, previous_hash);
            previous_hash = document_hash;
        }
        prop_assert_eq!(sequence.next_previous_invoice_hash(), previous_hash);
    }
}

// ---------------------------------------------------------------------------------------------
// ZATCA Phase 2: an EGS unit's own chain of UBL hashes.

use crate::phase2::{BuyerRegistration, NationalAddress, Phase2Details, SellerRegistration};

fn riyadh_address(building_number: &str) -> NationalAddress {
    NationalAddress {
        street: "Prince Sultan".into(),
        building_number: building_number.into(),
        district: "Al Olaya".into(),
        city: "Riyadh".into(),
        postal_code: "12211".into(),
        country_code: "SA".into(),
    }
}

pub(crate) fn phase2(buyer_vat_number: Option<&str>) -> Phase2Details {
    Phase2Details {
        egs_unit: "egs-1".into(),
        seller: SellerRegistration {
            commercial_registration_number: "1010010000".into(),
            address: riyadh_address("2322"),
        },
        buyer: buyer_vat_number.map(|vat_number| BuyerRegistration {
            vat_number: vat_number.into(),
            address: riyadh_address("1234"),
        }),
    }
}

fn allocate_phase2(invoice_id: &str, buyer_vat_number: Option<&str>) -> SequenceCommand {
    SequenceCommand::AllocateInvoice {
        issue: issue(invoice_id),
        phase2: Some(Box::new(phase2(buyer_vat_number))),
    }
}

/// The invoice hash ZATCA computes for the UBL document of `invoice_id` at this place.
fn ubl_hash(invoice_id: &str, buyer: Option<&str>, icv: u64, pih: &str) -> String {
    let document = crate::phase2::invoice_document(&issue(invoice_id), &phase2(buyer), icv, pih);
    let xml = ::zatca::to_unsigned_xml(&document).unwrap();
    ::zatca::invoice_hash(&xml).unwrap().to_base64()
}

#[test]
fn an_egs_units_chain_starts_at_one_with_the_hash_of_zero_and_links_ubl_hashes() {
    let first = when(Vec::new(), allocate_phase2("invoice-1", None));
    assert_eq!(
        place(&first[0]),
        (
            1,
            FIRST_INVOICE_PIH.to_owned(),
            ubl_hash("invoice-1", None, 1, FIRST_INVOICE_PIH)
        )
    );
    let (_, _, first_hash) = place(&first[0]);
    let second = when(first, allocate_phase2("invoice-2", Some(OTHER_VAT_NUMBER)));
    assert_eq!(
        place(&second[0]),
        (
            2,
            first_hash.clone(),
            ubl_hash("invoice-2", Some(OTHER_VAT_NUMBER), 2, &first_hash)
        )
    );
}

#[test]
fn a_phase_2_invoice_records_the_ubl_hash_its_sequence_allocated() {
    let allocation = when(
        Vec::new(),
        allocate_phase2("invoice-1", Some(OTHER_VAT_NUMBER)),
    );
    let (icv, pih, allocated_hash) = place(&allocation[0]);
    let events = Invoice::default()
        .decide(issue("invoice-1").into_command(
            icv,
            pih,
            Some(Box::new(phase2(Some(OTHER_VAT_NUMBER)))),
        ))
        .unwrap();
    let [InvoiceEvent::InvoiceIssued {
        invoice_hash,
        phase2: Some(details),
        ..
    }] = events.as_slice()
    else {
        panic!("{events:?}");
    };
    assert_eq!(invoice_hash, &allocated_hash);
    assert_eq!(details.egs_unit, "egs-1");
}

#[test]
fn a_document_of_another_chain_is_refused() {
    let phase1 = allocated(vec![allocate_invoice("invoice-1")]);
    SequenceTest::with(())
        .given(phase1)
        .when(allocate_phase2("invoice-2", None))
        .then_expect_error(SequenceError::ChainMismatch {
            chain: "Phase 1".into(),
            document: "EGS unit egs-1".into(),
        });
    SequenceTest::with(())
        .given(allocated(vec![allocate_phase2("invoice-1", None)]))
        .when(allocate_invoice("invoice-2"))
        .then_expect_error(SequenceError::ChainMismatch {
            chain: "EGS unit egs-1".into(),
            document: "Phase 1".into(),
        });
}

#[test]
fn a_standard_invoice_whose_buyer_vat_number_is_not_saudi_is_refused_before_an_icv_is_taken() {
    let result = DocumentSequence::default().decide(allocate_phase2("invoice-1", Some("123")));
    assert!(
        matches!(result, Err(SequenceError::InvalidInvoice(InvoiceError::Phase2(ref rule))) if rule.contains("buyer")),
        "{result:?}"
    );
}

#[test]
fn a_phase_2_credit_note_is_its_own_ubl_document_on_the_units_chain() {
    let given = allocated(vec![allocate_phase2("invoice-1", Some(OTHER_VAT_NUMBER))]);
    let (_, _, invoice_hash) = place(&given[0]);
    let events = when(given.clone(), allocate_credit_note("invoice-1", "refund-1"));
    let (icv, pih, credit_note_hash) = place(&events[0]);
    assert_eq!((icv, pih.as_str()), (2, invoice_hash.as_str()));
    let sequence = fold(given);
    let original = sequence.allocations["invoice-1"].issue.clone().unwrap();
    let SequenceCommand::AllocateCreditNote {
        invoice_id,
        refund_id,
        amount_halalas,
        reason,
        at,
    } = allocate_credit_note("invoice-1", "refund-1")
    else {
        unreachable!()
    };
    let allocation = CreditNoteAllocation {
        invoice_id,
        refund_id,
        amount_halalas,
        reason,
    };
    let document = crate::phase2::credit_note_document(
        &original,
        &phase2(Some(OTHER_VAT_NUMBER)),
        &allocation,
        icv,
        &pih,
        at,
    );
    assert_eq!(document.kind, ::zatca::DocumentKind::CreditNote);
    let xml = ::zatca::to_unsigned_xml(&document).unwrap();
    assert!(
        xml.contains("<cbc:ID>invoice-1</cbc:ID>"),
        "billing reference"
    );
    assert_eq!(
        ::zatca::invoice_hash(&xml).unwrap().to_base64(),
        credit_note_hash
    );
}

// --- schema fixtures ------------------------------------------------------------------------

/// A Phase 2 invoice's allocation, as `decide` records it: the source of the stored schema
/// fixture (`crate::upcast`).
pub(crate) fn samples() -> Vec<SequenceEvent> {
    allocated(vec![allocate_phase2("invoice-1", Some(OTHER_VAT_NUMBER))])
}
