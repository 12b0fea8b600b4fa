//! The recipients' pages: unsubscribe (GET asks, POST does), undo,
//! preferences, view in browser, and the friendly error pages.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use minijinja::{context, Value};

use super::{form, AppState, Shared, ISSUE_CSP};
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
        "invalid",
        context! { heading => heading, message => message },
    )
}

/// The one page for every bad token: it says nothing about why.
pub(super) fn invalid_link(state: &AppState) -> Response {
    message_page(
        state,
        StatusCode::NOT_FOUND,
        "This link is not valid",
        "The link may be incomplete, or it may be from an old email.",
    )
}

pub(super) async fn not_found(State(state): State<Shared>) -> Response {
    message_page(
        &state,
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is no page at this address.",
    )
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
    page(
        &state,
        StatusCode::OK,
        "unsubscribe",
        context! {
            action => format!("/u/{token}"),
            preferences_url => preferences_url(&state, &c),
        },
    )
}

/// POST /u/{token}: unsubscribes, durably, before replying. Accepts the
/// RFC 8058 one-click body (urlencoded or multipart) and our own form; needs
/// no cookie and never redirects. The reply is the same whether the contact
/// was active, already unsubscribed, suppressed, or deleted.
pub(super) async fn unsubscribe(
    State(state): State<Shared>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(c) = verify(&state, Purpose::Unsubscribe, &token) else {
        return invalid_link(&state);
    };
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let one_click = form::is_one_click(&form::parse(ct, &body));
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
            page(
                &state,
                StatusCode::OK,
                "unsubscribed",
                context! {
                    undo_action => format!("/u/{token}/undo"),
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
/// campaign. Bounced and blocklisted contacts are never reactivated.
pub(super) async fn undo(State(state): State<Shared>, Path(token): Path<String>) -> Response {
    let Some(c) = verify(&state, Purpose::Unsubscribe, &token) else {
        return invalid_link(&state);
    };
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
    page(
        state,
        StatusCode::OK,
        "preferences",
        context! {
            action => format!("/p/{token}"),
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
/// `web.preference_tags` are ever added or removed).
pub(super) async fn save_preferences(
    State(state): State<Shared>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(c) = verify(&state, Purpose::Preferences, &token) else {
        return invalid_link(&state);
    };
    let contact = match state.store.contact_by_id(c.contact_id as i64).await {
        Ok(Some(contact)) => contact,
        Ok(None) => return invalid_link(&state),
        Err(e) => return server_error(&format!("preferences: {e:#}")),
    };
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let fields = form::parse(ct, &body);
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
    if let Err(e) = state.store.edit_contact(&contact.email, &patch).await {
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

/// GET /v/{campaign}/{token}: the issue as this recipient received it
/// (re-rendered from the campaign's frozen revision with the contact's
/// details). Its unsubscribe and preferences links point to a help page,
/// so a forwarded view link cannot be used to change the subscription.
pub(super) async fn view_in_browser(
    State(state): State<Shared>,
    Path((campaign, token)): Path<(String, String)>,
) -> Response {
    let Some(c) = verify(&state, Purpose::Browser, &token) else {
        return invalid_link(&state);
    };
    if campaign.parse::<u64>().ok() != Some(c.campaign_id) {
        return invalid_link(&state);
    }
    let (campaign, contact) = (c.campaign_id as i64, c.contact_id as i64);
    let found = async {
        if !state.store.has_delivery(campaign, contact).await? {
            return Ok(None);
        }
        let Some(compiled) = compiled_for(&state, campaign).await? else {
            return Ok(None);
        };
        let Some(contact) = state.store.contact_by_id(contact).await? else {
            return Ok(None);
        };
        anyhow::Ok(Some((compiled, contact)))
    }
    .await;
    let (compiled, contact) = match found {
        Ok(Some(x)) => x,
        Ok(None) => return invalid_link(&state),
        Err(e) => return server_error(&format!("view in browser: {e:#}")),
    };
    let base = state.base_url();
    let recipient = Recipient::from_contact(&contact, Default::default());
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
