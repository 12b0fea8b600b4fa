//! Campaign actions, with their rules: the issue exists, the segment
//! parses, the transport is one we have, defaults come from the config,
//! a schedule is not in the past, and every way out passes the send gate
//! ([`crate::send::gate`]).

use chrono::{DateTime, TimeZone as _, Utc};

use super::{Actor, ErrorKind};
use crate::config::Config;
use crate::domain::segment::Segment;
use crate::domain::CampaignState;
use crate::send::gate::{self, Refusal, Sender, StartOutcome};
use crate::send::schedule;
use crate::store::campaigns::{Campaign, NewCampaign, Schedule};
use crate::store::Store;

/// Why a campaign action did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    #[error("no campaign with id {0}")]
    NotFound(i64),
    #[error("issue {0} is not in the database; import it with `whatsup issues import FILE`")]
    IssueNotFound(i64),
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("campaign {id} is {state}; it cannot be {action}")]
    WrongState {
        id: i64,
        state: CampaignState,
        action: &'static str,
    },
    /// The preflight refused the issue revision.
    #[error("{0}")]
    Preflight(Refusal),
    /// A start refused by the gate: the campaign is now `blocked`.
    #[error("campaign {id} is blocked; nothing was sent.\n{reason}")]
    Blocked { id: i64, reason: String },
    #[error(
        "{when} is in the past (it is now {now}); give --now to start it at once, or a later time"
    )]
    InThePast { when: String, now: String },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl CampaignError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            CampaignError::NotFound(_) | CampaignError::IssueNotFound(_) => ErrorKind::NotFound,
            CampaignError::Invalid { .. } | CampaignError::InThePast { .. } => ErrorKind::Invalid,
            CampaignError::WrongState { .. } => ErrorKind::Conflict,
            CampaignError::Preflight(_) | CampaignError::Blocked { .. } => ErrorKind::Refused,
            CampaignError::Internal(_) => ErrorKind::Internal,
        }
    }
}

type Result<T, E = CampaignError> = std::result::Result<T, E>;

/// What `create` needs; `None` takes the config's default.
#[derive(Debug, Clone, Default)]
pub struct CreateCampaign {
    pub issue: i64,
    /// A segment expression; empty for every active contact.
    pub segment: String,
    /// Default: "Issue N".
    pub name: Option<String>,
    pub from_name: Option<String>,
    pub from_address: Option<String>,
    pub reply_to: Option<String>,
    /// `smtp` or `outbox`.
    pub transport: Option<String>,
    /// Send despite the preflight's failures, for this reason.
    pub override_check: Option<String>,
}

/// A created campaign.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Created {
    pub id: i64,
    /// Active contacts the segment matches now.
    pub matching_contacts: i64,
    /// The issue revision checked.
    pub revision: i64,
    pub warnings: usize,
    /// Whether preflight failures were overridden.
    pub overridden: bool,
}

/// When to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    /// "YYYY-MM-DD HH:MM" in the newsletter's zone.
    At(String),
    /// "HH:MM" on "YYYY-MM-DD" in each recipient's own zone.
    Local { time: String, date: String },
}

/// What `schedule` needs.
#[derive(Debug, Clone)]
pub struct ScheduleCampaign {
    pub when: When,
    /// A time in the past is accepted and starts at once.
    pub now: bool,
    pub override_check: Option<String>,
}

/// A scheduled campaign.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Scheduled {
    /// When the first recipients are due (Unix ms).
    pub first_due_ms: i64,
    pub revision: i64,
    pub warnings: usize,
    pub overridden: bool,
}

/// A started campaign.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StartedCampaign {
    /// Recipients frozen.
    pub recipients: i64,
    /// Seconds rendering every recipient's message took.
    pub render_secs: f64,
}

/// A campaign state change an operator asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Pause,
    Resume,
    Cancel,
}

fn invalid(field: &'static str, message: impl Into<String>) -> CampaignError {
    CampaignError::Invalid {
        field,
        message: message.into(),
    }
}

