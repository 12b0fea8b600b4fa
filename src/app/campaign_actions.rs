//! Campaign actions for the CLI, the API and the worker's callers: create,
//! change, schedule, start, pause, resume, cancel and retry, each checking
//! the actor's permission and returning typed errors.
//!
//! This is the one place the front ends reach campaigns through. Create,
//! schedule and start pass the send gate ([`crate::send::gate`]): the
//! preflight on the exact issue revision the campaign would send (a
//! refusal lists every failure with its file, line and column), a time in
//! the past refused unless `now` is given, and a start the gate refuses
//! leaves the campaign `blocked` with the reasons. A start also needs the
//! campaign's two-person approval ([`crate::domain::approval`]).

use anyhow::anyhow;
use chrono::{TimeZone as _, Utc};
use serde::{Deserialize, Serialize};

use super::error::AppError;
use super::require;
use crate::config::Config;
use crate::domain::segment::Segment;
use crate::domain::{Action, Actor, CampaignState};
use crate::send::gate::{self, Sender, StartOutcome};
use crate::send::schedule;
use crate::store::campaigns::{Campaign, NewCampaign, Schedule};
use crate::store::Store;

/// Parses a segment expression given in `field`; empty means every
/// contact. A parse error carries its 1-based column.
pub fn parse_segment(field: &str, text: &str) -> Result<Option<Segment>, AppError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    Segment::parse(text)
        .map(Some)
        .map_err(|e| AppError::at_column(field, e.column as u64, e.message.clone()))
}

/// `--override-check` / `override_check`: the reason, if one was given; an
/// empty reason is refused.
fn override_reason(given: Option<&str>) -> Result<Option<&str>, AppError> {
    match given.map(str::trim) {
        Some("") => Err(AppError::field(
            "override_check",
            "give the reason for sending despite the failed check",
        )),
        other => Ok(other),
    }
}

/// A new campaign; unset fields take the configured defaults.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CreateCampaign {
    pub issue: i64,
    pub segment: String,
    pub name: Option<String>,
    pub from_name: Option<String>,
    pub from_address: Option<String>,
    pub reply_to: Option<String>,
    pub transport: Option<String>,
    /// Create it despite the preflight's failures, for this reason
    /// (recorded in the campaign's history with the actor).
    pub override_check: Option<String>,
}

/// What the gate said of the issue revision a campaign would send.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    /// The issue revision checked.
    pub revision: i64,
    pub warnings: usize,
    /// Whether preflight failures were overridden.
    pub overridden: bool,
}

/// A created campaign and its preflight.
#[derive(Debug, Clone)]
pub struct Created {
    pub campaign: Campaign,
    pub checked: Checked,
}

/// Creates a draft campaign, after the preflight of the issue's latest
/// revision as this campaign would send it (its sender, the tracking
/// settings, the current templates).
pub async fn create(
    store: &Store,
    config: &Config,
    actor: &Actor,
    input: &CreateCampaign,
) -> Result<Created, AppError> {
    require(actor, Action::CampaignsWrite)?;
    let number = u32::try_from(input.issue)
        .map_err(|_| AppError::field("issue", "must be a non-negative issue number"))?;
    if store.issue(number).await?.is_none() {
        return Err(AppError::field(
            "issue",
            format!("issue {number} is not in the database; import or save it first"),
        ));
    }
    parse_segment("segment", &input.segment)?;
    let transport = input
        .transport
        .clone()
        .unwrap_or_else(|| config.sending.transport.clone());
    if !matches!(transport.as_str(), "smtp" | "outbox") {
        return Err(AppError::field(
            "transport",
            format!("{transport:?} is not one of smtp, outbox"),
        ));
    }
    let name = input
        .name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| format!("Issue {number}"));
    let nl = &config.newsletter;
    let sender = Sender {
        from_name: input.from_name.clone().unwrap_or(nl.from_name.clone()),
        from_address: input
            .from_address
            .clone()
            .unwrap_or(nl.from_address.clone()),
        reply_to: input.reply_to.clone().unwrap_or(nl.reply_to.clone()),
    };
    if !sender.from_address.contains('@') {
        return Err(AppError::field(
            "from_address",
            format!("{:?} is not an email address", sender.from_address),
        ));
    }
    let reason = override_reason(input.override_check.as_deref())?;
    let p = gate::preflight(store, config, input.issue, None, &sender).await?;
    let o = reason.map(|r| p.override_with(r));
    if let Some(refusal) = p.refusal(p.uncovered(o.as_ref())) {
        return Err(AppError::Refused(refusal));
    }
    let id = store
        .create_campaign(&NewCampaign {
            name: name.trim(),
            issue_number: input.issue,
            segment: input.segment.trim(),
            from_name: &sender.from_name,
            from_address: &sender.from_address,
            reply_to: &sender.reply_to,
            transport: &transport,
            actor,
        })
        .await?;
    let overridden = match o.filter(|o| !o.findings.is_empty()) {
        Some(o) => {
            store.record_override(id, &o, actor).await?;
            true
        }
        None => false,
    };
    Ok(Created {
        campaign: store.campaign_or_err(id).await?,
        checked: Checked {
            revision: p.revision,
            warnings: p.warnings(),
            overridden,
        },
    })
}

