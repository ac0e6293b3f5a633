//! Revenue: MRR from active subscriptions by plan, ARPU, plan mix and pilots converted.
//!
//! A customer's subscription is the plan of the latest paid invoice that sells a plan; it is
//! active until that invoice is refunded in full. MRR counts the monthly price before VAT of
//! active paid plans; the 7-day pilot (1 SAR) is a trial, shown in the plan mix but not
//! recurring revenue. ARPU is MRR over paying customers, rounded half up to the halala.
//!
//! The figures are kept as the events arrive, so a read costs the same after five years as
//! on the first day: `revenue_counters` holds each plan's active customers and MRR and the
//! pilots started and converted; `revenue_mrr_changes` how much MRR changed in each Riyadh
//! month (a subscription starts adding its monthly price in the month its invoice is paid and
//! stops in the month it is replaced or refunded in full), so MRR at a month's end is the sum
//! of the changes up to it ([`crate::monthly`]). Each change is written as a statement that
//! reads the customer's row as the previous statements left it (`INSERT … SELECT`), so no
//! read leaves the database and the batch's writes stay one round trip on PostgreSQL.

use std::collections::{BTreeMap, HashMap};

use adapters::sql::{SqlDb, SqlTx};
use adapters::store::RecordedEvent;
use async_trait::async_trait;
use domain::invoice::InvoiceEvent;
use domain::plan::Plan;
use serde_json::{json, Value};

use crate::{decode, micros, Projection, ProjectionError};

pub struct Revenue;

pub(crate) fn monthly_halalas(plan: Plan) -> i64 {
    match plan {
        Plan::Pilot => 0,
        other => other.price_halalas(),
    }
}

pub(crate) fn parse_plan(text: &str) -> Option<Plan> {
    serde_json::from_value(Value::String(text.to_owned())).ok()
}

#[async_trait]
impl Projection for Revenue {
    fn name(&self) -> &'static str {
        "revenue"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "revenue_invoices",
            "revenue_customers",
            "revenue_counters",
            "revenue_mrr_changes",
        ]
    }

    fn folds_money(&self) -> bool {
        true
    }

    /// Remembers the plan of each invoice the batch issues, so its payment later in the batch
    /// needs no read of the plan back (a round trip, which on PostgreSQL also sends every write
    /// queued before it).
    async fn apply_batch(
        &self,
        tx: &mut SqlTx,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut plans = paid_plans(tx, events).await?;
        for event in events {
            apply_one(tx, event, &mut plans).await?;
        }
        Ok(())
    }

    async fn render(&self, db: &SqlDb) -> Result<Value, ProjectionError> {
        Ok(json!(figures(db).await?))
    }
}

/// One plan's active customers and their monthly recurring revenue.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PlanFigures {
    pub customers: i64,
    pub mrr_halalas: i64,
}

/// Revenue now: MRR, paying customers (pilots are not paying), ARPU rounded to the nearest
/// halala, each plan's figures (by plan name), and how many pilots converted.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RevenueFigures {
    pub currency: &'static str,
    pub mrr_halalas: i64,
    pub paying_customers: i64,
    pub arpu_halalas: i64,
    pub plan_mix: BTreeMap<&'static str, PlanFigures>,
    pub pilots_started: i64,
    pub pilots_converted: i64,
    pub pilot_conversion_bps: i64,
}

/// Revenue now ([`RevenueFigures`]), from the kept counters.
pub async fn figures(db: &SqlDb) -> Result<RevenueFigures, ProjectionError> {
    let mut counters: HashMap<String, i64> = HashMap::new();
    for row in db
        .fetch_all("SELECT name, value FROM revenue_counters", &[])
        .await?
    {
        counters.insert(row.text(0)?, row.i64(1)?);
    }
    let counter = |name: &str| counters.get(name).copied().unwrap_or(0);
    let mut plan_mix = BTreeMap::new();
    let (mut mrr, mut paying) = (0i64, 0i64);
    for plan in Plan::ALL {
        let customers = counter(&format!("customers:{}", plan.as_str()));
        let plan_mrr = counter(&format!("mrr:{}", plan.as_str()));
        mrr += plan_mrr;
        if plan != Plan::Pilot {
            paying += customers;
        }
        plan_mix.insert(
            plan.as_str(),
            PlanFigures {
                customers,
                mrr_halalas: plan_mrr,
            },
        );
    }
    let arpu = if paying == 0 {
        0
    } else {
        (mrr + paying / 2) / paying
    };
    let (pilots_started, pilots_converted) =
        (counter("pilots_started"), counter("pilots_converted"));
    Ok(RevenueFigures {
        currency: "SAR",
        mrr_halalas: mrr,
        paying_customers: paying,
        arpu_halalas: arpu,
        plan_mix,
        pilots_started,
        pilots_converted,
        pilot_conversion_bps: if pilots_started == 0 {
            0
        } else {
            pilots_converted * 10_000 / pilots_started
        },
    })
}

