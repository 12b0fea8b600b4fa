-- The bounce intake: every message it has read (one row per distinct
-- message, so reading the same message twice changes nothing), and for each
-- bounce event the message it came from, how it was matched to its contact
-- and what was done.

CREATE TABLE bounce_messages (
    id           INTEGER PRIMARY KEY,
    -- SHA-256 of the raw message, hex: the idempotency key
    sha256       TEXT NOT NULL UNIQUE,
    message_id   TEXT NOT NULL DEFAULT '',
    source       TEXT NOT NULL,
    format       TEXT NOT NULL,
    received_at  TEXT NOT NULL
);

ALTER TABLE bounce_events ADD COLUMN message_ref INTEGER REFERENCES bounce_messages (id) ON DELETE SET NULL;
ALTER TABLE bounce_events ADD COLUMN matched_by TEXT NOT NULL DEFAULT '';
ALTER TABLE bounce_events ADD COLUMN action TEXT NOT NULL DEFAULT '';
CREATE INDEX bounce_events_kind ON bounce_events (contact_id, kind, created_at);
