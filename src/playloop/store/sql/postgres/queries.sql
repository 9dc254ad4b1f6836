-- Named queries of the PostgreSQL store: the same names as store/sql/sqlite/queries.sql.

-- name: insert_event
INSERT INTO noetl.event (
    event_id, execution_id, seq, parent_execution_id, parent_event_id, playbook_path,
    playbook_version, event_type, step_name, status, attempt, iteration, duration_ms,
    error_type, error_message, context, result, meta, actor, created_at
) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)

-- name: insert_outbox
INSERT INTO noetl.outbox (event_id, execution_id, seq, subject, payload) VALUES (%s, %s, %s, %s, %s)

-- name: lock_execution
SELECT noetl.lock_execution(%s)

-- name: begin_signal
SELECT accepted, last_seq FROM noetl.begin_signal(%s, %s, %s)

-- name: expect_signal
SELECT noetl.expect_signal(%s, %s, %s, %s)

-- name: begin_signals
SELECT noetl.begin_signals(%s::bigint[], %s::bigint[], %s)

-- name: events_since
SELECT e.event_id, e.execution_id, e.seq, e.parent_execution_id, e.parent_event_id,
       e.playbook_path, e.playbook_version, e.event_type, e.step_name, e.status, e.attempt,
       e.iteration, e.duration_ms, e.error_type, e.error_message, e.context, e.result, e.meta,
       e.actor, e.created_at
FROM noetl.event e JOIN unnest(%s::bigint[], %s::integer[]) AS s(x, since)
     ON e.execution_id = s.x AND e.seq > s.since
ORDER BY e.execution_id, e.seq

-- name: allocate_node
SELECT nextval('noetl.node_seq')

-- name: max_seq
SELECT coalesce(max(seq), 0) FROM noetl.event WHERE execution_id = %s

-- name: events_after
SELECT event_id, execution_id, seq, parent_execution_id, parent_event_id, playbook_path,
       playbook_version, event_type, step_name, status, attempt, iteration, duration_ms,
       error_type, error_message, context, result, meta, actor, created_at
FROM noetl.event WHERE execution_id = %s AND seq > %s ORDER BY seq

-- name: upsert_execution
INSERT INTO noetl.execution (
    execution_id, playbook_path, playbook_version, parent_execution_id, status, started_at,
    ended_at, last_seq, error_message
) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (execution_id) DO UPDATE SET
    status = excluded.status, ended_at = excluded.ended_at, last_seq = excluded.last_seq,
    error_message = excluded.error_message

-- name: get_execution
SELECT execution_id, playbook_path, playbook_version, parent_execution_id, status, started_at,
       ended_at, last_seq, error_message
FROM noetl.execution WHERE execution_id = %s

-- name: list_executions
SELECT execution_id, playbook_path, playbook_version, parent_execution_id, status, started_at,
       ended_at, last_seq, error_message
FROM noetl.execution
WHERE (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(playbook)s::text IS NULL OR playbook_path = %(playbook)s)
ORDER BY started_at DESC, execution_id DESC LIMIT %(limit)s OFFSET %(offset)s

-- name: insert_command
INSERT INTO noetl.command (
    command_id, execution_id, kind, step_name, iteration, attempt, payload, not_before, pool,
    lease_owner, lease_expires_at, claims, started_event_id, created_at
) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)

-- name: notify_execution_ended
SELECT pg_notify('playloop_executions', %s)

-- name: notify_commands
SELECT pg_notify('playloop_commands', %s)

-- name: complete_command
DELETE FROM noetl.command WHERE command_id = %s AND lease_owner = %s

-- name: delete_command
DELETE FROM noetl.command WHERE command_id = %s

-- name: drop_commands
DELETE FROM noetl.command WHERE execution_id = %s

