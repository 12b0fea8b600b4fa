//! Read-only queries behind the operators' pages of the web admin and
//! their twins in the API: where a started campaign's recipients are in
//! the world (before the start, `Store::matching_by_zone` counts them), a
//! contact's deliveries, and keyset paging backwards through contacts.
//!
//! A recipient's zone is their organisation's `timezone`; contacts without
//! one have the key "" (the newsletter's zone), exactly as
//! `Store::start_campaign` keys its due times.

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{contact_select, segment_sql, Contact, Store};
use crate::domain::segment::Segment;

/// A started campaign's deliveries in one time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ZoneProgress {
    /// The organisation's IANA zone, or "" for contacts without one.
    pub zone: String,
    pub total: i64,
    pub sent: i64,
    pub failed: i64,
    pub skipped: i64,
    /// Pending, being sent, or waiting for a retry.
    pub open: i64,
    /// The earliest due time (Unix ms) of the zone's deliveries.
    pub first_due_ms: i64,
}

/// One delivery to a contact, with its campaign.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ContactDelivery {
    pub id: i64,
    pub campaign_id: i64,
    pub campaign_name: String,
    pub issue_number: i64,
    pub status: String,
    pub attempts: i64,
    pub due_ms: i64,
    pub last_code: Option<String>,
    pub last_reply: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

impl Store {
    /// A started campaign's deliveries by their recipient's time zone,
    /// the zone due first first.
    pub async fn delivery_zones(&self, campaign: i64) -> Result<Vec<ZoneProgress>> {
        let sql = "SELECT COALESCE(o.timezone, '') AS zone, COUNT(*) AS total, \
             COALESCE(SUM(CASE WHEN d.status = 'sent' THEN 1 ELSE 0 END), 0) AS sent, \
             COALESCE(SUM(CASE WHEN d.status = 'failed' THEN 1 ELSE 0 END), 0) AS failed, \
             COALESCE(SUM(CASE WHEN d.status = 'skipped' THEN 1 ELSE 0 END), 0) AS skipped, \
             COALESCE(SUM(CASE WHEN d.status IN ('pending', 'sending', 'retry') THEN 1 ELSE 0 END), 0) AS open, \
             MIN(d.due_ms) AS first_due_ms \
             FROM deliveries d JOIN contacts c ON c.id = d.contact_id \
             LEFT JOIN organisations o ON o.id = c.organisation_id \
             WHERE d.campaign_id = $1 GROUP BY 1 ORDER BY 7, 1";
        Ok(on_pool!(self, p => sqlx::query_as::<_, ZoneProgress>(sql)
            .bind(campaign).fetch_all(p).await?))
    }

    /// A contact's deliveries, newest first.
    pub async fn contact_deliveries(
        &self,
        contact_id: i64,
        limit: i64,
    ) -> Result<Vec<ContactDelivery>> {
        let sql = "SELECT d.id, d.campaign_id, c.name AS campaign_name, c.issue_number, d.status, \
             d.attempts, d.due_ms, d.last_code, d.last_reply, d.sent_at, d.updated_at \
             FROM deliveries d JOIN campaigns c ON c.id = d.campaign_id \
             WHERE d.contact_id = $1 ORDER BY d.id DESC LIMIT $2";
        Ok(
            on_pool!(self, p => sqlx::query_as::<_, ContactDelivery>(sql)
            .bind(contact_id).bind(limit.clamp(1, 10_000)).fetch_all(p).await?),
        )
    }

    /// The page of contacts matching a segment just before the address
    /// `before`, in address order (keyset paging backwards: the mirror of
    /// [`Store::contact_page`]).
    pub async fn contact_page_before(
        &self,
        segment: Option<&Segment>,
        before: &str,
        limit: i64,
    ) -> Result<Vec<Contact>> {
        let dialect = self.dialect();
        let filter = segment.map(|s| segment_sql::compile(s, dialect, 3));
        let sql = format!(
            "{} WHERE c.email < $1 AND ({}) ORDER BY c.email DESC LIMIT $2",
            contact_select(dialect),
            filter.as_ref().map(|f| f.sql.as_str()).unwrap_or("1 = 1")
        );
        let params = filter.map(|f| f.params).unwrap_or_default();
        let mut rows = on_pool!(self, p => {
            let q = sqlx::query_as::<_, Contact>(&sql).bind(before).bind(limit);
            bind_params!(q, &params).fetch_all(p).await?
        });
        rows.reverse();
        Ok(rows)
    }
}
