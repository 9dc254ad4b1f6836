-- playloop PostgreSQL schema for a fresh install (equals every migration applied; a test checks).
CREATE SCHEMA IF NOT EXISTS noetl;

CREATE TABLE IF NOT EXISTS noetl.schema_version (
    version INTEGER NOT NULL PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS noetl.event (
    event_id BIGINT NOT NULL PRIMARY KEY,
    execution_id BIGINT NOT NULL,
    seq INTEGER NOT NULL,
    parent_execution_id BIGINT,
    parent_event_id BIGINT,
    playbook_path TEXT NOT NULL,
    playbook_version TEXT,
    event_type TEXT NOT NULL,
    step_name TEXT,
    status TEXT,
    attempt INTEGER,
    iteration INTEGER,
    duration_ms BIGINT,
    error_type TEXT,
    error_message TEXT,
    context JSONB,
    result JSONB,
    meta JSONB,
    actor TEXT,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS event_execution_seq ON noetl.event (execution_id, seq);
CREATE INDEX IF NOT EXISTS event_playbook_created ON noetl.event (playbook_path, created_at);
CREATE INDEX IF NOT EXISTS event_type_created ON noetl.event (event_type, created_at);

CREATE TABLE IF NOT EXISTS noetl.execution (
    execution_id BIGINT NOT NULL PRIMARY KEY,
    playbook_path TEXT NOT NULL,
    playbook_version TEXT,
    parent_execution_id BIGINT,
    status TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    ended_at TIMESTAMPTZ,
    last_seq INTEGER NOT NULL DEFAULT 0,
    error_message TEXT
);
CREATE INDEX IF NOT EXISTS execution_status ON noetl.execution (status, started_at);
CREATE INDEX IF NOT EXISTS execution_playbook ON noetl.execution (playbook_path, started_at);

CREATE TABLE IF NOT EXISTS noetl.command (
    command_id BIGINT NOT NULL PRIMARY KEY,
    execution_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    step_name TEXT NOT NULL,
    iteration INTEGER,
    attempt INTEGER NOT NULL,
    payload JSONB,
    not_before DOUBLE PRECISION,
    pool TEXT,
    lease_owner TEXT,
    lease_expires_at DOUBLE PRECISION,
    claims INTEGER NOT NULL DEFAULT 0,
    started_event_id BIGINT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS command_key
    ON noetl.command (execution_id, step_name, coalesce(iteration, -1), attempt, kind);
CREATE INDEX IF NOT EXISTS command_ready ON noetl.command (lease_owner, not_before);
CREATE INDEX IF NOT EXISTS command_execution ON noetl.command (execution_id);

CREATE TABLE IF NOT EXISTS noetl.catalog (
    catalog_id BIGINT NOT NULL PRIMARY KEY,
    path TEXT NOT NULL,
    version INTEGER NOT NULL,
    content TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    source_file TEXT,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS catalog_path_version ON noetl.catalog (path, version);
CREATE UNIQUE INDEX IF NOT EXISTS catalog_path_hash ON noetl.catalog (path, content_hash);

CREATE TABLE IF NOT EXISTS noetl.worker (
    worker_id TEXT NOT NULL PRIMARY KEY,
    pool TEXT,
    hostname TEXT NOT NULL,
    pid INTEGER NOT NULL,
    concurrency INTEGER NOT NULL,
    status TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    heartbeat_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE IF NOT EXISTS noetl.outbox (
    event_id BIGINT NOT NULL PRIMARY KEY,
    execution_id BIGINT NOT NULL,
    seq INTEGER NOT NULL,
    subject TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_order ON noetl.outbox (execution_id, seq);

CREATE TABLE IF NOT EXISTS noetl.api_token (
    token_id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ
);
CREATE UNIQUE INDEX IF NOT EXISTS api_token_hash ON noetl.api_token (token_hash);

CREATE OR REPLACE FUNCTION noetl.lock_execution(p_execution_id BIGINT) RETURNS INTEGER
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(p_execution_id);
    RETURN (SELECT coalesce(max(seq), 0) FROM noetl.event WHERE execution_id = p_execution_id);
END
$$;

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

CREATE TABLE IF NOT EXISTS noetl.credential (
    name TEXT NOT NULL PRIMARY KEY,
    kind TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS noetl.decision (
    decision_id TEXT NOT NULL PRIMARY KEY,
    execution_id BIGINT NOT NULL,
    playbook_path TEXT NOT NULL,
    step_name TEXT NOT NULL,
    status TEXT NOT NULL,
    prompt TEXT,
    options TEXT,
    approvers TEXT,
    deadline TEXT,
    requested_at TIMESTAMPTZ NOT NULL,
    decided_at TIMESTAMPTZ,
    action TEXT,
    decided_by TEXT,
    comment TEXT,
    time_to_decide_ms BIGINT
);
CREATE INDEX IF NOT EXISTS decision_status ON noetl.decision (status, requested_at);

CREATE TABLE IF NOT EXISTS noetl.projection (
    name TEXT NOT NULL PRIMARY KEY,
    position BIGINT NOT NULL DEFAULT 0,
    info TEXT,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- ids: each process takes the next node number (engine/events.py)
CREATE SEQUENCE IF NOT EXISTS noetl.node_seq;
