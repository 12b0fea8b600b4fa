//! Segments as the front ends use them: a count with a sample (what the
//! API's `POST /segments/count` and the admin's live count show), the
//! parse error with its column and caret, and the builder that turns one
//! chosen condition into text of the segment language, quoted so that it
//! parses back to what was chosen.

use serde::Serialize;

use super::campaign_actions::{matching_contacts, parse_segment};
use super::error::AppError;
use crate::domain::segment::{Segment, SegmentError};
use crate::store::{Contact, Store};

/// How many contacts a segment matches, how many of them are active (a
/// campaign's recipients), and the first few in address order.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentPreview {
    pub count: i64,
    pub active: i64,
    pub sample: Vec<Contact>,
}

/// Counts a segment and takes a sample of up to `sample` contacts (0 to
/// 50). An empty segment matches every contact.
pub async fn preview(store: &Store, text: &str, sample: i64) -> Result<SegmentPreview, AppError> {
    let segment = parse_segment("segment", text)?;
    let count = store.count_contacts(segment.as_ref()).await?;
    let active = matching_contacts(store, text).await?;
    let n = sample.clamp(0, 50);
    let sample = if n > 0 {
        store.contact_page(segment.as_ref(), None, n).await?
    } else {
        Vec::new()
    };
    Ok(SegmentPreview {
        count,
        active,
        sample,
    })
}

/// A segment that did not parse, ready to show under its box.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentProblem {
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong, with a "did you mean" where one fits.
    pub message: String,
    /// The text, then a line with a caret under the column.
    pub caret: String,
}

/// Parses `text` (empty: every contact); a failure comes with its caret.
pub fn check(text: &str) -> Result<Option<Segment>, SegmentProblem> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    Segment::parse(text).map(Some).map_err(|e: SegmentError| {
        let caret = e.render(text);
        SegmentProblem {
            column: e.column,
            message: e.message,
            caret,
        }
    })
}

/// The fields the builder offers, with their labels.
pub const BUILDER_FIELDS: &[(&str, &str)] = &[
    ("kind", "Organisation kind"),
    ("country", "Country (ISO code)"),
    ("region", "Region"),
    ("city", "City"),
    ("organisation", "Organisation name"),
    ("timezone", "Time zone"),
    ("relationship", "Relationship"),
    ("since", "Relationship since (year)"),
    ("tag", "Tag"),
    ("language", "Language"),
    ("status", "Status"),
    ("name", "Name"),
    ("title", "Title"),
    ("email", "Email"),
    ("created", "Added (date)"),
];

/// The operators the builder offers, with their labels.
pub const BUILDER_OPERATORS: &[(&str, &str)] = &[
    ("=", "is"),
    ("!=", "is not"),
    ("~", "contains"),
    ("!~", "does not contain"),
    ("in", "is one of (comma-separated)"),
    ("not in", "is none of (comma-separated)"),
    ("is empty", "is empty"),
    ("is not empty", "is not empty"),
    (">=", "is at least"),
    ("<", "is before / less than"),
];

/// A value in the segment language: a bare word when it is one, else a
/// double-quoted string with `"` and `\` escaped.
pub fn quote_value(value: &str) -> String {
    let word = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.@+-".contains(c));
    if word {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// One condition chosen in the builder, as text; checked by parsing it.
pub fn condition(field: &str, op: &str, value: &str) -> Result<String, AppError> {
    if !BUILDER_FIELDS.iter().any(|(f, _)| *f == field) {
        return Err(AppError::field(
            "field",
            format!("{field:?} is not a field"),
        ));
    }
    let value = value.trim();
    let text = match op {
        "is empty" | "is not empty" => format!("{field} {op}"),
        "in" | "not in" => {
            let values: Vec<String> = value
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(quote_value)
                .collect();
            if values.is_empty() {
                return Err(AppError::field("value", "give at least one value"));
            }
            format!("{field} {op} ({})", values.join(", "))
        }
        "=" | "!=" | "~" | "!~" | ">=" | "<" | "<=" | ">" => {
            if value.is_empty() {
                return Err(AppError::field("value", "give a value"));
            }
            format!("{field} {op} {}", quote_value(value))
        }
        _ => return Err(AppError::field("op", format!("{op:?} is not an operator"))),
    };
    Segment::parse(&text).map_err(|e| AppError::at_column("value", e.column as u64, e.message))?;
    Ok(text)
}

/// `current` with `condition` added by `join` ("and" or "or"); the current
/// text is parenthesised when it has an `or` at its top that the join
/// would otherwise bind differently.
pub fn add_condition(current: &str, join: &str, condition: &str) -> Result<String, AppError> {
    let join = match join {
        "or" => "or",
        _ => "and",
    };
    let current = current.trim();
    if current.is_empty() {
        return Ok(condition.to_string());
    }
    check(current).map_err(|p| AppError::at_column("segment", p.column as u64, p.message))?;
    let lhs = if join == "and" && current.to_ascii_lowercase().contains(" or ") {
        format!("({current})")
    } else {
        current.to_string()
    };
    Ok(format!("{lhs} {join} {condition}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builder_quotes_values_so_they_parse_back() {
        assert_eq!(
            condition("region", "=", "Europe").unwrap(),
            "region = Europe"
        );
        assert_eq!(
            condition("organisation", "=", "Embassy of \"X\" \\ Y").unwrap(),
            r#"organisation = "Embassy of \"X\" \\ Y""#
        );
        assert_eq!(
            condition("country", "in", "FR, de,").unwrap(),
            "country in (FR, de)"
        );
        assert_eq!(condition("name", "~", "山田").unwrap(), "name ~ \"山田\"");
        assert_eq!(
            condition("tag", "is empty", "ignored").unwrap(),
            "tag is empty"
        );
    }

    #[test]
    fn the_builder_refuses_what_the_language_refuses_with_the_field() {
        let e = condition("kind", "=", "embasy").unwrap_err();
        assert!(matches!(&e, AppError::Invalid(v) if v[0].field.as_deref() == Some("value")));
        assert!(condition("since", "~", "19").is_err());
        assert!(condition("nosuch", "=", "x").is_err());
        assert!(condition("name", "=", "").is_err());
    }

    #[test]
    fn a_condition_joined_by_and_keeps_an_or_together() {
        assert_eq!(
            add_condition("kind = city or kind = embassy", "and", "region = Europe").unwrap(),
            "(kind = city or kind = embassy) and region = Europe"
        );
        assert_eq!(
            add_condition("kind = city", "or", "tag = vip").unwrap(),
            "kind = city or tag = vip"
        );
        assert_eq!(
            add_condition("  ", "and", "tag = vip").unwrap(),
            "tag = vip"
        );
        assert!(add_condition("knd = city", "and", "tag = vip").is_err());
    }

    #[test]
    fn a_problem_names_its_column_with_a_caret_and_a_suggestion() {
        let p = check("knd = embassy").unwrap_err();
        assert_eq!(p.column, 1);
        assert!(p.message.contains("did you mean \"kind\""), "{}", p.message);
        assert_eq!(p.caret, "knd = embassy\n^");
        assert!(check("").unwrap().is_none());
    }
}
