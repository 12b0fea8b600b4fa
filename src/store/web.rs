//! What the recipients' web pages need from the database: unsubscribes and
//! their undo in batches (group commit), whether a contact received a
//! campaign, the archive of sent issues, operational counts for /metrics,
//! and tracking counts.
//!
//! Status changes go through [`record_change!`](super::status) like every
//! other: the actor is `web` and the evidence names the campaign from the
//! token and how the request came (`one-click`, `form` or `undo`).

use anyhow::Result;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::types::Json;

use super::{begin_write, status, Dialect, StatusChange, Store};
use crate::domain::ContactStatus;

/// The actor written to the audit trail for changes made on the web pages.
pub const WEB_ACTOR: &str = "web";

/// A change a recipient asks for on the web pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebChange {
    /// Unsubscribe `contact`; `campaign` is the one the token came from;
    /// `one_click` tells an RFC 8058 POST from a form submit.
    Unsubscribe {
        contact: i64,
        campaign: i64,
        one_click: bool,
    },
    /// Undo an unsubscribe, only if the contact's latest status change is an
    /// unsubscribe made on the web with a token of `campaign`.
    Resubscribe { contact: i64, campaign: i64 },
}

impl WebChange {
    fn contact(&self) -> i64 {
        match *self {
            WebChange::Unsubscribe { contact, .. } | WebChange::Resubscribe { contact, .. } => {
                contact
            }
        }
    }
}

/// What a [`WebChange`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebOutcome {
    /// The status changed (and the audit row was written).
    Changed,
    /// Nothing to do: the contact already had the requested status.
    AlreadyDone,
    /// Refused: the contact is bounced or blocklisted (never reactivated
    /// from the web), or the unsubscribe to undo was not made by this token.
    Refused(ContactStatus),
    /// No such contact (deleted since the mail was sent).
    NoContact,
}

/// A sent issue, for the public archive.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ArchivedIssue {
    pub number: i64,
    pub subject: String,
    pub issue_date: NaiveDate,
    /// The newest revision sent.
    pub revision: i64,
    /// When the first campaign with it started.
    pub sent_at: DateTime<Utc>,
}

/// Counts for /metrics, read from the database at scrape time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StoreMetrics {
    pub sent: i64,
    pub failed: i64,
    /// Attempts beyond the first, over all deliveries.
    pub retried: i64,
    /// Deliveries waiting: pending, retry, or claimed (sending).
    pub queue_depth: i64,
    /// Contacts that are unsubscribed now.
    pub unsubscribed: i64,
    /// Unsubscribe events in the audit trail, ever.
    pub unsubscribe_events: i64,
    /// Bounce events recorded, ever.
    pub bounces: i64,
    /// Of those, the ones that were not verified (and changed nothing).
    pub unverified_bounces: i64,
    /// Running campaigns that wait for an unreachable relay.
    pub waiting_for_relay: i64,
}

/// Per-campaign tracking counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TrackingCounts {
    pub opens: i64,
    /// Clicks by URL, most clicked first.
    pub clicks: Vec<(String, i64)>,
}

