//! RFC 9457 problem details (`application/problem+json`) for every API
//! error, with the field, line and column of each invalid input; and the
//! extractors ([`ApiJson`], [`ApiQuery`], [`ApiPath`]) whose rejections are
//! problems too, so no error leaves the API as plain text.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppError;
use crate::compose::preflight::Finding;
use crate::send::gate::Refusal;

/// One invalid input: which field, where in it, and what is wrong.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InvalidParam {
    /// The field (`segment`, `password`, `body`…).
    pub field: Option<String>,
    /// 1-based line, for inputs of several lines (a CSV file, an issue).
    pub line: Option<u64>,
    /// 1-based column within the field or line.
    pub column: Option<u64>,
    pub detail: String,
}

/// An RFC 9457 problem.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`about:blank` or a
    /// `urn:whatsup:problem:…`).
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The invalid inputs, when the request was invalid.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<InvalidParam>,
    /// Seconds to wait before trying again (429).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// The send gate's preflight failures (a refused create, schedule,
    /// approval or start), each with its file, line and column.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<PreflightFinding>,
    /// With `findings`: whether `override_check` could let them pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overridable: Option<bool>,
}

/// One failure of an issue revision's preflight.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PreflightFinding {
    /// The rule (`image-alt-missing`, `merge-tag`…).
    pub rule: String,
    /// The issue and revision, or the template, the failure is in.
    pub file: String,
    /// 1-based line.
    pub line: u64,
    /// 1-based column.
    pub column: u64,
    pub message: String,
}

impl ApiError {
    /// Adds preflight failures.
    fn with_findings<'a>(mut self, failures: impl IntoIterator<Item = &'a Finding>) -> ApiError {
        self.0.findings = failures
            .into_iter()
            .map(|f| PreflightFinding {
                rule: f.rule.to_string(),
                file: f.file.clone(),
                line: f.line as u64,
                column: f.column as u64,
                message: f.message.clone(),
            })
            .collect();
        self
    }

    /// A preflight that failed (422), with its failures.
    pub fn preflight<'a>(
        detail: impl Into<String>,
        failures: impl IntoIterator<Item = &'a Finding>,
    ) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
            .with_type("preflight")
            .with_findings(failures)
    }

    /// Adds a send gate's refusal: its failures and whether an override
    /// could let them pass.
    fn with_refusal(mut self, r: &Refusal) -> ApiError {
        self = self.with_findings(&r.failures);
        self.0.overridable = Some(r.overridable);
        self
    }
}

/// An API error: a problem with its status (boxed: results stay small).
#[derive(Debug)]
pub struct ApiError(pub Box<Problem>);

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> ApiError {
        ApiError(Box::new(Problem {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
            findings: Vec::new(),
            overridable: None,
        }))
    }

    /// Names the kind of problem: `urn:whatsup:problem:<kind>`.
    pub fn with_type(mut self, kind: &str) -> ApiError {
        self.0.kind = format!("urn:whatsup:problem:{kind}");
        self
    }

    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, detail)
    }
    pub fn unauthorized(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, detail).with_type("unauthorized")
    }
    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, detail).with_type("forbidden")
    }
    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, detail).with_type("not-found")
    }
    pub fn conflict(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, detail).with_type("conflict")
    }
    pub fn too_many(retry_after: u64, detail: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, detail).with_type("throttled");
        e.0.retry_after = Some(retry_after);
        e
    }
    /// An invalid field, at a column when known.
    pub fn invalid(field: &str, column: Option<u64>, detail: impl Into<String>) -> ApiError {
        let detail = detail.into();
        let mut e = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{field}: {detail}"),
        )
        .with_type("invalid");
        e.0.errors.push(InvalidParam {
            field: Some(field.into()),
            line: None,
            column,
            detail,
        });
        e
    }
    /// A failure of ours: logged in full, answered without details.
    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        tracing::error!("API: {e:#}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the server failed; the details are in its log",
        )
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> ApiError {
        match e {
            AppError::Invalid(list) => {
                let detail = AppError::Invalid(list.clone()).to_string();
                let mut a =
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, detail).with_type("invalid");
                a.0.errors = list
                    .into_iter()
                    .map(|f| InvalidParam {
                        field: f.field,
                        line: f.line,
                        column: f.column,
                        detail: f.detail,
                    })
                    .collect();
                a
            }
            AppError::NotFound(m) => ApiError::not_found(m),
            AppError::Conflict(m) => ApiError::conflict(m),
            AppError::Forbidden(m) => ApiError::forbidden(m),
            AppError::Refused(r) => ApiError::preflight(r.to_string(), None).with_refusal(&r),
            AppError::Blocked {
                id,
                reason,
                refusal,
            } => {
                let e = ApiError::conflict(format!(
                    "campaign {id} is blocked; nothing was sent.\n{reason}"
                ))
                .with_type("blocked");
                match refusal {
                    Some(r) => e.with_refusal(&r),
                    None => e,
                }
            }
            AppError::Internal(e) => ApiError::internal(format!("{e:#}")),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        ApiError::from(AppError::from(e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut res = (status, axum::Json(&*self.0)).into_response();
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"whatsup\""),
            );
        }
        if let Some(secs) = self.0.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

/// The result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// A JSON body whose rejection is a problem (422 with the line and column
/// of a syntax error, 415 without the JSON content type).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the body as Content-Type: application/json",
            )),
            Err(JsonRejection::JsonDataError(e)) => Err(json_problem(&e.body_text())),
            Err(JsonRejection::JsonSyntaxError(e)) => Err(json_problem(&e.body_text())),
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

/// A serde_json error's text ends with "at line L column C": keep those.
fn json_problem(text: &str) -> ApiError {
    let (line, column) = text
        .rsplit_once(" at line ")
        .and_then(|(_, rest)| rest.split_once(" column "))
        .map(|(l, c)| (l.trim().parse().ok(), c.trim().parse().ok()))
        .unwrap_or((None, None));
    let mut e =
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, text.to_string()).with_type("invalid");
    e.0.errors.push(InvalidParam {
        field: Some("body".into()),
        line,
        column,
        detail: text.to_string(),
    });
    e
}

/// Query parameters whose rejection is a problem (422).
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| {
                ApiError::invalid("query", None, e.body_text()).with_type("invalid")
            })
    }
}

/// Path parameters whose rejection is a problem (404: no such object).
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e: PathRejection| ApiError::not_found(e.body_text()))
    }
}
