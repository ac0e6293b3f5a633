-- The journal's balances kept as lines are written, so no read sums every line ever posted
-- (issue 27): each account's totals, each account's totals per Riyadh day, and the journal's
-- counters (entries, grand debits and credits, entries whose debits and credits differ: must
-- stay 0). Written by the ledger projection in the same transaction as the lines;
-- `revledger verify --ledger` derives them again from the lines. Filled here from the lines
-- already posted, so a store migrated from an earlier version reads the same without a rebuild.
-- Portable SQL: the same text on both engines. Never edit after it ships: add a new migration.

CREATE TABLE ledger_accounts (
    account         TEXT    PRIMARY KEY,
    debit_halalas   BIGINT  NOT NULL,
    credit_halalas  BIGINT  NOT NULL,
    lines           BIGINT  NOT NULL
);

-- `day`: the Riyadh calendar day of the entry's business time, as days since 1970-01-01
-- (Riyadh is UTC+3 all year: (occurred_at_us + 3 h) / 1 day, in integer division).
CREATE TABLE ledger_account_days (
    account         TEXT    NOT NULL,
    day             BIGINT  NOT NULL,
    debit_halalas   BIGINT  NOT NULL,
    credit_halalas  BIGINT  NOT NULL,
    lines           BIGINT  NOT NULL,
    PRIMARY KEY (account, day)
);

-- Collections per Riyadh day (what the gateway took less what it handed back: the capture
-- entries' gateway_clearing lines and the gateway refunds' cash lines), for the monthly chart.
CREATE TABLE ledger_collection_days (
    day     BIGINT  PRIMARY KEY,
    halalas BIGINT  NOT NULL
);

CREATE TABLE ledger_counters (
    name    TEXT    PRIMARY KEY,
    value   BIGINT  NOT NULL
);

-- An account's lines newest first, without sorting every line of a busy account (`cash`).
ALTER TABLE ledger_lines ADD COLUMN position BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ledger_lines ADD COLUMN entry_index BIGINT NOT NULL DEFAULT 0;
UPDATE ledger_lines SET
    position = (SELECT e.position FROM ledger_entries e WHERE e.entry_id = ledger_lines.entry_id),
    entry_index = (SELECT e.entry_index FROM ledger_entries e WHERE e.entry_id = ledger_lines.entry_id);
CREATE INDEX ledger_lines_account_position ON ledger_lines (account, position, entry_index, line_no);

INSERT INTO ledger_accounts (account, debit_halalas, credit_halalas, lines)
SELECT account, CAST(SUM(debit_halalas) AS BIGINT), CAST(SUM(credit_halalas) AS BIGINT), COUNT(*)
FROM ledger_lines GROUP BY account;

INSERT INTO ledger_account_days (account, day, debit_halalas, credit_halalas, lines)
SELECT l.account, (e.occurred_at_us + 10800000000) / 86400000000,
       CAST(SUM(l.debit_halalas) AS BIGINT), CAST(SUM(l.credit_halalas) AS BIGINT), COUNT(*)
FROM ledger_lines l JOIN ledger_entries e ON e.entry_id = l.entry_id
GROUP BY l.account, (e.occurred_at_us + 10800000000) / 86400000000;

-- A counter's row exists once it is above zero (as the projection writes them).
INSERT INTO ledger_counters (name, value)
SELECT 'entries', COUNT(*) FROM ledger_entries HAVING COUNT(*) > 0;

INSERT INTO ledger_counters (name, value)
SELECT 'debit_halalas', CAST(SUM(debit_halalas) AS BIGINT) FROM ledger_lines
HAVING SUM(debit_halalas) > 0;

INSERT INTO ledger_counters (name, value)
SELECT 'credit_halalas', CAST(SUM(credit_halalas) AS BIGINT) FROM ledger_lines
HAVING SUM(credit_halalas) > 0;

INSERT INTO ledger_counters (name, value)
SELECT 'unbalanced_entries', COUNT(*) FROM (
    SELECT entry_id FROM ledger_lines GROUP BY entry_id
    HAVING SUM(debit_halalas) <> SUM(credit_halalas)
) AS unbalanced
HAVING COUNT(*) > 0;

INSERT INTO ledger_collection_days (day, halalas)
SELECT (e.occurred_at_us + 10800000000) / 86400000000, CAST(SUM(l.debit_halalas - l.credit_halalas) AS BIGINT)
FROM ledger_lines l JOIN ledger_entries e ON e.entry_id = l.entry_id
WHERE (l.account = 'gateway_clearing' AND e.entry_index = 0)
   OR (l.account = 'cash' AND e.event_type = 'PaymentRefunded')
GROUP BY (e.occurred_at_us + 10800000000) / 86400000000;
