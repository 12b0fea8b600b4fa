-- Reliability under real conditions (issue 23).
--
-- A campaign whose relay cannot be reached waits instead of using up its
-- recipients' attempts: waiting_since_ms is when the first message found
-- every server unreachable (NULL while the relay answers), waiting_reason
-- the last connection error. Workers share the campaign row, so the outage
-- is measured once for all of them; past sending.relay_outage_secs the
-- campaign pauses with the reason.
ALTER TABLE campaigns ADD COLUMN waiting_since_ms INTEGER;
ALTER TABLE campaigns ADD COLUMN waiting_reason TEXT NOT NULL DEFAULT '';

-- The per-second limit of each SMTP server, shared by every worker: one
-- row per server holding the current one-second window (Unix ms of its
-- start) and the sends reserved in it. A reservation in a later window
-- starts it over, so the table never grows.
CREATE TABLE send_rate (
    server        TEXT PRIMARY KEY,
    window_start  INTEGER NOT NULL,
    used          INTEGER NOT NULL
);
