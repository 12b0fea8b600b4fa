//! `whatsup bounces …`: `classify` (pure, no database), `ingest` (the
//! intake for an MTA pipe), `poll` (the intake from an IMAP or POP3
//! mailbox), and `list`, `show`, `report` over what was recorded.
//!
//! ## `classify`
//!
//! With `--json` the output is JSON lines: one compact object per file, in
//! the order given, `{file, is_bounce, format, producer, feedback_type,
//! recipients: [{address, original_recipient, kind, reason, status,
//! smtp_code, diagnostic, remote_mta}], envelope_to, original}`, or
//! `{file, error}` for a file that cannot be read or is not a message. JSON
//! lines stream, and `jq -s` turns them into an array. Without `--json` a
//! table has one row per recipient.
//!
//! The exit code is 0 if every file was read and classified, and 1 if any
//! file could not be read or is not a message; the other files are still
//! printed.
//!
//! ## `ingest [FILE|-] [--recipient ADDR] [--source NAME] [--json]`
//!
//! Reads one raw message (stdin by default) and hands it to
//! [`Intake::ingest`]. A message that is too large or not a message is set
//! aside in the quarantine directory (`NAME.eml` and `NAME.error.txt`) and
//! the command still succeeds, so the MTA does not bounce the bounce. Exit
//! codes, chosen for a Postfix `pipe(8)` transport:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | recorded (also a duplicate, a non-bounce, or set aside in the quarantine) |
//! | 1 | FILE could not be read |
//! | 2 | wrong arguments |
//! | 75 | `EX_TEMPFAIL`: the database or the quarantine could not be written; the MTA keeps the message and tries again |
//!
//! ## `poll imap|pop3 [--once] [--json]`
//!
//! Reads the mailbox of `[bounces.imap]` or `[bounces.pop3]` through
//! [`crate::bounce::mailbox`]: a pass every `poll_secs` until Ctrl-C or
//! SIGTERM (the message being read is finished first), or one pass with
//! `--once`. Each pass prints its counts (ingested, duplicates, quarantined,
//! left for retry); in the loop, quiet passes print nothing. With `--json`,
//! one object per pass. `--once` exits 0 when the pass completed, 75 when
//! the store failed (the messages stay in the mailbox) and 1 when the
//! server did (connection, login, a command).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::output::{print_json, print_table};
use crate::bounce::intake::Intake;
use crate::bounce::mailbox::{FailureKind, Protocol};
use crate::bounce::quarantine::quarantine;
use crate::bounce::{classify, Classification};
use crate::config::Config;
use crate::store::bounces::BounceFilter;
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum BouncesCmd {
    /// Classify bounce, complaint and auto-reply messages (no database)
    Classify(ClassifyArgs),
    /// Read one message (a bounce, complaint, auto-reply or unsubscribe
    /// request) from FILE or stdin and record it; for an MTA pipe
    Ingest(IngestArgs),
    /// Read bounces from the IMAP or POP3 mailbox of [bounces.imap] /
    /// [bounces.pop3], every poll_secs until stopped, or once
    Poll(PollArgs),
    /// List recorded bounce events, newest first
    List(ListArgs),
    /// Show one event (by id) or every event for an address
    Show(ShowArgs),
    /// One line per address: who bounced, when and why, in the server's words
    Report(ReportArgs),
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// The raw message; `-` or nothing: stdin
    #[arg(value_name = "FILE|-")]
    pub file: Option<PathBuf>,
    /// The envelope recipient the MTA delivered to (Postfix: ${original_recipient})
    #[arg(long, value_name = "ADDR")]
    pub recipient: Option<String>,
    /// Name of the way in, kept with each event
    #[arg(long, default_value = "pipe")]
    pub source: String,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PollArgs {
    /// Which mailbox: imap ([bounces.imap]) or pop3 ([bounces.pop3])
    #[arg(value_enum)]
    pub protocol: PollProtocol,
    /// One pass over the mailbox, then exit
    #[arg(long)]
    pub once: bool,
    /// One JSON object per pass
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum PollProtocol {
    Imap,
    Pop3,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only events since: a date (2026-11-01), an RFC 3339 time, or an age (7d, 24h)
    #[arg(long)]
    pub since: Option<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[arg(long, default_value_t = 100)]
    pub limit: i64,
    #[arg(long)]
    pub json: bool,
}

/// Which events, beyond their age.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Only this kind (hard, soft, complaint, delay, auto_reply, unknown, unsubscribe)
    #[arg(long)]
    pub kind: Option<String>,
    /// Only this reason (user_unknown, mailbox_full, spam_complaint…; see `bounces report`)
    #[arg(long)]
    pub reason: Option<String>,
    /// Only events that were not verified (and so changed no status)
    #[arg(long, conflicts_with = "verified")]
    pub unverified: bool,
    /// Only verified events
    #[arg(long)]
    pub verified: bool,
}

impl FilterArgs {
    fn filter(&self, since: Option<&str>, limit: i64) -> Result<BounceFilter> {
        Ok(BounceFilter {
            since: since.map(parse_since).transpose()?,
            kind: self.kind.clone().filter(|k| !k.is_empty()),
            reason: self.reason.clone().filter(|r| !r.is_empty()),
            verified: match (self.verified, self.unverified) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
            limit,
        })
    }
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// An event id or an e-mail address
    pub what: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Only events since: a date, an RFC 3339 time, or an age (7d, 24h)
    #[arg(long)]
    pub since: Option<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// Raw message files (.eml)
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// One JSON object per file and line
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct FileResult<'a> {
    file: String,
    #[serde(flatten)]
    classification: &'a Classification,
}

#[derive(Serialize)]
struct FileError {
    file: String,
    error: String,
}

pub async fn run(config: &Config, cmd: BouncesCmd) -> Result<ExitCode> {
    match cmd {
        BouncesCmd::Classify(args) => classify_files(&args),
        BouncesCmd::Ingest(args) => ingest(config, &args).await,
        BouncesCmd::Poll(args) => poll(config, &args).await,
        BouncesCmd::List(args) => {
            let store = Store::open(config).await?;
            let filter = args.filter.filter(args.since.as_deref(), args.limit)?;
            let rows = store.list_bounces(&filter).await?;
            store.close().await;
            if args.json {
                print_json(&rows)?;
            } else {
                let table: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.id.to_string(),
                            r.created_at.format("%Y-%m-%d %H:%M").to_string(),
                            r.email.clone(),
                            r.kind.clone(),
                            r.reason.clone(),
                            r.status.clone(),
                            matched(&r.matched_by, r.verified),
                            r.action.clone(),
                            cut(&r.diagnostic, 50),
                        ]
                    })
                    .collect();
                print_table(
                    &[
                        "ID",
                        "AT",
                        "ADDRESS",
                        "KIND",
                        "REASON",
                        "STATUS",
                        "MATCHED BY",
                        "ACTION",
                        "DIAGNOSTIC",
                    ],
                    &table,
                );
                let unverified = rows.iter().filter(|r| !r.verified).count();
                println!(
                    "{} events{}",
                    rows.len(),
                    if unverified > 0 {
                        format!(
                            ", {unverified} unverified (matched only by what anyone can write; \
                             they changed nothing)"
                        )
                    } else {
                        String::new()
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        BouncesCmd::Show(args) => {
            let store = Store::open(config).await?;
            let rows = match args.what.parse::<i64>() {
                Ok(id) => store.bounce_by_id(id).await?.into_iter().collect(),
                Err(_) => store.bounces_for_email(&args.what).await?,
            };
            store.close().await;
            if rows.is_empty() {
                anyhow::bail!("no bounce events for {}", args.what);
            }
            if args.json {
                print_json(&rows)?;
            } else {
                for r in &rows {
                    println!("event {} at {}", r.id, r.created_at.to_rfc3339());
                    println!("  address:    {}", r.email);
                    println!(
                        "  contact:    {} ({})",
                        r.contact_id.map_or("unmatched".into(), |c| c.to_string()),
                        r.contact_status.as_deref().unwrap_or("-")
                    );
                    if let Some(org) = &r.organisation {
                        println!("  organisation: {org}");
                    }
                    println!(
                        "  campaign:   {}",
                        r.campaign_id.map_or("-".into(), |c| c.to_string())
                    );
                    println!("  kind:       {} ({})", r.kind, r.reason);
                    println!("  status:     {}", r.status);
                    println!("  diagnostic: {}", r.diagnostic);
                    println!(
                        "  source:     {} (matched by {})",
                        r.source,
                        matched(&r.matched_by, r.verified)
                    );
                    println!("  action:     {}", r.action);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        BouncesCmd::Report(args) => {
            let store = Store::open(config).await?;
            let filter = args.filter.filter(args.since.as_deref(), 0)?;
            let rows = store.bounce_report(&filter).await?;
            store.close().await;
            if args.json {
                print_json(&rows)?;
            } else {
                let table: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.email.clone(),
                            r.organisation.clone().unwrap_or_default(),
                            r.contact_status.clone().unwrap_or_else(|| "-".into()),
                            r.last_at.format("%Y-%m-%d").to_string(),
                            format!("{} ({})", r.last_kind, r.last_reason),
                            r.last_status.clone(),
                            if r.unverified > 0 {
                                format!(
                                    "{}h {}s {}c, {} unverified",
                                    r.hard, r.soft, r.complaints, r.unverified
                                )
                            } else {
                                format!("{}h {}s {}c", r.hard, r.soft, r.complaints)
                            },
                            cut(&r.last_diagnostic, 60),
                        ]
                    })
                    .collect();
                print_table(
                    &[
                        "ADDRESS",
                        "ORGANISATION",
                        "NOW",
                        "LAST",
                        "WHAT",
                        "STATUS",
                        "COUNTS",
                        "SERVER SAID",
                    ],
                    &table,
                );
                println!("{} addresses", rows.len());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// How an event was matched, as shown: `verp`, or `address (unverified)`.
fn matched(by: &str, verified: bool) -> String {
    match (by, verified) {
        ("", _) => "-".into(),
        (by, true) => by.to_string(),
        (by, false) => format!("{by} (unverified)"),
    }
}

/// `EX_TEMPFAIL` from sysexits.h: the MTA keeps the message and retries.
pub const EX_TEMPFAIL: u8 = 75;

async fn ingest(config: &Config, args: &IngestArgs) -> Result<ExitCode> {
    use std::io::Read;
    let max = usize::try_from(config.bounces.max_message_bytes).unwrap_or(usize::MAX);
    let mut raw = Vec::new();
    let read = match args.file.as_deref() {
        Some(p) if p.as_os_str() != "-" => std::fs::File::open(p)
            .and_then(|f| f.take(max as u64 + 1).read_to_end(&mut raw))
            .map_err(|e| format!("{}: {e}", p.display())),
        _ => {
            let mut stdin = std::io::stdin().lock();
            let r = (&mut stdin).take(max as u64 + 1).read_to_end(&mut raw);
            // Drain the rest, so the MTA does not see a broken pipe.
            let _ = std::io::copy(&mut stdin, &mut std::io::sink());
            r.map_err(|e| format!("stdin: {e}"))
        }
    };
    if let Err(e) = read {
        eprintln!("error: cannot read {e}");
        return Ok(ExitCode::from(1));
    }
    let store = match Store::open(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: opening the database: {e:#} (exit 75: try again later)");
            return Ok(ExitCode::from(EX_TEMPFAIL));
        }
    };
    let intake = Intake::from_config(store.clone(), config)?;
    let result = intake
        .ingest(&raw, &args.source, args.recipient.as_deref())
        .await;
    store.close().await;
    match result {
        Ok(done) => {
            if args.json {
                println!("{}", serde_json::to_string(&done)?);
            } else if done.outcome.duplicate {
                println!("already recorded (message {})", done.outcome.message_ref);
            } else if done.outcome.events.is_empty() {
                println!(
                    "not a bounce; recorded as message {}",
                    done.outcome.message_ref
                );
            } else {
                for e in &done.outcome.events {
                    println!(
                        "{} {} ({}): {}{}",
                        e.email,
                        e.kind,
                        e.reason,
                        e.action,
                        if e.matched_by.is_empty() {
                            String::new()
                        } else {
                            format!(", matched by {}", matched(&e.matched_by, e.verified))
                        }
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if e.is_permanent() => match quarantine(config, &raw, &e.to_string()) {
            Ok(path) => {
                eprintln!("set aside in {}: {e}", path.display());
                if args.json {
                    println!(
                        "{}",
                        serde_json::json!({"quarantined": path, "error": e.to_string()})
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(qe) => {
                eprintln!("error: {e}; and the quarantine failed: {qe:#} (exit 75)");
                Ok(ExitCode::from(EX_TEMPFAIL))
            }
        },
        Err(e) => {
            eprintln!("error: {e} (exit 75: try again later)");
            Ok(ExitCode::from(EX_TEMPFAIL))
        }
    }
}

async fn poll(config: &Config, args: &PollArgs) -> Result<ExitCode> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let protocol = match args.protocol {
        PollProtocol::Imap => Protocol::Imap,
        PollProtocol::Pop3 => Protocol::Pop3,
    };
    let store = match Store::open(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: opening the database: {e:#} (exit 75: try again later)");
            return Ok(ExitCode::from(EX_TEMPFAIL));
        }
    };
    let intake = Intake::from_config(store.clone(), config)?;
    let stop = Arc::new(AtomicBool::new(false));
    let wake = Arc::new(tokio::sync::Notify::new());
    {
        let mut signals = super::signals::StopSignals::install()?;
        let (stop, wake) = (stop.clone(), wake.clone());
        tokio::spawn(async move {
            signals.recv().await;
            stop.store(true, Ordering::SeqCst);
            wake.notify_one();
        });
    }
    let interval = protocol.poll_interval(config);
    let code = loop {
        let report = protocol.pass(&intake, config, &stop).await;
        let c = &report.counts;
        let quiet = c.ingested + c.duplicates + c.quarantined + c.left == 0;
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        } else if args.once || !quiet || report.failure.is_some() {
            let handled = c.ingested + c.duplicates + c.quarantined;
            println!(
                "{}: {} ingested, {} duplicates, {} quarantined, {} left for retry \
                 ({:.2} s, {:.0} messages/s)",
                protocol.name(),
                c.ingested,
                c.duplicates,
                c.quarantined,
                c.left,
                report.seconds,
                handled as f64 / report.seconds.max(1e-9)
            );
        }
        tracing::info!(
            ingested = c.ingested,
            duplicates = c.duplicates,
            quarantined = c.quarantined,
            left = c.left,
            "{} pass done",
            protocol.name()
        );
        let code = match &report.failure {
            None => ExitCode::SUCCESS,
            Some(f) => {
                let (what, exit) = match f.kind {
                    FailureKind::Store => ("the store failed", EX_TEMPFAIL),
                    FailureKind::Mailbox => ("the mailbox failed", 1),
                };
                eprintln!("error: {what}: {}", f.message);
                ExitCode::from(exit)
            }
        };
        if args.once || stop.load(Ordering::SeqCst) {
            break code;
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {},
            _ = wake.notified() => {},
        }
        if stop.load(Ordering::SeqCst) {
            break ExitCode::SUCCESS;
        }
    };
    store.close().await;
    Ok(code)
}

/// `2026-11-01`, an RFC 3339 time, or an age: `7d`, `24h`, `30m`.
pub fn parse_since(s: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    use chrono::{DateTime, NaiveDate, Utc};
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    }
    let (num, unit) = s.split_at(s.len().saturating_sub(1));
    let n: i64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("--since {s:?}: expected a date (2026-11-01), an RFC 3339 time or an age (7d, 24h, 30m)"))?;
    let age = match unit {
        "d" => chrono::Duration::days(n),
        "h" => chrono::Duration::hours(n),
        "m" => chrono::Duration::minutes(n),
        _ => anyhow::bail!("--since {s:?}: the age unit must be d, h or m"),
    };
    Ok(Utc::now() - age)
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}

fn classify_files(args: &ClassifyArgs) -> Result<ExitCode> {
    let mut failed = false;
    let mut rows = Vec::new();
    for path in &args.files {
        let file = path.display().to_string();
        let outcome = std::fs::read(path)
            .map_err(|e| format!("cannot read: {e}"))
            .and_then(|bytes| classify(&bytes).map_err(|e| e.to_string()));
        match outcome {
            Ok(c) => {
                if args.json {
                    let line = FileResult {
                        file,
                        classification: &c,
                    };
                    println!("{}", serde_json::to_string(&line)?);
                } else if c.recipients.is_empty() {
                    rows.push(vec![
                        file,
                        yes_no(c.is_bounce),
                        String::new(),
                        String::new(),
                        String::new(),
                        String::new(),
                        String::new(),
                    ]);
                } else {
                    for r in &c.recipients {
                        rows.push(vec![
                            file.clone(),
                            yes_no(c.is_bounce),
                            r.address.clone(),
                            json_word(&r.kind),
                            json_word(&r.reason),
                            r.status.clone().unwrap_or_default(),
                            r.diagnostic.clone().unwrap_or_default(),
                        ]);
                    }
                }
            }
            Err(error) => {
                failed = true;
                if args.json {
                    println!("{}", serde_json::to_string(&FileError { file, error })?);
                } else {
                    eprintln!("error: {file}: {error}");
                }
            }
        }
    }
    if !args.json && !rows.is_empty() {
        print_table(
            &[
                "FILE",
                "BOUNCE",
                "ADDRESS",
                "KIND",
                "REASON",
                "STATUS",
                "DIAGNOSTIC",
            ],
            &rows,
        );
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

/// The snake_case word serde gives an enum value.
fn json_word<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}
