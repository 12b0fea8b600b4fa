//! When a campaign's recipients are due, time zone by time zone: what the
//! campaign page's timeline and `GET /api/v1/campaigns/{id}/timeline` show.
//!
//! Before the start the timeline is a plan: the active contacts the
//! segment matches now, counted by their organisation's zone, each zone
//! due at the schedule's instant (`at`, or the start for an unscheduled
//! campaign) or at the wall-clock time in that zone (`local`), computed by
//! the same `send::schedule::local_due_times` the start uses. After the
//! start it is the frozen deliveries, with what each zone has received.
//! Contacts without a zone are due at the newsletter's zone's time.

use anyhow::anyhow;
use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::error::AppError;
use super::segments;
use crate::config::Config;
use crate::send::schedule;
use crate::store::campaigns::Campaign;
use crate::store::Store;

/// When a campaign would send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// When it is started (no schedule yet).
    AtStart,
    /// Everyone at one instant.
    At(DateTime<Utc>),
    /// A wall-clock time on a date in each recipient's zone.
    Local { date: NaiveDate, time: NaiveTime },
}

impl Plan {
    /// A campaign's own plan.
    pub fn of(c: &Campaign) -> Plan {
        match (c.schedule_mode.as_str(), &c.local_date, &c.local_time) {
            ("local", Some(d), Some(t)) => match schedule::check_local(d, t) {
                Ok((date, time)) => Plan::Local { date, time },
                Err(_) => Plan::AtStart,
            },
            _ => match c
                .start_ms
                .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
            {
                Some(at) => Plan::At(at),
                None => Plan::AtStart,
            },
        }
    }
}

/// One zone's recipients and when they are due.
#[derive(Debug, Clone, Serialize)]
pub struct ZoneSlot {
    /// The IANA zone ("" in the store for contacts without one, shown as
    /// the newsletter's zone).
    pub zone: String,
    /// Whether these contacts have no zone of their own.
    pub default_zone: bool,
    /// When they are due (None: when the campaign is started).
    pub due: Option<DateTime<Utc>>,
    /// The due time on the recipients' own clock, zone abbreviated.
    pub local: String,
    /// The due time in `general.timezone`, zone abbreviated.
    pub home: String,
    pub recipients: i64,
    /// Due before now: sent as soon as the campaign runs.
    pub past: bool,
    /// After the start: what the zone has received so far.
    pub sent: i64,
    pub failed: i64,
    pub skipped: i64,
    pub open: i64,
}

/// A campaign's timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    /// From the frozen deliveries (true) or planned from the segment.
    pub started: bool,
    /// at_start, at or local.
    pub mode: &'static str,
    pub slots: Vec<ZoneSlot>,
    pub recipients: i64,
    /// The zone the `home` times are in, e.g. "Asia/Tokyo".
    pub home_zone: String,
}

struct Zones {
    home: Tz,
    newsletter: Tz,
}

impl Zones {
    fn new(config: &Config) -> Result<Zones, AppError> {
        let parse = |name: &str, key: &str| {
            name.parse::<Tz>()
                .map_err(|_| AppError::Internal(anyhow!("{key} is not an IANA zone")))
        };
        Ok(Zones {
            home: parse(&config.general.timezone, "general.timezone")?,
            newsletter: parse(&config.newsletter.timezone, "newsletter.timezone")?,
        })
    }

    /// The zone of a key ("" or an unknown name: the newsletter's).
    fn of(&self, key: &str) -> Tz {
        key.parse().unwrap_or(self.newsletter)
    }

    fn slot(
        &self,
        zone: &str,
        due: Option<DateTime<Utc>>,
        recipients: i64,
        now: DateTime<Utc>,
    ) -> ZoneSlot {
        let tz = self.of(zone);
        let fmt = "%Y-%m-%d %H:%M %Z";
        ZoneSlot {
            zone: if zone.is_empty() {
                self.newsletter.name().to_string()
            } else {
                zone.to_string()
            },
            default_zone: zone.is_empty(),
            due,
            local: due
                .map(|d| d.with_timezone(&tz).format(fmt).to_string())
                .unwrap_or_default(),
            home: due
                .map(|d| d.with_timezone(&self.home).format(fmt).to_string())
                .unwrap_or_default(),
            recipients,
            past: due.is_some_and(|d| d <= now),
            sent: 0,
            failed: 0,
            skipped: 0,
            open: 0,
        }
    }
}

fn mode(plan: &Plan) -> &'static str {
    match plan {
        Plan::AtStart => "at_start",
        Plan::At(_) => "at",
        Plan::Local { .. } => "local",
    }
}

fn ms(t: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(t).single()
}

/// The plan for a segment's active contacts now.
pub async fn planned(
    store: &Store,
    config: &Config,
    segment: &str,
    plan: Plan,
) -> Result<Timeline, AppError> {
    let zones = Zones::new(config)?;
    let parsed = segments::check(segment)
        .map_err(|p| AppError::at_column("segment", p.column as u64, p.message))?;
    let counts = store.matching_by_zone(parsed.as_ref()).await?;
    let now = Utc::now();
    let due_local = match plan {
        Plan::Local { date, time } => {
            let names: Vec<String> = counts.iter().map(|(zone, _)| zone.clone()).collect();
            Some(schedule::local_due_times(
                date,
                time,
                &names,
                zones.newsletter,
            ))
        }
        _ => None,
    };
    let mut slots: Vec<ZoneSlot> = counts
        .iter()
        .map(|(zone, contacts)| {
            let due = match (&plan, &due_local) {
                (Plan::At(at), _) => Some(*at),
                (Plan::Local { .. }, Some(d)) => d.get(zone).copied().and_then(ms),
                _ => None,
            };
            zones.slot(zone, due, *contacts, now)
        })
        .collect();
    slots.sort_by(|a, b| a.due.cmp(&b.due).then_with(|| a.zone.cmp(&b.zone)));
    Ok(Timeline {
        started: false,
        mode: mode(&plan),
        recipients: slots.iter().map(|s| s.recipients).sum(),
        slots,
        home_zone: zones.home.name().to_string(),
    })
}

/// A campaign's timeline: its plan before the start, its deliveries after.
pub async fn of_campaign(
    store: &Store,
    config: &Config,
    c: &Campaign,
) -> Result<Timeline, AppError> {
    let plan = Plan::of(c);
    if matches!(c.state.as_str(), "draft" | "scheduled") {
        return planned(store, config, &c.segment, plan).await;
    }
    let zones = Zones::new(config)?;
    let now = Utc::now();
    let rows = store.delivery_zones(c.id).await?;
    let slots: Vec<ZoneSlot> = rows
        .iter()
        .map(|z| ZoneSlot {
            sent: z.sent,
            failed: z.failed,
            skipped: z.skipped,
            open: z.open,
            ..zones.slot(&z.zone, ms(z.first_due_ms), z.total, now)
        })
        .collect();
    Ok(Timeline {
        started: true,
        mode: mode(&plan),
        recipients: slots.iter().map(|s| s.recipients).sum(),
        slots,
        home_zone: zones.home.name().to_string(),
    })
}
