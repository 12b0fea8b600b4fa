//! Campaign statistics: deliveries by hour, by region and by organisation
//! kind, and bounces by kind and reason.

use anyhow::Result;
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

impl Store {
    pub async fn campaign_stats(&self, campaign: i64) -> Result<CampaignStats> {
        let hour = match self.dialect() {
            Dialect::Sqlite => "substr(d.updated_at, 1, 13) || ':00'",
            Dialect::Postgres => {
                "to_char(date_trunc('hour', d.updated_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD HH24:00')"
            }
        };
        let by_hour = format!(
            "SELECT {hour} AS \"group\", d.status, COUNT(*) AS count FROM deliveries d \
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
        Ok(on_pool!(self, p => CampaignStats {
            by_hour: sqlx::query_as(&by_hour).bind(campaign).fetch_all(p).await?,
            by_region: sqlx::query_as(&by_region).bind(campaign).fetch_all(p).await?,
            by_kind: sqlx::query_as(&by_kind).bind(campaign).fetch_all(p).await?,
            bounces: sqlx::query_as(bounces).bind(campaign).fetch_all(p).await?,
        }))
    }
}
