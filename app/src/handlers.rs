//! One [`CommandHandler`] per aggregate type, shared by the HTTP API, the webhooks and the
//! process managers of one process (so they share one aggregate cache).

use std::sync::Arc;

use domain::commission::PartnerCommission;
use domain::invoice::Invoice;
use domain::lead::Lead;
use domain::partner::{Partner, PartnerProgram};
use domain::payment::Payment;
use domain::payout::PayoutBatch;
use domain::provider_reconciliation::ProviderReconciliation;
use domain::sequence::DocumentSequence;
use domain::submission::Submission;

use crate::command::CommandHandler;
use adapters::store::EventStore;

pub struct Handlers {
    pub store: Arc<dyn EventStore>,
    pub leads: CommandHandler<Lead>,
    pub invoices: CommandHandler<Invoice>,
    pub payments: CommandHandler<Payment>,
    pub partners: CommandHandler<Partner>,
    pub partner_program: CommandHandler<PartnerProgram>,
    pub commissions: CommandHandler<PartnerCommission>,
    pub sequences: CommandHandler<DocumentSequence>,
    pub payouts: CommandHandler<PayoutBatch>,
    /// ZATCA Phase 2 documents' submissions.
    pub submissions: CommandHandler<Submission>,
    /// A payment provider's reconciliation of one day.
    pub provider_reconciliations: CommandHandler<ProviderReconciliation>,
}

impl Handlers {
    pub fn new(store: Arc<dyn EventStore>) -> Arc<Handlers> {
        Arc::new(Handlers {
            leads: CommandHandler::new(store.clone()),
            invoices: CommandHandler::new(store.clone()),
            payments: CommandHandler::new(store.clone()),
            partners: CommandHandler::new(store.clone()),
            partner_program: CommandHandler::new(store.clone()),
            commissions: CommandHandler::new(store.clone()),
            sequences: CommandHandler::new(store.clone()),
            payouts: CommandHandler::new(store.clone()),
            submissions: CommandHandler::new(store.clone()),
            provider_reconciliations: CommandHandler::new(store.clone()),
            store,
        })
    }
}
