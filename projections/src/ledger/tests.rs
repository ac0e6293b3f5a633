//! The posting rules without a database: worked examples, and a proptest that drives the
//! real aggregates through random valid histories and folds their events through
//! [`postings`].

use cqrs_es::Aggregate;
use domain::commission::{CommissionCommand, CommissionStatus, PartnerCommission};
use domain::invoice::{Customer, Invoice, InvoiceCommand, InvoiceStatus, Seller};
use domain::payment::{Payment, PaymentCommand, PaymentStatus};
use domain::plan::Plan;
use domain::zatca::FIRST_INVOICE_PIH;
use proptest::prelude::*;
use time::macros::datetime;
use time::Duration;

use super::*;
use domain::commission::CommissionEvent;
use domain::invoice::InvoiceLine;
use time::OffsetDateTime;

const SELLER_VAT: &str = "300000000000003";

fn issue(
    invoice_id: &str,
    lead_id: &str,
    lines: Vec<InvoiceLine>,
    at: OffsetDateTime,
) -> InvoiceCommand {
    InvoiceCommand::Issue {
        invoice_id: invoice_id.into(),
        customer: Customer {
            lead_id: lead_id.into(),
            name: lead_id.into(),
        },
        lines,
        issued_at: at,
        due_at: at + Duration::days(14),
        seller: Seller {
            name: "Dealix".into(),
            vat_number: SELLER_VAT.into(),
        },
        icv: 1,
        previous_invoice_hash: FIRST_INVOICE_PIH.into(),
        moyasar_invoice_id: None,
        phase2: None,
    }
}

fn plan_line(plan: Plan) -> InvoiceLine {
    InvoiceLine {
        description: plan.as_str().into(),
        quantity: 1,
        unit_price_halalas: plan.price_halalas(),
        plan: Some(plan),
    }
}

fn report(
    payment_id: &str,
    invoice_id: &str,
    status: PaymentStatus,
    amount: i64,
    fee: i64,
    refunded: i64,
    at: OffsetDateTime,
) -> PaymentCommand {
    PaymentCommand::RecordGatewayStatus {
        payment_id: payment_id.into(),
        invoice_id: Some(invoice_id.into()),
        moyasar_invoice_id: None,
        status,
        amount_halalas: amount,
        fee_halalas: fee,
        captured_halalas: if status == PaymentStatus::Captured {
            amount
        } else {
            0
        },
        refunded_halalas: refunded,
        currency: "SAR".into(),
        at,
    }
}

/// A fold of money events through [`postings`], checking each entry as it is posted.
#[derive(Default)]
struct Journal {
    known: Known,
    events: u64,
    entries: Vec<JournalEntry>,
    balances: BTreeMap<String, i64>,
    debits: i128,
    credits: i128,
}

impl Journal {
    fn post(&mut self, event: MoneyEvent) {
        self.events += 1;
        let event_id = format!("event-{}", self.events);
        for entry in postings(&event_id, &event, &self.known) {
            assert!(entry.is_balanced(), "unbalanced {entry:?} for {event:?}");
            assert!(entry.entry_id.starts_with(&event_id));
            assert!(!entry.lines.is_empty());
            for line in &entry.lines {
                assert_ne!(line.account, accounts::SUSPENSE, "{entry:?} for {event:?}");
                let one_sided = (line.debit_halalas > 0 && line.credit_halalas == 0)
                    || (line.credit_halalas > 0 && line.debit_halalas == 0);
                assert!(one_sided, "{line:?} in {entry:?}");
                *self.balances.entry(line.account.clone()).or_default() +=
                    line.debit_halalas - line.credit_halalas;
            }
            self.debits += entry.debit_halalas();
            self.credits += entry.credit_halalas();
            self.entries.push(entry);
        }
        self.known.observe(&event);
    }

    fn balance(&self, account: &str) -> i64 {
        self.balances.get(account).copied().unwrap_or(0)
    }
}

