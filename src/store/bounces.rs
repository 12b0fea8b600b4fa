//! The bounce intake's SQL: the messages read (`bounce_messages`, one row per
//! distinct message), the events recorded for them (`bounce_events`), the
//! lookups that match a bounce back to its contact and campaign, and the
//! actions on contacts, which go through [`record_change!`] in the same
//! transaction as the event that caused them.
//!
//! [`Store::record_bounce`] is idempotent: a message whose SHA-256 is already
//! in `bounce_messages` changes nothing and is reported as a duplicate.
//!
//! An event that is not `verified` (matched by something a stranger can
//! forge: the address, an unsigned header, a guessable Message-ID) is
//! recorded with action `recorded (unverified)` and changes no status,
//! unless [`BouncePolicy::act_on_unverified`] is set; nor does it count
//! towards the soft-bounce threshold.

use anyhow::Result;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::status::record_change;
use super::{begin_write, Dialect, StatusChange, Store};
use crate::domain::ContactStatus;

/// What the intake does to a contact for one kind of bounce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BounceAction {
    /// The contact becomes `bounced`.
    Bounce,
    /// The contact becomes `unsubscribed`.
    Unsubscribe,
    /// Only the event is recorded.
    Record,
}

impl BounceAction {
    /// Reads `bounce`, `unsubscribe` or `record`.
    pub fn parse(s: &str) -> Result<BounceAction> {
        match s {
            "bounce" => Ok(BounceAction::Bounce),
            "unsubscribe" => Ok(BounceAction::Unsubscribe),
            "record" => Ok(BounceAction::Record),
            other => anyhow::bail!("{other:?} is not one of bounce, unsubscribe, record"),
        }
    }

    fn status(self) -> Option<ContactStatus> {
        match self {
            BounceAction::Bounce => Some(ContactStatus::Bounced),
            BounceAction::Unsubscribe => Some(ContactStatus::Unsubscribed),
            BounceAction::Record => None,
        }
    }
}

/// The actions per kind, from the `[bounces]` configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BouncePolicy {
    pub hard: BounceAction,
    pub soft: BounceAction,
    pub soft_threshold: u32,
    pub soft_window_days: u32,
    pub complaint: BounceAction,
    /// Let unverified events change statuses too (`bounces.act_on_unverified`,
    /// for a site whose relay strips VERP and the signed header).
    pub act_on_unverified: bool,
}

/// The action recorded for an event that would have changed a status but is
/// not verified.
pub const UNVERIFIED_ACTION: &str = "recorded (unverified)";

impl Default for BouncePolicy {
    fn default() -> Self {
        BouncePolicy {
            hard: BounceAction::Bounce,
            soft: BounceAction::Bounce,
            soft_threshold: 3,
            soft_window_days: 30,
            complaint: BounceAction::Unsubscribe,
            act_on_unverified: false,
        }
    }
}

/// One event to record, already matched to its contact (if any).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewBounceEvent {
    pub contact_id: Option<i64>,
    pub campaign_id: Option<i64>,
    pub delivery_id: Option<i64>,
    pub email: String,
    /// `hard`, `soft`, `complaint`, `delay`, `auto_reply`, `unknown`, or
    /// `unsubscribe` for an unsubscribe request by mail.
    pub kind: String,
    pub reason: String,
    pub status: String,
    pub diagnostic: String,
    /// `verp`, `delivery_header`, `message_id`, `unsigned_delivery_header`,
    /// `old_message_id`, `address`, `token`, `from`, `delivery` (an SMTP
    /// rejection), or empty when nothing matched.
    pub matched_by: String,
    /// Matched by an identifier nobody else can forge (see the module
    /// documentation); only then does the event change a status.
    pub verified: bool,
}

/// One message read by the intake, with its events.
#[derive(Debug, Clone, PartialEq)]
pub struct NewBounceMessage {
    /// SHA-256 of the raw bytes, hex.
    pub sha256: String,
    pub message_id: String,
    /// `pipe`, `imap`, `pop3`, `ses`, `sendgrid`, `postmark`, …
    pub source: String,
    /// How the classifier read it (`dsn`, `arf`, `text`, …).
    pub format: String,
    pub events: Vec<NewBounceEvent>,
}

/// What happened to one event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventOutcome {
    pub event_id: i64,
    pub email: String,
    pub contact_id: Option<i64>,
    pub kind: String,
    pub reason: String,
    pub matched_by: String,
    pub verified: bool,
    /// `bounced`, `unsubscribed`, `already <status>`, `counted n of m`,
    /// `recorded`, `recorded (unverified)` or `unmatched`.
    pub action: String,
}

