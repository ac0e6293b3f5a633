//! The demo's people: partners enrolled and promoted, and each lead's story through the
//! pipeline, kept warm with follow-ups or gone cold and archived.

use domain::invoice::InvoiceStatus;
use domain::lead::{ArchiveReason, FollowUpChannel, LeadCommand, LeadStage, COLD_AFTER_DAYS};
use domain::partner::{PartnerCommand, PartnerTier};
use domain::plan::Plan;
use time::{Duration, OffsetDateTime};

use super::{
    demo_command_id, failed, send, send_with_id, Actor, Demo, DemoError, ARABIC_NAMES,
    COMPANY_KINDS, COMPANY_STEMS, DEMO_DAYS, FIRST_NAMES, LAST_NAMES, OWNERS, PARTNERS, SOURCES,
};

impl Demo {
    /// Enrolments, an application, and one promotion to Strategic through the program's slots.
    pub(super) async fn partners(&mut self) -> Result<(), DemoError> {
        let h = self.handlers.clone();
        let at = self.start() - Duration::days(5);
        for (partner_id, name, tier) in PARTNERS {
            let email = format!("{partner_id}@partners.example.sa");
            if partner_id == "p-gulf-resellers" {
                let apply = PartnerCommand::Apply {
                    partner_id: partner_id.into(),
                    name: name.into(),
                    email: email.clone(),
                    requested_tier: PartnerTier::Certified,
                    at: at - Duration::days(3),
                };
                let what = format!("apply:{partner_id}");
                send(&h.partners, partner_id, &what, Actor::Partners, apply).await?;
            }
            let enroll = PartnerCommand::Enroll {
                partner_id: partner_id.into(),
                name: name.into(),
                email,
                tier,
                at,
            };
            let what = format!("enroll:{partner_id}");
            send(&h.partners, partner_id, &what, Actor::Admin, enroll).await?;
            self.summary.partners += 1;
        }
        // Najd Consulting signs the Strategic agreement: the tier change takes a slot first.
        crate::partners::change_partner_tier(
            &h,
            "p-najd-consulting",
            PartnerTier::Strategic,
            "signed the strategic partnership agreement",
            at + Duration::days(2),
            demo_command_id("tier:p-najd-consulting:strategic"),
            Actor::Admin.metadata(),
        )
        .await
        .map_err(|error| DemoError::Command {
            what: "tier:p-najd-consulting:strategic".into(),
            reason: error.to_string(),
        })?;
        Ok(())
    }

    /// One lead's story up to its payment (onboarding waits for the process managers).
    pub(super) async fn lead(&mut self, number: u32, of: u32) -> Result<(), DemoError> {
        let h = self.handlers.clone();
        let lead_id = format!("lead-{number:04}");
        // Captures spread evenly over the period, a few hours of jitter each.
        let slot_minutes = DEMO_DAYS * 24 * 60 * i64::from(number - 1) / i64::from(of);
        let captured_at = self.start()
            + Duration::minutes(slot_minutes)
            + Duration::minutes(self.rng.below(6 * 60) as i64);
        let captured_at = captured_at.min(self.now - Duration::hours(1));
        let company = format!(
            "{} {}",
            self.rng.pick(&COMPANY_STEMS),
            self.rng.pick(&COMPANY_KINDS)
        );
        let name = if self.rng.chance(20) {
            self.rng.pick(&ARABIC_NAMES).to_owned()
        } else {
            format!(
                "{} {}",
                self.rng.pick(&FIRST_NAMES),
                self.rng.pick(&LAST_NAMES)
            )
        };
        let slug: String = company
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_lowercase();
        let email = format!("lead{number}@{slug}.example.sa");
        let owner = self.rng.pick(&OWNERS);
        let sales = Actor::Sales(owner);
        // A third of the leads come through partners: named at capture, or a referral click.
        let (source, partner_id) = match self.rng.below(10) {
            0..=1 => ("partner", Some(self.rng.pick(&PARTNERS).0)),
            2 => {
                let partner = self.rng.pick(&PARTNERS).0;
                let clicked_at = captured_at - Duration::hours(1 + self.rng.below(20 * 24) as i64);
                let referral = PartnerCommand::RecordReferral {
                    lead_email: email.clone(),
                    clicked_at,
                    at: captured_at,
                };
                let what = format!("referral:{lead_id}");
                send(&h.partners, partner, &what, Actor::Partners, referral).await?;
                ("landing_page", None)
            }
            _ => (self.rng.pick(&SOURCES), None),
        };
        let capture = LeadCommand::Capture {
            lead_id: lead_id.clone(),
            name,
            company: Some(company.clone()),
            email: Some(email),
            phone: self
                .rng
                .chance(60)
                .then(|| format!("+9665{:08}", self.rng.below(100_000_000))),
            source: source.into(),
            partner_id: partner_id.map(str::to_owned),
            utm: None,
            owner: Some(owner.into()),
            at: captured_at,
        };
        let capture_actor = if source == "partner" {
            Actor::Partners
        } else {
            sales
        };
        send(
            &h.leads,
            &lead_id,
            &format!("capture:{lead_id}"),
            capture_actor,
            capture,
        )
        .await?;
        let last = self
            .pipeline(&lead_id, &company, captured_at, sales)
            .await?;
        if let Some(last) = last {
            self.keep_warm_or_go_cold(&lead_id, last, sales).await?;
        }
        Ok(())
    }

