//! The partner program: one stream holding the three Strategic slots, so concurrent promotions
//! serialise on its expected version and a fourth is refused.

use std::collections::BTreeSet;

use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::OffsetDateTime;

use super::MAX_STRATEGIC_PARTNERS;

/// What can be asked of the partner program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartnerProgramCommand {
    /// Reserve a Strategic slot for a partner, before making it Strategic.
    TakeStrategicSlot {
        partner_id: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// Give a Strategic slot back (the partner left the tier).
    ReleaseStrategicSlot {
        partner_id: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

/// What happened to the program's Strategic slots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartnerProgramEvent {
    StrategicSlotTaken {
        partner_id: String,
        /// Slots in use, this one included.
        slots_taken: u32,
        #[serde(with = "time::serde::rfc3339")]
        taken_at: OffsetDateTime,
    },
    StrategicSlotReleased {
        partner_id: String,
        /// Slots in use after the release.
        slots_taken: u32,
        #[serde(with = "time::serde::rfc3339")]
        released_at: OffsetDateTime,
    },
}

crate::events::event_types!(PartnerProgramEvent {
    StrategicSlotTaken,
    StrategicSlotReleased
});

/// The rules a program command can break.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PartnerProgramError {
    #[error("all {max} Strategic slots are taken")]
    StrategicSlotsFull { max: u32 },
    #[error("partner {partner_id} already holds a Strategic slot")]
    StrategicSlotAlreadyHeld { partner_id: String },
    #[error("partner {partner_id} holds no Strategic slot")]
    NoStrategicSlotHeld { partner_id: String },
    #[error("a partner id is required")]
    PartnerIdRequired,
}

/// The partner program: the holders of the Strategic slots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerProgram {
    strategic_partners: BTreeSet<String>,
}

impl PartnerProgram {
    /// The partners holding a Strategic slot.
    pub fn strategic_partners(&self) -> impl Iterator<Item = &str> {
        self.strategic_partners.iter().map(String::as_str)
    }

    pub fn slots_taken(&self) -> u32 {
        u32::try_from(self.strategic_partners.len()).unwrap_or(u32::MAX)
    }

    /// Decides what a command means for the program, without changing it.
    pub fn decide(
        &self,
        command: PartnerProgramCommand,
    ) -> Result<Vec<PartnerProgramEvent>, PartnerProgramError> {
        match command {
            PartnerProgramCommand::TakeStrategicSlot { partner_id, at } => {
                if partner_id.trim().is_empty() {
                    return Err(PartnerProgramError::PartnerIdRequired);
                }
                if self.strategic_partners.contains(&partner_id) {
                    return Err(PartnerProgramError::StrategicSlotAlreadyHeld { partner_id });
                }
                if self.slots_taken() >= MAX_STRATEGIC_PARTNERS {
                    return Err(PartnerProgramError::StrategicSlotsFull {
                        max: MAX_STRATEGIC_PARTNERS,
                    });
                }
                Ok(vec![PartnerProgramEvent::StrategicSlotTaken {
                    partner_id,
                    slots_taken: self.slots_taken().saturating_add(1),
                    taken_at: at,
                }])
            }
            PartnerProgramCommand::ReleaseStrategicSlot { partner_id, at } => {
                if !self.strategic_partners.contains(&partner_id) {
                    return Err(PartnerProgramError::NoStrategicSlotHeld { partner_id });
                }
                Ok(vec![PartnerProgramEvent::StrategicSlotReleased {
                    partner_id,
                    slots_taken: self.slots_taken().saturating_sub(1),
                    released_at: at,
                }])
            }
        }
    }
}

impl Aggregate for PartnerProgram {
    const TYPE: &'static str = "partner_program";
    type Command = PartnerProgramCommand;
    type Event = PartnerProgramEvent;
    type Error = PartnerProgramError;
    type Services = ();

    crate::events::handle_by_deciding!();

    fn apply(&mut self, event: Self::Event) {
        match event {
            PartnerProgramEvent::StrategicSlotTaken { partner_id, .. } => {
                self.strategic_partners.insert(partner_id);
            }
            PartnerProgramEvent::StrategicSlotReleased { partner_id, .. } => {
                self.strategic_partners.remove(&partner_id);
            }
        }
    }
}
