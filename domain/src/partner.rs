//! Partners who bring customers, their tiers, and the program-wide limit on Strategic
//! partners.
//!
//! A partner's tier sets its commission rate: Referral 10%, Certified 15%, Strategic
//! 20% plus a 5% revenue share. A Referral partner becomes Certified automatically when
//! its third distinct customer is activated; the upgrade is decided in the same
//! decision as the activation, so it can neither be missed nor happen twice.
//!
//! At most [`MAX_STRATEGIC_PARTNERS`] partners may be Strategic. That limit spans many
//! partners, so no single [`Partner`] stream can enforce it; the [`PartnerProgram`]
//! aggregate (one stream for the whole program) holds the slots, and a partner is made
//! Strategic only after [`PartnerProgramCommand::TakeStrategicSlot`] succeeded. Because
//! that stream is appended with optimistic concurrency, two partners racing for the
//! last slot cannot both win.
//!
//! Applications: a partner source posts `partner.applied` (name, email, requested tier),
//! which [`PartnerCommand::Apply`] records as an *applicant*: a partner stream with
//! [`PartnerStatus::Applied`], no tier and no commission. Only [`PartnerCommand::Enroll`]
//! makes it a partner, and the tier it enrolls in is the program's decision; the
//! requested tier is kept as what was asked for, nothing more. Enroll works on a new
//! stream too, for partners signed up directly. Every other command on an applicant is
//! [`PartnerError::PartnerNotEnrolled`].
//!
//! Referrals and attribution: [`PartnerCommand::RecordReferral`] records that a lead's
//! email clicked an active partner's link at a given moment; the same (email, click)
//! recorded twice is one referral. A lead belongs to a partner when it was captured
//! within [`ATTRIBUTION_WINDOW_DAYS`] of that partner's click (see [`attributes`]); when
//! several partners referred the same email, [`attribute`] picks one by the program's
//! [`AttributionModel`] (first touch unless configured otherwise).

use std::collections::BTreeSet;

use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::OffsetDateTime;

/// How many partners may be Strategic at once.
pub const MAX_STRATEGIC_PARTNERS: u32 = 3;

/// Days after a referral click within which a captured lead is the partner's.
pub const ATTRIBUTION_WINDOW_DAYS: i64 = 30;

/// Longest lead email a referral accepts (RFC 5321's 254-character path limit); a
/// longer one is malformed and is refused before it reaches an event.
pub const MAX_EMAIL_LEN: usize = 254;

/// Distinct activated customers that make a Referral partner Certified.
pub const ACTIVATIONS_FOR_CERTIFIED: u32 = 3;

/// The id of the single partner-program stream.
pub const PARTNER_PROGRAM_ID: &str = "strategic-slots";

/// Whether a lead captured at `captured_at` is attributed to a referral click at
/// `clicked_at`: captured no earlier than the click and at most 30 whole days after it.
/// Any time on day 30 counts (30 days and 23 hours is still day 30); day 31 does not.
pub fn attributes(clicked_at: OffsetDateTime, captured_at: OffsetDateTime) -> bool {
    captured_at >= clicked_at && (captured_at - clicked_at).whole_days() <= ATTRIBUTION_WINDOW_DAYS
}

/// Which of several partners whose clicks attribute the same lead earns it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttributionModel {
    /// The earliest click in the window wins (the program's default).
    #[default]
    FirstTouch,
    /// The latest click before the capture wins.
    LastTouch,
}

/// One recorded referral click: which partner sent which lead email, and when.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Referral {
    pub partner_id: String,
    /// Trimmed and lowercased, as recorded.
    pub lead_email: String,
    #[serde(with = "time::serde::rfc3339")]
    pub clicked_at: OffsetDateTime,
}

/// The referral that earns a lead captured at `captured_at`, among the referrals of
/// that lead's email (the caller passes only those; this function does not compare
/// emails). Only clicks that [`attributes`] the capture count. First touch picks the
/// earliest click, last touch the latest; clicks at the same instant go to the lowest
/// partner id, so the answer never depends on the order of `referrals`. `None` when no
/// click is in the window.
pub fn attribute(
    referrals: &[Referral],
    captured_at: OffsetDateTime,
    model: AttributionModel,
) -> Option<&Referral> {
    let in_window = referrals
        .iter()
        .filter(|referral| attributes(referral.clicked_at, captured_at));
    // Lower sorts first: earlier click (first touch) or later click (last touch), then
    // the lower partner id, then the email, for a total order.
    let rank = |left: &&Referral, right: &&Referral| {
        let by_click = match model {
            AttributionModel::FirstTouch => left.clicked_at.cmp(&right.clicked_at),
            AttributionModel::LastTouch => right.clicked_at.cmp(&left.clicked_at),
        };
        by_click
            .then_with(|| left.partner_id.cmp(&right.partner_id))
            .then_with(|| left.lead_email.cmp(&right.lead_email))
    };
    in_window.min_by(rank)
}

