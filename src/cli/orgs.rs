//! `whatsup orgs …`: list, add, show and edit organisations.

use std::process::ExitCode;

use anyhow::{anyhow, Result};
use clap::{Args, Subcommand};

use super::output::{print_json, print_table};
use crate::domain::{Action, CountryCode, OrgKind, Relationship, TimeZone};
use crate::store::{OrgFields, Organisation, Store};

#[derive(Debug, Subcommand)]
pub enum OrgsCmd {
    /// List organisations with their number of contacts
    List {
        /// Only this kind: city, embassy, representative_office, international_org, other
        #[arg(long)]
        kind: Option<String>,
        /// Print the result as JSON
        #[arg(long)]
        json: bool,
    },
    /// Add an organisation
    Add {
        #[command(flatten)]
        fields: OrgArgs,
        /// Print the result as JSON
        #[arg(long)]
        json: bool,
    },
    /// Show one organisation (by name or id)
    Show {
        /// Organisation name (any case) or id
        org: String,
        /// Print the result as JSON
        #[arg(long)]
        json: bool,
    },
    /// Change an organisation (by name or id); give an empty value to clear a field
    Edit {
        /// Organisation name (any case) or id
        org: String,
        #[command(flatten)]
        fields: OrgArgs,
        /// Print the result as JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct OrgArgs {
    /// city, embassy, representative_office, international_org or other
    #[arg(long)]
    kind: Option<String>,
    /// The organisation's name, e.g. "Embassy of Chile in Japan"
    #[arg(long)]
    name: Option<String>,
    /// ISO 3166-1 alpha-2 code, e.g. FR
    #[arg(long)]
    country: Option<String>,
    /// Region used by segments, e.g. Europe, Asia, Americas
    #[arg(long)]
    region: Option<String>,
    /// City, e.g. Tokyo
    #[arg(long)]
    city: Option<String>,
    /// IANA time zone, e.g. Europe/Paris
    #[arg(long)]
    timezone: Option<String>,
    /// For cities: sister, friendship or partner
    #[arg(long)]
    relationship: Option<String>,
    /// For cities: the year the relationship began
    #[arg(long)]
    since: Option<String>,
    /// Free-text notes for the team (never shown to recipients)
    #[arg(long)]
    notes: Option<String>,
}

impl OrgArgs {
    /// Validates the flags; an empty value means "clear".
    fn to_fields(&self) -> Result<OrgFields> {
        fn opt<T>(
            v: &Option<String>,
            parse: impl Fn(&str) -> Result<T>,
        ) -> Result<Option<Option<T>>> {
            match v.as_deref().map(str::trim) {
                None => Ok(None),
                Some("") => Ok(Some(None)),
                Some(s) => Ok(Some(Some(parse(s)?))),
            }
        }
        Ok(OrgFields {
            kind: self.kind.as_deref().map(OrgKind::parse).transpose()?,
            name: self.name.clone(),
            country: opt(&self.country, |s| Ok(CountryCode::parse(s)?))?,
            region: opt(&self.region, |s| Ok(s.to_string()))?,
            city: opt(&self.city, |s| Ok(s.to_string()))?,
            timezone: opt(&self.timezone, |s| Ok(TimeZone::parse(s)?))?,
            relationship: opt(&self.relationship, |s| Ok(Relationship::parse(s)?))?,
            relationship_since: opt(&self.since, |s| {
                s.parse::<i64>()
                    .map_err(|_| anyhow!("--since {s:?} is not a year"))
            })?,
            notes: self.notes.clone(),
        })
    }
}

pub async fn run(store: &Store, cmd: OrgsCmd) -> Result<ExitCode> {
    let actor = super::cli_actor(store).await?;
    let writes = !matches!(cmd, OrgsCmd::List { .. } | OrgsCmd::Show { .. });
    super::require(
        &actor,
        if writes {
            Action::OrgsWrite
        } else {
            Action::ContactsRead
        },
    )?;
    match cmd {
        OrgsCmd::List { kind, json } => {
            let kind = kind.as_deref().map(OrgKind::parse).transpose()?;
            let orgs = store.list_orgs(kind).await?;
            if json {
                print_json(&orgs)?;
            } else {
                let rows: Vec<Vec<String>> = orgs
                    .iter()
                    .map(|o| {
                        vec![
                            o.id.to_string(),
                            o.name.clone(),
                            o.kind.clone(),
                            o.country.clone().unwrap_or_default(),
                            o.region.clone().unwrap_or_default(),
                            o.timezone.clone().unwrap_or_default(),
                            o.contacts.to_string(),
                        ]
                    })
                    .collect();
                print_table(
                    &[
                        "ID", "NAME", "KIND", "COUNTRY", "REGION", "TIMEZONE", "CONTACTS",
                    ],
                    &rows,
                );
                println!("{} organisations", orgs.len());
            }
        }
        OrgsCmd::Add { fields, json } => {
            let o = store.add_org(&fields.to_fields()?, &actor).await?;
            show(&o, json)?;
        }
        OrgsCmd::Show { org, json } => {
            let o = store
                .find_org(&org)
                .await?
                .ok_or_else(|| anyhow!("no organisation {org:?}"))?;
            show(&o, json)?;
        }
        OrgsCmd::Edit { org, fields, json } => {
            let o = store
                .find_org(&org)
                .await?
                .ok_or_else(|| anyhow!("no organisation {org:?}"))?;
            let o = store.edit_org(o.id, &fields.to_fields()?, &actor).await?;
            show(&o, json)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show(o: &Organisation, json: bool) -> Result<()> {
    if json {
        return print_json(o);
    }
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    println!("id:           {}", o.id);
    println!("name:         {}", o.name);
    println!("kind:         {}", o.kind);
    println!("country:      {}", opt(&o.country));
    println!("region:       {}", opt(&o.region));
    println!("city:         {}", opt(&o.city));
    println!("timezone:     {}", opt(&o.timezone));
    if o.relationship.is_some() || o.relationship_since.is_some() {
        println!(
            "relationship: {} since {}",
            opt(&o.relationship),
            o.relationship_since
                .map(|y| y.to_string())
                .unwrap_or_else(|| "?".into())
        );
    }
    if !o.notes.is_empty() {
        println!("notes:        {}", o.notes);
    }
    println!("contacts:     {}", o.contacts);
    Ok(())
}