impl Store {
    /// Applies a batch of web changes in one write transaction (one commit,
    /// one fsync) and returns one outcome per change, in order. Changes of
    /// one contact apply in the order given; rows are locked in contact order
    /// so that concurrent batches cannot deadlock on PostgreSQL.
    pub async fn apply_web_changes(&self, changes: &[WebChange]) -> Result<Vec<WebOutcome>> {
        let mut order: Vec<usize> = (0..changes.len()).collect();
        order.sort_by_key(|&i| changes[i].contact());
        let mut outcomes = vec![WebOutcome::NoContact; changes.len()];
        let select = match self.dialect() {
            Dialect::Sqlite => "SELECT status FROM contacts WHERE id = $1",
            Dialect::Postgres => "SELECT status FROM contacts WHERE id = $1 FOR UPDATE",
        };
        let last_event = "SELECT actor, new_status, evidence FROM status_events \
                          WHERE contact_id = $1 ORDER BY id DESC LIMIT 1";
        on_pool!(self, p => {
            let mut tx = p.begin_with(begin_write(self.dialect())).await?;
            for i in order {
                let change = changes[i];
                let id = change.contact();
                let row: Option<String> =
                    sqlx::query_scalar(select).bind(id).fetch_optional(&mut *tx).await?;
                let Some(old) = row else {
                    outcomes[i] = WebOutcome::NoContact;
                    continue;
                };
                let old = ContactStatus::parse(&old)?;
                outcomes[i] = match change {
                    WebChange::Unsubscribe { campaign, one_click, .. } => match old {
                        ContactStatus::Active => {
                            let method = if one_click { "one-click" } else { "form" };
                            let c = StatusChange {
                                status: ContactStatus::Unsubscribed,
                                reason: if one_click {
                                    "unsubscribed with one click (RFC 8058)"
                                } else {
                                    "unsubscribed on the web page"
                                },
                                actor: WEB_ACTOR,
                                evidence: serde_json::json!({ "campaign": campaign, "method": method }),
                            };
                            status::record_change!(&mut *tx, id, Some(old), &c);
                            WebOutcome::Changed
                        }
                        ContactStatus::Unsubscribed => WebOutcome::AlreadyDone,
                        other => WebOutcome::Refused(other),
                    },
                    WebChange::Resubscribe { campaign, .. } => match old {
                        ContactStatus::Active => WebOutcome::AlreadyDone,
                        ContactStatus::Unsubscribed => {
                            let last: Option<(String, String, Json<serde_json::Value>)> =
                                sqlx::query_as(last_event).bind(id).fetch_optional(&mut *tx).await?;
                            let made_here = last.is_some_and(|(actor, new, ev)| {
                                actor == WEB_ACTOR
                                    && new == ContactStatus::Unsubscribed.as_str()
                                    && ev.0.get("campaign").and_then(|c| c.as_i64()) == Some(campaign)
                            });
                            if made_here {
                                let c = StatusChange {
                                    status: ContactStatus::Active,
                                    reason: "undid the unsubscribe on the web page",
                                    actor: WEB_ACTOR,
                                    evidence: serde_json::json!({ "campaign": campaign, "method": "undo" }),
                                };
                                status::record_change!(&mut *tx, id, Some(old), &c);
                                WebOutcome::Changed
                            } else {
                                WebOutcome::Refused(old)
                            }
                        }
                        other => WebOutcome::Refused(other),
                    },
                };
            }
            tx.commit().await?;
        });
        Ok(outcomes)
    }

    /// When the message of campaign `campaign` to contact `contact` went out
    /// (its `sent_at`, else when its row last changed), or `None` if the
    /// campaign has no delivery to the contact. The view-in-browser link
    /// expires counting from it.
    pub async fn delivery_time(
        &self,
        campaign: i64,
        contact: i64,
    ) -> Result<Option<DateTime<Utc>>> {
        let sql = "SELECT COALESCE(sent_at, updated_at) FROM deliveries \
                   WHERE campaign_id = $1 AND contact_id = $2";
        Ok(on_pool!(self, p => sqlx::query_scalar(sql)
            .bind(campaign)
            .bind(contact)
            .fetch_optional(p)
            .await?))
    }

    /// Every issue at least one message of which was sent, newest first.
    pub async fn archived_issues(&self) -> Result<Vec<ArchivedIssue>> {
        let sql = "SELECT i.number, i.subject, i.issue_date, MAX(c.issue_revision) AS revision, \
                   MIN(c.created_at) AS sent_at \
                   FROM campaigns c JOIN issues i ON i.number = c.issue_number \
                   WHERE c.issue_revision IS NOT NULL AND EXISTS \
                   (SELECT 1 FROM deliveries d WHERE d.campaign_id = c.id AND d.status = 'sent') \
                   GROUP BY i.number, i.subject, i.issue_date ORDER BY i.number DESC";
        let mut rows =
            on_pool!(self, p => sqlx::query_as::<_, ArchivedIssue>(sql).fetch_all(p).await?);
        // When the first campaign started sending, if it did.
        let started = "SELECT MIN(e.created_at) FROM campaign_events e \
                       JOIN campaigns c ON c.id = e.campaign_id \
                       WHERE c.issue_number = $1 AND e.new_state = 'running'";
        for r in &mut rows {
            let at: Option<DateTime<Utc>> = on_pool!(self, p => sqlx::query_scalar(started)
                .bind(r.number)
                .fetch_one(p)
                .await?);
            if let Some(at) = at {
                r.sent_at = at;
            }
        }
        Ok(rows)
    }