/// Adds to the counters and to a month's MRR change what the customer's current subscription
/// stops adding, if it is active and `subscription` (a `FROM … WHERE` naming it `c`) finds it.
/// Runs before the statement that replaces or ends it.
async fn end_subscription(
    tx: &mut SqlTx,
    month: &str,
    subscription: &str,
    params: &[adapters::sql::SqlValue],
) -> Result<(), ProjectionError> {
    tx.write(
        &format!(
            "INSERT INTO revenue_counters (name, value) SELECT name, value FROM (\
             SELECT 'customers:' || c.plan AS name, -1 AS value {subscription} AND c.active \
             UNION ALL SELECT 'mrr:' || c.plan, -c.monthly_halalas {subscription} AND c.active\
             ) AS ended WHERE value <> 0 \
             ON CONFLICT (name) DO UPDATE SET value = revenue_counters.value + excluded.value"
        ),
        &[params, params].concat(),
    )
    .await?;
    let mut with_month = vec![month.into()];
    with_month.extend_from_slice(params);
    tx.write(
        &format!(
            "INSERT INTO revenue_mrr_changes (month, halalas) \
             SELECT ?, -c.monthly_halalas {subscription} AND c.active AND c.monthly_halalas <> 0 \
             ON CONFLICT (month) DO UPDATE SET halalas = revenue_mrr_changes.halalas + excluded.halalas"
        ),
        &with_month,
    )
    .await?;
    Ok(())
}

/// Adds `value` to counter `name`.
async fn add_to_counter(tx: &mut SqlTx, name: &str, value: i64) -> Result<(), ProjectionError> {
    tx.write(
        "INSERT INTO revenue_counters (name, value) VALUES (?, ?) \
         ON CONFLICT (name) DO UPDATE SET value = revenue_counters.value + excluded.value",
        &[name.into(), value.into()],
    )
    .await?;
    Ok(())
}

/// The plan (or none) of every invoice paid in `events` that was issued before them, read in
/// one statement; an invoice not found has none.
async fn paid_plans(
    tx: &mut SqlTx,
    events: &[RecordedEvent],
) -> Result<HashMap<String, Option<Plan>>, ProjectionError> {
    let mut paid = Vec::new();
    for event in events.iter().filter(|e| e.event_type == "InvoicePaid") {
        if let InvoiceEvent::InvoicePaid { invoice_id, .. } = decode(event)? {
            paid.push(invoice_id);
        }
    }
    let mut plans: HashMap<String, Option<Plan>> = paid
        .iter()
        .map(|invoice_id| (invoice_id.clone(), None))
        .collect();
    if paid.is_empty() {
        return Ok(plans);
    }
    let (marks, params) = adapters::sql::in_list(paid.iter().map(String::as_str));
    let rows = tx
        .fetch_all(
            &format!("SELECT invoice_id, plan FROM revenue_invoices WHERE invoice_id IN ({marks})"),
            &params,
        )
        .await?;
    for row in rows {
        let plan = row.opt_text(1)?.and_then(|text| parse_plan(&text));
        plans.insert(row.text(0)?, plan);
    }
    Ok(plans)
}

