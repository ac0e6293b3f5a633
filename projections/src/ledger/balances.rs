//! The journal's balances, kept as its lines are written (issue 27): each account's debit and
//! credit totals, each account's totals per Riyadh day, and the journal's counters (entries,
//! grand debits and credits, entries that do not balance). A read of the trial balance reads
//! accounts, never lines, so it costs the same on the first day and after five years.
//!
//! Every total is a sum of positive deltas, upserted once per key per batch in the batch's
//! transaction; a row exists once its first line is posted, so a rebuild writes exactly the
//! rows the live fold wrote. [`verify`] derives everything again from the lines, for
//! `revledger verify --ledger` and for the tests.

use std::collections::BTreeMap;

use adapters::sql::{SqlDb, SqlTx, SqlValue};
use serde_json::{json, Value};

use super::{accounts, JournalEntry};
use crate::{micros, ProjectionError};

/// Counter names in `ledger_counters`.
pub mod counters {
    pub const ENTRIES: &str = "entries";
    pub const UNBALANCED_ENTRIES: &str = "unbalanced_entries";
    pub const DEBIT: &str = "debit_halalas";
    pub const CREDIT: &str = "credit_halalas";
}

/// Riyadh is UTC+3 all year.
const RIYADH_OFFSET_US: i64 = 3 * 3_600 * 1_000_000;
const DAY_US: i64 = 86_400 * 1_000_000;

/// Accounts a trial balance lists at most per page.
pub const MAX_TRIAL_BALANCE_ACCOUNTS: i64 = 10_000;

/// The Riyadh calendar day of a business time, as days since 1970-01-01 (the `day` column).
pub fn riyadh_day(occurred_at_us: i64) -> i64 {
    (occurred_at_us + RIYADH_OFFSET_US).div_euclid(DAY_US)
}

/// A `day` column as its date, `YYYY-MM-DD`.
pub fn day_date(day: i64) -> String {
    let date = time::Date::from_julian_day(
        time::macros::date!(1970 - 01 - 01).to_julian_day() + day as i32,
    )
    .unwrap_or(time::Date::MIN);
    date.to_string()
}

/// Debits, credits and lines added to one total.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sums {
    pub debit_halalas: i64,
    pub credit_halalas: i64,
    pub lines: i64,
}

impl Sums {
    fn add(&mut self, debit: i64, credit: i64) {
        self.debit_halalas += debit;
        self.credit_halalas += credit;
        self.lines += 1;
    }
}

/// What a batch's entries add to the totals, folded in memory and written once per key.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub accounts: BTreeMap<String, Sums>,
    pub days: BTreeMap<(String, i64), Sums>,
    pub counters: BTreeMap<&'static str, i64>,
    /// Collections per Riyadh day: what the gateway took less what it handed back.
    pub collections: BTreeMap<i64, i64>,
}

/// How much of a line is a collection (positive: taken, negative: handed back): the capture
/// entry's `gateway_clearing` line (entry 0 of a payment event) and a gateway refund's `cash`
/// line, debit minus credit. The monthly collections chart reads their sums per day.
pub fn collected(event_type: &str, entry_index: u32, line: &super::JournalLine) -> Option<i64> {
    let counts = (line.account == accounts::GATEWAY_CLEARING && entry_index == 0)
        || (line.account == accounts::CASH && event_type == "PaymentRefunded");
    counts.then(|| line.debit_halalas - line.credit_halalas)
}

impl Totals {
    /// Adds an entry posted for an event of `event_type`.
    pub fn add(&mut self, event_type: &str, entry: &JournalEntry) {
        let day = riyadh_day(micros(entry.occurred_at));
        for line in &entry.lines {
            if let Some(halalas) = collected(event_type, entry.index, line) {
                *self.collections.entry(day).or_default() += halalas;
            }
            self.accounts
                .entry(line.account.clone())
                .or_default()
                .add(line.debit_halalas, line.credit_halalas);
            self.days
                .entry((line.account.clone(), day))
                .or_default()
                .add(line.debit_halalas, line.credit_halalas);
        }
        let unbalanced = entry.debit_halalas() != entry.credit_halalas();
        for (name, delta) in [
            (counters::ENTRIES, 1),
            (counters::UNBALANCED_ENTRIES, i64::from(unbalanced)),
            (
                counters::DEBIT,
                entry.lines.iter().map(|l| l.debit_halalas).sum(),
            ),
            (
                counters::CREDIT,
                entry.lines.iter().map(|l| l.credit_halalas).sum(),
            ),
        ] {
            *self.counters.entry(name).or_default() += delta;
        }
    }

