//! Application services: commands that span more than one aggregate, in the order that keeps
//! the invariants.
//!
//! Changing a partner's tier to or from Strategic goes through the program stream first: the
//! `PartnerProgram` aggregate holds the three Strategic slots, and the store's expected-version
//! check on that one stream is what makes two concurrent promotions unable to take the same
//! last slot (the loser's append conflicts, it re-reads the stream and finds the slots full).

use domain::partner::{
    PartnerCommand, PartnerError, PartnerProgramCommand, PartnerProgramError, PartnerTier,
    PARTNER_PROGRAM_ID,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::command::{CommandEnvelope, CommandError, CommandOutcome};
use crate::handlers::Handlers;
use adapters::store::EventMetadata;

/// Why a tier change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum TierChangeError {
    #[error(transparent)]
    Program(CommandError<PartnerProgramError>),
    #[error(transparent)]
    Partner(CommandError<PartnerError>),
}

/// The namespace of the ids of the commands a service derives from its own command id.
const SERVICE_NAMESPACE: Uuid = Uuid::from_u128(0x5e7b_0c1d_9a44_4f0e_b2a1_7c3d_e8f9_0a1b);

fn derived(command_id: Uuid, step: &str) -> Uuid {
    Uuid::new_v5(
        &SERVICE_NAMESPACE,
        format!("{command_id}:{step}").as_bytes(),
    )
}

/// Moves `partner_id` to `tier` (taking or giving back a Strategic slot as needed).
pub async fn change_partner_tier(
    handlers: &Handlers,
    partner_id: &str,
    tier: PartnerTier,
    reason: &str,
    at: OffsetDateTime,
    command_id: Uuid,
    metadata: EventMetadata,
) -> Result<CommandOutcome, TierChangeError> {
    let (partner, _) = handlers
        .partners
        .load_aggregate(partner_id)
        .await
        .map_err(TierChangeError::Partner)?;
    let from = partner.tier();
    let envelope = |command, id| CommandEnvelope {
        aggregate_id: PARTNER_PROGRAM_ID.to_owned(),
        command_id: id,
        command,
        metadata: metadata.clone(),
        inbox: None,
        fresh_id: false,
    };
    if tier == PartnerTier::Strategic && from != Some(PartnerTier::Strategic) {
        let take = PartnerProgramCommand::TakeStrategicSlot {
            partner_id: partner_id.to_owned(),
            at,
        };
        handlers
            .partner_program
            .execute(envelope(take, derived(command_id, "take-slot")))
            .await
            .map_err(TierChangeError::Program)?;
    }
    let change = CommandEnvelope {
        aggregate_id: partner_id.to_owned(),
        command_id,
        command: PartnerCommand::ChangeTier {
            tier,
            reason: reason.to_owned(),
            at,
        },
        metadata: metadata.clone(),
        inbox: None,
        fresh_id: false,
    };
    let changed = handlers.partners.execute(change).await;
    match changed {
        Ok(outcome) => {
            if from == Some(PartnerTier::Strategic) && tier != PartnerTier::Strategic {
                let release = PartnerProgramCommand::ReleaseStrategicSlot {
                    partner_id: partner_id.to_owned(),
                    at,
                };
                handlers
                    .partner_program
                    .execute(envelope(release, derived(command_id, "release-slot")))
                    .await
                    .map_err(TierChangeError::Program)?;
            }
            Ok(outcome)
        }
        Err(error) => {
            // The slot was taken for a change that did not happen: give it back.
            if tier == PartnerTier::Strategic && from != Some(PartnerTier::Strategic) {
                let release = PartnerProgramCommand::ReleaseStrategicSlot {
                    partner_id: partner_id.to_owned(),
                    at,
                };
                let _ = handlers
                    .partner_program
                    .execute(envelope(release, derived(command_id, "undo-slot")))
                    .await;
            }
            Err(TierChangeError::Partner(error))
        }
    }
}
