//! The recipients' pages: unsubscribe (GET asks, POST does), undo,
//! preferences, view in browser, and the friendly error pages.
//!
//! Every POST body is read by [`form`] (415 for a type that is not a form
//! encoding, 400 for invalid UTF-8, 413 above `FORM_BODY_LIMIT`), and a
//! refused request changes nothing:
//!
//! - `POST /u/{token}` unsubscribes only with RFC 8058's
//!   `List-Unsubscribe=One-Click` (from anywhere, without a cookie, as RFC
//!   8058 requires) or with the confirmation page's own form (its hidden
//!   `confirm=yes`), which must come [`from_our_page`]; any other body is a
//!   400.
//! - The undo and preferences forms must come [`from_our_page`] too (403
//!   otherwise).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use chrono::{Duration, Utc};
use minijinja::{context, Value};

use super::form::{self, FormError};
use super::{canonical_number, AppState, Shared, ISSUE_CSP};
use crate::compose::{CompiledIssue, PersonalLinks, Recipient};
use crate::delivery::tokens::{Claims, Purpose};
use crate::store::web::{WebChange, WebOutcome};
use crate::store::{normalise_tag, ContactPatch};

/// Renders `web/NAME.html` with the common context.
pub(super) fn render(state: &AppState, name: &str, ctx: Value) -> Result<String, String> {
    let common = context! {
        lang => state.config.web.lang.as_str(),
        archive_enabled => state.config.web.archive,
        newsletter => context! {
            name => state.config.newsletter.name.as_str(),
            from_name => state.config.newsletter.from_name.as_str(),
        },
    };
    state
        .env
        .get_template(&format!("web/{name}.html"))
        .and_then(|t| t.render(context! { ..ctx, ..common }))
        .map_err(|e| format!("templates/web/{name}.html: {e:#}"))
}

pub(super) fn page(state: &AppState, status: StatusCode, name: &str, ctx: Value) -> Response {
    match render(state, name, ctx) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => server_error(&e),
    }
}

fn server_error(e: &str) -> Response {
    tracing::error!("{e}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Something went wrong on our side. Please try again in a few minutes.\n",
    )
        .into_response()
}

/// A page with a heading and one message.
pub(super) fn message_page(
    state: &AppState,
    status: StatusCode,
    heading: &str,
    message: &str,
) -> Response {
    page(
        state,
        status,
        "message",
        context! { heading => heading, message => message },
    )
}

/// A page about a link that does not work: with advice on copying links.
fn link_page(state: &AppState, heading: &str, message: &str) -> Response {
    page(
        state,
        StatusCode::NOT_FOUND,
        "invalid",
        context! { heading => heading, message => message },
    )
}

/// The one page for every bad token: it says nothing about why.
pub(super) fn invalid_link(state: &AppState) -> Response {
    link_page(
        state,
        "This link is not valid",
        "The link may be incomplete, or it may be from an old email.",
    )
}

pub(super) async fn not_found(State(state): State<Shared>) -> Response {
    link_page(
        &state,
        "Page not found",
        "There is no page at this address.",
    )
}

/// The 429 page: a page of its own that asks to try again shortly (the
/// link itself is fine).
pub(super) fn busy(state: &AppState, retry_after_secs: u64) -> Response {
    let mut res = page(
        state,
        StatusCode::TOO_MANY_REQUESTS,
        "busy",
        context! { seconds => retry_after_secs },
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    res
}

/// A refused POST: 413 (too large), 415 (not a form), 400 (unreadable, or
/// a body that asks for nothing) or 403 (a form from another site).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    TooLarge,
    NotAForm,
    Unreadable,
    NoRequest,
    CrossSite,
}

impl Refusal {
    fn page(self, state: &AppState) -> Response {
        let (status, heading, message) = match self {
            Refusal::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "This request is too large",
                "Nothing was changed.",
            ),
            Refusal::NotAForm => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "This request could not be read",
                "It was not sent as a web form. Nothing was changed.",
            ),
            Refusal::Unreadable => (
                StatusCode::BAD_REQUEST,
                "This request could not be read",
                "Some of the text sent is not valid UTF-8. Nothing was changed.",
            ),
            Refusal::NoRequest => (
                StatusCode::BAD_REQUEST,
                "Nothing was asked",
                "This request did not ask to unsubscribe. Nothing was changed. \
                 To unsubscribe, open the link from the email and press the button.",
            ),
            Refusal::CrossSite => (
                StatusCode::FORBIDDEN,
                "This form was sent from another site",
                "For your protection, nothing was changed. Please open the link \
                 from the email again and use the form on our page.",
            ),
        };
        message_page(state, status, heading, message)
    }
}

