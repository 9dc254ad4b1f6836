-- Version 9: nothing to do on SQLite (its transactions are exclusive: nothing to lock).
SELECT 1;