/// How many active contacts a campaign's segment matches now.
pub async fn matching_contacts(store: &Store, segment: &str) -> Result<i64, AppError> {
    let text = if segment.trim().is_empty() {
        "status = active".to_string()
    } else {
        format!("status = active and ({segment})")
    };
    let seg = Segment::parse(&text).map_err(|e| anyhow!("{}", e.render(&text)))?;
    Ok(store.count_contacts(Some(&seg)).await?)
}

/// Changes a draft, scheduled or blocked campaign's name or segment.
pub async fn update(
    store: &Store,
    actor: &Actor,
    id: i64,
    name: Option<&str>,
    segment: Option<&str>,
) -> Result<Campaign, AppError> {
    require(actor, Action::CampaignsWrite)?;
    if let Some(s) = segment {
        parse_segment("segment", s)?;
    }
    if name.is_some_and(|n| n.trim().is_empty()) {
        return Err(AppError::field("name", "must not be empty"));
    }
    if !store.update_campaign(id, name, segment, actor).await? {
        let c = store.campaign_or_err(id).await?;
        return Err(AppError::Conflict(format!(
            "campaign {id} is {}; only a draft, scheduled or blocked campaign can be changed",
            c.state
        )));
    }
    Ok(store.campaign_or_err(id).await?)
}

/// When a campaign starts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleAt {
    /// "YYYY-MM-DD HH:MM" in the newsletter's time zone.
    At(String),
    /// "HH:MM" on "YYYY-MM-DD" in each recipient's own zone.
    Local { date: String, time: String },
}

/// What `schedule` needs.
#[derive(Debug, Clone)]
pub struct ScheduleCampaign {
    pub when: ScheduleAt,
    /// Accept a time in the past: the worker starts the campaign at once.
    pub now: bool,
    /// Schedule it despite the preflight's failures, for this reason.
    pub override_check: Option<String>,
}

/// A scheduled campaign.
#[derive(Debug, Clone)]
pub struct Scheduled {
    pub campaign: Campaign,
    /// When the first recipients are due (Unix ms).
    pub first_due_ms: i64,
    pub checked: Checked,
}

/// The newsletter's time zone.
fn zone(config: &Config) -> Result<chrono_tz::Tz, AppError> {
    Ok(config
        .newsletter
        .timezone
        .parse()
        .map_err(|_| anyhow!("newsletter.timezone is not an IANA zone"))?)
}

/// Unix ms as "YYYY-MM-DD HH:MM ZONE" in `tz`.
pub fn local_time(ms: i64, tz: chrono_tz::Tz) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string())
        .unwrap_or_default()
}

/// The schedule `when` asks for, its first due time (Unix ms), the field
/// it came from and how to describe it.
async fn resolve(
    store: &Store,
    tz: chrono_tz::Tz,
    when: &ScheduleAt,
) -> Result<(Schedule, i64, &'static str, String), AppError> {
    Ok(match when {
        ScheduleAt::At(at) => {
            let t = schedule::parse_local(at, tz)
                .map_err(|e| AppError::field("at", format!("{e:#}")))?;
            let ms = t.timestamp_millis();
            (Schedule::At(ms), ms, "at", local_time(ms, tz))
        }
        ScheduleAt::Local { date, time } => {
            let (d, t) = schedule::check_local(date, time)
                .map_err(|e| AppError::field("local", format!("{e:#}")))?;
            let zones = store.organisation_zones().await?;
            let due = schedule::local_due_times(d, t, &zones, tz);
            let first = due.values().copied().min().unwrap_or(i64::MAX);
            (
                Schedule::Local {
                    date: d.to_string(),
                    time: t.format("%H:%M").to_string(),
                    earliest_ms: schedule::earliest(d, t).timestamp_millis(),
                },
                first,
                "local",
                format!("{} {} in the recipients' own zones", d, t.format("%H:%M")),
            )
        }
    })
}

