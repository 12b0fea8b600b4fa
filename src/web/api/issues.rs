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
use crate::compose::{preflight, send, CompiledIssue, Issue, LinkTokens, Recipient, SourceError};
use crate::domain::{EmailAddress, OrgKind};
use crate::send::gate;
use crate::store::issues::{IssueText, Saved};
use crate::web::auth::Caller;

pub fn routes() -> OpenApiRouter<ApiShared> {
    OpenApiRouter::new()
        .routes(routes!(list_issues, save_issue))
        .routes(routes!(get_issue))
        .routes(routes!(get_revision))
        .routes(routes!(check_issue))
        .routes(routes!(preview_issue))
        .routes(routes!(test_send))
}

fn number(n: i64) -> ApiResult<u32> {
    u32::try_from(n).map_err(|_| ApiError::not_found(format!("no issue number {n}")))
}

/// A source error as a problem with its line and column.
fn source_problem(e: &SourceError) -> ApiError {
    let mut p = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()).with_type("invalid");
    p.0.errors.push(InvalidParam {
        field: Some("source".into()),
        line: (e.line > 0).then_some(e.line as u64),
        column: (e.column > 0).then_some(e.column as u64),
        detail: e.message.clone(),
    });
    p
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
    let issue = Issue::parse(&path, &input.source).map_err(|e| source_problem(&e))?;
    let saved = state
        .store
        .save_issue(&IssueText {
            number: issue.number,
            subject: &issue.subject,
            date: issue.date,
            source_path: &path,
            source: &input.source,
            actor: &caller.actor,
        })
        .await?;
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
}

async fn load(state: &ApiShared, n: i64, revision: Option<i64>) -> ApiResult<Issue> {
    let n = number(n)?;
    let r = state.store.issue_revision(n, revision).await?;
    let name = format!("issue {n} revision {}", r.revision);
    Issue::parse(&name, &r.source).map_err(|e| source_problem(&e))
}

async fn recipient(state: &ApiShared, contact: Option<i64>) -> ApiResult<Recipient> {
    match contact {
        Some(id) => {
            let c = state.store.contact_by_id(id).await?.ok_or_else(|| {
                ApiError::invalid("contact", None, format!("no contact with id {id}"))
            })?;
            Ok(Recipient::from_contact(&c, LinkTokens::preview()))
        }
        None => Ok(Recipient::sample(Some(OrgKind::Embassy))),
    }
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
    ApiPath(n): ApiPath<i64>,
    ApiQuery(q): ApiQuery<RenderQuery>,
) -> ApiResult<Json<CheckOut>> {
    let issue = load(&state, n, q.revision).await?;
    // As the send gate checks it: tracking and the media library.
    let context = gate::context(&state.store, &state.config).await?;
    let r = preflight::check_with(issue, &state.config.newsletter, &context);
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
    ApiPath(n): ApiPath<i64>,
    ApiQuery(q): ApiQuery<RenderQuery>,
) -> ApiResult<Response> {
    let format = q.format.as_deref().unwrap_or("html");
    if !matches!(format, "html" | "text") {
        return Err(ApiError::invalid("format", None, "is html or text"));
    }
    let issue = load(&state, n, q.revision).await?;
    let r = recipient(&state, q.contact).await?;
    let compiled =
        CompiledIssue::compile(issue, &state.config.newsletter).map_err(|e| source_problem(&e))?;
    let (body, ctype) = if format == "html" {
        (
            compiled.html_for(&r).map_err(|e| source_problem(&e))?,
            "text/html; charset=utf-8",
        )
    } else {
        (
            compiled.text_for(&r).map_err(|e| source_problem(&e))?,
            "text/plain; charset=utf-8",
        )
    };
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
    let own = caller
        .actor
        .account()
        .map(|a| a.email.clone())
        .unwrap_or_default();
    let to = input.to.clone().unwrap_or_else(|| own.clone());
    let to = EmailAddress::parse(&to).map_err(|e| ApiError::invalid("to", None, e.to_string()))?;
    let allowed = to.as_str() == own
        || state
            .config
            .admin
            .test_send_allowlist
            .iter()
            .any(|a| a.trim().eq_ignore_ascii_case(to.as_str()));
    if !allowed {
        return Err(ApiError::forbidden(format!(
            "test messages go to your own address ({own}) or to one in admin.test_send_allowlist"
        )));
    }
    let issue = load(&state, n, input.revision).await?;
    let context = gate::context(&state.store, &state.config).await?;
    let report = preflight::check_with(issue.clone(), &state.config.newsletter, &context);
    if !report.passed() {
        return Err(ApiError::preflight(
            "the issue fails its preflight check; fix it before sending a test",
            report
                .findings
                .iter()
                .filter(|f| f.severity == preflight::Severity::Failure),
        ));
    }
    let mut r = recipient(&state, input.contact).await?;
    r.email = to.as_str().to_string();
    let compiled =
        CompiledIssue::compile(issue, &state.config.newsletter).map_err(|e| source_problem(&e))?;
    let msg = compiled.render_for(&r).map_err(|e| source_problem(&e))?;
    let reply = send::send_one(&state.config.smtp, &msg)
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, format!("{e:#}")).with_type("smtp"))?;
    state
        .store
        .record_audit(
            &caller.actor,
            "issue.test_send",
            "issue",
            &n.to_string(),
            serde_json::json!({"to": to.as_str(), "message_id": msg.message_id, "reply": reply}),
        )
        .await?;
    Ok(Json(TestSentOut {
        message_id: msg.message_id,
        to: msg.to,
        reply,
    }))
}
