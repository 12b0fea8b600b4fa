//! Campaign actions for the CLI and the API: create, change, schedule,
//! start, pause, resume, cancel and retry, each checking the actor's
//! permission and returning typed errors.
//!
//! This is the one place the front ends reach campaigns through, so that
//! moving these rules into a fuller campaign service later is a change to
//! this file only.

use anyhow::anyhow;
use serde::Deserialize;

use super::error::AppError;
use super::require;
use crate::config::Config;
use crate::domain::segment::Segment;
use crate::domain::{Action, Actor, CampaignState};
use crate::send::{engine, schedule};
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
}

/// Creates a draft campaign.
pub async fn create(
    store: &Store,
    config: &Config,
    actor: &Actor,
    input: &CreateCampaign,
) -> Result<Campaign, AppError> {
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
    let from_address = input
        .from_address
        .as_deref()
        .unwrap_or(&config.newsletter.from_address);
    if !from_address.contains('@') {
        return Err(AppError::field(
            "from_address",
            format!("{from_address:?} is not an email address"),
        ));
    }
    let id = store
        .create_campaign(&NewCampaign {
            name: name.trim(),
            issue_number: input.issue,
            segment: input.segment.trim(),
            from_name: input
                .from_name
                .as_deref()
                .unwrap_or(&config.newsletter.from_name),
            from_address,
            reply_to: input
                .reply_to
                .as_deref()
                .unwrap_or(&config.newsletter.reply_to),
            transport: &transport,
            actor,
        })
        .await?;
    Ok(store.campaign_or_err(id).await?)
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

/// Changes a draft or scheduled campaign's name or segment.
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
            "campaign {id} is {}; only a draft or scheduled campaign can be changed",
            c.state
        )));
    }
    Ok(store.campaign_or_err(id).await?)
}

/// When a campaign starts.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleAt {
    /// "YYYY-MM-DD HH:MM" in the newsletter's time zone.
    At(String),
    /// "HH:MM" on "YYYY-MM-DD" in each recipient's own zone.
    Local { date: String, time: String },
}

/// Schedules a draft or scheduled campaign.
pub async fn schedule(
    store: &Store,
    config: &Config,
    actor: &Actor,
    id: i64,
    when: &ScheduleAt,
) -> Result<Campaign, AppError> {
    require(actor, Action::CampaignsControl)?;
    let tz: chrono_tz::Tz = config
        .newsletter
        .timezone
        .parse()
        .map_err(|_| anyhow!("newsletter.timezone is not an IANA zone"))?;
    let s = match when {
        ScheduleAt::At(at) => Schedule::At(
            schedule::parse_local(at, tz)
                .map_err(|e| AppError::field("at", format!("{e:#}")))?
                .timestamp_millis(),
        ),
        ScheduleAt::Local { date, time } => {
            let (d, t) = schedule::check_local(date, time)
                .map_err(|e| AppError::field("local", format!("{e:#}")))?;
            Schedule::Local {
                date: d.to_string(),
                time: t.format("%H:%M").to_string(),
                earliest_ms: schedule::earliest(d, t).timestamp_millis(),
            }
        }
    };
    let moved = store.schedule_campaign(id, &s, actor).await?;
    moved_or_conflict(store, id, moved, "scheduled").await
}

/// Starts a campaign now: freezes its recipients. Refused (409) while it
/// lacks its approval. Returns the number of recipients.
pub async fn start(
    store: &Store,
    config: &Config,
    actor: &Actor,
    id: i64,
) -> Result<i64, AppError> {
    require(actor, Action::CampaignsControl)?;
    let c = store.campaign_or_err(id).await?;
    let state = c.state()?;
    if !matches!(state, CampaignState::Draft | CampaignState::Scheduled) {
        return Err(AppError::Conflict(format!(
            "campaign {id} is {state}; only a draft or scheduled campaign can start"
        )));
    }
    match engine::start(store, config, id, actor).await? {
        Some(n) => Ok(n),
        None => {
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
                &[Draft, Scheduled, Running, Paused],
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
