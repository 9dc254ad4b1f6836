-- Version 8: checkpoints of projections of the event log (the learning layer's vector index):
-- one row per projection, its position (the last event or catalog id it has read).
CREATE TABLE IF NOT EXISTS noetl.projection (
    name TEXT NOT NULL PRIMARY KEY,
    position BIGINT NOT NULL DEFAULT 0,
    info TEXT,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
