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
//! word       = /[A-Za-z0-9_.@+-]+/ ;
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

use std::fmt;
use std::str::FromStr;

use super::edit_distance;

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
const FIELD_NAMES: &[&str] = &[
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

const OPERATOR_LIST: &str = "=, !=, ~, !~, <, <=, >, >=, in, not in, is";

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
        let mut parser = Parser {
            tokens: lex(input),
            pos: 0,
            depth: 0,
        };
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

/// A parse error with the 1-based column (in characters) it refers to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct SegmentError {
    /// 1-based column, counted in characters (not bytes).
    pub column: usize,
    /// What went wrong, in words.
    pub message: String,
}

impl SegmentError {
    fn new(column: usize, message: impl Into<String>) -> Self {
        SegmentError {
            column,
            message: message.into(),
        }
    }

    /// A two-line caret display: the source, then spaces and '^' under the column.
    ///
    /// Control characters (tabs, newlines) in the source are shown as spaces
    /// so the caret stays aligned.
    pub fn render(&self, source: &str) -> String {
        let line: String = source
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        format!("{line}\n{}^", " ".repeat(self.column.saturating_sub(1)))
    }
}

/// A segment expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp {
        field: Field,
        op: CmpOp,
        value: Value,
    },
    In {
        field: Field,
        values: Vec<Value>,
        negated: bool,
    },
    Empty {
        field: Field,
        negated: bool,
    },
}

/// A field a condition can test.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Field {
    /// The contact's e-mail address.
    Email,
    /// The contact's name.
    Name,
    Title,
    Status,
    Language,
    /// The organisation's name.
    Organisation,
    Kind,
    Country,
    Region,
    City,
    TimeZone,
    Relationship,
    /// The year the relationship started (an integer).
    Since,
    Tag,
    /// When the contact was created.
    Created,
    /// A custom attribute; the key matches `[A-Za-z0-9_-]+` when parsed.
    Attr(String),
}

impl Field {
    /// The canonical name of a built-in field (`None` for attributes).
    pub fn builtin_name(&self) -> Option<&'static str> {
        Some(match self {
            Field::Email => "email",
            Field::Name => "name",
            Field::Title => "title",
            Field::Status => "status",
            Field::Language => "language",
            Field::Organisation => "organisation",
            Field::Kind => "kind",
            Field::Country => "country",
            Field::Region => "region",
            Field::City => "city",
            Field::TimeZone => "timezone",
            Field::Relationship => "relationship",
            Field::Since => "since",
            Field::Tag => "tag",
            Field::Created => "created",
            Field::Attr(_) => return None,
        })
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Attr(key) => write!(f, "attr.{key}"),
            other => f.write_str(other.builtin_name().unwrap_or("?")),
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Ne,
    /// Case-insensitive "contains" (`~`).
    Contains,
    /// Case-insensitive "does not contain" (`!~`).
    NotContains,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    /// The operator as written in a segment.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Contains => "~",
            CmpOp::NotContains => "!~",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    fn class(self) -> OpClass {
        match self {
            CmpOp::Eq | CmpOp::Ne => OpClass::Equality,
            CmpOp::Contains | CmpOp::NotContains => OpClass::Pattern,
            CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge => OpClass::Ordering,
        }
    }
}

impl fmt::Display for CmpOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// A literal value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(String),
    Int(i64),
}

impl fmt::Display for Value {
    /// Text is always printed double-quoted, with `"` and `\` escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(n) => write!(f, "{n}"),
            Value::Text(text) => {
                f.write_str("\"")?;
                for c in text.chars() {
                    if matches!(c, '"' | '\\') {
                        f.write_str("\\")?;
                    }
                    write!(f, "{c}")?;
                }
                f.write_str("\"")
            }
        }
    }
}

impl fmt::Display for Expr {
    /// A canonical form that parses back to the same tree, with only the
    /// parentheses the tree needs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Or(left, right) => {
                write_child(f, left, 1, false)?;
                f.write_str(" or ")?;
                write_child(f, right, 1, true)
            }
            Expr::And(left, right) => {
                write_child(f, left, 2, false)?;
                f.write_str(" and ")?;
                write_child(f, right, 2, true)
            }
            Expr::Not(inner) => {
                f.write_str("not ")?;
                write_child(f, inner, 3, false)
            }
            Expr::Cmp { field, op, value } => write!(f, "{field} {op} {value}"),
            Expr::In {
                field,
                values,
                negated,
            } => {
                write!(f, "{field} {}in (", if *negated { "not " } else { "" })?;
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{value}")?;
                }
                f.write_str(")")
            }
            Expr::Empty { field, negated } => {
                write!(f, "{field} is {}empty", if *negated { "not " } else { "" })
            }
        }
    }
}

fn precedence(expr: &Expr) -> u8 {
    match expr {
        Expr::Or(..) => 1,
        Expr::And(..) => 2,
        _ => 3,
    }
}

/// Writes a child of a binary/unary node, parenthesised when its precedence
/// requires it (right operands need parentheses at equal precedence because
/// `and`/`or` associate to the left).
fn write_child(f: &mut fmt::Formatter<'_>, child: &Expr, parent: u8, right: bool) -> fmt::Result {
    let own = precedence(child);
    if own < parent || (right && own == parent) {
        write!(f, "({child})")
    } else {
        write!(f, "{child}")
    }
}

// ---------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpClass {
    Equality,
    Pattern,
    Ordering,
    List,
    Empty,
}

#[derive(Debug, Clone)]
enum Tok {
    Word(String),
    Str(String),
    LParen,
    RParen,
    Comma,
    Op(CmpOp),
    Eof,
    /// A lexical error; always the last token, reported only if reached.
    Error(SegmentError),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    column: usize,
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '+' | '-')
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-')
}

