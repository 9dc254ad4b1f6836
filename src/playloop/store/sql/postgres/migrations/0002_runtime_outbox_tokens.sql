-- Version 2: workers, the NATS outbox and API tokens.
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
