-- Campaigns (an issue sent to a segment), their state history, the delivery
-- queue with one row per (campaign, recipient), shared rate-limit windows and
-- the bounce events the sender records for SMTP-time rejections.
--
-- Queue times (due_ms, lease_ms) are Unix milliseconds: compared on every
-- claim, they must order the same way on both backends.

CREATE TABLE campaigns (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL,
    issue_number    INTEGER NOT NULL,
    -- the revision frozen when the campaign starts (NULL before)
    issue_revision  INTEGER,
    segment         TEXT NOT NULL DEFAULT '',
    from_name       TEXT NOT NULL,
    from_address    TEXT NOT NULL,
    reply_to        TEXT NOT NULL DEFAULT '',
    transport       TEXT NOT NULL CHECK (transport IN ('smtp', 'outbox')),
    state           TEXT NOT NULL CHECK (state IN ('draft', 'scheduled', 'running', 'paused', 'finished', 'cancelled')),
    state_reason    TEXT NOT NULL DEFAULT '',
    -- 'at': everyone at start_ms; 'local': local_time in each recipient's zone on local_date
    schedule_mode   TEXT NOT NULL DEFAULT 'at' CHECK (schedule_mode IN ('at', 'local')),
    start_ms        INTEGER,
    local_date      TEXT,
    local_time      TEXT,
    recipients      INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX campaigns_state ON campaigns (state, start_ms);

CREATE TABLE campaign_events (
    id           INTEGER PRIMARY KEY,
    campaign_id  INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    old_state    TEXT,
    new_state    TEXT NOT NULL,
    actor        TEXT NOT NULL,
    reason       TEXT NOT NULL DEFAULT '',
    created_at   TEXT NOT NULL
);
CREATE INDEX campaign_events_campaign ON campaign_events (campaign_id, id);

CREATE TABLE deliveries (
    id           INTEGER PRIMARY KEY,
    campaign_id  INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    contact_id   INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    email        TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'retry', 'failed', 'skipped')),
    due_ms       INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    lease_ms     INTEGER,
    worker       TEXT,
    server       TEXT,
    last_code    TEXT,
    last_reply   TEXT,
    message_id   TEXT,
    sent_at      TEXT,
    updated_at   TEXT NOT NULL,
    UNIQUE (campaign_id, contact_id)
);
CREATE INDEX deliveries_queue ON deliveries (campaign_id, status, due_ms);
CREATE INDEX deliveries_contact ON deliveries (contact_id);

-- Sends reserved per server and fixed window (hour or day, UTC): the
-- ceilings hold for every worker sharing the database.
CREATE TABLE send_windows (
    server        TEXT NOT NULL,
    period        TEXT NOT NULL CHECK (period IN ('hour', 'day')),
    window_start  INTEGER NOT NULL,
    used          INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (server, period, window_start)
);

-- What came back: SMTP-time rejections now, DSNs and complaints later.
CREATE TABLE bounce_events (
    id           INTEGER PRIMARY KEY,
    contact_id   INTEGER REFERENCES contacts (id) ON DELETE SET NULL,
    campaign_id  INTEGER REFERENCES campaigns (id) ON DELETE SET NULL,
    delivery_id  INTEGER REFERENCES deliveries (id) ON DELETE SET NULL,
    email        TEXT NOT NULL,
    kind         TEXT NOT NULL,
    reason       TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL DEFAULT '',
    diagnostic   TEXT NOT NULL DEFAULT '',
    source       TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE INDEX bounce_events_contact ON bounce_events (contact_id, id);
CREATE INDEX bounce_events_created ON bounce_events (created_at);
