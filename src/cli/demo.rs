//! `whatsup demo`: the main job end to end on embedded defaults, with no
//! external server:
//!
//! 1. creates the SQLite database in the data directory and imports the
//!    seed subscribers, printing a summary by kind and region;
//! 2. imports the sample issue, runs the preflight check and writes a
//!    preview (HTML, text, .eml) personalised for the first contact;
//! 3. sends a campaign of that issue to every active contact through the
//!    outbox transport (one .eml per message) and prints what was sent and
//!    where to look.
//!
//! Running it again changes nothing: the import is idempotent and a finished
//! demo campaign is reported, not sent again. Without a configured token
//! secret the demo makes one in `<data_dir>/token-secret`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Result};
use clap::Args;

use super::output::progress;
use crate::app::campaign_actions::{self as actions, CreateCampaign};
use crate::compose::{preflight, preview, CompiledIssue, Issue, LinkTokens, Recipient};
use crate::config::{Config, Secret};
use crate::domain::{Actor, CampaignState};
use crate::import::{import_file, ImportOptions};
use crate::send::worker::Worker;
use crate::store::issues::IssueText;
use crate::store::Store;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory of seed CSV files
    #[arg(long, default_value = "subscribers")]
    pub seed_dir: PathBuf,
    /// The issue to compose and send
    #[arg(long, default_value = "samples/issue-214.md")]
    pub issue: PathBuf,
}

pub async fn run(config: &Config, args: DemoArgs) -> Result<ExitCode> {
    let url = config.database_url();
    println!("database: {}", crate::store::redact_url(&url));
    let store = Store::open(config).await?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.seed_dir)
        .map_err(|e| anyhow::anyhow!("reading seed directory {}: {e}", args.seed_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no .csv files in {}", args.seed_dir.display());
    }
    let mut rejected = 0;
    for file in &files {
        let opts = ImportOptions {
            batch_size: config.import.batch_size,
            actor: "demo".into(),
            consent_source: Some(format!("seed:{}", file.display())),
            ..Default::default()
        };
        let len = std::fs::metadata(file).ok().map(|m| m.len());
        let report = import_file(
            &store,
            file,
            &opts,
            progress(len, "importing"),
            Arc::new(AtomicBool::new(false)),
        )
        .await?;
        for e in &report.errors {
            eprintln!("{}:{e}", report.file);
        }
        rejected += report.rejected;
        println!("{}", report.summary_line());
    }
    println!();
    super::subscribers::summary(&store, false).await?;
    if rejected > 0 {
        store.close().await;
        bail!("{rejected} seed rows were rejected");
    }
    let result = compose_and_send(config, &store, &args.issue).await;
    store.close().await;
    result
}

const DEMO_CAMPAIGN: &str = "Demo: sample issue to everyone";

/// Steps 2 and 3: the sample issue, its preview, and the outbox campaign.
async fn compose_and_send(config: &Config, store: &Store, path: &Path) -> Result<ExitCode> {
    let mut config = config.clone();
    if config.security.token_secret.is_empty() {
        config.security.token_secret = Secret::new(demo_secret(&config.general.data_dir)?);
    }
    // The demo's campaign only writes files to the outbox: it needs no
    // second person's approval (newsletter.require_approval).
    config.newsletter.require_approval = false;
    let config = &config;
    let demo = Actor::system("demo");
    println!();
    let issue = Issue::load(path)?;
    store
        .save_issue(&IssueText {
            number: issue.number,
            subject: &issue.subject,
            date: issue.date,
            source_path: &path.display().to_string(),
            source: &issue.source,
            actor: &demo,
        })
        .await?;
    let report = preflight::check_source(
        &path.display().to_string(),
        &issue.source,
        &config.newsletter,
    );
    if !report.passed() {
        print!("{}", report.to_text());
        bail!("the sample issue does not pass the preflight check");
    }
    println!(
        "issue {} \"{}\": preflight passed ({} warnings)",
        issue.number,
        issue.subject,
        report.warnings()
    );
    let compiled = CompiledIssue::compile(issue.clone(), &config.newsletter)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let first = store.list_contacts(None, Some(1), 0).await?;
    let recipient = match first.first() {
        Some(c) => Recipient::from_contact(c, LinkTokens::preview()),
        None => Recipient::sample(None),
    };
    let preview_dir = config.general.data_dir.join("preview");
    let written = preview::write_files(&compiled, &recipient, &preview_dir)?;
    println!(
        "preview for {}: open {} (also {} and {})",
        recipient.email,
        written.html.display(),
        written.text.display(),
        written.eml.display()
    );

    let existing = store
        .campaigns()
        .await?
        .into_iter()
        .find(|c| c.name == DEMO_CAMPAIGN && c.issue_number == i64::from(issue.number));
    // The campaign goes through the send gate as whoever runs the demo.
    let demo = super::cli_actor(store).await?;
    let id = match existing {
        Some(c) => c.id,
        None => {
            let input = CreateCampaign {
                issue: i64::from(issue.number),
                name: Some(DEMO_CAMPAIGN.into()),
                transport: Some("outbox".into()),
                ..Default::default()
            };
            actions::create(store, config, &demo, &input)
                .await?
                .campaign
                .id
        }
    };
    let c = store.campaign_or_err(id).await?;
    if c.state()? == CampaignState::Finished {
        println!("campaign {id} was already sent; nothing to do");
    } else {
        if matches!(
            c.state()?,
            CampaignState::Draft | CampaignState::Scheduled | CampaignState::Blocked
        ) {
            actions::start(store, config, &demo, id, None).await?;
        }
        let mut worker = Worker::new(store.clone(), config.clone())?;
        worker
            .send_campaign(id, &AtomicBool::new(false), |_| {})
            .await?;
    }
    let counts = store.delivery_counts(id).await?;
    let dir = crate::send::outbox_dir(config).join(format!("campaign-{id}"));
    println!(
        "campaign {id}: {} sent, {} failed, {} skipped; one .eml per message in {}",
        counts.sent,
        counts.failed,
        counts.skipped,
        dir.display()
    );
    println!("see `whatsup campaigns show {id}` for the details");
    Ok(if counts.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The demo's token secret: read from `<data_dir>/token-secret`, made from
/// the system's random source the first time.
fn demo_secret(data_dir: &Path) -> Result<String> {
    use std::io::Read as _;
    let path = data_dir.join("token-secret");
    if let Ok(s) = std::fs::read_to_string(&path) {
        if s.trim().len() >= 32 {
            return Ok(s.trim().to_string());
        }
    }
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::create_dir_all(data_dir)?;
    std::fs::write(&path, &secret)?;
    println!(
        "note: security.token_secret is not set; the demo made one in {} (set WHATSUP_SECURITY_TOKEN_SECRET in production)",
        path.display()
    );
    Ok(secret)
}
