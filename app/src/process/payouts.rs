//! Payout batches: one per partner whose approved commissions reach the program's minimum.
//!
//! [`create_payouts`] reads each commission's standing from the statements read model (so it
//! must be caught up: the caller waits for it), builds a `PayoutBatch` per partner — approved,
//! unpaid commissions as items, clawbacks made after an earlier payout as negative carried
//! items — and lets the aggregate refuse a batch below the minimum. The [`PayoutsToCommissions`]
//! process manager then marks each item's commission paid out, with command ids derived from
//! the `PayoutCreated` event, so nothing is paid out twice.

use std::collections::BTreeMap;

use crate::command::{CommandEnvelope, CommandError};
use crate::handlers::Handlers;
use adapters::store::{EventMetadata, RecordedEvent};
use async_trait::async_trait;
use domain::commission::CommissionCommand;
use domain::payout::{CarriedItem, PayoutCommand, PayoutEvent, PayoutItem};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::process::{send, Context, ProcessManager, COMMAND_NAMESPACE};
use projections::{decode, ProjectionError};

/// What happened to one partner's payout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PayoutResult {
    pub partner_id: String,
    pub payout_id: Option<String>,
    pub net_halalas: i64,
    pub commissions: usize,
    /// `created`, or why not (below the minimum, nothing approved).
    pub outcome: String,
    pub stream_version: Option<u64>,
    pub position: Option<i64>,
}

#[derive(Default)]
struct Pending {
    items: Vec<PayoutItem>,
    carried: Vec<CarriedItem>,
}

/// Creates a payout batch for every partner (or only `partner`) with approved commissions.
/// `request_id` makes a retried request create the same batches (their ids derive from it).
pub async fn create_payouts(
    handlers: &Handlers,
    minimum_halalas: i64,
    partner: Option<&str>,
    at: OffsetDateTime,
    request_id: Uuid,
    metadata: EventMetadata,
) -> Result<Vec<PayoutResult>, ProjectionError> {
    let db = handlers.store.sql();
    let rows = db
        .fetch_all(
            "SELECT partner_id, commission_id, status, net_halalas, carried_halalas FROM partner_commissions \
             WHERE ((status = 'approved' AND payout_id IS NULL AND net_halalas > 0) OR carried_halalas < 0) \
             ORDER BY partner_id, commission_id",
            &[],
        )
        .await?;
    let mut by_partner: BTreeMap<String, Pending> = BTreeMap::new();
    for row in rows {
        let partner_id = row.text(0)?;
        if partner.is_some_and(|only| only != partner_id) {
            continue;
        }
        let pending = by_partner.entry(partner_id).or_default();
        let commission_id = row.text(1)?;
        let carried = row.i64(4)?;
        if carried < 0 {
            pending.carried.push(CarriedItem {
                commission_id: commission_id.clone(),
                amount_halalas: carried,
            });
        }
        if row.text(2)? == "approved" && row.i64(3)? > 0 && carried == 0 {
            pending.items.push(PayoutItem {
                commission_id,
                amount_halalas: row.i64(3)?,
            });
        }
    }
    let mut results = Vec::new();
    for (partner_id, pending) in by_partner {
        let net: i64 = pending
            .items
            .iter()
            .map(|i| i.amount_halalas)
            .chain(pending.carried.iter().map(|c| c.amount_halalas))
            .sum();
        let count = pending.items.len();
        if pending.items.is_empty() {
            results.push(PayoutResult {
                partner_id,
                payout_id: None,
                net_halalas: net,
                commissions: 0,
                outcome: "nothing approved".into(),
                stream_version: None,
                position: None,
            });
            continue;
        }
        let payout_id = Uuid::new_v5(
            &COMMAND_NAMESPACE,
            format!("payout:{request_id}:{partner_id}").as_bytes(),
        )
        .to_string();
        let command = PayoutCommand::Create {
            payout_id: payout_id.clone(),
            partner_id: partner_id.clone(),
            items: pending.items,
            carried: pending.carried,
            minimum_halalas,
            at,
        };
        let envelope = CommandEnvelope {
            aggregate_id: payout_id.clone(),
            command_id: Uuid::new_v5(&COMMAND_NAMESPACE, format!("create:{payout_id}").as_bytes()),
            command,
            metadata: metadata.clone(),
            inbox: None,
            fresh_id: false,
        };
        match handlers.payouts.execute(envelope).await {
            Ok(outcome) => results.push(PayoutResult {
                partner_id,
                payout_id: Some(payout_id),
                net_halalas: net,
                commissions: count,
                outcome: "created".into(),
                stream_version: Some(outcome.version),
                position: outcome.last_position,
            }),
            Err(CommandError::Rejected(rule)) => results.push(PayoutResult {
                partner_id,
                payout_id: None,
                net_halalas: net,
                commissions: count,
                outcome: rule.to_string(),
                stream_version: None,
                position: None,
            }),
            Err(other) => return Err(ProjectionError::Command(other.to_string())),
        }
    }
    Ok(results)
}

/// Payout created -> each of its commissions marked paid out.
pub struct PayoutsToCommissions;

#[async_trait]
impl ProcessManager for PayoutsToCommissions {
    fn name(&self) -> &'static str {
        "payouts"
    }

    async fn react(&self, context: &Context, event: &RecordedEvent) -> Result<(), ProjectionError> {
        if event.event_type != "PayoutCreated" {
            return Ok(());
        }
        let PayoutEvent::PayoutCreated {
            payout_id,
            items,
            created_at,
            ..
        } = decode(event)?
        else {
            return Ok(());
        };
        for (index, item) in items.iter().enumerate() {
            let command = CommissionCommand::MarkPaidOut {
                payout_id: payout_id.clone(),
                at: created_at,
            };
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            send(
                context,
                &context.handlers.commissions,
                self.name(),
                event,
                index,
                &item.commission_id,
                command,
            )
            .await?;
        }
        Ok(())
    }
}
