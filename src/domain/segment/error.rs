//! Segment errors: a message with the 1-based column it refers to, and its
//! display under the source with a caret.

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
