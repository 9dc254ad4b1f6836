-- Version 2: workers, the NATS outbox and API tokens.
CREATE TABLE IF NOT EXISTS noetl.worker (
    worker_id TEXT NOT NULL PRIMARY KEY,
    pool TEXT,
    hostname TEXT NOT NULL,
    pid INTEGER NOT NULL,
    concurrency INTEGER NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    heartbeat_at REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS noetl.outbox (
    event_id INTEGER NOT NULL PRIMARY KEY,
    execution_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    subject TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS noetl.outbox_order ON outbox (execution_id, seq);

CREATE TABLE IF NOT EXISTS noetl.api_token (
    token_id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS noetl.api_token_hash ON api_token (token_hash);
