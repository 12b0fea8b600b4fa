//! The bounces page: bounce, complaint and auto-reply events, newest
//! first, or the report (one row per address), filtered by kind, reason,
//! whether they were verified, and age. Unverified events (matched only
//! by an address or a bare id, so they changed no status unless the
//! policy says so) are marked. The same store queries as
//! `GET /api/v1/bounces` and `/api/v1/bounces/report`.
//!
//! - `GET /admin/bounces?view=list|report&kind=&reason=&verified=yes|no&days=N`

use axum::extract::{Query, State};
use axum::routing::get;
use axum::Router;
use minijinja::{context, Value};
use serde::Deserialize;

use super::{AdminError, AdminResult, AdminShared, NavItem, Page};
use crate::domain::Action;
use crate::store::bounces::BounceFilter;

pub const NAV: &[NavItem] = &[NavItem {
    href: "/admin/bounces",
    label: "Bounces",
    action: Action::BouncesRead,
    order: 45,
    summary: "Bounces, complaints and auto-replies by kind and reason, unverified ones marked.",
}];

pub const TEMPLATES: &[(&str, &str)] = &[(
    "admin/bounces.html",
    include_str!("../../../templates/admin/bounces.html"),
)];

/// Events listed at most.
const LIMIT: i64 = 500;

pub fn routes() -> Router<AdminShared> {
    Router::new().route("/admin/bounces", get(list))
}

#[derive(Debug, Default, Deserialize)]
pub struct BounceQuery {
    #[serde(default)]
    view: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    reason: String,
    /// yes, no or "".
    #[serde(default)]
    verified: String,
    /// Only the last N days ("" or 0: all).
    #[serde(default)]
    days: String,
}

async fn list(
    State(s): State<AdminShared>,
    page: Page,
    Query(q): Query<BounceQuery>,
) -> AdminResult {
    page.require(Action::BouncesRead)?;
    let days: i64 = match q.days.trim() {
        "" => 0,
        d => d.parse().ok().filter(|n| *n >= 0).ok_or_else(|| {
            AdminError::BadRequest(format!("days: {d:?} is not a number of days"))
        })?,
    };
    let word = |v: &str| Some(v.trim().to_string()).filter(|v| !v.is_empty());
    let filter = BounceFilter {
        since: (days > 0).then(|| chrono::Utc::now() - chrono::Duration::days(days)),
        kind: word(&q.kind),
        reason: word(&q.reason),
        verified: match q.verified.as_str() {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        },
        limit: LIMIT,
    };
    let store = s.store();
    let report = q.view == "report";
    let rows = if report {
        Value::from_serialize(store.bounce_report(&filter).await?)
    } else {
        Value::from_serialize(store.list_bounces(&filter).await?)
    };
    // The choices: every kind and reason recorded, with their counts.
    let reasons = store.bounce_reasons().await?;
    let mut kinds: Vec<(String, i64)> = Vec::new();
    for (k, _, n) in &reasons {
        match kinds.iter_mut().find(|(kk, _)| kk == k) {
            Some(e) => e.1 += n,
            None => kinds.push((k.clone(), *n)),
        }
    }
    let mut reason_list: Vec<(String, i64)> = Vec::new();
    for (_, r, n) in &reasons {
        match reason_list.iter_mut().find(|(rr, _)| rr == r) {
            Some(e) => e.1 += n,
            None => reason_list.push((r.clone(), *n)),
        }
    }
    reason_list.sort();
    s.render(
        &page,
        "admin/bounces.html",
        context! {
            title => "Bounces",
            report,
            rows,
            limit => LIMIT,
            kinds,
            reasons => reason_list,
            q => context! {
                kind => q.kind.trim(), reason => q.reason.trim(),
                verified => q.verified.as_str(), days => if days > 0 { days.to_string() } else { String::new() },
            },
        },
    )
}
