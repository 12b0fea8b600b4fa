-- The issue editor's autosaved drafts: one per issue and account, the
-- editor's text as the file format, kept until the account saves it as a
-- revision or throws it away. A draft is not a revision: nothing sends it,
-- and no one else sees it.
CREATE TABLE issue_drafts (
    issue_id       INTEGER NOT NULL REFERENCES issues (id) ON DELETE CASCADE,
    user_id        INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- the issue's latest revision when the draft was last written
    base_revision  INTEGER NOT NULL,
    source         TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (issue_id, user_id)
);
CREATE INDEX issue_drafts_user ON issue_drafts (user_id);
