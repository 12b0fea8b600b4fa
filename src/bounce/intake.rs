//! The bounce intake: one raw message in, its result committed to the store.
//!
//! Every way in that delivers a whole message (the `bounces ingest` pipe,
//! IMAP polling) ends in [`Intake::ingest`], which
//!
//! 1. refuses a message over `bounces.max_message_bytes` or one that is not
//!    a message at all ([`IntakeError::is_permanent`]: the caller sets it
//!    aside in the quarantine);
//! 2. classifies it ([`classify`](super::classify));
//! 3. matches each result to its contact and campaign, first by the
//!    identifiers a stranger cannot forge (**verified**):
//!    - the **VERP** address the bounce was delivered to (the envelope
//!      recipient the MTA passes, else `X-Original-To`/`Delivered-To`/…),
//!      whose signed token names the campaign and contact;
//!    - the returned message's **`X-Whatsup-Delivery`** header, a signed
//!      token naming the campaign and contact (`delivery_header`);
//!    - its **Message-ID**, if it is one of the random ones
//!      ([`crate::delivery::message_id`]) of a delivery (`message_id`);
//!
//!    then by what anyone can write (**unverified**):
//!    - a bare delivery id in `X-Whatsup-Delivery`, as versions before the
//!      signed header wrote it (`unsigned_delivery_header`);
//!    - an old, sequential Message-ID of a delivery (`old_message_id`);
//!    - the failed **address** itself (a contact with that address; the
//!      campaign from `X-Whatsup-Campaign` if that campaign has a delivery to
//!      the contact).
//!
//!    All but the address are used for a result only when the message
//!    reports one recipient or the result's address is the delivery's
//!    address;
//! 4. records the message and its events and applies the `[bounces]`
//!    actions in one transaction ([`Store::record_bounce`]), idempotently:
//!    the same message (same bytes) a second time changes nothing. An
//!    unverified event is recorded (and shown by `bounces list`, `bounces
//!    report` and /metrics) but changes no status, unless
//!    `bounces.act_on_unverified` is set. See docs/bounces.md, "Forged
//!    bounces and complaints".
//!
//! SMTP-time rejections take a shorter path ([`Intake::record_rejections`]):
//! the sender commits them on the delivery rows, and the engine then records
//! each one as a bounce event with the same classification and actions.
//!
//! The webhooks of sending services (`src/web/webhooks.rs`) get structured
//! reports instead of messages: they classify each recipient with
//! [`reported`](super::reported), match it with the same
//! [`Intake::match_result`] (fed by [`MatchHints`] from the provider's
//! copy of the original headers) and record through [`Intake::record`].
//!
//! A mail to the List-Unsubscribe `mailto:` address (`newsletter.unsubscribe_mailto`)
//! that is not a bounce or an auto-reply is an **unsubscribe request**. Its
//! subject or body may carry the recipient's unsubscribe token (the sender
//! puts it in the mailto's subject), which identifies the contact; without a
//! valid token the `From` address must be a contact's address. Either way
//! the contact becomes `unsubscribed` through the same recording path, with
//! kind `unsubscribe` and `matched_by` `token` or `from`. A `From` address
//! can be forged, so a request matched by it alone is unverified.
//!
//! SMTP-time rejections (our own conversation) and the webhooks' reports
//! (whose signatures or credentials were checked) are verified.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use super::rules::{decide, Evidence};
use super::{classify, Classification, ClassifyError, Format, Kind, Reason, RecipientResult};
use crate::config::Config;
use crate::delivery::message_id;
use crate::delivery::tokens::{Purpose, TokenKeys};
use crate::delivery::verp::{BounceTarget, Verp};
use crate::store::bounces::{
    BounceAction, BouncePolicy, DeliveryMatch, NewBounceEvent, NewBounceMessage, RecordOutcome,
    Rejection,
};
use crate::store::Store;

