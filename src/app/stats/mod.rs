//! The dashboard's figures, for the admin pages and the API alike: one
//! campaign's report ([`campaign_report`]) and the view across campaigns
//! ([`overview`]), each with its views as CSV ([`csv`]).
//!
//! The store counts by UTC minute or hour; here those counts are folded
//! into buckets of the configured `general.timezone` ([`buckets`]), the
//! grain chosen so a chart has a readable number of bars, and the rates
//! that judge a campaign's health are worked out:
//! - delivery rate: sent ÷ (sent + failed);
//! - bounce rate: hard bounces ÷ (sent + failed);
//! - complaint rate: complaints ÷ sent (Gmail's and Yahoo's bulk-sender
//!   rules ask for under 0.3 %, better under 0.1 %);
//! - unsubscribe, open and click rates: distinct people ÷ sent.

pub mod buckets;
pub mod csv;

use std::ops::AddAssign;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::{require, AppError};
use crate::config::Config;
use crate::domain::{Action, Actor};
use crate::store::campaigns::{Campaign, Counts};
use crate::store::stats::{
    CampaignHealth, GroupCount, ListChange, ReasonCount, StatusTotals, UnsubscribeCounts,
};
use crate::store::Store;
pub use buckets::{Bucket, Grain};

/// Grains a campaign's timeline may use, and how many bars it has at most
/// when the grain is chosen for it (four times as many when asked for).
pub const TIMELINE_GRAINS: &[Grain] = &[
    Grain::Minute,
    Grain::FiveMinutes,
    Grain::QuarterHour,
    Grain::Hour,
    Grain::Day,
];
pub const TIMELINE_MAX: usize = 96;

/// Grains the list's growth may use, and its points when chosen for it.
pub const GROWTH_GRAINS: &[Grain] = &[Grain::Day, Grain::Week, Grain::Month];
pub const GROWTH_MAX: usize = 120;

/// The zone the dashboard speaks in: `general.timezone` (validated when
/// the configuration was loaded).
pub fn zone(config: &Config) -> Tz {
    config.general.timezone.parse().unwrap_or(Tz::UTC)
}

/// Sent and failed deliveries in one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Finished {
    pub sent: i64,
    pub failed: i64,
}

impl AddAssign for Finished {
    fn add_assign(&mut self, o: Finished) {
        self.sent += o.sent;
        self.failed += o.failed;
    }
}

/// Deliveries of one region or organisation kind by outcome.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OutcomeRow {
    /// The region or kind as stored; "" for contacts without one.
    pub group: String,
    /// How it reads: the kind in words, "(no region)"…
    pub label: String,
    pub sent: i64,
    pub failed: i64,
    pub skipped: i64,
    /// Pending, sending or waiting for a retry.
    pub waiting: i64,
    pub total: i64,
    /// Share of the campaign's recipients, 0–100.
    pub share: f64,
}

/// Rates that judge a campaign, in percent (None without a denominator).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Rates {
    pub delivery: Option<f64>,
    pub bounce: Option<f64>,
    pub complaint: Option<f64>,
    pub unsubscribe: Option<f64>,
    pub open: Option<f64>,
    pub click: Option<f64>,
}

/// Where a rate stands against the bulk-sender rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Standing {
    Ok,
    Warn,
    Error,
}

impl Rates {
    pub fn of(h: &CampaignHealth) -> Rates {
        let attempted = h.sent + h.failed;
        let pct = |n: i64, d: i64| (d > 0).then(|| n as f64 * 100.0 / d as f64);
        Rates {
            delivery: pct(h.sent, attempted),
            bounce: pct(h.hard, attempted),
            complaint: pct(h.complaints, h.sent),
            unsubscribe: pct(h.unsubscribes.max(0), h.sent),
            open: pct(h.openers, h.sent),
            click: pct(h.clickers, h.sent),
        }
    }

