//! The service layer: what the CLI, the REST API and the admin pages do,
//! as functions that take an [`Actor`](crate::domain::Actor) and typed
//! input and return typed errors ([`AppError`]). The front ends parse their
//! input, call these, and render the result; none of them repeats a rule.
//!
//! - [`campaign_actions`]: create, change, schedule, start, pause, resume,
//!   cancel and retry campaigns; create, schedule and start pass the send
//!   gate ([`crate::send::gate`]).
//! - [`approval`]: request and give a campaign's two-person approval (an
//!   approval also passes the gate's preflight).
//! - [`accounts`]: users, sessions and API tokens.

pub mod accounts;
pub mod approval;
pub mod campaign_actions;
pub mod contacts;
mod error;
pub mod issues;
pub mod progress;
pub mod segments;
pub mod stats;
pub mod timeline;

pub use error::AppError;

use crate::domain::{Action, Actor};

/// Refuses (403) an action the permission table does not give the actor.
pub fn require(actor: &Actor, action: Action) -> Result<(), AppError> {
    if actor.may(action) {
        Ok(())
    } else {
        Err(AppError::Forbidden(format!(
            "{} may not {} ({action})",
            actor.label(),
            action.describe()
        )))
    }
}
