-- Version 4: nothing to do on SQLite (the store composes begin_signal from two queries).
SELECT 1;
