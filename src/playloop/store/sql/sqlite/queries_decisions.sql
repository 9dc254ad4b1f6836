-- Named queries of the decision projection (noetl.decision).

-- name: insert_decision
INSERT INTO noetl.decision (
    decision_id, execution_id, playbook_path, step_name, status, prompt, options, approvers,
    deadline, requested_at
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (decision_id) DO NOTHING

-- name: update_decision
UPDATE noetl.decision SET status = ?, decided_at = ?, action = ?, decided_by = ?, comment = ?,
    time_to_decide_ms = ?
WHERE decision_id = ?

-- name: update_decision_approvers
UPDATE noetl.decision SET approvers = ?, deadline = coalesce(?, deadline) WHERE decision_id = ?

-- name: expire_decision
UPDATE noetl.decision SET status = 'expired' WHERE decision_id = ? AND status = 'pending'

-- name: list_decisions
SELECT decision_id, execution_id, playbook_path, step_name, status, prompt, options, approvers,
       deadline, requested_at, decided_at, action, decided_by, comment, time_to_decide_ms
FROM noetl.decision
WHERE (:status IS NULL OR status = :status) AND (:playbook IS NULL OR playbook_path = :playbook)
ORDER BY requested_at DESC LIMIT :limit

-- name: get_decision
SELECT decision_id, execution_id, playbook_path, step_name, status, prompt, options, approvers,
       deadline, requested_at, decided_at, action, decided_by, comment, time_to_decide_ms
FROM noetl.decision WHERE decision_id = ?

-- name: drop_decision_commands
DELETE FROM noetl.command
WHERE execution_id = ? AND step_name = ? AND kind IN ('deadline', 'remind', 'escalate', 'notify')
