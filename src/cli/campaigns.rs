//! `whatsup campaigns …`, `whatsup send CAMPAIGN` and `whatsup worker`.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use chrono::{TimeZone as _, Utc};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::output::{print_json, print_table};
use crate::app::approval::{self, ApprovalView};
use crate::app::campaign_actions::{
    self as actions, Checked, Control, CreateCampaign, ScheduleAt, ScheduleCampaign,
};
use crate::app::AppError;
use crate::config::Config;
use crate::domain::approval::ApprovalStatus;
use crate::domain::{Actor, CampaignState, DeliveryStatus};
use crate::send::engine::RunEnd;
use crate::send::worker::Worker;
use crate::store::campaigns::{Campaign, Counts};
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum CampaignsCmd {
    /// Create a draft campaign: an issue, a segment and a sender
    Create(CreateArgs),
    /// List campaigns
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a campaign: settings, state history, counts and failures
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Schedule a campaign at a time in the newsletter's zone, or at a local
    /// time in each recipient's zone
    Schedule(ScheduleArgs),
    /// Change a draft, scheduled or blocked campaign's name or segment (a
    /// new segment voids its approval)
    Edit {
        id: i64,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        segment: Option<String>,
    },
    /// Ask for a second person's approval of the campaign as it is now
    RequestApproval {
        id: i64,
        /// A note for the approver
        #[arg(long, default_value = "")]
        note: String,
        #[arg(long)]
        json: bool,
    },
    /// Approve the campaign's issue revision and segment (an operator or
    /// admin other than its creator and the revision's author; name your
    /// account with --as EMAIL); the revision must pass its preflight check
    Approve {
        id: i64,
        #[arg(long, default_value = "")]
        note: String,
        #[arg(long)]
        json: bool,
    },
    /// Start a campaign now: checks the issue (and its approval), freezes
    /// the recipients and renders every message once; `whatsup worker` or
    /// `whatsup send` then delivers
    Start {
        id: i64,
        /// Send despite the issue's preflight failures, for this reason
        /// (recorded in the campaign's history)
        #[arg(long, value_name = "REASON")]
        override_check: Option<String>,
    },
    /// Pause a running campaign
    Pause { id: i64 },
    /// Resume a paused campaign where it stopped
    Resume { id: i64 },
    /// Cancel a campaign that has not finished
    Cancel { id: i64 },
    /// Queue a campaign's failed deliveries again
    RetryFailed { id: i64 },
    /// Counts of a campaign's deliveries by status
    Status {
        id: i64,
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
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ScheduleArgs {
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
}

/// `whatsup send` arguments.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Campaign id; a draft, scheduled or blocked campaign starts now
    pub id: i64,
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
        CampaignsCmd::List { json } => list(store, config, json).await,
        CampaignsCmd::Show { id, json } => show(store, config, id, json).await,
        CampaignsCmd::Schedule(a) => {
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
            let s = actions::schedule(store, config, &actor, a.id, &input)
                .await
                .map_err(|e| cli_error(e, ""))?;
            let now_ms = Utc::now().timestamp_millis();
            if let Some(w) = crate::send::schedule::far_off_warning(s.first_due_ms, now_ms) {
                eprintln!("warning: {w}");
            }
            println!(
                "campaign {} scheduled: first recipients due {}{}",
                a.id,
                local_time(s.first_due_ms, config),
                checked(&s.checked)
            );
            Ok(ExitCode::SUCCESS)
        }
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
    let (revision, warnings) = (c.revision, c.warnings);
    format!(
        " (issue revision {revision} checked: {}{warnings} warning(s))",
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

/// An error of the service, with a segment's column pointed at.
fn cli_error(e: AppError, segment: &str) -> anyhow::Error {
    match &e {
        AppError::Invalid(errors) => {
            let mut out = Vec::new();
            for f in errors {
                let field = f.field.as_deref().unwrap_or("input");
                match (field, f.column) {
                    ("segment", Some(col)) => out.push(format!(
                        "--segment: {}\n  {segment}\n  {}^",
                        f.detail,
                        " ".repeat(col.saturating_sub(1) as usize)
                    )),
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
        ApprovalStatus::NotRequired => "approval not required".into(),
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

async fn list(store: &Store, config: &Config, json: bool) -> Result<ExitCode> {
    let list = store.campaigns().await?;
    if json {
        print_json(&list)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows = list
        .iter()
        .map(|c| {
            vec![
                c.id.to_string(),
                c.name.clone(),
                c.issue_number.to_string(),
                c.state.clone(),
                when(c, config),
                c.recipients.to_string(),
                c.transport.clone(),
            ]
        })
        .collect::<Vec<_>>();
    print_table(
        &[
            "id",
            "name",
            "issue",
            "state",
            "schedule",
            "recipients",
            "transport",
        ],
        &rows,
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
    if json {
        print_json(&serde_json::json!({
            "campaign": c, "counts": counts, "events": events, "failed": failed,
            "tracking": tracking, "approval": approval,
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
    println!("  schedule   {}", when(&c, config));
    println!("  approval   {}", describe_approval(&approval.status));
    if let Some(rev) = c.override_revision {
        println!(
            "  override   preflight failures of revision {rev} overridden by {}: {}",
            c.override_actor, c.override_reason
        );
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
            e.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
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

fn local_time(ms: i64, config: &Config) -> String {
    let tz: chrono_tz::Tz = config
        .newsletter
        .timezone
        .parse()
        .unwrap_or(chrono_tz::Asia::Tokyo);
    actions::local_time(ms, tz)
}

fn when(c: &Campaign, config: &Config) -> String {
    match (c.schedule_mode.as_str(), c.start_ms) {
        ("local", _) => format!(
            "{} {} local time",
            c.local_date.as_deref().unwrap_or("?"),
            c.local_time.as_deref().unwrap_or("?")
        ),
        (_, Some(ms)) => local_time(ms, config),
        _ => "-".into(),
    }
}

/// When a campaign started waiting for its relay, in UTC.
fn waiting_since(c: &Campaign) -> Option<String> {
    c.waiting_since_ms
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

/// A campaign's state with its reason, and whether it waits for its relay.
/// The reason (a blocked campaign's lists every failure) goes last: one
/// line in brackets, or indented lines below.
fn state_line(c: &Campaign) -> String {
    let mut line = c.state.clone();
    if let Some(since) = waiting_since(c) {
        line.push_str(&format!(
            ", waiting for relay since {since}: {}",
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
    /// Stopped by SIGINT or SIGTERM before the campaign was done.
    interrupted: bool,
    /// Since when the campaign waits for an unreachable relay, if it does.
    waiting_for_relay_since: Option<String>,
}

/// `whatsup send CAMPAIGN`: starts it if needed and delivers in the
/// foreground with a progress bar; SIGINT (Ctrl-C) or SIGTERM stop it
/// cleanly: messages in flight finish and are recorded, the rest of the
/// claims are given back, and the summary says so.
pub async fn send(store: &Store, config: &Config, args: SendArgs) -> Result<ExitCode> {
    let c = store.campaign_or_err(args.id).await?;
    if matches!(
        c.state()?,
        CampaignState::Draft | CampaignState::Scheduled | CampaignState::Blocked
    ) {
        let actor = super::cli_actor(store).await?;
        actions::start(
            store,
            config,
            &actor,
            args.id,
            args.override_check.as_deref(),
        )
        .await
        .map_err(|e| cli_error(e, ""))?;
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
    let bar = if std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new(start_counts.total() as u64).with_style(
            indicatif::ProgressStyle::with_template(
                "sending [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b.set_position(start_counts.done() as u64);
        b.reset_eta();
        Some(b)
    } else {
        None
    };
    let began = std::time::Instant::now();
    let mut worker = Worker::new(store.clone(), config.clone())?;
    let end = worker
        .send_campaign(args.id, &stop, |counts| {
            if let Some(b) = &bar {
                b.set_position(counts.done() as u64);
                b.set_message(format!("{} failed, {} retry", counts.failed, counts.retry));
            }
        })
        .await?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let secs = began.elapsed().as_secs_f64();
    let c = store.campaign_or_err(args.id).await?;
    let counts = store.delivery_counts(args.id).await?;
    let sent_now = (counts.sent - start_counts.sent).max(0);
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
        interrupted: end == RunEnd::Stopped,
        waiting_for_relay_since: waiting_since(&c),
    };
    if args.json {
        print_json(&summary)?;
    } else {
        println!(
            "campaign {}: {} after {:.1} s ({:.0} messages/s)",
            args.id,
            state_line(&c),
            secs,
            summary.messages_per_second
        );
        print_counts(&counts);
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
    // 0 only when the campaign is finished (by this run or an earlier one)
    // and none failed; 3 otherwise (failures, paused, cancelled or
    // interrupted), like an import with rejected rows.
    let finished =
        end == RunEnd::Finished || matches!(end, RunEnd::NotRunning(CampaignState::Finished));
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