/// Splits the input into tokens. The list always ends with `Eof` or with an
/// `Error`, so a lexical error is reported only if the parser gets that far
/// (the earliest error wins).
fn lex(input: &str) -> Vec<Token> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    loop {
        while chars.get(i).is_some_and(|c| c.is_whitespace()) {
            i += 1;
        }
        let column = i + 1;
        let Some(&c) = chars.get(i) else {
            tokens.push(Token {
                tok: Tok::Eof,
                column,
            });
            return tokens;
        };
        let next = chars.get(i + 1).copied();
        let (tok, len) = match c {
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            ',' => (Tok::Comma, 1),
            '=' => (Tok::Op(CmpOp::Eq), 1),
            '~' => (Tok::Op(CmpOp::Contains), 1),
            '!' if next == Some('=') => (Tok::Op(CmpOp::Ne), 2),
            '!' if next == Some('~') => (Tok::Op(CmpOp::NotContains), 2),
            '<' if next == Some('=') => (Tok::Op(CmpOp::Le), 2),
            '<' => (Tok::Op(CmpOp::Lt), 1),
            '>' if next == Some('=') => (Tok::Op(CmpOp::Ge), 2),
            '>' => (Tok::Op(CmpOp::Gt), 1),
            '!' => (
                Tok::Error(SegmentError::new(
                    column,
                    "unexpected character \"!\" (did you mean \"!=\" or \"!~\"?)",
                )),
                1,
            ),
            '"' => match lex_string(&chars, i) {
                Ok((text, end)) => (Tok::Str(text), end - i),
                Err(error) => (Tok::Error(error), 1),
            },
            c if is_word_char(c) => {
                let len = chars[i..].iter().take_while(|&&c| is_word_char(c)).count();
                (Tok::Word(chars[i..i + len].iter().collect()), len)
            }
            c => (
                Tok::Error(SegmentError::new(
                    column,
                    format!(
                        "unexpected character {} (put values containing spaces or \
                         punctuation in double quotes)",
                        describe_char(c)
                    ),
                )),
                1,
            ),
        };
        let stop = matches!(tok, Tok::Error(_));
        tokens.push(Token { tok, column });
        if stop {
            return tokens;
        }
        i += len;
    }
}

/// Lexes a string starting at the opening quote `chars[start]`; returns its
/// contents and the index just past the closing quote.
fn lex_string(chars: &[char], start: usize) -> Result<(String, usize), SegmentError> {
    let unterminated = || SegmentError::new(start + 1, "unterminated string");
    let mut text = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return Err(unterminated()),
            Some('"') => return Ok((text, i + 1)),
            Some('\\') => match chars.get(i + 1) {
                Some(&c @ ('"' | '\\')) => {
                    text.push(c);
                    i += 2;
                }
                Some(&c) => {
                    return Err(SegmentError::new(
                        i + 1,
                        format!(
                            "unknown escape \"\\{c}\" in string (only \\\" and \\\\ are allowed)"
                        ),
                    ));
                }
                None => return Err(unterminated()),
            },
            Some(&c) => {
                text.push(c);
                i += 1;
            }
        }
    }
}

fn describe_char(c: char) -> String {
    if c.is_control() {
        format!("U+{:04X}", u32::from(c))
    } else {
        format!("\"{c}\"")
    }
}

/// Shortens long user text quoted inside error messages.
fn shorten(text: &str) -> String {
    if text.chars().count() > 40 {
        let head: String = text.chars().take(37).collect();
        format!("{head}...")
    } else {
        text.to_owned()
    }
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Word(word) => format!("\"{}\"", shorten(word)),
        Tok::Str(text) => format!("the string {}", Value::Text(shorten(text))),
        Tok::LParen => "\"(\"".to_owned(),
        Tok::RParen => "\")\"".to_owned(),
        Tok::Comma => "\",\"".to_owned(),
        Tok::Op(op) => format!("\"{op}\""),
        Tok::Eof => "end of input".to_owned(),
        Tok::Error(_) => "an invalid token".to_owned(),
    }
}

fn is_keyword(word: &str, keyword: &str) -> bool {
    word.eq_ignore_ascii_case(keyword)
}