/// The fields of a POST body, or why it is refused.
fn read_form(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<form::Fields, Refusal> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Refusal::TooLarge
        } else {
            Refusal::Unreadable
        }
    })?;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    form::parse(ct, &body).map_err(|e| match e {
        FormError::UnsupportedType(_) => Refusal::NotAForm,
        FormError::InvalidUtf8 => Refusal::Unreadable,
    })
}

/// The form tag of the form that posts to `action` (a page's own path).
fn form_token(state: &AppState, action: &str) -> String {
    state.keys.sign_form(FORM_LABEL, action.as_bytes())
}

/// Signed into every form tag.
const FORM_LABEL: &str = "whatsup web form";

/// Whether a form POST to `action` came from our own page: the browser says
/// so (`Sec-Fetch-Site: same-origin`, or an `Origin` that is ours), or the
/// body carries the form tag that page put in its hidden `form_token`
/// field (for clients that send neither header).
pub(super) fn from_our_page(
    state: &AppState,
    headers: &HeaderMap,
    fields: &form::Fields,
    action: &str,
) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("sec-fetch-site") == Some("same-origin") {
        return true;
    }
    if let Some(origin) = header("origin") {
        if super::is_our_origin(state, origin, header("host")) {
            return true;
        }
    }
    form::value(fields, "form_token")
        .is_some_and(|t| state.keys.verify_form(FORM_LABEL, action.as_bytes(), t))
}

/// Verifies a token for `purpose`; the reason for a refusal goes to the log
/// at debug level only.
pub(super) fn verify(state: &AppState, purpose: Purpose, token: &str) -> Option<Claims> {
    if token.len() > 64 {
        return None;
    }
    match state.keys.verify_for(purpose, token) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::debug!("refused a {purpose:?} token: {e}");
            None
        }
    }
}

fn sign(state: &AppState, purpose: Purpose, c: &Claims) -> String {
    state.keys.sign(&Claims { purpose, ..*c })
}

fn preferences_url(state: &AppState, c: &Claims) -> String {
    format!("/p/{}", sign(state, Purpose::Preferences, c))
}

/// GET /u/{token}: asks, changes nothing, does not even look the contact up.
pub(super) async fn unsubscribe_page(
    State(state): State<Shared>,
    Path(token): Path<String>,
) -> Response {
    let Some(c) = verify(&state, Purpose::Unsubscribe, &token) else {
        return invalid_link(&state);
    };
    let action = format!("/u/{token}");
    page(
        &state,
        StatusCode::OK,
        "unsubscribe",
        context! {
            form_token => form_token(&state, &action),
            action => action,
            preferences_url => preferences_url(&state, &c),
        },
    )
}

/// POST /u/{token}: unsubscribes, durably, before replying. Accepts the
/// RFC 8058 one-click body (urlencoded or multipart) from anywhere, and our
/// own confirmation form from our page; needs no cookie and never
/// redirects. Any other body is refused and changes nothing. The reply is
/// the same whether the contact was active, already unsubscribed,
/// suppressed, or deleted.
pub(super) async fn unsubscribe(
    State(state): State<Shared>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(c) = verify(&state, Purpose::Unsubscribe, &token) else {
        return invalid_link(&state);
    };
    let fields = match read_form(&headers, body) {
        Ok(f) => f,
        Err(refused) => return refused.page(&state),
    };
    let action = format!("/u/{token}");
    let one_click = form::is_one_click(&fields);
    if !one_click {
        if form::value(&fields, "confirm") != Some("yes") {
            return Refusal::NoRequest.page(&state);
        }
        if !from_our_page(&state, &headers, &fields, &action) {
            return Refusal::CrossSite.page(&state);
        }
    }
    if let Some(retry_after) = super::one_click_turn(&state).await {
        state.metrics.rate_limited(true);
        return busy(&state, retry_after);
    }
    let change = WebChange::Unsubscribe {
        contact: c.contact_id as i64,
        campaign: c.campaign_id as i64,
        one_click,
    };
    match state.writer.apply(change).await {
        Ok(outcome) => {
            if outcome == WebOutcome::Changed {
                state.metrics.unsubscribed();
            }
            let undo_action = format!("{action}/undo");
            page(
                &state,
                StatusCode::OK,
                "unsubscribed",
                context! {
                    form_token => form_token(&state, &undo_action),
                    undo_action => undo_action,
                    preferences_url => preferences_url(&state, &c),
                },
            )
        }
        Err(e) => unavailable(&state, &e),
    }
}