/// Why a message was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("the message is {size} bytes, more than bounces.max_message_bytes ({max})")]
    TooLarge { size: usize, max: usize },
    #[error("not an e-mail message: {0}")]
    Unreadable(#[from] ClassifyError),
    #[error("recording the result failed: {0:#}")]
    Store(anyhow::Error),
}

impl IntakeError {
    /// The message itself is the problem (set it aside); otherwise the
    /// store is, and the same message should be tried again later.
    pub fn is_permanent(&self) -> bool {
        !matches!(self, IntakeError::Store(_))
    }
}

/// The result of one ingested message.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Ingested {
    pub sha256: String,
    pub classification: Classification,
    /// Set when the message was read as an unsubscribe request.
    pub unsubscribe_request: bool,
    #[serde(flatten)]
    pub outcome: RecordOutcome,
}

/// Reads messages into the store.
#[derive(Debug, Clone)]
pub struct Intake {
    store: Store,
    verp: Option<Verp>,
    keys: Option<TokenKeys>,
    policy: BouncePolicy,
    unsubscribe_address: Option<String>,
    max_bytes: usize,
}

/// How one result was matched.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Match {
    pub contact_id: Option<i64>,
    pub campaign_id: Option<i64>,
    pub delivery_id: Option<i64>,
    /// `verp`, `delivery_header`, `message_id`, `unsigned_delivery_header`,
    /// `old_message_id`, `address`, or empty.
    pub matched_by: &'static str,
    /// Matched by an identifier nobody else can forge.
    pub verified: bool,
}

/// What a report says about the message that failed, for matching its
/// results back (see the module documentation for the order).
#[derive(Debug, Default, Clone)]
pub struct MatchHints {
    /// The VERP envelope sender of the original message, already read
    /// ([`Intake::verp_target`]).
    pub verp: Option<BounceTarget>,
    /// Its `X-Whatsup-Delivery` header: a signed token, or a bare delivery
    /// id from versions before it was signed.
    pub delivery: Option<String>,
    /// Its Message-ID, with or without angle brackets.
    pub message_id: Option<String>,
    /// Its `X-Whatsup-Campaign` header.
    pub campaign: Option<String>,
    /// How many recipients the report has results for: the first three
    /// ways are used for a result only when this is 1 or the result's
    /// address is the delivery's.
    pub results: usize,
}

impl Intake {
    /// An intake with the token keys, VERP address, unsubscribe address and
    /// actions of `config`. Without a token secret, VERP and token matching
    /// are off and the other ways still work.
    pub fn from_config(store: Store, config: &Config) -> Result<Intake> {
        let secret = config.security.token_secret.expose();
        let keys = if secret.is_empty() {
            None
        } else {
            let previous: Vec<&str> = config
                .security
                .previous_token_secrets
                .iter()
                .map(|s| s.expose())
                .collect();
            Some(TokenKeys::new(secret, &previous).context("security.token_secret")?)
        };
        let verp = match (&keys, config.sending.bounce_address.is_empty()) {
            (Some(keys), false) => Some(
                Verp::new(&config.sending.bounce_address, keys.clone())
                    .context("sending.bounce_address")?,
            ),
            _ => None,
        };
        let b = &config.bounces;
        let policy = BouncePolicy {
            hard: BounceAction::parse(&b.hard_action).context("bounces.hard_action")?,
            soft: BounceAction::parse(&b.soft_action).context("bounces.soft_action")?,
            soft_threshold: b.soft_threshold,
            soft_window_days: b.soft_window_days,
            complaint: BounceAction::parse(&b.complaint_action)
                .context("bounces.complaint_action")?,
            act_on_unverified: b.act_on_unverified,
        };
        let mailto = config.newsletter.unsubscribe_mailto.trim();
        Ok(Intake {
            store,
            verp,
            keys,
            policy,
            unsubscribe_address: (!mailto.is_empty()).then(|| mailto.to_lowercase()),
            max_bytes: usize::try_from(b.max_message_bytes).unwrap_or(usize::MAX),
        })
    }