/// What [`Store::record_bounce`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordOutcome {
    /// The `bounce_messages` row (the earlier one for a duplicate).
    pub message_ref: i64,
    /// The message had been recorded before; nothing was changed.
    pub duplicate: bool,
    pub events: Vec<EventOutcome>,
}

/// A delivery as found for matching.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeliveryMatch {
    pub id: i64,
    pub campaign_id: i64,
    pub contact_id: i64,
    pub email: String,
}

/// A bounce event as listed by `bounces list` and `bounces show`.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct BounceRow {
    pub id: i64,
    pub contact_id: Option<i64>,
    pub campaign_id: Option<i64>,
    pub delivery_id: Option<i64>,
    pub email: String,
    pub kind: String,
    pub reason: String,
    pub status: String,
    pub diagnostic: String,
    pub source: String,
    pub matched_by: String,
    pub verified: bool,
    pub action: String,
    pub message_ref: Option<i64>,
    pub created_at: DateTime<Utc>,
    /// The contact's status now.
    pub contact_status: Option<String>,
    pub organisation: Option<String>,
}

/// One line of `bounces report`: an address and what came back for it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct BounceReportRow {
    pub email: String,
    pub contact_status: Option<String>,
    pub organisation: Option<String>,
    pub events: i64,
    pub hard: i64,
    pub soft: i64,
    pub complaints: i64,
    /// Events that were not verified (and so changed nothing).
    pub unverified: i64,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    /// The latest event's kind, reason, status and the server's own words.
    pub last_kind: String,
    pub last_reason: String,
    pub last_status: String,
    pub last_diagnostic: String,
}

/// Which bounce events to list or report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BounceFilter {
    /// Only events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only this kind (`hard`, `soft`, `complaint`…).
    pub kind: Option<String>,
    /// Only this reason (`user_unknown`, `mailbox_full`…).
    pub reason: Option<String>,
    /// Only verified (true) or only unverified (false) events.
    pub verified: Option<bool>,
    /// At most this many events (lists only).
    pub limit: i64,
}

impl Default for BounceFilter {
    fn default() -> Self {
        BounceFilter {
            since: None,
            kind: None,
            reason: None,
            verified: None,
            limit: 500,
        }
    }
}

impl BounceFilter {
    fn since_or_epoch(&self) -> DateTime<Utc> {
        self.since.unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
    }

    /// -1 any, 0 unverified only, 1 verified only.
    fn verified_code(&self) -> i64 {
        match self.verified {
            None => -1,
            Some(false) => 0,
            Some(true) => 1,
        }
    }
}

/// The WHERE clause of [`BounceFilter`] over `bounce_events b`: $1 since,
/// $2 kind ("" any), $3 reason ("" any), $4 verified (-1 any, 0, 1).
const FILTER_WHERE: &str = "b.created_at >= $1 AND ($2 = '' OR b.kind = $2) \
    AND ($3 = '' OR b.reason = $3) \
    AND ($4 = -1 OR (CASE WHEN b.verified THEN 1 ELSE 0 END) = $4)";

const ROW_SELECT: &str = "SELECT b.id, b.contact_id, b.campaign_id, b.delivery_id, b.email, b.kind, \
    b.reason, b.status, b.diagnostic, b.source, b.matched_by, b.verified, b.action, b.message_ref, b.created_at, \
    c.status AS contact_status, o.name AS organisation \
    FROM bounce_events b LEFT JOIN contacts c ON c.id = b.contact_id \
    LEFT JOIN organisations o ON o.id = c.organisation_id";

/// A permanent SMTP-time rejection (a `failed` delivery whose last reply
/// was 5xx) that has no `smtp` bounce event since it last changed.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Rejection {
    pub delivery_id: i64,
    pub campaign_id: i64,
    pub contact_id: i64,
    pub email: String,
    pub code: String,
    pub reply: String,
    pub updated_at: DateTime<Utc>,
}

impl Store {
    /// Up to `limit` SMTP-time rejections of `campaign` not yet recorded as
    /// bounce events. The deliveries table is the record of what the sender
    /// saw, so a crash between a batch's commit and the recording of its
    /// rejections loses nothing: the next call finds them.
    pub async fn unrecorded_rejections(&self, campaign: i64, limit: i64) -> Result<Vec<Rejection>> {
        let sql = "SELECT d.id AS delivery_id, d.campaign_id, d.contact_id, d.email, \
                   COALESCE(d.last_code, '') AS code, COALESCE(d.last_reply, '') AS reply, d.updated_at \
                   FROM deliveries d WHERE d.campaign_id = $1 AND d.status = 'failed' \
                   AND d.last_code LIKE '5%' AND NOT EXISTS (SELECT 1 FROM bounce_events e \
                   WHERE e.contact_id = d.contact_id AND e.delivery_id = d.id AND e.source = 'smtp' \
                   AND e.created_at >= d.updated_at) ORDER BY d.id LIMIT $2";
        Ok(on_pool!(self, p => sqlx::query_as::<_, Rejection>(sql)
            .bind(campaign).bind(limit).fetch_all(p).await?))
    }

