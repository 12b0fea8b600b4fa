//! Issues for the API and the admin pages alike: saving a revision from
//! the file format, a new issue from the skeleton, the preflight check, a
//! rendering as a given contact, a test message, and finding a contact to
//! preview as. Each takes the [`Actor`] and checks the permission table.

use chrono::NaiveDate;

use super::{require, AppError};
use crate::compose::{preflight, send, CompiledIssue, Issue, LinkTokens, Recipient, SourceError};
use crate::config::Config;
use crate::domain::segment::Segment;
use crate::domain::{Action, Actor, EmailAddress, OrgKind};
use crate::store::issues::{Draft, IssueText, Revision, Saved};
use crate::store::{Contact, Store};

/// A source error as an invalid `source` field with its line and column.
pub fn source_error(e: &SourceError) -> AppError {
    AppError::Invalid(vec![super::error::FieldError {
        field: Some("source".into()),
        line: (e.line > 0).then_some(e.line as u64),
        column: (e.column > 0).then_some(e.column as u64),
        detail: e.message.clone(),
    }])
}

/// Parses an issue's text (`file` names it in errors).
pub fn parse(file: &str, source: &str) -> Result<Issue, AppError> {
    Issue::parse(file, source).map_err(|e| source_error(&e))
}

/// Saves the text as the issue's newest revision (the number comes from
/// its front matter), unless it equals the latest.
pub async fn save(
    store: &Store,
    actor: &Actor,
    source: &str,
    source_path: &str,
) -> Result<(Issue, Saved), AppError> {
    require(actor, Action::IssuesWrite)?;
    let issue = parse(source_path, source)?;
    let saved = store
        .save_issue(&IssueText {
            number: issue.number,
            subject: &issue.subject,
            date: issue.date,
            source_path,
            source,
            actor,
        })
        .await?;
    Ok((issue, saved))
}

/// Starts a new issue from the skeleton, numbered after the highest one,
/// dated `date`. Returns its number.
pub async fn create(store: &Store, actor: &Actor, date: NaiveDate) -> Result<u32, AppError> {
    require(actor, Action::IssuesWrite)?;
    let highest = store
        .list_issues()
        .await?
        .iter()
        .map(|i| i.number)
        .max()
        .unwrap_or(0);
    let number = u32::try_from(highest + 1).map_err(anyhow::Error::from)?;
    let source = crate::compose::issue::skeleton(number, date);
    save(store, actor, &source, "admin").await?;
    Ok(number)
}

/// A revision (the latest when `None`) and the issue it holds.
pub async fn load(
    store: &Store,
    actor: &Actor,
    number: u32,
    revision: Option<i64>,
) -> Result<(Revision, Issue), AppError> {
    require(actor, Action::IssuesRead)?;
    let r = store.issue_revision(number, revision).await?;
    let name = format!("issue {number} revision {}", r.revision);
    let issue = parse(&name, &r.source)?;
    Ok((r, issue))
}

/// An issue as it stands for an account: its latest revision, and the
/// text being edited (the account's autosaved draft, else that revision's).
#[derive(Debug, Clone)]
pub struct Editing {
    pub latest: Revision,
    pub draft: Option<Draft>,
    pub source: String,
}

impl Editing {
    /// Whether the draft differs from the latest revision.
    pub fn unsaved(&self) -> bool {
        self.draft
            .as_ref()
            .is_some_and(|d| d.source != self.latest.source)
    }
}

fn user_id(actor: &Actor) -> Result<i64, AppError> {
    actor.account().map(|a| a.id).ok_or_else(|| {
        AppError::Forbidden(format!(
            "{} has no account to keep drafts for",
            actor.label()
        ))
    })
}

/// What `actor` is editing of issue `number`.
pub async fn editing(store: &Store, actor: &Actor, number: u32) -> Result<Editing, AppError> {
    require(actor, Action::IssuesRead)?;
    let latest = store.issue_revision(number, None).await?;
    let draft = match actor.account() {
        Some(a) => store.draft(number, a.id).await?,
        None => None,
    };
    let source = draft
        .as_ref()
        .map(|d| d.source.clone())
        .unwrap_or_else(|| latest.source.clone());
    Ok(Editing {
        latest,
        draft,
        source,
    })
}

/// Keeps `source` as the actor's draft of issue `number` (autosave): not a
/// revision. Nothing is written when it equals the kept draft, or the latest
/// revision when there is no draft.
pub async fn keep_draft(
    store: &Store,
    actor: &Actor,
    number: u32,
    source: &str,
) -> Result<(), AppError> {
    require(actor, Action::IssuesWrite)?;
    let id = user_id(actor)?;
    let now = editing(store, actor, number).await?;
    let same = match &now.draft {
        Some(d) => d.source == source,
        None => now.latest.source == source,
    };
    if !same {
        store
            .save_draft(number, id, now.latest.revision, source)
            .await?;
    }
    Ok(())
}

/// Throws the actor's draft of issue `number` away; `true` if there was one.
pub async fn discard_draft(store: &Store, actor: &Actor, number: u32) -> Result<bool, AppError> {
    require(actor, Action::IssuesWrite)?;
    Ok(store.discard_draft(number, user_id(actor)?).await?)
}

