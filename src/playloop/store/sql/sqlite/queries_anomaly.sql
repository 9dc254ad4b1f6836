-- The anomaly baselines' reads (playloop.learn.baselines): the step events that are samples
-- (finished and failed attempts, failure-rate anomalies), as event rows with the columns a
-- baseline does not use left NULL (context, error text, actor, lineage).

-- name: anomaly_history
-- The newest step events of one playbook, newest first (read once per playbook).
SELECT event_id, execution_id, seq, NULL, NULL, playbook_path, playbook_version, event_type,
       step_name, status, attempt, iteration, duration_ms, error_type, NULL, NULL, result, meta,
       NULL, created_at
FROM noetl.event
WHERE playbook_path = :playbook
  AND event_type IN ('step.finished', 'step.failed', 'step.timed_out', 'anomaly.detected')
  AND iteration IS NULL
ORDER BY created_at DESC, event_id DESC
LIMIT :limit

-- name: anomaly_since
-- The step events of one playbook after a checkpoint (an event id), oldest first, but for
-- those of one actor (this process: it folded its own events as it committed them).
-- The unary + keeps SQLite off the playbook and type indexes: the rowid range (event_id)
-- holds only the new events.
SELECT event_id, execution_id, seq, NULL, NULL, playbook_path, playbook_version, event_type,
       step_name, status, attempt, iteration, duration_ms, error_type, NULL, NULL, result, meta,
       NULL, created_at
FROM noetl.event
WHERE event_id > :after
  AND +playbook_path = :playbook
  AND +event_type IN ('step.finished', 'step.failed', 'step.timed_out', 'anomaly.detected')
  AND iteration IS NULL
  AND (:actor IS NULL OR actor IS NOT :actor)
ORDER BY event_id
LIMIT :limit

-- name: anomaly_data_version
-- Changes when another connection (another process, another engine) committed to the
-- event database: with no change, a refresh has nothing to read.
PRAGMA noetl.data_version
