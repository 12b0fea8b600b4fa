//! `whatsup campaigns …`, `whatsup send CAMPAIGN` and `whatsup worker`.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use chrono::Utc;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::output::{self, print_json, print_table_wide};
use super::timeline;
use crate::app::approval::{self, ApprovalView};
use crate::app::campaign_actions::{
    self as actions, Checked, Control, CreateCampaign, ScheduleAt, ScheduleCampaign,
};
use crate::app::AppError;
use crate::config::Config;
use crate::domain::approval::ApprovalStatus;
use crate::domain::segment::SegmentError;
use crate::domain::{Actor, CampaignState, DeliveryStatus};
use crate::send::engine::{self, RunEnd};
use crate::send::worker::Worker;
use crate::store::campaigns::{Campaign, Counts};
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum CampaignsCmd {
    /// Create a draft campaign: an issue, a segment and a sender
    Create(CreateArgs),
    /// List campaigns (drafts and scheduled ones count the contacts that
    /// match now)
    List {
        /// Print the list as JSON
        #[arg(long)]
        json: bool,
    },
    /// Show a campaign: settings, timeline and next due time, state
    /// history, counts and failures
    Show {
        /// Campaign id
        id: i64,
        /// Print it as JSON
        #[arg(long)]
        json: bool,
    },
    /// Schedule a campaign at a time in the newsletter's zone, or at a local
    /// time in each recipient's zone; prints when each zone is due
    Schedule(ScheduleArgs),
    /// Change a draft, scheduled or blocked campaign's name or segment (a
    /// new segment voids its approval)
    Edit {
        /// Campaign id
        id: i64,
        /// New name
        #[arg(long)]
        name: Option<String>,
        /// New segment expression
        #[arg(long)]
        segment: Option<String>,
    },
    /// Ask for a second person's approval of the campaign as it is now
    RequestApproval {
        /// Campaign id
        id: i64,
        /// A note for the approver
        #[arg(long, default_value = "")]
        note: String,
        /// Print the approval as JSON
        #[arg(long)]
        json: bool,
    },
    /// Approve the campaign's issue revision and segment (an operator or
    /// admin other than its creator and the revision's author; name your
    /// account with --as EMAIL); the revision must pass its preflight check
    Approve {
        /// Campaign id
        id: i64,
        /// A note kept with the approval
        #[arg(long, default_value = "")]
        note: String,
        /// Print the approval as JSON
        #[arg(long)]
        json: bool,
    },
    /// Start a campaign now: checks the issue (and its approval), freezes
    /// the recipients and renders every message once; `whatsup worker` or
    /// `whatsup send` then delivers
    Start {
        /// Campaign id
        id: i64,
        /// Send despite the issue's preflight failures, for this reason
        /// (recorded in the campaign's history)
        #[arg(long, value_name = "REASON")]
        override_check: Option<String>,
    },
    /// Pause a running campaign
    Pause {
        /// Campaign id
        id: i64,
    },
    /// Resume a paused campaign where it stopped
    Resume {
        /// Campaign id
        id: i64,
    },
    /// Cancel a campaign that has not finished
    Cancel {
        /// Campaign id
        id: i64,
    },
    /// Queue a campaign's failed deliveries again
    RetryFailed {
        /// Campaign id
        id: i64,
    },
    /// Counts of a campaign's deliveries by status
    Status {
        /// Campaign id
        id: i64,
        /// Print the counts as JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Issue number (imported with `whatsup issues import`)
    #[arg(long)]
    pub issue: i64,
    /// Segment expression choosing the recipients (default: every active contact)
    #[arg(long, default_value = "")]
    pub segment: String,
    /// Campaign name (default: "Issue N")
    #[arg(long)]
    pub name: Option<String>,
    /// From display name (default: newsletter.from_name)
    #[arg(long)]
    pub from_name: Option<String>,
    /// From address (default: newsletter.from_address)
    #[arg(long)]
    pub from: Option<String>,
    /// Reply-To address (default: newsletter.reply_to)
    #[arg(long)]
    pub reply_to: Option<String>,
    /// smtp or outbox (default: sending.transport)
    #[arg(long)]
    pub transport: Option<String>,
    /// Create it despite the issue's preflight failures, for this reason
    /// (recorded in the campaign's history)
    #[arg(long, value_name = "REASON")]
    pub override_check: Option<String>,
    /// Print the new campaign's id, matching count and check as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// Campaign id (a draft, or a scheduled campaign to reschedule)
    pub id: i64,
    /// "YYYY-MM-DD HH:MM" in the newsletter's time zone (Asia/Tokyo by default)
    #[arg(long, conflicts_with = "local")]
    pub at: Option<String>,
    /// "HH:MM" in each recipient's own time zone, on --date
    #[arg(long, requires = "date")]
    pub local: Option<String>,
    /// Date for --local, "YYYY-MM-DD"
    #[arg(long)]
    pub date: Option<String>,
    /// Accept a time in the past: the campaign starts at once
    #[arg(long)]
    pub now: bool,
    /// Schedule it despite the issue's preflight failures, for this reason
    /// (recorded in the campaign's history)
    #[arg(long, value_name = "REASON")]
    pub override_check: Option<String>,
    /// Print the schedule and its timeline as JSON
    #[arg(long)]
    pub json: bool,
}

/// `whatsup send` arguments.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Campaign id; a draft, scheduled or blocked campaign starts now
    pub id: i64,
    /// When nothing is due yet (local-time slots, retries), say until when
    /// and wait for it (the default)
    #[arg(long, overrides_with = "no_wait")]
    pub wait: bool,
    /// When nothing is due yet, say until when and exit (0 if nothing
    /// failed); `whatsup worker` or another `send` goes on later
    #[arg(long, overrides_with = "wait")]
    pub no_wait: bool,
    /// Start it despite the issue's preflight failures, for this reason
    /// (recorded in the campaign's history)
    #[arg(long, value_name = "REASON")]
    pub override_check: Option<String>,
    /// Print the final summary as JSON
    #[arg(long)]
    pub json: bool,
}

