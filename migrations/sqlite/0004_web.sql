-- Opens and clicks counted by `whatsup serve` when tracking is enabled (it
-- is off by default). `url` is empty for an open; `ip` is NULL unless
-- web.track_ips is set.
CREATE TABLE tracking_events (
    id           INTEGER PRIMARY KEY,
    campaign_id  INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    contact_id   INTEGER REFERENCES contacts (id) ON DELETE SET NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('open', 'click')),
    url          TEXT NOT NULL DEFAULT '',
    ip           TEXT,
    created_at   TEXT NOT NULL
);
CREATE INDEX tracking_events_campaign ON tracking_events (campaign_id, kind);
