-- The vector indexer (playloop.learn.indexer): checkpoints of projections and the events and
-- catalog entries it reads after them, in id order (ids are time-ordered).

-- name: projection_get
SELECT name, position, info, updated_at FROM noetl.projection WHERE name = %(name)s

-- name: projection_list
SELECT name, position, info, updated_at FROM noetl.projection WHERE name LIKE %(prefix)s ORDER BY name

-- name: projection_set
INSERT INTO noetl.projection (name, position, info, updated_at)
VALUES (%(name)s, %(position)s, %(info)s, %(updated_at)s)
ON CONFLICT (name) DO UPDATE SET position = excluded.position, info = excluded.info,
    updated_at = excluded.updated_at

-- name: projection_delete
DELETE FROM noetl.projection WHERE name = %(name)s

-- name: index_events_after
-- What the vector index projects: failures (step.failed, step.timed_out, execution.failed,
-- failed loop items), their resolutions and people's decisions, after a position.
SELECT event_id, execution_id, seq, parent_execution_id, parent_event_id, playbook_path,
       playbook_version, event_type, step_name, status, attempt, iteration, duration_ms,
       error_type, error_message, context, result, meta, actor, created_at
FROM noetl.event
WHERE event_id > %(after)s
  AND (event_type IN ('step.failed', 'step.timed_out', 'execution.failed',
                      'resolution.recorded', 'decision.made')
       OR (event_type = 'loop.item' AND status IN ('failed', 'timed_out')))
ORDER BY event_id
LIMIT %(limit)s

-- name: index_failure_resolutions
-- The resolution.recorded events of one failure (in the failure's execution), oldest first.
SELECT event_id, execution_id, seq, parent_execution_id, parent_event_id, playbook_path,
       playbook_version, event_type, step_name, status, attempt, iteration, duration_ms,
       error_type, error_message, context, result, meta, actor, created_at
FROM noetl.event
WHERE execution_id = %(execution_id)s AND event_type = 'resolution.recorded'
  AND meta -> 'failure' ->> 'event_id' = %(event_id)s::text
ORDER BY seq

-- name: index_decision_prompt
SELECT prompt FROM noetl.decision WHERE decision_id = %(decision_id)s

-- name: index_catalog_after
SELECT catalog_id, path, version, content, source_file, created_at
FROM noetl.catalog WHERE catalog_id > %(after)s ORDER BY catalog_id LIMIT %(limit)s

-- name: index_event_max
SELECT coalesce(max(event_id), 0) FROM noetl.event

-- name: index_events_count
-- How many events index_events_after has still to read after a position (progress bars).
SELECT count(*) FROM noetl.event
WHERE event_id > %(after)s
  AND (event_type IN ('step.failed', 'step.timed_out', 'execution.failed',
                      'resolution.recorded', 'decision.made')
       OR (event_type = 'loop.item' AND status IN ('failed', 'timed_out')))

-- name: index_catalog_count
SELECT count(*) FROM noetl.catalog WHERE catalog_id > %(after)s

-- name: index_started_context
-- The context of the step.started (or running loop.item) event a failure ended.
SELECT context FROM noetl.event
WHERE execution_id = %(execution_id)s AND step_name = %(step)s AND seq < %(seq)s
  AND status = 'running' AND event_type IN ('step.started', 'loop.item')
ORDER BY seq DESC LIMIT 1