-- name: claim_commands
UPDATE noetl.command
SET lease_owner = %(owner)s, lease_expires_at = %(lease_until)s, claims = claims + 1
WHERE command_id IN (
    SELECT command_id FROM noetl.command
    WHERE (lease_owner IS NULL OR (lease_expires_at IS NOT NULL AND lease_expires_at < %(now)s))
      AND (not_before IS NULL OR not_before <= %(now)s)
      AND (%(execution_id)s::bigint IS NULL OR execution_id = %(execution_id)s::bigint)
      AND (%(pool)s::text IS NULL OR coalesce(pool, 'default') = %(pool)s::text)
    ORDER BY coalesce(not_before, 0), command_id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
RETURNING command_id, execution_id, kind, step_name, iteration, attempt, payload, not_before,
          pool, lease_owner, lease_expires_at, claims, started_event_id

-- name: claim_commands_in
UPDATE noetl.command
SET lease_owner = %(owner)s, lease_expires_at = %(lease_until)s, claims = claims + 1
WHERE command_id IN (
    SELECT command_id FROM noetl.command
    WHERE (lease_owner IS NULL OR (lease_expires_at IS NOT NULL AND lease_expires_at < %(now)s))
      AND (not_before IS NULL OR not_before <= %(now)s)
      AND execution_id = ANY(SELECT jsonb_array_elements_text(%(execution_ids)s::jsonb)::bigint)
      AND (%(pool)s::text IS NULL OR coalesce(pool, 'default') = %(pool)s::text)
    ORDER BY coalesce(not_before, 0), command_id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
RETURNING command_id, execution_id, kind, step_name, iteration, attempt, payload, not_before,
          pool, lease_owner, lease_expires_at, claims, started_event_id

-- name: heartbeat
UPDATE noetl.command SET lease_expires_at = %s WHERE lease_owner = %s AND lease_expires_at IS NOT NULL

-- name: lease_owners
SELECT DISTINCT lease_owner FROM noetl.command
WHERE lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL

-- name: release_owner
UPDATE noetl.command SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner = %s

-- name: release_command
UPDATE noetl.command SET lease_owner = NULL, lease_expires_at = NULL
WHERE command_id = %s AND lease_owner = %s

-- name: commands_of_execution
SELECT command_id, execution_id, kind, step_name, iteration, attempt, payload, not_before,
       pool, lease_owner, lease_expires_at, claims, started_event_id
FROM noetl.command WHERE execution_id = %s ORDER BY command_id

-- name: catalog_by_hash
SELECT catalog_id, path, version, content_hash, source_file, created_at
FROM noetl.catalog WHERE path = %s AND content_hash = %s

-- name: catalog_lock
SELECT pg_advisory_xact_lock(hashtext(%s))

-- name: catalog_next_version
SELECT coalesce(max(version), 0) + 1 FROM noetl.catalog WHERE path = %s

-- name: catalog_insert
INSERT INTO noetl.catalog (catalog_id, path, version, content, content_hash, source_file, created_at)
VALUES (%s, %s, %s, %s, %s, %s, %s)

-- name: catalog_get
SELECT catalog_id, path, version, content, content_hash, source_file, created_at
FROM noetl.catalog WHERE path = %s AND (%s::integer IS NULL OR version = %s::integer)
ORDER BY version DESC LIMIT 1

-- name: catalog_list
SELECT catalog_id, path, version, content_hash, source_file, created_at
FROM noetl.catalog ORDER BY path, version

-- name: schema_versions
SELECT version FROM noetl.schema_version ORDER BY version

-- name: record_schema_version
INSERT INTO noetl.schema_version (version, applied_at) VALUES (%s, now())

-- name: register_worker
INSERT INTO noetl.worker (worker_id, pool, hostname, pid, concurrency, status, started_at, heartbeat_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (worker_id) DO UPDATE SET status = excluded.status, heartbeat_at = excluded.heartbeat_at

-- name: worker_heartbeat
UPDATE noetl.worker SET heartbeat_at = %s, status = %s WHERE worker_id = %s

-- name: list_workers
SELECT worker_id, pool, hostname, pid, concurrency, status, started_at, heartbeat_at
FROM noetl.worker ORDER BY started_at

-- name: delete_worker
DELETE FROM noetl.worker WHERE worker_id = %s
