//! Statistics for the dashboard and the API: a campaign's deliveries over
//! time, by region and by organisation kind, its bounces by kind and
//! reason and its unsubscribes; and across campaigns, each campaign's
//! health and the list's changes over time.
//!
//! Times are grouped here into fixed UTC buckets (a minute, an hour) as
//! Unix seconds computed by the database (`strftime('%s')` on SQLite,
//! `extract(epoch)` on PostgreSQL), so the grouping does not depend on
//! how either backend writes a timestamp. Folding those buckets into the
//! days, weeks and months of the configured time zone happens above the
//! store (`app::stats`).

use anyhow::{anyhow, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Dialect, Store};

/// A count of deliveries with one status in one group (an hour, a region
/// or a kind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct GroupCount {
    /// The hour ("YYYY-MM-DD HH:00", UTC), region or kind; "" when none.
    pub group: String,
    pub status: String,
    pub count: i64,
}

/// Bounces of a campaign by kind and reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ReasonCount {
    pub kind: String,
    pub reason: String,
    pub count: i64,
}

/// A campaign's statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CampaignStats {
    /// Sent and failed deliveries by the hour they were last attempted.
    pub by_hour: Vec<GroupCount>,
    /// Deliveries by the recipient organisation's region and status.
    pub by_region: Vec<GroupCount>,
    /// Deliveries by organisation kind and status.
    pub by_kind: Vec<GroupCount>,
    pub bounces: Vec<ReasonCount>,
}

/// Deliveries that finished in one UTC time bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TimeCount {
    /// The start of the bucket.
    pub at: DateTime<Utc>,
    /// Sent (by `sent_at`).
    pub sent: i64,
    /// Failed for good (by the time the row last changed).
    pub failed: i64,
}

/// The unsubscribes made on the web with a campaign's links.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UnsubscribeCounts {
    /// RFC 8058 one-click POSTs (the mail client's button).
    pub one_click: i64,
    /// The confirmation form on the unsubscribe page.
    pub form: i64,
    /// Unsubscribes undone on the page right after.
    pub undone: i64,
}

impl UnsubscribeCounts {
    /// Unsubscribes that stand: made minus undone.
    pub fn net(&self) -> i64 {
        self.one_click + self.form - self.undone
    }
}

/// A started campaign's outcome in one row: the dashboard's health table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CampaignHealth {
    pub id: i64,
    pub name: String,
    pub issue_number: i64,
    pub state: String,
    /// When it first became running.
    pub started_at: Option<DateTime<Utc>>,
    pub recipients: i64,
    pub sent: i64,
    pub failed: i64,
    pub skipped: i64,
    /// Pending, sending or waiting for a retry.
    pub waiting: i64,
    /// Bounce events of the campaign by kind.
    pub hard: i64,
    pub soft: i64,
    pub complaints: i64,
    /// Web unsubscribes with its links, minus those undone.
    pub unsubscribes: i64,
    /// Tracking events (0 when tracking is off), and the distinct contacts
    /// behind them.
    pub opens: i64,
    pub openers: i64,
    pub clicks: i64,
    pub clickers: i64,
}

/// Changes to the list in one UTC hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ListChange {
    pub at: DateTime<Utc>,
    /// Contacts created (every contact starts active).
    pub joined: i64,
    /// Active contacts that became unsubscribed, bounced or blocklisted.
    pub unsubscribed: i64,
    pub bounced: i64,
    pub blocklisted: i64,
    /// Contacts that became active again.
    pub returned: i64,
}

impl ListChange {
    fn empty(at: DateTime<Utc>) -> ListChange {
        ListChange {
            at,
            joined: 0,
            unsubscribed: 0,
            bounced: 0,
            blocklisted: 0,
            returned: 0,
        }
    }

    /// Active contacts that left.
    pub fn left(&self) -> i64 {
        self.unsubscribed + self.bounced + self.blocklisted
    }

    /// The change in active contacts.
    pub fn net(&self) -> i64 {
        self.joined + self.returned - self.left()
    }
}

/// Contacts by status now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatusTotals {
    pub active: i64,
    pub unsubscribed: i64,
    pub bounced: i64,
    pub blocklisted: i64,
}

