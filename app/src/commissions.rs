//! Deciding a commission: finance approves it, or rejects it with a reason. The one use case
//! behind `POST /api/commissions/{id}/{approve|reject}` and the dashboard's desk, so both
//! record the same event with the deciding principal as its actor.

use adapters::store::EventMetadata;
use domain::commission::{CommissionCommand, CommissionError};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::command::{CommandEnvelope, CommandError, CommandOutcome};
use crate::handlers::Handlers;

/// What finance decided about a commission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Approve,
    /// A rejection needs a reason (the domain refuses an empty one).
    Reject {
        reason: String,
    },
}

impl Decision {
    /// The decision a route's path names (`approve` or `reject`), with the reason given.
    pub fn parse(action: &str, reason: Option<String>) -> Option<Decision> {
        match action {
            "approve" => Some(Decision::Approve),
            "reject" => Some(Decision::Reject {
                reason: reason.unwrap_or_default(),
            }),
            _ => None,
        }
    }
}

/// One decision, under `command_id`; `fresh_id` says the id was minted for this call
/// ([`CommandEnvelope::fresh_id`]). The actor is `metadata.actor` (the signed-in token).
pub async fn decide(
    handlers: &Handlers,
    commission_id: &str,
    decision: Decision,
    at: OffsetDateTime,
    command_id: Uuid,
    fresh_id: bool,
    metadata: EventMetadata,
) -> Result<CommandOutcome, CommandError<CommissionError>> {
    let actor = metadata.actor.clone().unwrap_or_default();
    let command = match decision {
        Decision::Approve => CommissionCommand::Approve { actor, at },
        Decision::Reject { reason } => CommissionCommand::Reject { actor, reason, at },
    };
    let envelope: CommandEnvelope<CommissionCommand> = CommandEnvelope {
        aggregate_id: commission_id.to_owned(),
        command_id,
        command,
        metadata,
        inbox: None,
        fresh_id,
    };
    handlers.commissions.execute(envelope).await
}
