-- Version 7: a projection of decision events, for listing pending decisions across executions.
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
