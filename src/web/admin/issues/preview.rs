//! Beside the editor: the live preview (phone 375 px, desktop 600 px, dark
//! mode, the text part) rendered as a chosen contact, the contact picker,
//! the test message, and the approval request.
//!
//! - `GET /admin/issues/{n}/preview?view=&dark=&contact=&revision=` is the
//!   preview frame's document: the account's draft (or the latest or a given
//!   revision) rendered by `app::issues::render`, under a policy that lets
//!   only the admin frame it and allows inline styles and images (the
//!   message's own), nothing else.
//! - `GET /admin/issues/{n}/contacts?contact_q=` (htmx) finds contacts by
//!   name, organisation or address (`app::issues::find_contacts`).
//! - `POST /admin/issues/{n}/test-send` sends the latest revision to the
//!   user's own address or one of `admin.test_send_allowlist`.
//! - `POST /admin/issues/{n}/request-approval` asks for the approval of a
//!   campaign of this issue (`app::approval::request`); it is refused
//!   while the latest revision fails the preflight or unsaved changes
//!   remain, as the page's button says.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::{context, Value};
use serde::Deserialize;

use super::super::{redirect_with, AdminError, AdminResult, AdminShared, Flash, Page};
use super::campaign_value;
use super::editor::{check, Checked, Editing, View};
use crate::app::issues::{self as app_issues, Part, TestSendError};
use crate::domain::Action;
use crate::web::form;

/// The preview frame's query.
#[derive(Debug, Default, Deserialize)]
pub(super) struct FrameQuery {
    view: Option<String>,
    dark: Option<String>,
    contact: Option<String>,
    revision: Option<i64>,
}

/// The preview document's policy: the message's inline styles and its
/// images (https, the public listener's `/media`, this listener's own),
/// framed by the admin only.
fn preview_csp(state: &AdminShared) -> String {
    let public = url_origin(&state.config().newsletter.base_url);
    format!(
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: data: {public}; \
         form-action 'none'; frame-ancestors 'self'; base-uri 'none'"
    )
}

/// `https://host:port` of a URL (empty when it has none).
fn url_origin(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return String::new();
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
    {
        return String::new();
    }
    format!("{scheme}://{host}")
}

/// A message's HTML as a mail program in dark mode shows it: the rules
/// under `prefers-color-scheme: dark` apply whatever the admin's own
/// setting is.
pub(super) fn force_dark(html: &str) -> String {
    html.replace("prefers-color-scheme: dark", "min-width: 0px")
        .replace("prefers-color-scheme:dark", "min-width:0px")
}

/// A contact as the picker shows it.
fn contact_label(c: &crate::store::Contact) -> String {
    let name = if c.name.trim().is_empty() {
        c.email.as_str()
    } else {
        c.name.as_str()
    };
    match c.org_name.as_deref().filter(|o| !o.is_empty()) {
        Some(org) => format!("{name} – {org} ({})", c.email),
        None => format!("{name} ({})", c.email),
    }
}

/// The preview, picker, test message and approval panel's context.
pub(super) async fn live_context(
    state: &AdminShared,
    page: &Page,
    editing: &Editing,
    view: &View,
    checked: &Checked,
) -> AdminResult<Value> {
    let n = editing.number;
    let version = editing
        .draft
        .as_ref()
        .map(|d| d.updated_at.timestamp_millis())
        .unwrap_or(editing.latest.revision);
    let mut q = format!("view={}&v={version}", view.view());
    if view.dark() {
        q.push_str("&dark=1");
    }
    let contact = match view.contact() {
        Some(id) => state.store().contact_by_id(id).await?,
        None => None,
    };
    if let Some(c) = &contact {
        q.push_str(&format!("&contact={}", c.id));
    }
    let as_whom = contact
        .as_ref()
        .map(contact_label)
        .unwrap_or_else(|| "a sample embassy contact".into());
    let width = match view.view() {
        "desktop" => "on a desktop (600 pixels)",
        "text" => "as the text part",
        _ => "on a phone (375 pixels)",
    };
    let mut choices = find(state, page, view.contact_q.as_deref().unwrap_or("")).await?;
    if let Some(c) = &contact {
        let listed = choices
            .iter()
            .any(|v| v.get_attr("id").ok().and_then(|i| i.as_i64()) == Some(c.id));
        if !listed {
            choices.insert(0, context! { id => c.id, label => contact_label(c) });
        }
    }
    let mut campaigns = Vec::new();
    for c in state
        .store()
        .campaigns()
        .await?
        .iter()
        .filter(|c| c.issue_number == i64::from(n))
    {
        campaigns.push(campaign_value(state, c).await?);
    }
    let blocked = if checked.failures > 0 {
        Some(format!(
            "Fix the {} problem{} marked in the form first.",
            checked.failures,
            if checked.failures == 1 { "" } else { "s" }
        ))
    } else if editing.unsaved() {
        Some("Save your changes first: an approval is for a saved revision.".to_string())
    } else {
        None
    };
    let mut test_to = vec![page.email().to_string()];
    test_to.extend(
        state
            .config()
            .admin
            .test_send_allowlist
            .iter()
            .map(|a| a.trim().to_lowercase())
            .filter(|a| !a.is_empty() && a != page.email()),
    );
    Ok(context! {
        preview_url => format!("/admin/issues/{n}/preview?{q}"),
        preview_title => format!("The issue {width}, as {as_whom}"),
        preview_class => format!("preview preview-{}{}", view.view(), if view.dark() { " preview-dark" } else { "" }),
        as_whom,
        contact_id => contact.as_ref().map(|c| c.id),
        contact_choices => choices,
        contact_q => view.contact_q.clone().unwrap_or_default(),
        campaigns,
        approval_blocked => blocked,
        test_to,
        unsaved => editing.unsaved(),
    })
}

