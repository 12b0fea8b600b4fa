//! The lexer: characters to tokens, each with its 1-based column.

use super::ast::{CmpOp, Value};
use super::SegmentError;

#[derive(Debug, Clone)]
pub(super) enum Tok {
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
pub(super) struct Token {
    pub(super) tok: Tok,
    pub(super) column: usize,
}

/// Letters and digits of any script (José, 大使館, Zürich), the
/// combining marks that follow them in decomposed text, and `_ . @ + -`.
pub(super) fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '@' | '+' | '-') || is_combining_mark(c)
}

/// The blocks of combining marks (a decomposed "é" is "e" and U+0301).
fn is_combining_mark(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{3099}'..='\u{309A}'
        | '\u{FE20}'..='\u{FE2F}')
}

pub(super) fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-')
}

/// Splits the input into tokens. The list always ends with `Eof` or with an
/// `Error`, so a lexical error is reported only if the parser gets that far
/// (the earliest error wins).
pub(super) fn lex(input: &str) -> Vec<Token> {
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
pub(super) fn lex_string(chars: &[char], start: usize) -> Result<(String, usize), SegmentError> {
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

pub(super) fn describe_char(c: char) -> String {
    if c.is_control() {
        format!("U+{:04X}", u32::from(c))
    } else {
        format!("\"{c}\"")
    }
}

/// Shortens long user text quoted inside error messages.
pub(super) fn shorten(text: &str) -> String {
    if text.chars().count() > 40 {
        let head: String = text.chars().take(37).collect();
        format!("{head}...")
    } else {
        text.to_owned()
    }
}

pub(super) fn describe(tok: &Tok) -> String {
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

pub(super) fn is_keyword(word: &str, keyword: &str) -> bool {
    word.eq_ignore_ascii_case(keyword)
}
