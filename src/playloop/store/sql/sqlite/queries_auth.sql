-- API tokens (playloop.auth.tokens). Only the sha256 of a token is stored; a token is found
-- by its public id and its hash compared in constant time by the caller.

-- name: api_token_insert
INSERT INTO noetl.api_token (token_id, name, role, token_hash, created_at)
VALUES (:token_id, :name, :role, :token_hash, :now)

-- name: api_token_by_id
SELECT token_id, name, role, token_hash, created_at, last_used_at, revoked_at
FROM noetl.api_token WHERE token_id = :token_id

-- name: api_token_list
SELECT token_id, name, role, token_hash, created_at, last_used_at, revoked_at
FROM noetl.api_token ORDER BY created_at, token_id

-- name: api_token_count_active
SELECT count(*) FROM noetl.api_token WHERE revoked_at IS NULL

-- name: api_token_touch
UPDATE noetl.api_token SET last_used_at = :now
WHERE token_id = :token_id AND (last_used_at IS NULL OR last_used_at < :stale_before)

-- name: api_token_revoke
UPDATE noetl.api_token SET revoked_at = :now WHERE token_id = :token_id AND revoked_at IS NULL
