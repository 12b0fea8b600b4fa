-- Whether a bounce event was matched by an identifier a stranger cannot
-- forge (the VERP token, the signed X-Whatsup-Delivery header, a random
-- Message-ID, a verified webhook, our own SMTP conversation, an unsubscribe
-- token). Only verified events change a contact's status, unless
-- bounces.act_on_unverified is set; the others are recorded and shown.
ALTER TABLE bounce_events ADD COLUMN verified BOOLEAN NOT NULL DEFAULT FALSE;

-- Events recorded before: those matched by VERP, by the delivery row of an
-- SMTP rejection, by an unsubscribe token, or that came from a webhook
-- (whose signature or credentials were checked) were verified. The bare
-- delivery header, the old sequential Message-IDs, the address and the
-- sender's address were not.
UPDATE bounce_events SET verified = TRUE
 WHERE matched_by IN ('verp', 'delivery', 'token')
    OR source IN ('ses', 'sendgrid', 'postmark');