    /// The delivery with this id.
    pub async fn delivery_for_bounce(&self, id: i64) -> Result<Option<DeliveryMatch>> {
        let sql = "SELECT id, campaign_id, contact_id, email FROM deliveries WHERE id = $1";
        Ok(
            on_pool!(self, p => sqlx::query_as::<_, DeliveryMatch>(sql).bind(id).fetch_optional(p).await?),
        )
    }

    /// The delivery that sent the message with this Message-ID (with or
    /// without angle brackets), and the Message-ID as stored.
    pub async fn delivery_by_message_id(
        &self,
        message_id: &str,
    ) -> Result<Option<(DeliveryMatch, String)>> {
        let bare = message_id
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>');
        let bracketed = format!("<{bare}>");
        let sql = "SELECT id, campaign_id, contact_id, email, message_id FROM deliveries \
                   WHERE message_id = $1 OR message_id = $2 ORDER BY id LIMIT 1";
        let row: Option<(i64, i64, i64, String, String)> = on_pool!(self, p => sqlx::query_as(sql)
            .bind(&bracketed).bind(bare).fetch_optional(p).await?);
        Ok(row.map(|(id, campaign_id, contact_id, email, stored)| {
            (
                DeliveryMatch {
                    id,
                    campaign_id,
                    contact_id,
                    email,
                },
                stored,
            )
        }))
    }

    /// The delivery of campaign `campaign_id` to contact `contact_id`.
    pub async fn delivery_of(
        &self,
        campaign_id: i64,
        contact_id: i64,
    ) -> Result<Option<DeliveryMatch>> {
        let sql = "SELECT id, campaign_id, contact_id, email FROM deliveries \
                   WHERE campaign_id = $1 AND contact_id = $2";
        Ok(on_pool!(self, p => sqlx::query_as::<_, DeliveryMatch>(sql)
            .bind(campaign_id).bind(contact_id).fetch_optional(p).await?))
    }

    /// Records one message and its events, and applies `policy` to the
    /// matched contacts, all in one transaction. A message already recorded
    /// (same SHA-256) changes nothing.
    pub async fn record_bounce(
        &self,
        msg: &NewBounceMessage,
        policy: &BouncePolicy,
        actor: &str,
    ) -> Result<RecordOutcome> {
        let mut outcomes = self
            .record_bounces(std::slice::from_ref(msg), policy, actor)
            .await?;
        outcomes
            .pop()
            .ok_or_else(|| anyhow::anyhow!("record_bounces returned no outcome"))
    }

