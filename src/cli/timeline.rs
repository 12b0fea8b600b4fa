//! What a campaign will send, to how many, and when: the schedule echo of
//! `campaigns schedule`, the timeline and next due time of `campaigns
//! show`, and what `send` is waiting for.
//!
//! Before a campaign starts, its timeline comes from the contacts that
//! match its segment now, by their organisation's zone; once started, from
//! its open deliveries (their due times were fixed at the start).

use anyhow::{anyhow, Result};
use chrono::Utc;
use chrono_tz::Tz;
use serde::Serialize;

use super::output::{self, rfc3339_ms, when_ms};
use crate::config::Config;
use crate::domain::segment::Segment;
use crate::domain::CampaignState;
use crate::send::schedule::{self, Slot};
use crate::store::campaigns::Campaign;
use crate::store::Store;

/// Slots shown before the rest are summed up in one line.
const SHOWN_SLOTS: usize = 12;

/// A campaign's timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// `true` once the recipients are frozen (the campaign started).
    pub frozen: bool,
    /// Recipients: frozen and still open, or matching now.
    pub recipients: i64,
    #[serde(skip)]
    pub slots: Vec<Slot>,
}

/// A slot for JSON: RFC 3339 with the offset of the shown zone.
#[derive(Debug, Serialize)]
pub struct JsonSlot {
    pub due: String,
    pub recipients: i64,
    pub zones: serde_json::Map<String, serde_json::Value>,
}

impl Plan {
    /// The slots for `--json`.
    pub fn json_slots(&self) -> Vec<JsonSlot> {
        self.slots
            .iter()
            .map(|s| JsonSlot {
                due: rfc3339_ms(s.due_ms),
                recipients: s.recipients,
                zones: s
                    .zones
                    .iter()
                    .map(|(z, n)| (z.clone(), serde_json::Value::from(*n)))
                    .collect(),
            })
            .collect()
    }

    /// The first slot not yet past, or the first slot when all are due.
    pub fn next(&self, now_ms: i64) -> Option<&Slot> {
        self.slots
            .iter()
            .find(|s| s.due_ms >= now_ms)
            .or(self.slots.first())
    }
}

/// The newsletter's zone, in which `--at` is read and which contacts
/// without a zone follow.
pub fn newsletter_tz(config: &Config) -> Result<Tz> {
    config
        .newsletter
        .timezone
        .parse()
        .map_err(|_| anyhow!("newsletter.timezone is not an IANA zone"))
}

/// Active contacts matching a campaign's segment now, by zone.
pub async fn matching_by_zone(store: &Store, segment: &str) -> Result<Vec<(String, i64)>> {
    let parsed = if segment.trim().is_empty() {
        None
    } else {
        Some(Segment::parse(segment).map_err(|e| e.with_text(segment))?)
    };
    store.matching_by_zone(parsed.as_ref()).await
}

/// The timeline of campaign `c`: `None` when it has nothing ahead
/// (finished or cancelled).
pub async fn plan(store: &Store, config: &Config, c: &Campaign) -> Result<Option<Plan>> {
    Ok(match c.state()? {
        // Not started yet (a blocked campaign is not either): the contacts
        // that match now.
        CampaignState::Draft | CampaignState::Scheduled | CampaignState::Blocked => {
            let zones = matching_by_zone(store, &c.segment).await?;
            let recipients = zones.iter().map(|(_, n)| n).sum();
            let slots = match (c.schedule_mode.as_str(), &c.local_date, &c.local_time) {
                ("local", Some(d), Some(t)) => {
                    let (d, t) = schedule::check_local(d, t)?;
                    schedule::local_timeline(d, t, &zones, newsletter_tz(config)?)
                }
                _ => match (c.state()?, c.start_ms) {
                    (CampaignState::Scheduled, Some(at)) => {
                        schedule::slots(zones.into_iter().map(|(z, n)| (at, z, n)))
                    }
                    _ => Vec::new(),
                },
            };
            Some(Plan {
                frozen: false,
                recipients,
                slots,
            })
        }
        CampaignState::Finished | CampaignState::Cancelled => None,
        _ => {
            let groups = store.open_by_due(c.id).await?;
            let recipients = groups.iter().map(|g| g.recipients).sum();
            Some(Plan {
                frozen: true,
                recipients,
                slots: schedule::slots(
                    groups.into_iter().map(|g| (g.due_ms, g.zone, g.recipients)),
                ),
            })
        }
    })
}

/// A zone for people: contacts without one follow the newsletter's.
fn zone_name(zone: &str, config: &Config) -> String {
    if zone.is_empty() {
        format!("no zone: {}", config.newsletter.timezone)
    } else {
        zone.to_string()
    }
}

