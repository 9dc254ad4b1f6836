-- Version 3: lock an execution and read its last seq in one round trip.
CREATE OR REPLACE FUNCTION noetl.lock_execution(p_execution_id BIGINT) RETURNS INTEGER
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(p_execution_id);
    RETURN (SELECT coalesce(max(seq), 0) FROM noetl.event WHERE execution_id = p_execution_id);
END
$$;
