//! Issues: their revisions, saving a new one, the preflight check, a
//! preview rendered as a given contact, and a test message.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dto::{IssueOut, RevisionOut};
use super::problem::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, InvalidParam};
use super::ApiShared;
use crate::app::issues::{self as app_issues, Part, TestSendError};
use crate::compose::Issue;
use crate::store::issues::Saved;
use crate::web::auth::Caller;

pub fn routes() -> OpenApiRouter<ApiShared> {
    OpenApiRouter::new()
        .routes(routes!(list_issues, save_issue))
        .routes(routes!(get_issue))
        .routes(routes!(get_revision))
        .routes(routes!(check_issue))
        .routes(routes!(preview_issue))
        .routes(routes!(test_send))
        .routes(routes!(get_draft, put_draft, delete_draft))
}

fn number(n: i64) -> ApiResult<u32> {
    u32::try_from(n).map_err(|_| ApiError::not_found(format!("no issue number {n}")))
}

/// Every issue, newest number first.
#[utoipa::path(get, path = "/api/v1/issues", tag = "issues",
    extensions(("x-permission" = json!("issues.read"))),
    responses((status = 200, description = "Issues", body = Vec<IssueOut>)))]
pub async fn list_issues(State(state): State<ApiShared>) -> ApiResult<Json<Vec<IssueOut>>> {
    let list = state.store.list_issues().await?;
    Ok(Json(list.iter().map(IssueOut::from).collect()))
}

/// An issue with its revision history.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssueDetail {
    pub issue: IssueOut,
    pub revisions: Vec<RevisionOut>,
}

/// An issue and its revisions (without their texts).
#[utoipa::path(get, path = "/api/v1/issues/{number}", tag = "issues",
    extensions(("x-permission" = json!("issues.read"))),
    params(("number" = i64, Path, description = "Issue number")),
    responses((status = 200, description = "The issue", body = IssueDetail)))]
pub async fn get_issue(
    State(state): State<ApiShared>,
    ApiPath(n): ApiPath<i64>,
) -> ApiResult<Json<IssueDetail>> {
    let n = number(n)?;
    let issue = state
        .store
        .issue(n)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no issue number {n}")))?;
    let revs = state.store.issue_history(n).await?;
    Ok(Json(IssueDetail {
        issue: IssueOut::from(&issue),
        revisions: revs.iter().map(|r| RevisionOut::new(r, false)).collect(),
    }))
}

/// One revision with its text.
#[utoipa::path(get, path = "/api/v1/issues/{number}/revisions/{revision}", tag = "issues",
    extensions(("x-permission" = json!("issues.read"))),
    params(("number" = i64, Path, description = "Issue number"), ("revision" = i64, Path, description = "Revision")),
    responses((status = 200, description = "The revision", body = RevisionOut)))]
pub async fn get_revision(
    State(state): State<ApiShared>,
    ApiPath((n, rev)): ApiPath<(i64, i64)>,
) -> ApiResult<Json<RevisionOut>> {
    let r = state.store.issue_revision(number(n)?, Some(rev)).await?;
    Ok(Json(RevisionOut::new(&r, true)))
}

/// An issue's source file (Markdown with TOML front matter); its number
/// comes from the front matter.
#[derive(Debug, Deserialize, ToSchema)]
pub struct IssueSourceIn {
    pub source: String,
    /// Where the editor keeps the file [default: api].
    pub source_path: Option<String>,
}

/// What saving did.
#[derive(Debug, Serialize, ToSchema)]
pub struct SavedOut {
    pub number: i64,
    /// created, revised or unchanged
    pub outcome: String,
    pub revision: i64,
}

/// Saves an issue's text as its newest revision (unless unchanged). A
/// parse error is a 422 problem with its line and column.
#[utoipa::path(post, path = "/api/v1/issues", tag = "issues",
    extensions(("x-permission" = json!("issues.write"))),
    request_body = IssueSourceIn,
    responses((status = 200, description = "Saved", body = SavedOut)))]
pub async fn save_issue(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiJson(input): ApiJson<IssueSourceIn>,
) -> ApiResult<Json<SavedOut>> {
    let path = input
        .source_path
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "api".into());
    let (issue, saved) =
        app_issues::save(&state.store, &caller.actor, &input.source, &path).await?;
    let (outcome, revision) = match saved {
        Saved::Created => ("created", 1),
        Saved::Revised(r) => ("revised", r),
        Saved::Unchanged(r) => ("unchanged", r),
    };
    Ok(Json(SavedOut {
        number: i64::from(issue.number),
        outcome: outcome.into(),
        revision,
    }))
}