impl StatusTotals {
    pub fn total(&self) -> i64 {
        self.active + self.unsubscribed + self.bounced + self.blocklisted
    }
}

/// The SQL for the start of the `secs`-long UTC bucket of timestamp
/// column `col`, in Unix seconds.
fn bucket(dialect: Dialect, col: &str, secs: i64) -> String {
    match dialect {
        Dialect::Sqlite => format!("(CAST(strftime('%s', {col}) AS INTEGER) / {secs} * {secs})"),
        Dialect::Postgres => {
            format!("(floor(extract(epoch FROM {col}) / {secs}) * {secs})::bigint")
        }
    }
}

fn from_unix(secs: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp(secs, 0).ok_or_else(|| anyhow!("a bucket out of range: {secs}"))
}

/// The SQL that reads a status event's evidence field `key` as text.
fn evidence(dialect: Dialect, key: &str) -> String {
    match dialect {
        Dialect::Sqlite => format!("CAST(json_extract(evidence, '$.{key}') AS TEXT)"),
        Dialect::Postgres => format!("(evidence->>'{key}')"),
    }
}

impl Store {
    pub async fn campaign_stats(&self, campaign: i64) -> Result<CampaignStats> {
        let hour = bucket(self.dialect(), "COALESCE(d.sent_at, d.updated_at)", 3600);
        let by_hour = format!(
            "SELECT {hour} AS h, d.status, COUNT(*) AS count FROM deliveries d \
             WHERE d.campaign_id = $1 AND d.status IN ('sent', 'failed') \
             GROUP BY 1, 2 ORDER BY 1, 2"
        );
        let by_org = |column: &str| {
            format!(
                "SELECT COALESCE(o.{column}, '') AS \"group\", d.status, COUNT(*) AS count \
                 FROM deliveries d JOIN contacts c ON c.id = d.contact_id \
                 LEFT JOIN organisations o ON o.id = c.organisation_id \
                 WHERE d.campaign_id = $1 GROUP BY 1, 2 ORDER BY 1, 2"
            )
        };
        let by_region = by_org("region");
        let by_kind = by_org("kind");
        let bounces = "SELECT kind, reason, COUNT(*) AS count FROM bounce_events \
                       WHERE campaign_id = $1 GROUP BY kind, reason ORDER BY 3 DESC, 1, 2";
        let (hours, by_region, by_kind, bounces) = on_pool!(self, p => (
            sqlx::query_as::<_, (i64, String, i64)>(&by_hour).bind(campaign).fetch_all(p).await?,
            sqlx::query_as(&by_region).bind(campaign).fetch_all(p).await?,
            sqlx::query_as(&by_kind).bind(campaign).fetch_all(p).await?,
            sqlx::query_as(bounces).bind(campaign).fetch_all(p).await?,
        ));
        let by_hour = hours
            .into_iter()
            .map(|(h, status, count)| {
                Ok(GroupCount {
                    group: from_unix(h)?.format("%Y-%m-%d %H:00").to_string(),
                    status,
                    count,
                })
            })
            .collect::<Result<_>>()?;
        Ok(CampaignStats {
            by_hour,
            by_region,
            by_kind,
            bounces,
        })
    }

    /// A campaign's sent and failed deliveries per UTC minute in which they
    /// finished, oldest first; minutes without any are left out.
    pub async fn delivery_minutes(&self, campaign: i64) -> Result<Vec<TimeCount>> {
        let minute = bucket(self.dialect(), "COALESCE(sent_at, updated_at)", 60);
        let sql = format!(
            "SELECT {minute} AS m, \
             SUM(CASE WHEN status = 'sent' THEN 1 ELSE 0 END) AS sent, \
             SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS failed \
             FROM deliveries WHERE campaign_id = $1 AND status IN ('sent', 'failed') \
             GROUP BY 1 ORDER BY 1"
        );
        let rows: Vec<(i64, i64, i64)> =
            on_pool!(self, p => sqlx::query_as(&sql).bind(campaign).fetch_all(p).await?);
        rows.into_iter()
            .map(|(m, sent, failed)| {
                Ok(TimeCount {
                    at: from_unix(m)?,
                    sent,
                    failed,
                })
            })
            .collect()
    }

