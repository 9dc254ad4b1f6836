-- Version 10: each process that opens the store takes the next node number for the ids
-- it makes (engine/events.py), so two processes never share one and never make the same
-- event or command id in the same millisecond.
CREATE SEQUENCE IF NOT EXISTS noetl.node_seq;