/// Contacts matching `q` as picker options.
async fn find(state: &AdminShared, page: &Page, q: &str) -> AdminResult<Vec<Value>> {
    let found = app_issues::find_contacts(state.store(), &page.actor, q, 20).await?;
    Ok(found
        .iter()
        .map(|c| context! { id => c.id, label => contact_label(c) })
        .collect())
}

/// `GET /admin/issues/{n}/preview`: the frame's document.
pub(super) async fn frame(
    State(state): State<AdminShared>,
    page: Page,
    Path(n): Path<i64>,
    Query(q): Query<FrameQuery>,
) -> AdminResult {
    page.require(Action::IssuesPreview)?;
    let n = u32::try_from(n).map_err(|_| AdminError::NotFound(format!("no issue {n}")))?;
    let source = match q.revision {
        Some(r) => state.store().issue_revision(n, Some(r)).await?.source,
        None => Editing::load(&state, &page, n).await?.source,
    };
    let text_only = q.view.as_deref() == Some("text");
    let contact = q.contact.as_deref().and_then(|c| c.trim().parse().ok());
    let issue = match app_issues::parse(&format!("issue {n}"), &source) {
        Ok(i) => i,
        Err(e) => {
            let msg = format!(
                "This issue cannot be previewed until its text reads.\n\n{e}\n\nThe editor marks \
                 the place."
            );
            return Ok(plain(&state, StatusCode::UNPROCESSABLE_ENTITY, msg));
        }
    };
    let part = if text_only { Part::Text } else { Part::Html };
    let body = app_issues::render(
        state.store(),
        state.config(),
        &page.actor,
        issue,
        contact,
        part,
    )
    .await?;
    if text_only {
        return Ok(plain(&state, StatusCode::OK, body));
    }
    let body = if q.dark.as_deref() == Some("1") {
        force_dark(&body)
    } else {
        body
    };
    Ok(framed(
        &state,
        "text/html; charset=utf-8",
        StatusCode::OK,
        body,
    ))
}

fn plain(state: &AdminShared, status: StatusCode, text: String) -> Response {
    framed(state, "text/plain; charset=utf-8", status, text)
}