    /// The web unsubscribes made with `campaign`'s links, by how they came.
    pub async fn campaign_unsubscribes(&self, campaign: i64) -> Result<UnsubscribeCounts> {
        let sql = format!(
            "SELECT COALESCE({}, '') AS method, COUNT(*) FROM status_events \
             WHERE actor = 'web' AND {} = $1 GROUP BY 1",
            evidence(self.dialect(), "method"),
            evidence(self.dialect(), "campaign"),
        );
        let rows: Vec<(String, i64)> = on_pool!(self, p => sqlx::query_as(&sql)
            .bind(campaign.to_string())
            .fetch_all(p)
            .await?);
        let mut c = UnsubscribeCounts::default();
        for (method, n) in rows {
            match method.as_str() {
                "one-click" => c.one_click += n,
                "undo" => c.undone += n,
                _ => c.form += n,
            }
        }
        Ok(c)
    }

    /// Every campaign that has started (or only `only`, if it has), with
    /// its outcome, in the order they started.
    pub async fn campaign_health(&self, only: Option<i64>) -> Result<Vec<CampaignHealth>> {
        let campaigns = "SELECT c.id, c.name, c.issue_number, c.state, c.recipients, \
             (SELECT MIN(e.created_at) FROM campaign_events e \
              WHERE e.campaign_id = c.id AND e.new_state = 'running') AS started_at \
             FROM campaigns c WHERE ($1 IS NULL OR c.id = $1) ORDER BY c.id";
        let deliveries = "SELECT campaign_id, status, COUNT(*) FROM deliveries \
                          WHERE ($1 IS NULL OR campaign_id = $1) GROUP BY campaign_id, status";
        let bounces = "SELECT campaign_id, kind, COUNT(*) FROM bounce_events \
                       WHERE campaign_id IS NOT NULL AND ($1 IS NULL OR campaign_id = $1) \
                       GROUP BY campaign_id, kind";
        let campaign = evidence(self.dialect(), "campaign");
        let unsubscribes = format!(
            "SELECT {campaign} AS campaign, COALESCE({}, '') AS method, COUNT(*) \
             FROM status_events WHERE actor = 'web' AND ($1 IS NULL OR {campaign} = $1) \
             GROUP BY 1, 2",
            evidence(self.dialect(), "method"),
        );
        let tracking = "SELECT campaign_id, kind, COUNT(*), COUNT(DISTINCT contact_id) \
                        FROM tracking_events WHERE ($1 IS NULL OR campaign_id = $1) \
                        GROUP BY campaign_id, kind";
        type Row = (i64, String, i64, String, i64, Option<DateTime<Utc>>);
        let only_text = only.map(|id| id.to_string());
        let (rows, delivered, bounced, unsubscribed, tracked) = on_pool!(self, p => (
            sqlx::query_as::<_, Row>(campaigns).bind(only).fetch_all(p).await?,
            sqlx::query_as::<_, (i64, String, i64)>(deliveries).bind(only).fetch_all(p).await?,
            sqlx::query_as::<_, (i64, String, i64)>(bounces).bind(only).fetch_all(p).await?,
            sqlx::query_as::<_, (Option<String>, String, i64)>(&unsubscribes)
                .bind(&only_text).fetch_all(p).await?,
            sqlx::query_as::<_, (i64, String, i64, i64)>(tracking).bind(only).fetch_all(p).await?,
        ));
        let mut out: Vec<CampaignHealth> = rows
            .into_iter()
            .filter(|r| r.5.is_some())
            .map(
                |(id, name, issue_number, state, recipients, started_at)| CampaignHealth {
                    id,
                    name,
                    issue_number,
                    state,
                    started_at,
                    recipients,
                    ..Default::default()
                },
            )
            .collect();
        let index: std::collections::HashMap<i64, usize> =
            out.iter().enumerate().map(|(i, h)| (h.id, i)).collect();
        let at = |id: i64| index.get(&id).copied();
        for (id, status, n) in delivered {
            let Some(i) = at(id) else { continue };
            let h = &mut out[i];
            match status.as_str() {
                "sent" => h.sent += n,
                "failed" => h.failed += n,
                "skipped" => h.skipped += n,
                _ => h.waiting += n,
            }
        }
        for (id, kind, n) in bounced {
            let Some(i) = at(id) else { continue };
            let h = &mut out[i];
            match kind.as_str() {
                "hard" => h.hard += n,
                "soft" => h.soft += n,
                "complaint" => h.complaints += n,
                _ => {}
            }
        }
        for (campaign, method, n) in unsubscribed {
            let Some(i) = campaign.and_then(|c| c.parse().ok()).and_then(at) else {
                continue;
            };
            out[i].unsubscribes += if method == "undo" { -n } else { n };
        }
        for (id, kind, n, people) in tracked {
            let Some(i) = at(id) else { continue };
            let h = &mut out[i];
            if kind == "open" {
                (h.opens, h.openers) = (n, people);
            } else {
                (h.clicks, h.clickers) = (n, people);
            }
        }
        out.sort_by_key(|h| (h.started_at, h.id));
        Ok(out)
    }