    /// Moves the lead along the funnel; returns the time of its last step when it stopped
    /// before being paid (None once its invoice is paid or it was archived for good).
    async fn pipeline(
        &mut self,
        lead_id: &str,
        company: &str,
        captured_at: OffsetDateTime,
        sales: Actor,
    ) -> Result<Option<OffsetDateTime>, DemoError> {
        let h = self.handlers.clone();
        let mut at = captured_at;
        let lead = |what: &str| format!("{what}:{lead_id}");
        // A first call the next day, not always answered.
        if self.rng.chance(45) {
            let Some(next) = self.later(at, 20, 30) else {
                return Ok(Some(at));
            };
            at = next;
            let follow_up = LeadCommand::LogFollowUp {
                channel: self.rng.pick(&[
                    FollowUpChannel::Phone,
                    FollowUpChannel::Whatsapp,
                    FollowUpChannel::Email,
                ]),
                note: "intro call".into(),
                responded: self.rng.chance(70),
                at,
            };
            send(&h.leads, lead_id, &lead("follow-up-1"), sales, follow_up).await?;
        }
        // Some are lost early; a few of those come back.
        if self.rng.chance(12) {
            let Some(next) = self.later(at, 24, 96) else {
                return Ok(Some(at));
            };
            at = next;
            let reason = if self.rng.chance(50) {
                ArchiveReason::Lost {
                    note: self
                        .rng
                        .pick(&["budget", "chose a competitor", "no decision maker"])
                        .into(),
                }
            } else {
                ArchiveReason::Cold
            };
            send(
                &h.leads,
                lead_id,
                &lead("archive"),
                sales,
                LeadCommand::Archive { reason, at },
            )
            .await?;
            if !self.rng.chance(35) {
                return Ok(None);
            }
            let Some(next) = self.later(at, 72, 240) else {
                return Ok(None);
            };
            at = next;
            send(
                &h.leads,
                lead_id,
                &lead("reopen"),
                sales,
                LeadCommand::Reopen { at },
            )
            .await?;
        }
        if self.rng.chance(18) {
            return Ok(Some(at));
        }
        let Some(next) = self.later(at, 12, 72) else {
            return Ok(Some(at));
        };
        at = next;
        send(
            &h.leads,
            lead_id,
            &lead("qualify"),
            sales,
            LeadCommand::Qualify { at },
        )
        .await?;
        if self.rng.chance(15) {
            return Ok(Some(at));
        }
        let Some(next) = self.later(at, 12, 96) else {
            return Ok(Some(at));
        };
        at = next;
        let booking = format!("calendly-{lead_id}");
        let book = LeadCommand::BookDemo {
            booking_id: booking.clone(),
            scheduled_for: at + Duration::days(2),
            at,
        };
        send(&h.leads, lead_id, &lead("book"), Actor::Calendly, book).await?;
        let mut scheduled = at + Duration::days(2);
        if self.rng.chance(10) {
            let Some(next) = self.later(at, 6, 30) else {
                return Ok(Some(at));
            };
            at = next;
            let cancel = LeadCommand::CancelDemo {
                booking_id: booking.clone(),
                reason: "rescheduled by the invitee".into(),
                rescheduled: true,
                at,
            };
            send(&h.leads, lead_id, &lead("cancel"), Actor::Calendly, cancel).await?;
            scheduled = at + Duration::days(3);
            let rebook = LeadCommand::BookDemo {
                booking_id: format!("{booking}-2"),
                scheduled_for: scheduled,
                at,
            };
            send(&h.leads, lead_id, &lead("rebook"), Actor::Calendly, rebook).await?;
        } else if self.rng.chance(6) && scheduled < self.now {
            at = scheduled + Duration::hours(1);
            let no_show = LeadCommand::RecordNoShow {
                booking_id: booking,
                at,
            };
            send(
                &h.leads,
                lead_id,
                &lead("no-show"),
                Actor::Calendly,
                no_show,
            )
            .await?;
            return Ok(Some(at));
        }
        if self.rng.chance(20) {
            return Ok(Some(at));
        }
        let Some(next) = self.later(scheduled.max(at), 4, 96) else {
            return Ok(Some(at));
        };
        at = next;
        let plan = match self.rng.below(10) {
            0..=1 => Plan::Pilot,
            2..=5 => Plan::Starter,
            6..=8 => Plan::Growth,
            _ => Plan::Scale,
        };
        let proposal = LeadCommand::SendProposal { plan, at };
        send(&h.leads, lead_id, &lead("proposal"), sales, proposal).await?;
        if self.rng.chance(15) {
            return Ok(Some(at));
        }
        let Some(next) = self.later(at, 2, 48) else {
            return Ok(Some(at));
        };
        at = next;
        let paid = self.invoice(lead_id, company, plan, at).await?;
        Ok(if paid { None } else { Some(at) })
    }

