//! Errors that point at a place: a file, a 1-based line and a 1-based column.
//!
//! Every problem an editor can cause (broken front matter, a template syntax
//! error, an undefined variable, an unknown filter) becomes a [`SourceError`],
//! printed as `file:line:column: message` like a compiler's. Each carries the
//! name of the preflight rule it belongs to (`front-matter`, `merge-tag`,
//! `template`), so `issues check` files it under the right one.

use std::fmt;

use serde::Serialize;

/// A problem at a known place in an issue file or a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceError {
    /// The file (an issue path, or a template name such as `issue.html`).
    pub file: String,
    /// 1-based line; 0 when the place is unknown.
    pub line: usize,
    /// 1-based column in characters; 0 when unknown.
    pub column: usize,
    /// What is wrong, in words.
    pub message: String,
    /// The preflight rule: `front-matter` (the issue file's TOML),
    /// `merge-tag` (a tag in the text) or `template` (the templates
    /// and everything else).
    pub rule: &'static str,
}

impl SourceError {
    pub fn new(
        file: impl Into<String>,
        line: usize,
        column: usize,
        message: impl Into<String>,
    ) -> Self {
        SourceError {
            file: file.into(),
            line,
            column,
            message: message.into(),
            rule: "template",
        }
    }

    /// The same error filed under another preflight rule.
    pub fn rule(mut self, rule: &'static str) -> Self {
        self.rule = rule;
        self
    }

    /// Builds an error at a byte offset of `source`.
    pub fn at_offset(
        file: impl Into<String>,
        source: &str,
        offset: usize,
        message: impl Into<String>,
    ) -> Self {
        let (line, column) = line_col(source, offset);
        SourceError::new(file, line, column, message)
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (0, _) => write!(f, "{}: {}", self.file, self.message),
            (l, 0) => write!(f, "{}:{}: {}", self.file, l, self.message),
            (l, c) => write!(f, "{}:{}:{}: {}", self.file, l, c, self.message),
        }
    }
}

impl std::error::Error for SourceError {}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = source[line_start..offset].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_one_based_lines_and_columns() {
        let s = "ab\ncdé\nf";
        assert_eq!(line_col(s, 0), (1, 1));
        assert_eq!(line_col(s, 3), (2, 1));
        assert_eq!(line_col(s, 7), (2, 4));
        assert_eq!(line_col(s, 8), (3, 1));
    }

    #[test]
    fn errors_print_like_a_compiler() {
        let e = SourceError::new("issue.md", 4, 7, "expected `=`");
        assert_eq!(e.to_string(), "issue.md:4:7: expected `=`");
    }
}
