-- The machine's reference figure (issue 8): one single-row INSERT of a ~100-byte JSON event
-- into an indexed table per transaction, as an event store's append is at its simplest.
-- Run by bench/run.sh as `pgbench -n -c 8 -j 2 -T 10 -f bench/pg-insert.sql`; run.sh creates
-- the table first:
--   CREATE TABLE pgbench_events (position bigserial PRIMARY KEY, stream_id text NOT NULL,
--     payload jsonb NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now());
--   CREATE INDEX ON pgbench_events (stream_id);
\set stream random(1, 100000)
INSERT INTO pgbench_events (stream_id, payload)
VALUES ('lead-' || :stream,
        '{"event_type":"LeadQualified","lead_id":"lead-00000000","owner":"sales-1","at":"2026-11-27T09:30:00.000000Z"}');