    /// Records several messages like [`Store::record_bounce`], in order and
    /// all in one transaction (a webhook batch): either every one is
    /// recorded or none. Messages already recorded, also earlier in the same
    /// batch, are duplicates and change nothing. One outcome per message.
    pub async fn record_bounces(
        &self,
        msgs: &[NewBounceMessage],
        policy: &BouncePolicy,
        actor: &str,
    ) -> Result<Vec<RecordOutcome>> {
        let now = Utc::now();
        let window_start = now - Duration::days(i64::from(policy.soft_window_days));
        let insert_msg =
            "INSERT INTO bounce_messages (sha256, message_id, source, format, received_at) \
                          VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sha256) DO NOTHING RETURNING id";
        let insert_event =
            "INSERT INTO bounce_events (contact_id, campaign_id, delivery_id, email, kind, \
             reason, status, diagnostic, source, created_at, message_ref, matched_by, verified, action) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, '') RETURNING id";
        // Soft bounces (verified ones, unless $3) since the later of the
        // window start and the last delivery that was sent and drew no bounce.
        let count_soft = "SELECT COUNT(*) FROM bounce_events WHERE contact_id = $1 AND kind = 'soft' \
             AND (verified OR $3) AND created_at >= $2 AND created_at > COALESCE((SELECT MAX(d.sent_at) FROM deliveries d \
             WHERE d.contact_id = $1 AND d.status = 'sent' AND d.sent_at IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM bounce_events e WHERE e.contact_id = d.contact_id \
             AND e.campaign_id = d.campaign_id AND e.kind IN ('hard', 'soft'))), $2)";
        let select_contact = match self.dialect() {
            Dialect::Sqlite => "SELECT status FROM contacts WHERE id = $1",
            Dialect::Postgres => "SELECT status FROM contacts WHERE id = $1 FOR UPDATE",
        };
        on_pool!(self, p => {
            let mut tx = p.begin_with(begin_write(self.dialect())).await?;
            let mut outcomes = Vec::with_capacity(msgs.len());
            for msg in msgs {
                let inserted: Option<i64> = sqlx::query_scalar(insert_msg)
                    .bind(&msg.sha256).bind(&msg.message_id).bind(&msg.source).bind(&msg.format).bind(now)
                    .fetch_optional(&mut *tx).await?;
                let Some(message_ref) = inserted else {
                    let existing: i64 = sqlx::query_scalar("SELECT id FROM bounce_messages WHERE sha256 = $1")
                        .bind(&msg.sha256).fetch_one(&mut *tx).await?;
                    outcomes.push(RecordOutcome { message_ref: existing, duplicate: true, events: Vec::new() });
                    continue;
                };
                let mut events = Vec::with_capacity(msg.events.len());
                for e in &msg.events {
                    let event_id: i64 = sqlx::query_scalar(insert_event)
                        .bind(e.contact_id).bind(e.campaign_id).bind(e.delivery_id).bind(&e.email)
                        .bind(&e.kind).bind(&e.reason).bind(&e.status).bind(&e.diagnostic)
                        .bind(&msg.source).bind(now).bind(message_ref).bind(&e.matched_by)
                        .bind(e.verified).fetch_one(&mut *tx).await?;
                    let trusted = e.verified || policy.act_on_unverified;
                    let action = match e.contact_id {
                        None => "unmatched".to_string(),
                        Some(contact_id) => {
                            let (act, why, soft_count) = match e.kind.as_str() {
                                "hard" => (policy.hard, format!("hard bounce: {}", e.reason), None),
                                "complaint" => (policy.complaint, "complaint (marked as spam)".to_string(), None),
                                "unsubscribe" => (BounceAction::Unsubscribe, "unsubscribe request by mail".to_string(), None),
                                "soft" if trusted => {
                                    let n: i64 = sqlx::query_scalar(count_soft)
                                        .bind(contact_id).bind(window_start).bind(policy.act_on_unverified)
                                        .fetch_one(&mut *tx).await?;
                                    (policy.soft, format!(
                                        "{n} soft bounces within {} days, the last: {}",
                                        policy.soft_window_days, e.reason
                                    ), Some(n))
                                }
                                "soft" => (policy.soft, String::new(), None),
                                _ => (BounceAction::Record, String::new(), None),
                            };
                            let due = soft_count.map_or(true, |n| n >= i64::from(policy.soft_threshold));
                            let current: Option<String> = sqlx::query_scalar(select_contact)
                                .bind(contact_id).fetch_optional(&mut *tx).await?;
                            match (act.status(), current) {
                                (_, None) => "unmatched".to_string(),
                                (None, _) => "recorded".to_string(),
                                (Some(_), Some(_)) if !trusted => UNVERIFIED_ACTION.to_string(),
                                (Some(_), Some(_)) if !due => format!(
                                    "counted {} of {}", soft_count.unwrap_or(0), policy.soft_threshold
                                ),
                                (Some(new), Some(cur)) => {
                                    let cur = ContactStatus::parse(&cur)?;
                                    // Only a contact still mailed changes; an
                                    // unsubscribe request also overrides a bounce.
                                    let may_change = cur == ContactStatus::Active
                                        || (cur == ContactStatus::Bounced && new == ContactStatus::Unsubscribed);
                                    if cur == new || !may_change {
                                        format!("already {}", cur.as_str())
                                    } else {
                                        let change = StatusChange {
                                            status: new,
                                            reason: &why,
                                            actor,
                                            evidence: serde_json::json!({
                                                "bounce_event": event_id,
                                                "bounce_message": message_ref,
                                                "message_id": msg.message_id,
                                                "source": msg.source,
                                                "kind": e.kind,
                                                "reason": e.reason,
                                                "status": e.status,
                                                "diagnostic": e.diagnostic,
                                                "campaign_id": e.campaign_id,
                                                "matched_by": e.matched_by,
                                                "verified": e.verified,
                                                "soft_bounces": soft_count,
                                            }),
                                        };
                                        record_change!(&mut *tx, contact_id, Some(cur), &change);
                                        new.as_str().to_string()
                                    }
                                }
                            }
                        }
                    };
                    sqlx::query("UPDATE bounce_events SET action = $1 WHERE id = $2")
                        .bind(&action).bind(event_id).execute(&mut *tx).await?;
                    events.push(EventOutcome {
                        event_id,
                        email: e.email.clone(),
                        contact_id: e.contact_id,
                        kind: e.kind.clone(),
                        reason: e.reason.clone(),
                        matched_by: e.matched_by.clone(),
                        verified: e.verified,
                        action,
                    });
                }
                outcomes.push(RecordOutcome { message_ref, duplicate: false, events });
            }
            if outcomes.iter().all(|o| o.duplicate) {
                tx.rollback().await?;
            } else {
                tx.commit().await?;
            }
            Ok(outcomes)
        })
    }

