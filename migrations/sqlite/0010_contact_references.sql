-- Nothing to do on SQLite, whose foreign keys on contacts and contact_tags
-- stay (its import checks references per batch instead: see
-- src/store/import.rs). On PostgreSQL, 0010 checks them once per statement
-- instead of row by row; see migrations/postgres.
SELECT 1;
