-- playbook generation (playloop.learn.generate): the steps that worked.

-- name: generate_step_outcomes
-- Per step of one playbook: how many of its runs finished and how many failed or timed out
-- (an attempt that was retried and then succeeded counts once as finished, once as failed).
SELECT step_name,
       SUM(CASE WHEN event_type = 'step.finished' THEN 1 ELSE 0 END) AS finished,
       SUM(CASE WHEN event_type IN ('step.failed', 'step.timed_out') THEN 1 ELSE 0 END) AS failed
FROM noetl.event
WHERE playbook_path = %(playbook)s
  AND step_name IS NOT NULL
  AND event_type IN ('step.finished', 'step.failed', 'step.timed_out')
GROUP BY step_name