/// Which revision, and for whom.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RenderQuery {
    /// The revision [default: the latest].
    pub revision: Option<i64>,
    /// Render as this contact [default: a sample embassy contact].
    pub contact: Option<i64>,
    /// html or text [default: html].
    pub format: Option<String>,
    /// Use the caller's autosaved draft (the latest revision when there
    /// is none) instead of a revision [default: false].
    pub draft: Option<bool>,
}

async fn load(
    state: &ApiShared,
    caller: &Caller,
    n: i64,
    revision: Option<i64>,
) -> ApiResult<Issue> {
    let (_, issue) = app_issues::load(&state.store, &caller.actor, number(n)?, revision).await?;
    Ok(issue)
}

/// The issue a preview or check is about: a revision, or the caller's draft.
async fn load_for(state: &ApiShared, caller: &Caller, n: i64, q: &RenderQuery) -> ApiResult<Issue> {
    if q.draft != Some(true) {
        return load(state, caller, n, q.revision).await;
    }
    let n = number(n)?;
    let editing = app_issues::editing(&state.store, &caller.actor, n).await?;
    Ok(app_issues::parse(
        &format!("issue {n} (draft)"),
        &editing.source,
    )?)
}

/// The text an account is editing: its autosaved draft, or the latest
/// revision when it has none.
#[derive(Debug, Serialize, ToSchema)]
pub struct DraftOut {
    pub number: i64,
    /// Whether this is an autosaved draft (else the latest revision).
    pub draft: bool,
    /// The latest revision when the draft was written (or the latest).
    pub base_revision: i64,
    pub latest_revision: i64,
    pub source: String,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl DraftOut {
    fn new(n: u32, e: &app_issues::Editing) -> DraftOut {
        DraftOut {
            number: i64::from(n),
            draft: e.draft.is_some(),
            base_revision: e
                .draft
                .as_ref()
                .map(|d| d.base_revision)
                .unwrap_or(e.latest.revision),
            latest_revision: e.latest.revision,
            source: e.source.clone(),
            updated_at: e
                .draft
                .as_ref()
                .map(|d| d.updated_at)
                .unwrap_or(e.latest.created_at),
        }
    }
}

/// The caller's autosaved draft of an issue (the latest revision's text
/// when there is none).
#[utoipa::path(get, path = "/api/v1/issues/{number}/draft", tag = "issues",
    extensions(("x-permission" = json!("issues.read"))),
    params(("number" = i64, Path, description = "Issue number")),
    responses((status = 200, description = "The text being edited", body = DraftOut)))]
pub async fn get_draft(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiPath(n): ApiPath<i64>,
) -> ApiResult<Json<DraftOut>> {
    let n = number(n)?;
    let e = app_issues::editing(&state.store, &caller.actor, n).await?;
    Ok(Json(DraftOut::new(n, &e)))
}

/// An issue's text to keep as the caller's draft.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DraftIn {
    pub source: String,
}

/// Keeps the text as the caller's draft of the issue (what the editor's
/// autosave does): not a revision, and seen by no one else. Text that
/// does not parse is kept too.
#[utoipa::path(put, path = "/api/v1/issues/{number}/draft", tag = "issues",
    extensions(("x-permission" = json!("issues.write"))),
    params(("number" = i64, Path, description = "Issue number")),
    request_body = DraftIn,
    responses((status = 200, description = "Kept", body = DraftOut)))]
pub async fn put_draft(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiPath(n): ApiPath<i64>,
    ApiJson(input): ApiJson<DraftIn>,
) -> ApiResult<Json<DraftOut>> {
    let n = number(n)?;
    app_issues::keep_draft(&state.store, &caller.actor, n, &input.source).await?;
    let e = app_issues::editing(&state.store, &caller.actor, n).await?;
    Ok(Json(DraftOut::new(n, &e)))
}

/// Whether a draft was thrown away.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiscardedOut {
    pub discarded: bool,
}

/// Throws the caller's draft of the issue away.
#[utoipa::path(delete, path = "/api/v1/issues/{number}/draft", tag = "issues",
    extensions(("x-permission" = json!("issues.write"))),
    params(("number" = i64, Path, description = "Issue number")),
    responses((status = 200, description = "Done", body = DiscardedOut)))]
pub async fn delete_draft(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiPath(n): ApiPath<i64>,
) -> ApiResult<Json<DiscardedOut>> {
    let discarded = app_issues::discard_draft(&state.store, &caller.actor, number(n)?).await?;
    Ok(Json(DiscardedOut { discarded }))
}

