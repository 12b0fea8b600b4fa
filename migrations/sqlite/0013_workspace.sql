-- The workspace: accounts, browser sessions, API tokens, login throttling,
-- the audit trail of every change, campaign approvals and jobs (imports
-- and sends that the API runs in the background).
--
-- Secrets are never stored: sessions and tokens by their SHA-256, passwords
-- as argon2id PHC strings.

CREATE TABLE users (
    id             INTEGER PRIMARY KEY,
    -- normalised (trimmed, lower-cased) address; the login name
    email          TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL DEFAULT '',
    role           TEXT NOT NULL CHECK (role IN ('viewer', 'editor', 'operator', 'admin')),
    -- argon2id PHC string; '' for an account without a password yet
    password_hash  TEXT NOT NULL DEFAULT '',
    disabled_at    TEXT,
    last_login_at  TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);

CREATE TABLE sessions (
    -- SHA-256 (hex) of the cookie's value
    id_hash       TEXT PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token    TEXT NOT NULL,
    -- fingerprint of the password hash at login: a new password ends the session
    password_tag  TEXT NOT NULL,
    ip            TEXT,
    user_agent    TEXT NOT NULL DEFAULT '',
    created_at    TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE api_tokens (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    -- SHA-256 (hex) of the token
    token_hash    TEXT NOT NULL UNIQUE,
    -- the token's first characters, to recognise it in a list
    prefix        TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    last_used_at  TEXT,
    revoked_at    TEXT,
    UNIQUE (user_id, name)
);

-- Failed logins per account and per client IP, for growing delays.
CREATE TABLE login_failures (
    scope     TEXT NOT NULL CHECK (scope IN ('account', 'ip')),
    key       TEXT NOT NULL,
    failures  INTEGER NOT NULL,
    -- Unix ms of the latest failure
    last_ms   INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
);

-- Every change by whom, when, from where and what changed. No foreign keys:
-- the trail outlives the accounts and objects it names.
CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY,
    created_at   TEXT NOT NULL,
    actor        TEXT NOT NULL,
    actor_kind   TEXT NOT NULL CHECK (actor_kind IN ('user', 'token', 'cli', 'web', 'system')),
    user_id      INTEGER,
    ip           TEXT,
    action       TEXT NOT NULL,
    object_kind  TEXT NOT NULL,
    object_id    TEXT NOT NULL DEFAULT '',
    details      TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(details))
);
CREATE INDEX audit_log_created ON audit_log (created_at, id);
CREATE INDEX audit_log_object ON audit_log (object_kind, object_id, id);

-- Requests for approval and approvals, each for one issue revision and
-- segment: a new revision or another segment makes an approval void.
CREATE TABLE campaign_approvals (
    id              INTEGER PRIMARY KEY,
    campaign_id     INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('request', 'approval')),
    issue_revision  INTEGER NOT NULL,
    segment         TEXT NOT NULL,
    actor           TEXT NOT NULL,
    -- the person (user:ID, or the CLI user), compared with creator and editor
    principal       TEXT NOT NULL,
    note            TEXT NOT NULL DEFAULT '',
    created_at      TEXT NOT NULL
);
CREATE INDEX campaign_approvals_campaign ON campaign_approvals (campaign_id, id);

-- Who created a campaign and who wrote a revision (principals, see above).
ALTER TABLE campaigns ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
ALTER TABLE issue_revisions ADD COLUMN author TEXT NOT NULL DEFAULT '';

-- Long work the API answers with 202: imports and sends.
CREATE TABLE jobs (
    id              INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('import', 'send')),
    state           TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    campaign_id     INTEGER REFERENCES campaigns (id) ON DELETE SET NULL,
    progress_done   INTEGER NOT NULL DEFAULT 0,
    progress_total  INTEGER,
    result          TEXT NOT NULL DEFAULT 'null' CHECK (json_valid(result)),
    error           TEXT NOT NULL DEFAULT '',
    actor           TEXT NOT NULL,
    user_id         INTEGER,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    finished_at     TEXT
);