#[test]
fn a_growth_invoice_paid_through_the_gateway_posts_receivable_revenue_vat_cash_and_fee() {
    let at = datetime!(2026-09-01 10:00 UTC);
    let mut journal = Journal::default();
    let invoice = Invoice::default();
    let issued = invoice
        .decide(issue("inv-1", "lead-1", vec![plan_line(Plan::Growth)], at))
        .unwrap();
    journal.post(MoneyEvent::Invoice(issued[0].clone()));
    let entry = &journal.entries[0];
    assert_eq!(entry.entry_id, "event-1/0");
    assert_eq!(
        entry.lines,
        vec![
            JournalLine {
                account: "accounts_receivable:lead-1".into(),
                debit_halalas: 344_885,
                credit_halalas: 0
            },
            JournalLine {
                account: "revenue:growth".into(),
                debit_halalas: 0,
                credit_halalas: 299_900
            },
            JournalLine {
                account: "vat_payable".into(),
                debit_halalas: 0,
                credit_halalas: 44_985
            },
        ]
    );
    let paid = Payment::default()
        .decide(report(
            "pay-1",
            "inv-1",
            PaymentStatus::Paid,
            344_885,
            6_897,
            0,
            at,
        ))
        .unwrap();
    journal.post(MoneyEvent::Payment(paid[0].clone()));
    assert_eq!(journal.balance(accounts::GATEWAY_CLEARING), 0);
    assert_eq!(journal.balance(accounts::CASH), 344_885 - 6_897);
    assert_eq!(journal.balance(accounts::GATEWAY_FEES), 6_897);
    assert_eq!(journal.balance(accounts::UNAPPLIED_PAYMENTS), -344_885);
    let mut invoice = invoice;
    invoice.apply(issued[0].clone());
    for event in invoice
        .decide(InvoiceCommand::RecordPayment {
            payment_id: "pay-1".into(),
            amount_halalas: 344_885,
            at,
        })
        .unwrap()
    {
        journal.post(MoneyEvent::Invoice(event));
    }
    assert_eq!(journal.balance("accounts_receivable:lead-1"), 0);
    assert_eq!(journal.balance(accounts::UNAPPLIED_PAYMENTS), 0);
    assert_eq!(journal.debits, journal.credits);
}

#[test]
fn a_captured_payment_is_collected_once_and_a_later_paid_posts_only_a_changed_fee() {
    let at = datetime!(2026-09-01 10:00 UTC);
    let mut journal = Journal::default();
    let mut payment = Payment::default();
    for (status, fee) in [
        (PaymentStatus::Authorized, 0),
        (PaymentStatus::Captured, 100),
        (PaymentStatus::Paid, 150),
    ] {
        for event in payment
            .decide(report("pay-1", "inv-1", status, 10_000, fee, 0, at))
            .unwrap()
        {
            journal.post(MoneyEvent::Payment(event.clone()));
            payment.apply(event);
        }
        assert_eq!(journal.balance(accounts::GATEWAY_CLEARING), 0);
    }
    assert_eq!(journal.balance(accounts::UNAPPLIED_PAYMENTS), -10_000);
    assert_eq!(journal.balance(accounts::GATEWAY_FEES), 150);
    assert_eq!(journal.balance(accounts::CASH), 9_850);
    let fee_true_up: Vec<_> = journal
        .entries
        .iter()
        .map(|e| e.entry_id.as_str())
        .collect();
    assert_eq!(fee_true_up, ["event-2/0", "event-2/1", "event-3/1"]);
}

