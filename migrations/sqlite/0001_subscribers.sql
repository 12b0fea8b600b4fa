-- Subscriber store: organisations, contacts, tags and the status audit trail.
-- Timestamps are UTC, stored as text written by chrono (sortable, one format).

CREATE TABLE organisations (
    id                 INTEGER PRIMARY KEY,
    kind               TEXT NOT NULL CHECK (kind IN ('city', 'embassy', 'representative_office', 'international_org', 'other')),
    name               TEXT NOT NULL,
    -- lower-cased name: organisations are identified by name, case-insensitively
    name_key           TEXT NOT NULL UNIQUE,
    country            TEXT CHECK (country IS NULL OR length(country) = 2),
    region             TEXT,
    city               TEXT,
    timezone           TEXT,
    relationship       TEXT CHECK (relationship IS NULL OR relationship IN ('sister', 'friendship', 'partner')),
    relationship_since INTEGER,
    notes              TEXT NOT NULL DEFAULT '',
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
);

CREATE TABLE contacts (
    id                INTEGER PRIMARY KEY,
    -- normalised (trimmed, lower-cased) address; unique case-insensitively
    email             TEXT NOT NULL UNIQUE,
    name              TEXT NOT NULL DEFAULT '',
    title             TEXT NOT NULL DEFAULT '',
    organisation_id   INTEGER REFERENCES organisations (id) ON DELETE SET NULL,
    language          TEXT,
    status            TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'unsubscribed', 'bounced', 'blocklisted')),
    status_reason     TEXT NOT NULL DEFAULT '',
    status_changed_at TEXT NOT NULL,
    consent_source    TEXT NOT NULL DEFAULT '',
    consent_at        TEXT,
    -- JSON object of custom attributes (extra CSV columns)
    attributes        TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(attributes)),
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
CREATE INDEX contacts_organisation ON contacts (organisation_id);
CREATE INDEX contacts_status ON contacts (status);

CREATE TABLE tags (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);

CREATE TABLE contact_tags (
    contact_id  INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    tag_id      INTEGER NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    PRIMARY KEY (contact_id, tag_id)
) WITHOUT ROWID;
CREATE INDEX contact_tags_tag ON contact_tags (tag_id, contact_id);

-- Every change of a contact's status: who or what, when, why, and the evidence.
CREATE TABLE status_events (
    id          INTEGER PRIMARY KEY,
    contact_id  INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    old_status  TEXT,
    new_status  TEXT NOT NULL,
    reason      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    evidence    TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(evidence)),
    created_at  TEXT NOT NULL
);
CREATE INDEX status_events_contact ON status_events (contact_id, id);