    /// The store this intake writes to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Records messages read elsewhere (webhooks) with this intake's
    /// actions, all in one transaction ([`Store::record_bounces`]).
    pub async fn record(
        &self,
        messages: &[NewBounceMessage],
        source: &str,
    ) -> Result<Vec<RecordOutcome>> {
        self.store
            .record_bounces(messages, &self.policy, &format!("bounce:{source}"))
            .await
    }

    /// Classifies, matches and records one raw message. `source` names the
    /// way in (`pipe`, `imap`, …); `envelope_recipient` is the address the
    /// MTA delivered it to, if known (Postfix `${original_recipient}`).
    pub async fn ingest(
        &self,
        raw: &[u8],
        source: &str,
        envelope_recipient: Option<&str>,
    ) -> Result<Ingested, IntakeError> {
        if raw.len() > self.max_bytes {
            return Err(IntakeError::TooLarge {
                size: raw.len(),
                max: self.max_bytes,
            });
        }
        let classification = classify(raw)?;
        let sha256 = hex(&Sha256::digest(raw));
        let envelope = envelope_recipient
            .map(|a| a.trim().to_lowercase())
            .filter(|a| !a.is_empty())
            .or_else(|| classification.envelope_to.clone());

        let mut events = Vec::new();
        let mut unsubscribe_request = false;
        if self.is_unsubscribe_request(&classification, envelope.as_deref()) {
            unsubscribe_request = true;
            events.push(
                self.unsubscribe_event(raw)
                    .await
                    .map_err(IntakeError::Store)?,
            );
        } else {
            let original = &classification.original;
            let hints = MatchHints {
                verp: envelope.as_deref().and_then(|a| self.verp_target(a)),
                delivery: original.delivery.clone(),
                message_id: original.message_id.clone(),
                campaign: original.campaign.clone(),
                results: classification.recipients.len(),
            };
            for r in &classification.recipients {
                let m = self
                    .match_result(&r.address, &hints)
                    .await
                    .map_err(IntakeError::Store)?;
                events.push(event(r, m));
            }
        }
        let message = NewBounceMessage {
            sha256: sha256.clone(),
            message_id: message_id(raw).unwrap_or_default(),
            source: source.to_string(),
            format: if unsubscribe_request {
                "unsubscribe".to_string()
            } else {
                format_name(classification.format).to_string()
            },
            events,
        };
        let outcome = self
            .store
            .record_bounce(&message, &self.policy, &format!("bounce:{source}"))
            .await
            .map_err(IntakeError::Store)?;
        Ok(Ingested {
            sha256,
            classification,
            unsubscribe_request,
            outcome,
        })
    }

    /// Records campaign `campaign`'s SMTP-time rejections (the fourth way
    /// in) that are not recorded yet: each is classified from its reply code
    /// and text like a DSN recipient, and goes through the same recording
    /// and actions as a bounce message (source `smtp`, matched by
    /// `delivery`). Keyed by delivery and time of failure, so calling this
    /// again, or after a crash, records each rejection once. Recorded in
    /// batches of 500, one transaction each. Returns how many were recorded.
    pub async fn record_rejections(&self, campaign: i64) -> Result<usize> {
        let mut done = 0;
        loop {
            let batch = self.store.unrecorded_rejections(campaign, 500).await?;
            if batch.is_empty() {
                return Ok(done);
            }
            let messages: Vec<_> = batch.iter().map(rejection_message).collect();
            self.store
                .record_bounces(&messages, &self.policy, "bounce:smtp")
                .await?;
            done += messages.len();
        }
    }

    /// The campaign and contact a VERP address names, if it is one of ours
    /// with a valid token.
    pub fn verp_target(&self, address: &str) -> Option<BounceTarget> {
        let address = address.trim().trim_start_matches('<').trim_end_matches('>');
        self.verp.as_ref()?.parse(address).ok()
    }

