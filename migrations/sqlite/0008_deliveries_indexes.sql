-- Nothing to do on SQLite. (PostgreSQL's 0008 replaces the (campaign,
-- contact) unique index and the contact index with one (contact, campaign)
-- unique index; on SQLite the first is part of the table's definition and
-- could only go with a rebuild of the table.)
SELECT 1;
