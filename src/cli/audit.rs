//! `whatsup audit list`: the audit trail, newest first, filtered by time
//! and actor; the same entries `GET /api/v1/audit` lists.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use super::output::{self, print_json, print_table};
use crate::domain::Action;
use crate::store::audit::AuditFilter;
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// List audit entries, newest first
    List {
        /// Only entries since this date (YYYY-MM-DD, midnight in
        /// general.timezone), time (RFC 3339) or
        /// age (24h, 7d, 30m)
        #[arg(long)]
        since: Option<String>,
        /// Only entries whose actor contains this text (an address, a token
        /// name, cli:USER…)
        #[arg(long)]
        actor: Option<String>,
        /// Only entries about one kind of object (contact, campaign, user…)
        #[arg(long)]
        object: Option<String>,
        /// At most this many entries
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Print them as JSON (times in RFC 3339)
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(store: &Store, cmd: AuditCmd) -> Result<ExitCode> {
    let actor = super::cli_actor(store).await?;
    super::require(&actor, Action::AuditRead)?;
    match cmd {
        AuditCmd::List {
            since,
            actor,
            object,
            limit,
            json,
        } => {
            let filter = AuditFilter {
                since: since.as_deref().map(output::parse_since).transpose()?,
                actor,
                object_kind: object,
                limit,
                ..Default::default()
            };
            let rows = store.audit_entries(&filter).await?;
            if json {
                print_json(&rows)?;
            } else {
                let table: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            output::when_secs(r.created_at),
                            r.actor.clone(),
                            r.ip.clone().unwrap_or_default(),
                            r.action.clone(),
                            format!("{} {}", r.object_kind, r.object_id),
                            r.details.0.to_string(),
                        ]
                    })
                    .collect();
                print_table(
                    &["WHEN", "ACTOR", "IP", "ACTION", "OBJECT", "DETAILS"],
                    &table,
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