    /// Changes to the list per UTC hour from `since` (everything without
    /// it), oldest first; hours without a change are left out. Contacts
    /// that were removed are not counted (their history went with them).
    pub async fn list_changes(&self, since: Option<DateTime<Utc>>) -> Result<Vec<ListChange>> {
        let joined = format!(
            "SELECT {} AS h, COUNT(*) FROM contacts WHERE ($1 IS NULL OR created_at >= $1) \
             GROUP BY 1",
            bucket(self.dialect(), "created_at", 3600)
        );
        let moved = format!(
            "SELECT {} AS h, \
             SUM(CASE WHEN old_status = 'active' AND new_status = 'unsubscribed' THEN 1 ELSE 0 END), \
             SUM(CASE WHEN old_status = 'active' AND new_status = 'bounced' THEN 1 ELSE 0 END), \
             SUM(CASE WHEN old_status = 'active' AND new_status = 'blocklisted' THEN 1 ELSE 0 END), \
             SUM(CASE WHEN COALESCE(old_status, '') <> 'active' AND new_status = 'active' \
                 THEN 1 ELSE 0 END) \
             FROM status_events WHERE ($1 IS NULL OR created_at >= $1) GROUP BY 1",
            bucket(self.dialect(), "created_at", 3600)
        );
        let (joined, moved) = on_pool!(self, p => (
            sqlx::query_as::<_, (i64, i64)>(&joined).bind(since).fetch_all(p).await?,
            sqlx::query_as::<_, (i64, i64, i64, i64, i64)>(&moved).bind(since).fetch_all(p).await?,
        ));
        let mut hours = std::collections::BTreeMap::<i64, ListChange>::new();
        for (h, n) in joined {
            hours
                .entry(h)
                .or_insert(ListChange::empty(from_unix(h)?))
                .joined += n;
        }
        for (h, unsubscribed, bounced, blocklisted, returned) in moved {
            let c = hours.entry(h).or_insert(ListChange::empty(from_unix(h)?));
            c.unsubscribed += unsubscribed;
            c.bounced += bounced;
            c.blocklisted += blocklisted;
            c.returned += returned;
        }
        Ok(hours.into_values().collect())
    }

    /// How many contacts have each status now.
    pub async fn status_totals(&self) -> Result<StatusTotals> {
        let sql = "SELECT status, COUNT(*) FROM contacts GROUP BY status";
        let rows: Vec<(String, i64)> = on_pool!(self, p => sqlx::query_as(sql).fetch_all(p).await?);
        let mut t = StatusTotals::default();
        for (status, n) in rows {
            match status.as_str() {
                "active" => t.active = n,
                "unsubscribed" => t.unsubscribed = n,
                "bounced" => t.bounced = n,
                "blocklisted" => t.blocklisted = n,
                other => return Err(anyhow!("a contact with the unknown status {other:?}")),
            }
        }
        Ok(t)
    }
}
