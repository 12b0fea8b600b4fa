-- Starting a campaign freezes its recipients: one delivery per recipient,
-- inserted by one statement. Its two foreign keys checked and locked the
-- campaign and the contact row by row, which was 1.6 of the 2.5 seconds
-- that freezing 100,000 recipients took. The same rules now hold through
-- triggers that check and lock once per statement.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_campaign_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_contact_id_fkey;

-- New deliveries: lock the contacts and campaigns they refer to, as a
-- foreign key would (a removal running meanwhile either waits for this
-- transaction, or has finished and is seen below), then check that each
-- exists.
CREATE FUNCTION deliveries_check_references() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM contacts WHERE id IN (SELECT contact_id FROM new_rows) FOR KEY SHARE;
    PERFORM 1 FROM campaigns WHERE id IN (SELECT campaign_id FROM new_rows) FOR KEY SHARE;
    IF EXISTS (SELECT 1 FROM new_rows n
               WHERE NOT EXISTS (SELECT 1 FROM contacts c WHERE c.id = n.contact_id)) THEN
        RAISE foreign_key_violation
            USING MESSAGE = 'a delivery refers to a contact that does not exist';
    END IF;
    IF EXISTS (SELECT 1 FROM new_rows n
               WHERE NOT EXISTS (SELECT 1 FROM campaigns c WHERE c.id = n.campaign_id)) THEN
        RAISE foreign_key_violation
            USING MESSAGE = 'a delivery refers to a campaign that does not exist';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER deliveries_references AFTER INSERT ON deliveries
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION deliveries_check_references();

-- A delivery never moves to another campaign or contact.
CREATE FUNCTION deliveries_keep_references() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.campaign_id IS DISTINCT FROM OLD.campaign_id
       OR NEW.contact_id IS DISTINCT FROM OLD.contact_id THEN
        RAISE foreign_key_violation
            USING MESSAGE = 'a delivery''s campaign and contact cannot change';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER deliveries_keep_references BEFORE UPDATE OF campaign_id, contact_id ON deliveries
    FOR EACH ROW EXECUTE FUNCTION deliveries_keep_references();

-- ON DELETE CASCADE, once per statement.
CREATE FUNCTION contacts_remove_deliveries() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM deliveries WHERE contact_id IN (SELECT id FROM old_rows);
    RETURN NULL;
END
$$;
CREATE TRIGGER contacts_remove_deliveries AFTER DELETE ON contacts
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION contacts_remove_deliveries();

CREATE FUNCTION campaigns_remove_deliveries() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM deliveries WHERE campaign_id IN (SELECT id FROM old_rows);
    RETURN NULL;
END
$$;
CREATE TRIGGER campaigns_remove_deliveries AFTER DELETE ON campaigns
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION campaigns_remove_deliveries();
