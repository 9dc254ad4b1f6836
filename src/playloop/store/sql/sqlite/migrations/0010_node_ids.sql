-- Version 10: each process that opens the store takes the next node number for the ids
-- it makes (engine/events.py), so two processes never share one and never make the same
-- event or command id in the same millisecond.
CREATE TABLE IF NOT EXISTS noetl.node_counter (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
);
INSERT OR IGNORE INTO noetl.node_counter (id, n) VALUES (1, 0);
