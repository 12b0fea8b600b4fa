//! Temporary stand-in for the segment language (being written separately).
#[derive(Debug, Clone)]
pub struct Segment(String);
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct SegmentError {
    pub column: usize,
    pub message: String,
}
impl SegmentError {
    pub fn render(&self, source: &str) -> String {
        source.to_string()
    }
}
impl Segment {
    pub fn parse(s: &str) -> Result<Segment, SegmentError> {
        Err(SegmentError {
            column: 1,
            message: format!("not yet {s}"),
        })
    }
}
