-- Version 6: named credentials, encrypted at rest (the value is ciphertext, never plain).
CREATE TABLE IF NOT EXISTS noetl.credential (
    name TEXT NOT NULL PRIMARY KEY,
    kind TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
