-- A read-model transaction's deferred writes, sent in one round trip with every value bound
-- (adapters/src/sql/postgres.rs): `statements` are the batch's distinct statements, `steps`
-- the number (from 1) of the statement each write runs, in order, and `step_values` a JSON
-- array with each step's values, which its statement reads as `$1`. The steps run one after
-- another in the caller's transaction, so each sees the writes before it; the first that
-- fails raises its own error (and SQLSTATE), which aborts the transaction.
CREATE FUNCTION revledger_write_batch(statements text[], steps int[], step_values jsonb)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    FOR step IN 1 .. cardinality(steps) LOOP
        EXECUTE statements[steps[step]] USING step_values -> (step - 1);
    END LOOP;
END
$$;
