//! Merge tags in an issue's text: `{{ recipient.name }}` in a subject,
//! preheader, heading, body, image alt text or button label.
//!
//! The language is deliberately tiny, so that issue text can never run
//! template code:
//!
//! ```text
//! tag     = "{{" value [ "or" string ] "}}"
//!         | "{{" string "}}"             (literal text, e.g. {{ "{{" }})
//! value   = one of the names in [`Field::ALL`]
//! string  = "…" or '…'                   (\" \' \\ escape)
//! ```
//!
//! `{{ recipient.name or "colleague" }}` prints "colleague" when the name is
//! empty. There are no statements (`{% … %}`), filters, calls or
//! arithmetic: anything else between braces is an error with its place, so
//! no braces ever reach a recipient. Values are filled per recipient into
//! slots of the compiled issue (see [`super::compiled`]) and escaped in
//! HTML like every personal value. Public copies (the archive, the
//! view-in-browser page) show [`Field::neutral`] values instead, never
//! someone's details.

use super::compiled::Slot;
use crate::domain::closest;

/// A recipient value issue text may print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Name,
    Title,
    Organisation,
    City,
    CountryName,
    Salutation,
    Greeting,
    Unsubscribe,
    Preferences,
    Browser,
}

impl Field {
    /// Every value, by the name issue text uses.
    pub const ALL: [(&'static str, Field); 10] = [
        ("recipient.name", Field::Name),
        ("recipient.title", Field::Title),
        ("recipient.organisation", Field::Organisation),
        ("recipient.city", Field::City),
        ("recipient.country_name", Field::CountryName),
        ("recipient.salutation", Field::Salutation),
        ("greeting", Field::Greeting),
        ("links.unsubscribe", Field::Unsubscribe),
        ("links.preferences", Field::Preferences),
        ("links.browser", Field::Browser),
    ];

    pub fn parse(name: &str) -> Option<Field> {
        Field::ALL.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }

    pub fn name(self) -> &'static str {
        Field::ALL
            .iter()
            .find(|(_, f)| *f == self)
            .map(|(n, _)| *n)
            .unwrap_or("")
    }

    /// The slot of the compiled issue that holds this value.
    pub fn slot(self) -> Slot {
        match self {
            Field::Name => Slot::Name,
            Field::Title => Slot::Title,
            Field::Organisation => Slot::Organisation,
            Field::City => Slot::City,
            Field::CountryName => Slot::CountryName,
            Field::Salutation => Slot::Salutation,
            Field::Greeting => Slot::Greeting,
            Field::Unsubscribe => Slot::Unsubscribe,
            Field::Preferences => Slot::Preferences,
            Field::Browser => Slot::Browser,
        }
    }

    /// What a public copy (the archive, the view in a browser) shows for a
    /// tag without a default: a neutral word, never a person's details.
    /// Links and the greeting are filled by the public copy itself.
    pub fn neutral(self) -> &'static str {
        match self {
            Field::Name => "colleague",
            Field::Title | Field::Salutation => "",
            Field::Organisation => "your organisation",
            Field::City => "your city",
            Field::CountryName => "your country",
            Field::Greeting | Field::Unsubscribe | Field::Preferences | Field::Browser => "",
        }
    }
}

/// A piece of parsed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a str),
    /// Text written as a literal tag (`{{ "{{" }}`).
    Literal(String),
    /// A value, with the default for an empty one.
    Tag {
        field: Field,
        default: Option<String>,
    },
}

/// A malformed or unknown tag: a byte range of the text and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagError {
    pub start: usize,
    pub end: usize,
    pub message: String,
}

/// Whether the text holds anything that looks like a template tag.
pub fn has_tags(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}

/// Splits text into plain runs and tags; every bad tag is reported.
pub fn parse(text: &str) -> Result<Vec<Piece<'_>>, Vec<TagError>> {
    let mut pieces = Vec::new();
    let mut errors = Vec::new();
    let mut plain_from = 0;
    let mut i = 0;
    let b = text.as_bytes();
    while i + 1 < b.len() {
        if b[i] != b'{' || !matches!(b[i + 1], b'{' | b'%') {
            i += 1;
            continue;
        }
        if i > plain_from {
            pieces.push(Piece::Text(&text[plain_from..i]));
        }
        if b[i + 1] == b'%' {
            let end = text[i..].find("%}").map(|e| i + e + 2).unwrap_or(i + 2);
            errors.push(TagError {
                start: i,
                end,
                message: "`{%` starts a template statement, which issue text may not use: \
                          only values such as `{{ recipient.name }}` (see docs/issue-format.md)"
                    .into(),
            });
            i = end;
        } else {
            match tag(text, i) {
                Ok((piece, end)) => {
                    pieces.push(piece);
                    i = end;
                }
                Err((e, resume)) => {
                    errors.push(e);
                    i = resume;
                }
            }
        }
        plain_from = i;
    }
    if plain_from < text.len() {
        pieces.push(Piece::Text(&text[plain_from..]));
    }
    if errors.is_empty() {
        Ok(pieces)
    } else {
        Err(errors)
    }
}

