//! `whatsup issues …`: write, store, check, preview and test-send issues.
//!
//! ISSUE arguments name an issue file, or an issue number in the database
//! (its latest revision). The file stays the editor's source; `import`
//! records it as a new revision when it changed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use chrono::NaiveDate;
use clap::Subcommand;

use super::output::{print_json, print_table};
use crate::compose::issue::{skeleton, Issue, IssueRef};
use crate::compose::{preflight, preview, send, CompiledIssue, LinkTokens, Recipient};
use crate::config::Config;
use crate::domain::{Action, EmailAddress, OrgKind};
use crate::store::issues::{IssueText, Saved};
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum IssuesCmd {
    /// Write a new issue file from the skeleton and record it
    New {
        /// Issue number
        number: u32,
        /// Issue date [default: today]
        #[arg(long)]
        date: Option<NaiveDate>,
        /// Where to write the file [default: issues/<NUMBER>.md]
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Record issue files in the database (a new revision when changed)
    Import {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List stored issues
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a stored issue: its history and the text of a revision
    Show {
        number: u32,
        /// Revision to print [default: latest]
        #[arg(long)]
        revision: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    /// Compare two revisions, or the latest revision with the file on disk
    Diff {
        number: u32,
        /// Older revision [default: latest]
        #[arg(long)]
        from: Option<i64>,
        /// Newer revision [default: the file on disk]
        #[arg(long)]
        to: Option<i64>,
    },
    /// Preflight: template errors and everything that hurts in an inbox
    Check {
        /// Issue file or number
        issue: String,
        #[arg(long)]
        json: bool,
    },
    /// Write (or serve) the HTML, text and .eml as a contact receives them
    Preview {
        /// Issue file or number
        issue: String,
        /// Personalise for this contact [default: a sample embassy contact]
        #[arg(long = "contact", value_name = "EMAIL")]
        as_contact: Option<String>,
        /// Directory for the files
        #[arg(long, default_value = "data/preview")]
        out: PathBuf,
        /// Serve the preview on 127.0.0.1, refreshing on change
        #[arg(long)]
        serve: bool,
        /// Port for --serve [default: newsletter.preview_port]
        #[arg(long)]
        port: Option<u16>,
    },
    /// Send one real message through the configured SMTP server
    TestSend {
        /// Issue file or number
        issue: String,
        /// Recipient address
        #[arg(long)]
        to: String,
        /// Personalise for this contact [default: a sample for ADDRESS]
        #[arg(long = "contact", value_name = "EMAIL")]
        as_contact: Option<String>,
    },
}

impl IssuesCmd {
    /// What the command does, for the permission table.
    pub fn action(&self) -> Action {
        match self {
            IssuesCmd::New { .. } | IssuesCmd::Import { .. } => Action::IssuesWrite,
            IssuesCmd::List { .. } | IssuesCmd::Show { .. } | IssuesCmd::Diff { .. } => {
                Action::IssuesRead
            }
            IssuesCmd::Check { .. } | IssuesCmd::Preview { .. } => Action::IssuesPreview,
            IssuesCmd::TestSend { .. } => Action::IssuesTestSend,
        }
    }
}

pub async fn run(config: &Config, cmd: IssuesCmd) -> Result<ExitCode> {
    match cmd {
        IssuesCmd::Check { issue, json } => check(config, &issue, json).await,
        IssuesCmd::New { number, date, out } => {
            let date = date.unwrap_or_else(|| chrono::Local::now().date_naive());
            let path = out.unwrap_or_else(|| PathBuf::from(format!("issues/{number}.md")));
            if path.exists() {
                bail!("{} already exists; not overwriting it", path.display());
            }
            let store = Store::open(config).await?;
            if store.issue(number).await?.is_some() {
                bail!("issue {number} is already in the database");
            }
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&path, skeleton(number, date))
                .with_context(|| format!("writing {}", path.display()))?;
            import_one(&store, &path).await?;
            store.close().await;
            println!(
                "wrote {}: fill it in, then `whatsup issues check {}`",
                path.display(),
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        IssuesCmd::Import { files } => {
            let store = Store::open(config).await?;
            for f in &files {
                import_one(&store, f).await?;
            }
            store.close().await;
            Ok(ExitCode::SUCCESS)
        }
        IssuesCmd::List { json } => {
            let store = Store::open(config).await?;
            let list = store.list_issues().await?;
            store.close().await;
            if json {
                print_json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|i| {
                        vec![
                            i.number.to_string(),
                            i.issue_date.to_string(),
                            i.revisions.to_string(),
                            i.updated_at.format("%Y-%m-%d %H:%M").to_string(),
                            i.subject.clone(),
                        ]
                    })
                    .collect();
                print_table(
                    &["number", "date", "revisions", "updated (UTC)", "subject"],
                    &rows,
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        IssuesCmd::Show {
            number,
            revision,
            json,
        } => {
            let store = Store::open(config).await?;
            let issue = store
                .issue(number)
                .await?
                .ok_or_else(|| anyhow!("no issue number {number} in the database"))?;
            let history = store.issue_history(number).await?;
            let rev = store.issue_revision(number, revision).await?;
            store.close().await;
            if json {
                print_json(
                    &serde_json::json!({ "issue": issue, "history": history, "revision": rev }),
                )?;
            } else {
                println!(
                    "issue {} ({}): {}",
                    issue.number, issue.issue_date, issue.subject
                );
                println!("file: {}", issue.source_path);
                for h in &history {
                    println!(
                        "  revision {}  {}  {}  {}",
                        h.revision,
                        h.created_at.format("%Y-%m-%d %H:%M:%S"),
                        h.actor,
                        h.subject
                    );
                }
                println!("--- revision {} ---", rev.revision);
                print!("{}", rev.source);
            }
            Ok(ExitCode::SUCCESS)
        }
        IssuesCmd::Diff { number, from, to } => {
            let store = Store::open(config).await?;
            let issue = store
                .issue(number)
                .await?
                .ok_or_else(|| anyhow!("no issue number {number} in the database"))?;
            let old = store.issue_revision(number, from).await?;
            let (new_name, new_text) = match to {
                Some(r) => {
                    let r = store.issue_revision(number, Some(r)).await?;
                    (format!("revision {}", r.revision), r.source)
                }
                None => (
                    issue.source_path.clone(),
                    std::fs::read_to_string(&issue.source_path)
                        .with_context(|| format!("reading {}", issue.source_path))?,
                ),
            };
            store.close().await;
            let diff = similar::TextDiff::from_lines(&old.source, &new_text);
            let out = diff
                .unified_diff()
                .context_radius(3)
                .header(&format!("revision {}", old.revision), &new_name)
                .to_string();
            if out.is_empty() {
                println!("no differences");
            } else {
                print!("{out}");
            }
            Ok(ExitCode::SUCCESS)
        }
        IssuesCmd::Preview {
            issue,
            as_contact,
            out,
            serve,
            port,
        } => {
            let store = Store::open(config).await?;
            let (file, parsed) = load(&store, &issue).await?;
            let recipient = recipient(&store, as_contact.as_deref(), None).await?;
            store.close().await;
            let compiled = CompiledIssue::compile(parsed, &config.newsletter)?;
            let w = preview::write_files(&compiled, &recipient, &out)?;
            println!(
                "greeting for {}: {}",
                if recipient.email.is_empty() {
                    "a sample contact"
                } else {
                    recipient.email.as_str()
                },
                compiled.greeting(&recipient)?
            );
            println!(
                "html: {}\ntext: {}\neml:  {}",
                w.html.display(),
                w.text.display(),
                w.eml.display()
            );
            if serve {
                let path = match file {
                    Some(p) => p,
                    None => bail!("--serve watches a file: give the issue's file, not its number"),
                };
                let port = port.unwrap_or(config.newsletter.preview_port);
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                    .await
                    .with_context(|| format!("binding 127.0.0.1:{port}"))?;
                println!(
                    "serving the preview on http://{} (Ctrl-C to stop)",
                    listener.local_addr()?
                );
                let src = preview::Source {
                    issue: path,
                    newsletter: config.newsletter.clone(),
                    recipient,
                };
                preview::serve(listener, src, async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
            }
            Ok(ExitCode::SUCCESS)
        }
        IssuesCmd::TestSend {
            issue,
            to,
            as_contact,
        } => {
            let to = EmailAddress::parse(&to).map_err(|e| anyhow!("--to: {e}"))?;
            let store = Store::open(config).await?;
            let (_, parsed) = load(&store, &issue).await?;
            let mut r = recipient(&store, as_contact.as_deref(), Some(&to)).await?;
            let library = crate::send::gate::media_library(&store).await?;
            store.close().await;
            r.email = to.as_str().to_string();
            let report = preflight::check_with(
                parsed.clone(),
                &config.newsletter,
                &preflight::Context {
                    library,
                    ..Default::default()
                },
            );
            if !report.passed() {
                eprint!("{}", report.to_text());
                bail!("the issue fails its preflight check; fix it before sending a test");
            }
            let compiled = CompiledIssue::compile(parsed, &config.newsletter)?;
            let msg = compiled.render_for(&r)?;
            let reply = send::send_one(&config.smtp, &msg).await?;
            println!(
                "sent {} to {} via {}:{}: {reply}",
                msg.message_id, msg.to, config.smtp.host, config.smtp.port
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn check(config: &Config, issue: &str, json: bool) -> Result<ExitCode> {
    let (name, text) = match IssueRef::parse(issue).map_err(|e| anyhow!(e))? {
        IssueRef::File(p) => (
            p.display().to_string(),
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?,
        ),
        IssueRef::Number(n) => {
            let store = Store::open(config).await?;
            let rev = store.issue_revision(n, None).await?;
            store.close().await;
            (format!("issue {n} revision {}", rev.revision), rev.source)
        }
    };
    // The media library is asked only when the issue refers to it.
    let mut context = preflight::Context::default();
    if text.contains("media/") {
        let store = Store::open(config).await?;
        context.library = crate::send::gate::media_library(&store).await?;
        store.close().await;
    }
    let report = preflight::check_source_with(&name, &text, &config.newsletter, &context);
    if json {
        print_json(&report)?;
    } else {
        print!("{}", report.to_text());
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn import_one(store: &Store, path: &Path) -> Result<()> {
    let source =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    // Every problem at once, each with its place (the first one ends the
    // front matter's own errors).
    let issue = Issue::parse_all(&path.display().to_string(), &source).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| format!("{e} [{}]", e.rule)).collect();
        anyhow!(
            "{} cannot be imported:\n  {}",
            path.display(),
            lines.join("\n  ")
        )
    })?;
    let saved = store
        .save_issue(&IssueText {
            number: issue.number,
            subject: &issue.subject,
            date: issue.date,
            source_path: &path.display().to_string(),
            source: &issue.source,
            actor: &super::cli_actor(store).await?,
        })
        .await?;
    match saved {
        Saved::Created => println!(
            "{}: issue {} created (revision 1)",
            path.display(),
            issue.number
        ),
        Saved::Revised(r) => println!("{}: issue {} revision {r}", path.display(), issue.number),
        Saved::Unchanged(r) => println!(
            "{}: issue {} unchanged (revision {r})",
            path.display(),
            issue.number
        ),
    }
    Ok(())
}

/// The issue a command names: from its file, or the latest stored revision.
async fn load(store: &Store, arg: &str) -> Result<(Option<PathBuf>, Issue)> {
    match IssueRef::parse(arg).map_err(|e| anyhow!(e))? {
        IssueRef::File(p) => Ok((Some(p.clone()), Issue::load(&p)?)),
        IssueRef::Number(n) => {
            let rev = store.issue_revision(n, None).await?;
            let name = format!("issue {n} revision {}", rev.revision);
            Ok((None, Issue::parse(&name, &rev.source)?))
        }
    }
}

/// The contact to personalise for, or a sample.
async fn recipient(
    store: &Store,
    email: Option<&str>,
    to: Option<&EmailAddress>,
) -> Result<Recipient> {
    match email {
        Some(e) => {
            let c = store
                .contact(e)
                .await?
                .ok_or_else(|| anyhow!("--contact: no contact {e} in the database"))?;
            Ok(Recipient::from_contact(&c, LinkTokens::preview()))
        }
        None => {
            let mut r = Recipient::sample(Some(OrgKind::Embassy));
            if let Some(to) = to {
                r.email = to.as_str().to_string();
            }
            Ok(r)
        }
    }
}