    /// Complaints: under 0.1 % is fine, from 0.3 % Gmail and Yahoo start
    /// refusing bulk mail.
    pub fn complaint_standing(&self) -> Standing {
        standing(self.complaint, 0.1, 0.3)
    }

    /// Hard bounces: a clean list stays under 2 %; past 5 % providers
    /// take it for a bought list.
    pub fn bounce_standing(&self) -> Standing {
        standing(self.bounce, 2.0, 5.0)
    }
}

fn standing(rate: Option<f64>, warn: f64, error: f64) -> Standing {
    match rate {
        Some(r) if r >= error => Standing::Error,
        Some(r) if r >= warn => Standing::Warn,
        _ => Standing::Ok,
    }
}

/// A started campaign's row in the health table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthRow {
    #[serde(flatten)]
    pub health: CampaignHealth,
    pub started: Option<DateTime<Tz>>,
    pub rates: Rates,
    pub complaint_standing: Standing,
    pub bounce_standing: Standing,
}

impl HealthRow {
    fn new(health: CampaignHealth, tz: Tz) -> HealthRow {
        let rates = Rates::of(&health);
        HealthRow {
            started: health.started_at.map(|t| t.with_timezone(&tz)),
            complaint_standing: rates.complaint_standing(),
            bounce_standing: rates.bounce_standing(),
            rates,
            health,
        }
    }
}

/// What tracking recorded for a campaign.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tracking {
    /// Whether opens and clicks are counted now (`web.track_opens`,
    /// `web.track_clicks`).
    pub opens_on: bool,
    pub clicks_on: bool,
    pub opens: i64,
    pub openers: i64,
    pub clicks: i64,
    pub clickers: i64,
    /// Clicks by link, most clicked first.
    pub by_url: Vec<(String, i64)>,
}

/// One campaign's dashboard.
#[derive(Debug, Clone, Serialize)]
pub struct CampaignReport {
    pub campaign: Campaign,
    pub zone: String,
    /// When it first ran and when it finished or was cancelled.
    pub started: Option<DateTime<Tz>>,
    pub ended: Option<DateTime<Tz>>,
    pub counts: Counts,
    /// The headline figures; `None` until the campaign starts.
    pub health: Option<HealthRow>,
    pub grain: Grain,
    pub timeline: Vec<Bucket<Finished>>,
    pub by_region: Vec<OutcomeRow>,
    pub by_kind: Vec<OutcomeRow>,
    pub bounces: Vec<ReasonCount>,
    pub unsubscribes: UnsubscribeCounts,
    pub tracking: Tracking,
}

/// The words for an organisation kind as stored.
pub fn kind_label(kind: &str) -> String {
    match kind {
        "" => "(no organisation)".into(),
        "city" => "City".into(),
        "embassy" => "Embassy".into(),
        "representative_office" => "Representative office".into(),
        "international_org" => "International organisation".into(),
        "other" => "Other".into(),
        other => other.replace('_', " "),
    }
}

/// Pivots counts by (group, status) into one row per group, the largest
/// first.
pub fn outcome_rows(
    counts: &[GroupCount],
    recipients: i64,
    label: impl Fn(&str) -> String,
) -> Vec<OutcomeRow> {
    let mut rows: Vec<OutcomeRow> = Vec::new();
    for c in counts {
        let i = match rows.iter().position(|r| r.group == c.group) {
            Some(i) => i,
            None => {
                rows.push(OutcomeRow {
                    group: c.group.clone(),
                    label: label(&c.group),
                    ..Default::default()
                });
                rows.len() - 1
            }
        };
        let r = &mut rows[i];
        match c.status.as_str() {
            "sent" => r.sent += c.count,
            "failed" => r.failed += c.count,
            "skipped" => r.skipped += c.count,
            _ => r.waiting += c.count,
        }
        r.total += c.count;
    }
    for r in &mut rows {
        r.share = if recipients > 0 {
            r.total as f64 * 100.0 / recipients as f64
        } else {
            0.0
        };
    }
    rows.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.label.cmp(&b.label)));
    rows
}