    /// Matches one failed `address` (lower-case) to its contact and
    /// campaign: first by VERP, the signed delivery header and a random
    /// Message-ID (verified), then by a bare delivery id, an old Message-ID
    /// and the address itself (unverified). See the module documentation.
    pub async fn match_result(&self, address: &str, hints: &MatchHints) -> Result<Match> {
        let results = hints.results;
        if let Some(t) = hints.verp {
            if let Some(m) = self.match_signed(address, results, t, "verp").await? {
                return Ok(m);
            }
        }
        let header = hints
            .delivery
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty());
        let signed = header.and_then(|h| self.delivery_target(h));
        if let Some(t) = signed {
            if let Some(m) = self
                .match_signed(address, results, t, "delivery_header")
                .await?
            {
                return Ok(m);
            }
        }
        let fits = |d: &DeliveryMatch| results == 1 || d.email == address;
        let by_message_id = match hints.message_id.as_deref().filter(|m| !m.trim().is_empty()) {
            Some(mid) => self
                .store
                .delivery_by_message_id(mid)
                .await?
                .filter(|(d, _)| fits(d)),
            None => None,
        };
        // Only a random Message-ID, as the store has it, cannot be guessed.
        if let Some((d, stored)) = by_message_id.as_ref() {
            if message_id::is_random(stored) {
                return Ok(from_delivery(d.clone(), "message_id", true));
            }
        }
        if let Some(id) = header
            .filter(|_| signed.is_none())
            .and_then(|h| h.parse().ok())
        {
            if let Some(d) = self.store.delivery_for_bounce(id).await? {
                if fits(&d) {
                    return Ok(from_delivery(d, "unsigned_delivery_header", false));
                }
            }
        }
        if let Some((d, _)) = by_message_id {
            return Ok(from_delivery(d, "old_message_id", false));
        }
        if let Some(contact) = self.store.contact(address).await? {
            let delivery = match hints
                .campaign
                .as_deref()
                .and_then(|x| x.trim().parse().ok())
            {
                Some(campaign) => self.store.delivery_of(campaign, contact.id).await?,
                None => None,
            };
            return Ok(Match {
                contact_id: Some(contact.id),
                campaign_id: delivery.as_ref().map(|d| d.campaign_id),
                delivery_id: delivery.map(|d| d.id),
                matched_by: "address",
                verified: false,
            });
        }
        Ok(Match::default())
    }

    /// The campaign and contact a signed `X-Whatsup-Delivery` value names.
    pub fn delivery_target(&self, value: &str) -> Option<BounceTarget> {
        let value = value.trim();
        if value.len() > 64 {
            return None;
        }
        let claims = self
            .keys
            .as_ref()?
            .verify_for(Purpose::Delivery, value)
            .ok()?;
        Some(BounceTarget {
            campaign_id: claims.campaign_id,
            contact_id: claims.contact_id,
        })
    }

    /// The verified match of a signed identifier naming `t`, if its contact
    /// exists and fits the result (one result, or the contact's address).
    async fn match_signed(
        &self,
        address: &str,
        results: usize,
        t: BounceTarget,
        by: &'static str,
    ) -> Result<Option<Match>> {
        let (Ok(contact_id), Ok(campaign_id)) =
            (i64::try_from(t.contact_id), i64::try_from(t.campaign_id))
        else {
            return Ok(None);
        };
        let Some(contact) = self.store.contact_by_id(contact_id).await? else {
            return Ok(None);
        };
        if results != 1 && contact.email != address {
            return Ok(None);
        }
        let delivery = self.store.delivery_of(campaign_id, contact_id).await?;
        Ok(Some(Match {
            contact_id: Some(contact_id),
            campaign_id: delivery.as_ref().map(|d| d.campaign_id),
            delivery_id: delivery.map(|d| d.id),
            matched_by: by,
            verified: true,
        }))
    }

    fn is_unsubscribe_request(&self, c: &Classification, envelope: Option<&str>) -> bool {
        let Some(address) = &self.unsubscribe_address else {
            return false;
        };
        if c.is_bounce || c.format != Format::None {
            return false;
        }
        envelope.is_some_and(|e| e == address || same_mailbox(e, address))
    }

    async fn unsubscribe_event(&self, raw: &[u8]) -> Result<NewBounceEvent> {
        let parsed = mail_parser::MessageParser::default().parse(raw);
        let subject = parsed
            .as_ref()
            .and_then(|m| m.subject())
            .unwrap_or_default()
            .to_string();
        let body = parsed
            .as_ref()
            .and_then(|m| m.body_text(0))
            .map(|b| b.chars().take(10_000).collect::<String>())
            .unwrap_or_default();
        let from = parsed
            .as_ref()
            .and_then(|m| m.from())
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .map(|a| a.trim().to_lowercase())
            .unwrap_or_default();
        let diagnostic: String = subject.chars().take(200).collect();
        if let Some(keys) = &self.keys {
            let token = subject
                .split(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '-' || ch == '_'))
                .chain(
                    body.split(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')),
                )
                .filter(|w| w.len() >= 24 && w.len() <= 64)
                .find_map(|w| keys.verify_for(Purpose::Unsubscribe, w).ok());
            if let Some(claims) = token {
                let contact_id = i64::try_from(claims.contact_id)?;
                if let Some(contact) = self.store.contact_by_id(contact_id).await? {
                    let campaign = i64::try_from(claims.campaign_id)?;
                    let delivery = self.store.delivery_of(campaign, contact_id).await?;
                    return Ok(NewBounceEvent {
                        contact_id: Some(contact.id),
                        campaign_id: delivery.as_ref().map(|d| d.campaign_id),
                        delivery_id: delivery.map(|d| d.id),
                        email: contact.email,
                        kind: "unsubscribe".into(),
                        reason: "unsubscribe_request".into(),
                        status: String::new(),
                        diagnostic,
                        matched_by: "token".into(),
                        verified: true,
                    });
                }
            }
        }
        let contact = if from.is_empty() {
            None
        } else {
            self.store.contact(&from).await?
        };
        Ok(NewBounceEvent {
            contact_id: contact.as_ref().map(|c| c.id),
            campaign_id: None,
            delivery_id: None,
            email: from,
            kind: "unsubscribe".into(),
            reason: "unsubscribe_request".into(),
            status: String::new(),
            diagnostic,
            matched_by: if contact.is_some() { "from" } else { "" }.into(),
            // Anyone can write any From address.
            verified: false,
        })
    }
}