#[test]
fn a_clawback_after_payout_leaves_the_partner_owing_us() {
    let at = datetime!(2026-09-01 10:00 UTC);
    let mut journal = Journal::default();
    let mut commission = PartnerCommission::default();
    let commands = [
        CommissionCommand::Accrue {
            commission_id: "c-1".into(),
            partner_id: "p-1".into(),
            invoice_id: "inv-1".into(),
            lead_id: "lead-1".into(),
            base_halalas: 299_900,
            rate_bps: 1_000,
            hold_days: 0,
            at,
        },
        CommissionCommand::Approve {
            actor: "finance".into(),
            at,
        },
        CommissionCommand::MarkPaidOut {
            payout_id: "payout-1".into(),
            at,
        },
        CommissionCommand::ClawBack {
            refund_id: "r-1".into(),
            refunded_base_halalas: 299_900,
            invoice_base_halalas: 299_900,
            at,
        },
    ];
    for command in commands {
        for event in commission.decide(command).unwrap() {
            journal.post(MoneyEvent::Commission(event.clone()));
            commission.apply(event);
        }
    }
    assert_eq!(journal.balance("commission_payable:p-1"), 29_990);
    assert_eq!(journal.balance(accounts::COMMISSION_EXPENSE), 0);
    assert_eq!(journal.balance(accounts::CASH), -29_990);
}

/// One step of a random history; indexes pick among what exists (modulo its count).
#[derive(Debug, Clone)]
enum Step {
    Issue {
        lead: u8,
        lines: Vec<(u32, i64, Option<usize>)>,
    },
    Pay {
        invoice: usize,
        percent_of_total: i64,
        fee_bps: i64,
        flow: usize,
    },
    Refund {
        payment: usize,
        percent_of_refundable: i64,
    },
    Cancel {
        invoice: usize,
    },
    Expire {
        invoice: usize,
    },
    Accrue {
        invoice: usize,
        partner: u8,
        rate_bps: u32,
    },
    Approve {
        commission: usize,
    },
    Reject {
        commission: usize,
    },
    PayOut {
        commission: usize,
    },
    ClawBack {
        commission: usize,
        percent_of_base: i64,
    },
    Adjust {
        commission: usize,
        amount_halalas: i64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let line = (1u32..=3, 0i64..=1_000_000, proptest::option::of(0usize..4));
    prop_oneof![
        3 => (0u8..6, proptest::collection::vec(line, 1..4))
            .prop_map(|(lead, lines)| Step::Issue { lead, lines }),
        4 => (any::<usize>(), prop_oneof![Just(100i64), 1i64..=130], 0i64..=500, 0usize..5).prop_map(
            |(invoice, percent_of_total, fee_bps, flow)| Step::Pay { invoice, percent_of_total, fee_bps, flow }
        ),
        2 => (any::<usize>(), 1i64..=100)
            .prop_map(|(payment, percent_of_refundable)| Step::Refund { payment, percent_of_refundable }),
        1 => any::<usize>().prop_map(|invoice| Step::Cancel { invoice }),
        1 => any::<usize>().prop_map(|invoice| Step::Expire { invoice }),
        2 => (any::<usize>(), 0u8..3, 1u32..=2_500)
            .prop_map(|(invoice, partner, rate_bps)| Step::Accrue { invoice, partner, rate_bps }),
        2 => any::<usize>().prop_map(|commission| Step::Approve { commission }),
        1 => any::<usize>().prop_map(|commission| Step::Reject { commission }),
        2 => any::<usize>().prop_map(|commission| Step::PayOut { commission }),
        1 => (any::<usize>(), 1i64..=100)
            .prop_map(|(commission, percent_of_base)| Step::ClawBack { commission, percent_of_base }),
        1 => (any::<usize>(), -5_000i64..=5_000)
            .prop_map(|(commission, amount_halalas)| Step::Adjust { commission, amount_halalas }),
    ]
}

struct CommissionState {
    id: String,
    partner_id: String,
    base_halalas: i64,
    aggregate: PartnerCommission,
}

/// The aggregates of a history, driven only through `decide`, with the process managers'
/// reactions (payment paid -> payment recorded, gateway refund -> credit note) mirrored.
struct History {
    at: OffsetDateTime,
    journal: Journal,
    invoices: Vec<(String, Invoice)>,
    payments: Vec<(String, String, Payment)>,
    commissions: Vec<CommissionState>,
    paid_out_halalas: BTreeMap<String, i64>,
    gateway_refunds_halalas: i64,
}

fn pick<T>(items: &[T], index: usize) -> Option<usize> {
    (!items.is_empty()).then(|| index % items.len())
}

impl History {
    fn new() -> History {
        History {
            at: datetime!(2026-08-01 08:00 UTC),
            journal: Journal::default(),
            invoices: Vec::new(),
            payments: Vec::new(),
            commissions: Vec::new(),
            paid_out_halalas: BTreeMap::new(),
            gateway_refunds_halalas: 0,
        }
    }

