-- The learning layer's reads (playloop.learn): failure events and their resolutions.
-- A failure is a step.failed, step.timed_out or execution.failed event, or a loop item that
-- failed or timed out. A resolution.recorded event lives in the failure's execution and
-- names it by meta.failure.event_id (a string of digits).

-- name: event_by_id
SELECT event_id, execution_id, seq, parent_execution_id, parent_event_id, playbook_path,
       playbook_version, event_type, step_name, status, attempt, iteration, duration_ms,
       error_type, error_message, context, result, meta, actor, created_at
FROM noetl.event WHERE event_id = :event_id

-- name: learn_failures
-- A page of failures, newest first, each joined to its resolutions (NULL columns: none).
WITH page AS (
    SELECT f.* FROM noetl.event f
    WHERE (f.event_type IN ('step.failed', 'step.timed_out', 'execution.failed')
           OR (f.event_type = 'loop.item' AND f.status IN ('failed', 'timed_out')))
      AND (:playbook IS NULL OR f.playbook_path = :playbook)
      AND (NOT :unresolved OR NOT EXISTS (
            SELECT 1 FROM noetl.event r
            WHERE r.execution_id = f.execution_id AND r.event_type = 'resolution.recorded'
              AND json_extract(r.meta, '$.failure.event_id') = CAST(f.event_id AS TEXT)))
    ORDER BY f.created_at DESC, f.event_id DESC
    LIMIT :limit
)
SELECT f.event_id, f.execution_id, f.seq, f.parent_execution_id, f.parent_event_id,
       f.playbook_path, f.playbook_version, f.event_type, f.step_name, f.status, f.attempt,
       f.iteration, f.duration_ms, f.error_type, f.error_message, f.context, f.result, f.meta,
       f.actor, f.created_at,
       r.event_id, r.execution_id, r.seq, r.parent_execution_id, r.parent_event_id,
       r.playbook_path, r.playbook_version, r.event_type, r.step_name, r.status, r.attempt,
       r.iteration, r.duration_ms, r.error_type, r.error_message, r.context, r.result, r.meta,
       r.actor, r.created_at
FROM page f
LEFT JOIN noetl.event r
    ON r.execution_id = f.execution_id AND r.event_type = 'resolution.recorded'
   AND json_extract(r.meta, '$.failure.event_id') = CAST(f.event_id AS TEXT)
ORDER BY f.created_at DESC, f.event_id DESC, r.seq

-- name: learn_open_failures
-- Failures with no automatic resolution recorded yet (retry, decision, later_run), newest
-- first: of one playbook (or all), created before a time (or any), not of one execution.
SELECT f.event_id, f.execution_id, f.seq, f.parent_execution_id, f.parent_event_id,
       f.playbook_path, f.playbook_version, f.event_type, f.step_name, f.status, f.attempt,
       f.iteration, f.duration_ms, f.error_type, f.error_message, f.context, f.result, f.meta,
       f.actor, f.created_at
FROM noetl.event f
WHERE (f.event_type IN ('step.failed', 'step.timed_out', 'execution.failed')
       OR (f.event_type = 'loop.item' AND f.status IN ('failed', 'timed_out')))
  AND (:playbook IS NULL OR f.playbook_path = :playbook)
  AND (:before IS NULL OR f.created_at < :before)
  AND (:execution_id IS NULL OR f.execution_id <> :execution_id)
  AND NOT EXISTS (
        SELECT 1 FROM noetl.event r
        WHERE r.execution_id = f.execution_id AND r.event_type = 'resolution.recorded'
          AND json_extract(r.meta, '$.failure.event_id') = CAST(f.event_id AS TEXT)
          AND json_extract(r.meta, '$.kind') IN ('retry', 'decision', 'later_run'))
ORDER BY f.created_at DESC, f.event_id DESC
LIMIT :limit

-- name: learn_first_success_after
-- The first success (a step.finished of a step, or an execution.finished when no step is
-- named) in an execution of the playbook started after a time, other than one execution.
SELECT s.event_id, s.execution_id, s.seq, s.parent_execution_id, s.parent_event_id,
       s.playbook_path, s.playbook_version, s.event_type, s.step_name, s.status, s.attempt,
       s.iteration, s.duration_ms, s.error_type, s.error_message, s.context, s.result, s.meta,
       s.actor, s.created_at
FROM noetl.event s
JOIN noetl.execution x ON x.execution_id = s.execution_id
WHERE s.playbook_path = :playbook
  AND s.event_type = :event_type
  AND (:step IS NULL OR s.step_name = :step)
  AND s.execution_id <> :execution_id
  AND x.started_at > :after
  AND json_extract(s.meta, '$.via') IS NULL
ORDER BY x.started_at, s.seq
LIMIT 1

-- name: learn_stats_events
-- The events the statistics fold (playloop.learn.stats), after an event id, in id order:
-- context and result are left out (NULL), they are not needed and may be large.
SELECT event_id, execution_id, seq, parent_execution_id, parent_event_id, playbook_path,
       playbook_version, event_type, step_name, status, attempt, iteration, duration_ms,
       error_type, error_message, NULL AS context, NULL AS result, meta, actor, created_at
FROM noetl.event
WHERE event_id > :after
  AND event_type IN ('execution.started', 'execution.finished', 'execution.failed',
                     'execution.cancelled', 'step.finished', 'step.failed',
                     'step.timed_out', 'step.retrying', 'loop.item', 'decision.made',
                     'feedback.received')
ORDER BY event_id
LIMIT :limit

-- name: learn_step_decisions
-- The newest decisions made at one step of a playbook (playloop.learn.suggest).
SELECT event_id, execution_id, seq, parent_execution_id, parent_event_id, playbook_path,
       playbook_version, event_type, step_name, status, attempt, iteration, duration_ms,
       error_type, error_message, context, result, meta, actor, created_at
FROM noetl.event
WHERE playbook_path = :playbook AND step_name = :step AND event_type = 'decision.made'
ORDER BY event_id DESC
LIMIT :limit
