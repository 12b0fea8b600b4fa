-- Issues of the newsletter and every revision of their source file.
-- The editor's Markdown file stays the source; each import that changes it
-- adds a revision, so earlier versions can be shown and compared.

CREATE TABLE issues (
    id          INTEGER PRIMARY KEY,
    -- the issue number from the front matter: issues are identified by it
    number      INTEGER NOT NULL UNIQUE CHECK (number >= 0),
    subject     TEXT NOT NULL DEFAULT '',
    issue_date  TEXT NOT NULL,
    -- where the editor keeps the file (as given on import)
    source_path TEXT NOT NULL,
    revisions   INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE issue_revisions (
    id          INTEGER PRIMARY KEY,
    issue_id    INTEGER NOT NULL REFERENCES issues (id) ON DELETE CASCADE,
    revision    INTEGER NOT NULL CHECK (revision >= 1),
    subject     TEXT NOT NULL DEFAULT '',
    source      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    UNIQUE (issue_id, revision)
);
