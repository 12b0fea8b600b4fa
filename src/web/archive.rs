//! The public archive (`web.archive`, on by default): `/archive` lists every
//! issue of which at least one message was sent, `/archive/{number}` shows
//! one, and `/archive/feed.xml` is an Atom feed of them.
//!
//! No personal data: an archived issue is compiled with `archive` set, so
//! the templates leave out the recipient's address and the personal links,
//! and it is rendered as a public copy: for a neutral recipient (empty
//! name, organisation and address, so the greeting is the generic one),
//! with the merge tags of the issue's text showing their defaults or
//! neutral words. Subjects in the list and the feed are shown the same way.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::SecondsFormat;
use minijinja::context;

use super::pages::{issue_response, message_page, page};
use super::{canonical_number, AppState, Shared};
use crate::compose::{merge, CompiledIssue, Issue, PersonalLinks};
use crate::store::web::ArchivedIssue;

fn disabled(state: &AppState) -> Response {
    message_page(
        state,
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is no page at this address.",
    )
}

fn failed(e: anyhow::Error) -> Response {
    tracing::error!("archive: {e:#}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong on our side.\n",
    )
        .into_response()
}

pub(super) async fn index(State(state): State<Shared>) -> Response {
    if !state.config.web.archive {
        return disabled(&state);
    }
    match state.store.archived_issues().await {
        Ok(mut issues) => {
            for i in &mut issues {
                i.subject = merge::neutral(&i.subject);
            }
            page(
                &state,
                StatusCode::OK,
                "archive",
                context! { issues => issues },
            )
        }
        Err(e) => failed(e),
    }
}

async fn render_issue(state: &AppState, a: &ArchivedIssue) -> anyhow::Result<Arc<String>> {
    let key = (a.number, a.revision);
    if let Some(html) = state
        .archived
        .lock()
        .ok()
        .and_then(|m| m.get(&key).cloned())
    {
        return Ok(html);
    }
    let number = u32::try_from(a.number)?;
    let rev = state.store.issue_revision(number, Some(a.revision)).await?;
    let issue = Issue::parse(
        &format!("issue {number} revision {}", rev.revision),
        &rev.source,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let compiled = CompiledIssue::compile_for_archive(issue, &state.config.newsletter)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let here = format!("{}/archive/{number}", state.base_url());
    let links = PersonalLinks {
        unsubscribe: here.clone(),
        preferences: here.clone(),
        browser: here,
        // Compiled without tracking: these slots do not occur.
        ..PersonalLinks::default()
    };
    let html = Arc::new(
        compiled
            .html_public(links)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    if let Ok(mut m) = state.archived.lock() {
        m.insert(key, html.clone());
    }
    Ok(html)
}

pub(super) async fn issue(State(state): State<Shared>, Path(number): Path<String>) -> Response {
    if !state.config.web.archive {
        return disabled(&state);
    }
    // Canonical numbers only: /archive/0214 is not /archive/214.
    let Some(number) = canonical_number(&number).and_then(|n| i64::try_from(n).ok()) else {
        return disabled(&state);
    };
    let issues = match state.store.archived_issues().await {
        Ok(i) => i,
        Err(e) => return failed(e),
    };
    let Some(a) = issues.iter().find(|i| i.number == number) else {
        return disabled(&state);
    };
    match render_issue(&state, a).await {
        Ok(html) => issue_response(html.as_ref().clone()),
        Err(e) => failed(e),
    }
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && !matches!(c, '\n' | '\t') => {}
            c => out.push(c),
        }
    }
    out
}

/// The Atom feed (RFC 4287) of the archive.
pub(super) async fn feed(State(state): State<Shared>) -> Response {
    if !state.config.web.archive {
        return disabled(&state);
    }
    let issues = match state.store.archived_issues().await {
        Ok(i) => i,
        Err(e) => return failed(e),
    };
    let base = state.base_url();
    let name = xml_escape(&state.config.newsletter.name);
    let updated = issues
        .iter()
        .map(|i| i.sent_at)
        .max()
        .unwrap_or_else(chrono::Utc::now)
        .to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <feed xmlns=\"http://www.w3.org/2005/Atom\">\n\
         <title>{name}</title>\n\
         <id>{base}/archive</id>\n\
         <link rel=\"self\" type=\"application/atom+xml\" href=\"{base}/archive/feed.xml\"/>\n\
         <link rel=\"alternate\" type=\"text/html\" href=\"{base}/archive\"/>\n\
         <updated>{updated}</updated>\n\
         <author><name>{}</name></author>\n",
        xml_escape(&state.config.newsletter.from_name)
    );
    for i in &issues {
        xml.push_str(&format!(
            "<entry>\n<title>No. {n}: {subject}</title>\n<id>{base}/archive/{n}</id>\n\
             <link rel=\"alternate\" type=\"text/html\" href=\"{base}/archive/{n}\"/>\n\
             <published>{sent}</published>\n<updated>{sent}</updated>\n\
             <summary>{name} No. {n}, {date}</summary>\n</entry>\n",
            n = i.number,
            subject = xml_escape(&merge::neutral(&i.subject)),
            sent = i.sent_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            date = i.issue_date.format("%Y-%m-%d"),
        ));
    }
    xml.push_str("</feed>\n");
    (
        [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
        xml,
    )
        .into_response()
}
