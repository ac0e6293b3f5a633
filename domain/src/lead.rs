//! The lead aggregate: one prospective customer's path through the sales funnel.
//!
//! Stages run `new -> qualified -> demo_booked -> proposal -> paid -> onboarding ->
//! active`. Before `paid`, a lead may skip forward (a Calendly booking moves a new lead
//! straight to `demo_booked`) but never go back, except that a canceled demo returns it
//! to `qualified`, because the booking it stood on no longer exists. `paid` is reached
//! only when an invoice was paid ([`LeadCommand::MarkPaid`]), `onboarding` only from
//! `paid`, and `active` only from `onboarding`. Any stage before `paid` can be archived
//! (cold or lost), and a reopen returns the lead to the stage it was archived from.
//!
//! The follow-up cadence is a pair of pure functions: after the last two-way contact,
//! follow-ups fall due on day 1, 3 and 7, and a lead with no response for 14 days is
//! cold (the process that archives it lives outside the domain and passes the time in).

use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::{Duration, OffsetDateTime};

use crate::plan::Plan;

/// Days after the last two-way contact on which follow-ups fall due, in order.
pub const FOLLOW_UP_DAYS: [i64; 3] = [1, 3, 7];

/// Days without a response after which a lead is cold.
pub const COLD_AFTER_DAYS: i64 = 14;

/// Where a lead stands in the funnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadStage {
    New,
    Qualified,
    DemoBooked,
    Proposal,
    Paid,
    Onboarding,
    Active,
    Archived,
}

impl LeadStage {
    /// Position in the funnel; `None` for `archived`, which is off the funnel.
    pub const fn funnel_position(self) -> Option<u8> {
        match self {
            LeadStage::New => Some(0),
            LeadStage::Qualified => Some(1),
            LeadStage::DemoBooked => Some(2),
            LeadStage::Proposal => Some(3),
            LeadStage::Paid => Some(4),
            LeadStage::Onboarding => Some(5),
            LeadStage::Active => Some(6),
            LeadStage::Archived => None,
        }
    }

    /// Whether the stage comes before `paid` (and so may be archived or skipped).
    pub const fn is_before_paid(self) -> bool {
        matches!(
            self,
            LeadStage::New | LeadStage::Qualified | LeadStage::DemoBooked | LeadStage::Proposal
        )
    }

    /// The stage's name as serialized.
    pub const fn as_str(self) -> &'static str {
        match self {
            LeadStage::New => "new",
            LeadStage::Qualified => "qualified",
            LeadStage::DemoBooked => "demo_booked",
            LeadStage::Proposal => "proposal",
            LeadStage::Paid => "paid",
            LeadStage::Onboarding => "onboarding",
            LeadStage::Active => "active",
            LeadStage::Archived => "archived",
        }
    }
}

impl std::fmt::Display for LeadStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a lead was archived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ArchiveReason {
    /// No response for [`COLD_AFTER_DAYS`] days.
    Cold,
    /// The deal was lost; the note says why.
    Lost { note: String },
}

/// Campaign parameters the lead arrived with.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Utm {
    pub source: Option<String>,
    pub medium: Option<String>,
    pub campaign: Option<String>,
}

/// How a follow-up was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FollowUpChannel {
    Email,
    Whatsapp,
    Phone,
    Sms,
    Linkedin,
    Meeting,
    Other,
}

