-- Named queries of the SQLite store. Each begins with `-- name: <name>`; the PostgreSQL store
-- has the same names.

-- name: insert_event
INSERT INTO noetl.event (
    event_id, execution_id, seq, parent_execution_id, parent_event_id, playbook_path,
    playbook_version, event_type, step_name, status, attempt, iteration, duration_ms,
    error_type, error_message, context, result, meta, actor, created_at
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)

-- name: insert_outbox
INSERT INTO noetl.outbox (event_id, execution_id, seq, subject, payload) VALUES (?, ?, ?, ?, ?)

-- name: allocate_node
UPDATE noetl.node_counter SET n = n + 1 WHERE id = 1 RETURNING n

-- name: max_seq
SELECT coalesce(max(seq), 0) FROM noetl.event WHERE execution_id = ?

-- name: events_after
SELECT event_id, execution_id, seq, parent_execution_id, parent_event_id, playbook_path,
       playbook_version, event_type, step_name, status, attempt, iteration, duration_ms,
       error_type, error_message, context, result, meta, actor, created_at
FROM noetl.event WHERE execution_id = ? AND seq > ? ORDER BY seq

-- name: upsert_execution
INSERT INTO noetl.execution (
    execution_id, playbook_path, playbook_version, parent_execution_id, status, started_at,
    ended_at, last_seq, error_message
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (execution_id) DO UPDATE SET
    status = excluded.status, ended_at = excluded.ended_at, last_seq = excluded.last_seq,
    error_message = excluded.error_message

-- name: get_execution
SELECT execution_id, playbook_path, playbook_version, parent_execution_id, status, started_at,
       ended_at, last_seq, error_message
FROM noetl.execution WHERE execution_id = ?

-- name: list_executions
SELECT execution_id, playbook_path, playbook_version, parent_execution_id, status, started_at,
       ended_at, last_seq, error_message
FROM noetl.execution
WHERE (:status IS NULL OR status = :status) AND (:playbook IS NULL OR playbook_path = :playbook)
ORDER BY started_at DESC, execution_id DESC LIMIT :limit OFFSET :offset

-- name: insert_command
INSERT INTO noetl.command (
    command_id, execution_id, kind, step_name, iteration, attempt, payload, not_before, pool,
    lease_owner, lease_expires_at, claims, started_event_id, created_at
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)

-- name: complete_command
DELETE FROM noetl.command WHERE command_id = ? AND lease_owner = ?

-- name: delete_command
DELETE FROM noetl.command WHERE command_id = ?

-- name: drop_commands
DELETE FROM noetl.command WHERE execution_id = ?

-- name: claim_commands
UPDATE noetl.command
SET lease_owner = :owner, lease_expires_at = :lease_until, claims = claims + 1
WHERE command_id IN (
    SELECT command_id FROM noetl.command
    WHERE (lease_owner IS NULL OR (lease_expires_at IS NOT NULL AND lease_expires_at < :now))
      AND (not_before IS NULL OR not_before <= :now)
      AND (:execution_id IS NULL OR execution_id = :execution_id)
      AND (:pool IS NULL OR coalesce(pool, 'default') = :pool)
    ORDER BY coalesce(not_before, 0), command_id
    LIMIT :limit
)
RETURNING command_id, execution_id, kind, step_name, iteration, attempt, payload, not_before,
          pool, lease_owner, lease_expires_at, claims, started_event_id

-- name: claim_commands_in
UPDATE noetl.command
SET lease_owner = :owner, lease_expires_at = :lease_until, claims = claims + 1
WHERE command_id IN (
    SELECT command_id FROM noetl.command
    WHERE (lease_owner IS NULL OR (lease_expires_at IS NOT NULL AND lease_expires_at < :now))
      AND (not_before IS NULL OR not_before <= :now)
      AND execution_id IN (SELECT value FROM json_each(:execution_ids))
      AND (:pool IS NULL OR coalesce(pool, 'default') = :pool)
    ORDER BY coalesce(not_before, 0), command_id
    LIMIT :limit
)
RETURNING command_id, execution_id, kind, step_name, iteration, attempt, payload, not_before,
          pool, lease_owner, lease_expires_at, claims, started_event_id

-- name: heartbeat
UPDATE noetl.command SET lease_expires_at = ? WHERE lease_owner = ? AND lease_expires_at IS NOT NULL

-- name: lease_owners
SELECT DISTINCT lease_owner FROM noetl.command
WHERE lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL

-- name: release_owner
UPDATE noetl.command SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner = ?

-- name: release_command
UPDATE noetl.command SET lease_owner = NULL, lease_expires_at = NULL
WHERE command_id = ? AND lease_owner = ?

-- name: commands_of_execution
SELECT command_id, execution_id, kind, step_name, iteration, attempt, payload, not_before,
       pool, lease_owner, lease_expires_at, claims, started_event_id
FROM noetl.command WHERE execution_id = ? ORDER BY command_id

-- name: catalog_by_hash
SELECT catalog_id, path, version, content_hash, source_file, created_at
FROM noetl.catalog WHERE path = ? AND content_hash = ?

-- name: catalog_next_version
SELECT coalesce(max(version), 0) + 1 FROM noetl.catalog WHERE path = ?

-- name: catalog_insert
INSERT INTO noetl.catalog (catalog_id, path, version, content, content_hash, source_file, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?)

-- name: catalog_get
SELECT catalog_id, path, version, content, content_hash, source_file, created_at
FROM noetl.catalog WHERE path = ? AND (? IS NULL OR version = ?) ORDER BY version DESC LIMIT 1

-- name: catalog_list
SELECT catalog_id, path, version, content_hash, source_file, created_at
FROM noetl.catalog ORDER BY path, version

-- name: schema_versions
SELECT version FROM noetl.schema_version ORDER BY version

-- name: record_schema_version
INSERT INTO noetl.schema_version (version, applied_at) VALUES (?, ?)

-- name: lock_execution
SELECT coalesce(max(seq), 0) FROM noetl.event WHERE execution_id = ?

-- name: notify_execution_ended
SELECT ?

-- name: notify_commands
SELECT ?

-- name: catalog_lock
SELECT ?

-- name: register_worker
INSERT INTO noetl.worker (worker_id, pool, hostname, pid, concurrency, status, started_at, heartbeat_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (worker_id) DO UPDATE SET status = excluded.status, heartbeat_at = excluded.heartbeat_at

-- name: worker_heartbeat
UPDATE noetl.worker SET heartbeat_at = ?, status = ? WHERE worker_id = ?

-- name: list_workers
SELECT worker_id, pool, hostname, pid, concurrency, status, started_at, heartbeat_at
FROM noetl.worker ORDER BY started_at

-- name: delete_worker
DELETE FROM noetl.worker WHERE worker_id = ?