// ---------------------------------------------------------------------------
// Parser

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Result<&Token, SegmentError> {
        let token = &self.tokens[self.pos];
        match &token.tok {
            Tok::Error(error) => Err(error.clone()),
            _ => Ok(token),
        }
    }

    fn peek_owned(&self) -> Result<Token, SegmentError> {
        self.peek().cloned()
    }

    fn bump(&mut self) {
        if self.pos + 1 < self.tokens.len() {
            self.pos += 1;
        }
    }

    fn at_keyword(&self, keyword: &str) -> bool {
        matches!(&self.tokens[self.pos].tok, Tok::Word(w) if is_keyword(w, keyword))
    }

    fn enter(&mut self, column: usize) -> Result<(), SegmentError> {
        if self.depth >= MAX_DEPTH {
            return Err(SegmentError::new(
                column,
                format!(
                    "segment is nested too deeply (the limit is {MAX_DEPTH} levels of \
                     parentheses and \"not\")"
                ),
            ));
        }
        self.depth += 1;
        Ok(())
    }

    fn parse_or(&mut self) -> Result<Expr, SegmentError> {
        let mut left = self.parse_and()?;
        while self.at_keyword("or") {
            self.bump();
            let right = self.parse_and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn parse_and(&mut self) -> Result<Expr, SegmentError> {
        let mut left = self.parse_unary()?;
        while self.at_keyword("and") {
            self.bump();
            let right = self.parse_unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn parse_unary(&mut self) -> Result<Expr, SegmentError> {
        if self.at_keyword("not") {
            let column = self.peek()?.column;
            self.enter(column)?;
            self.bump();
            let inner = self.parse_unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.parse_primary()
    }

    fn parse_primary(&mut self) -> Result<Expr, SegmentError> {
        let token = self.peek_owned()?;
        let column = token.column;
        match &token.tok {
            Tok::LParen => {
                self.enter(column)?;
                self.bump();
                let inner = self.parse_or()?;
                let close = self.peek_owned()?;
                match close.tok {
                    Tok::RParen => self.bump(),
                    Tok::Eof => {
                        return Err(SegmentError::new(
                            close.column,
                            format!(
                                "expected \")\" to close the \"(\" at column {column}, \
                                 found end of input"
                            ),
                        ));
                    }
                    ref other => {
                        return Err(SegmentError::new(
                            close.column,
                            format!(
                                "expected \"and\", \"or\" or \")\", found {}",
                                describe(other)
                            ),
                        ));
                    }
                }
                self.depth -= 1;
                Ok(inner)
            }
            Tok::Word(word)
                if ["and", "or", "in", "is"]
                    .iter()
                    .any(|keyword| is_keyword(word, keyword)) =>
            {
                Err(SegmentError::new(
                    column,
                    format!("expected a condition, found {}", describe(&token.tok)),
                ))
            }
            Tok::Word(word) => self.parse_condition(word, column),
            Tok::RParen => Err(SegmentError::new(
                column,
                "unexpected \")\" (expected a condition)",
            )),
            Tok::Eof => Err(SegmentError::new(
                column,
                "expected a condition, found end of input",
            )),
            other => Err(SegmentError::new(
                column,
                format!(
                    "expected a field name such as kind or country, found {}",
                    describe(other)
                ),
            )),
        }
    }

    fn parse_condition(&mut self, word: &str, column: usize) -> Result<Expr, SegmentError> {
        let field = resolve_field(word, column)?;
        self.bump();
        let next = self.peek_owned()?;
        match &next.tok {
            Tok::Op(op) => {
                check_operator(&field, op.symbol(), op.class(), next.column)?;
                self.bump();
                let value = self.parse_value(&field, *op)?;
                Ok(Expr::Cmp {
                    field,
                    op: *op,
                    value,
                })
            }
            Tok::Word(w) if is_keyword(w, "in") => {
                check_operator(&field, "in", OpClass::List, next.column)?;
                self.bump();
                let values = self.parse_list(&field)?;
                Ok(Expr::In {
                    field,
                    values,
                    negated: false,
                })
            }
            Tok::Word(w) if is_keyword(w, "not") => {
                self.bump();
                let after = self.peek_owned()?;
                if !matches!(&after.tok, Tok::Word(w) if is_keyword(w, "in")) {
                    return Err(SegmentError::new(
                        after.column,
                        format!(
                            "expected \"in\" after \"{field} not\", found {} (to negate a \
                             condition, write not ({field} ...))",
                            describe(&after.tok)
                        ),
                    ));
                }
                check_operator(&field, "not in", OpClass::List, next.column)?;
                self.bump();
                let values = self.parse_list(&field)?;
                Ok(Expr::In {
                    field,
                    values,
                    negated: true,
                })
            }
            Tok::Word(w) if is_keyword(w, "is") => {
                self.bump();
                let negated = self.at_keyword("not");
                if negated {
                    self.bump();
                }
                let after = self.peek_owned()?;
                let written = if negated { "is not" } else { "is" };
                if !matches!(&after.tok, Tok::Word(w) if is_keyword(w, "empty")) {
                    return Err(SegmentError::new(
                        after.column,
                        format!(
                            "expected \"empty\" after \"{written}\", found {}",
                            describe(&after.tok)
                        ),
                    ));
                }
                check_operator(
                    &field,
                    &format!("{written} empty"),
                    OpClass::Empty,
                    next.column,
                )?;
                self.bump();
                Ok(Expr::Empty { field, negated })
            }
            _ => Err(SegmentError::new(
                next.column,
                format!("expected an operator ({OPERATOR_LIST}) after field \"{field}\""),
            )),
        }
    }

    fn parse_value(&mut self, field: &Field, op: CmpOp) -> Result<Value, SegmentError> {
        let token = self.peek_owned()?;
        let text = match &token.tok {
            Tok::Word(word)
                if ["and", "or", "not"]
                    .iter()
                    .any(|keyword| is_keyword(word, keyword)) =>
            {
                return Err(SegmentError::new(
                    token.column,
                    format!(
                        "expected a value after \"{op}\", found the keyword \"{word}\" \
                         (quote it to use it as a value: \"{word}\")"
                    ),
                ));
            }
            Tok::Word(text) | Tok::Str(text) => text,
            Tok::LParen => {
                return Err(SegmentError::new(
                    token.column,
                    format!(
                        "expected a value after \"{op}\", found \"(\" (to match several \
                         values, write {field} in (a, b))"
                    ),
                ));
            }
            other => {
                return Err(SegmentError::new(
                    token.column,
                    format!("expected a value after \"{op}\", found {}", describe(other)),
                ));
            }
        };
        let value = check_value(field, text, op.class() == OpClass::Pattern, token.column)?;
        self.bump();
        Ok(value)
    }

    fn parse_list(&mut self, field: &Field) -> Result<Vec<Value>, SegmentError> {
        let open = self.peek_owned()?;
        if !matches!(open.tok, Tok::LParen) {
            return Err(SegmentError::new(
                open.column,
                format!(
                    "expected \"(\" after \"in\", found {} (write a list such as \
                     country in (FR, DE))",
                    describe(&open.tok)
                ),
            ));
        }
        self.bump();
        let mut values = Vec::new();
        loop {
            let token = self.peek_owned()?;
            match &token.tok {
                Tok::Word(text) | Tok::Str(text) => {
                    if values.len() == MAX_LIST_VALUES {
                        return Err(SegmentError::new(
                            token.column,
                            format!("too many values in the list (the limit is {MAX_LIST_VALUES})"),
                        ));
                    }
                    values.push(check_value(field, text, false, token.column)?);
                    self.bump();
                }
                Tok::RParen if values.is_empty() => {
                    return Err(SegmentError::new(
                        token.column,
                        "expected a value, found \")\" (a list needs at least one value)",
                    ));
                }
                other => {
                    return Err(SegmentError::new(
                        token.column,
                        format!("expected a value in the list, found {}", describe(other)),
                    ));
                }
            }
            let separator = self.peek_owned()?;
            match separator.tok {
                Tok::Comma => self.bump(),
                Tok::RParen => {
                    self.bump();
                    return Ok(values);
                }
                Tok::Eof => {
                    return Err(SegmentError::new(
                        separator.column,
                        format!(
                            "expected \")\" to close the list opened at column {}, found \
                             end of input",
                            open.column
                        ),
                    ));
                }
                ref other => {
                    return Err(SegmentError::new(
                        separator.column,
                        format!(
                            "expected \",\" or \")\" in the list, found {}",
                            describe(other)
                        ),
                    ));
                }
            }
        }
    }

    fn expect_end(&self) -> Result<(), SegmentError> {
        let token = self.peek()?;
        match &token.tok {
            Tok::Eof => Ok(()),
            Tok::RParen => Err(SegmentError::new(
                token.column,
                "unexpected \")\" (there is no matching \"(\")",
            )),
            other => Err(SegmentError::new(
                token.column,
                format!(
                    "expected \"and\", \"or\" or end of input, found {}",
                    describe(other)
                ),
            )),
        }
    }
}

// ---------------------------------------------------------------------------
// Fields, operators and values

fn resolve_field(word: &str, column: usize) -> Result<Field, SegmentError> {
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

fn attribute_field(key: &str, column: usize) -> Result<Field, SegmentError> {
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

fn unknown_field(word: &str, column: usize) -> SegmentError {
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

fn check_operator(
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
fn check_value(
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

/// Validates a `YYYY-MM-DD` date or an RFC 3339 date-time and returns it as
/// UTC text `YYYY-MM-DD HH:MM:SS` (fractional seconds truncated). A
/// date-time without an offset is taken to be UTC.
fn normalise_created(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        digits
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| digits.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let year = number(0..4)?;
    let month = number(5..7)?;
    let day = number(8..10)?;
    if b[4] != b'-' || b[7] != b'-' || !(1..=12).contains(&month) {
        return None;
    }
    if day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if b.len() == 10 {
        return Some(format!("{year:04}-{month:02}-{day:02} 00:00:00"));
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.get(13) != Some(&b':') {
        return None;
    }
    let hour = number(11..13)?;
    let minute = number(14..16)?;
    let second = number(17..19)?;
    if b[16] != b':' || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut rest = &b[19..];
    if let Some((b'.', fraction)) = rest.split_first() {
        let digits = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest {
        [] | [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let all_digits = [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit());
            let hours = i64::from(*h1) * 10 + i64::from(*h2) - 11 * i64::from(b'0');
            let minutes = i64::from(*m1) * 10 + i64::from(*m2) - 11 * i64::from(b'0');
            if !all_digits || hours > 23 || minutes > 59 {
                return None;
            }
            let total = hours * 60 + minutes;
            if *sign == b'-' {
                -total
            } else {
                total
            }
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_minutes * 60;
    let (y, m, d) = civil_from_days(seconds.div_euclid(86_400));
    let time = seconds.rem_euclid(86_400);
    (0..=9999).contains(&y).then(|| {
        format!(
            "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
            time / 3600,
            time / 60 % 60,
            time % 60
        )
    })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 in the proleptic Gregorian calendar (after Howard
/// Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &str) -> Expr {
        match Segment::parse(input) {
            Ok(segment) => segment.expr().clone(),
            Err(error) => panic!("{input:?} failed: {error}\n{}", error.render(input)),
        }
    }

    fn text(value: &str) -> Value {
        Value::Text(value.to_owned())
    }

    fn cmp(field: Field, op: CmpOp, value: Value) -> Expr {
        Expr::Cmp { field, op, value }
    }

    fn and(left: Expr, right: Expr) -> Expr {
        Expr::And(Box::new(left), Box::new(right))
    }

    fn or(left: Expr, right: Expr) -> Expr {
        Expr::Or(Box::new(left), Box::new(right))
    }

    fn not(inner: Expr) -> Expr {
        Expr::Not(Box::new(inner))
    }

    #[test]
    fn every_example_from_the_brief_parses_to_the_expected_tree() {
        let cases = [
            (
                "kind = embassy and region = \"Europe\"",
                and(
                    cmp(Field::Kind, CmpOp::Eq, text("embassy")),
                    cmp(Field::Region, CmpOp::Eq, text("Europe")),
                ),
            ),
            (
                "tag = sister-cities or country in (FR, DE)",
                or(
                    cmp(Field::Tag, CmpOp::Eq, text("sister-cities")),
                    Expr::In {
                        field: Field::Country,
                        values: vec![text("FR"), text("DE")],
                        negated: false,
                    },
                ),
            ),
            (
                "attr.language = \"fr\"",
                cmp(Field::Attr("language".into()), CmpOp::Eq, text("fr")),
            ),
            (
                "not (status = unsubscribed) and name ~ \"yamada\"",
                and(
                    not(cmp(Field::Status, CmpOp::Eq, text("unsubscribed"))),
                    cmp(Field::Name, CmpOp::Contains, text("yamada")),
                ),
            ),
            (
                "since >= 1990 and relationship = sister",
                and(
                    cmp(Field::Since, CmpOp::Ge, Value::Int(1990)),
                    cmp(Field::Relationship, CmpOp::Eq, text("sister")),
                ),
            ),
            (
                "country not in (US, \"GB\")",
                Expr::In {
                    field: Field::Country,
                    values: vec![text("US"), text("GB")],
                    negated: true,
                },
            ),
            ("tag != press", cmp(Field::Tag, CmpOp::Ne, text("press"))),
            (
                "title is empty",
                Expr::Empty {
                    field: Field::Title,
                    negated: false,
                },
            ),
            (
                "organisation is not empty",
                Expr::Empty {
                    field: Field::Organisation,
                    negated: true,
                },
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(parse(input), expected, "{input}");
        }
    }

    #[test]
    fn every_field_name_and_alias_is_recognised_case_insensitively() {
        let cases = [
            ("email", Field::Email),
            ("NAME", Field::Name),
            ("Title", Field::Title),
            ("language", Field::Language),
            ("organisation", Field::Organisation),
            ("Organization", Field::Organisation),
            ("org", Field::Organisation),
            ("country", Field::Country),
            ("region", Field::Region),
            ("city", Field::City),
            ("timezone", Field::TimeZone),
            ("TZ", Field::TimeZone),
            ("tag", Field::Tag),
            ("ATTR.Lang_1-x", Field::Attr("Lang_1-x".into())),
        ];
        for (name, field) in cases {
            let expected = Expr::Empty {
                field,
                negated: false,
            };
            assert_eq!(parse(&format!("{name} IS EMPTY")), expected, "{name}");
        }
    }

    #[test]
    fn keywords_are_case_insensitive() {
        assert_eq!(
            parse("NOT Kind = City AND Tag IN (a) Or Title Is Not Empty"),
            parse("not kind = city and tag in (a) or title is not empty")
        );
        assert_eq!(
            parse("country NOT IN (fr)"),
            Expr::In {
                field: Field::Country,
                values: vec![text("FR")],
                negated: true
            }
        );
    }

    #[test]
    fn not_binds_tighter_than_and_which_binds_tighter_than_or() {
        assert_eq!(
            parse("not kind = city and tag = x or region = y"),
            or(
                and(
                    not(cmp(Field::Kind, CmpOp::Eq, text("city"))),
                    cmp(Field::Tag, CmpOp::Eq, text("x")),
                ),
                cmp(Field::Region, CmpOp::Eq, text("y")),
            )
        );
        assert_eq!(
            parse("tag = a or tag = b and tag = c"),
            or(
                cmp(Field::Tag, CmpOp::Eq, text("a")),
                and(
                    cmp(Field::Tag, CmpOp::Eq, text("b")),
                    cmp(Field::Tag, CmpOp::Eq, text("c")),
                ),
            )
        );
    }

    #[test]
    fn and_and_or_associate_to_the_left_and_parentheses_override_precedence() {
        assert_eq!(
            parse("tag = a and tag = b and tag = c"),
            and(
                and(
                    cmp(Field::Tag, CmpOp::Eq, text("a")),
                    cmp(Field::Tag, CmpOp::Eq, text("b")),
                ),
                cmp(Field::Tag, CmpOp::Eq, text("c")),
            )
        );
        assert_eq!(
            parse("(tag = a or tag = b) and not not tag = c"),
            and(
                or(
                    cmp(Field::Tag, CmpOp::Eq, text("a")),
                    cmp(Field::Tag, CmpOp::Eq, text("b")),
                ),
                not(not(cmp(Field::Tag, CmpOp::Eq, text("c")))),
            )
        );
    }

    #[test]
    fn every_comparison_operator_is_recognised_with_or_without_spaces() {
        let cases = [
            ("name=x", CmpOp::Eq),
            ("name!=x", CmpOp::Ne),
            ("name~x", CmpOp::Contains),
            ("name!~x", CmpOp::NotContains),
        ];
        for (input, op) in cases {
            assert_eq!(parse(input), cmp(Field::Name, op, text("x")), "{input}");
        }
        let cases = [
            ("since<1990", CmpOp::Lt),
            ("since<=1990", CmpOp::Le),
            ("since>1990", CmpOp::Gt),
            ("since>=1990", CmpOp::Ge),
            ("since = 1990", CmpOp::Eq),
            ("since != 1990", CmpOp::Ne),
        ];
        for (input, op) in cases {
            assert_eq!(
                parse(input),
                cmp(Field::Since, op, Value::Int(1990)),
                "{input}"
            );
        }
    }

    #[test]
    fn quoted_strings_support_escaped_quotes_and_backslashes() {
        assert_eq!(
            parse(r#"name = "say \"hi\" \\ bye""#),
            cmp(Field::Name, CmpOp::Eq, text(r#"say "hi" \ bye"#))
        );
        assert_eq!(
            parse(r#"title = """#),
            cmp(Field::Title, CmpOp::Eq, text(""))
        );
        assert_eq!(
            parse("city = \"São Paulo (SP), 日本\""),
            cmp(Field::City, CmpOp::Eq, text("São Paulo (SP), 日本"))
        );
    }

    #[test]
    fn bare_words_cover_hyphens_dots_plus_signs_and_email_addresses() {
        assert_eq!(
            parse("email = anna+news@example.org"),
            cmp(Field::Email, CmpOp::Eq, text("anna+news@example.org"))
        );
        assert_eq!(
            parse("tz = Europe_Paris.v2-x"),
            cmp(Field::TimeZone, CmpOp::Eq, text("Europe_Paris.v2-x"))
        );
        assert_eq!(
            parse("title = 007"),
            cmp(Field::Title, CmpOp::Eq, text("007"))
        );
    }

    #[test]
    fn keywords_can_be_used_as_values_when_quoted() {
        assert_eq!(
            parse("name = \"and\""),
            cmp(Field::Name, CmpOp::Eq, text("and"))
        );
        assert_eq!(
            parse("name = empty"),
            cmp(Field::Name, CmpOp::Eq, text("empty"))
        );
    }

    #[test]
    fn country_values_are_upper_cased_and_vocabulary_values_lower_cased() {
        assert_eq!(
            parse("country = fr"),
            cmp(Field::Country, CmpOp::Eq, text("FR"))
        );
        assert_eq!(
            parse("kind in (EMBASSY, \"Representative_Office\")"),
            Expr::In {
                field: Field::Kind,
                values: vec![text("embassy"), text("representative_office")],
                negated: false
            }
        );
        assert_eq!(
            parse("status != Bounced"),
            cmp(Field::Status, CmpOp::Ne, text("bounced"))
        );
        assert_eq!(
            parse("relationship = Partner"),
            cmp(Field::Relationship, CmpOp::Eq, text("partner"))
        );
    }

    #[test]
    fn contains_on_vocabulary_fields_takes_free_text() {
        assert_eq!(
            parse("kind ~ Emb"),
            cmp(Field::Kind, CmpOp::Contains, text("Emb"))
        );
    }

    #[test]
    fn since_takes_integer_years_including_quoted_and_signed_ones() {
        assert_eq!(
            parse("since in (1990, \"2001\", -5)"),
            Expr::In {
                field: Field::Since,
                values: vec![Value::Int(1990), Value::Int(2001), Value::Int(-5)],
                negated: false
            }
        );
        assert_eq!(
            parse("since is empty"),
            Expr::Empty {
                field: Field::Since,
                negated: false
            }
        );
    }

    #[test]
    fn created_accepts_dates_and_rfc3339_date_times_and_normalises_them_to_utc_text() {
        let cases = [
            ("2024-01-31", "2024-01-31 00:00:00"),
            ("2024-02-29", "2024-02-29 00:00:00"),
            ("\"2024-01-31T10:20:30Z\"", "2024-01-31 10:20:30"),
            ("\"2024-01-31t10:20:30.999999z\"", "2024-01-31 10:20:30"),
            ("\"2024-01-31 10:20:30\"", "2024-01-31 10:20:30"),
            ("\"2024-03-01T08:00:00+09:00\"", "2024-02-29 23:00:00"),
            ("\"2023-12-31T23:30:00-01:00\"", "2024-01-01 00:30:00"),
            ("\"2000-02-29T00:00:00.5+00:00\"", "2000-02-29 00:00:00"),
            ("\"0000-01-01T00:00:00Z\"", "0000-01-01 00:00:00"),
            ("\"9999-12-31T23:59:59Z\"", "9999-12-31 23:59:59"),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse(&format!("created >= {input}")),
                cmp(Field::Created, CmpOp::Ge, text(expected)),
                "{input}"
            );
        }
    }

    #[test]
    fn impossible_or_malformed_created_values_are_rejected() {
        let bad = [
            "2023-02-29",
            "1900-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-04-31",
            "2024-1-31",
            "\"2024-01-31T24:00:00Z\"",
            "\"2024-01-31T10:60:00Z\"",
            "\"2024-01-31T10:00:60Z\"",
            "\"2024-01-31T10:00:00.Z\"",
            "\"2024-01-31T10:00:00+2:00\"",
            "\"2024-01-31T10:00:00+24:00\"",
            "\"2024-01-31T10:00\"",
            "\"2024-01-31X10:00:00Z\"",
            "\"0000-01-01T00:00:00+01:00\"",
            "\"9999-12-31T23:00:00-01:00\"",
            "\"２０２４-01-31\"",
            "1990",
        ];
        for value in bad {
            let input = format!("created < {value}");
            let error = Segment::parse(&input).expect_err(&input);
            assert_eq!(error.column, 11, "{input}");
            assert!(error.message.contains("is not a valid date"), "{error}");
        }
    }

    #[test]
    fn attribute_keys_keep_their_case() {
        assert_eq!(
            parse("Attr.Preferred-Name_2 ~ Ann"),
            cmp(
                Field::Attr("Preferred-Name_2".into()),
                CmpOp::Contains,
                text("Ann")
            )
        );
    }

    #[test]
    fn bad_inputs_report_the_expected_column_and_message() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "kind embassy",
                6,
                "expected an operator (=, !=, ~, !~, <, <=, >, >=, in, not in, is) after field \"kind\"",
            ),
            (
                "tag = a and kind",
                17,
                "expected an operator (=, !=, ~, !~, <, <=, >, >=, in, not in, is) after field \"kind\"",
            ),
            (
                "knd = embassy",
                1,
                "unknown field \"knd\" (did you mean \"kind\"?)",
            ),
            ("atr.language = fr", 1, "(did you mean \"attr.language\"?)"),
            (
                "foobar = 1",
                1,
                "unknown field \"foobar\" (fields are: email, name,",
            ),
            ("name ~ \"yamada and kind = city", 8, "unterminated string"),
            ("region = Europe \"abc", 17, "unterminated string"),
            ("kind = embassy and ()", 21, "unexpected \")\""),
            (
                "tag = x)",
                8,
                "unexpected \")\" (there is no matching \"(\")",
            ),
            (
                "kind != spaceship",
                9,
                "\"spaceship\" is not a kind (expected one of: city, embassy, representative_office, international_org, other)",
            ),
            ("status in (active, gone)", 20, "\"gone\" is not a status"),
            (
                "relationship = enemy",
                16,
                "\"enemy\" is not a relationship",
            ),
            ("", 1, "empty segment"),
            ("   \t ", 1, "empty segment"),
            (
                "region < Europe",
                8,
                "operator \"<\" only works with since and created",
            ),
            (
                "name >= x",
                6,
                "operator \">=\" only works with since and created",
            ),
            ("since ~ 19", 7, "operator \"~\" does not work with since"),
            ("since = abc", 9, "\"abc\" is not a year"),
            (
                "created = 2024-01-01",
                9,
                "operator \"=\" does not work with created",
            ),
            (
                "created in (2024-01-01)",
                9,
                "operator \"in\" does not work with created",
            ),
            (
                "created is empty",
                9,
                "operator \"is empty\" does not work with created",
            ),
            (
                "created > 2024-02-30",
                11,
                "\"2024-02-30\" is not a valid date",
            ),
            (
                "created > 2024-01-31T10:00:00Z",
                11,
                "\"2024-01-31T10\" is not a valid date (expected YYYY-MM-DD, or an RFC 3339 date-time in quotes",
            ),
            (
                "name = a:b",
                9,
                "unexpected character \":\" (put values containing spaces",
            ),
            ("attr.a'b = 1", 7, "unexpected character \"'\""),
            ("attr.x\"y = 1", 7, "unterminated string"),
            (
                "attr.a.b = 1",
                7,
                "invalid character \".\" in attribute key",
            ),
            (
                "attr.a@b = 1",
                7,
                "invalid character \"@\" in attribute key",
            ),
            ("attr. = 1", 6, "missing attribute key"),
            ("attr = 1", 1, "\"attr\" needs a key"),
            ("country in FR", 12, "expected \"(\" after \"in\""),
            ("country in ()", 13, "a list needs at least one value"),
            (
                "country in (FR DE)",
                16,
                "expected \",\" or \")\" in the list, found \"DE\"",
            ),
            (
                "country in (FR,",
                16,
                "expected a value in the list, found end of input",
            ),
            (
                "country in (FR, )",
                17,
                "expected a value in the list, found \")\"",
            ),
            (
                "country in (FR",
                15,
                "expected \")\" to close the list opened at column 12",
            ),
            (
                "(kind = city",
                13,
                "expected \")\" to close the \"(\" at column 1",
            ),
            (
                "(kind = city tag = x)",
                14,
                "expected \"and\", \"or\" or \")\", found \"tag\"",
            ),
            (
                "kind = city and",
                16,
                "expected a condition, found end of input",
            ),
            (
                "kind = city and or",
                17,
                "expected a condition, found \"or\"",
            ),
            (
                "kind = city region = x",
                13,
                "expected \"and\", \"or\" or end of input, found \"region\"",
            ),
            (
                "kind = ",
                8,
                "expected a value after \"=\", found end of input",
            ),
            (
                "kind = = city",
                8,
                "expected a value after \"=\", found \"=\"",
            ),
            ("country = (FR, DE)", 11, "write country in (a, b)"),
            ("name = and tag = x", 8, "found the keyword \"and\""),
            ("title is nothing", 10, "expected \"empty\" after \"is\""),
            (
                "title is not nothing",
                14,
                "expected \"empty\" after \"is not\"",
            ),
            ("title not = x", 11, "expected \"in\" after \"title not\""),
            ("name ! x", 6, "did you mean \"!=\" or \"!~\"?"),
            ("name = \"a\\nb\"", 10, "unknown escape \"\\n\""),
            ("name = Müller", 9, "unexpected character \"ü\""),
            (
                "\"kind\" = city",
                1,
                "expected a field name such as kind or country",
            ),
            ("= city", 1, "expected a field name"),
            ("name = \"日本\" and knd = x", 17, "unknown field \"knd\""),
            ("name = x\u{0}", 9, "unexpected character U+0000"),
        ];
        for &(input, column, fragment) in cases {
            let error = match Segment::parse(input) {
                Ok(segment) => panic!("{input:?} parsed: {:?}", segment.expr()),
                Err(error) => error,
            };
            assert!(
                error.column == column && error.message.contains(fragment),
                "{input:?}: got {error}, expected column {column} containing {fragment:?}\n{}",
                error.render(input)
            );
        }
    }

    #[test]
    fn error_display_starts_with_the_column() {
        let error = Segment::parse("knd = embassy").unwrap_err();
        assert_eq!(
            error.to_string(),
            "column 1: unknown field \"knd\" (did you mean \"kind\"?)"
        );
    }

    #[test]
    fn render_puts_a_caret_under_the_error_column() {
        let source = "kind != spaceship";
        let error = Segment::parse(source).unwrap_err();
        assert_eq!(error.render(source), "kind != spaceship\n        ^");
        let source = "name = \"日本\"\tand knd = x";
        let error = Segment::parse(source).unwrap_err();
        assert_eq!(
            error.render(source),
            "name = \"日本\" and knd = x\n                ^"
        );
    }

    #[test]
    fn unknown_fields_far_from_any_name_get_no_suggestion() {
        let error = Segment::parse("xx = 1").unwrap_err();
        assert!(!error.message.contains("did you mean"), "{error}");
        let error = Segment::parse("tg = 1").unwrap_err();
        assert!(error.message.contains("did you mean \"tag\"?"), "{error}");
    }

    #[test]
    fn the_earliest_error_wins_over_a_later_lexical_error() {
        let error = Segment::parse("knd = x and name = 'y'").unwrap_err();
        assert_eq!(error.column, 1, "{error}");
    }

    #[test]
    fn input_at_the_length_limit_parses_and_one_character_more_is_rejected() {
        let at_limit = format!("name = \"{}\"", "a".repeat(MAX_INPUT_CHARS - 9));
        assert_eq!(at_limit.chars().count(), MAX_INPUT_CHARS);
        assert!(Segment::parse(&at_limit).is_ok());
        let too_long = format!("name = \"{}\"", "é".repeat(MAX_INPUT_CHARS - 8));
        let error = Segment::parse(&too_long).unwrap_err();
        assert_eq!(error.column, MAX_INPUT_CHARS + 1);
        assert!(
            error.message.contains("too long (4097 characters"),
            "{error}"
        );
    }

    #[test]
    fn nesting_up_to_the_depth_limit_parses_and_one_level_more_is_rejected() {
        let nested =
            |depth: usize| format!("{}kind = city{}", "(".repeat(depth), ")".repeat(depth));
        assert!(Segment::parse(&nested(MAX_DEPTH)).is_ok());
        let error = Segment::parse(&nested(MAX_DEPTH + 1)).unwrap_err();
        assert_eq!(error.column, MAX_DEPTH + 1);
        assert!(error.message.contains("nested too deeply"), "{error}");
        let mixed = format!("{}kind = city{}", "not (".repeat(16), ")".repeat(16));
        assert!(Segment::parse(&mixed).is_ok());
        let mixed = format!("{}kind = city{}", "not (".repeat(17), ")".repeat(17));
        assert!(Segment::parse(&mixed).is_err());
    }

    #[test]
    fn ten_thousand_nested_parentheses_are_an_error_not_a_stack_overflow() {
        let input = format!("{}kind = city{}", "(".repeat(10_000), ")".repeat(10_000));
        // Over the length limit: rejected before parsing.
        assert_eq!(
            Segment::parse(&input).unwrap_err().column,
            MAX_INPUT_CHARS + 1
        );
        // Within the length limit: rejected by the depth limit.
        let input = "(".repeat(MAX_INPUT_CHARS);
        let error = Segment::parse(&input).unwrap_err();
        assert_eq!(error.column, MAX_DEPTH + 1);
        let input = "not ".repeat(1000);
        let error = Segment::parse(&input).unwrap_err();
        assert_eq!(error.column, MAX_DEPTH * 4 + 1);
        assert!(error.message.contains("nested too deeply"), "{error}");
    }

    #[test]
    fn in_lists_accept_a_thousand_values_and_reject_the_next_one() {
        let list = |count: usize| {
            let values: Vec<String> = (0..count).map(|i| i.to_string()).collect();
            format!("tag in ({})", values.join(","))
        };
        match Segment::parse(&list(MAX_LIST_VALUES)).unwrap().expr() {
            Expr::In { values, .. } => assert_eq!(values.len(), MAX_LIST_VALUES),
            other => panic!("unexpected {other:?}"),
        }
        let input = list(MAX_LIST_VALUES + 1);
        let error = Segment::parse(&input).unwrap_err();
        assert_eq!(error.column, input.find("1000").unwrap() + 1);
        assert!(error.message.contains("too many values"), "{error}");
    }

    #[test]
    fn from_str_agrees_with_parse_and_the_source_is_kept_verbatim() {
        let input = "  Kind = Embassy  ";
        let segment: Segment = input.parse().unwrap();
        assert_eq!(segment, Segment::parse(input).unwrap());
        assert_eq!(segment.source(), input);
        assert_eq!(segment.to_string(), input);
    }

    #[test]
    fn canonical_display_prints_only_the_parentheses_the_tree_needs() {
        let cases = [
            ("KIND = Embassy", "kind = \"embassy\""),
            (
                "(tag = a or tag = b) and not (tag = c and since > 1)",
                "(tag = \"a\" or tag = \"b\") and not (tag = \"c\" and since > 1)",
            ),
            (
                "tag = a or (tag = b or tag = c)",
                "tag = \"a\" or (tag = \"b\" or tag = \"c\")",
            ),
            ("((tag = a))", "tag = \"a\""),
            (
                "org not in (x, \"y\\\"z\") and tz is not empty",
                "organisation not in (\"x\", \"y\\\"z\") and timezone is not empty",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(parse(input).to_string(), expected, "{input}");
        }
    }

    /// A small deterministic generator, so the property tests need no crates.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 33
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<T: Clone>(&mut self, items: &[T]) -> T {
            items[self.below(items.len())].clone()
        }

        fn text(&mut self, alphabet: &[char]) -> String {
            (0..self.below(8)).map(|_| self.pick(alphabet)).collect()
        }
    }

    const ANY_CHARS: &[char] = &[
        'a', 'Z', '0', ' ', '"', '\\', '%', '_', '\'', ';', '-', 'é', '日', '(', ')', '$',
    ];
    const COUNTRY_CHARS: &[char] = &['F', 'R', 'D', 'E', '1', ' ', '"', '\\', '%', '_', '日'];

    fn random_value(rng: &mut Rng, field: &Field, pattern: bool) -> Value {
        match field {
            Field::Since => Value::Int(rng.pick(&[1990, -5, 0, i64::MAX, i64::MIN, 2024])),
            Field::Created => Value::Text(format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                rng.below(10_000),
                rng.below(12) + 1,
                rng.below(28) + 1,
                rng.below(24),
                rng.below(60),
                rng.below(60)
            )),
            Field::Kind if !pattern => Value::Text(rng.pick(KINDS).to_owned()),
            Field::Status if !pattern => Value::Text(rng.pick(STATUSES).to_owned()),
            Field::Relationship if !pattern => Value::Text(rng.pick(RELATIONSHIPS).to_owned()),
            Field::Country => Value::Text(rng.text(COUNTRY_CHARS)),
            _ => Value::Text(rng.text(ANY_CHARS)),
        }
    }

    fn random_condition(rng: &mut Rng) -> Expr {
        let fields = [
            Field::Email,
            Field::Name,
            Field::Title,
            Field::Status,
            Field::Language,
            Field::Organisation,
            Field::Kind,
            Field::Country,
            Field::Region,
            Field::City,
            Field::TimeZone,
            Field::Relationship,
            Field::Since,
            Field::Tag,
            Field::Created,
            Field::Attr(rng.pick(&["language", "x-y", "A_1"]).to_owned()),
        ];
        let field = rng.pick(&fields);
        let ops: &[CmpOp] = match field {
            Field::Created => &[CmpOp::Lt, CmpOp::Le, CmpOp::Gt, CmpOp::Ge],
            Field::Since => &[
                CmpOp::Eq,
                CmpOp::Ne,
                CmpOp::Lt,
                CmpOp::Le,
                CmpOp::Gt,
                CmpOp::Ge,
            ],
            _ => &[CmpOp::Eq, CmpOp::Ne, CmpOp::Contains, CmpOp::NotContains],
        };
        let shape = if field == Field::Created {
            0
        } else {
            rng.below(3)
        };
        match shape {
            0 => {
                let op = rng.pick(ops);
                let value = random_value(rng, &field, op.class() == OpClass::Pattern);
                Expr::Cmp { field, op, value }
            }
            1 => Expr::In {
                values: (0..=rng.below(3))
                    .map(|_| random_value(rng, &field, false))
                    .collect(),
                negated: rng.below(2) == 0,
                field,
            },
            _ => Expr::Empty {
                field,
                negated: rng.below(2) == 0,
            },
        }
    }

    fn random_expr(rng: &mut Rng, depth: usize) -> Expr {
        if depth == 0 || rng.below(3) == 0 {
            return random_condition(rng);
        }
        match rng.below(3) {
            0 => and(random_expr(rng, depth - 1), random_expr(rng, depth - 1)),
            1 => or(random_expr(rng, depth - 1), random_expr(rng, depth - 1)),
            _ => not(random_expr(rng, depth - 1)),
        }
    }

    #[test]
    fn printing_a_generated_tree_and_parsing_it_back_gives_the_same_tree() {
        let mut rng = Rng(42);
        for _ in 0..500 {
            let expr = random_expr(&mut rng, 5);
            let printed = expr.to_string();
            assert_eq!(parse(&printed), expr, "{printed}");
        }
    }

    #[test]
    fn random_token_soup_and_mutated_segments_never_panic_and_errors_point_inside_the_input() {
        let fragments = [
            "kind",
            "=",
            "embassy",
            "and",
            "or",
            "not",
            "(",
            ")",
            "in",
            "is",
            "empty",
            ",",
            "\"",
            "\"x y\"",
            "~",
            "!~",
            "!",
            "<=",
            ">",
            "since",
            "1990",
            "created",
            "2024-01-31",
            "attr.",
            "attr.lang",
            "'",
            ";",
            "country",
            "FR",
            "\\",
            "日本",
            "tag",
            "\t",
            "\n",
            "x",
        ];
        let noise = ['(', ')', '"', '\\', ' ', 'a', '=', ',', '~', '!', '.', '日'];
        let mut rng = Rng(7);
        let mut parsed = 0;
        for round in 0..3000 {
            let input: String = if round % 2 == 0 {
                (0..rng.below(12))
                    .map(|_| {
                        let separator = if rng.below(3) == 0 { "" } else { " " };
                        format!("{}{separator}", rng.pick(&fragments))
                    })
                    .collect()
            } else {
                let mut chars: Vec<char> = random_expr(&mut rng, 3).to_string().chars().collect();
                for _ in 0..rng.below(3) {
                    let at = rng.below(chars.len() + 1);
                    match rng.below(3) {
                        0 if at < chars.len() => {
                            chars.remove(at);
                        }
                        1 if at < chars.len() => chars[at] = rng.pick(&noise),
                        _ => chars.insert(at, rng.pick(&noise)),
                    }
                }
                chars.into_iter().collect()
            };
            match Segment::parse(&input) {
                Ok(segment) => {
                    parsed += 1;
                    let printed = segment.expr().to_string();
                    assert_eq!(&parse(&printed), segment.expr(), "{input:?}");
                }
                Err(error) => {
                    let length = input.chars().count();
                    assert!(
                        (1..=length + 1).contains(&error.column),
                        "{input:?}: {error}"
                    );
                    assert!(error.render(&input).contains('^'));
                }
            }
        }
        assert!(parsed > 300, "only {parsed} generated inputs parsed");
    }

    #[test]
    fn calendar_conversions_round_trip_across_four_centuries() {
        for days in (-719_528..2_932_897).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            assert!((1..=days_in_month(y, m)).contains(&d));
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }
}
