//! Segment errors: a message with the 1-based column it refers to, and the
//! one display every command uses (the reason and the column, then the
//! text with a caret under the column).

use unicode_width::UnicodeWidthChar;

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
    pub(super) fn new(column: usize, message: impl Into<String>) -> Self {
        SegmentError {
            column,
            message: message.into(),
        }
    }

    /// A two-line caret display: the source, then spaces and '^' under the
    /// column.
    ///
    /// The caret is placed by display width, so it stays under the right
    /// character after wide characters (日本 takes four columns on a
    /// terminal) and combining marks (none). Control characters (tabs,
    /// newlines) are shown as spaces.
    pub fn render(&self, source: &str) -> String {
        let shown: Vec<char> = source
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let before: usize = shown
            .iter()
            .take(self.column.saturating_sub(1))
            .map(|c| c.width().unwrap_or(0))
            .sum();
        // Past the end (an error at end of input): one column per missing
        // character.
        let past = self.column.saturating_sub(1).saturating_sub(shown.len());
        let line: String = shown.into_iter().collect();
        format!("{line}\n{}^", " ".repeat(before + past))
    }

    /// The error together with the text it refers to, for people.
    pub fn with_text(self, text: &str) -> InvalidSegment {
        InvalidSegment {
            error: self,
            text: text.to_owned(),
        }
    }
}

/// A segment error with its text: displays as `invalid segment: column C:
/// reason`, then the text and a caret under the column. Every command that
/// takes a segment reports errors this way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid segment: {error}\n{}", error.render(text))]
pub struct InvalidSegment {
    pub error: SegmentError,
    pub text: String,
}
