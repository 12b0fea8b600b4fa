-- Nothing to do on SQLite, whose foreign keys on deliveries stay. (On
-- PostgreSQL, 0009 checks deliveries' references once per statement
-- instead of row by row; see migrations/postgres.)
SELECT 1;
