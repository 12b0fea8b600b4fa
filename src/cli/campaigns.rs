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
use crate::config::Config;
use crate::domain::segment::Segment;
use crate::domain::{CampaignState, DeliveryStatus};
use crate::send::engine::{self, RunEnd};
use crate::send::schedule;
use crate::send::worker::Worker;
use crate::store::campaigns::{Campaign, Counts, NewCampaign, Schedule};
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
    /// Start a campaign now (freezes its recipients); `whatsup worker` or
    /// `whatsup send` then delivers
    Start { id: i64 },
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
}

/// `whatsup send` arguments.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Campaign id; a draft or scheduled campaign starts now
    pub id: i64,
    /// Print the final summary as JSON
    #[arg(long)]
    pub json: bool,
}

pub async fn run(store: &Store, config: &Config, cmd: CampaignsCmd) -> Result<ExitCode> {
    let actor = super::cli_actor();
    match cmd {
        CampaignsCmd::Create(a) => {
            if store.issue(u32::try_from(a.issue)?).await?.is_none() {
                bail!(
                    "issue {} is not in the database; import it with `whatsup issues import FILE`",
                    a.issue
                );
            }
            if !a.segment.trim().is_empty() {
                Segment::parse(&a.segment).map_err(|e| e.with_text(&a.segment))?;
            }
            let transport = a
                .transport
                .unwrap_or_else(|| config.sending.transport.clone());
            if !matches!(transport.as_str(), "smtp" | "outbox") {
                bail!("--transport: {transport:?} is not one of smtp, outbox");
            }
            let name = a.name.unwrap_or_else(|| format!("Issue {}", a.issue));
            let id = store
                .create_campaign(&NewCampaign {
                    name: &name,
                    issue_number: a.issue,
                    segment: a.segment.trim(),
                    from_name: a
                        .from_name
                        .as_deref()
                        .unwrap_or(&config.newsletter.from_name),
                    from_address: a.from.as_deref().unwrap_or(&config.newsletter.from_address),
                    reply_to: a.reply_to.as_deref().unwrap_or(&config.newsletter.reply_to),
                    transport: &transport,
                    actor: &actor,
                })
                .await?;
            let recipients = store
                .count_contacts(
                    Segment::parse(&format!(
                        "status = active{}",
                        if a.segment.trim().is_empty() {
                            String::new()
                        } else {
                            format!(" and ({})", a.segment)
                        }
                    ))
                    .ok()
                    .as_ref(),
                )
                .await?;
            if a.json {
                print_json(&serde_json::json!({"id": id, "matching_contacts": recipients}))?;
            } else {
                println!(
                    "campaign {id} created (draft): issue {}, {recipients} active contacts match now",
                    a.issue
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        CampaignsCmd::List { json } => {
            let list = store.campaigns().await?;
            if json {
                print_json(&list)?;
            } else {
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
            }
            Ok(ExitCode::SUCCESS)
        }
        CampaignsCmd::Show { id, json } => {
            let c = store.campaign_or_err(id).await?;
            let events = store.campaign_events(id).await?;
            let counts = store.delivery_counts(id).await?;
            let failed = store
                .deliveries(id, Some(DeliveryStatus::Failed), 1000)
                .await?;
            let tracking = store.tracking_counts(id).await?;
            if json {
                print_json(&serde_json::json!({
                    "campaign": c, "counts": counts, "events": events, "failed": failed,
                    "tracking": tracking,
                }))?;
            } else {
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
                println!(
                    "  state      {}{}",
                    c.state,
                    if c.state_reason.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", c.state_reason)
                    }
                );
                println!("  schedule   {}", when(&c, config));
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
                    println!(
                        "  {}  {} -> {}  by {}  {}",
                        e.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
                        e.old_state.as_deref().unwrap_or("-"),
                        e.new_state,
                        e.actor,
                        e.reason
                    );
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
            }
            Ok(ExitCode::SUCCESS)
        }
        CampaignsCmd::Schedule(a) => {
            let tz: chrono_tz::Tz = config
                .newsletter
                .timezone
                .parse()
                .map_err(|_| anyhow!("newsletter.timezone is not an IANA zone"))?;
            let s = match (&a.at, &a.local, &a.date) {
                (Some(at), None, _) => {
                    Schedule::At(schedule::parse_local(at, tz)?.timestamp_millis())
                }
                (None, Some(t), Some(d)) => {
                    let (date, time) = schedule::check_local(d, t)?;
                    Schedule::Local {
                        date: date.to_string(),
                        time: time.format("%H:%M").to_string(),
                        earliest_ms: schedule::earliest(date, time).timestamp_millis(),
                    }
                }
                _ => bail!("give --at \"YYYY-MM-DD HH:MM\" or --local HH:MM --date YYYY-MM-DD"),
            };
            transition(
                store.schedule_campaign(a.id, &s, &actor).await?,
                store,
                a.id,
                "scheduled",
            )
            .await
        }
        CampaignsCmd::Start { id } => match engine::start(store, config, id, &actor).await? {
            Some(n) => {
                println!("campaign {id} started: {n} recipients frozen; run `whatsup worker` or `whatsup send {id}`");
                Ok(ExitCode::SUCCESS)
            }
            None => transition(false, store, id, "started").await,
        },
        CampaignsCmd::Pause { id } => {
            let moved = store
                .move_campaign(
                    id,
                    &[CampaignState::Running],
                    CampaignState::Paused,
                    &actor,
                    "paused by operator",
                )
                .await?;
            transition(moved, store, id, "paused").await
        }
        CampaignsCmd::Resume { id } => {
            let moved = store
                .move_campaign(
                    id,
                    &[CampaignState::Paused],
                    CampaignState::Running,
                    &actor,
                    "resumed by operator",
                )
                .await?;
            transition(moved, store, id, "resumed").await
        }
        CampaignsCmd::Cancel { id } => {
            let moved = store
                .move_campaign(
                    id,
                    &[
                        CampaignState::Draft,
                        CampaignState::Scheduled,
                        CampaignState::Running,
                        CampaignState::Paused,
                    ],
                    CampaignState::Cancelled,
                    &actor,
                    "cancelled by operator",
                )
                .await?;
            transition(moved, store, id, "cancelled").await
        }
        CampaignsCmd::RetryFailed { id } => {
            let n = store.retry_failed(id, &actor).await?;
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
                }))?;
            } else {
                println!(
                    "campaign {id}: {}{}",
                    c.state,
                    if c.state_reason.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", c.state_reason)
                    }
                );
                print_counts(&counts);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn transition(moved: bool, store: &Store, id: i64, verb: &str) -> Result<ExitCode> {
    let c = store.campaign_or_err(id).await?;
    if moved {
        println!("campaign {id} {verb}");
        Ok(ExitCode::SUCCESS)
    } else {
        Err(anyhow!("campaign {id} is {}; it cannot be {verb}", c.state))
    }
}

fn when(c: &Campaign, config: &Config) -> String {
    match (c.schedule_mode.as_str(), c.start_ms) {
        ("local", _) => format!(
            "{} {} local time",
            c.local_date.as_deref().unwrap_or("?"),
            c.local_time.as_deref().unwrap_or("?")
        ),
        (_, Some(ms)) => {
            let tz: chrono_tz::Tz = config
                .newsletter
                .timezone
                .parse()
                .unwrap_or(chrono_tz::Asia::Tokyo);
            Utc.timestamp_millis_opt(ms)
                .single()
                .map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string())
                .unwrap_or_default()
        }
        _ => "-".into(),
    }
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
}