/// Schedules a draft, scheduled or blocked campaign, after the preflight
/// of the revision it would send. A time in the past is refused unless
/// `now` is set (then the worker starts it at once).
pub async fn schedule(
    store: &Store,
    config: &Config,
    actor: &Actor,
    id: i64,
    input: &ScheduleCampaign,
) -> Result<Scheduled, AppError> {
    require(actor, Action::CampaignsControl)?;
    let c = store.campaign_or_err(id).await?;
    let state = c.state()?;
    if !matches!(
        state,
        CampaignState::Draft | CampaignState::Scheduled | CampaignState::Blocked
    ) {
        return Err(AppError::Conflict(format!(
            "campaign {id} is {state}; it cannot be scheduled"
        )));
    }
    let tz = zone(config)?;
    let (s, first_due_ms, field, described) = resolve(store, tz, &input.when).await?;
    let now = Utc::now().timestamp_millis();
    if first_due_ms < now && !input.now {
        return Err(AppError::field(
            field,
            format!(
                "{described} is in the past (it is now {}); give a later time, or \
                 start it at once with --now (the API's \"now\": true)",
                local_time(now, tz)
            ),
        ));
    }
    let reason = override_reason(input.override_check.as_deref())?;
    let (p, refusal) = gate::check_campaign(store, config, &c, actor, reason).await?;
    if let Some(r) = refusal {
        return Err(AppError::Refused(r));
    }
    let moved = store.schedule_campaign(id, &s, actor).await?;
    let campaign = moved_or_conflict(store, id, moved, "scheduled").await?;
    Ok(Scheduled {
        campaign,
        first_due_ms,
        checked: Checked {
            revision: p.revision,
            warnings: p.warnings(),
            overridden: !p.uncovered(None).is_empty(),
        },
    })
}

/// A started campaign.
#[derive(Debug, Clone, Serialize)]
pub struct Started {
    /// Recipients frozen.
    pub recipients: i64,
    /// Seconds rendering every recipient's message took.
    pub render_secs: f64,
}

/// Starts a draft, scheduled or blocked campaign now through the send
/// gate: its approval, the preflight of the issue's latest revision (with
/// an override recorded for it, or given now), then the recipients frozen
/// and every message rendered before the start commits. Refused (409)
/// while it lacks its approval; a refusal by the gate leaves it `blocked`
/// with the reasons.
pub async fn start(
    store: &Store,
    config: &Config,
    actor: &Actor,
    id: i64,
    override_check: Option<&str>,
) -> Result<Started, AppError> {
    require(actor, Action::CampaignsControl)?;
    store.campaign_or_err(id).await?;
    let reason = override_reason(override_check)?;
    match gate::start(store, config, id, actor, reason).await? {
        StartOutcome::Started {
            recipients,
            render_secs,
        } => Ok(Started {
            recipients,
            render_secs,
        }),
        StartOutcome::Blocked { reason, refusal } => Err(AppError::Blocked {
            id,
            reason,
            refusal,
        }),
        StartOutcome::NotStartable(state) => Err(AppError::Conflict(format!(
            "campaign {id} is {state}; only a draft, scheduled or blocked campaign can start"
        ))),
        StartOutcome::Lost => {
            let c = store.campaign_or_err(id).await?;
            Err(AppError::Conflict(format!(
                "campaign {id} is {}; it cannot be started",
                c.state
            )))
        }
    }
}

/// Pause, resume or cancel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Pause,
    Resume,
    Cancel,
}

impl Control {
    fn moves(
        &self,
    ) -> (
        &'static [CampaignState],
        CampaignState,
        &'static str,
        &'static str,
    ) {
        use CampaignState::*;
        match self {
            Control::Pause => (&[Running], Paused, "paused by operator", "paused"),
            Control::Resume => (&[Paused], Running, "resumed by operator", "resumed"),
            Control::Cancel => (
                &[Draft, Scheduled, Running, Paused, Blocked],
                Cancelled,
                "cancelled by operator",
                "cancelled",
            ),
        }
    }
}

/// Pauses, resumes or cancels a campaign.
pub async fn control(
    store: &Store,
    actor: &Actor,
    id: i64,
    what: Control,
) -> Result<Campaign, AppError> {
    require(actor, Action::CampaignsControl)?;
    let (from, to, reason, verb) = what.moves();
    let moved = store.move_campaign(id, from, to, actor, reason).await?;
    moved_or_conflict(store, id, moved, verb).await
}

/// Queues a started campaign's failed deliveries again.
pub async fn retry_failed(store: &Store, actor: &Actor, id: i64) -> Result<u64, AppError> {
    require(actor, Action::CampaignsControl)?;
    Ok(store.retry_failed(id, actor).await?)
}

async fn moved_or_conflict(
    store: &Store,
    id: i64,
    moved: bool,
    verb: &str,
) -> Result<Campaign, AppError> {
    let c = store.campaign_or_err(id).await?;
    if moved {
        Ok(c)
    } else {
        Err(AppError::Conflict(format!(
            "campaign {id} is {}; it cannot be {verb}",
            c.state
        )))
    }
}
