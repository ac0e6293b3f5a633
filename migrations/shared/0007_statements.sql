-- Partner statements: one line per commission movement, traceable to its event.
-- Portable SQL: the same text on both engines. Never edit after it ships.

CREATE TABLE statement_lines (
    event_id        TEXT    PRIMARY KEY,
    partner_id      TEXT    NOT NULL,
    -- YYYY-MM of when it happened (UTC)
    month           TEXT    NOT NULL,
    position        BIGINT  NOT NULL,
    commission_id   TEXT    NOT NULL,
    -- accrued | rejected | adjusted | clawed_back | paid_out
    kind            TEXT    NOT NULL,
    -- the effect on what we owe the partner: positive owes more, negative owes less
    amount_halalas  BIGINT  NOT NULL,
    occurred_at_us  BIGINT  NOT NULL,
    reference       TEXT
);
CREATE INDEX statement_lines_partner_month ON statement_lines (partner_id, month, occurred_at_us);

-- Each commission's standing, for payouts and reconciliation.
CREATE TABLE partner_commissions (
    commission_id       TEXT    PRIMARY KEY,
    partner_id          TEXT    NOT NULL,
    invoice_id          TEXT    NOT NULL,
    lead_id             TEXT    NOT NULL,
    status              TEXT    NOT NULL,
    accrued_halalas     BIGINT  NOT NULL,
    net_halalas         BIGINT  NOT NULL,
    held_until_us       BIGINT  NOT NULL,
    payout_id           TEXT,
    -- clawed back after its payout and not yet carried into a later payout
    carried_halalas     BIGINT  NOT NULL
);
CREATE INDEX partner_commissions_partner ON partner_commissions (partner_id, status);

-- The commissions process manager's memory: referrals, leads and which commission an
-- invoice earned.
CREATE TABLE pm_referrals (
    partner_id      TEXT    NOT NULL,
    lead_email      TEXT    NOT NULL,
    clicked_at_us   BIGINT  NOT NULL,
    PRIMARY KEY (partner_id, lead_email, clicked_at_us)
);
CREATE INDEX pm_referrals_email ON pm_referrals (lead_email);

CREATE TABLE pm_leads (
    lead_id         TEXT    PRIMARY KEY,
    email           TEXT,
    captured_at_us  BIGINT  NOT NULL,
    partner_id      TEXT
);

CREATE TABLE pm_commissions (
    invoice_id      TEXT    PRIMARY KEY,
    commission_id   TEXT    NOT NULL,
    partner_id      TEXT    NOT NULL
);