    /// Bounce events, newest first, as the filter says.
    pub async fn list_bounces(&self, f: &BounceFilter) -> Result<Vec<BounceRow>> {
        let sql = format!("{ROW_SELECT} WHERE {FILTER_WHERE} ORDER BY b.id DESC LIMIT $5");
        Ok(on_pool!(self, p => sqlx::query_as::<_, BounceRow>(&sql)
            .bind(f.since_or_epoch()).bind(f.kind.as_deref().unwrap_or(""))
            .bind(f.reason.as_deref().unwrap_or("")).bind(f.verified_code())
            .bind(f.limit.clamp(1, 100_000)).fetch_all(p).await?))
    }

    /// The kinds and reasons of recorded events with their counts, for a
    /// filter's choices.
    pub async fn bounce_reasons(&self) -> Result<Vec<(String, String, i64)>> {
        let sql = "SELECT kind, reason, COUNT(*) FROM bounce_events GROUP BY kind, reason \
                   ORDER BY kind, reason";
        Ok(on_pool!(self, p => sqlx::query_as::<_, (String, String, i64)>(sql).fetch_all(p).await?))
    }

    /// One bounce event.
    pub async fn bounce_by_id(&self, id: i64) -> Result<Option<BounceRow>> {
        let sql = format!("{ROW_SELECT} WHERE b.id = $1");
        Ok(
            on_pool!(self, p => sqlx::query_as::<_, BounceRow>(&sql).bind(id).fetch_optional(p).await?),
        )
    }

    /// Bounce events for an address, oldest first.
    pub async fn bounces_for_email(&self, email: &str) -> Result<Vec<BounceRow>> {
        let sql = format!("{ROW_SELECT} WHERE b.email = $1 ORDER BY b.id");
        Ok(on_pool!(self, p => sqlx::query_as::<_, BounceRow>(&sql)
            .bind(email.trim().to_lowercase()).fetch_all(p).await?))
    }

    /// One row per address with events the filter keeps (failures,
    /// complaints, delays, auto-replies, unsubscribe requests), the most
    /// recent first; its `limit` is ignored.
    pub async fn bounce_report(&self, f: &BounceFilter) -> Result<Vec<BounceReportRow>> {
        let sql = format!("SELECT g.email, c.status AS contact_status, o.name AS organisation, g.events, g.hard, \
             g.soft, g.complaints, g.unverified, g.first_at, g.last_at, l.kind AS last_kind, l.reason AS last_reason, \
             l.status AS last_status, l.diagnostic AS last_diagnostic FROM \
             (SELECT email, COUNT(*) AS events, \
              SUM(CASE WHEN kind = 'hard' THEN 1 ELSE 0 END) AS hard, \
              SUM(CASE WHEN kind = 'soft' THEN 1 ELSE 0 END) AS soft, \
              SUM(CASE WHEN kind = 'complaint' THEN 1 ELSE 0 END) AS complaints, \
              SUM(CASE WHEN verified THEN 0 ELSE 1 END) AS unverified, \
              MIN(created_at) AS first_at, MAX(created_at) AS last_at, MAX(id) AS last_id \
              FROM bounce_events b WHERE {FILTER_WHERE} GROUP BY email) g \
             JOIN bounce_events l ON l.id = g.last_id \
             LEFT JOIN contacts c ON c.id = l.contact_id \
             LEFT JOIN organisations o ON o.id = c.organisation_id \
             ORDER BY g.last_at DESC, g.email");
        Ok(
            on_pool!(self, p => sqlx::query_as::<_, BounceReportRow>(&sql)
            .bind(f.since_or_epoch()).bind(f.kind.as_deref().unwrap_or(""))
            .bind(f.reason.as_deref().unwrap_or("")).bind(f.verified_code())
            .fetch_all(p).await?),
        )
    }
}
