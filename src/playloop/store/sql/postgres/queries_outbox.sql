-- The NATS outbox (playloop.export.outbox). One publisher at a time reads a batch, publishes
-- it and deletes what JetStream acknowledged. A batch must hold, for every execution in it,
-- a run of that execution's waiting rows from its lowest seq up with no gap, in seq order.

-- name: outbox_batch
-- The oldest rows by event_id (time order), cut so that each execution keeps only the seqs
-- below its first row left out of the batch: event ids follow seq nearly always, but two
-- processes in one millisecond can number an execution's seq n+1 below its seq n. `fence`
-- finds, per execution, its lowest seq outside the batch (one index probe each), so the
-- query costs the batch, never the whole backlog.
WITH head AS MATERIALIZED (
    SELECT event_id, execution_id, seq, subject, payload
    FROM noetl.outbox ORDER BY event_id LIMIT %s
),
fence AS MATERIALIZED (
    SELECT x.execution_id,
           (SELECT o.seq FROM noetl.outbox AS o
            WHERE o.execution_id = x.execution_id AND o.event_id > x.last_id
            ORDER BY o.seq LIMIT 1) AS first_left
    FROM (SELECT DISTINCT execution_id, (SELECT max(event_id) FROM head) AS last_id
          FROM head) AS x
)
SELECT h.event_id, h.execution_id, h.seq, h.subject, h.payload
FROM head AS h JOIN fence AS f ON f.execution_id = h.execution_id
WHERE f.first_left IS NULL OR h.seq < f.first_left
ORDER BY min(h.event_id) OVER (PARTITION BY h.execution_id ORDER BY h.seq DESC),
         h.execution_id, h.seq

-- name: outbox_batch_by_execution
-- When outbox_batch cut everything (each execution's lowest seq lies beyond the oldest rows:
-- possible only with a tiny batch), this one always makes progress: executions in id order.
SELECT event_id, execution_id, seq, subject, payload
FROM noetl.outbox ORDER BY execution_id, seq LIMIT %s

-- name: outbox_delete
-- The parameter is a JSON array of event ids (text): one statement for a whole batch, the
-- same parameter the SQLite query takes.
DELETE FROM noetl.outbox
WHERE event_id IN (SELECT jsonb_array_elements_text(%s::jsonb)::bigint)

-- name: outbox_count
SELECT count(*) FROM noetl.outbox