    /// Delivery, unsubscribe and bounce counts for /metrics.
    pub async fn store_metrics(&self) -> Result<StoreMetrics> {
        // CAST: PostgreSQL sums BIGINT columns as NUMERIC.
        let deliveries = "SELECT \
            CAST(COALESCE(SUM(CASE WHEN status = 'sent' THEN 1 ELSE 0 END), 0) AS BIGINT), \
            CAST(COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) AS BIGINT), \
            CAST(COALESCE(SUM(CASE WHEN attempts > 1 THEN attempts - 1 ELSE 0 END), 0) AS BIGINT), \
            CAST(COALESCE(SUM(CASE WHEN status IN ('pending', 'retry', 'sending') THEN 1 ELSE 0 END), 0) AS BIGINT) \
            FROM deliveries";
        let contacts = "SELECT COUNT(*) FROM contacts WHERE status = 'unsubscribed'";
        let events = "SELECT COUNT(*) FROM status_events WHERE new_status = 'unsubscribed'";
        let bounces = "SELECT COUNT(*), \
            CAST(COALESCE(SUM(CASE WHEN verified THEN 0 ELSE 1 END), 0) AS BIGINT) FROM bounce_events";
        let waiting = "SELECT COUNT(*) FROM campaigns WHERE state = 'running' \
                       AND waiting_since_ms IS NOT NULL";
        Ok(on_pool!(self, p => {
            let (sent, failed, retried, queue_depth): (i64, i64, i64, i64) =
                sqlx::query_as(deliveries).fetch_one(p).await?;
            let (bounces, unverified_bounces): (i64, i64) =
                sqlx::query_as(bounces).fetch_one(p).await?;
            StoreMetrics {
                sent,
                failed,
                retried,
                queue_depth,
                unsubscribed: sqlx::query_scalar(contacts).fetch_one(p).await?,
                unsubscribe_events: sqlx::query_scalar(events).fetch_one(p).await?,
                bounces,
                unverified_bounces,
                waiting_for_relay: sqlx::query_scalar(waiting).fetch_one(p).await?,
            }
        }))
    }

    /// Records one open (`url` empty) or click. `ip` is stored only when given.
    pub async fn record_tracking(
        &self,
        campaign: i64,
        contact: i64,
        url: Option<&str>,
        ip: Option<&str>,
    ) -> Result<()> {
        let sql =
            "INSERT INTO tracking_events (campaign_id, contact_id, kind, url, ip, created_at) \
                   VALUES ($1, $2, $3, $4, $5, $6)";
        let kind = if url.is_some() { "click" } else { "open" };
        on_pool!(self, p => {
            sqlx::query(sql)
                .bind(campaign)
                .bind(contact)
                .bind(kind)
                .bind(url.unwrap_or(""))
                .bind(ip)
                .bind(Utc::now())
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// Opens and clicks of a campaign.
    pub async fn tracking_counts(&self, campaign: i64) -> Result<TrackingCounts> {
        let opens = "SELECT COUNT(*) FROM tracking_events WHERE campaign_id = $1 AND kind = 'open'";
        let clicks = "SELECT url, COUNT(*) FROM tracking_events WHERE campaign_id = $1 \
                      AND kind = 'click' GROUP BY url ORDER BY 2 DESC, 1";
        Ok(on_pool!(self, p => TrackingCounts {
            opens: sqlx::query_scalar(opens).bind(campaign).fetch_one(p).await?,
            clicks: sqlx::query_as(clicks).bind(campaign).fetch_all(p).await?,
        }))
    }

    /// The IPs stored with a campaign's tracking events (for tests and audits).
    pub async fn tracking_ips(&self, campaign: i64) -> Result<Vec<Option<String>>> {
        let sql = "SELECT ip FROM tracking_events WHERE campaign_id = $1 ORDER BY id";
        Ok(on_pool!(self, p => sqlx::query_scalar(sql).bind(campaign).fetch_all(p).await?))
    }
}
