-- The anomaly baselines' reads (playloop.learn.baselines): the step events that are samples
-- (finished and failed attempts, failure-rate anomalies), as event rows with the columns a
-- baseline does not use left NULL (context, error text, actor, lineage).

-- name: anomaly_history
-- The newest step events of one playbook, newest first (read once per playbook).
SELECT event_id, execution_id, seq, NULL, NULL, playbook_path, playbook_version, event_type,
       step_name, status, attempt, iteration, duration_ms, error_type, NULL, NULL, result, meta,
       NULL, created_at
FROM noetl.event
WHERE playbook_path = %(playbook)s
  AND event_type IN ('step.finished', 'step.failed', 'step.timed_out', 'anomaly.detected')
  AND iteration IS NULL
ORDER BY created_at DESC, event_id DESC
LIMIT %(limit)s

-- name: anomaly_since
-- The step events of one playbook after a checkpoint (an event id), oldest first, but for
-- those of one actor (this process: it folded its own events as it committed them).
SELECT event_id, execution_id, seq, NULL, NULL, playbook_path, playbook_version, event_type,
       step_name, status, attempt, iteration, duration_ms, error_type, NULL, NULL, result, meta,
       NULL, created_at
FROM noetl.event
WHERE event_id > %(after)s
  AND playbook_path = %(playbook)s
  AND event_type IN ('step.finished', 'step.failed', 'step.timed_out', 'anomaly.detected')
  AND iteration IS NULL
  AND (%(actor)s::text IS NULL OR actor IS DISTINCT FROM %(actor)s::text)
ORDER BY event_id
LIMIT %(limit)s

-- name: anomaly_data_version
-- PostgreSQL has no such counter (SQLite's PRAGMA data_version): NULL, so a refresh reads.
SELECT NULL
