//! The finance desk in the dashboard over HTTP, on both engines: approving, rejecting (a
//! reason required), payout batches and dead-letter replays posted as forms, each an event
//! with the signed-in token as its actor; the form token (CSRF) and roles refusing the rest
//! with nothing changed; a partner's own page; times in Riyadh; the monthly charts' numbers.

use api::auth::Role;
use serde_json::Value;
use time::OffsetDateTime;

use crate::app::{TestApp, ADMIN_TOKEN};
use crate::dashboard::{form_encode, sign_in};
use crate::finance_api::{accrue, token};
use crate::webhooks::{calendly_event, capture_lead, now_unix};

crate::on_both_apps!(
    finance_decides_commissions_and_creates_payouts_from_the_dashboard_as_itself,
    a_dead_letter_replayed_from_the_dashboard_applies_with_the_operator_as_actor,
    a_post_without_or_with_a_wrong_form_token_is_refused_and_changes_nothing,
    an_auditor_or_a_partner_sees_no_forms_and_its_posts_are_refused,
    a_partner_sees_its_own_statements_and_commissions_and_nothing_of_another_partner,
    times_are_shown_in_riyadh_with_the_zone_named_in_both_languages,
    the_charts_show_mrr_and_collections_per_month_net_of_refunds,
);

/// A signed-in browser: its session cookie and the result cookie a redirect left.
pub(crate) struct Browser<'a> {
    pub app: &'a TestApp,
    pub session: String,
}

/// A page's answer: status and HTML.
pub(crate) struct Page {
    pub status: u16,
    pub html: String,
}