    /// Adds the batch's totals to the tables: one upsert per account, per account and day, and
    /// per counter that moved (a counter's row exists once it is above zero).
    pub async fn write(self, tx: &mut SqlTx) -> Result<(), ProjectionError> {
        for (account, sums) in self.accounts {
            tx.write(
                "INSERT INTO ledger_accounts (account, debit_halalas, credit_halalas, lines) \
                 VALUES (?, ?, ?, ?) ON CONFLICT (account) DO UPDATE SET \
                 debit_halalas = ledger_accounts.debit_halalas + excluded.debit_halalas, \
                 credit_halalas = ledger_accounts.credit_halalas + excluded.credit_halalas, \
                 lines = ledger_accounts.lines + excluded.lines",
                &[
                    account.into(),
                    sums.debit_halalas.into(),
                    sums.credit_halalas.into(),
                    sums.lines.into(),
                ],
            )
            .await?;
        }
        for ((account, day), sums) in self.days {
            tx.write(
                "INSERT INTO ledger_account_days (account, day, debit_halalas, credit_halalas, lines) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT (account, day) DO UPDATE SET \
                 debit_halalas = ledger_account_days.debit_halalas + excluded.debit_halalas, \
                 credit_halalas = ledger_account_days.credit_halalas + excluded.credit_halalas, \
                 lines = ledger_account_days.lines + excluded.lines",
                &[
                    account.into(),
                    day.into(),
                    sums.debit_halalas.into(),
                    sums.credit_halalas.into(),
                    sums.lines.into(),
                ],
            )
            .await?;
        }
        for (day, halalas) in self.collections {
            if halalas == 0 {
                continue;
            }
            tx.write(
                "INSERT INTO ledger_collection_days (day, halalas) VALUES (?, ?) ON CONFLICT (day) \
                 DO UPDATE SET halalas = ledger_collection_days.halalas + excluded.halalas",
                &[day.into(), halalas.into()],
            )
            .await?;
        }
        for (name, delta) in self.counters {
            if delta == 0 {
                continue;
            }
            tx.write(
                "INSERT INTO ledger_counters (name, value) VALUES (?, ?) ON CONFLICT (name) \
                 DO UPDATE SET value = ledger_counters.value + excluded.value",
                &[name.into(), delta.into()],
            )
            .await?;
        }
        Ok(())
    }
}

/// The journal's counters (0 for one never moved).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub entries: i64,
    pub unbalanced_entries: i64,
    pub debit_halalas: i64,
    pub credit_halalas: i64,
}

pub async fn read_counters(db: &SqlDb) -> Result<Counters, ProjectionError> {
    let mut read = Counters::default();
    for row in db
        .fetch_all("SELECT name, value FROM ledger_counters", &[])
        .await?
    {
        let value = row.i64(1)?;
        match row.text(0)?.as_str() {
            counters::ENTRIES => read.entries = value,
            counters::UNBALANCED_ENTRIES => read.unbalanced_entries = value,
            counters::DEBIT => read.debit_halalas = value,
            counters::CREDIT => read.credit_halalas = value,
            _ => {}
        }
    }
    Ok(read)
}

/// One account's totals, if anything was ever posted to it.
pub async fn account_sums(db: &SqlDb, account: &str) -> Result<Option<Sums>, ProjectionError> {
    let row = db
        .fetch_optional(
            "SELECT debit_halalas, credit_halalas, lines FROM ledger_accounts WHERE account = ?",
            &[account.into()],
        )
        .await?;
    Ok(match row {
        Some(row) => Some(Sums {
            debit_halalas: row.i64(0)?,
            credit_halalas: row.i64(1)?,
            lines: row.i64(2)?,
        }),
        None => None,
    })
}