/// The preflight check of an issue, as the send gate checks it (with
/// tracking and the media library).
pub async fn check(
    store: &Store,
    config: &Config,
    actor: &Actor,
    issue: Issue,
) -> Result<preflight::Report, AppError> {
    require(actor, Action::IssuesPreview)?;
    // As the send gate checks it: tracking and the media library.
    let context = crate::send::gate::context(store, config).await?;
    Ok(preflight::check_with(issue, &config.newsletter, &context))
}

/// Whom a preview is rendered for: a contact, or a sample embassy contact.
pub async fn recipient(store: &Store, contact: Option<i64>) -> Result<Recipient, AppError> {
    match contact {
        Some(id) => {
            let c = store
                .contact_by_id(id)
                .await?
                .ok_or_else(|| AppError::field("contact", format!("no contact with id {id}")))?;
            Ok(Recipient::from_contact(&c, LinkTokens::preview()))
        }
        None => Ok(Recipient::sample(Some(OrgKind::Embassy))),
    }
}

/// The two parts of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Html,
    Text,
}

/// An issue's HTML or text part as `contact` (or the sample) receives it.
pub async fn render(
    store: &Store,
    config: &Config,
    actor: &Actor,
    issue: Issue,
    contact: Option<i64>,
    part: Part,
) -> Result<String, AppError> {
    require(actor, Action::IssuesPreview)?;
    let r = recipient(store, contact).await?;
    let compiled =
        CompiledIssue::compile(issue, &config.newsletter).map_err(|e| source_error(&e))?;
    match part {
        Part::Html => compiled.html_for(&r),
        Part::Text => compiled.text_for(&r),
    }
    .map_err(|e| source_error(&e))
}

/// A test message that went out.
#[derive(Debug, Clone)]
pub struct TestSent {
    pub message_id: String,
    pub to: String,
    /// The SMTP server's reply.
    pub reply: String,
}

/// Why a test message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum TestSendError {
    /// The issue fails its preflight check (the failures).
    #[error("the issue fails its preflight check; fix it before sending a test")]
    Preflight(Vec<preflight::Finding>),
    /// The SMTP server refused or could not be reached.
    #[error("{0}")]
    Smtp(String),
    #[error(transparent)]
    App(#[from] AppError),
}

/// Sends one test message of `issue` (issue `number`) to the actor's own
/// address or one of `admin.test_send_allowlist`, personalised as
/// `contact` (or the sample), through the configured SMTP server. An issue
/// that fails its preflight check is not sent.
pub async fn test_send(
    store: &Store,
    config: &Config,
    actor: &Actor,
    number: u32,
    issue: Issue,
    to: Option<&str>,
    contact: Option<i64>,
) -> Result<TestSent, TestSendError> {
    require(actor, Action::IssuesTestSend)?;
    let own = actor.account().map(|a| a.email.clone()).unwrap_or_default();
    let to = to.map(str::trim).filter(|t| !t.is_empty()).unwrap_or(&own);
    let to = EmailAddress::parse(to).map_err(|e| AppError::field("to", e.to_string()))?;
    let allowed = to.as_str() == own
        || config
            .admin
            .test_send_allowlist
            .iter()
            .any(|a| a.trim().eq_ignore_ascii_case(to.as_str()));
    if !allowed {
        return Err(AppError::Forbidden(format!(
            "test messages go to your own address ({own}) or to one in admin.test_send_allowlist"
        ))
        .into());
    }
    let context = crate::send::gate::context(store, config)
        .await
        .map_err(AppError::from)?;
    let report = preflight::check_with(issue.clone(), &config.newsletter, &context);
    if !report.passed() {
        return Err(TestSendError::Preflight(
            report
                .findings
                .into_iter()
                .filter(|f| f.severity == preflight::Severity::Failure)
                .collect(),
        ));
    }
    let mut r = recipient(store, contact).await?;
    r.email = to.as_str().to_string();
    let compiled =
        CompiledIssue::compile(issue, &config.newsletter).map_err(|e| source_error(&e))?;
    let msg = compiled.render_for(&r).map_err(|e| source_error(&e))?;
    let reply = send::send_one(&config.smtp, &msg)
        .await
        .map_err(|e| TestSendError::Smtp(format!("{e:#}")))?;
    store
        .record_audit(
            actor,
            "issue.test_send",
            "issue",
            &number.to_string(),
            serde_json::json!({"to": to.as_str(), "message_id": msg.message_id, "reply": reply}),
        )
        .await
        .map_err(AppError::from)?;
    Ok(TestSent {
        message_id: msg.message_id,
        to: msg.to,
        reply,
    })
}

/// Contacts whose name, organisation or address contains `query`
/// (case-insensitively), in address order, at most `limit`: whom an editor
/// can preview an issue as.
pub async fn find_contacts(
    store: &Store,
    actor: &Actor,
    query: &str,
    limit: i64,
) -> Result<Vec<Contact>, AppError> {
    require(actor, Action::IssuesPreview)?;
    let q: String = query
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect();
    if q.is_empty() {
        return Ok(store.list_contacts(None, Some(limit), 0).await?);
    }
    let quoted = format!("\"{}\"", q.replace('\\', "\\\\").replace('"', "\\\""));
    let text = format!("name ~ {quoted} or organisation ~ {quoted} or email ~ {quoted}");
    let segment: Segment = text
        .parse()
        .map_err(|e: crate::domain::segment::SegmentError| AppError::field("q", e.to_string()))?;
    Ok(store.list_contacts(Some(&segment), Some(limit), 0).await?)
}
