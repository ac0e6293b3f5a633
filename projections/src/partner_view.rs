//! One partner's own view of the partner statements read model (`statement_lines`,
//! `partner_commissions`), typed, for the dashboard's partner page: the months it has lines
//! in, one month's lines with its opening balance, and its commissions. Every query takes the
//! partner id and reads nothing of any other partner.

use adapters::sql::SqlDb;

use crate::statements::CommissionStanding;
use crate::ProjectionError;

/// A month with lines on a partner's statement.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StatementMonth {
    /// `YYYY-MM`.
    pub month: String,
    pub lines: i64,
    /// The sum of the month's lines (what the month changed the balance by).
    pub net_halalas: i64,
}

/// One line of a partner's statement.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StatementLine {
    /// `accrued`, `rejected`, `adjusted`, `clawed_back`, `paid_out` or `carried`.
    pub kind: String,
    /// Signed: what the line adds to the balance owed to the partner.
    pub amount_halalas: i64,
    pub commission_id: String,
    pub occurred_at_us: i64,
    pub reference: Option<String>,
}

/// The months of `partner_id`'s statement, the latest first, `limit` at most.
pub async fn months(
    db: &SqlDb,
    partner_id: &str,
    limit: i64,
) -> Result<Vec<StatementMonth>, ProjectionError> {
    let rows = db
        .fetch_all(
            "SELECT month, lines, halalas FROM statement_months \
             WHERE partner_id = ? ORDER BY month DESC LIMIT ?",
            &[partner_id.into(), limit.clamp(1, 600).into()],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(StatementMonth {
                month: row.text(0)?,
                lines: row.i64(1)?,
                net_halalas: row.i64(2)?,
            })
        })
        .collect()
}

/// The balance owed to `partner_id` before `month` began.
pub async fn opening_balance(
    db: &SqlDb,
    partner_id: &str,
    month: &str,
) -> Result<i64, ProjectionError> {
    Ok(db
        .fetch_optional(
            "SELECT CAST(COALESCE(SUM(halalas), 0) AS BIGINT) FROM statement_months \
             WHERE partner_id = ? AND month < ?",
            &[partner_id.into(), month.into()],
        )
        .await?
        .map_or(Ok(0), |row| row.i64(0))?)
}

/// `partner_id`'s lines in `month`, in the order they happened, `limit` at most.
pub async fn lines(
    db: &SqlDb,
    partner_id: &str,
    month: &str,
    limit: i64,
) -> Result<Vec<StatementLine>, ProjectionError> {
    let rows = db
        .fetch_all(
            "SELECT kind, amount_halalas, commission_id, occurred_at_us, reference FROM statement_lines \
             WHERE partner_id = ? AND month = ? ORDER BY occurred_at_us, position LIMIT ?",
            &[partner_id.into(), month.into(), limit.clamp(1, 10_000).into()],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(StatementLine {
                kind: row.text(0)?,
                amount_halalas: row.i64(1)?,
                commission_id: row.text(2)?,
                occurred_at_us: row.i64(3)?,
                reference: row.opt_text(4)?,
            })
        })
        .collect()
}

/// `partner_id`'s commissions, held until latest first, `limit` at most.
pub async fn commissions(
    db: &SqlDb,
    partner_id: &str,
    limit: i64,
) -> Result<Vec<CommissionStanding>, ProjectionError> {
    crate::statements::commissions_standing(db, Some(partner_id), limit).await
}
