-- The audit trail filtered by stream id or stream type, newest first, a page at a time:
-- each filter reads its own index in `seq` order and stops at the page's end (issue 27).
-- The older `audit_log_stream (stream_id, version)` left the planner a choice that, on
-- PostgreSQL, walked the whole trail backwards looking for a short stream's rows.
-- Portable SQL: the same text on both engines. Never edit after it ships: add a new migration.

CREATE INDEX audit_log_stream_seq ON audit_log (stream_id, seq);
CREATE INDEX audit_log_stream_type_seq ON audit_log (stream_type, seq);