impl<'a> Browser<'a> {
    pub async fn sign_in(app: &'a TestApp, token: &str) -> Browser<'a> {
        Browser {
            app,
            session: sign_in(app, token).await,
        }
    }

    /// The form token of this session, as the server computes it.
    pub fn own_form_token(&self) -> String {
        let session_id = self.session.split_once('=').unwrap().1;
        adapters::sessions::form_token(session_id)
    }

    pub async fn get(&self, path: &str, extra_cookie: Option<&str>) -> Page {
        let cookie = match extra_cookie {
            Some(extra) => format!("{}; {extra}", self.session),
            None => self.session.clone(),
        };
        let answer = self
            .app
            .request("GET", path, &[("Cookie", cookie)], b"")
            .await;
        Page {
            status: answer.status,
            html: answer.text,
        }
    }

    /// Posts a form; returns the status, the `Location` and the result cookie set, if any.
    pub async fn post(
        &self,
        path: &str,
        fields: &[(&str, &str)],
    ) -> (u16, String, Option<String>, String) {
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect();
        let answer = self
            .app
            .request(
                "POST",
                path,
                &[
                    ("Cookie", self.session.clone()),
                    ("Content-Type", "application/x-www-form-urlencoded".into()),
                ],
                body.join("&").as_bytes(),
            )
            .await;
        let location = answer
            .header_values("location")
            .next()
            .map_or(String::new(), str::to_owned);
        let result = answer
            .header_values("set-cookie")
            .find(|c| c.starts_with("revledger_result="))
            .map(|c| c.split(';').next().unwrap().to_owned());
        let html = answer.text;
        (answer.status, location, result, html)
    }

    /// Posts a form the way a browser does, follows the redirect, and returns the banner shown.
    pub async fn act(&self, path: &str, fields: &[(&str, &str)]) -> (bool, String) {
        let (status, location, result, html) = self.post(path, fields).await;
        assert_eq!(status, 303, "{path}: {html}");
        let page = self.get(&location, result.as_deref()).await;
        assert_eq!(page.status, 200, "{location}: {}", page.html);
        banner(&page.html).unwrap_or_else(|| panic!("no result shown on {location}: {}", page.html))
    }
}

/// The form token a page carries.
pub(crate) fn form_token(html: &str) -> String {
    let at = html
        .find(r#"name="csrf" value=""#)
        .unwrap_or_else(|| panic!("no form token in {html}"));
    html[at + 19..].split('"').next().unwrap().to_owned()
}

/// The result banner of a page: whether it says success, and its text.
pub(crate) fn banner(html: &str) -> Option<(bool, String)> {
    let at = html.find(r#"id="action-result""#)?;
    let tag_end = at + html[at..].find('>')?;
    let ok = html[at..tag_end].contains(r#"data-ok="true""#);
    let text = html[tag_end + 1..].split("</p>").next()?.to_owned();
    Some((ok, text))
}

/// Each event of a stream with its actor, as the API tells them.
pub(crate) async fn actors_of(app: &TestApp, stream_id: &str) -> Vec<(String, String)> {
    let answer = app
        .get(
            &format!("/api/streams/{stream_id}/events?limit=100"),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", answer.text))
        .iter()
        .map(|e| {
            (
                e["event_type"].as_str().unwrap_or("").to_owned(),
                e["metadata"]["actor"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

async fn commission_status(app: &TestApp, commission_id: &str) -> String {
    app.settle().await;
    let rows = projections::statements::latest_commissions(&app.db.store.sql(), 500)
        .await
        .unwrap();
    rows.into_iter()
        .find(|c| c.commission_id == commission_id)
        .map(|c| c.status)
        .unwrap_or_default()
}

async fn finance_decides_commissions_and_creates_payouts_from_the_dashboard_as_itself(
    app: &TestApp,
) {
    let (approve_id, _) = accrue(app, "partner-desk", "lead-desk-1").await;
    let (reject_id, _) = accrue(app, "partner-desk", "lead-desk-2").await;
    let (finance_id, finance) =
        crate::app::create_token(app.handlers(), Role::Finance, None, Some("desk")).await;
    let desk = Browser::sign_in(app, &finance).await;
    let page = desk.get("/dashboard/commissions", None).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(page
        .html
        .contains(&format!("/dashboard/commissions/{approve_id}/approve")));
    let csrf = form_token(&page.html);

    // Approve, in English.
    let (ok, text) = desk
        .act(
            &format!("/dashboard/commissions/{approve_id}/approve"),
            &[("csrf", &csrf), ("lang", "en")],
        )
        .await;
    assert!(ok, "{text}");
    assert!(
        text.contains("Commission approved") && text.contains(&approve_id),
        "{text}"
    );
    assert_eq!(commission_status(app, &approve_id).await, "approved");
    let actor = format!("token:{finance_id}");
    assert!(actors_of(app, &format!("commission-{approve_id}"))
        .await
        .contains(&("CommissionApproved".into(), actor.clone())));

    // A rejection without a reason is refused, in Arabic, and changes nothing.
    let (ok, text) = desk
        .act(
            &format!("/dashboard/commissions/{reject_id}/reject"),
            &[("csrf", &csrf), ("lang", "ar"), ("reason", "  ")],
        )
        .await;
    assert!(!ok, "{text}");
    assert!(
        text.starts_with("مرفوض:") && text.contains("يتطلب ذكر السبب"),
        "{text}"
    );
    assert_eq!(commission_status(app, &reject_id).await, "held");

    // With a reason it is rejected, and the reason is kept with the actor.
    let (ok, text) = desk
        .act(
            &format!("/dashboard/commissions/{reject_id}/reject"),
            &[
                ("csrf", &csrf),
                ("lang", "ar"),
                ("reason", "duplicate referral"),
            ],
        )
        .await;
    assert!(ok, "{text}");
    assert!(text.contains("رُفضت العمولة"), "{text}");
    assert_eq!(commission_status(app, &reject_id).await, "rejected");
    let events = app.stream(&format!("commission-{reject_id}")).await;
    let rejected = events
        .iter()
        .find(|e| e.event_type == "CommissionRejected")
        .unwrap();
    assert_eq!(rejected.metadata["actor"], Value::from(actor.clone()));
    assert_eq!(rejected.metadata["source"], "dashboard");
    assert!(rejected.payload.to_string().contains("duplicate referral"));

    // A payout batch for the approved commission.
    let (ok, text) = desk
        .act(
            "/dashboard/payouts",
            &[("csrf", &csrf), ("lang", "en"), ("partner_id", "")],
        )
        .await;
    assert!(ok, "{text}");
    assert!(
        text.contains("Payout batches created") && text.contains("partner-desk"),
        "{text}"
    );
    assert_eq!(commission_status(app, &approve_id).await, "paid_out");
    let payout_id = text
        .split_once(": ")
        .and_then(|(_, rest)| rest.split(' ').next())
        .unwrap()
        .to_owned();
    assert_eq!(
        actors_of(app, &format!("payout-{payout_id}")).await,
        [("PayoutCreated".to_owned(), actor)]
    );

    // Again: nothing left to pay, said as a refusal.
    let (ok, text) = desk
        .act("/dashboard/payouts", &[("csrf", &csrf), ("lang", "en")])
        .await;
    assert!(!ok && text.contains("No payout batch"), "{text}");
    // The result is shown once.
    let again = desk.get("/dashboard/commissions", None).await;
    assert!(banner(&again.html).is_none());
}

async fn a_dead_letter_replayed_from_the_dashboard_applies_with_the_operator_as_actor(
    app: &TestApp,
) {
    dead_letter(app, "lead-dl").await;

    let admin = Browser::sign_in(app, ADMIN_TOKEN).await;
    let page = admin.get("/dashboard/dead-letters?lang=ar", None).await;
    assert_eq!(page.status, 200, "{}", page.html);
    let at = page
        .html
        .find("data-dead-letter=\"")
        .expect("the dead letter is listed");
    let id = page.html[at + 18..].split('"').next().unwrap().to_owned();
    let (ok, text) = admin
        .act(
            &format!("/dashboard/dead-letters/{id}/replay"),
            &[("csrf", &form_token(&page.html)), ("lang", "ar")],
        )
        .await;
    assert!(ok, "{text}");
    assert!(
        text.contains("أُعيدت معالجة الرسالة") && text.contains("accepted"),
        "{text}"
    );
    let actors = actors_of(app, "lead-lead-dl").await;
    assert_eq!(
        actors.last().unwrap(),
        &(
            "DemoCanceled".to_owned(),
            "token:bootstrap-admin".to_owned()
        ),
        "{actors:?}"
    );
    let left = app
        .get("/api/webhooks/dead-letters", Some(ADMIN_TOKEN))
        .await;
    assert!(
        left.body["dead_letters"].as_array().unwrap().is_empty(),
        "{}",
        left.text
    );
}

async fn a_post_without_or_with_a_wrong_form_token_is_refused_and_changes_nothing(app: &TestApp) {
    let (commission_id, _) = accrue(app, "partner-csrf", "lead-csrf").await;
    let (_, finance) = crate::app::create_token(app.handlers(), Role::Finance, None, None).await;
    let desk = Browser::sign_in(app, &finance).await;
    let other = Browser::sign_in(app, &finance).await;
    let page = desk.get("/dashboard/commissions", None).await;
    let good = form_token(&page.html);
    assert_eq!(good, desk.own_form_token());
    // Another session's token is not this session's.
    let others = form_token(&other.get("/dashboard/commissions", None).await.html);
    assert_ne!(good, others);
    let before = app
        .stream(&format!("commission-{commission_id}"))
        .await
        .len();
    let path = format!("/dashboard/commissions/{commission_id}/approve");
    for fields in [
        vec![],
        vec![("csrf", "")],
        vec![("csrf", "0000")],
        vec![("csrf", others.as_str())],
        vec![("csrf", &good[..good.len() - 1])],
    ] {
        let (status, _, result, html) = desk.post(&path, &fields).await;
        assert_eq!(status, 403, "{fields:?}: {html}");
        assert!(result.is_none());
        assert!(html.contains("security token"), "{html}");
        let (status, ..) = desk.post("/dashboard/payouts", &fields).await;
        assert_eq!(status, 403);
    }
    assert_eq!(
        app.stream(&format!("commission-{commission_id}"))
            .await
            .len(),
        before
    );
    assert_eq!(commission_status(app, &commission_id).await, "held");
    // The same form with the right token works.
    let (ok, text) = desk.act(&path, &[("csrf", &good)]).await;
    assert!(ok, "{text}");
    // Without a session a post goes to the login form.
    let answer = app
        .request("POST", &path, &[], format!("csrf={good}").as_bytes())
        .await;
    assert_eq!(answer.status, 303);
    assert!(answer.header_values("location").collect::<Vec<_>>()[0].starts_with("/dashboard/login"));
}

async fn an_auditor_or_a_partner_sees_no_forms_and_its_posts_are_refused(app: &TestApp) {
    let (commission_id, _) = accrue(app, "partner-roles", "lead-roles").await;
    let auditor = Browser::sign_in(app, &token(app, Role::Auditor, None).await).await;
    let page = auditor.get("/dashboard/commissions", None).await;
    assert_eq!(page.status, 200);
    assert!(page.html.contains(&commission_id));
    assert!(
        !page
            .html
            .contains("method=\"post\" action=\"/dashboard/commissions/"),
        "{}",
        page.html
    );
    assert!(!page.html.contains("/dashboard/payouts"));
    let dead = auditor.get("/dashboard/dead-letters", None).await;
    assert_eq!(dead.status, 200);
    assert!(!dead.html.contains("/replay"));
    // Its own session's good form token does not make it finance (the pages show it no form,
    // so it is computed here from the session cookie, as the server does).
    let csrf = auditor.own_form_token();
    let partner =
        Browser::sign_in(app, &token(app, Role::Partner, Some("partner-roles")).await).await;
    let partner_csrf = partner.own_form_token();
    for (who, csrf) in [(&auditor, csrf.as_str()), (&partner, partner_csrf.as_str())] {
        for path in [
            format!("/dashboard/commissions/{commission_id}/approve"),
            "/dashboard/payouts".to_owned(),
            "/dashboard/dead-letters/none/replay".to_owned(),
        ] {
            let (status, _, result, html) = who.post(&path, &[("csrf", csrf)]).await;
            assert_eq!(status, 403, "{path}: {html}");
            assert!(result.is_none());
        }
    }
    assert_eq!(commission_status(app, &commission_id).await, "held");
    // A partner reads none of the staff pages.
    for path in [
        "/dashboard/commissions",
        "/dashboard/dead-letters",
        "/dashboard/crm",
    ] {
        assert_eq!(partner.get(path, None).await.status, 403, "{path}");
    }
}

async fn a_partner_sees_its_own_statements_and_commissions_and_nothing_of_another_partner(
    app: &TestApp,
) {
    let (mine, month) = accrue(app, "partner-mine", "lead-mine").await;
    let (theirs, _) = accrue(app, "partner-theirs", "lead-theirs").await;
    let partner =
        Browser::sign_in(app, &token(app, Role::Partner, Some("partner-mine")).await).await;
    // The overview sends a partner to its own page.
    let overview = partner.get("/dashboard", None).await;
    assert_eq!(overview.status, 303);
    for lang in ["en", "ar"] {
        let page = partner
            .get(&format!("/dashboard/partner?lang={lang}"), None)
            .await;
        assert_eq!(page.status, 200, "{}", page.html);
        assert!(
            page.html.contains(r#"id="partner-id">partner-mine<"#),
            "{}",
            page.html
        );
        assert!(page.html.contains(&format!(r#"data-month="{month}""#)));
        assert!(
            page.html
                .contains(&format!(r#"data-kind="accrued" data-commission="{mine}""#)),
            "{}",
            page.html
        );
        assert!(page
            .html
            .contains(&format!(r#"data-commission="{mine}" data-status="held""#)));
        // 10% of Growth's 2,999.00 SAR before VAT.
        assert!(
            page.html.contains(r#"data-halalas="29990""#),
            "{}",
            page.html
        );
        for other in [theirs.as_str(), "partner-theirs", "lead-theirs"] {
            assert!(
                !page.html.contains(other),
                "{lang}: {other} shown to another partner"
            );
        }
    }
    let page = partner
        .get(
            &format!("/dashboard/partner?month={month}&partner_id=partner-theirs"),
            None,
        )
        .await;
    assert!(!page.html.contains(&theirs) && page.html.contains("partner-mine"));
    assert_eq!(
        partner
            .get("/dashboard/partner?month=2026-13", None)
            .await
            .status,
        400
    );
    // Staff do not have a partner page.
    let admin = Browser::sign_in(app, ADMIN_TOKEN).await;
    assert_eq!(admin.get("/dashboard/partner", None).await.status, 403);
}

/// `us` as Riyadh's wall clock, worked out here on its own: UTC plus three hours.
fn riyadh_minute(us: i64) -> String {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000).unwrap()
        + time::Duration::hours(3);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute()
    )
}

async fn times_are_shown_in_riyadh_with_the_zone_named_in_both_languages(app: &TestApp) {
    let (commission_id, _) = accrue(app, "partner-time", "lead-time").await;
    app.settle().await;
    let held_until = projections::statements::latest_commissions(&app.db.store.sql(), 10)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.commission_id == commission_id)
        .unwrap()
        .held_until_us;
    let admin = Browser::sign_in(app, ADMIN_TOKEN).await;
    for (lang, zone) in [("en", "(Asia/Riyadh)"), ("ar", "(بتوقيت الرياض)")] {
        let expected = format!("{} {zone}", riyadh_minute(held_until));
        let page = admin
            .get(&format!("/dashboard/commissions?lang={lang}"), None)
            .await;
        assert!(
            page.html.contains(&expected),
            "{lang}: {expected} not in {}",
            page.html
        );
        for path in ["/dashboard/audit", "/dashboard/lag", "/dashboard/crm"] {
            let page = admin.get(&format!("{path}?lang={lang}"), None).await;
            assert!(page.html.contains(zone), "{path} {lang}");
            assert!(
                !page.html.contains(" UTC<"),
                "{path} {lang} still shows UTC"
            );
        }
    }
}

async fn the_charts_show_mrr_and_collections_per_month_net_of_refunds(app: &TestApp) {
    // accrue() pays a Growth invoice 40 days ago, in full (total with VAT).
    accrue(app, "partner-chart", "lead-chart").await;
    app.settle().await;
    let paid_at = OffsetDateTime::now_utc() - time::Duration::days(40);
    let month_of = |at: OffsetDateTime| {
        let at = at + time::Duration::hours(3);
        format!("{:04}-{:02}", at.year(), u8::from(at.month()))
    };
    let paid_month = month_of(paid_at);
    let this_month = month_of(OffsetDateTime::now_utc());
    let growth = domain::plan::Plan::Growth.price_halalas();
    let total = growth + domain::vat::vat_halalas(growth);
    let admin = Browser::sign_in(app, ADMIN_TOKEN).await;
    let page = admin.get("/dashboard", None).await;
    let bar = |html: &str, chart: &str, month: &str| -> i64 {
        let chart_at = html
            .find(&format!(r#"id="{chart}""#))
            .unwrap_or_else(|| panic!("no {chart}"));
        let svg = &html[chart_at..chart_at + html[chart_at..].find("</svg>").unwrap()];
        let prefix = format!(r#"data-month="{month}" data-halalas=""#);
        let at = svg
            .find(&prefix)
            .unwrap_or_else(|| panic!("{month} not in {svg}"));
        svg[at + prefix.len()..]
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(page
        .html
        .contains(r#"role="img" aria-labelledby="mrr-chart-title"#));
    assert!(!page.html.contains("<script"));
    assert_eq!(bar(&page.html, "collections-chart", &paid_month), total);
    assert_eq!(bar(&page.html, "mrr-chart", &paid_month), growth);
    assert_eq!(bar(&page.html, "mrr-chart", &this_month), growth);
    // The MRR card and this month's bar agree.
    assert!(page
        .html
        .contains(&format!(r#"id="mrr" data-halalas="{growth}""#)));

    // A full refund today: collections this month fall by it, MRR ends.
    let refund = domain::payment::PaymentCommand::RecordGatewayStatus {
        payment_id: "pay-lead-chart".into(),
        invoice_id: None,
        moyasar_invoice_id: None,
        status: domain::payment::PaymentStatus::Refunded,
        amount_halalas: total,
        fee_halalas: 500,
        captured_halalas: 0,
        refunded_halalas: total,
        currency: "SAR".into(),
        at: OffsetDateTime::now_utc(),
    };
    app.handlers()
        .payments
        .execute(crate::app::envelope("pay-lead-chart", refund))
        .await
        .unwrap();
    app.settle().await;
    let page = admin.get("/dashboard?lang=ar", None).await;
    let before = if paid_month == this_month { total } else { 0 };
    assert_eq!(
        bar(&page.html, "collections-chart", &this_month),
        before - total
    );
    assert_eq!(bar(&page.html, "mrr-chart", &this_month), 0);
    assert_eq!(
        bar(&page.html, "mrr-chart", &paid_month),
        if paid_month == this_month { 0 } else { growth }
    );
}

/// A dead letter: a Calendly cancel whose booking never came within the retries; the booking
/// then arrives, so a replay applies. Returns the lead's stream.
pub(crate) async fn dead_letter(app: &TestApp, lead: &str) -> String {
    let email = format!("{lead}@example.sa");
    capture_lead(app, lead, &email).await;
    let invitee = format!("https://api.calendly.com/invitees/{lead}");
    let cancel = app
        .post_calendly_webhook(
            &calendly_event("invitee.canceled", &email, &invitee),
            now_unix(),
        )
        .await;
    assert_eq!(cancel.status, 202, "{}", cancel.text);
    let mut at = OffsetDateTime::now_utc();
    for _ in 0..adapters::inbox::MAX_ATTEMPTS {
        at += time::Duration::hours(1);
        app.state.deliveries.retry_due(at).await.unwrap();
    }
    let created = app
        .post_calendly_webhook(
            &calendly_event("invitee.created", &email, &invitee),
            now_unix(),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.text);
    format!("lead-{lead}")
}
