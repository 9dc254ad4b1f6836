-- Version 4: complete a reported command, lock its execution and read the last seq, in one call.
CREATE OR REPLACE FUNCTION noetl.begin_signal(p_execution_id BIGINT, p_command_id BIGINT, p_owner TEXT)
RETURNS TABLE (accepted BOOLEAN, last_seq INTEGER)
LANGUAGE plpgsql AS $$
DECLARE
    n INTEGER := 1;
BEGIN
    IF p_command_id IS NOT NULL THEN
        IF p_owner IS NULL THEN
            DELETE FROM noetl.command WHERE command_id = p_command_id;
        ELSE
            DELETE FROM noetl.command WHERE command_id = p_command_id AND lease_owner = p_owner;
            GET DIAGNOSTICS n = ROW_COUNT;
        END IF;
    END IF;
    IF n = 0 THEN
        RETURN QUERY SELECT false, 0;
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(p_execution_id);
    RETURN QUERY
        SELECT true, coalesce(max(e.seq), 0)::INTEGER FROM noetl.event e WHERE e.execution_id = p_execution_id;
END
$$;
