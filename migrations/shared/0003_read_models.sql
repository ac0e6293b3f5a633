-- Read models: funnel, CRM board, revenue. Portable SQL: the same text on both engines.
-- Never edit after it ships: add a new migration.

CREATE TABLE funnel_leads (
    lead_id              TEXT    PRIMARY KEY,
    source               TEXT    NOT NULL,
    partner_id           TEXT,
    capture_week         TEXT    NOT NULL,
    captured_at_us       BIGINT  NOT NULL,
    stage                TEXT    NOT NULL,
    stage_entered_at_us  BIGINT  NOT NULL,
    -- The furthest funnel stage ever reached (0 new … 6 active), kept through archive.
    furthest_rank        BIGINT  NOT NULL
);
CREATE INDEX funnel_leads_stage ON funnel_leads (stage);

-- Every stay of a lead in a stage; left_at_us is NULL for the current one.
CREATE TABLE funnel_stage_visits (
    lead_id         TEXT    NOT NULL,
    visit           BIGINT  NOT NULL,
    stage           TEXT    NOT NULL,
    entered_at_us   BIGINT  NOT NULL,
    left_at_us      BIGINT,
    PRIMARY KEY (lead_id, visit)
);
CREATE INDEX funnel_stage_visits_stage ON funnel_stage_visits (stage);

CREATE TABLE crm_board (
    lead_id                     TEXT    PRIMARY KEY,
    name                        TEXT    NOT NULL,
    company                     TEXT,
    email                       TEXT,
    phone                       TEXT,
    source                      TEXT    NOT NULL,
    partner_id                  TEXT,
    owner                       TEXT,
    stage                       TEXT    NOT NULL,
    captured_at_us              BIGINT  NOT NULL,
    last_contact_at_us          BIGINT  NOT NULL,
    silence_started_at_us       BIGINT  NOT NULL,
    follow_ups_since_response   BIGINT  NOT NULL,
    next_follow_up_due_us       BIGINT,
    archived_reason             TEXT,
    updated_at_us               BIGINT  NOT NULL
);
CREATE INDEX crm_board_stage ON crm_board (stage, lead_id);
CREATE INDEX crm_board_follow_up ON crm_board (next_follow_up_due_us);
CREATE INDEX crm_board_email ON crm_board (email);

CREATE TABLE revenue_invoices (
    invoice_id          TEXT    PRIMARY KEY,
    lead_id             TEXT    NOT NULL,
    plan                TEXT,
    subtotal_halalas    BIGINT  NOT NULL,
    total_halalas       BIGINT  NOT NULL,
    status              TEXT    NOT NULL,
    refunded_halalas    BIGINT  NOT NULL
);

CREATE TABLE revenue_customers (
    lead_id                 TEXT    PRIMARY KEY,
    plan                    TEXT    NOT NULL,
    invoice_id              TEXT    NOT NULL,
    monthly_halalas         BIGINT  NOT NULL,
    active                  BOOLEAN NOT NULL,
    started_on_pilot        BOOLEAN NOT NULL,
    converted_from_pilot    BOOLEAN NOT NULL,
    since_us                BIGINT  NOT NULL
);
