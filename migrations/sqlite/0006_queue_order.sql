-- The claim takes due deliveries of one status in (due_ms, id) order with a
-- LIMIT. With id in the index that order is the index's own, so a claim
-- reads only the rows it takes; without it PostgreSQL sorted every pending
-- row of the campaign on every claim. (SQLite's indexes end in the rowid
-- already; the index is the same on both backends.)
DROP INDEX deliveries_queue;
CREATE INDEX deliveries_queue ON deliveries (campaign_id, status, due_ms, id);
