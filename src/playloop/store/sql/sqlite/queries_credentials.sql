-- Named credentials (playloop.secrets.credentials). ``secret`` is Fernet ciphertext of the
-- credential's values; nothing here ever sees them in clear.

-- name: credential_upsert
INSERT INTO noetl.credential (name, kind, secret, created_at, updated_at)
VALUES (:name, :kind, :secret, :now, :now)
ON CONFLICT (name) DO UPDATE
SET kind = excluded.kind, secret = excluded.secret, updated_at = excluded.updated_at

-- name: credential_get
SELECT kind, secret FROM noetl.credential WHERE name = :name

-- name: credential_list
SELECT name, kind, updated_at FROM noetl.credential ORDER BY name

-- name: credential_delete
DELETE FROM noetl.credential WHERE name = :name
