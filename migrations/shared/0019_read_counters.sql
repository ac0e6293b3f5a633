-- Reads that do not grow with history (issue 27), beyond the journal's balances (0016):
-- the audit trail's events per type kept as rows are written (its summary counted every row;
-- filled here from the rows already written); the revenue figures and each month's MRR change
-- kept as the events arrive (the revenue read model is emptied here and refolded from the log
-- by the read models' worker when the service starts: its figures need the events' times);
-- and an index that gives the dashboard's board columns their rows in order instead of
-- sorting a whole stage.
-- Portable SQL: the same text on both engines. Never edit after it ships: add a new migration.

CREATE TABLE audit_event_types (
    event_type  TEXT    PRIMARY KEY,
    events      BIGINT  NOT NULL
);

INSERT INTO audit_event_types (event_type, events)
SELECT event_type, COUNT(*) FROM audit_log GROUP BY event_type;

-- A board column: the leads of one stage, follow-up due soonest first, then the most recently
-- contacted (`crm_board::stage_leads`).
CREATE INDEX crm_board_stage_column ON crm_board
    (stage, COALESCE(next_follow_up_due_us, 9223372036854775807), last_contact_at_us DESC, lead_id);

-- `customers:<plan>` and `mrr:<plan>` (active subscriptions), `pilots_started`,
-- `pilots_converted`.
CREATE TABLE revenue_counters (
    name    TEXT    PRIMARY KEY,
    value   BIGINT  NOT NULL
);

-- How much MRR changed in each Riyadh month (`YYYY-MM`).
CREATE TABLE revenue_mrr_changes (
    month   TEXT    PRIMARY KEY,
    halalas BIGINT  NOT NULL
);

DELETE FROM revenue_customers;
DELETE FROM revenue_invoices;
DELETE FROM projection_checkpoints WHERE name = 'revenue';
