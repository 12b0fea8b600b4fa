-- An import inserts thousands of contacts and tag links per statement.
-- Their three foreign keys checked and locked the organisation, contact and
-- tag row by row: about half of a PostgreSQL import's time (13.0 s, against
-- 6.9 s without them, for 200,000 rows). The same rules now hold through
-- triggers that check and lock once per statement, as 0009 does for
-- deliveries: lock what the new rows refer to, as a foreign key would, and
-- count it, looking each id up by primary key.
ALTER TABLE contacts DROP CONSTRAINT contacts_organisation_id_fkey;
ALTER TABLE contact_tags DROP CONSTRAINT contact_tags_contact_id_fkey;
ALTER TABLE contact_tags DROP CONSTRAINT contact_tags_tag_id_fkey;

CREATE FUNCTION contacts_check_organisations() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    organisation_ids bigint[];
    found bigint;
BEGIN
    SELECT array_agg(DISTINCT organisation_id) INTO organisation_ids
        FROM new_rows WHERE organisation_id IS NOT NULL;
    SELECT count(*) INTO found
        FROM (SELECT 1 FROM organisations WHERE id = ANY (organisation_ids) FOR KEY SHARE) AS locked;
    IF found < cardinality(organisation_ids) THEN
        RAISE foreign_key_violation
            USING MESSAGE = 'a contact refers to an organisation that does not exist';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER contacts_organisations AFTER INSERT ON contacts
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION contacts_check_organisations();

-- Contacts are updated one at a time (and an unchanged organisation is not
-- checked again, as with a foreign key).
CREATE FUNCTION contacts_check_organisation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.organisation_id IS NOT NULL
       AND NEW.organisation_id IS DISTINCT FROM OLD.organisation_id THEN
        PERFORM 1 FROM organisations WHERE id = NEW.organisation_id FOR KEY SHARE;
        IF NOT FOUND THEN
            RAISE foreign_key_violation
                USING MESSAGE = 'a contact refers to an organisation that does not exist';
        END IF;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER contacts_organisation BEFORE UPDATE OF organisation_id ON contacts
    FOR EACH ROW EXECUTE FUNCTION contacts_check_organisation();

CREATE FUNCTION contact_tags_check_references() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    contact_ids bigint[];
    tag_ids bigint[];
    found bigint;
BEGIN
    SELECT array_agg(DISTINCT contact_id), array_agg(DISTINCT tag_id)
        INTO contact_ids, tag_ids FROM new_rows;
    SELECT count(*) INTO found
        FROM (SELECT 1 FROM contacts WHERE id = ANY (contact_ids) FOR KEY SHARE) AS locked;
    IF found < cardinality(contact_ids) THEN
        RAISE foreign_key_violation
            USING MESSAGE = 'a tag link refers to a contact that does not exist';
    END IF;
    SELECT count(*) INTO found
        FROM (SELECT 1 FROM tags WHERE id = ANY (tag_ids) FOR KEY SHARE) AS locked;
    IF found < cardinality(tag_ids) THEN
        RAISE foreign_key_violation
            USING MESSAGE = 'a tag link refers to a tag that does not exist';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER contact_tags_references AFTER INSERT ON contact_tags
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION contact_tags_check_references();

-- A link never moves to another contact or tag.
CREATE FUNCTION contact_tags_keep_references() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.contact_id IS DISTINCT FROM OLD.contact_id OR NEW.tag_id IS DISTINCT FROM OLD.tag_id THEN
        RAISE foreign_key_violation
            USING MESSAGE = 'a tag link''s contact and tag cannot change';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER contact_tags_keep_references BEFORE UPDATE ON contact_tags
    FOR EACH ROW EXECUTE FUNCTION contact_tags_keep_references();

-- ON DELETE CASCADE and ON DELETE SET NULL, once per statement.
CREATE FUNCTION contacts_remove_links() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM contact_tags WHERE contact_id IN (SELECT id FROM old_rows);
    RETURN NULL;
END
$$;
CREATE TRIGGER contacts_remove_links AFTER DELETE ON contacts
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION contacts_remove_links();

CREATE FUNCTION tags_remove_links() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM contact_tags WHERE tag_id IN (SELECT id FROM old_rows);
    RETURN NULL;
END
$$;
CREATE TRIGGER tags_remove_links AFTER DELETE ON tags
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tags_remove_links();

CREATE FUNCTION organisations_release_contacts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE contacts SET organisation_id = NULL
        WHERE organisation_id IN (SELECT id FROM old_rows);
    RETURN NULL;
END
$$;
CREATE TRIGGER organisations_release_contacts AFTER DELETE ON organisations
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION organisations_release_contacts();