fn from_delivery(d: DeliveryMatch, by: &'static str, verified: bool) -> Match {
    Match {
        contact_id: Some(d.contact_id),
        campaign_id: Some(d.campaign_id),
        delivery_id: Some(d.id),
        matched_by: by,
        verified,
    }
}

/// The event to record for one result and how it was matched.
pub fn event(r: &RecipientResult, m: Match) -> NewBounceEvent {
    NewBounceEvent {
        contact_id: m.contact_id,
        campaign_id: m.campaign_id,
        delivery_id: m.delivery_id,
        email: r.address.clone(),
        kind: kind_name(r.kind).to_string(),
        reason: reason_name(r.reason).to_string(),
        status: r.status.clone().unwrap_or_default(),
        diagnostic: r.diagnostic.clone().unwrap_or_default(),
        matched_by: m.matched_by.to_string(),
        verified: m.verified,
    }
}

/// `local+detail@domain` and `local@domain` are the same mailbox.
fn same_mailbox(a: &str, b: &str) -> bool {
    let strip = |s: &str| -> Option<(String, String)> {
        let (local, domain) = s.rsplit_once('@')?;
        let local = local.split('+').next().unwrap_or(local);
        Some((local.to_string(), domain.to_string()))
    };
    matches!((strip(a), strip(b)), (Some(x), Some(y)) if x == y)
}