/// Parses the tag opening at `start`; returns it and the offset after it,
/// or the error and where to go on scanning.
fn tag(text: &str, start: usize) -> Result<(Piece<'_>, usize), (TagError, usize)> {
    let close = text[start + 2..].find("}}").map(|e| start + 2 + e);
    let Some(close) = close else {
        let line_end = text[start..]
            .find('\n')
            .map(|e| start + e)
            .unwrap_or(text.len());
        return Err((
            TagError {
                start,
                end: line_end,
                message: "a `{{` without its closing `}}` (to print braces, write `{{ \"{{\" }}`)"
                    .into(),
            },
            start + 2,
        ));
    };
    let mut lx = Lexer {
        text,
        at: start + 2,
        end: close,
    };
    let fail = |at: usize, end: usize, message: String| {
        (
            TagError {
                start: at,
                end,
                message,
            },
            close + 2,
        )
    };
    lx.skip_ws();
    if lx.at == close {
        return Err(fail(start, close + 2, "an empty `{{ }}`".into()));
    }
    // A string alone is literal text.
    if lx.peek().is_some_and(|c| c == '"' || c == '\'') {
        let lit_at = lx.at;
        let s = lx.string().map_err(|m| fail(lit_at, close + 2, m))?;
        lx.skip_ws();
        if lx.at != close {
            return Err(fail(lx.at, close + 2, lx.unexpected()));
        }
        return Ok((Piece::Literal(s), close + 2));
    }
    let name_at = lx.at;
    let name = lx.path();
    if name.is_empty() {
        return Err(fail(
            name_at,
            close + 2,
            format!(
                "expected a value such as `recipient.name`, found {}",
                lx.found()
            ),
        ));
    }
    let Some(field) = Field::parse(name) else {
        return Err(fail(name_at, name_at + name.len(), unknown(name)));
    };
    lx.skip_ws();
    let mut default = None;
    if lx.keyword("or") {
        lx.skip_ws();
        let def_at = lx.at;
        if !lx.peek().is_some_and(|c| c == '"' || c == '\'') {
            return Err(fail(
                def_at,
                close + 2,
                format!(
                    "the default after `or` must be in quotes, such as `{{{{ {name} or \"colleague\" }}}}`"
                ),
            ));
        }
        default = Some(lx.string().map_err(|m| fail(def_at, close + 2, m))?);
        lx.skip_ws();
    }
    if lx.at != close {
        let message = match lx.peek() {
            Some('|') => "filters (`|`) are not allowed in issue text; for a default, write \
                          `or \"…\"`"
                .to_string(),
            Some('(') => "calls are not allowed in issue text: only values".to_string(),
            _ => lx.unexpected(),
        };
        return Err(fail(lx.at, close + 2, message));
    }
    Ok((Piece::Tag { field, default }, close + 2))
}

fn unknown(name: &str) -> String {
    let names = Field::ALL.iter().map(|(n, _)| *n);
    let last = |n: &'static str| n.rsplit('.').next().unwrap_or(n);
    let suggestion = closest(name, names.clone()).or_else(|| {
        // `nmae` or `recipient.nmae` for `recipient.name`.
        let tail = name.rsplit('.').next().unwrap_or(name);
        Field::ALL
            .iter()
            .map(|(n, _)| *n)
            .find(|n| closest(tail, [last(n)]).is_some() || last(n) == tail)
    });
    let all = Field::ALL
        .iter()
        .map(|(n, _)| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match suggestion {
        Some(s) => format!("unknown value `{name}`: did you mean `{s}`?"),
        None => format!("unknown value `{name}`; issue text may use {all}"),
    }
}

struct Lexer<'a> {
    text: &'a str,
    at: usize,
    end: usize,
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<char> {
        self.text[self.at..self.end].chars().next()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += self.peek().map(char::len_utf8).unwrap_or(1);
        }
    }

    /// `ident(.ident)*`, possibly empty.
    fn path(&mut self) -> &'a str {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            self.at += 1;
        }
        &self.text[start..self.at]
    }

    fn keyword(&mut self, word: &str) -> bool {
        let rest = &self.text[self.at..self.end];
        let after = rest.get(word.len()..).and_then(|r| r.chars().next());
        if rest.starts_with(word)
            && after.map_or(true, |c| c.is_whitespace() || c == '"' || c == '\'')
        {
            self.at += word.len();
            true
        } else {
            false
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let quote = self.peek().unwrap_or('"');
        self.at += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(format!("this string has no closing {quote}"));
            };
            self.at += c.len_utf8();
            match c {
                '\\' => {
                    let Some(e) = self.peek() else {
                        return Err(format!("this string has no closing {quote}"));
                    };
                    self.at += e.len_utf8();
                    match e {
                        '"' | '\'' | '\\' => out.push(e),
                        other => return Err(format!("unknown escape `\\{other}` in a string")),
                    }
                }
                c if c == quote => return Ok(out),
                c => out.push(c),
            }
        }
    }

    fn found(&self) -> String {
        match self.peek() {
            Some(c) => format!("`{c}`"),
            None => "nothing".into(),
        }
    }

    fn unexpected(&self) -> String {
        format!("expected `}}}}`, found {}", self.found())
    }
}

