//! Export of contacts as CSV (the import format, so export then import is
//! lossless) or as a JSON array. Rows are streamed from the database, so
//! memory stays flat however many contacts there are.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;

use crate::domain::segment::Segment;
use crate::import::COLUMNS;
use crate::store::{Contact, Store};

/// Output formats of `subscribers export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Json,
}

/// Writes the contacts matching `segment` to `out`; returns how many.
pub async fn export(
    store: &Store,
    segment: Option<&Segment>,
    format: Format,
    out: &mut dyn Write,
    progress: Option<indicatif::ProgressBar>,
) -> Result<u64> {
    let n = match format {
        Format::Csv => {
            let keys = store.attribute_keys().await?;
            let mut w = csv::WriterBuilder::new()
                .terminator(csv::Terminator::Any(b'\n'))
                .from_writer(out);
            let header: Vec<&str> = COLUMNS
                .iter()
                .copied()
                .chain(keys.iter().map(String::as_str))
                .collect();
            w.write_record(&header)?;
            let mut record: Vec<String> = Vec::with_capacity(header.len());
            let n = store
                .each_contact(segment, None, 0, |c| {
                    record.clear();
                    csv_fields(&c, &keys, &mut record);
                    w.write_record(&record)?;
                    if let Some(p) = &progress {
                        p.inc(1);
                    }
                    Ok(())
                })
                .await?;
            w.flush()?;
            n
        }
        Format::Json => {
            out.write_all(b"[")?;
            let mut first = true;
            let n = store
                .each_contact(segment, None, 0, |c| {
                    if !first {
                        out.write_all(b",")?;
                    }
                    first = false;
                    out.write_all(b"\n")?;
                    serde_json::to_writer(&mut *out, &JsonContact::from(&c))?;
                    if let Some(p) = &progress {
                        p.inc(1);
                    }
                    Ok(())
                })
                .await?;
            out.write_all(b"\n]\n")?;
            out.flush()?;
            n
        }
    };
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    Ok(n)
}

/// One contact's CSV fields in [`COLUMNS`] order, then its attributes.
fn csv_fields(c: &Contact, keys: &[String], out: &mut Vec<String>) {
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    out.extend([
        c.email.clone(),
        c.name.clone(),
        c.title.clone(),
        s(&c.org_name),
        s(&c.org_kind),
        s(&c.org_country),
        s(&c.org_city),
        s(&c.org_region),
        s(&c.org_timezone),
        s(&c.org_relationship),
        c.org_since.map(|y| y.to_string()).unwrap_or_default(),
        s(&c.language),
        c.tag_list().join(";"),
        c.salutation.clone(),
    ]);
    for k in keys {
        out.push(match c.attributes.0.get(k) {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(v)) => v.clone(),
            Some(other) => other.to_string(),
        });
    }
}

/// The JSON shape of an exported contact.
#[derive(Serialize)]
pub struct JsonContact<'a> {
    pub email: &'a str,
    pub name: &'a str,
    pub title: &'a str,
    pub salutation: &'a str,
    pub organisation: Option<JsonOrg<'a>>,
    pub language: Option<&'a str>,
    pub tags: Vec<&'a str>,
    pub status: &'a str,
    pub status_reason: &'a str,
    pub status_changed_at: String,
    pub consent_source: &'a str,
    pub consent_at: Option<String>,
    pub attributes: &'a serde_json::Map<String, serde_json::Value>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Serialize)]
pub struct JsonOrg<'a> {
    pub name: &'a str,
    pub kind: Option<&'a str>,
    pub country: Option<&'a str>,
    pub city: Option<&'a str>,
    pub region: Option<&'a str>,
    pub timezone: Option<&'a str>,
    pub relationship: Option<&'a str>,
    pub since: Option<i64>,
}

impl<'a> From<&'a Contact> for JsonContact<'a> {
    fn from(c: &'a Contact) -> Self {
        JsonContact {
            email: &c.email,
            name: &c.name,
            title: &c.title,
            salutation: &c.salutation,
            organisation: c.org_name.as_deref().map(|name| JsonOrg {
                name,
                kind: c.org_kind.as_deref(),
                country: c.org_country.as_deref(),
                city: c.org_city.as_deref(),
                region: c.org_region.as_deref(),
                timezone: c.org_timezone.as_deref(),
                relationship: c.org_relationship.as_deref(),
                since: c.org_since,
            }),
            language: c.language.as_deref(),
            tags: c.tag_list(),
            status: &c.status,
            status_reason: &c.status_reason,
            status_changed_at: c.status_changed_at.to_rfc3339(),
            consent_source: &c.consent_source,
            consent_at: c.consent_at.map(|t| t.to_rfc3339()),
            attributes: &c.attributes.0,
            created_at: c.created_at.to_rfc3339(),
            updated_at: c.updated_at.to_rfc3339(),
        }
    }
}