    /// A lead that stopped before paying either keeps talking (a recent answered follow-up,
    /// sometimes unanswered ones after it, so follow-ups fall due) or goes cold: archived on
    /// day 14 of silence exactly as the follow-up sweep would have done it.
    async fn keep_warm_or_go_cold(
        &mut self,
        lead_id: &str,
        last: OffsetDateTime,
        sales: Actor,
    ) -> Result<(), DemoError> {
        let h = self.handlers.clone();
        let (lead, _) = h
            .leads
            .load_aggregate(lead_id)
            .await
            .map_err(|e| failed(lead_id, e))?;
        if !lead.stage().is_some_and(LeadStage::is_before_paid) {
            return Ok(());
        }
        let silent_since = lead.silence_started_at().unwrap_or(last);
        let cold_at = silent_since + Duration::days(COLD_AFTER_DAYS);
        if cold_at > self.now - Duration::days(2) {
            return Ok(());
        }
        let (invoice, version) = h
            .invoices
            .load_aggregate(&format!("inv-{lead_id}"))
            .await
            .map_err(|e| failed(lead_id, e))?;
        let open_invoice = version > 0
            && matches!(
                invoice.status(),
                Some(InvoiceStatus::Issued | InvoiceStatus::PartiallyPaid)
            );
        if self.rng.chance(if open_invoice { 85 } else { 45 }) {
            // Still in conversation: answered within the last eleven days.
            let answered = self.now - Duration::hours(26 + self.rng.below(10 * 24) as i64);
            let answered = answered.max(last + Duration::hours(1));
            let follow_up = LeadCommand::LogFollowUp {
                channel: FollowUpChannel::Whatsapp,
                note: if open_invoice {
                    "promised to pay this week".into()
                } else {
                    "asked for a call back".into()
                },
                responded: true,
                at: answered,
            };
            send(
                &h.leads,
                lead_id,
                &format!("follow-up-warm:{lead_id}"),
                sales,
                follow_up,
            )
            .await?;
            if self.rng.chance(40) {
                if let Some(chased) = self.later(answered, 24, 72) {
                    let follow_up = LeadCommand::LogFollowUp {
                        channel: FollowUpChannel::Email,
                        note: "sent the deck again".into(),
                        responded: false,
                        at: chased,
                    };
                    send(
                        &h.leads,
                        lead_id,
                        &format!("follow-up-chase:{lead_id}"),
                        sales,
                        follow_up,
                    )
                    .await?;
                }
            }
            return Ok(());
        }
        // The sweep's own command id, so the live sweep recognises its work and adds nothing.
        let silence_us = adapters::clock::unix_micros(silent_since);
        let id = crate::process::command_id("follow_up", &format!("{lead_id}:{silence_us}"), 0);
        let archive = LeadCommand::ArchiveIfCold { at: cold_at };
        send_with_id(
            &h.leads,
            lead_id,
            id,
            &format!("cold:{lead_id}"),
            Actor::FollowUpSweep,
            archive,
        )
        .await
    }
}