fn message_id(raw: &[u8]) -> Option<String> {
    let parsed = mail_parser::MessageParser::default().parse_headers(raw)?;
    parsed.message_id().map(|m| m.to_string())
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The snake_case name of a kind, as stored.
/// The bounce message for one SMTP-time rejection.
fn rejection_message(r: &Rejection) -> NewBounceMessage {
    let enhanced = super::scan::find_enhanced(&r.reply);
    let smtp = r.code.get(..3).and_then(|c| c.parse::<u16>().ok());
    let evidence = Evidence {
        action: Some("failed"),
        enhanced: enhanced.as_deref(),
        smtp,
        text: &r.reply,
        notice_class: Some(5),
        notice_is_delay: false,
    };
    let (kind, reason) = decide(&evidence).unwrap_or((Kind::Hard, Reason::Other));
    let key = format!(
        "smtp-rejection\0{}\0{}",
        r.delivery_id,
        r.updated_at.timestamp_micros()
    );
    NewBounceMessage {
        sha256: hex(&Sha256::digest(key.as_bytes())),
        message_id: String::new(),
        source: "smtp".into(),
        format: "smtp".into(),
        events: vec![NewBounceEvent {
            contact_id: Some(r.contact_id),
            campaign_id: Some(r.campaign_id),
            delivery_id: Some(r.delivery_id),
            email: r.email.clone(),
            kind: kind_name(kind).into(),
            reason: reason_name(reason).into(),
            status: enhanced.unwrap_or_else(|| r.code.clone()),
            diagnostic: r.reply.clone(),
            matched_by: "delivery".into(),
            verified: true,
        }],
    }
}

pub fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Hard => "hard",
        Kind::Soft => "soft",
        Kind::Complaint => "complaint",
        Kind::Delay => "delay",
        Kind::AutoReply => "auto_reply",
        Kind::Unknown => "unknown",
    }
}

/// The snake_case name of a reason, as stored.
pub fn reason_name(r: Reason) -> &'static str {
    match r {
        Reason::UserUnknown => "user_unknown",
        Reason::MailboxFull => "mailbox_full",
        Reason::HostUnknown => "host_unknown",
        Reason::Expired => "expired",
        Reason::Filtered => "filtered",
        Reason::Blocked => "blocked",
        Reason::SpamDetected => "spam_detected",
        Reason::MessageTooLarge => "message_too_large",
        Reason::Policy => "policy",
        Reason::NetworkError => "network_error",
        Reason::SystemError => "system_error",
        Reason::Suspended => "suspended",
        Reason::NotAccept => "not_accept",
        Reason::SenderRejected => "sender_rejected",
        Reason::ContentError => "content_error",
        Reason::HasMoved => "has_moved",
        Reason::AuthFailure => "auth_failure",
        Reason::RateLimited => "rate_limited",
        Reason::Complaint => "complaint",
        Reason::Vacation => "vacation",
        Reason::Other => "other",
        Reason::Unknown => "unknown",
    }
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Dsn => "dsn",
        Format::GlobalDsn => "global_dsn",
        Format::Arf => "arf",
        Format::Text => "text",
        Format::AutoReply => "auto_reply",
        Format::None => "none",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plus_detail_is_the_same_mailbox() {
        assert!(same_mailbox(
            "unsubscribe+abc@example.org",
            "unsubscribe@example.org"
        ));
        assert!(!same_mailbox(
            "other@example.org",
            "unsubscribe@example.org"
        ));
    }

    #[test]
    fn stored_names_match_the_serialised_vocabulary() {
        for r in [
            Reason::UserUnknown,
            Reason::MessageTooLarge,
            Reason::HasMoved,
        ] {
            assert_eq!(
                serde_json::to_value(r).unwrap(),
                serde_json::Value::String(reason_name(r).into())
            );
        }
        for k in [Kind::Hard, Kind::AutoReply] {
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::Value::String(kind_name(k).into())
            );
        }
    }
}
