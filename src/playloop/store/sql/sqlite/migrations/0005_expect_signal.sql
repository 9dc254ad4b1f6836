-- Version 5: nothing to do on SQLite (it decides under BEGIN IMMEDIATE, never optimistically).
SELECT 1;