/// Applies one event; `plans` holds the plan (or none) of each invoice the batch pays
/// ([`paid_plans`]) and of each invoice issued earlier in it.
async fn apply_one(
    tx: &mut SqlTx,
    event: &RecordedEvent,
    plans: &mut HashMap<String, Option<Plan>>,
) -> Result<(), ProjectionError> {
    if event.stream_type != "invoice" {
        return Ok(());
    }
    match decode::<InvoiceEvent>(event)? {
        InvoiceEvent::InvoiceIssued {
            invoice_id,
            customer,
            lines,
            subtotal_halalas,
            total_halalas,
            ..
        } => {
            let plan = lines.iter().find_map(|line| line.plan);
            plans.insert(invoice_id.clone(), plan);
            tx.write(
                "INSERT INTO revenue_invoices (invoice_id, lead_id, plan, subtotal_halalas, total_halalas, \
                 status, refunded_halalas) VALUES (?, ?, ?, ?, ?, 'issued', 0)",
                &[
                    invoice_id.into(),
                    customer.lead_id.into(),
                    plan.map(|plan| plan.as_str()).into(),
                    subtotal_halalas.into(),
                    total_halalas.into(),
                ],
            )
            .await?;
        }
        InvoiceEvent::InvoicePaid {
            invoice_id,
            lead_id,
            paid_at,
            ..
        } => {
            tx.write(
                "UPDATE revenue_invoices SET status = 'paid' WHERE invoice_id = ?",
                &[invoice_id.as_str().into()],
            )
            .await?;
            let Some(plan) = plans.get(&invoice_id).copied().flatten() else {
                return Ok(());
            };
            let is_pilot = plan == Plan::Pilot;
            let month = crate::monthly::month_of(micros(paid_at)).unwrap_or_default();
            // What the customer's row says before this invoice replaces it: the subscription
            // it ends, and whether it starts or converts a pilot.
            end_subscription(
                tx,
                &month,
                "FROM revenue_customers c WHERE c.lead_id = ?",
                &[lead_id.as_str().into()],
            )
            .await?;
            if is_pilot {
                tx.write(
                    "INSERT INTO revenue_counters (name, value) SELECT 'pilots_started', 1 \
                     WHERE NOT EXISTS (SELECT 1 FROM revenue_customers WHERE lead_id = ?) \
                     ON CONFLICT (name) DO UPDATE SET value = revenue_counters.value + excluded.value",
                    &[lead_id.as_str().into()],
                )
                .await?;
            } else {
                tx.write(
                    "INSERT INTO revenue_counters (name, value) SELECT 'pilots_converted', 1 \
                     FROM revenue_customers WHERE lead_id = ? AND started_on_pilot AND NOT converted_from_pilot \
                     ON CONFLICT (name) DO UPDATE SET value = revenue_counters.value + excluded.value",
                    &[lead_id.as_str().into()],
                )
                .await?;
            }
            let monthly = monthly_halalas(plan);
            add_to_counter(tx, &format!("customers:{}", plan.as_str()), 1).await?;
            if monthly != 0 {
                add_to_counter(tx, &format!("mrr:{}", plan.as_str()), monthly).await?;
                tx.write(
                    "INSERT INTO revenue_mrr_changes (month, halalas) VALUES (?, ?) \
                     ON CONFLICT (month) DO UPDATE SET halalas = revenue_mrr_changes.halalas + excluded.halalas",
                    &[month.into(), monthly.into()],
                )
                .await?;
            }
            tx.write(
                "INSERT INTO revenue_customers (lead_id, plan, invoice_id, monthly_halalas, active, \
                 started_on_pilot, converted_from_pilot, since_us) VALUES (?, ?, ?, ?, TRUE, ?, FALSE, ?) \
                 ON CONFLICT (lead_id) DO UPDATE SET plan = excluded.plan, invoice_id = excluded.invoice_id, \
                 monthly_halalas = excluded.monthly_halalas, active = TRUE, \
                 converted_from_pilot = revenue_customers.converted_from_pilot \
                    OR (revenue_customers.started_on_pilot AND excluded.plan <> 'pilot')",
                &[
                    lead_id.into(),
                    plan.as_str().into(),
                    invoice_id.into(),
                    monthly_halalas(plan).into(),
                    is_pilot.into(),
                    micros(paid_at).into(),
                ],
            )
            .await?;
        }
        InvoiceEvent::InvoiceRefunded {
            invoice_id,
            lead_id,
            refunded_halalas,
            refunded_at,
            ..
        } => {
            tx.write(
                "UPDATE revenue_invoices SET refunded_halalas = ?, \
                 status = CASE WHEN ? >= total_halalas THEN 'refunded' ELSE status END WHERE invoice_id = ?",
                &[refunded_halalas.into(), refunded_halalas.into(), invoice_id.as_str().into()],
            )
            .await?;
            // Refunded in full: the customer's subscription ends if this invoice is the one
            // it stands on.
            let subscription = "FROM revenue_customers c WHERE c.lead_id = ? AND c.invoice_id = ? \
                 AND EXISTS (SELECT 1 FROM revenue_invoices i WHERE i.invoice_id = ? AND i.status = 'refunded')";
            let params = [
                lead_id.as_str().into(),
                invoice_id.as_str().into(),
                invoice_id.as_str().into(),
            ];
            let month = crate::monthly::month_of(micros(refunded_at)).unwrap_or_default();
            end_subscription(tx, &month, subscription, &params).await?;
            tx.write(
                "UPDATE revenue_customers SET active = FALSE WHERE lead_id = ? AND invoice_id = ? \
                 AND EXISTS (SELECT 1 FROM revenue_invoices i WHERE i.invoice_id = ? AND i.status = 'refunded')",
                &params,
            )
            .await?;
        }
        InvoiceEvent::InvoiceCanceled { invoice_id, .. } => {
            tx.write(
                "UPDATE revenue_invoices SET status = 'canceled' WHERE invoice_id = ?",
                &[invoice_id.into()],
            )
            .await?;
        }
        InvoiceEvent::InvoiceExpired { invoice_id, .. } => {
            tx.write(
                "UPDATE revenue_invoices SET status = 'expired' WHERE invoice_id = ?",
                &[invoice_id.into()],
            )
            .await?;
        }
        InvoiceEvent::PaymentRecorded { .. }
        | InvoiceEvent::InvoiceOverpaid { .. }
        | InvoiceEvent::MoyasarInvoiceLinked { .. } => {}
    }
    Ok(())
}
