-- Version 5: an optimistic report check, run in the same round trip as the report's writes.
-- Raises PL001 when the command is no longer ours, PL002 when another process appended.
CREATE OR REPLACE FUNCTION noetl.expect_signal(
    p_execution_id BIGINT, p_command_id BIGINT, p_owner TEXT, p_last_seq INTEGER
) RETURNS INTEGER
LANGUAGE plpgsql AS $$
DECLARE
    n INTEGER := 1;
    stored INTEGER;
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
        RAISE EXCEPTION 'playloop: command % is no longer leased to %', p_command_id, p_owner
            USING ERRCODE = 'PL001';
    END IF;
    PERFORM pg_advisory_xact_lock(p_execution_id);
    SELECT coalesce(max(seq), 0) INTO stored FROM noetl.event WHERE execution_id = p_execution_id;
    IF stored <> p_last_seq THEN
        RAISE EXCEPTION 'playloop: execution % moved on to seq % (expected %)', p_execution_id, stored, p_last_seq
            USING ERRCODE = 'PL002';
    END IF;
    RETURN stored;
END
$$;
