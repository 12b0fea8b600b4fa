//! Field names (with suggestions for misspelt ones), which operators each
//! field takes, and the checking and normalising of values.

use super::ast::{Field, OpClass, Value};
use super::created::normalise_created;
use super::lexer::{is_key_char, shorten};
use super::{SegmentError, FIELD_NAMES, KINDS, RELATIONSHIPS, STATUSES};
use crate::domain::edit_distance;

pub(super) fn resolve_field(word: &str, column: usize) -> Result<Field, SegmentError> {
    let lower = word.to_ascii_lowercase();
    Ok(match lower.as_str() {
        "email" => Field::Email,
        "name" => Field::Name,
        "title" => Field::Title,
        "status" => Field::Status,
        "language" => Field::Language,
        "organisation" | "organization" | "org" => Field::Organisation,
        "kind" => Field::Kind,
        "country" => Field::Country,
        "region" => Field::Region,
        "city" => Field::City,
        "timezone" | "tz" => Field::TimeZone,
        "relationship" => Field::Relationship,
        "since" => Field::Since,
        "tag" => Field::Tag,
        "created" => Field::Created,
        "attr" => {
            return Err(SegmentError::new(
                column,
                "\"attr\" needs a key, as in attr.language",
            ));
        }
        // Words are ASCII, so byte offsets equal character offsets here.
        _ if lower.starts_with("attr.") => return attribute_field(&word[5..], column + 5),
        _ => return Err(unknown_field(word, column)),
    })
}

pub(super) fn attribute_field(key: &str, column: usize) -> Result<Field, SegmentError> {
    if key.is_empty() {
        return Err(SegmentError::new(
            column,
            "missing attribute key after \"attr.\"",
        ));
    }
    if let Some((offset, c)) = key.chars().enumerate().find(|&(_, c)| !is_key_char(c)) {
        return Err(SegmentError::new(
            column + offset,
            format!(
                "invalid character \"{c}\" in attribute key (keys may contain only letters, \
                 digits, \"_\" and \"-\")"
            ),
        ));
    }
    Ok(Field::Attr(key.to_owned()))
}

pub(super) fn unknown_field(word: &str, column: usize) -> SegmentError {
    let lower = word.to_ascii_lowercase();
    let suggestion = match lower.split_once('.') {
        Some((prefix, _)) if edit_distance(prefix, "attr") <= 2 => {
            Some(format!("attr.{}", &word[prefix.len() + 1..]))
        }
        Some(_) => None,
        None => FIELD_NAMES
            .iter()
            .map(|name| (edit_distance(&lower, name), *name))
            .min()
            .filter(|&(distance, _)| distance <= 2 && distance < lower.len())
            .map(|(_, name)| name.to_owned()),
    };
    let hint = match suggestion {
        Some(name) => format!("did you mean \"{name}\"?"),
        None => "fields are: email, name, title, status, language, organisation, kind, \
                 country, region, city, timezone, relationship, since, tag, created, \
                 attr.<key>"
            .to_owned(),
    };
    SegmentError::new(
        column,
        format!("unknown field \"{}\" ({hint})", shorten(word)),
    )
}

pub(super) fn check_operator(
    field: &Field,
    op: &str,
    class: OpClass,
    column: usize,
) -> Result<(), SegmentError> {
    let message = match (field, class) {
        (Field::Created, OpClass::Ordering) => return Ok(()),
        (Field::Created, _) => format!(
            "operator \"{op}\" does not work with created; compare dates with <, <=, > or >="
        ),
        (Field::Since, OpClass::Pattern) => format!(
            "operator \"{op}\" does not work with since (a year); use =, !=, <, <=, >, >=, \
             in or is empty"
        ),
        (Field::Since, _) => return Ok(()),
        (_, OpClass::Ordering) => {
            format!("operator \"{op}\" only works with since and created, not with \"{field}\"")
        }
        _ => return Ok(()),
    };
    Err(SegmentError::new(column, message))
}

/// Checks and normalises a value for a field. `pattern` is true for `~`/`!~`,
/// which take free text even for vocabulary fields.
pub(super) fn check_value(
    field: &Field,
    text: &str,
    pattern: bool,
    column: usize,
) -> Result<Value, SegmentError> {
    let vocabulary = match field {
        Field::Since => {
            return text.parse::<i64>().map(Value::Int).map_err(|_| {
                SegmentError::new(
                    column,
                    format!(
                        "\"{}\" is not a year (since takes a whole number such as 1990)",
                        shorten(text)
                    ),
                )
            });
        }
        Field::Created => {
            return normalise_created(text).map(Value::Text).ok_or_else(|| {
                SegmentError::new(
                    column,
                    format!(
                        "\"{}\" is not a valid date (expected YYYY-MM-DD, or an RFC 3339 \
                         date-time in quotes such as \"2024-01-31T09:30:00Z\")",
                        shorten(text)
                    ),
                )
            });
        }
        Field::Country => return Ok(Value::Text(text.to_uppercase())),
        Field::Kind if !pattern => ("kind", KINDS),
        Field::Status if !pattern => ("status", STATUSES),
        Field::Relationship if !pattern => ("relationship", RELATIONSHIPS),
        _ => return Ok(Value::Text(text.to_owned())),
    };
    let (noun, allowed) = vocabulary;
    let lower = text.to_lowercase();
    if allowed.contains(&lower.as_str()) {
        Ok(Value::Text(lower))
    } else {
        Err(SegmentError::new(
            column,
            format!(
                "\"{}\" is not a {noun} (expected one of: {})",
                shorten(text),
                allowed.join(", ")
            ),
        ))
    }
}
