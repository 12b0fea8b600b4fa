//! The CSV columns and the validation of one row into an [`ImportRow`].
//!
//! The documented header is [`COLUMNS`]; `email` is the only column that must
//! be present. Any other column becomes a custom attribute. Each problem is a
//! [`RowError`] with the line, the column and the field it concerns.

use std::fmt;

use serde::Serialize;

use super::reader::{Record, MAX_FIELD_BYTES};
use crate::domain::{quote, CountryCode, EmailAddress, Language, OrgKind, Relationship, TimeZone};
use crate::store::import::{NewRow, OrgRecord};
use crate::store::{normalise_tag, org_key};

/// The documented columns, in the order export writes them.
pub const COLUMNS: &[&str] = &[
    "email",
    "name",
    "title",
    "organisation",
    "kind",
    "country",
    "city",
    "region",
    "timezone",
    "relationship",
    "since",
    "language",
    "tags",
    "salutation",
];

/// Index of each documented column in [`COLUMNS`].
#[derive(Clone, Copy)]
enum Col {
    Email = 0,
    Name,
    Title,
    Organisation,
    Kind,
    Country,
    City,
    Region,
    Timezone,
    Relationship,
    Since,
    Language,
    Tags,
    Salutation,
}

/// A problem with one row of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    pub line: u64,
    /// 1-based character column where the offending field starts.
    pub column: Option<u64>,
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some(c) = self.column {
            write!(f, ", column {c}")?;
        }
        if let Some(field) = &self.field {
            write!(f, " ({field})")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Which file column holds which field.
#[derive(Debug, Clone)]
pub struct Columns {
    /// For each documented column, its index in the file, if present.
    known: [Option<usize>; 14],
    /// Extra columns: (index in the file, attribute name).
    extra: Vec<(usize, String)>,
    width: usize,
}

/// An organisation as given on a row.
#[derive(Debug, Clone)]
pub struct OrgInput {
    pub key: String,
    pub name: String,
    pub kind: OrgKind,
    pub country: Option<String>,
    pub region: Option<String>,
    pub city: Option<String>,
    pub timezone: Option<String>,
    pub relationship: Option<String>,
    pub since: Option<i64>,
}

/// A validated row.
#[derive(Debug, Clone)]
pub struct ImportRow {
    pub line: u64,
    pub email: String,
    pub name: String,
    pub title: String,
    /// Used verbatim as the greeting when not empty.
    pub salutation: String,
    pub org: Option<OrgInput>,
    pub language: Option<String>,
    pub tags: Vec<String>,
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// The row's bytes as found in the file, for the reject file.
    pub raw: Vec<u8>,
    /// Where each documented field starts (line, column).
    positions: [(u64, usize); 14],
}

impl Columns {
    /// Reads the header record.
    pub fn from_header(rec: &Record) -> Result<Columns, String> {
        let mut known = [None; 14];
        let mut extra = Vec::new();
        let mut names = std::collections::HashSet::new();
        for i in 0..rec.len() {
            let (line, col) = rec.position(i);
            if rec.oversized(i).is_some() || rec.field(i).contains(&0) {
                return Err(format!(
                    "{line}:{col}: header: column {} is longer than {} KiB or has a NUL byte",
                    i + 1,
                    MAX_FIELD_BYTES >> 10
                ));
            }
            let name = std::str::from_utf8(rec.field(i))
                .map_err(|_| format!("{line}:{col}: header: column {} is not valid UTF-8", i + 1))?
                .trim()
                .to_string();
            if name.is_empty() {
                return Err(format!(
                    "{line}:{col}: header: column {} has no name",
                    i + 1
                ));
            }
            let lower = name.to_lowercase();
            if !names.insert(lower.clone()) {
                return Err(format!(
                    "{line}:{col}: header: column {} appears twice",
                    quote(&name)
                ));
            }
            match COLUMNS.iter().position(|c| *c == lower) {
                Some(k) => known[k] = Some(i),
                None => extra.push((i, name)),
            }
        }
        if known[Col::Email as usize].is_none() {
            return Err(format!(
                "1:1: header: there is no \"email\" column (the header must name the columns, e.g. {})",
                COLUMNS.join(",")
            ));
        }
        Ok(Columns {
            known,
            extra,
            width: rec.len(),
        })
    }

    /// Validates one record; on failure returns every problem found in it.
    pub fn parse(&self, rec: &Record) -> Result<ImportRow, Vec<RowError>> {
        let mut errors = Vec::new();
        if rec.len() != self.width {
            let (line, column) = if rec.len() < self.width {
                rec.end_position()
            } else {
                rec.position(self.width)
            };
            errors.push(RowError {
                line,
                column: Some(column as u64),
                field: None,
                message: format!(
                    "expected {} fields (as in the header), found {}",
                    self.width,
                    rec.len()
                ),
            });
            return Err(errors);
        }
        let mut positions = [(rec.line, 1usize); 14];
        let mut text: [String; 14] = Default::default();
        for (k, idx) in self.known.iter().enumerate() {
            let Some(i) = *idx else { continue };
            positions[k] = rec.position(i);
            match field_text(rec, i, COLUMNS[k]) {
                Ok(s) => text[k] = s,
                Err(e) => errors.push(e),
            }
        }
        let mut attributes = serde_json::Map::new();
        for (i, name) in &self.extra {
            match field_text(rec, *i, name) {
                Ok(s) if s.is_empty() => {}
                Ok(s) => {
                    attributes.insert(name.clone(), serde_json::Value::String(s));
                }
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let err = |k: Col, message: String| {
            let (line, col) = positions[k as usize];
            RowError {
                line,
                column: Some(col as u64),
                field: Some(COLUMNS[k as usize].into()),
                message,
            }
        };
        let get = |k: Col| text[k as usize].as_str();

        let email = match get(Col::Email) {
            "" => {
                errors.push(err(
                    Col::Email,
                    "missing required field: email is empty".into(),
                ));
                String::new()
            }
            raw => match EmailAddress::parse(raw) {
                Ok(e) => e.into_string(),
                Err(e) => {
                    errors.push(err(
                        Col::Email,
                        format!("invalid email {}: {e}", quote(raw)),
                    ));
                    String::new()
                }
            },
        };
        let language = match get(Col::Language) {
            "" => None,
            raw => match Language::parse(raw) {
                Ok(l) => Some(l.as_str().to_string()),
                Err(e) => {
                    errors.push(err(Col::Language, e.to_string()));
                    None
                }
            },
        };
        let mut tags = Vec::new();
        for t in get(Col::Tags)
            .split(';')
            .map(normalise_tag)
            .filter(|t| !t.is_empty())
        {
            if t.chars().count() > 64 || t.chars().any(|c| c.is_control() || c == ',') {
                errors.push(err(
                    Col::Tags,
                    format!(
                        "tag {} is longer than 64 characters or has a control character",
                        quote(&t)
                    ),
                ));
            } else if !tags.contains(&t) {
                tags.push(t);
            }
        }
        let salutation = get(Col::Salutation);
        if let Err(e) = crate::domain::check_salutation(salutation) {
            errors.push(err(Col::Salutation, e));
        }
        let org = self.parse_org(&get, &err, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(ImportRow {
            line: rec.line,
            email,
            name: get(Col::Name).to_string(),
            title: get(Col::Title).to_string(),
            salutation: salutation.to_string(),
            org,
            language,
            tags,
            attributes,
            raw: rec.raw.clone(),
            positions,
        })
    }

    fn parse_org<'t>(
        &self,
        get: &dyn Fn(Col) -> &'t str,
        err: &dyn Fn(Col, String) -> RowError,
        errors: &mut Vec<RowError>,
    ) -> Option<OrgInput> {
        let name = get(Col::Organisation);
        let org_cols = [
            Col::Kind,
            Col::Country,
            Col::City,
            Col::Region,
            Col::Timezone,
            Col::Relationship,
            Col::Since,
        ];
        if name.is_empty() {
            if let Some(c) = org_cols.iter().find(|c| !get(**c).is_empty()) {
                errors.push(err(
                    Col::Organisation,
                    format!(
                        "missing required field: organisation is empty but {} is given",
                        COLUMNS[*c as usize]
                    ),
                ));
            }
            return None;
        }
        let kind = match get(Col::Kind) {
            "" => {
                errors.push(err(
                    Col::Kind,
                    "missing required field: kind is required when organisation is given".into(),
                ));
                None
            }
            raw => OrgKind::parse(raw)
                .map_err(|e| errors.push(err(Col::Kind, e.to_string())))
                .ok(),
        };
        let country = match get(Col::Country) {
            "" => None,
            raw => CountryCode::parse(raw)
                .map(|c| c.to_string())
                .map_err(|e| errors.push(err(Col::Country, format!("unknown country: {e}"))))
                .ok(),
        };
        let timezone = match get(Col::Timezone) {
            "" => None,
            raw => TimeZone::parse(raw)
                .map(|t| t.name().to_string())
                .map_err(|e| errors.push(err(Col::Timezone, format!("unknown time zone: {e}"))))
                .ok(),
        };
        let relationship = match get(Col::Relationship) {
            "" => None,
            raw => match Relationship::parse(raw) {
                Ok(_) if kind.is_some() && kind != Some(OrgKind::City) => {
                    errors.push(err(
                        Col::Relationship,
                        "a relationship is recorded only for kind city".into(),
                    ));
                    None
                }
                Ok(r) => Some(r.as_str().to_string()),
                Err(e) => {
                    errors.push(err(Col::Relationship, e.to_string()));
                    None
                }
            },
        };
        let since = match get(Col::Since) {
            "" => None,
            raw => match raw.parse::<i64>() {
                Ok(y) if (1000..=2999).contains(&y) => Some(y),
                _ => {
                    errors.push(err(
                        Col::Since,
                        format!("{} is not a year (e.g. 1960)", quote(raw)),
                    ));
                    None
                }
            },
        };
        let opt = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
        Some(OrgInput {
            key: org_key(name),
            name: name.to_string(),
            kind: kind?,
            country,
            region: opt(get(Col::Region)),
            city: opt(get(Col::City)),
            timezone,
            relationship,
            since,
        })
    }
}

/// A field's text, trimmed. A field longer than 64 KiB, a NUL byte (which
/// PostgreSQL cannot store, so neither backend accepts it) and invalid
/// UTF-8 are errors that point at the field or the offending byte.
fn field_text(rec: &Record, i: usize, name: &str) -> Result<String, RowError> {
    let bytes = rec.field(i);
    let at = |offset: usize, message: String| {
        let (line, column) = rec.byte_position_in_field(i, offset);
        RowError {
            line,
            column: Some(column as u64),
            field: Some(name.to_string()),
            message,
        }
    };
    if let Some(len) = rec.oversized(i) {
        return Err(at(
            0,
            format!(
                "the field is {len} bytes long; a field may be at most {} KiB",
                MAX_FIELD_BYTES >> 10
            ),
        ));
    }
    if let Some(nul) = memchr::memchr(0, bytes) {
        return Err(at(
            nul,
            "a NUL byte (0x00); text fields cannot contain it (was the file saved as \
             UTF-16? convert it to UTF-8, e.g. iconv -f UTF-16 -t UTF-8)"
                .into(),
        ));
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.trim().to_string()),
        Err(e) => {
            let bad = bytes[e.valid_up_to()];
            Err(at(
                e.valid_up_to(),
                format!(
                    "invalid UTF-8 (byte 0x{bad:02X}); the file must be UTF-8 — if it is Latin-1 or \
                     Windows-1252, convert it first (e.g. iconv -f WINDOWS-1252 -t UTF-8)"
                ),
            ))
        }
    }
}

impl ImportRow {
    fn pos(&self, field: &str) -> (u64, usize) {
        COLUMNS
            .iter()
            .position(|c| *c == field)
            .map(|k| self.positions[k])
            .unwrap_or((self.line, 1))
    }

    /// An error about one of this row's fields.
    pub fn field_error(&self, field: &str, message: String) -> RowError {
        let (line, col) = self.pos(field);
        RowError {
            line,
            column: Some(col as u64),
            field: Some(field.to_string()),
            message,
        }
    }

    /// The error for an address already seen on line `first`.
    pub fn duplicate_error(&self, first: u64) -> RowError {
        self.field_error(
            "email",
            format!("duplicate: {} already appears on line {first}", self.email),
        )
    }

    pub fn as_new_row(&self, org_id: Option<i64>) -> NewRow<'_> {
        NewRow {
            e: &self.email,
            n: &self.name,
            t: &self.title,
            o: org_id,
            l: self.language.as_deref(),
            a: &self.attributes,
            s: &self.salutation,
        }
    }

    /// Existing attributes with this row's non-empty ones laid over them.
    pub fn merged_attributes(
        &self,
        existing: &serde_json::Map<String, serde_json::Value>,
    ) -> serde_json::Map<String, serde_json::Value> {
        let mut out = existing.clone();
        for (k, v) in &self.attributes {
            out.insert(k.clone(), v.clone());
        }
        out
    }
}

impl OrgInput {
    pub fn to_record(&self) -> OrgRecord {
        OrgRecord {
            id: 0,
            name_key: self.key.clone(),
            kind: self.kind.as_str().to_string(),
            name: self.name.clone(),
            country: self.country.clone(),
            region: self.region.clone(),
            city: self.city.clone(),
            timezone: self.timezone.clone(),
            relationship: self.relationship.clone(),
            relationship_since: self.since,
        }
    }

    /// The fields given here that differ from `rec`: (field, here, there).
    /// Fields left empty on the row are not compared.
    pub fn differences(&self, rec: &OrgRecord) -> Vec<(&'static str, String, String)> {
        let mut out = Vec::new();
        if self.kind.as_str() != rec.kind {
            out.push(("kind", self.kind.as_str().to_string(), rec.kind.clone()));
        }
        let mut cmp = |field: &'static str, mine: &Option<String>, theirs: &Option<String>| {
            if let Some(m) = mine {
                if Some(m) != theirs.as_ref() {
                    out.push((field, m.clone(), theirs.clone().unwrap_or_default()));
                }
            }
        };
        cmp("country", &self.country, &rec.country);
        cmp("city", &self.city, &rec.city);
        cmp("region", &self.region, &rec.region);
        cmp("timezone", &self.timezone, &rec.timezone);
        cmp("relationship", &self.relationship, &rec.relationship);
        if let Some(y) = self.since.filter(|y| Some(*y) != rec.relationship_since) {
            let theirs = rec.relationship_since.map(|t| t.to_string());
            out.push(("since", y.to_string(), theirs.unwrap_or_default()));
        }
        out
    }

    /// Lays this row's non-empty fields over `rec`.
    pub fn merge_into(&self, rec: &mut OrgRecord) {
        rec.kind = self.kind.as_str().to_string();
        rec.name = self.name.clone();
        let set = |dst: &mut Option<String>, src: &Option<String>| {
            if src.is_some() {
                dst.clone_from(src);
            }
        };
        set(&mut rec.country, &self.country);
        set(&mut rec.city, &self.city);
        set(&mut rec.region, &self.region);
        set(&mut rec.timezone, &self.timezone);
        set(&mut rec.relationship, &self.relationship);
        if self.since.is_some() {
            rec.relationship_since = self.since;
        }
    }
}
