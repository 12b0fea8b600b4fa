-- Every claim and every outcome updates `status`, which the queue index
-- holds, so each update writes a new entry into every index of deliveries.
-- One index fewer: the uniqueness of (campaign, contact) is kept by an
-- index led by the contact, which also serves what `deliveries_contact`
-- did (removing a contact, a contact's deliveries); lookups by campaign
-- use the queue index, which starts with the campaign.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_campaign_id_contact_id_key;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_contact_campaign UNIQUE (contact_id, campaign_id);
DROP INDEX deliveries_contact;
