//! The issues pages (to come, in this branch).

use axum::Router;

use super::{AdminShared, NavItem};

/// This module's entries in the main menu.
pub const NAV: &[NavItem] = &[];

/// This module's templates.
pub const TEMPLATES: &[(&str, &str)] = &[];

/// This module's routes (absolute paths under `/admin`).
pub fn routes() -> Router<AdminShared> {
    Router::new()
}