fn unavailable(state: &AppState, e: &anyhow::Error) -> Response {
    tracing::error!("web change not committed: {e:#}");
    let mut res = message_page(
        state,
        StatusCode::SERVICE_UNAVAILABLE,
        "Please try again",
        "We could not record your request just now. Nothing was changed. Please try again in a minute.",
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
    res
}

/// POST /u/{token}/undo: resubscribes, but only if the contact's latest
/// status change is an unsubscribe made on the web with a token of the same
/// campaign. Bounced and blocklisted contacts are never reactivated. The
/// form must come from our page.
pub(super) async fn undo(
    State(state): State<Shared>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(c) = verify(&state, Purpose::Unsubscribe, &token) else {
        return invalid_link(&state);
    };
    let fields = match read_form(&headers, body) {
        Ok(f) => f,
        Err(refused) => return refused.page(&state),
    };
    if !from_our_page(&state, &headers, &fields, &format!("/u/{token}/undo")) {
        return Refusal::CrossSite.page(&state);
    }
    let change = WebChange::Resubscribe {
        contact: c.contact_id as i64,
        campaign: c.campaign_id as i64,
    };
    match state.writer.apply(change).await {
        Ok(outcome) => {
            let undone = matches!(outcome, WebOutcome::Changed | WebOutcome::AlreadyDone);
            if outcome == WebOutcome::Changed {
                state.metrics.resubscribed();
            }
            page(
                &state,
                StatusCode::OK,
                "resubscribed",
                context! {
                    undone => undone,
                    preferences_url => preferences_url(&state, &c),
                },
            )
        }
        Err(e) => unavailable(&state, &e),
    }
}

/// The topics shown on the preferences page: `web.preference_tags`, each
/// with whether the contact has it.
fn topics(state: &AppState, tags: &[&str]) -> Vec<Value> {
    state
        .config
        .web
        .preference_tags
        .iter()
        .map(|t| {
            let name = normalise_tag(t);
            let mut label: Vec<char> = name.replace(['-', '_'], " ").chars().collect();
            if let Some(first) = label.first_mut() {
                *first = first.to_ascii_uppercase();
            }
            context! {
                chosen => tags.contains(&name.as_str()),
                label => label.into_iter().collect::<String>(),
                name => name,
            }
        })
        .collect()
}

async fn preferences_response(state: &AppState, token: &str, c: &Claims, saved: bool) -> Response {
    let contact = match state.store.contact_by_id(c.contact_id as i64).await {
        Ok(Some(contact)) => contact,
        Ok(None) => return invalid_link(state),
        Err(e) => return server_error(&format!("preferences: {e:#}")),
    };
    let action = format!("/p/{token}");
    page(
        state,
        StatusCode::OK,
        "preferences",
        context! {
            form_token => form_token(state, &action),
            action => action,
            saved => saved,
            active => contact.status == "active",
            name => contact.name.as_str(),
            title => contact.title.as_str(),
            topics => topics(state, &contact.tag_list()),
        },
    )
}

/// GET /p/{token}: the name, title and topics on file.
pub(super) async fn preferences_page(
    State(state): State<Shared>,
    Path(token): Path<String>,
) -> Response {
    let Some(c) = verify(&state, Purpose::Preferences, &token) else {
        return invalid_link(&state);
    };
    preferences_response(&state, &token, &c, false).await
}

/// Trims a submitted text, drops control characters and caps its length.
fn clean_text(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect::<String>()
        .trim()
        .to_string()
}

/// POST /p/{token}: saves name, title and the topics (only tags from
/// `web.preference_tags` are ever added or removed). The form must come
/// from our page.
pub(super) async fn save_preferences(
    State(state): State<Shared>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(c) = verify(&state, Purpose::Preferences, &token) else {
        return invalid_link(&state);
    };
    let fields = match read_form(&headers, body) {
        Ok(f) => f,
        Err(refused) => return refused.page(&state),
    };
    if !from_our_page(&state, &headers, &fields, &format!("/p/{token}")) {
        return Refusal::CrossSite.page(&state);
    }
    let contact = match state.store.contact_by_id(c.contact_id as i64).await {
        Ok(Some(contact)) => contact,
        Ok(None) => return invalid_link(&state),
        Err(e) => return server_error(&format!("preferences: {e:#}")),
    };
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| clean_text(v))
    };
    let chosen: Vec<String> = fields
        .iter()
        .filter(|(k, _)| k == "tag")
        .map(|(_, v)| normalise_tag(v))
        .collect();
    let have = contact.tag_list();
    let mut patch = ContactPatch {
        name: field("name"),
        title: field("title"),
        ..ContactPatch::default()
    };
    for t in &state.config.web.preference_tags {
        let t = normalise_tag(t);
        let wants = chosen.contains(&t);
        let has = have.contains(&t.as_str());
        if wants && !has {
            patch.add_tags.push(t);
        } else if !wants && has {
            patch.remove_tags.push(t);
        }
    }
    // A recipient's own change; their IP is not kept.
    let recipient = crate::domain::Actor::Recipient { ip: None };
    if let Err(e) = state
        .store
        .edit_contact(&contact.email, &patch, &recipient)
        .await
    {
        return server_error(&format!("saving preferences: {e:#}"));
    }
    preferences_response(&state, &token, &c, true).await
}