    fn tick(&mut self) -> OffsetDateTime {
        self.at += Duration::hours(1);
        self.at
    }

    fn invoice_command(&mut self, index: usize, command: InvoiceCommand) -> bool {
        let Ok(events) = self.invoices[index].1.decide(command) else {
            return false;
        };
        for event in events {
            self.journal.post(MoneyEvent::Invoice(event.clone()));
            self.invoices[index].1.apply(event);
        }
        true
    }

    fn payment_command(&mut self, index: usize, command: PaymentCommand) -> Vec<PaymentEvent> {
        let Ok(events) = self.payments[index].2.decide(command) else {
            return Vec::new();
        };
        for event in &events {
            self.journal.post(MoneyEvent::Payment(event.clone()));
            self.payments[index].2.apply(event.clone());
            // Stripe's check: a settled payment leaves nothing in clearing.
            assert_eq!(
                self.journal.balance(accounts::GATEWAY_CLEARING),
                0,
                "{event:?}"
            );
        }
        events
    }

    fn commission_command(&mut self, index: usize, command: CommissionCommand) {
        let Ok(events) = self.commissions[index].aggregate.decide(command) else {
            return;
        };
        for event in events {
            if let CommissionEvent::CommissionPaidOut {
                partner_id,
                amount_halalas,
                ..
            } = &event
            {
                *self.paid_out_halalas.entry(partner_id.clone()).or_default() += amount_halalas;
            }
            self.journal.post(MoneyEvent::Commission(event.clone()));
            self.commissions[index].aggregate.apply(event);
        }
    }

    fn run(&mut self, step: Step) {
        match step {
            Step::Issue { lead, lines } => {
                let invoice_id = format!("inv-{}", self.invoices.len());
                let lines = lines
                    .into_iter()
                    .map(|(quantity, unit_price_halalas, plan)| InvoiceLine {
                        description: "line".into(),
                        quantity,
                        unit_price_halalas,
                        plan: plan.map(|p| Plan::ALL[p]),
                    })
                    .collect();
                let at = self.tick();
                let command = issue(&invoice_id, &format!("lead-{lead}"), lines, at);
                self.invoices.push((invoice_id, Invoice::default()));
                if !self.invoice_command(self.invoices.len() - 1, command) {
                    self.invoices.pop();
                }
            }
            Step::Pay {
                invoice,
                percent_of_total,
                fee_bps,
                flow,
            } => self.pay(invoice, percent_of_total, fee_bps, flow),
            Step::Refund {
                payment,
                percent_of_refundable,
            } => self.refund(payment, percent_of_refundable),
            Step::Cancel { invoice } => {
                let Some(index) = pick(&self.invoices, invoice) else {
                    return;
                };
                let at = self.tick();
                self.invoice_command(
                    index,
                    InvoiceCommand::Cancel {
                        reason: "changed plan".into(),
                        at,
                    },
                );
            }
            Step::Expire { invoice } => {
                let Some(index) = pick(&self.invoices, invoice) else {
                    return;
                };
                let Some(due_at) = self.invoices[index].1.due_at() else {
                    return;
                };
                self.invoice_command(
                    index,
                    InvoiceCommand::Expire {
                        at: due_at + Duration::days(1),
                    },
                );
            }
            Step::Accrue {
                invoice,
                partner,
                rate_bps,
            } => {
                let Some(index) = pick(&self.invoices, invoice) else {
                    return;
                };
                let (invoice_id, invoice) = &self.invoices[index];
                if invoice.status() != Some(InvoiceStatus::Paid) {
                    return;
                }
                let state = CommissionState {
                    id: format!("c-{}", self.commissions.len()),
                    partner_id: format!("p-{partner}"),
                    base_halalas: invoice.subtotal_halalas(),
                    aggregate: PartnerCommission::default(),
                };
                let command = CommissionCommand::Accrue {
                    commission_id: state.id.clone(),
                    partner_id: state.partner_id.clone(),
                    invoice_id: invoice_id.clone(),
                    lead_id: invoice.lead_id().to_owned(),
                    base_halalas: state.base_halalas,
                    rate_bps,
                    hold_days: 0,
                    at: self.at,
                };
                self.commissions.push(state);
                self.commission_command(self.commissions.len() - 1, command);
            }
            Step::Approve { commission } => {
                self.on_commission(commission, |at| CommissionCommand::Approve {
                    actor: "finance".into(),
                    at,
                })
            }
            Step::Reject { commission } => {
                self.on_commission(commission, |at| CommissionCommand::Reject {
                    actor: "finance".into(),
                    reason: "self-referral".into(),
                    at,
                })
            }
            Step::PayOut { commission } => {
                self.on_commission(commission, |at| CommissionCommand::MarkPaidOut {
                    payout_id: format!("payout-{}", at.unix_timestamp()),
                    at,
                })
            }
            Step::ClawBack {
                commission,
                percent_of_base,
            } => {
                let Some(index) = pick(&self.commissions, commission) else {
                    return;
                };
                let base = self.commissions[index].base_halalas;
                let at = self.tick();
                let command = CommissionCommand::ClawBack {
                    refund_id: format!("refund-{}", at.unix_timestamp()),
                    refunded_base_halalas: (base * percent_of_base / 100).max(1),
                    invoice_base_halalas: base,
                    at,
                };
                self.commission_command(index, command);
            }
            Step::Adjust {
                commission,
                amount_halalas,
            } => self.on_commission(commission, |at| CommissionCommand::Adjust {
                amount_halalas,
                reason: "agreement".into(),
                actor: "finance".into(),
                at,
            }),
        }
    }

