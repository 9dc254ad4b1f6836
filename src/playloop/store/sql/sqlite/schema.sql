-- playloop SQLite schema for a fresh install (equals every migration applied; a test checks).
-- Every table lives in the database attached as `noetl`, so events and commands commit together.
CREATE TABLE IF NOT EXISTS noetl.schema_version (
    version INTEGER NOT NULL PRIMARY KEY,
    applied_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS noetl.event (
    event_id INTEGER NOT NULL PRIMARY KEY,
    execution_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    parent_execution_id INTEGER,
    parent_event_id INTEGER,
    playbook_path TEXT NOT NULL,
    playbook_version TEXT,
    event_type TEXT NOT NULL,
    step_name TEXT,
    status TEXT,
    attempt INTEGER,
    iteration INTEGER,
    duration_ms INTEGER,
    error_type TEXT,
    error_message TEXT,
    context TEXT,
    result TEXT,
    meta TEXT,
    actor TEXT,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS noetl.event_execution_seq ON event (execution_id, seq);
CREATE INDEX IF NOT EXISTS noetl.event_playbook_created ON event (playbook_path, created_at);
CREATE INDEX IF NOT EXISTS noetl.event_type_created ON event (event_type, created_at);

CREATE TABLE IF NOT EXISTS noetl.execution (
    execution_id INTEGER NOT NULL PRIMARY KEY,
    playbook_path TEXT NOT NULL,
    playbook_version TEXT,
    parent_execution_id INTEGER,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    last_seq INTEGER NOT NULL DEFAULT 0,
    error_message TEXT
);
CREATE INDEX IF NOT EXISTS noetl.execution_status ON execution (status, started_at);
CREATE INDEX IF NOT EXISTS noetl.execution_playbook ON execution (playbook_path, started_at);

CREATE TABLE IF NOT EXISTS noetl.command (
    command_id INTEGER NOT NULL PRIMARY KEY,
    execution_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    step_name TEXT NOT NULL,
    iteration INTEGER,
    attempt INTEGER NOT NULL,
    payload TEXT,
    not_before REAL,
    pool TEXT,
    lease_owner TEXT,
    lease_expires_at REAL,
    claims INTEGER NOT NULL DEFAULT 0,
    started_event_id INTEGER,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS noetl.command_key
    ON command (execution_id, step_name, coalesce(iteration, -1), attempt, kind);
CREATE INDEX IF NOT EXISTS noetl.command_ready ON command (lease_owner, not_before);

CREATE TABLE IF NOT EXISTS noetl.catalog (
    catalog_id INTEGER NOT NULL PRIMARY KEY,
    path TEXT NOT NULL,
    version INTEGER NOT NULL,
    content TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    source_file TEXT,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS noetl.catalog_path_version ON catalog (path, version);
CREATE UNIQUE INDEX IF NOT EXISTS noetl.catalog_path_hash ON catalog (path, content_hash);

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

CREATE TABLE IF NOT EXISTS noetl.credential (
    name TEXT NOT NULL PRIMARY KEY,
    kind TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS noetl.decision (
    decision_id TEXT NOT NULL PRIMARY KEY,
    execution_id INTEGER NOT NULL,
    playbook_path TEXT NOT NULL,
    step_name TEXT NOT NULL,
    status TEXT NOT NULL,
    prompt TEXT,
    options TEXT,
    approvers TEXT,
    deadline TEXT,
    requested_at TEXT NOT NULL,
    decided_at TEXT,
    action TEXT,
    decided_by TEXT,
    comment TEXT,
    time_to_decide_ms INTEGER
);
CREATE INDEX IF NOT EXISTS noetl.decision_status ON decision (status, requested_at);

CREATE TABLE IF NOT EXISTS noetl.projection (
    name TEXT NOT NULL PRIMARY KEY,
    position INTEGER NOT NULL DEFAULT 0,
    info TEXT,
    updated_at TEXT NOT NULL
);

-- ids: each process takes the next node number (engine/events.py)
CREATE TABLE IF NOT EXISTS noetl.node_counter (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
);
INSERT OR IGNORE INTO noetl.node_counter (id, n) VALUES (1, 0);