/// The trial balance: accounts in name order after `after`, at most `limit` of them (clamped
/// to [`MAX_TRIAL_BALANCE_ACCOUNTS`]; `None` lists every account), each with its totals and
/// balance (debit minus credit: positive for a debit balance); the journal's grand totals
/// and whether it balances (grand debits equal grand credits and no single entry is off);
/// `next_cursor` names the last account listed when more follow.
pub async fn trial_balance(
    db: &SqlDb,
    after: Option<&str>,
    limit: Option<i64>,
) -> Result<Value, ProjectionError> {
    let limit = limit.map(|limit| limit.clamp(1, MAX_TRIAL_BALANCE_ACCOUNTS));
    let mut sql = String::from(
        "SELECT account, debit_halalas, credit_halalas FROM ledger_accounts WHERE account > ? \
         ORDER BY account",
    );
    let mut params: Vec<SqlValue> = vec![after.unwrap_or("").into()];
    if let Some(limit) = limit {
        // One more than asked, to know whether another page follows.
        sql.push_str(" LIMIT ?");
        params.push((limit + 1).into());
    }
    let mut rows = db.fetch_all(&sql, &params).await?;
    let more = limit.is_some_and(|limit| rows.len() as i64 > limit);
    if more {
        rows.pop();
    }
    let mut listed = Vec::with_capacity(rows.len());
    for row in rows {
        let (account, debit, credit) = (row.text(0)?, row.i64(1)?, row.i64(2)?);
        listed.push(json!({
            "account": account,
            "kind": accounts::kind(&account),
            "debit_halalas": debit,
            "credit_halalas": credit,
            "balance_halalas": debit.saturating_sub(credit),
        }));
    }
    let next_cursor = more
        .then(|| listed.last().map(|row| row["account"].clone()))
        .flatten();
    let counters = read_counters(db).await?;
    Ok(json!({
        "currency": "SAR",
        "entries": counters.entries,
        "accounts": listed,
        "next_cursor": next_cursor,
        "total_debit_halalas": counters.debit_halalas,
        "total_credit_halalas": counters.credit_halalas,
        "unbalanced_entries": counters.unbalanced_entries,
        "balanced": counters.debit_halalas == counters.credit_halalas
            && counters.unbalanced_entries == 0,
    }))
}

/// One way a kept total differs from the lines it sums.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Difference {
    /// `account`, `account_day`, `collection_day` or `counter`.
    pub table: &'static str,
    /// The account (and day), or the counter's name.
    pub key: String,
    /// What the lines say, and what the table keeps (debit, credit, lines; a counter's value
    /// in the first place).
    pub from_lines: [i64; 3],
    pub kept: [i64; 3],
}