    fn on_commission(
        &mut self,
        commission: usize,
        command: impl FnOnce(OffsetDateTime) -> CommissionCommand,
    ) {
        let Some(index) = pick(&self.commissions, commission) else {
            return;
        };
        let at = self.tick();
        self.commission_command(index, command(at));
    }

    fn pay(&mut self, invoice: usize, percent_of_total: i64, fee_bps: i64, flow: usize) {
        let Some(index) = pick(&self.invoices, invoice) else {
            return;
        };
        let invoice_id = self.invoices[index].0.clone();
        let total = self.invoices[index].1.total_halalas();
        let amount = (total * percent_of_total / 100).max(1);
        let fee = amount * fee_bps / 10_000;
        let payment_id = format!("pay-{}", self.payments.len());
        self.payments
            .push((payment_id.clone(), invoice_id, Payment::default()));
        let payment = self.payments.len() - 1;
        let statuses: &[PaymentStatus] = match flow {
            0 => &[PaymentStatus::Initiated, PaymentStatus::Paid],
            1 => &[
                PaymentStatus::Initiated,
                PaymentStatus::Authorized,
                PaymentStatus::Captured,
                PaymentStatus::Paid,
            ],
            2 => &[PaymentStatus::Authorized, PaymentStatus::Captured],
            3 => &[PaymentStatus::Verified, PaymentStatus::Paid],
            _ => &[PaymentStatus::Initiated, PaymentStatus::Failed],
        };
        for status in statuses {
            let at = self.tick();
            let command = report(
                &payment_id,
                &self.payments[payment].1,
                *status,
                amount,
                fee,
                0,
                at,
            );
            let events = self.payment_command(payment, command);
            if events
                .iter()
                .any(|e| matches!(e, PaymentEvent::PaymentPaid { .. }))
            {
                // The payments_to_invoices process manager.
                self.invoice_command(
                    index,
                    InvoiceCommand::RecordPayment {
                        payment_id: payment_id.clone(),
                        amount_halalas: amount,
                        at,
                    },
                );
            }
        }
    }

