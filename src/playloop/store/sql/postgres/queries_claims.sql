-- Claims (store/claims.py): a session advisory lock on two int4 keys, held on one
-- dedicated connection and released by PostgreSQL when that session ends.

-- name: claim_try
SELECT pg_try_advisory_lock(%s, %s)

-- name: claim_release
SELECT pg_advisory_unlock(%s, %s)

-- name: claim_held
-- True while this session (still alive) holds the claim.
SELECT count(*) > 0 FROM pg_locks
WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
  AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 2