/// A preflight finding, where it is.
#[derive(Debug, Serialize, ToSchema)]
pub struct FindingOut {
    /// failure or warning
    pub severity: String,
    pub rule: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The preflight report.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckOut {
    pub passed: bool,
    pub failures: usize,
    pub warnings: usize,
    pub html_bytes: usize,
    pub text_bytes: usize,
    pub findings: Vec<FindingOut>,
}

/// Runs the preflight check on a revision.
#[utoipa::path(post, path = "/api/v1/issues/{number}/check", tag = "issues",
    extensions(("x-permission" = json!("issues.preview"))),
    params(("number" = i64, Path, description = "Issue number"), RenderQuery),
    responses((status = 200, description = "The report", body = CheckOut)))]
pub async fn check_issue(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiPath(n): ApiPath<i64>,
    ApiQuery(q): ApiQuery<RenderQuery>,
) -> ApiResult<Json<CheckOut>> {
    let issue = load_for(&state, &caller, n, &q).await?;
    let r = app_issues::check(&state.store, &state.config, &caller.actor, issue).await?;
    Ok(Json(CheckOut {
        passed: r.passed(),
        failures: r.failures(),
        warnings: r.warnings(),
        html_bytes: r.html_bytes,
        text_bytes: r.text_bytes,
        findings: r
            .findings
            .iter()
            .map(|f| FindingOut {
                severity: serde_json::to_value(f.severity)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                rule: f.rule.to_string(),
                line: f.line,
                column: f.column,
                message: f.message.clone(),
            })
            .collect(),
    }))
}

/// The HTML or text part of a revision as a contact will receive it.
#[utoipa::path(get, path = "/api/v1/issues/{number}/preview", tag = "issues",
    extensions(("x-permission" = json!("issues.preview"))),
    params(("number" = i64, Path, description = "Issue number"), RenderQuery),
    responses(
        (status = 200, description = "The rendered part", content(
            (String = "text/html"),
            (String = "text/plain"),
        )),
    ))]
pub async fn preview_issue(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiPath(n): ApiPath<i64>,
    ApiQuery(q): ApiQuery<RenderQuery>,
) -> ApiResult<Response> {
    let (part, ctype) = match q.format.as_deref().unwrap_or("html") {
        "html" => (Part::Html, "text/html; charset=utf-8"),
        "text" => (Part::Text, "text/plain; charset=utf-8"),
        _ => return Err(ApiError::invalid("format", None, "is html or text")),
    };
    let issue = load_for(&state, &caller, n, &q).await?;
    let body = app_issues::render(
        &state.store,
        &state.config,
        &caller.actor,
        issue,
        q.contact,
        part,
    )
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, ctype),
            (header::CONTENT_SECURITY_POLICY, crate::web::ISSUE_CSP),
        ],
        body,
    )
        .into_response())
}

/// A test message.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct TestSendIn {
    /// The recipient: your own address [default], or one of
    /// `admin.test_send_allowlist`.
    pub to: Option<String>,
    /// Personalise as this contact [default: a sample].
    pub contact: Option<i64>,
    /// The revision [default: the latest].
    pub revision: Option<i64>,
}

/// What the server said.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestSentOut {
    pub message_id: String,
    pub to: String,
    /// The SMTP server's reply.
    pub reply: String,
}

/// Sends one test message of a revision through the configured SMTP
/// server, to the caller's own address or an allowed one. An issue that
/// fails its preflight check is not sent (422).
#[utoipa::path(post, path = "/api/v1/issues/{number}/test-send", tag = "issues",
    extensions(("x-permission" = json!("issues.test_send"))),
    params(("number" = i64, Path, description = "Issue number")),
    request_body = TestSendIn,
    responses(
        (status = 200, description = "Sent", body = TestSentOut),
        (status = 502, description = "The SMTP server refused or could not be reached", body = super::problem::Problem, content_type = "application/problem+json"),
    ))]
pub async fn test_send(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiPath(n): ApiPath<i64>,
    ApiJson(input): ApiJson<TestSendIn>,
) -> ApiResult<Json<TestSentOut>> {
    let issue = load(&state, &caller, n, input.revision).await?;
    let sent = app_issues::test_send(
        &state.store,
        &state.config,
        &caller.actor,
        number(n)?,
        issue,
        input.to.as_deref(),
        input.contact,
    )
    .await
    .map_err(|e| match e {
        TestSendError::Preflight(ref failures) => {
            let mut p = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
                .with_type("preflight");
            p.0.errors = failures
                .iter()
                .map(|f| InvalidParam {
                    field: Some("source".into()),
                    line: Some(f.line as u64),
                    column: Some(f.column as u64),
                    detail: f.message.clone(),
                })
                .collect();
            p
        }
        TestSendError::Smtp(m) => ApiError::new(StatusCode::BAD_GATEWAY, m).with_type("smtp"),
        TestSendError::App(a) => ApiError::from(a),
    })?;
    Ok(Json(TestSentOut {
        message_id: sent.message_id,
        to: sent.to,
        reply: sent.reply,
    }))
}
