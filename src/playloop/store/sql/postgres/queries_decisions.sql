-- Named queries of the decision projection (noetl.decision).

-- name: insert_decision
INSERT INTO noetl.decision (
    decision_id, execution_id, playbook_path, step_name, status, prompt, options, approvers,
    deadline, requested_at
) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (decision_id) DO NOTHING

-- name: update_decision
UPDATE noetl.decision SET status = %s, decided_at = %s, action = %s, decided_by = %s, comment = %s,
    time_to_decide_ms = %s
WHERE decision_id = %s

-- name: update_decision_approvers
UPDATE noetl.decision SET approvers = %s, deadline = coalesce(%s, deadline) WHERE decision_id = %s

-- name: expire_decision
UPDATE noetl.decision SET status = 'expired' WHERE decision_id = %s AND status = 'pending'

-- name: list_decisions
SELECT decision_id, execution_id, playbook_path, step_name, status, prompt, options, approvers,
       deadline, requested_at, decided_at, action, decided_by, comment, time_to_decide_ms
FROM noetl.decision
WHERE (%(status)s::text IS NULL OR status = %(status)s) AND (%(playbook)s::text IS NULL OR playbook_path = %(playbook)s)
ORDER BY requested_at DESC LIMIT %(limit)s

-- name: get_decision
SELECT decision_id, execution_id, playbook_path, step_name, status, prompt, options, approvers,
       deadline, requested_at, decided_at, action, decided_by, comment, time_to_decide_ms
FROM noetl.decision WHERE decision_id = %s

-- name: drop_decision_commands
DELETE FROM noetl.command
WHERE execution_id = %s AND step_name = %s AND kind IN ('deadline', 'remind', 'escalate', 'notify')