/// The grain asked for if it is one of `choices` and covers `span` in at
/// most four times `target` buckets; otherwise the finest of `choices`
/// that covers it in `target`.
fn choose(asked: Option<Grain>, choices: &[Grain], span: Duration, target: usize) -> Grain {
    let fits = |g: Grain| span.num_seconds() / g.approx().num_seconds() < 4 * target as i64;
    match asked {
        Some(g) if choices.contains(&g) && fits(g) => g,
        _ => Grain::fitting(choices, span, target as i64),
    }
}

/// A campaign's report; `grain` None chooses one that fits the send.
pub async fn campaign_report(
    store: &Store,
    config: &Config,
    actor: &Actor,
    id: i64,
    grain: Option<Grain>,
) -> Result<CampaignReport, AppError> {
    require(actor, Action::StatsRead)?;
    let tz = zone(config);
    let campaign = store.campaign_or_err(id).await?;
    let counts = store.delivery_counts(id).await?;
    let stats = store.campaign_stats(id).await?;
    let minutes = store.delivery_minutes(id).await?;
    let events = store.campaign_events(id).await?;
    let health = store.campaign_health(Some(id)).await?.into_iter().next();
    let tracked = store.tracking_counts(id).await?;
    let points: Vec<(DateTime<Utc>, Finished)> = minutes
        .iter()
        .map(|m| {
            (
                m.at,
                Finished {
                    sent: m.sent,
                    failed: m.failed,
                },
            )
        })
        .collect();
    let span = match (points.first(), points.last()) {
        (Some(a), Some(b)) => b.0 - a.0,
        _ => Duration::zero(),
    };
    let grain = choose(grain, TIMELINE_GRAINS, span, TIMELINE_MAX);
    let timeline = buckets::fold(&points, tz, grain, None, None, TIMELINE_MAX * 4);
    let recipients = counts.total();
    let started = events
        .iter()
        .find(|e| e.new_state == "running")
        .map(|e| e.created_at.with_timezone(&tz));
    let ended = events
        .iter()
        .rev()
        .find(|e| e.new_state == "finished" || e.new_state == "cancelled")
        .map(|e| e.created_at.with_timezone(&tz));
    let tracking = Tracking {
        opens_on: config.web.track_opens,
        clicks_on: config.web.track_clicks,
        opens: health.as_ref().map_or(tracked.opens, |h| h.opens),
        openers: health.as_ref().map_or(0, |h| h.openers),
        clicks: tracked.clicks.iter().map(|(_, n)| n).sum(),
        clickers: health.as_ref().map_or(0, |h| h.clickers),
        by_url: tracked.clicks,
    };
    Ok(CampaignReport {
        zone: tz.name().to_string(),
        started,
        ended,
        counts,
        health: health.map(|h| HealthRow::new(h, tz)),
        grain,
        timeline,
        by_region: outcome_rows(&stats.by_region, recipients, |g| {
            if g.is_empty() {
                "(no region)".into()
            } else {
                g.to_string()
            }
        }),
        by_kind: outcome_rows(&stats.by_kind, recipients, kind_label),
        bounces: stats.bounces,
        unsubscribes: store.campaign_unsubscribes(id).await?,
        tracking,
        campaign,
    })
}

/// How far back the overview looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum Range {
    #[serde(rename = "30d")]
    Days30,
    #[serde(rename = "90d")]
    Days90,
    #[serde(rename = "12m")]
    Months12,
    #[serde(rename = "all")]
    All,
}

impl Range {
    pub const ALL: &'static [Range] = &[Range::Days30, Range::Days90, Range::Months12, Range::All];

