-- The send gate (issue 16).
--
-- * A campaign whose start fails the gate (the preflight on the exact issue
--   revision it would send, or a recipient whose message cannot be
--   rendered) is `blocked`, with the reasons in state_reason.
-- * An operator may override the preflight for one issue revision: who,
--   why, for which revision and which failures the override covers. The
--   override is also a row of campaign_events (the campaign's history).
-- * Contacts get an optional salutation ("Your Excellency"), used verbatim
--   as the greeting. A salutation an earlier import kept as a custom
--   attribute becomes the column's value.

ALTER TABLE campaigns DROP CONSTRAINT campaigns_state_check;
ALTER TABLE campaigns ADD CONSTRAINT campaigns_state_check
    CHECK (state IN ('draft', 'scheduled', 'running', 'paused', 'finished', 'cancelled', 'blocked'));

ALTER TABLE campaigns ADD COLUMN override_revision BIGINT;
ALTER TABLE campaigns ADD COLUMN override_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE campaigns ADD COLUMN override_actor TEXT NOT NULL DEFAULT '';
-- JSON array of the failures covered, each "rule file:line:column".
ALTER TABLE campaigns ADD COLUMN override_findings TEXT NOT NULL DEFAULT '[]';

ALTER TABLE contacts ADD COLUMN salutation TEXT NOT NULL DEFAULT '';
UPDATE contacts
   SET salutation = btrim(attributes ->> 'salutation'),
       attributes = attributes - 'salutation'
 WHERE jsonb_typeof(attributes -> 'salutation') = 'string';