/// Derives every kept total again from `ledger_lines` and `ledger_entries` and names each
/// that differs (empty: the balances are exactly the lines' sums). The auditor's check behind
/// `revledger verify --ledger`; reads every line, as the trial balance no longer does.
pub async fn verify(db: &SqlDb) -> Result<Vec<Difference>, ProjectionError> {
    let mut differences = Vec::new();
    let triple = |row: &adapters::sql::SqlRow, at: usize| -> Result<[i64; 3], ProjectionError> {
        Ok([row.i64(at)?, row.i64(at + 1)?, row.i64(at + 2)?])
    };
    let mut from_lines = BTreeMap::new();
    for row in db
        .fetch_all(
            "SELECT account, CAST(SUM(debit_halalas) AS BIGINT), CAST(SUM(credit_halalas) AS BIGINT), \
             COUNT(*) FROM ledger_lines GROUP BY account",
            &[],
        )
        .await?
    {
        from_lines.insert(row.text(0)?, triple(&row, 1)?);
    }
    let mut kept = BTreeMap::new();
    for row in db
        .fetch_all(
            "SELECT account, debit_halalas, credit_halalas, lines FROM ledger_accounts",
            &[],
        )
        .await?
    {
        kept.insert(row.text(0)?, triple(&row, 1)?);
    }
    compare("account", from_lines, kept, &mut differences);

    let mut from_lines = BTreeMap::new();
    for row in db
        .fetch_all(
            "SELECT l.account, e.occurred_at_us, l.debit_halalas, l.credit_halalas \
             FROM ledger_lines l JOIN ledger_entries e ON e.entry_id = l.entry_id",
            &[],
        )
        .await?
    {
        let key = format!("{} {}", row.text(0)?, day_date(riyadh_day(row.i64(1)?)));
        let sums: &mut [i64; 3] = from_lines.entry(key).or_default();
        sums[0] += row.i64(2)?;
        sums[1] += row.i64(3)?;
        sums[2] += 1;
    }
    let mut kept = BTreeMap::new();
    for row in db
        .fetch_all(
            "SELECT account, day, debit_halalas, credit_halalas, lines FROM ledger_account_days",
            &[],
        )
        .await?
    {
        let key = format!("{} {}", row.text(0)?, day_date(row.i64(1)?));
        kept.insert(key, triple(&row, 2)?);
    }
    compare("account_day", from_lines, kept, &mut differences);

    let mut from_lines: BTreeMap<String, [i64; 3]> = BTreeMap::new();
    for row in db
        .fetch_all(
            "SELECT e.event_type, e.entry_index, e.occurred_at_us, l.account, l.debit_halalas, \
             l.credit_halalas FROM ledger_lines l JOIN ledger_entries e ON e.entry_id = l.entry_id \
             WHERE l.account IN ('gateway_clearing', 'cash')",
            &[],
        )
        .await?
    {
        let line = super::JournalLine {
            account: row.text(3)?,
            debit_halalas: row.i64(4)?,
            credit_halalas: row.i64(5)?,
        };
        let index = u32::try_from(row.i64(1)?).unwrap_or(u32::MAX);
        if let Some(halalas) = collected(&row.text(0)?, index, &line) {
            from_lines
                .entry(day_date(riyadh_day(row.i64(2)?)))
                .or_default()[0] += halalas;
        }
    }
    from_lines.retain(|_, sums| sums[0] != 0);
    let mut kept = BTreeMap::new();
    for row in db
        .fetch_all("SELECT day, halalas FROM ledger_collection_days", &[])
        .await?
    {
        kept.insert(day_date(row.i64(0)?), [row.i64(1)?, 0, 0]);
    }
    kept.retain(|_, sums| sums[0] != 0);
    compare("collection_day", from_lines, kept, &mut differences);

    let count = |sql: &'static str| async move {
        Ok::<i64, ProjectionError>(match db.fetch_optional(sql, &[]).await? {
            Some(row) => row.opt_i64(0)?.unwrap_or(0),
            None => 0,
        })
    };
    let derived = Counters {
        entries: count("SELECT COUNT(*) FROM ledger_entries").await?,
        unbalanced_entries: count(
            "SELECT COUNT(*) FROM (SELECT entry_id FROM ledger_lines GROUP BY entry_id \
             HAVING SUM(debit_halalas) <> SUM(credit_halalas)) AS unbalanced",
        )
        .await?,
        debit_halalas: count("SELECT CAST(SUM(debit_halalas) AS BIGINT) FROM ledger_lines").await?,
        credit_halalas: count("SELECT CAST(SUM(credit_halalas) AS BIGINT) FROM ledger_lines")
            .await?,
    };
    let stored = read_counters(db).await?;
    for (name, derived, stored) in [
        (counters::ENTRIES, derived.entries, stored.entries),
        (
            counters::UNBALANCED_ENTRIES,
            derived.unbalanced_entries,
            stored.unbalanced_entries,
        ),
        (counters::DEBIT, derived.debit_halalas, stored.debit_halalas),
        (
            counters::CREDIT,
            derived.credit_halalas,
            stored.credit_halalas,
        ),
    ] {
        if derived != stored {
            differences.push(Difference {
                table: "counter",
                key: name.to_owned(),
                from_lines: [derived, 0, 0],
                kept: [stored, 0, 0],
            });
        }
    }
    Ok(differences)
}

fn compare(
    table: &'static str,
    mut from_lines: BTreeMap<String, [i64; 3]>,
    kept: BTreeMap<String, [i64; 3]>,
    differences: &mut Vec<Difference>,
) {
    for (key, kept) in kept {
        let derived = from_lines.remove(&key).unwrap_or_default();
        if derived != kept {
            differences.push(Difference {
                table,
                key,
                from_lines: derived,
                kept,
            });
        }
    }
    differences.extend(from_lines.into_iter().map(|(key, derived)| Difference {
        table,
        key,
        from_lines: derived,
        kept: [0; 3],
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_riyadh_day_begins_at_21_00_utc_the_evening_before() {
        // 2026-12-06 20:59:59.999999 UTC is 23:59:59.999999 in Riyadh.
        let evening = 1_796_590_799_999_999;
        assert_eq!(day_date(riyadh_day(evening)), "2026-12-06");
        assert_eq!(day_date(riyadh_day(evening + 1)), "2026-12-07");
        assert_eq!(day_date(0), "1970-01-01");
        assert_eq!(riyadh_day(0), 0);
    }
}
