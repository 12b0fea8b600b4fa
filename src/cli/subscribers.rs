//! `whatsup subscribers …`: import, export, list, add, show, edit, remove,
//! set-status, summary and tags.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};

use super::output::{print_json, print_table, progress};
use super::{cli_actor, require, EXIT_REJECTED_ROWS};
use crate::config::Config;
use crate::domain::segment::Segment;
use crate::domain::{Action, Actor, ContactStatus, EmailAddress, Language};
use crate::export::{export, Format, JsonContact};
use crate::import::{import_file, ImportOptions};
use crate::store::{Contact, ContactPatch, NewContact, StatusChange, Store};

#[derive(Debug, Subcommand)]
pub enum SubscribersCmd {
    /// Import contacts from a CSV file (see README: CSV format); '-' reads stdin
    Import(ImportArgs),
    /// Export contacts as CSV (the import format) or JSON
    Export {
        /// Only contacts matching this segment expression
        #[arg(long)]
        segment: Option<String>,
        #[arg(long, value_enum, default_value = "csv")]
        format: Format,
        /// Write to this file instead of standard output
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// List contacts with their status, since when and why
    List {
        /// Only contacts matching this segment expression, e.g. 'kind = embassy and region = Europe'
        #[arg(long)]
        segment: Option<String>,
        /// At most this many rows
        #[arg(long)]
        limit: Option<i64>,
        #[arg(long, default_value_t = 0)]
        offset: i64,
        #[arg(long)]
        json: bool,
    },
    /// Add one contact
    Add {
        email: String,
        #[command(flatten)]
        fields: ContactFields,
        #[arg(long)]
        json: bool,
    },
    /// Show one contact with its status history
    Show {
        email: String,
        #[arg(long)]
        json: bool,
    },
    /// Change a contact's details or tags (not its status: see set-status)
    Edit {
        email: String,
        /// New address
        #[arg(long = "email")]
        new_email: Option<String>,
        #[command(flatten)]
        fields: ContactFields,
        /// Detach the contact from its organisation
        #[arg(long, conflicts_with = "org")]
        no_org: bool,
        /// Remove a tag (repeatable)
        #[arg(long = "remove-tag")]
        remove_tags: Vec<String>,
        /// Remove a custom attribute (repeatable)
        #[arg(long = "unset-attr")]
        unset_attrs: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Delete a contact and its history (to stop mail for good, set-status blocklisted instead)
    Remove { email: String },
    /// Change a contact's status: active, unsubscribed, bounced or blocklisted
    SetStatus {
        email: String,
        status: String,
        /// Why (kept in the audit trail)
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    /// Counts by organisation kind and region, and by status
    Summary {
        #[arg(long)]
        json: bool,
    },
    /// Tags in use, with the number of contacts carrying each
    Tags {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// CSV file, or '-' for standard input
    pub file: PathBuf,
    /// Check everything and report, but write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Add this tag to every imported contact (repeatable)
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Merge changed fields into existing contacts and organisations
    #[arg(long)]
    pub update: bool,
    /// Reactivate unsubscribed, bounced or blocklisted contacts found in the file
    #[arg(long)]
    pub force_reactivate: bool,
    /// Write rejected rows (with the header) to this file, to fix and re-import
    #[arg(long, value_name = "FILE")]
    pub reject_file: Option<PathBuf>,
    /// Consent source recorded on new contacts [default: import:<file name>]
    #[arg(long)]
    pub consent_source: Option<String>,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ContactFields {
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    title: Option<String>,
    /// The greeting as written, e.g. "Your Excellency" or "Dear Ambassador
    /// Smith" (empty: made from the name and title)
    #[arg(long)]
    salutation: Option<String>,
    /// Organisation name or id (must exist: see `orgs add`)
    #[arg(long)]
    org: Option<String>,
    /// Preferred language, e.g. en, fr, pt-BR
    #[arg(long)]
    language: Option<String>,
    /// Add a tag (repeatable)
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Set a custom attribute KEY=VALUE (repeatable)
    #[arg(long = "attr", value_name = "KEY=VALUE")]
    attrs: Vec<String>,
}

impl ContactFields {
    /// `--salutation`, checked.
    fn salutation(&self) -> Result<Option<String>> {
        if let Some(s) = &self.salutation {
            crate::domain::check_salutation(s.trim()).map_err(|e| anyhow!("--salutation: {e}"))?;
        }
        Ok(self.salutation.as_ref().map(|s| s.trim().to_string()))
    }
}

pub async fn run(store: &Store, config: &Config, cmd: SubscribersCmd) -> Result<ExitCode> {
    let actor = cli_actor(store).await?;
    let writes = matches!(
        cmd,
        SubscribersCmd::Import(_)
            | SubscribersCmd::Add { .. }
            | SubscribersCmd::Edit { .. }
            | SubscribersCmd::Remove { .. }
            | SubscribersCmd::SetStatus { .. }
    );
    require(
        &actor,
        if writes {
            Action::ContactsWrite
        } else {
            Action::ContactsRead
        },
    )?;
    match cmd {
        SubscribersCmd::Import(args) => return import(store, config, args, &actor).await,
        SubscribersCmd::Export {
            segment,
            format,
            out,
        } => {
            let segment = parse_segment(segment.as_deref())?;
            let bar = if out.is_some() {
                progress(None, "exporting")
            } else {
                None
            };
            let n = match &out {
                Some(path) => {
                    let tmp = path.with_extension("partial");
                    let mut f = std::io::BufWriter::new(
                        std::fs::File::create(&tmp)
                            .with_context(|| format!("creating {}", tmp.display()))?,
                    );
                    let n = export(store, segment.as_ref(), format, &mut f, bar).await?;
                    drop(f);
                    std::fs::rename(&tmp, path)?;
                    n
                }
                None => {
                    let stdout = std::io::stdout();
                    let mut lock = std::io::BufWriter::new(stdout.lock());
                    export(store, segment.as_ref(), format, &mut lock, bar).await?
                }
            };
            eprintln!("exported {n} contacts");
        }
        SubscribersCmd::List {
            segment,
            limit,
            offset,
            json,
        } => {
            let segment = parse_segment(segment.as_deref())?;
            let contacts = store.list_contacts(segment.as_ref(), limit, offset).await?;
            if json {
                let v: Vec<JsonContact> = contacts.iter().map(JsonContact::from).collect();
                print_json(&v)?;
            } else {
                print_contacts(&contacts);
                let total = store.count_contacts(segment.as_ref()).await?;
                println!("{} of {} contacts", contacts.len(), total);
            }
        }
        SubscribersCmd::Add {
            email,
            fields,
            json,
        } => {
            let email = parse_email(&email)?;
            let org = match &fields.org {
                Some(o) => Some(
                    store
                        .find_org(o)
                        .await?
                        .ok_or_else(|| {
                            anyhow!("no organisation {o:?} (add it with `whatsup orgs add`)")
                        })?
                        .id,
                ),
                None => None,
            };
            let contact = store
                .add_contact(
                    &NewContact {
                        email,
                        name: fields.name.clone().unwrap_or_default(),
                        title: fields.title.clone().unwrap_or_default(),
                        salutation: fields.salutation()?.unwrap_or_default(),
                        organisation_id: org,
                        language: fields
                            .language
                            .as_deref()
                            .map(Language::parse)
                            .transpose()?,
                        consent_source: actor.label(),
                        attributes: parse_attrs(&fields.attrs)?,
                        tags: fields.tags.clone(),
                    },
                    &actor,
                )
                .await?;
            show(store, &contact, json).await?;
        }
        SubscribersCmd::Show { email, json } => {
            let c = store
                .contact(&email)
                .await?
                .ok_or_else(|| anyhow!("no contact {email}"))?;
            show(store, &c, json).await?;
        }
        SubscribersCmd::Edit {
            email,
            new_email,
            fields,
            no_org,
            remove_tags,
            unset_attrs,
            json,
        } => {
            let mut patch = ContactPatch {
                email: new_email.as_deref().map(parse_email).transpose()?,
                name: fields.name.clone(),
                title: fields.title.clone(),
                salutation: fields.salutation()?,
                language: match fields.language.as_deref() {
                    None => None,
                    Some("") => Some(None),
                    Some(l) => Some(Some(Language::parse(l)?)),
                },
                attributes: parse_attrs(&fields.attrs)?,
                add_tags: fields.tags.clone(),
                remove_tags,
                organisation_id: None,
            };
            for k in unset_attrs {
                patch.attributes.insert(k, serde_json::Value::Null);
            }
            if no_org {
                patch.organisation_id = Some(None);
            } else if let Some(o) = &fields.org {
                let org = store
                    .find_org(o)
                    .await?
                    .ok_or_else(|| anyhow!("no organisation {o:?}"))?;
                patch.organisation_id = Some(Some(org.id));
            }
            let c = store.edit_contact(&email, &patch, &actor).await?;
            show(store, &c, json).await?;
        }
        SubscribersCmd::Remove { email } => {
            if !store.remove_contact(&email, &actor).await? {
                bail!("no contact {email}");
            }
            println!("removed {}", email.trim().to_lowercase());
        }
        SubscribersCmd::SetStatus {
            email,
            status,
            reason,
            json,
        } => {
            let status = ContactStatus::parse(&status)?;
            if reason.trim().is_empty() {
                bail!("--reason must say why the status changes");
            }
            let label = actor.label();
            let change = StatusChange {
                status,
                reason: reason.trim(),
                actor: &label,
                evidence: serde_json::json!({ "source": "cli" }),
            };
            let old = store.set_status(&email, &change, &actor).await?;
            let c = store
                .contact(&email)
                .await?
                .ok_or_else(|| anyhow!("no contact {email}"))?;
            if json {
                print_json(&serde_json::json!({
                    "email": c.email, "old_status": old.map(|s| s.as_str()), "status": c.status,
                    "changed": old.is_some(), "reason": c.status_reason, "since": c.status_changed_at,
                }))?;
            } else {
                match old {
                    Some(old) => {
                        println!("{}: {} → {} ({})", c.email, old, c.status, c.status_reason)
                    }
                    None => println!("{}: already {}; nothing changed", c.email, c.status),
                }
            }
        }
        SubscribersCmd::Summary { json } => summary(store, json).await?,
        SubscribersCmd::Tags { json } => {
            let tags = store.tags().await?;
            if json {
                let v: Vec<_> = tags
                    .iter()
                    .map(|(n, c)| serde_json::json!({"tag": n, "contacts": c}))
                    .collect();
                print_json(&v)?;
            } else {
                let rows: Vec<Vec<String>> = tags
                    .iter()
                    .map(|(n, c)| vec![n.clone(), c.to_string()])
                    .collect();
                print_table(&["TAG", "CONTACTS"], &rows);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn import(
    store: &Store,
    config: &Config,
    args: ImportArgs,
    actor: &Actor,
) -> Result<ExitCode> {
    let opts = ImportOptions {
        dry_run: args.dry_run,
        update: args.update,
        force_reactivate: args.force_reactivate,
        tags: args.tags,
        reject_file: args.reject_file,
        consent_source: args.consent_source,
        batch_size: config.import.batch_size,
        actor: actor.label(),
    };
    let len = std::fs::metadata(&args.file).ok().map(|m| m.len());
    let bar = progress(len, "importing");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ninterrupted: finishing the current batch, then stopping (committed batches stay)");
            flag.store(true, Ordering::Relaxed);
        }
    });
    let report = import_file(store, &args.file, &opts, bar, stop).await?;
    store
        .record_audit(
            actor,
            "import.run",
            "import",
            &report.file,
            crate::import::audit_details(&report),
        )
        .await?;
    if args.json {
        print_json(&report)?;
    } else {
        for e in &report.errors {
            eprintln!("{}:{e}", report.file);
        }
        if report.rejected as usize > report.errors.len() {
            eprintln!("… and more: {} rejected rows in all", report.rejected);
        }
        for w in &report.warnings {
            eprintln!("warning: {w}");
        }
        if report.kept_suppressed > 0 {
            eprintln!(
                "note: {} contacts in the file are unsubscribed, bounced or blocklisted and stay so \
                 (use --force-reactivate to override)",
                report.kept_suppressed
            );
        }
        println!("{}", report.summary_line());
    }
    Ok(if report.rejected > 0 || report.interrupted {
        ExitCode::from(EXIT_REJECTED_ROWS)
    } else {
        ExitCode::SUCCESS
    })
}

/// Parses a segment expression, pointing at the column where it goes wrong.
pub fn parse_segment(expr: Option<&str>) -> Result<Option<Segment>> {
    match expr {
        None => Ok(None),
        Some(s) => Segment::parse(s)
            .map(Some)
            .map_err(|e| anyhow!("invalid segment: {e}\n{}", e.render(s))),
    }
}

fn parse_email(s: &str) -> Result<EmailAddress> {
    EmailAddress::parse(s).map_err(|e| anyhow!("invalid email {}: {e}", crate::domain::quote(s)))
}

fn parse_attrs(attrs: &[String]) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut out = serde_json::Map::new();
    for a in attrs {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| anyhow!("--attr {a:?}: expected KEY=VALUE"))?;
        let k = k.trim();
        if k.is_empty() || crate::import::COLUMNS.contains(&k.to_lowercase().as_str()) {
            bail!("--attr {a:?}: {k:?} cannot be a custom attribute name");
        }
        out.insert(k.to_string(), serde_json::Value::String(v.to_string()));
    }
    Ok(out)
}

fn print_contacts(contacts: &[Contact]) {
    let rows: Vec<Vec<String>> = contacts
        .iter()
        .map(|c| {
            vec![
                c.email.clone(),
                c.name.clone(),
                c.org_name.clone().unwrap_or_default(),
                c.org_kind.clone().unwrap_or_default(),
                c.status.clone(),
                c.status_changed_at.format("%Y-%m-%d").to_string(),
                c.status_reason.clone(),
            ]
        })
        .collect();
    print_table(
        &[
            "EMAIL",
            "NAME",
            "ORGANISATION",
            "KIND",
            "STATUS",
            "SINCE",
            "REASON",
        ],
        &rows,
    );
}

async fn show(store: &Store, c: &Contact, json: bool) -> Result<()> {
    let history = store.status_history(c.id).await?;
    if json {
        let mut v = serde_json::to_value(JsonContact::from(c))?;
        v["history"] = serde_json::to_value(&history)?;
        return print_json(&v);
    }
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    println!("email:        {}", c.email);
    println!("name:         {}", c.name);
    println!("title:        {}", c.title);
    if !c.salutation.is_empty() {
        println!("salutation:   {}", c.salutation);
    }
    println!(
        "organisation: {} ({}, {})",
        opt(&c.org_name),
        opt(&c.org_kind),
        opt(&c.org_country)
    );
    println!("language:     {}", opt(&c.language));
    println!("tags:         {}", c.tag_list().join(", "));
    println!(
        "status:       {} since {}{}",
        c.status,
        c.status_changed_at.format("%Y-%m-%d %H:%M UTC"),
        if c.status_reason.is_empty() {
            String::new()
        } else {
            format!(" ({})", c.status_reason)
        }
    );
    println!(
        "consent:      {} at {}",
        c.consent_source,
        c.consent_at
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "-".into())
    );
    if !c.attributes.0.is_empty() {
        println!("attributes:   {}", serde_json::to_string(&c.attributes.0)?);
    }
    println!(
        "created:      {}",
        c.created_at.format("%Y-%m-%d %H:%M UTC")
    );
    if !history.is_empty() {
        println!("history:");
        for h in &history {
            println!(
                "  {}  {} → {}  by {}: {}",
                h.created_at.format("%Y-%m-%d %H:%M"),
                h.old_status.as_deref().unwrap_or("-"),
                h.new_status,
                h.actor,
                h.reason
            );
        }
    }
    Ok(())
}

/// Prints the at-a-glance summary by kind and region, with status counts.
pub async fn summary(store: &Store, json: bool) -> Result<()> {
    let rows = store.summary().await?;
    if json {
        return print_json(&rows);
    }
    let mut table = Vec::new();
    let mut total = [0i64; 6];
    for r in &rows {
        table.push(vec![
            r.kind.clone().unwrap_or_else(|| "(no organisation)".into()),
            r.region.clone().unwrap_or_else(|| "-".into()),
            r.organisations.to_string(),
            r.contacts.to_string(),
            r.active.to_string(),
            r.unsubscribed.to_string(),
            r.bounced.to_string(),
            r.blocklisted.to_string(),
        ]);
        for (t, v) in total.iter_mut().zip([
            r.organisations,
            r.contacts,
            r.active,
            r.unsubscribed,
            r.bounced,
            r.blocklisted,
        ]) {
            *t += v;
        }
    }
    let mut last = vec!["total".to_string(), String::new()];
    last.extend(total.iter().map(|t| t.to_string()));
    table.push(last);
    print_table(
        &[
            "KIND",
            "REGION",
            "ORGS",
            "CONTACTS",
            "ACTIVE",
            "UNSUBSCRIBED",
            "BOUNCED",
            "BLOCKLISTED",
        ],
        &table,
    );
    Ok(())
}
