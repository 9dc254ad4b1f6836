-- Version 9: begin the reports of one batch together. Completes the commands still leased
-- to p_owner and locks every execution the batch touches, in ascending order (two
-- processes locking overlapping sets cannot deadlock), in one call; returns the ids of
-- the commands it completed. The batch reads those executions' new events in the same
-- round trip (the events_since query), so a contended execution is locked for one round
-- trip plus the decisions, not two round trips per report.
CREATE OR REPLACE FUNCTION noetl.begin_signals(
    p_execution_ids BIGINT[], p_command_ids BIGINT[], p_owner TEXT
) RETURNS BIGINT[]
LANGUAGE plpgsql AS $$
DECLARE
    accepted BIGINT[];
    x BIGINT;
BEGIN
    WITH done AS (
        DELETE FROM noetl.command
        WHERE command_id = ANY(p_command_ids) AND lease_owner = p_owner
        RETURNING command_id
    )
    SELECT coalesce(array_agg(command_id), '{}') INTO accepted FROM done;
    FOREACH x IN ARRAY (
        SELECT coalesce(array_agg(DISTINCT y ORDER BY y), '{}') FROM unnest(p_execution_ids) AS y
    )
    LOOP
        PERFORM pg_advisory_xact_lock(x);
    END LOOP;
    RETURN accepted;
END
$$;
