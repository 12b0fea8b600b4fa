//! The service layer: the rules of each action, in one place for every
//! front end.
//!
//! The CLI calls these functions today; the REST API and the web admin
//! call the same ones. Each takes an [`Actor`] and a typed input and
//! returns a typed error that says what went wrong in a way a front end
//! can map (not found, invalid input, a conflict with the current state,
//! a refusal by the send gate, or an internal failure). Front ends parse
//! their own input, call one function, and present the result: no rule
//! lives in a front end.
//!
//! - [`campaigns`]: create, schedule, start, pause, resume, cancel and
//!   retry campaigns, through the send gate.

pub mod campaigns;

use std::fmt;

/// Who is acting: recorded in histories and audit trails as
/// `cli:<unix user>`, a worker's id, or a front end's own name for a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(String);

impl Actor {
    /// The user running the command line: `cli:<unix user>`.
    pub fn cli() -> Actor {
        Actor(format!(
            "cli:{}",
            std::env::var("USER").unwrap_or_else(|_| "unknown".into())
        ))
    }

    /// An actor by the name its front end records.
    pub fn named(name: impl Into<String>) -> Actor {
        Actor(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a front end should answer an error (HTTP: 404, 422, 409, 422, 500).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// What the request names does not exist.
    NotFound,
    /// The input is wrong; the same request will always fail.
    Invalid,
    /// The current state does not allow it (someone else may have acted).
    Conflict,
    /// The send gate refused: the issue or its recipients must be fixed.
    Refused,
    /// Something failed on our side (the database, a file).
    Internal,
}