    fn refund(&mut self, payment: usize, percent_of_refundable: i64) {
        let Some(index) = pick(&self.payments, payment) else {
            return;
        };
        let (payment_id, invoice_id, aggregate) = &self.payments[index];
        let Some(snapshot) = aggregate.snapshot().cloned() else {
            return;
        };
        if aggregate.net_collected_halalas() <= 0 {
            return;
        }
        let (payment_id, invoice_id) = (payment_id.clone(), invoice_id.clone());
        let refundable = snapshot.amount_halalas - snapshot.refunded_halalas;
        let delta = (refundable * percent_of_refundable / 100).max(1);
        let at = self.tick();
        let command = report(
            &payment_id,
            &invoice_id,
            PaymentStatus::Refunded,
            snapshot.amount_halalas,
            snapshot.fee_halalas,
            snapshot.refunded_halalas + delta,
            at,
        );
        let events = self.payment_command(index, command);
        if events.is_empty() {
            return;
        }
        self.gateway_refunds_halalas += delta;
        let invoice = self.invoices.iter().position(|(id, _)| *id == invoice_id);
        if let Some(invoice) = invoice {
            // The payments_to_invoices process manager: a credit note for the refund.
            self.invoice_command(
                invoice,
                InvoiceCommand::Refund {
                    refund_id: format!("{payment_id}:refund:{}", snapshot.refunded_halalas + delta),
                    amount_halalas: delta,
                    reason: "refunded through the payment gateway".into(),
                    credit_note_icv: 2,
                    credit_note_previous_hash: FIRST_INVOICE_PIH.into(),
                    at,
                },
            );
        }
    }

    /// The balances the journal must show, computed from the aggregates.
    fn check_balances(&self) {
        let journal = &self.journal;
        assert_eq!(
            journal.debits, journal.credits,
            "total debits equal total credits"
        );
        assert_eq!(journal.balance(accounts::GATEWAY_CLEARING), 0);
        let mut receivable: BTreeMap<String, i64> = BTreeMap::new();
        for (_, invoice) in &self.invoices {
            let open = !matches!(
                invoice.status(),
                Some(InvoiceStatus::Canceled | InvoiceStatus::Expired)
            );
            let owed = if open { invoice.total_halalas() } else { 0 };
            *receivable
                .entry(accounts::receivable(invoice.lead_id()))
                .or_default() += owed - invoice.paid_halalas();
        }
        for (account, owed) in &receivable {
            assert_eq!(journal.balance(account), *owed, "{account}");
        }
        let collected_net: i64 = self
            .payments
            .iter()
            .filter_map(|(_, _, p)| {
                let snapshot = p.snapshot()?;
                let collected = matches!(
                    p.status(),
                    Some(PaymentStatus::Captured | PaymentStatus::Paid | PaymentStatus::Refunded)
                );
                collected.then(|| snapshot.amount_halalas - snapshot.fee_halalas)
            })
            .sum();
        let paid_out: i64 = self.paid_out_halalas.values().sum();
        assert_eq!(
            journal.balance(accounts::CASH),
            collected_net - self.gateway_refunds_halalas - paid_out,
            "cash"
        );
        let mut payable: BTreeMap<String, i64> = BTreeMap::new();
        for commission in &self.commissions {
            let Some(status) = commission.aggregate.status() else {
                continue;
            };
            let owed = if status == CommissionStatus::Rejected {
                0
            } else {
                commission.aggregate.net_halalas()
            };
            *payable.entry(commission.partner_id.clone()).or_default() += owed;
        }
        for (partner_id, owed) in payable {
            let paid = self.paid_out_halalas.get(&partner_id).copied().unwrap_or(0);
            assert_eq!(
                journal.balance(&accounts::commission_payable(&partner_id)),
                -(owed - paid),
                "payable to {partner_id}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_entry_of_a_random_valid_history_balances_and_clearing_returns_to_zero(
        steps in proptest::collection::vec(step(), 1..60)
    ) {
        let mut history = History::new();
        for step in steps {
            history.run(step);
        }
        history.check_balances();
    }
}