pub async fn run(store: &Store, config: &Config, cmd: CampaignsCmd) -> Result<ExitCode> {
    let actor = super::cli_actor(store).await?;
    match cmd {
        CampaignsCmd::Create(a) => create(store, config, &actor, a).await,
        CampaignsCmd::Edit { id, name, segment } => {
            let seg_text = segment.clone().unwrap_or_default();
            let c = actions::update(store, &actor, id, name.as_deref(), segment.as_deref())
                .await
                .map_err(|e| cli_error(e, &seg_text))?;
            println!(
                "campaign {id} changed: \"{}\", segment {:?}",
                c.name, c.segment
            );
            Ok(ExitCode::SUCCESS)
        }
        CampaignsCmd::RequestApproval { id, note, json } => {
            let v = approval::request(store, config, &actor, id, &note).await?;
            print_approval(id, &v, json, "approval requested")
        }
        CampaignsCmd::Approve { id, note, json } => {
            let v = approval::approve(store, config, &actor, id, &note).await?;
            print_approval(id, &v, json, "approved")
        }
        CampaignsCmd::List { json } => list(store, json).await,
        CampaignsCmd::Show { id, json } => show(store, config, id, json).await,
        CampaignsCmd::Schedule(a) => schedule_campaign(store, config, a, &actor).await,
        CampaignsCmd::Start { id, override_check } => {
            let s = actions::start(store, config, &actor, id, override_check.as_deref())
                .await
                .map_err(|e| cli_error(e, ""))?;
            println!(
                "campaign {id} started: {} recipients frozen, every message rendered in {:.2} s; \
                 run `whatsup worker` or `whatsup send {id}`",
                s.recipients, s.render_secs
            );
            Ok(ExitCode::SUCCESS)
        }
        CampaignsCmd::Pause { id } => control(store, &actor, id, Control::Pause, "paused").await,
        CampaignsCmd::Resume { id } => control(store, &actor, id, Control::Resume, "resumed").await,
        CampaignsCmd::Cancel { id } => {
            control(store, &actor, id, Control::Cancel, "cancelled").await
        }
        CampaignsCmd::RetryFailed { id } => {
            let n = actions::retry_failed(store, &actor, id).await?;
            println!("campaign {id}: {n} failed deliveries queued again");
            Ok(ExitCode::SUCCESS)
        }
        CampaignsCmd::Status { id, json } => {
            let c = store.campaign_or_err(id).await?;
            let counts = store.delivery_counts(id).await?;
            if json {
                print_json(&serde_json::json!({
                    "id": id, "state": c.state, "reason": c.state_reason,
                    "recipients": c.recipients, "counts": counts,
                    "waiting_for_relay_since": waiting_since(&c),
                    "waiting_reason": c.waiting_reason,
                }))?;
            } else {
                println!("campaign {id}: {}", state_line(&c));
                print_counts(&counts);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// What the gate said, after a create or schedule.
fn checked(c: &Checked) -> String {
    format!(" ({})", checked_text(c))
}

/// `issue revision 3 checked: 1 warning(s)`.
fn checked_text(c: &Checked) -> String {
    let (revision, warnings) = (c.revision, c.warnings);
    format!(
        "issue revision {revision} checked: {}{warnings} warning(s)",
        if c.overridden {
            "failures overridden, "
        } else {
            ""
        }
    )
}

/// A state's reason as shown after it: one line in brackets, or indented
/// lines below it.
fn reason(r: &str) -> String {
    match r.trim() {
        "" => String::new(),
        r if !r.contains('\n') => format!(" ({r})"),
        r => format!(
            ":\n{}",
            r.lines()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

async fn control(
    store: &Store,
    actor: &Actor,
    id: i64,
    what: Control,
    verb: &str,
) -> Result<ExitCode> {
    actions::control(store, actor, id, what).await?;
    println!("campaign {id} {verb}");
    Ok(ExitCode::SUCCESS)
}

/// An error of the service, with a segment's column pointed at the way
/// every command shows segment errors.
fn cli_error(e: AppError, segment: &str) -> anyhow::Error {
    match &e {
        AppError::Invalid(errors) => {
            let mut out = Vec::new();
            for f in errors {
                let field = f.field.as_deref().unwrap_or("input");
                match (field, f.column) {
                    ("segment", Some(col)) => out.push(
                        SegmentError {
                            column: col as usize,
                            message: f.detail.clone(),
                        }
                        .with_text(segment)
                        .to_string(),
                    ),
                    _ => out.push(format!("--{}: {}", field.replace('_', "-"), f.detail)),
                }
            }
            anyhow!(out.join("\n"))
        }
        _ => anyhow::Error::from(e),
    }
}

fn print_approval(id: i64, v: &ApprovalView, json: bool, what: &str) -> Result<ExitCode> {
    if json {
        print_json(v)?;
    } else {
        println!(
            "campaign {id}: {what} (revision {}): {}",
            v.revision,
            describe_approval(&v.status)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn describe_approval(s: &ApprovalStatus) -> String {
    match s {
        ApprovalStatus::NotRequired => "not required (newsletter.require_approval = false)".into(),
        ApprovalStatus::Approved { by, revision } => {
            format!("approved by {by} for revision {revision}")
        }
        ApprovalStatus::Missing {
            revision,
            void: None,
        } => format!("not approved yet (revision {revision})"),
        ApprovalStatus::Missing {
            revision,
            void: Some(v),
        } => format!("not approved for revision {revision}: {v}"),
    }
}

async fn create(store: &Store, config: &Config, actor: &Actor, a: CreateArgs) -> Result<ExitCode> {
    let issue = a.issue;
    let created = actions::create(
        store,
        config,
        actor,
        &CreateCampaign {
            issue,
            segment: a.segment.clone(),
            name: a.name,
            from_name: a.from_name,
            from_address: a.from,
            reply_to: a.reply_to,
            transport: a.transport,
            override_check: a.override_check,
        },
    )
    .await
    .map_err(|e| cli_error(e, &a.segment))?;
    let c = &created.campaign;
    let recipients = actions::matching_contacts(store, &c.segment).await?;
    if a.json {
        print_json(&serde_json::json!({
            "id": c.id, "matching_contacts": recipients, "revision": created.checked.revision,
            "warnings": created.checked.warnings, "overridden": created.checked.overridden,
        }))?;
    } else {
        println!(
            "campaign {} created (draft): issue {issue}, {recipients} active contacts match now{}",
            c.id,
            checked(&created.checked)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A campaign in `campaigns list --json`: the stored row, and for drafts
/// and scheduled campaigns the contacts that match now.
#[derive(Serialize)]
struct Listed<'a> {
    #[serde(flatten)]
    campaign: &'a Campaign,
    matching_contacts: Option<i64>,
}

async fn list(store: &Store, json: bool) -> Result<ExitCode> {
    let list = store.campaigns().await?;
    let mut listed = Vec::with_capacity(list.len());
    for c in &list {
        let unfrozen = matches!(
            c.state()?,
            CampaignState::Draft | CampaignState::Scheduled | CampaignState::Blocked
        );
        let matching = if unfrozen {
            Some(actions::matching_contacts(store, &c.segment).await?)
        } else {
            None
        };
        listed.push(Listed {
            campaign: c,
            matching_contacts: matching,
        });
    }
    if json {
        return print_json(&listed).map(|_| ExitCode::SUCCESS);
    }
    let rows = listed
        .iter()
        .map(|l| {
            let c = l.campaign;
            vec![
                c.id.to_string(),
                c.name.clone(),
                c.issue_number.to_string(),
                c.state.clone(),
                when(c),
                match l.matching_contacts {
                    Some(n) => format!("{n} match now"),
                    None => c.recipients.to_string(),
                },
                c.transport.clone(),
                c.segment.clone(),
            ]
        })
        .collect::<Vec<_>>();
    print_table_wide(
        &[
            "id",
            "name",
            "issue",
            "state",
            "schedule",
            "recipients",
            "transport",
            "segment",
        ],
        &rows,
        &["segment"],
    );
    Ok(ExitCode::SUCCESS)
}

async fn show(store: &Store, config: &Config, id: i64, json: bool) -> Result<ExitCode> {
    let c = store.campaign_or_err(id).await?;
    let events = store.campaign_events(id).await?;
    let counts = store.delivery_counts(id).await?;
    let failed = store
        .deliveries(id, Some(DeliveryStatus::Failed), 1000)
        .await?;
    let tracking = store.tracking_counts(id).await?;
    let approval = approval::view(store, config, &c).await?;
    let plan = timeline::plan(store, config, &c).await?;
    let now = Utc::now().timestamp_millis();
    // A blocked campaign waits for a person, not for a time.
    let blocked = c.state()? == CampaignState::Blocked;
    let next = plan.as_ref().filter(|_| !blocked).and_then(|p| p.next(now));
    if json {
        print_json(&serde_json::json!({
            "campaign": c, "counts": counts, "events": events, "failed": failed,
            "tracking": tracking, "approval": approval,
            "matching_contacts": plan.as_ref().filter(|p| !p.frozen).map(|p| p.recipients),
            "next_due": next.map(|s| output::rfc3339_ms(s.due_ms)),
            "timeline": plan.as_ref().map(|p| p.json_slots()),
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("campaign {} \"{}\"", c.id, c.name);
    println!(
        "  issue      {} (revision {})",
        c.issue_number,
        c.issue_revision
            .map(|r| r.to_string())
            .unwrap_or_else(|| "not frozen yet".into())
    );
    println!(
        "  segment    {}",
        if c.segment.is_empty() {
            "(every active contact)"
        } else {
            &c.segment
        }
    );
    println!("  from       {} <{}>", c.from_name, c.from_address);
    println!("  transport  {}", c.transport);
    println!("  state      {}", state_line(&c));
    println!("  schedule   {}", when(&c));
    println!("  approval   {}", describe_approval(&approval.status));
    if let Some(rev) = c.override_revision {
        println!(
            "  override   preflight failures of revision {rev} overridden by {}: {}",
            c.override_actor, c.override_reason
        );
    }
    if let Some(plan) = plan.as_ref().filter(|p| !p.frozen) {
        println!("  matching   {} active contacts now", plan.recipients);
    }
    match (&plan, next) {
        (Some(plan), Some(next)) => {
            println!("  next due   {}", timeline::slot_text(next, config));
            println!(
                "  timeline   {} recipients in {} slots (times in {}):",
                plan.recipients,
                plan.slots.len(),
                output::clock().zone_name()
            );
            for line in timeline::lines(plan, config, "    ") {
                println!("{line}");
            }
        }
        _ if blocked => println!(
            "  next due   - (blocked: nothing is sent until it is started again; \
             `whatsup campaigns start {id}` after a fix, or with --override-check REASON)"
        ),
        (Some(_), None) if c.state()? == CampaignState::Draft => {
            println!("  next due   - (a draft: schedule it, or `whatsup send {id}`)")
        }
        _ => println!("  next due   -"),
    }
    print_counts(&counts);
    if tracking.opens > 0 || !tracking.clicks.is_empty() {
        let clicks: i64 = tracking.clicks.iter().map(|(_, n)| n).sum();
        println!("  tracking   {} opens, {clicks} clicks", tracking.opens);
        for (url, n) in &tracking.clicks {
            println!("    {n:>6}  {url}");
        }
    }
    println!("history:");
    for e in &events {
        let first = e.reason.lines().next().unwrap_or("");
        println!(
            "  {}  {} -> {}  by {}  {}",
            output::when_secs(e.created_at),
            e.old_state.as_deref().unwrap_or("-"),
            e.new_state,
            e.actor,
            first
        );
        for more in e.reason.lines().skip(1) {
            println!("      {more}");
        }
    }
    if !failed.is_empty() {
        println!("failed:");
        for d in &failed {
            println!(
                "  {}  attempts {}  {}  {}",
                d.email,
                d.attempts,
                d.last_code.as_deref().unwrap_or(""),
                d.last_reply.as_deref().unwrap_or("")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn schedule_campaign(
    store: &Store,
    config: &Config,
    a: ScheduleArgs,
    actor: &Actor,
) -> Result<ExitCode> {
    let when = match (a.at, a.local, a.date) {
        (Some(at), None, _) => ScheduleAt::At(at),
        (None, Some(time), Some(date)) => ScheduleAt::Local { date, time },
        _ => bail!("give --at \"YYYY-MM-DD HH:MM\" or --local HH:MM --date YYYY-MM-DD"),
    };
    let input = ScheduleCampaign {
        when,
        now: a.now,
        override_check: a.override_check,
    };
    let s = actions::schedule(store, config, actor, a.id, &input)
        .await
        .map_err(|e| cli_error(e, ""))?;
    let c = &s.campaign;
    let now_ms = Utc::now().timestamp_millis();
    if let Some(w) = crate::send::schedule::far_off_warning(s.first_due_ms, now_ms) {
        eprintln!("warning: {w}");
    }
    let plan = timeline::plan(store, config, c)
        .await?
        .ok_or_else(|| anyhow!("campaign {} has nothing ahead", a.id))?;
    if a.json {
        print_json(&serde_json::json!({
            "id": c.id,
            "state": c.state,
            "mode": c.schedule_mode,
            "at": c.start_ms.filter(|_| c.schedule_mode != "local").map(output::rfc3339_ms),
            "local_date": c.local_date,
            "local_time": c.local_time,
            "matching_contacts": plan.recipients,
            "timeline": plan.json_slots(),
            "revision": s.checked.revision,
            "warnings": s.checked.warnings,
            "overridden": s.checked.overridden,
        }))?;
    } else {
        for line in timeline::echo(c, &plan, config) {
            println!("{line}");
        }
        println!("{}", checked_text(&s.checked));
    }
    Ok(ExitCode::SUCCESS)
}

/// The schedule column: a time in the shown zone, or the local time.
fn when(c: &Campaign) -> String {
    match (c.schedule_mode.as_str(), c.start_ms) {
        ("local", _) => format!(
            "{} {} local time",
            c.local_date.as_deref().unwrap_or("?"),
            c.local_time.as_deref().unwrap_or("?")
        ),
        (_, Some(ms)) => output::when_ms(ms),
        _ => "-".into(),
    }
}

/// When a campaign started waiting for its relay, for JSON (RFC 3339).
fn waiting_since(c: &Campaign) -> Option<String> {
    c.waiting_since_ms.map(output::rfc3339_ms)
}

/// A campaign's state with its reason, and whether it waits for its relay.
/// The reason (a blocked campaign's lists every failure) goes last: one
/// line in brackets, or indented lines below.
fn state_line(c: &Campaign) -> String {
    let mut line = c.state.clone();
    if let Some(since) = c.waiting_since_ms {
        line.push_str(&format!(
            ", waiting for relay since {}: {}",
            output::when_ms(since),
            c.waiting_reason
        ));
    }
    line.push_str(&reason(&c.state_reason));
    line
}

fn print_counts(c: &Counts) {
    println!(
        "  deliveries {} total: {} sent, {} failed, {} skipped, {} pending, {} retry, {} sending",
        c.total(),
        c.sent,
        c.failed,
        c.skipped,
        c.pending,
        c.retry,
        c.sending
    );
}

/// The final summary of `whatsup send`.
#[derive(Debug, Serialize)]
struct SendSummary {
    campaign: i64,
    state: String,
    reason: String,
    counts: Counts,
    seconds: f64,
    messages_per_second: f64,
    outbox: Option<String>,
    /// With `--no-wait`: when the next message is due (RFC 3339).
    waiting_until: Option<String>,
    /// Stopped by SIGINT or SIGTERM before the campaign was done.
    interrupted: bool,
    /// Since when the campaign waits for an unreachable relay, if it does.
    waiting_for_relay_since: Option<String>,
}

/// `whatsup send CAMPAIGN`: starts it if needed and delivers in the
/// foreground with a progress bar; when nothing is due yet (local-time
/// slots, retries) it says what it waits for and until when, then waits
/// (`--wait`, the default) or exits (`--no-wait`). SIGINT (Ctrl-C) or
/// SIGTERM stop it cleanly: messages in flight finish and are recorded,
/// the rest of the claims are given back, and the summary says so.
pub async fn send(store: &Store, config: &Config, args: SendArgs) -> Result<ExitCode> {
    let c = store.campaign_or_err(args.id).await?;
    if matches!(
        c.state()?,
        CampaignState::Draft | CampaignState::Scheduled | CampaignState::Blocked
    ) {
        let actor = super::cli_actor(store).await?;
        let n = actions::start(
            store,
            config,
            &actor,
            args.id,
            args.override_check.as_deref(),
        )
        .await
        .map_err(|e| cli_error(e, ""))?
        .recipients;
        // Without a terminal the log line `campaign.started` says it.
        if std::io::stderr().is_terminal() {
            eprintln!("campaign {} started: {n} recipients frozen", args.id);
        }
    }
    // SIGTERM (a supervisor, `kill`) and SIGINT (Ctrl-C) alike: messages
    // in flight finish and are recorded, claimed ones are given back.
    let stop = Arc::new(AtomicBool::new(false));
    {
        let mut signals = super::signals::StopSignals::install()?;
        let stop = stop.clone();
        tokio::spawn(async move {
            signals.recv().await;
            eprintln!(
                "stopping: waiting for the messages in flight and recording their outcomes \
                 (claimed messages not yet sent are given back)"
            );
            stop.store(true, Ordering::SeqCst);
        });
    }
    let start_counts = store.delivery_counts(args.id).await?;
    let bar = output::send_bar(start_counts.total() as u64);
    if let Some(b) = &bar {
        b.set_position(start_counts.done() as u64);
        b.reset_eta();
    }
    let began = std::time::Instant::now();
    let mut worker = Worker::new(store.clone(), config.clone())?;
    let mut said: Option<i64> = None;
    let end = loop {
        let end = worker
            .send_campaign_with(
                args.id,
                &stop,
                |counts| {
                    if let Some(b) = &bar {
                        b.set_position(counts.done() as u64);
                        b.set_message(format!("{} failed, {} retry", counts.failed, counts.retry));
                    }
                },
                |_| false,
            )
            .await?;
        let RunEnd::Idle(until) = end else {
            break end;
        };
        // The engine looks again at least every poll interval; what it
        // waits for may be further off.
        let next = store.next_due(args.id).await?.unwrap_or(until).max(until);
        if said != Some(next) {
            let text = timeline::waiting(store, config, args.id, next).await?;
            let line = if args.no_wait {
                format!(
                    "campaign {}: nothing due {text}; not waiting (--no-wait)",
                    args.id
                )
            } else {
                format!("campaign {}: waiting {text}", args.id)
            };
            match &bar {
                Some(b) => b.suspend(|| eprintln!("{line}")),
                None => eprintln!("{line}"),
            }
            said = Some(next);
        }
        if args.no_wait {
            break RunEnd::Idle(next);
        }
        engine::sleep_until(until, &stop).await;
    };
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let secs = began.elapsed().as_secs_f64();
    let c = store.campaign_or_err(args.id).await?;
    let counts = store.delivery_counts(args.id).await?;
    let sent_now = (counts.sent - start_counts.sent).max(0);
    let waiting_until = match end {
        RunEnd::Idle(until) => Some(until),
        _ => None,
    };
    let summary = SendSummary {
        campaign: args.id,
        state: c.state.clone(),
        reason: c.state_reason.clone(),
        counts,
        seconds: secs,
        messages_per_second: if secs > 0.0 {
            sent_now as f64 / secs
        } else {
            0.0
        },
        outbox: (c.transport == "outbox").then(|| {
            crate::send::outbox_dir(config)
                .join(format!("campaign-{}", args.id))
                .display()
                .to_string()
        }),
        waiting_until: waiting_until.map(output::rfc3339_ms),
        interrupted: end == RunEnd::Stopped,
        waiting_for_relay_since: waiting_since(&c),
    };
    if args.json {
        print_json(&summary)?;
    } else {
        println!(
            "campaign {}: {} after {:.1} s ({})",
            args.id,
            state_line(&c),
            secs,
            output::rate(summary.messages_per_second).replace("/s", " messages/s")
        );
        print_counts(&counts);
        if let Some(until) = waiting_until {
            println!(
                "  next due   {}: `whatsup worker` or `whatsup send {}` sends the rest",
                output::when_ms(until),
                args.id
            );
        }
        if let Some(dir) = &summary.outbox {
            println!("  messages written to {dir}");
        }
        if summary.interrupted {
            println!(
                "  stopped by a signal: the messages in flight were recorded and the unsent \
                 claims given back; `whatsup send {}` or `whatsup worker` goes on",
                args.id
            );
        }
    }
    // 0 when the campaign is finished (by this run or an earlier one), or
    // with --no-wait has only messages not yet due, and none failed; 3
    // otherwise (failures, paused, cancelled or interrupted), like an
    // import with rejected rows.
    let finished = end == RunEnd::Finished
        || matches!(end, RunEnd::NotRunning(CampaignState::Finished))
        || waiting_until.is_some();
    Ok(if finished && counts.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_REJECTED_ROWS)
    })
}

/// `whatsup worker`: runs until Ctrl-C or SIGTERM.
pub async fn worker(store: &Store, config: &Config) -> Result<ExitCode> {
    use super::service::{self, StopReason};
    const NAME: &str = "whatsup worker";
    let stop = Arc::new(AtomicBool::new(false));
    let mut signals = super::signals::StopSignals::install()?;
    let mut w = Worker::new(store.clone(), config.clone())?;
    let flag = stop.clone();
    let work = async move { w.run(&flag).await };
    tokio::pin!(work);
    let reason = service::wait_for_stop(&mut signals, store, config, &mut work).await;
    if let StopReason::Ended(result) = reason {
        return result.map(|()| ExitCode::SUCCESS);
    }
    service::announce(NAME, config, &reason);
    stop.store(true, Ordering::SeqCst);
    let drained = service::drain(NAME, config, &mut signals, work).await?;
    Ok(service::exit_code(&reason, drained))
}
