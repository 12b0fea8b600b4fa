//! The service layer: what the CLI, the REST API and the admin pages do,
//! as functions that take an [`Actor`](crate::domain::Actor) and typed
//! input and return typed errors ([`AppError`]). The front ends parse their
//! input, call these, and render the result; none of them repeats a rule.

pub mod accounts;
pub mod approval;
pub mod campaign_actions;
pub mod contacts;
mod error;
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