fn framed(state: &AdminShared, ctype: &'static str, status: StatusCode, body: String) -> Response {
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if let Ok(v) = HeaderValue::from_str(&preview_csp(state)) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    res
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ContactsQuery {
    contact_q: Option<String>,
    contact: Option<String>,
}

/// `GET /admin/issues/{n}/contacts` (htmx): the picker's options.
pub(super) async fn contacts(
    State(state): State<AdminShared>,
    page: Page,
    Path(n): Path<i64>,
    Query(q): Query<ContactsQuery>,
) -> AdminResult {
    page.require(Action::IssuesPreview)?;
    let choices = find(&state, &page, q.contact_q.as_deref().unwrap_or("")).await?;
    let contact_id: Option<i64> = q.contact.as_deref().and_then(|c| c.parse().ok());
    state.render_fragment(
        &page,
        "admin/issue_contacts.html",
        context! { number => n, contact_choices => choices, contact_id },
    )
}

fn fields_of(body: &[u8]) -> AdminResult<form::Fields> {
    form::urlencoded(body).map_err(|e| AdminError::BadRequest(e.to_string()))
}

/// `POST /admin/issues/{n}/test-send`.
pub(super) async fn test_send(
    State(state): State<AdminShared>,
    page: Page,
    Path(n): Path<i64>,
    body: Bytes,
) -> AdminResult {
    page.require(Action::IssuesTestSend)?;
    let number = u32::try_from(n).map_err(|_| AdminError::NotFound(format!("no issue {n}")))?;
    let fields = fields_of(&body)?;
    let view = View {
        view: form::value(&fields, "pv_view").map(String::from),
        dark: form::value(&fields, "pv_dark").map(String::from),
        contact: form::value(&fields, "pv_contact").map(String::from),
        ..View::default()
    };
    let back = view.url(number);
    let (revision, issue) = app_issues::load(state.store(), &page.actor, number, None).await?;
    let to = form::value(&fields, "to");
    let sent = app_issues::test_send(
        state.store(),
        state.config(),
        &page.actor,
        number,
        issue,
        to,
        view.contact(),
    )
    .await;
    let flash = match sent {
        Ok(s) => Flash::ok(format!(
            "Revision {} was sent to {}. The server answered: {}",
            revision.revision, s.to, s.reply
        )),
        Err(TestSendError::Preflight(f)) => Flash::warn(format!(
            "Revision {} was not sent: it fails its preflight check ({} problem{}). Fix and save it first.",
            revision.revision,
            f.len(),
            if f.len() == 1 { "" } else { "s" }
        )),
        Err(TestSendError::Smtp(e)) => Flash::warn(format!("The mail server did not take the test message: {e}")),
        Err(TestSendError::App(e)) => return Err(e.into()),
    };
    Ok(redirect_with(&state, &back, flash))
}

/// `POST /admin/issues/{n}/request-approval`.
pub(super) async fn request_approval(
    State(state): State<AdminShared>,
    page: Page,
    Path(n): Path<i64>,
    body: Bytes,
) -> AdminResult {
    page.require(Action::CampaignsRequestApproval)?;
    let number = u32::try_from(n).map_err(|_| AdminError::NotFound(format!("no issue {n}")))?;
    let fields = fields_of(&body)?;
    let campaign: i64 = form::value(&fields, "campaign")
        .and_then(|c| c.trim().parse().ok())
        .ok_or_else(|| AdminError::BadRequest("choose the campaign to approve".into()))?;
    let c = state.store().campaign_or_err(campaign).await?;
    if c.issue_number != n {
        return Err(AdminError::BadRequest(format!(
            "campaign {campaign} does not send issue {n}"
        )));
    }
    let editing = Editing::load(&state, &page, number).await?;
    let latest = editing.latest.source.clone();
    let checked = check(&state, &page, number, &latest, None).await?;
    let back = format!("/admin/issues/{n}");
    if checked.failures > 0 || editing.unsaved() {
        let why = if checked.failures > 0 {
            "the latest revision fails its preflight check; fix it and save it first"
        } else {
            "you have unsaved changes; save them (or throw them away) first"
        };
        return Ok(redirect_with(
            &state,
            &back,
            Flash::warn(format!("Approval was not requested: {why}.")),
        ));
    }
    let note = form::value(&fields, "note")
        .unwrap_or("")
        .trim()
        .to_string();
    let view =
        crate::app::approval::request(state.store(), state.config(), &page.actor, campaign, &note)
            .await?;
    Ok(redirect_with(
        &state,
        &back,
        Flash::ok(format!(
            "Approval of revision {} requested for the campaign “{}”. An operator who did not \
             write it can now approve it.",
            view.revision, c.name
        )),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dark_mode_rules_apply_and_origins_are_read() {
        let html = "<style>@media (prefers-color-scheme: dark) { body { color: #fff } }</style>";
        assert_eq!(
            force_dark(html),
            "<style>@media (min-width: 0px) { body { color: #fff } }</style>"
        );
        assert_eq!(
            url_origin("https://news.example.org/x"),
            "https://news.example.org"
        );
        assert_eq!(url_origin("http://127.0.0.1:8081"), "http://127.0.0.1:8081");
        assert_eq!(url_origin("https://bad host/"), "");
        assert_eq!(url_origin("nothing"), "");
    }
}
