//! Segments: a small, safe filter language for choosing newsletter recipients.
//!
//! A segment is a boolean expression over contact (and organisation) fields:
//!
//! ```text
//! kind = embassy and region = "Europe"
//! tag = sister-cities or country in (FR, DE)
//! not (status = unsubscribed) and name ~ "yamada"
//! since >= 1990 and relationship = sister
//! attr.language = "fr" and organisation is not empty
//! created >= 2024-01-31 and created < "2024-03-01T09:00:00+09:00"
//! ```
//!
//! Grammar (keywords and field names are case-insensitive):
//!
//! ```text
//! segment    = or_expr EOF ;
//! or_expr    = and_expr { "or" and_expr } ;
//! and_expr   = unary { "and" unary } ;
//! unary      = "not" unary | primary ;
//! primary    = "(" or_expr ")" | condition ;
//! condition  = field ( cmp_op value
//!                    | [ "not" ] "in" "(" value { "," value } ")"
//!                    | "is" [ "not" ] "empty" ) ;
//! cmp_op     = "=" | "!=" | "~" | "!~" | "<" | "<=" | ">" | ">=" ;
//! field      = "email" | "name" | "title" | "status" | "language"
//!            | "organisation" | "org" | "kind" | "country" | "region"
//!            | "city" | "timezone" | "tz" | "relationship" | "since"
//!            | "tag" | "created" | "attr." key ;
//! key        = /[A-Za-z0-9_-]+/ ;
//! value      = string | word ;
//! string     = '"' { any char except '"' and '\' | '\"' | '\\' } '"' ;
//! word       = wordchar { wordchar } ;
//! wordchar   = letter | digit | mark | "_" | "." | "@" | "+" | "-" ;
//!              (letters, digits and combining marks of any script)
//! ```
//!
//! Field rules checked at parse time, with errors pointing at the offending
//! column:
//!
//! * `~` / `!~` mean "contains" / "does not contain", case-insensitively.
//! * `<`, `<=`, `>`, `>=` work only with `since` and `created`; `created`
//!   supports nothing else.
//! * `since` values must be integers (years); `~`/`!~` are rejected for it.
//! * `created` values are `YYYY-MM-DD` (midnight UTC) or an RFC 3339
//!   date-time (quote it: `:` is not a word character). They are normalised
//!   to UTC text `YYYY-MM-DD HH:MM:SS`; fractional seconds are truncated. A
//!   date-time without an offset (such as that normalised form) means UTC.
//! * `kind`, `status` and `relationship` values used with `=`, `!=`, `in` and
//!   `not in` must come from their vocabularies and are lower-cased;
//!   `country` values are upper-cased.
//!
//! Limits: at most [`MAX_INPUT_CHARS`] characters, [`MAX_DEPTH`] levels of
//! parentheses and `not`, and [`MAX_LIST_VALUES`] values in an `in` list.
//! Exceeding a limit is an ordinary [`SegmentError`]; the parser never
//! recurses deeper than the depth limit.
//!
//! [`Expr`] implements [`fmt::Display`], printing a canonical form that parses
//! back to the same tree.
//!
//! The code is in one file per stage: [`lexer`] (characters to tokens),
//! [`parser`] (recursive descent over the tokens), [`fields`] (field names,
//! operators and the values each field takes), [`created`] (dates), [`ast`]
//! (the tree and its canonical printing) and [`error`] (errors with a
//! column, and their display with a caret).

mod ast;
mod created;
mod error;
mod fields;
mod lexer;
mod parser;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

pub use ast::{CmpOp, Expr, Field, Value};
pub use error::{InvalidSegment, SegmentError};

use lexer::Tok;
use parser::Parser;

/// The longest accepted segment, in characters.
pub const MAX_INPUT_CHARS: usize = 4096;
/// The deepest accepted nesting of parentheses and `not`.
pub const MAX_DEPTH: usize = 32;
/// The most values accepted in one `in (...)` list.
pub const MAX_LIST_VALUES: usize = 1000;

/// Values accepted for `kind`.
pub const KINDS: &[&str] = &[
    "city",
    "embassy",
    "representative_office",
    "international_org",
    "other",
];
/// Values accepted for `status`.
pub const STATUSES: &[&str] = &["active", "unsubscribed", "bounced", "blocklisted"];
/// Values accepted for `relationship`.
pub const RELATIONSHIPS: &[&str] = &["sister", "friendship", "partner"];

/// Field names offered as "did you mean" suggestions.
pub(super) const FIELD_NAMES: &[&str] = &[
    "email",
    "name",
    "title",
    "status",
    "language",
    "organisation",
    "org",
    "kind",
    "country",
    "region",
    "city",
    "timezone",
    "tz",
    "relationship",
    "since",
    "tag",
    "created",
    "attr",
];

pub(super) const OPERATOR_LIST: &str = "=, !=, ~, !~, <, <=, >, >=, in, not in, is";

/// A parsed segment: the expression tree plus the source it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    expr: Expr,
    source: String,
}

impl Segment {
    /// Parses a segment, checking field names, operators, values and limits.
    pub fn parse(input: &str) -> Result<Segment, SegmentError> {
        let length = input.chars().count();
        if length > MAX_INPUT_CHARS {
            return Err(SegmentError::new(
                MAX_INPUT_CHARS + 1,
                format!(
                    "segment is too long ({length} characters; the limit is {MAX_INPUT_CHARS})"
                ),
            ));
        }
        let mut parser = Parser::new(input);
        if matches!(parser.peek()?.tok, Tok::Eof) {
            return Err(SegmentError::new(
                1,
                "empty segment: expected a condition such as kind = embassy",
            ));
        }
        let expr = parser.parse_or()?;
        parser.expect_end()?;
        Ok(Segment {
            expr,
            source: input.to_owned(),
        })
    }

    /// The text the segment was parsed from, verbatim.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The parsed expression tree.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }
}

impl FromStr for Segment {
    type Err = SegmentError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Segment::parse(input)
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}