fn override_reason(given: &Option<String>) -> Result<Option<&str>> {
    match given.as_deref().map(str::trim) {
        Some("") => Err(invalid(
            "override-check",
            "give the reason for sending despite the failed check",
        )),
        other => Ok(other),
    }
}

async fn campaign(store: &Store, id: i64) -> Result<Campaign> {
    store.campaign(id).await?.ok_or(CampaignError::NotFound(id))
}

fn in_states(c: &Campaign, states: &[CampaignState], action: &'static str) -> Result<()> {
    let state = c.state()?;
    if states.contains(&state) {
        Ok(())
    } else {
        Err(CampaignError::WrongState {
            id: c.id,
            state,
            action,
        })
    }
}

/// Creates a draft campaign, after the preflight of the issue's latest
/// revision as this campaign would send it.
pub async fn create(
    store: &Store,
    config: &Config,
    actor: &Actor,
    input: CreateCampaign,
) -> Result<Created> {
    let number = u32::try_from(input.issue)
        .map_err(|_| invalid("issue", format!("{} is not an issue number", input.issue)))?;
    if store.issue(number).await?.is_none() {
        return Err(CampaignError::IssueNotFound(input.issue));
    }
    let segment = input.segment.trim();
    let parsed = if segment.is_empty() {
        None
    } else {
        Some(Segment::parse(segment).map_err(|e| invalid("segment", e.render(segment)))?)
    };
    let transport = input
        .transport
        .clone()
        .unwrap_or_else(|| config.sending.transport.clone());
    if !matches!(transport.as_str(), "smtp" | "outbox") {
        return Err(invalid(
            "transport",
            format!("{transport:?} is not one of smtp, outbox"),
        ));
    }
    let reason = override_reason(&input.override_check)?;
    let nl = &config.newsletter;
    let sender = Sender {
        from_name: input.from_name.unwrap_or_else(|| nl.from_name.clone()),
        from_address: input
            .from_address
            .unwrap_or_else(|| nl.from_address.clone()),
        reply_to: input.reply_to.unwrap_or_else(|| nl.reply_to.clone()),
    };
    let p = gate::preflight(store, config, input.issue, None, &sender).await?;
    let o = reason.map(|r| p.override_with(r));
    if let Some(refusal) = p.refusal(p.uncovered(o.as_ref())) {
        return Err(CampaignError::Preflight(refusal));
    }
    let name = input
        .name
        .unwrap_or_else(|| format!("Issue {}", input.issue));
    let id = store
        .create_campaign(&NewCampaign {
            name: &name,
            issue_number: input.issue,
            segment,
            from_name: &sender.from_name,
            from_address: &sender.from_address,
            reply_to: &sender.reply_to,
            transport: &transport,
            actor: actor.as_str(),
        })
        .await?;
    let overridden = match o.filter(|o| !o.findings.is_empty()) {
        Some(o) => {
            store.record_override(id, &o, actor.as_str()).await?;
            true
        }
        None => false,
    };
    let active = Segment::parse("status = active").map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let matching_contacts = match &parsed {
        None => store.count_contacts(Some(&active)).await?,
        Some(_) => {
            let both = Segment::parse(&format!("status = active and ({segment})"))
                .map_err(|e| invalid("segment", e.render(segment)))?;
            store.count_contacts(Some(&both)).await?
        }
    };
    Ok(Created {
        id,
        matching_contacts,
        revision: p.revision,
        warnings: p.warnings(),
        overridden,
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
    input: ScheduleCampaign,
) -> Result<Scheduled> {
    let c = campaign(store, id).await?;
    let schedulable = [
        CampaignState::Draft,
        CampaignState::Scheduled,
        CampaignState::Blocked,
    ];
    in_states(&c, &schedulable, "scheduled")?;
    let tz: chrono_tz::Tz = config
        .newsletter
        .timezone
        .parse()
        .map_err(|_| anyhow::anyhow!("newsletter.timezone is not an IANA zone"))?;
    let (s, first_due_ms, described) = match &input.when {
        When::At(at) => {
            let t = schedule::parse_local(at, tz).map_err(|e| invalid("at", e.to_string()))?;
            let ms = t.timestamp_millis();
            (Schedule::At(ms), ms, local(ms, tz))
        }
        When::Local { time, date } => {
            let (d, t) =
                schedule::check_local(date, time).map_err(|e| invalid("local", e.to_string()))?;
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
                format!("{} {} in the recipients' own zones", d, t.format("%H:%M")),
            )
        }
    };
    let now = Utc::now();
    if first_due_ms < now.timestamp_millis() && !input.now {
        return Err(CampaignError::InThePast {
            when: described,
            now: local(now.timestamp_millis(), tz),
        });
    }
    let reason = override_reason(&input.override_check)?;
    let (p, refusal) = gate::check_campaign(store, config, &c, actor.as_str(), reason).await?;
    if let Some(r) = refusal {
        return Err(CampaignError::Preflight(r));
    }
    if !store.schedule_campaign(id, &s, actor.as_str()).await? {
        let state = campaign(store, id).await?.state()?;
        return Err(CampaignError::WrongState {
            id,
            state,
            action: "scheduled",
        });
    }
    let overridden = !p.uncovered(None).is_empty();
    Ok(Scheduled {
        first_due_ms,
        revision: p.revision,
        warnings: p.warnings(),
        overridden,
    })
}

fn local(ms: i64, tz: chrono_tz::Tz) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t: DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string())
        .unwrap_or_default()
}