pub(super) async fn links_help(State(state): State<Shared>) -> Response {
    page(&state, StatusCode::OK, "links", context! {})
}

/// The campaign's issue, compiled once and cached.
pub(super) async fn compiled_for(
    state: &AppState,
    campaign: i64,
) -> anyhow::Result<Option<Arc<CompiledIssue>>> {
    if let Some(c) = state
        .compiled
        .lock()
        .ok()
        .and_then(|m| m.get(&campaign).cloned())
    {
        return Ok(Some(c));
    }
    let Some(c) = state.store.campaign(campaign).await? else {
        return Ok(None);
    };
    if c.issue_revision.is_none() {
        return Ok(None); // never started: nothing was sent
    }
    let compiled =
        Arc::new(crate::send::engine::compile_for(&state.store, &state.config, &c).await?);
    if let Ok(mut m) = state.compiled.lock() {
        if m.len() > 64 {
            m.clear();
        }
        m.insert(campaign, compiled.clone());
    }
    Ok(Some(compiled))
}

/// What the view page shows in place of the recipient's address: the page
/// is the link most likely to be forwarded, so it shows no address.
pub const VIEW_EMAIL_STANDIN: &str = "your email address";

/// GET /v/{campaign}/{token}: the issue as this recipient received it
/// (re-rendered from the campaign's frozen revision with the contact's
/// details), but without their address. Its unsubscribe and preferences
/// links point to a help page, so a forwarded view link cannot be used to
/// change the subscription. The link works for `web.view_token_days` after
/// the message was sent; then the page offers the public archive copy.
pub(super) async fn view_in_browser(
    State(state): State<Shared>,
    Path((campaign, token)): Path<(String, String)>,
) -> Response {
    let Some(c) = verify(&state, Purpose::Browser, &token) else {
        return invalid_link(&state);
    };
    if canonical_number(&campaign) != Some(c.campaign_id) {
        return invalid_link(&state);
    }
    let (campaign, contact) = (c.campaign_id as i64, c.contact_id as i64);
    let found = async {
        let Some(sent) = state.store.delivery_time(campaign, contact).await? else {
            return Ok(None);
        };
        let days = state.config.web.view_token_days;
        if days > 0 && Utc::now() - sent > Duration::days(i64::from(days)) {
            return Ok(Some(Err(campaign)));
        }
        let Some(compiled) = compiled_for(&state, campaign).await? else {
            return Ok(None);
        };
        let Some(contact) = state.store.contact_by_id(contact).await? else {
            return Ok(None);
        };
        anyhow::Ok(Some(Ok((compiled, contact))))
    }
    .await;
    let (compiled, contact) = match found {
        Ok(Some(Ok(x))) => x,
        Ok(Some(Err(campaign))) => return expired_view(&state, campaign).await,
        Ok(None) => return invalid_link(&state),
        Err(e) => return server_error(&format!("view in browser: {e:#}")),
    };
    let base = state.base_url();
    let mut recipient = Recipient::from_contact(&contact, Default::default());
    recipient.email = VIEW_EMAIL_STANDIN.to_string();
    let links = PersonalLinks {
        unsubscribe: format!("{base}/links"),
        preferences: format!("{base}/links"),
        browser: format!("{base}/v/{campaign}/{token}"),
        // Present only when the campaign tracks opens or clicks.
        track_click: format!("{base}/t/c/{campaign}/{token}"),
        track_open: format!("{base}/t/o/{campaign}/{token}"),
    };
    match compiled.html_with_links(&recipient, links) {
        Ok(html) => issue_response(html),
        Err(e) => server_error(&format!("view in browser: {e}")),
    }
}

/// The page of a view link older than `web.view_token_days`: 410, with a
/// link to the issue in the public archive when there is one.
async fn expired_view(state: &AppState, campaign: i64) -> Response {
    let archive_url = if state.config.web.archive {
        match state.store.campaign(campaign).await {
            Ok(Some(c)) => Some(format!("/archive/{}", c.issue_number)),
            Ok(None) => None,
            Err(e) => return server_error(&format!("view in browser: {e:#}")),
        }
    } else {
        None
    };
    page(
        state,
        StatusCode::GONE,
        "expired",
        context! {
            days => state.config.web.view_token_days,
            archive_url => archive_url,
        },
    )
}

/// An issue as an HTML page, with the issue CSP (inline styles, https images).
pub(super) fn issue_response(html: String) -> Response {
    (
        [(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(ISSUE_CSP),
        )],
        Html(html),
    )
        .into_response()
}
