//! The contacts pages (helper B fills this in).

use axum::Router;

use super::{AdminShared, NavItem};

/// This module's entries in the main menu.
pub const NAV: &[NavItem] = &[];

/// This module's templates: `("admin/NAME.html", include_str!("../../../templates/admin/NAME.html"))`.
pub const TEMPLATES: &[(&str, &str)] = &[];

/// This module's routes (absolute paths under `/admin`).
pub fn routes() -> Router<AdminShared> {
    Router::new()
}
