-- Version 3: nothing to do on SQLite (BEGIN IMMEDIATE is the execution lock); kept so that
-- both dialects share version numbers.
SELECT 1;