    pub fn as_str(self) -> &'static str {
        match self {
            Range::Days30 => "30d",
            Range::Days90 => "90d",
            Range::Months12 => "12m",
            Range::All => "all",
        }
    }

    pub fn parse(s: &str) -> Option<Range> {
        Range::ALL.iter().copied().find(|r| r.as_str() == s)
    }

    /// "the last 30 days", … for headings.
    pub fn describe(self) -> &'static str {
        match self {
            Range::Days30 => "the last 30 days",
            Range::Days90 => "the last 90 days",
            Range::Months12 => "the last 12 months",
            Range::All => "all time",
        }
    }

    /// The first instant it covers (None: from the beginning).
    pub fn since(self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Range::Days30 => Some(now - Duration::days(30)),
            Range::Days90 => Some(now - Duration::days(90)),
            Range::Months12 => Some(now - Duration::days(365)),
            Range::All => None,
        }
    }
}

/// The list's changes in one bucket, and where it stood at the end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Growth {
    pub joined: i64,
    pub unsubscribed: i64,
    pub bounced: i64,
    pub blocklisted: i64,
    pub returned: i64,
    /// Active contacts and all contacts at the end of the bucket.
    pub active: i64,
    pub contacts: i64,
}

impl Growth {
    pub fn left(&self) -> i64 {
        self.unsubscribed + self.bounced + self.blocklisted
    }
    pub fn net(&self) -> i64 {
        self.joined + self.returned - self.left()
    }
}

impl AddAssign for Growth {
    fn add_assign(&mut self, o: Growth) {
        self.joined += o.joined;
        self.unsubscribed += o.unsubscribed;
        self.bounced += o.bounced;
        self.blocklisted += o.blocklisted;
        self.returned += o.returned;
    }
}

impl From<&ListChange> for Growth {
    fn from(c: &ListChange) -> Growth {
        Growth {
            joined: c.joined,
            unsubscribed: c.unsubscribed,
            bounced: c.bounced,
            blocklisted: c.blocklisted,
            returned: c.returned,
            active: 0,
            contacts: 0,
        }
    }
}

/// The view across campaigns.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    pub zone: String,
    pub range: Range,
    pub grain: Grain,
    /// Contacts by status now.
    pub totals: StatusTotals,
    /// The range's changes in one sum (active/contacts: at its start).
    pub period: Growth,
    pub growth: Vec<Bucket<Growth>>,
    /// Campaigns started in the range, in the order they started.
    pub health: Vec<HealthRow>,
}

/// The overview for `range`; `grain` None chooses one that fits it.
pub async fn overview(
    store: &Store,
    config: &Config,
    actor: &Actor,
    range: Range,
    grain: Option<Grain>,
) -> Result<Overview, AppError> {
    require(actor, Action::StatsRead)?;
    let tz = zone(config);
    let now = Utc::now();
    let since = range.since(now);
    let totals = store.status_totals().await?;
    let changes = store.list_changes(since).await?;
    let points: Vec<(DateTime<Utc>, Growth)> =
        changes.iter().map(|c| (c.at, Growth::from(c))).collect();
    let first = since.or_else(|| points.first().map(|p| p.0)).unwrap_or(now);
    let grain = choose(grain, GROWTH_GRAINS, now - first, GROWTH_MAX);
    let mut growth = buckets::fold(&points, tz, grain, Some(first), Some(now), GROWTH_MAX * 4);
    // Walk back from now: each bucket ends where the next one began.
    let (mut active, mut contacts) = (totals.active, totals.total());
    for b in growth.iter_mut().rev() {
        b.value.active = active;
        b.value.contacts = contacts;
        active -= b.value.net();
        contacts -= b.value.joined;
    }
    let mut period = Growth::default();
    for p in &points {
        period += p.1;
    }
    period.active = active;
    period.contacts = contacts;
    let health = store
        .campaign_health(None)
        .await?
        .into_iter()
        .filter(|h| match (since, h.started_at) {
            (Some(s), Some(t)) => t >= s,
            _ => true,
        })
        .map(|h| HealthRow::new(h, tz))
        .collect();
    Ok(Overview {
        zone: tz.name().to_string(),
        range,
        grain,
        totals,
        period,
        growth,
        health,
    })
}
