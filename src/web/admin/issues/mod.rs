//! The editors' pages: the issues list, the issue editor with its live
//! preview, preflight at each field, test message and approval request,
//! and the revision history with a diff.
//!
//! - `GET /admin/issues`: every issue with its date, revisions, who wrote
//!   the latest and when, and the approval state of its campaigns;
//!   `POST /admin/issues` starts a new one from the skeleton.
//! - `/admin/issues/{n}…`: the editor (`editor.rs`), the preview and what
//!   goes with it (`preview.rs`), the history (`history.rs`).
//!
//! Every action here calls `app::issues` or `app::approval`, the functions
//! behind `/api/v1/issues` and `/api/v1/campaigns`.

mod editor;
mod history;
mod preview;

use std::collections::HashMap;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use minijinja::{context, Value};

use super::{redirect_with, AdminResult, AdminShared, Flash, NavItem, Page};
use crate::app::issues as app_issues;
use crate::domain::approval::ApprovalStatus;
use crate::domain::Action;
use crate::store::campaigns::Campaign;

pub const NAV: &[NavItem] = &[NavItem {
    href: "/admin/issues",
    label: "Issues",
    action: Action::IssuesRead,
    order: 10,
    summary: "Write and revise issues, preview them as a recipient, and ask for approval.",
}];

pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "admin/issues.html",
        include_str!("../../../../templates/admin/issues.html"),
    ),
    (
        "admin/issue_editor.html",
        include_str!("../../../../templates/admin/issue_editor.html"),
    ),
    (
        "admin/issue_fields.html",
        include_str!("../../../../templates/admin/issue_fields.html"),
    ),
    (
        "admin/issue_live.html",
        include_str!("../../../../templates/admin/issue_live.html"),
    ),
    (
        "admin/issue_contacts.html",
        include_str!("../../../../templates/admin/issue_contacts.html"),
    ),
    (
        "admin/issue_history.html",
        include_str!("../../../../templates/admin/issue_history.html"),
    ),
];

pub fn routes() -> Router<AdminShared> {
    Router::new()
        .route("/admin/issues", get(list).post(create))
        .route("/admin/issues/{n}", get(editor::show).post(editor::submit))
        .route("/admin/issues/{n}/autosave", post(editor::autosave))
        .route("/admin/issues/{n}/discard-draft", post(editor::discard))
        .route("/admin/issues/{n}/preview", get(preview::frame))
        .route("/admin/issues/{n}/contacts", get(preview::contacts))
        .route("/admin/issues/{n}/test-send", post(preview::test_send))
        .route(
            "/admin/issues/{n}/request-approval",
            post(preview::request_approval),
        )
        .route("/admin/issues/{n}/revisions", get(history::list))
        .route("/admin/issues/{n}/revisions/{r}", get(history::show))
}

/// An approval state as a badge: (text, kind).
pub(crate) fn approval_badge(status: &ApprovalStatus) -> (String, &'static str) {
    match status {
        ApprovalStatus::NotRequired => ("approval not required".into(), "ok"),
        ApprovalStatus::Approved { by, revision } => {
            (format!("revision {revision} approved by {by}"), "ok")
        }
        ApprovalStatus::Missing { void: Some(v), .. } => (format!("not approved: {v}"), "warn"),
        ApprovalStatus::Missing { revision, .. } => {
            (format!("revision {revision} awaiting approval"), "warn")
        }
    }
}

/// A campaign of an issue, with its approval, as the templates read it.
pub(crate) async fn campaign_value(state: &AdminShared, c: &Campaign) -> AdminResult<Value> {
    let view = crate::app::approval::view(state.store(), state.config(), c).await?;
    let (approval, kind) = approval_badge(&view.status);
    let requested = view.history.iter().any(|h| {
        h.kind == crate::store::approvals::ApprovalKind::Request.as_str()
            && h.issue_revision == view.revision
    });
    Ok(context! {
        id => c.id,
        name => c.name.as_str(),
        state => c.state.as_str(),
        pending => matches!(c.state.as_str(), "draft" | "scheduled"),
        approval,
        approval_kind => kind,
        approved => view.status.allows_start(),
        requested,
        revision => view.revision,
    })
}

async fn list(State(state): State<AdminShared>, page: Page) -> AdminResult {
    page.require(Action::IssuesRead)?;
    let issues = state.store().list_issues().await?;
    let authors: HashMap<i64, (String, String)> = state
        .store()
        .latest_revision_authors()
        .await?
        .into_iter()
        .map(|(n, actor, at)| (n, (actor, at.to_rfc3339())))
        .collect();
    let campaigns = state.store().campaigns().await?;
    let mut rows = Vec::new();
    for i in &issues {
        let mut approvals = Vec::new();
        for c in campaigns.iter().filter(|c| c.issue_number == i.number) {
            approvals.push(campaign_value(&state, c).await?);
        }
        let (editor, edited_at) = authors.get(&i.number).cloned().unwrap_or_default();
        rows.push(context! {
            number => i.number,
            subject => i.subject.as_str(),
            date => i.issue_date.to_string(),
            revisions => i.revisions,
            editor,
            edited_at,
            campaigns => approvals,
        });
    }
    state.render(
        &page,
        "admin/issues.html",
        context! { title => "Issues", issues => rows },
    )
}

async fn create(State(state): State<AdminShared>, page: Page) -> AdminResult {
    let today = chrono::Utc::now().with_timezone(&state.tz).date_naive();
    let n = app_issues::create(state.store(), &page.actor, today).await?;
    Ok(redirect_with(
        &state,
        &format!("/admin/issues/{n}"),
        Flash::ok(format!("Issue {n} started from the usual sections.")),
    )
    .into_response())
}