/// `Asia/Seoul 2, Asia/Tokyo 3`.
fn zones_text(slot: &Slot, config: &Config) -> String {
    slot.zones
        .iter()
        .map(|(z, n)| {
            if slot.zones.len() == 1 {
                zone_name(z, config)
            } else {
                format!("{} {n}", zone_name(z, config))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The timeline's lines, indented by `indent`: one a slot (time, count,
/// zones), at most [`SHOWN_SLOTS`], then one line for the rest.
pub fn lines(plan: &Plan, config: &Config, indent: &str) -> Vec<String> {
    let now = Utc::now().timestamp_millis();
    let width = plan
        .slots
        .iter()
        .map(|s| s.recipients.to_string().len())
        .max()
        .unwrap_or(1);
    let mut out: Vec<String> = plan
        .slots
        .iter()
        .take(SHOWN_SLOTS)
        .map(|s| {
            let due = if plan.frozen && s.due_ms <= now {
                format!("due now (since {})", when_ms(s.due_ms))
            } else {
                when_ms(s.due_ms)
            };
            format!(
                "{indent}{due}  {:>width$}  {}",
                s.recipients,
                zones_text(s, config)
            )
        })
        .collect();
    if plan.slots.len() > SHOWN_SLOTS {
        let rest = &plan.slots[SHOWN_SLOTS..];
        out.push(format!(
            "{indent}… {} more recipients in {} more slots, the last {}",
            rest.iter().map(|s| s.recipients).sum::<i64>(),
            rest.len(),
            when_ms(rest.last().map(|s| s.due_ms).unwrap_or_default())
        ));
    }
    out
}

/// `2030-12-02 07:00 JST (2 recipients: Australia/Sydney)`.
pub fn slot_text(slot: &Slot, config: &Config) -> String {
    format!(
        "{} ({} recipient{}: {})",
        when_ms(slot.due_ms),
        slot.recipients,
        if slot.recipients == 1 { "" } else { "s" },
        zones_text(slot, config)
    )
}

/// What `campaigns schedule` says it will do.
pub fn echo(c: &Campaign, plan: &Plan, config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    match (c.schedule_mode.as_str(), &c.local_date, &c.local_time) {
        ("local", Some(d), Some(t)) => {
            out.push(format!(
                "campaign {} scheduled at {t} local time on {d}: {} active contacts match now, \
                 in {} slots (times in {}):",
                c.id,
                plan.recipients,
                plan.slots.len(),
                output::clock().zone_name()
            ));
            out.extend(lines(plan, config, "  "));
            if let Some(first) = plan.slots.first() {
                out.push(format!(
                    "the worker starts it at {} and sends each zone's recipients at their slot",
                    when_ms(first.due_ms)
                ));
            }
        }
        _ => out.push(format!(
            "campaign {} scheduled for {}: {} active contacts match now",
            c.id,
            c.start_ms.map(when_ms).unwrap_or_else(|| "?".into()),
            plan.recipients
        )),
    }
    out.push(format!(
        "recipients are frozen when it starts; `whatsup campaigns show {}` shows this again",
        c.id
    ));
    out
}

/// What `send` waits for when nothing is due before `until_ms`:
/// `until 2030-12-02 07:00 JST for 2 recipients (Australia/Sydney); 16
/// more are due later, the last 2030-12-03 04:00 JST`.
pub async fn waiting(store: &Store, config: &Config, id: i64, until_ms: i64) -> Result<String> {
    let groups = store.open_by_due(id).await?;
    let retries: i64 = groups
        .iter()
        .filter(|g| g.due_ms <= until_ms && g.status == "retry")
        .map(|g| g.recipients)
        .sum();
    let claimed: i64 = groups
        .iter()
        .filter(|g| g.due_ms <= until_ms && g.status == "sending")
        .map(|g| g.recipients)
        .sum();
    let slots = schedule::slots(
        groups
            .iter()
            .filter(|g| g.status == "pending")
            .map(|g| (g.due_ms, g.zone.clone(), g.recipients)),
    );
    let mut what = Vec::new();
    if let Some(first) = slots.iter().find(|s| s.due_ms <= until_ms) {
        what.push(format!(
            "{} recipient{} ({})",
            first.recipients,
            if first.recipients == 1 { "" } else { "s" },
            zones_text(first, config)
        ));
    }
    if retries > 0 {
        what.push(format!(
            "{retries} retr{}",
            if retries == 1 { "y" } else { "ies" }
        ));
    }
    if claimed > 0 {
        what.push(format!(
            "{claimed} message{} claimed by a worker that stopped (its lease ends then)",
            if claimed == 1 { "" } else { "s" }
        ));
    }
    let mut text = format!(
        "until {} for {}",
        when_ms(until_ms),
        if what.is_empty() {
            "the next due message".to_string()
        } else {
            what.join(" and ")
        }
    );
    let later: Vec<&Slot> = slots.iter().filter(|s| s.due_ms > until_ms).collect();
    if let Some(last) = later.last() {
        text.push_str(&format!(
            "; {} more recipients are due later in {} slots, the last {}",
            later.iter().map(|s| s.recipients).sum::<i64>(),
            later.len(),
            when_ms(last.due_ms)
        ));
    }
    Ok(text)
}