/// A lead email as referrals record it: trimmed and lowercased, so `Sara@X.sa ` and
/// `sara@x.sa` are one lead. It must look like `local@domain`: one `@` with something
/// on each side, no whitespace, at most [`MAX_EMAIL_LEN`] bytes.
pub fn normalize_lead_email(email: &str) -> Result<String, PartnerError> {
    let normalized = email.trim().to_lowercase();
    let well_formed = normalized.len() <= MAX_EMAIL_LEN
        && !normalized.chars().any(char::is_whitespace)
        && matches!(
            normalized.split_once('@'),
            Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        );
    if well_formed {
        Ok(normalized)
    } else {
        Err(PartnerError::InvalidEmail {
            email: email.to_owned(),
        })
    }
}

/// A partner's tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartnerTier {
    Referral,
    Certified,
    Strategic,
}

impl PartnerTier {
    /// Commission on the amount before VAT of each attributed paid invoice.
    pub const fn commission_rate_bps(self) -> u32 {
        match self {
            PartnerTier::Referral => 1_000,
            PartnerTier::Certified => 1_500,
            PartnerTier::Strategic => 2_000,
        }
    }

    /// Additional revenue share (Strategic only).
    pub const fn revenue_share_bps(self) -> u32 {
        match self {
            PartnerTier::Strategic => 500,
            PartnerTier::Referral | PartnerTier::Certified => 0,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            PartnerTier::Referral => "referral",
            PartnerTier::Certified => "certified",
            PartnerTier::Strategic => "strategic",
        }
    }
}

impl std::fmt::Display for PartnerTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a partner stands in the program, and so whether it may currently earn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartnerStatus {
    /// Applied to join but not enrolled yet: no tier, earns nothing.
    Applied,
    /// Enrolled and earning.
    Active,
    /// Enrolled but earning nothing until reinstated.
    Suspended,
}

