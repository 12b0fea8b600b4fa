-- Removing a contact sets its tracking events' contact to NULL (ON DELETE
-- SET NULL), which without an index read every tracking event once per
-- contact removed. On SQLite a multi-row insert into contacts also searched
-- the table once per row.
CREATE INDEX tracking_events_contact ON tracking_events (contact_id);
