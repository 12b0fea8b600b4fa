-- The send gate (issue 16).
--
-- * A campaign whose start fails the gate (the preflight on the exact issue
--   revision it would send, or a recipient whose message cannot be
--   rendered) is `blocked`, with the reasons in state_reason.
--
--   SQLite cannot change a CHECK constraint in place, and this file runs
--   inside sqlx's transaction, where `PRAGMA foreign_keys = OFF` is ignored:
--   dropping the old table there would cascade into campaign_events and
--   deliveries. So `Store::migrate` rebuilds `campaigns` right after the
--   migrations, by SQLite's documented twelve-step procedure on one
--   connection with foreign keys off (see store::rebuild). It copies every
--   column this or any later migration added, and its indexes.
--
-- * An operator may override the preflight for one issue revision: who,
--   why, for which revision and which failures the override covers. The
--   override is also a row of campaign_events (the campaign's history).
-- * Contacts get an optional salutation ("Your Excellency"), used verbatim
--   as the greeting. A salutation an earlier import kept as a custom
--   attribute becomes the column's value.

ALTER TABLE campaigns ADD COLUMN override_revision INTEGER;
ALTER TABLE campaigns ADD COLUMN override_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE campaigns ADD COLUMN override_actor TEXT NOT NULL DEFAULT '';
-- JSON array of the failures covered, each "rule file:line:column".
ALTER TABLE campaigns ADD COLUMN override_findings TEXT NOT NULL DEFAULT '[]';

ALTER TABLE contacts ADD COLUMN salutation TEXT NOT NULL DEFAULT '';
UPDATE contacts
   SET salutation = trim(json_extract(attributes, '$.salutation')),
       attributes = json_remove(attributes, '$.salutation')
 WHERE json_type(attributes, '$.salutation') = 'text';