/// What can be asked of a partner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartnerCommand {
    /// Ask to join the program (a partner source's `partner.applied`). The requested
    /// tier is a request; the tier is decided when the applicant is enrolled.
    Apply {
        partner_id: String,
        name: String,
        email: String,
        requested_tier: PartnerTier,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// Join the program, from a new stream or as an applicant. Enrolling as Strategic requires a slot taken first.
    Enroll {
        partner_id: String,
        name: String,
        email: String,
        tier: PartnerTier,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// Move to another tier by decision. Moving to Strategic requires a slot taken first.
    ChangeTier {
        tier: PartnerTier,
        reason: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// A lead attributed to this partner became an active customer.
    RecordCustomerActivated {
        lead_id: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    Suspend {
        reason: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    Reinstate {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// A lead's email clicked this partner's referral link at `clicked_at`; recorded at
    /// `at`. Recording the same (email, click) again changes nothing.
    RecordReferral {
        lead_email: String,
        #[serde(with = "time::serde::rfc3339")]
        clicked_at: OffsetDateTime,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

/// What happened to a partner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartnerEvent {
    PartnerApplied {
        partner_id: String,
        name: String,
        email: String,
        requested_tier: PartnerTier,
        #[serde(with = "time::serde::rfc3339")]
        applied_at: OffsetDateTime,
    },
    PartnerEnrolled {
        partner_id: String,
        name: String,
        email: String,
        tier: PartnerTier,
        commission_rate_bps: u32,
        revenue_share_bps: u32,
        #[serde(with = "time::serde::rfc3339")]
        enrolled_at: OffsetDateTime,
    },
    PartnerTierChanged {
        partner_id: String,
        from: PartnerTier,
        to: PartnerTier,
        reason: String,
        commission_rate_bps: u32,
        revenue_share_bps: u32,
        #[serde(with = "time::serde::rfc3339")]
        changed_at: OffsetDateTime,
    },
    PartnerCustomerActivated {
        partner_id: String,
        lead_id: String,
        /// Distinct activated customers, this one included.
        activated_customers: u32,
        #[serde(with = "time::serde::rfc3339")]
        activated_at: OffsetDateTime,
    },
    PartnerSuspended {
        partner_id: String,
        reason: String,
        #[serde(with = "time::serde::rfc3339")]
        suspended_at: OffsetDateTime,
    },
    PartnerReinstated {
        partner_id: String,
        #[serde(with = "time::serde::rfc3339")]
        reinstated_at: OffsetDateTime,
    },
    ReferralRecorded {
        partner_id: String,
        /// Trimmed and lowercased.
        lead_email: String,
        #[serde(with = "time::serde::rfc3339")]
        clicked_at: OffsetDateTime,
        #[serde(with = "time::serde::rfc3339")]
        recorded_at: OffsetDateTime,
    },
}

crate::events::event_types!(PartnerEvent {
    PartnerApplied,
    PartnerEnrolled,
    PartnerTierChanged,
    PartnerCustomerActivated,
    PartnerSuspended,
    PartnerReinstated,
    ReferralRecorded
});

/// The rules a partner command can break.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PartnerError {
    #[error("the partner has already applied")]
    PartnerAlreadyApplied,
    #[error("the partner is already enrolled")]
    PartnerAlreadyEnrolled,
    #[error("this stream records partner {recorded}, not {requested}")]
    PartnerIdMismatch { recorded: String, requested: String },
    #[error("the partner is not enrolled")]
    PartnerNotEnrolled,
    #[error("a partner id is required")]
    PartnerIdRequired,
    #[error("a partner needs a name")]
    PartnerNameRequired,
    #[error("a partner needs an email")]
    PartnerEmailRequired,
    #[error("the partner is already {tier}")]
    TierUnchanged { tier: PartnerTier },
    #[error("changing a tier needs a reason")]
    TierChangeReasonRequired,
    #[error("the partner is suspended")]
    PartnerIsSuspended,
    #[error("customer {lead_id} was already counted for this partner")]
    CustomerAlreadyActivated { lead_id: String },
    #[error("suspending a partner needs a reason")]
    SuspensionReasonRequired,
    #[error("the partner is already suspended")]
    PartnerAlreadySuspended,
    #[error("the partner is not suspended")]
    PartnerNotSuspended,
    #[error("{email:?} is not an email address like name@example.com")]
    InvalidEmail { email: String },
    #[error("a referral click at {clicked_at} is after it was recorded at {recorded_at}")]
    ReferralClickInTheFuture {
        clicked_at: OffsetDateTime,
        recorded_at: OffsetDateTime,
    },
}

/// One partner, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partner {
    partner_id: String,
    tier: Option<PartnerTier>,
    /// What the partner asked for when it applied; `None` if it never applied.
    #[serde(default)]
    requested_tier: Option<PartnerTier>,
    status: Option<PartnerStatus>,
    activated_leads: BTreeSet<String>,
    /// Every referral recorded, once each.
    #[serde(default)]
    referrals: BTreeSet<RecordedReferral>,
}

/// A referral as the partner stream remembers it, to record each (email, click) once.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct RecordedReferral {
    lead_email: String,
    #[serde(with = "time::serde::rfc3339")]
    clicked_at: OffsetDateTime,
}

impl Partner {
    pub fn partner_id(&self) -> &str {
        &self.partner_id
    }

    /// `None` before enrollment, applicants included.
    pub fn tier(&self) -> Option<PartnerTier> {
        self.tier
    }

    /// The tier asked for in the application; `None` if the partner never applied.
    pub fn requested_tier(&self) -> Option<PartnerTier> {
        self.requested_tier
    }

    /// `None` before an application or enrollment; [`PartnerStatus::Applied`] for an
    /// applicant.
    pub fn status(&self) -> Option<PartnerStatus> {
        self.status
    }

    /// Whether the partner is enrolled (active or suspended), not merely an applicant.
    pub fn is_enrolled(&self) -> bool {
        self.tier.is_some()
    }

    /// Distinct customers activated through this partner.
    pub fn activated_customers(&self) -> usize {
        self.activated_leads.len()
    }

    /// The referrals recorded for this partner, ordered by email then click.
    pub fn referrals(&self) -> impl Iterator<Item = Referral> + '_ {
        self.referrals.iter().map(|recorded| Referral {
            partner_id: self.partner_id.clone(),
            lead_email: recorded.lead_email.clone(),
            clicked_at: recorded.clicked_at,
        })
    }

    /// Decides what a command means for this partner, without changing it.
    pub fn decide(&self, command: PartnerCommand) -> Result<Vec<PartnerEvent>, PartnerError> {
        match command {
            PartnerCommand::Apply {
                partner_id,
                name,
                email,
                requested_tier,
                at,
            } => self.take_application(partner_id, name, email, requested_tier, at),
            PartnerCommand::Enroll {
                partner_id,
                name,
                email,
                tier,
                at,
            } => self.enroll(partner_id, name, email, tier, at),
            command => self.decide_for_enrolled(command),
        }
    }

    /// The commands only an enrolled partner can take; applicants and new streams are
    /// [`PartnerError::PartnerNotEnrolled`].
    fn decide_for_enrolled(
        &self,
        command: PartnerCommand,
    ) -> Result<Vec<PartnerEvent>, PartnerError> {
        let (Some(tier), Some(status)) = (self.tier, self.status) else {
            return Err(PartnerError::PartnerNotEnrolled);
        };
        let partner_id = self.partner_id.clone();
        let events = match command {
            // Decided in `decide`; here only an enrolled partner can get this far.
            PartnerCommand::Apply { .. } | PartnerCommand::Enroll { .. } => {
                return Err(PartnerError::PartnerAlreadyEnrolled)
            }
            PartnerCommand::ChangeTier {
                tier: to,
                reason,
                at,
            } => {
                if status == PartnerStatus::Suspended {
                    return Err(PartnerError::PartnerIsSuspended);
                }
                if to == tier {
                    return Err(PartnerError::TierUnchanged { tier });
                }
                if reason.trim().is_empty() {
                    return Err(PartnerError::TierChangeReasonRequired);
                }
                vec![tier_changed(partner_id, tier, to, reason, at)]
            }
            PartnerCommand::RecordCustomerActivated { lead_id, at } => {
                self.record_activation(tier, lead_id, at)?
            }
            PartnerCommand::Suspend { reason, at } => {
                if status == PartnerStatus::Suspended {
                    return Err(PartnerError::PartnerAlreadySuspended);
                }
                if reason.trim().is_empty() {
                    return Err(PartnerError::SuspensionReasonRequired);
                }
                vec![PartnerEvent::PartnerSuspended {
                    partner_id,
                    reason,
                    suspended_at: at,
                }]
            }
            PartnerCommand::Reinstate { at } => {
                if status != PartnerStatus::Suspended {
                    return Err(PartnerError::PartnerNotSuspended);
                }
                vec![PartnerEvent::PartnerReinstated {
                    partner_id,
                    reinstated_at: at,
                }]
            }
            PartnerCommand::RecordReferral {
                lead_email,
                clicked_at,
                at,
            } => self.record_referral(status, &lead_email, clicked_at, at)?,
        };
        Ok(events)
    }

    /// Records an application once, and never for a partner already enrolled.
    fn take_application(
        &self,
        partner_id: String,
        name: String,
        email: String,
        requested_tier: PartnerTier,
        at: OffsetDateTime,
    ) -> Result<Vec<PartnerEvent>, PartnerError> {
        if self.is_enrolled() {
            return Err(PartnerError::PartnerAlreadyEnrolled);
        }
        if self.status == Some(PartnerStatus::Applied) {
            return Err(PartnerError::PartnerAlreadyApplied);
        }
        check_identity(&partner_id, &name, &email)?;
        Ok(vec![PartnerEvent::PartnerApplied {
            partner_id,
            name,
            email,
            requested_tier,
            applied_at: at,
        }])
    }

    /// Enrolls a new partner or an applicant, in the tier decided here: an applicant's
    /// requested tier does not bind it.
    fn enroll(
        &self,
        partner_id: String,
        name: String,
        email: String,
        tier: PartnerTier,
        at: OffsetDateTime,
    ) -> Result<Vec<PartnerEvent>, PartnerError> {
        if self.is_enrolled() {
            return Err(PartnerError::PartnerAlreadyEnrolled);
        }
        check_identity(&partner_id, &name, &email)?;
        if self.status == Some(PartnerStatus::Applied) && partner_id != self.partner_id {
            return Err(PartnerError::PartnerIdMismatch {
                recorded: self.partner_id.clone(),
                requested: partner_id,
            });
        }
        Ok(vec![PartnerEvent::PartnerEnrolled {
            partner_id,
            name,
            email,
            tier,
            commission_rate_bps: tier.commission_rate_bps(),
            revenue_share_bps: tier.revenue_share_bps(),
            enrolled_at: at,
        }])
    }

    /// Counts a customer once and, for a Referral partner reaching the threshold,
    /// upgrades it to Certified in the same decision.
    fn record_activation(
        &self,
        tier: PartnerTier,
        lead_id: String,
        at: OffsetDateTime,
    ) -> Result<Vec<PartnerEvent>, PartnerError> {
        if self.activated_leads.contains(&lead_id) {
            return Err(PartnerError::CustomerAlreadyActivated { lead_id });
        }
        let activated_customers =
            u32::try_from(self.activated_leads.len().saturating_add(1)).unwrap_or(u32::MAX);
        let mut events = vec![PartnerEvent::PartnerCustomerActivated {
            partner_id: self.partner_id.clone(),
            lead_id,
            activated_customers,
            activated_at: at,
        }];
        if tier == PartnerTier::Referral && activated_customers == ACTIVATIONS_FOR_CERTIFIED {
            events.push(tier_changed(
                self.partner_id.clone(),
                tier,
                PartnerTier::Certified,
                format!("{ACTIVATIONS_FOR_CERTIFIED} activated customers"),
                at,
            ));
        }
        Ok(events)
    }

    /// Records a referral click once. A repeat of a recorded (email, click) is accepted
    /// with no event even after a suspension, so a redelivered webhook is not turned
    /// into a failure by something that happened since its first delivery.
    fn record_referral(
        &self,
        status: PartnerStatus,
        lead_email: &str,
        clicked_at: OffsetDateTime,
        at: OffsetDateTime,
    ) -> Result<Vec<PartnerEvent>, PartnerError> {
        let lead_email = normalize_lead_email(lead_email)?;
        let recorded = RecordedReferral {
            lead_email,
            clicked_at,
        };
        if self.referrals.contains(&recorded) {
            return Ok(Vec::new());
        }
        if status == PartnerStatus::Suspended {
            return Err(PartnerError::PartnerIsSuspended);
        }
        if clicked_at > at {
            return Err(PartnerError::ReferralClickInTheFuture {
                clicked_at,
                recorded_at: at,
            });
        }
        Ok(vec![PartnerEvent::ReferralRecorded {
            partner_id: self.partner_id.clone(),
            lead_email: recorded.lead_email,
            clicked_at,
            recorded_at: at,
        }])
    }
}

/// The identity every application and enrollment must carry.
fn check_identity(partner_id: &str, name: &str, email: &str) -> Result<(), PartnerError> {
    if partner_id.trim().is_empty() {
        return Err(PartnerError::PartnerIdRequired);
    }
    if name.trim().is_empty() {
        return Err(PartnerError::PartnerNameRequired);
    }
    if email.trim().is_empty() {
        return Err(PartnerError::PartnerEmailRequired);
    }
    Ok(())
}

fn tier_changed(
    partner_id: String,
    from: PartnerTier,
    to: PartnerTier,
    reason: String,
    at: OffsetDateTime,
) -> PartnerEvent {
    PartnerEvent::PartnerTierChanged {
        partner_id,
        from,
        to,
        reason,
        commission_rate_bps: to.commission_rate_bps(),
        revenue_share_bps: to.revenue_share_bps(),
        changed_at: at,
    }
}

impl Aggregate for Partner {
    const TYPE: &'static str = "partner";
    type Command = PartnerCommand;
    type Event = PartnerEvent;
    type Error = PartnerError;
    type Services = ();

    crate::events::handle_by_deciding!();

    fn apply(&mut self, event: Self::Event) {
        match event {
            PartnerEvent::PartnerApplied {
                partner_id,
                requested_tier,
                ..
            } => {
                self.partner_id = partner_id;
                self.requested_tier = Some(requested_tier);
                self.status = Some(PartnerStatus::Applied);
            }
            PartnerEvent::PartnerEnrolled {
                partner_id, tier, ..
            } => {
                self.partner_id = partner_id;
                self.tier = Some(tier);
                self.status = Some(PartnerStatus::Active);
            }
            PartnerEvent::PartnerTierChanged { to, .. } => self.tier = Some(to),
            PartnerEvent::PartnerCustomerActivated { lead_id, .. } => {
                self.activated_leads.insert(lead_id);
            }
            PartnerEvent::PartnerSuspended { .. } => self.status = Some(PartnerStatus::Suspended),
            PartnerEvent::PartnerReinstated { .. } => self.status = Some(PartnerStatus::Active),
            PartnerEvent::ReferralRecorded {
                lead_email,
                clicked_at,
                ..
            } => {
                self.referrals.insert(RecordedReferral {
                    lead_email,
                    clicked_at,
                });
            }
        }
    }
}

mod program;
#[cfg(test)]
pub(crate) mod tests;

pub use program::{
    PartnerProgram, PartnerProgramCommand, PartnerProgramError, PartnerProgramEvent,
};