/// Starts a draft, scheduled or blocked campaign now, through the send
/// gate. A refusal leaves it `blocked` with the reasons.
pub async fn start(
    store: &Store,
    config: &Config,
    actor: &Actor,
    id: i64,
    override_check: Option<String>,
) -> Result<StartedCampaign> {
    campaign(store, id).await?;
    let reason = override_reason(&override_check)?;
    match gate::start(store, config, id, actor.as_str(), reason).await? {
        StartOutcome::Started {
            recipients,
            render_secs,
        } => Ok(StartedCampaign {
            recipients,
            render_secs,
        }),
        StartOutcome::Blocked(reason) => Err(CampaignError::Blocked { id, reason }),
        StartOutcome::NotStartable(state) => Err(CampaignError::WrongState {
            id,
            state,
            action: "started",
        }),
        StartOutcome::Lost => Err(CampaignError::WrongState {
            id,
            state: campaign(store, id).await?.state()?,
            action: "started",
        }),
    }
}

/// Pauses, resumes or cancels a campaign.
pub async fn transition(store: &Store, actor: &Actor, id: i64, t: Transition) -> Result<()> {
    let (from, to, action, reason): (&[CampaignState], _, _, _) = match t {
        Transition::Pause => (
            &[CampaignState::Running],
            CampaignState::Paused,
            "paused",
            "paused by operator",
        ),
        Transition::Resume => (
            &[CampaignState::Paused],
            CampaignState::Running,
            "resumed",
            "resumed by operator",
        ),
        Transition::Cancel => (
            &[
                CampaignState::Draft,
                CampaignState::Scheduled,
                CampaignState::Running,
                CampaignState::Paused,
                CampaignState::Blocked,
            ],
            CampaignState::Cancelled,
            "cancelled",
            "cancelled by operator",
        ),
    };
    let c = campaign(store, id).await?;
    in_states(&c, from, action)?;
    if store
        .move_campaign(id, from, to, actor.as_str(), reason)
        .await?
    {
        Ok(())
    } else {
        Err(CampaignError::WrongState {
            id,
            state: campaign(store, id).await?.state()?,
            action,
        })
    }
}

/// Queues a started campaign's failed deliveries again; returns how many.
pub async fn retry_failed(store: &Store, actor: &Actor, id: i64) -> Result<u64> {
    let c = campaign(store, id).await?;
    in_states(
        &c,
        &[
            CampaignState::Running,
            CampaignState::Paused,
            CampaignState::Finished,
        ],
        "retried",
    )?;
    Ok(store.retry_failed(id, actor.as_str()).await?)
}