/// The text with every tag replaced: `value(field, default)` gives what a
/// tag becomes. Text with bad tags is returned unchanged (they are reported
/// when the issue is parsed).
pub fn substitute(text: &str, mut value: impl FnMut(Field, Option<&str>) -> String) -> String {
    if !has_tags(text) {
        return text.to_string();
    }
    match parse(text) {
        Err(_) => text.to_string(),
        Ok(pieces) => {
            let mut out = String::with_capacity(text.len());
            for p in pieces {
                match p {
                    Piece::Text(t) => out.push_str(t),
                    Piece::Literal(l) => out.push_str(&l),
                    Piece::Tag { field, default } => {
                        out.push_str(&value(field, default.as_deref()))
                    }
                }
            }
            out
        }
    }
}

/// The text as a public copy shows it: defaults, else neutral words.
pub fn neutral(text: &str) -> String {
    substitute(text, |f, d| {
        d.filter(|d| !d.is_empty())
            .unwrap_or(f.neutral())
            .to_string()
    })
}

/// The text without its tags (for slugs and lengths).
pub fn strip(text: &str) -> String {
    substitute(text, |_, _| String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> TagError {
        parse(text).unwrap_err().remove(0)
    }

    #[test]
    fn values_and_defaults_are_parsed() {
        let p =
            parse("Dear {{ recipient.name or \"colleague\" }}, see {{links.browser}}.").unwrap();
        assert_eq!(
            p,
            vec![
                Piece::Text("Dear "),
                Piece::Tag {
                    field: Field::Name,
                    default: Some("colleague".into())
                },
                Piece::Text(", see "),
                Piece::Tag {
                    field: Field::Browser,
                    default: None
                },
                Piece::Text("."),
            ]
        );
    }

    #[test]
    fn a_misspelt_name_is_reported_where_it_stands_with_a_suggestion() {
        let text = "Hello {{ recipient.nmae }}!";
        let e = err(text);
        assert_eq!(&text[e.start..e.end], "recipient.nmae");
        assert!(e.message.contains("did you mean `recipient.name`"), "{e:?}");
        assert!(err("{{ nmae }}").message.contains("`recipient.name`"));
        assert!(err("{{ organisation }}")
            .message
            .contains("`recipient.organisation`"));
        assert!(err("{{ recipient.email }}")
            .message
            .contains("issue text may use"));
    }

    #[test]
    fn statements_filters_calls_and_stray_braces_are_errors() {
        assert!(err("{% if x %}a{% endif %}").message.contains("statement"));
        assert!(err("{{ recipient.name | upper }}")
            .message
            .contains("filters"));
        assert!(err("{{ recipient.name() }}").message.contains("calls"));
        assert!(err("{{ recipient.name or colleague }}")
            .message
            .contains("in quotes"));
        assert!(err("a {{ b").message.contains("without its closing"));
        assert!(err("{{ }}").message.contains("empty"));
        assert_eq!(parse("{% a %} {{ x }}").unwrap_err().len(), 2);
    }

    #[test]
    fn literal_braces_are_written_as_a_string_tag() {
        assert_eq!(
            substitute("{{ \"{{\" }} x }}", |_, _| unreachable!()),
            "{{ x }}"
        );
    }

    #[test]
    fn single_braces_are_plain_text() {
        assert_eq!(
            parse("a { b } c }}").unwrap(),
            vec![Piece::Text("a { b } c }}")]
        );
    }

    #[test]
    fn public_copies_show_defaults_or_neutral_words() {
        assert_eq!(
            neutral("Dear {{ recipient.name }}, of {{ recipient.city or \"Paris\" }}"),
            "Dear colleague, of Paris"
        );
        assert_eq!(strip("A {{ recipient.name }}"), "A ");
    }
}