/// What can be asked of a lead.
// A command lives for one decision and is moved, never copied around in bulk, so a
// large Capture variant costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeadCommand {
    /// Record a new lead from a source (landing page, partner, booking).
    Capture {
        lead_id: String,
        name: String,
        company: Option<String>,
        email: Option<String>,
        phone: Option<String>,
        source: String,
        partner_id: Option<String>,
        utm: Option<Utm>,
        owner: Option<String>,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// Sales judged the lead a fit.
    Qualify {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// A demo was booked (usually through Calendly).
    BookDemo {
        booking_id: String,
        #[serde(with = "time::serde::rfc3339")]
        scheduled_for: OffsetDateTime,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// The booked demo was canceled; a reschedule is a cancel with `rescheduled` and a
    /// new booking.
    CancelDemo {
        booking_id: String,
        reason: String,
        rescheduled: bool,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// The invitee did not attend the booked demo.
    RecordNoShow {
        booking_id: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// A proposal for a plan was sent.
    SendProposal {
        plan: Plan,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// An invoice for this lead was paid.
    MarkPaid {
        invoice_id: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// Onboarding of the paying customer began.
    StartOnboarding {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// The customer is live.
    Activate {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// Take the lead off the funnel.
    Archive {
        reason: ArchiveReason,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// Archive as cold, but only if the lead really has been silent for
    /// [`COLD_AFTER_DAYS`] at `at` (what the follow-up process manager sends, so a lead that
    /// responded after the board was read is never archived by mistake).
    ArchiveIfCold {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// Put an archived lead back where it was.
    Reopen {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// A follow-up was made; `responded` says the lead answered, which restarts the
    /// cadence and the silence clock.
    LogFollowUp {
        channel: FollowUpChannel,
        note: String,
        responded: bool,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

/// What happened to a lead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeadEvent {
    LeadCaptured {
        lead_id: String,
        name: String,
        company: Option<String>,
        email: Option<String>,
        phone: Option<String>,
        source: String,
        partner_id: Option<String>,
        utm: Option<Utm>,
        owner: Option<String>,
        #[serde(with = "time::serde::rfc3339")]
        captured_at: OffsetDateTime,
    },
    LeadQualified {
        lead_id: String,
        from_stage: LeadStage,
        #[serde(with = "time::serde::rfc3339")]
        qualified_at: OffsetDateTime,
    },
    DemoBooked {
        lead_id: String,
        booking_id: String,
        from_stage: LeadStage,
        #[serde(with = "time::serde::rfc3339")]
        scheduled_for: OffsetDateTime,
        #[serde(with = "time::serde::rfc3339")]
        booked_at: OffsetDateTime,
    },
    /// The lead is back in `qualified`.
    DemoCanceled {
        lead_id: String,
        booking_id: String,
        reason: String,
        rescheduled: bool,
        #[serde(with = "time::serde::rfc3339")]
        canceled_at: OffsetDateTime,
    },
    /// The lead stays in `demo_booked`; sales decides what next.
    DemoNoShowRecorded {
        lead_id: String,
        booking_id: String,
        #[serde(with = "time::serde::rfc3339")]
        recorded_at: OffsetDateTime,
    },
    ProposalSent {
        lead_id: String,
        plan: Plan,
        from_stage: LeadStage,
        #[serde(with = "time::serde::rfc3339")]
        sent_at: OffsetDateTime,
    },
    LeadPaid {
        lead_id: String,
        invoice_id: String,
        partner_id: Option<String>,
        from_stage: LeadStage,
        #[serde(with = "time::serde::rfc3339")]
        paid_at: OffsetDateTime,
    },
    OnboardingStarted {
        lead_id: String,
        #[serde(with = "time::serde::rfc3339")]
        started_at: OffsetDateTime,
    },
    LeadActivated {
        lead_id: String,
        partner_id: Option<String>,
        #[serde(with = "time::serde::rfc3339")]
        activated_at: OffsetDateTime,
    },
    LeadArchived {
        lead_id: String,
        reason: ArchiveReason,
        from_stage: LeadStage,
        #[serde(with = "time::serde::rfc3339")]
        archived_at: OffsetDateTime,
    },
    /// The lead is back in `stage`, the stage it was archived from.
    LeadReopened {
        lead_id: String,
        stage: LeadStage,
        #[serde(with = "time::serde::rfc3339")]
        reopened_at: OffsetDateTime,
    },
    FollowUpLogged {
        lead_id: String,
        channel: FollowUpChannel,
        note: String,
        responded: bool,
        #[serde(with = "time::serde::rfc3339")]
        logged_at: OffsetDateTime,
    },
}

crate::events::event_types!(LeadEvent {
    LeadCaptured,
    LeadQualified,
    DemoBooked,
    DemoCanceled,
    DemoNoShowRecorded,
    ProposalSent,
    LeadPaid,
    OnboardingStarted,
    LeadActivated,
    LeadArchived,
    LeadReopened,
    FollowUpLogged
});

/// The rules a lead command can break.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LeadError {
    #[error("the lead was already captured")]
    LeadAlreadyCaptured,
    #[error("the lead has not been captured yet")]
    LeadNotCaptured,
    #[error("a lead id is required")]
    LeadIdRequired,
    #[error("a lead needs a name")]
    LeadNameRequired,
    #[error("a lead needs an email or a phone number")]
    LeadContactRequired,
    #[error("the lead is already in stage {stage}")]
    AlreadyInStage { stage: LeadStage },
    #[error("a lead cannot go back from {from} to {to}")]
    StageWouldGoBack { from: LeadStage, to: LeadStage },
    #[error("the lead is archived; reopen it first")]
    LeadIsArchived,
    #[error("onboarding starts only after payment; the lead is {stage}")]
    OnboardingRequiresPaid { stage: LeadStage },
    #[error("activation follows onboarding; the lead is {stage}")]
    ActivationRequiresOnboarding { stage: LeadStage },
    #[error("no demo is booked; the lead is {stage}")]
    NoDemoBooked { stage: LeadStage },
    #[error("booking {requested} is not the booked demo {booked}")]
    DemoBookingMismatch { booked: String, requested: String },
    #[error("a lead that has paid cannot be archived; it is {stage}")]
    CannotArchiveAfterPaid { stage: LeadStage },
    #[error("a lost lead needs a note saying why")]
    LossNoteRequired,
    #[error("the lead is already archived")]
    LeadAlreadyArchived,
    #[error("only an archived lead can be reopened")]
    LeadNotArchived,
    #[error(
        "the lead is not cold: silent since {silent_since}, cold only after {COLD_AFTER_DAYS} days"
    )]
    LeadNotCold { silent_since: OffsetDateTime },
}

/// One lead, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lead {
    lead_id: String,
    stage: Option<LeadStage>,
    archived_from: Option<LeadStage>,
    demo_booking_id: Option<String>,
    partner_id: Option<String>,
    invoice_id: Option<String>,
    proposed_plan: Option<Plan>,
    #[serde(with = "time::serde::rfc3339::option")]
    silence_started_at: Option<OffsetDateTime>,
    follow_ups_since_response: u32,
}

impl Lead {
    /// The lead's id, empty before capture.
    pub fn lead_id(&self) -> &str {
        &self.lead_id
    }

    /// The current stage, `None` before capture.
    pub fn stage(&self) -> Option<LeadStage> {
        self.stage
    }

    /// The partner the lead is attributed to, if any.
    pub fn partner_id(&self) -> Option<&str> {
        self.partner_id.as_deref()
    }

    /// The booking of the current demo, if one is booked.
    pub fn demo_booking_id(&self) -> Option<&str> {
        self.demo_booking_id.as_deref()
    }

    /// The plan last proposed, if any.
    pub fn proposed_plan(&self) -> Option<Plan> {
        self.proposed_plan
    }

    /// The invoice whose payment made this lead a customer.
    pub fn invoice_id(&self) -> Option<&str> {
        self.invoice_id.as_deref()
    }

    /// When the lead last spoke to us (capture, or its latest response).
    pub fn silence_started_at(&self) -> Option<OffsetDateTime> {
        self.silence_started_at
    }

    /// Follow-ups sent since the lead last responded.
    pub fn follow_ups_since_response(&self) -> u32 {
        self.follow_ups_since_response
    }

    /// When the next follow-up is due, `None` when the cadence is done or before capture.
    pub fn next_follow_up_due(&self) -> Option<OffsetDateTime> {
        next_follow_up_due(self.silence_started_at?, self.follow_ups_since_response)
    }

    /// Decides what a command means for this lead, without changing it.
    pub fn decide(&self, command: LeadCommand) -> Result<Vec<LeadEvent>, LeadError> {
        match command {
            LeadCommand::Capture {
                lead_id,
                name,
                company,
                email,
                phone,
                source,
                partner_id,
                utm,
                owner,
                at,
            } => {
                self.check_capture(&lead_id, &name, &email, &phone)?;
                Ok(vec![LeadEvent::LeadCaptured {
                    lead_id,
                    name,
                    company,
                    email,
                    phone,
                    source,
                    partner_id,
                    utm,
                    owner,
                    captured_at: at,
                }])
            }
            other => self.decide_for_captured(other),
        }
    }

    fn check_capture(
        &self,
        lead_id: &str,
        name: &str,
        email: &Option<String>,
        phone: &Option<String>,
    ) -> Result<(), LeadError> {
        if self.stage.is_some() {
            return Err(LeadError::LeadAlreadyCaptured);
        }
        if lead_id.trim().is_empty() {
            return Err(LeadError::LeadIdRequired);
        }
        if name.trim().is_empty() {
            return Err(LeadError::LeadNameRequired);
        }
        let given = |field: &Option<String>| field.as_deref().is_some_and(|v| !v.trim().is_empty());
        if !given(email) && !given(phone) {
            return Err(LeadError::LeadContactRequired);
        }
        Ok(())
    }

    fn decide_for_captured(&self, command: LeadCommand) -> Result<Vec<LeadEvent>, LeadError> {
        let stage = self.stage.ok_or(LeadError::LeadNotCaptured)?;
        let lead_id = self.lead_id.clone();
        let event = match command {
            LeadCommand::Capture { .. } => return Err(LeadError::LeadAlreadyCaptured),
            LeadCommand::Qualify { at } => LeadEvent::LeadQualified {
                lead_id,
                from_stage: advance_before_paid(stage, LeadStage::Qualified)?,
                qualified_at: at,
            },
            LeadCommand::BookDemo {
                booking_id,
                scheduled_for,
                at,
            } => LeadEvent::DemoBooked {
                lead_id,
                booking_id,
                from_stage: advance_before_paid(stage, LeadStage::DemoBooked)?,
                scheduled_for,
                booked_at: at,
            },
            LeadCommand::CancelDemo {
                booking_id,
                reason,
                rescheduled,
                at,
            } => {
                self.check_booked_demo(stage, &booking_id)?;
                LeadEvent::DemoCanceled {
                    lead_id,
                    booking_id,
                    reason,
                    rescheduled,
                    canceled_at: at,
                }
            }
            LeadCommand::RecordNoShow { booking_id, at } => {
                self.check_booked_demo(stage, &booking_id)?;
                LeadEvent::DemoNoShowRecorded {
                    lead_id,
                    booking_id,
                    recorded_at: at,
                }
            }
            LeadCommand::SendProposal { plan, at } => LeadEvent::ProposalSent {
                lead_id,
                plan,
                from_stage: advance_before_paid(stage, LeadStage::Proposal)?,
                sent_at: at,
            },
            LeadCommand::MarkPaid { invoice_id, at } => LeadEvent::LeadPaid {
                lead_id,
                invoice_id,
                partner_id: self.partner_id.clone(),
                from_stage: advance_before_paid(stage, LeadStage::Paid)?,
                paid_at: at,
            },
            LeadCommand::StartOnboarding { at } => {
                check_step_after_paid(stage, LeadStage::Onboarding)?;
                LeadEvent::OnboardingStarted {
                    lead_id,
                    started_at: at,
                }
            }
            LeadCommand::Activate { at } => {
                check_step_after_paid(stage, LeadStage::Active)?;
                LeadEvent::LeadActivated {
                    lead_id,
                    partner_id: self.partner_id.clone(),
                    activated_at: at,
                }
            }
            LeadCommand::Archive { reason, at } => {
                check_archivable(stage, &reason)?;
                LeadEvent::LeadArchived {
                    lead_id,
                    reason,
                    from_stage: stage,
                    archived_at: at,
                }
            }
            LeadCommand::ArchiveIfCold { at } => {
                let silent_since = self.silence_started_at.unwrap_or(at);
                if !is_cold(silent_since, at) {
                    return Err(LeadError::LeadNotCold { silent_since });
                }
                let reason = ArchiveReason::Cold;
                check_archivable(stage, &reason)?;
                LeadEvent::LeadArchived {
                    lead_id,
                    reason,
                    from_stage: stage,
                    archived_at: at,
                }
            }
            LeadCommand::Reopen { at } => {
                if stage != LeadStage::Archived {
                    return Err(LeadError::LeadNotArchived);
                }
                LeadEvent::LeadReopened {
                    lead_id,
                    stage: self.archived_from.unwrap_or(LeadStage::New),
                    reopened_at: at,
                }
            }
            LeadCommand::LogFollowUp {
                channel,
                note,
                responded,
                at,
            } => LeadEvent::FollowUpLogged {
                lead_id,
                channel,
                note,
                responded,
                logged_at: at,
            },
        };
        Ok(vec![event])
    }

    fn check_booked_demo(&self, stage: LeadStage, booking_id: &str) -> Result<(), LeadError> {
        if stage == LeadStage::Archived {
            return Err(LeadError::LeadIsArchived);
        }
        match (&self.demo_booking_id, stage) {
            (Some(booked), LeadStage::DemoBooked) if booked == booking_id => Ok(()),
            (Some(booked), LeadStage::DemoBooked) => Err(LeadError::DemoBookingMismatch {
                booked: booked.clone(),
                requested: booking_id.to_owned(),
            }),
            _ => Err(LeadError::NoDemoBooked { stage }),
        }
    }
}

/// Checks a forward move to a stage up to and including `paid`, returning the stage
/// the lead leaves. Skipping stages is allowed; repeating or going back is not.
fn advance_before_paid(stage: LeadStage, to: LeadStage) -> Result<LeadStage, LeadError> {
    if stage == LeadStage::Archived {
        return Err(LeadError::LeadIsArchived);
    }
    if stage == to {
        return Err(LeadError::AlreadyInStage { stage });
    }
    if stage.funnel_position() > to.funnel_position() {
        return Err(LeadError::StageWouldGoBack { from: stage, to });
    }
    Ok(stage)
}

/// Checks the single steps after payment: `paid -> onboarding -> active`.
fn check_step_after_paid(stage: LeadStage, to: LeadStage) -> Result<(), LeadError> {
    if stage == LeadStage::Archived {
        return Err(LeadError::LeadIsArchived);
    }
    if stage == to {
        return Err(LeadError::AlreadyInStage { stage });
    }
    if stage.funnel_position() > to.funnel_position() {
        return Err(LeadError::StageWouldGoBack { from: stage, to });
    }
    match to {
        LeadStage::Onboarding if stage != LeadStage::Paid => {
            Err(LeadError::OnboardingRequiresPaid { stage })
        }
        LeadStage::Active if stage != LeadStage::Onboarding => {
            Err(LeadError::ActivationRequiresOnboarding { stage })
        }
        _ => Ok(()),
    }
}

fn check_archivable(stage: LeadStage, reason: &ArchiveReason) -> Result<(), LeadError> {
    if stage == LeadStage::Archived {
        return Err(LeadError::LeadAlreadyArchived);
    }
    if !stage.is_before_paid() {
        return Err(LeadError::CannotArchiveAfterPaid { stage });
    }
    if let ArchiveReason::Lost { note } = reason {
        if note.trim().is_empty() {
            return Err(LeadError::LossNoteRequired);
        }
    }
    Ok(())
}

impl Aggregate for Lead {
    const TYPE: &'static str = "lead";
    type Command = LeadCommand;
    type Event = LeadEvent;
    type Error = LeadError;
    type Services = ();

    crate::events::handle_by_deciding!();

    fn apply(&mut self, event: Self::Event) {
        match event {
            LeadEvent::LeadCaptured {
                lead_id,
                partner_id,
                captured_at,
                ..
            } => {
                self.lead_id = lead_id;
                self.partner_id = partner_id;
                self.stage = Some(LeadStage::New);
                self.silence_started_at = Some(captured_at);
                self.follow_ups_since_response = 0;
            }
            LeadEvent::LeadQualified { .. } => self.stage = Some(LeadStage::Qualified),
            LeadEvent::DemoBooked { booking_id, .. } => {
                self.stage = Some(LeadStage::DemoBooked);
                self.demo_booking_id = Some(booking_id);
            }
            LeadEvent::DemoCanceled { .. } => {
                self.stage = Some(LeadStage::Qualified);
                self.demo_booking_id = None;
            }
            LeadEvent::DemoNoShowRecorded { .. } => {}
            LeadEvent::ProposalSent { plan, .. } => {
                self.stage = Some(LeadStage::Proposal);
                self.proposed_plan = Some(plan);
            }
            LeadEvent::LeadPaid { invoice_id, .. } => {
                self.stage = Some(LeadStage::Paid);
                self.invoice_id = Some(invoice_id);
            }
            LeadEvent::OnboardingStarted { .. } => self.stage = Some(LeadStage::Onboarding),
            LeadEvent::LeadActivated { .. } => self.stage = Some(LeadStage::Active),
            LeadEvent::LeadArchived { from_stage, .. } => {
                self.archived_from = Some(from_stage);
                self.stage = Some(LeadStage::Archived);
            }
            LeadEvent::LeadReopened {
                stage, reopened_at, ..
            } => {
                // Reopening is a fresh contact: the silence clock starts again, or a lead
                // archived as cold would be cold again the moment it is reopened.
                self.stage = Some(stage);
                self.archived_from = None;
                self.silence_started_at = Some(reopened_at);
                self.follow_ups_since_response = 0;
            }
            LeadEvent::FollowUpLogged {
                responded,
                logged_at,
                ..
            } => {
                if responded {
                    self.silence_started_at = Some(logged_at);
                    self.follow_ups_since_response = 0;
                } else {
                    self.follow_ups_since_response =
                        self.follow_ups_since_response.saturating_add(1);
                }
            }
        }
    }
}

/// When the next follow-up is due: day 1, 3 and 7 after `last_contact_at` (the last
/// two-way contact: capture or the lead's latest response), given how many follow-ups
/// were already made since then. `None` once all three were made (the lead is then
/// waiting to go cold) or if the date is out of range.
pub fn next_follow_up_due(
    last_contact_at: OffsetDateTime,
    follow_ups_done: u32,
) -> Option<OffsetDateTime> {
    let index = usize::try_from(follow_ups_done).ok()?;
    let days = FOLLOW_UP_DAYS.get(index)?;
    last_contact_at.checked_add(Duration::days(*days))
}

/// Whether a lead is cold at `now`: [`COLD_AFTER_DAYS`] (14) full days or more have
/// passed since it last responded (or since capture, if it never did).
pub fn is_cold(last_response_or_capture_at: OffsetDateTime, now: OffsetDateTime) -> bool {
    now - last_response_or_capture_at >= Duration::days(COLD_AFTER_DAYS)
}

#[cfg(test)]
pub(crate) mod tests;
