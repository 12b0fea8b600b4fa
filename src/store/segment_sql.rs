//! Temporary stand-in.
use crate::domain::segment::Segment;
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}
#[derive(Debug, Clone, PartialEq)]
pub enum SqlParam {
    Text(String),
    Int(i64),
}
pub struct SqlFilter {
    pub sql: String,
    pub params: Vec<SqlParam>,
}
pub fn compile(_s: &Segment, _d: Dialect, _f: usize) -> SqlFilter {
    SqlFilter {
        sql: "1 = 1".into(),
        params: vec![],
    }
}