/// `whatsup send CAMPAIGN`: starts it if needed and delivers in the
/// foreground with a progress bar; Ctrl-C stops after the current batch.
pub async fn send(store: &Store, config: &Config, args: SendArgs) -> Result<ExitCode> {
    let c = store.campaign_or_err(args.id).await?;
    if matches!(c.state()?, CampaignState::Draft | CampaignState::Scheduled) {
        engine::start(store, config, args.id, &super::cli_actor()).await?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, Ordering::SeqCst);
            }
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
    };
    if args.json {
        print_json(&summary)?;
    } else {
        println!(
            "campaign {}: {}{} after {:.1} s ({:.0} messages/s)",
            args.id,
            summary.state,
            if summary.reason.is_empty() {
                String::new()
            } else {
                format!(" ({})", summary.reason)
            },
            secs,
            summary.messages_per_second
        );
        print_counts(&counts);
        if let Some(dir) = &summary.outbox {
            println!("  messages written to {dir}");
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
    let stop = Arc::new(AtomicBool::new(false));
    {
        let mut signals = super::signals::StopSignals::install()?;
        let stop = stop.clone();
        tokio::spawn(async move {
            signals.recv().await;
            stop.store(true, Ordering::SeqCst);
        });
    }
    let mut w = Worker::new(store.clone(), config.clone())?;
    w.run(&stop).await?;
    Ok(ExitCode::SUCCESS)
}
