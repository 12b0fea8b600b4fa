//! Accounts, API tokens, the audit trail, the effective settings, and
//! bounces with their report.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dto::{AuditOut, TokenOut, UserOut};
use super::problem::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use super::ApiShared;
use crate::app::accounts;
use crate::domain::Role;
use crate::store::audit::AuditFilter;
use crate::store::bounces::{BounceFilter, BounceReportRow, BounceRow};
use crate::web::auth::Caller;

pub fn routes() -> OpenApiRouter<ApiShared> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user))
        .routes(routes!(set_password))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
        .routes(routes!(list_audit))
        .routes(routes!(settings))
        .routes(routes!(list_bounces))
        .routes(routes!(bounce_report))
}

fn role(field: &str, s: &str) -> ApiResult<Role> {
    Role::parse(s).map_err(|e| ApiError::invalid(field, None, e.to_string()))
}

/// Every account.
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    extensions(("x-permission" = json!("users.manage"))),
    responses((status = 200, description = "Accounts", body = Vec<UserOut>)))]
pub async fn list_users(
    State(state): State<ApiShared>,
    caller: Caller,
) -> ApiResult<Json<Vec<UserOut>>> {
    let list = accounts::list_users(&state.store, &caller.actor).await?;
    Ok(Json(list.iter().map(UserOut::from).collect()))
}

/// A new account.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UserIn {
    pub email: String,
    #[serde(default)]
    pub name: String,
    /// viewer, editor, operator or admin
    pub role: String,
    /// At least 12 characters, not a common one; without it the account
    /// cannot log in until a password is set.
    pub password: Option<String>,
}

/// Adds an account.
#[utoipa::path(post, path = "/api/v1/users", tag = "users",
    extensions(("x-permission" = json!("users.manage"))),
    request_body = UserIn,
    responses((status = 201, description = "Added", body = UserOut)))]
pub async fn create_user(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiJson(input): ApiJson<UserIn>,
) -> ApiResult<(StatusCode, Json<UserOut>)> {
    let role = role("role", &input.role)?;
    let u = accounts::add_user(
        &state.store,
        &caller.actor,
        &input.email,
        &input.name,
        role,
        input.password.as_deref(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(UserOut::from(&u))))
}

/// One account.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users",
    extensions(("x-permission" = json!("users.manage"))),
    params(("id" = i64, Path, description = "Account id")),
    responses((status = 200, description = "The account", body = UserOut)))]
pub async fn get_user(
    State(state): State<ApiShared>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<UserOut>> {
    Ok(Json(UserOut::from(
        &accounts::user(&state.store, id).await?,
    )))
}

/// Changes to an account.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UserPatchIn {
    /// viewer, editor, operator or admin
    pub role: Option<String>,
    /// Disabling ends its sessions and stops its tokens at once.
    pub disabled: Option<bool>,
}

/// Changes an account's role, or disables or enables it. An admin cannot
/// change their own account, nor leave no enabled admin (409).
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users",
    extensions(("x-permission" = json!("users.manage"))),
    params(("id" = i64, Path, description = "Account id")),
    request_body = UserPatchIn,
    responses((status = 200, description = "Changed", body = UserOut)))]
pub async fn update_user(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(input): ApiJson<UserPatchIn>,
) -> ApiResult<Json<UserOut>> {
    let mut u = accounts::user(&state.store, id).await?;
    if let Some(r) = &input.role {
        u = accounts::set_role(&state.store, &caller.actor, id, role("role", r)?).await?;
    }
    if let Some(d) = input.disabled {
        u = accounts::set_disabled(&state.store, &caller.actor, id, d).await?;
    }
    Ok(Json(UserOut::from(&u)))
}

/// A new password.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PasswordIn {
    pub password: String,
}

/// Sets an account's password; its sessions end.
#[utoipa::path(post, path = "/api/v1/users/{id}/password", tag = "users",
    extensions(("x-permission" = json!("users.manage"))),
    params(("id" = i64, Path, description = "Account id")),
    request_body = PasswordIn,
    responses((status = 200, description = "Set", body = UserOut)))]
pub async fn set_password(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(input): ApiJson<PasswordIn>,
) -> ApiResult<Json<UserOut>> {
    let u = accounts::reset_password(&state.store, &caller.actor, id, &input.password).await?;
    Ok(Json(UserOut::from(&u)))
}

/// Listing tokens.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// Only this account's tokens.
    pub user_id: Option<i64>,
}

/// API tokens, newest first (never their secrets).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    extensions(("x-permission" = json!("tokens.manage"))),
    params(TokenQuery),
    responses((status = 200, description = "Tokens", body = Vec<TokenOut>)))]
pub async fn list_tokens(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiQuery(q): ApiQuery<TokenQuery>,
) -> ApiResult<Json<Vec<TokenOut>>> {
    let list = accounts::list_tokens(&state.store, &caller.actor, q.user_id).await?;
    Ok(Json(list.iter().map(TokenOut::from).collect()))
}

/// A new token.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenIn {
    /// The account the token acts as (with its role).
    pub user_id: i64,
    /// What it is for.
    pub name: String,
}

/// A new token with its secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenCreated {
    pub token: TokenOut,
    pub secret: String,
}

/// Creates an API token; its secret is in this answer only.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens",
    extensions(("x-permission" = json!("tokens.manage"))),
    request_body = TokenIn,
    responses((status = 201, description = "Created", body = TokenCreated)))]
pub async fn create_token(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiJson(input): ApiJson<TokenIn>,
) -> ApiResult<(StatusCode, Json<TokenCreated>)> {
    let (t, secret) =
        accounts::create_token(&state.store, &caller.actor, input.user_id, &input.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            token: TokenOut::from(&t),
            secret,
        }),
    ))
}

/// Revokes a token: it stops working at once.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    extensions(("x-permission" = json!("tokens.manage"))),
    params(("id" = i64, Path, description = "Token id")),
    responses((status = 200, description = "Revoked", body = TokenOut)))]
pub async fn revoke_token(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<TokenOut>> {
    let t = accounts::revoke_token(&state.store, &caller.actor, id).await?;
    Ok(Json(TokenOut::from(&t)))
}

/// Filtering the audit trail.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only entries at or after this time (RFC 3339).
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only entries whose actor contains this text.
    pub actor: Option<String>,
    /// Only entries about this kind of object (contact, campaign, user…).
    pub object_kind: Option<String>,
    /// Only entries about this object (with object_kind).
    pub object_id: Option<String>,
    /// Only entries with an id below this one (`next_before` of the previous page).
    pub before: Option<i64>,
    /// At most this many (1 to 1000, default 100).
    pub limit: Option<i64>,
}

/// A page of the audit trail.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditOut>,
    /// Pass as `before` for the next (older) page; null at the end.
    pub next_before: Option<i64>,
}

/// The audit trail, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
    extensions(("x-permission" = json!("audit.read"))),
    params(AuditQuery),
    responses((status = 200, description = "Entries", body = AuditPage)))]
pub async fn list_audit(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    let page = accounts::audit(
        &state.store,
        &caller.actor,
        AuditFilter {
            since: q.since,
            actor: q.actor,
            object_kind: q.object_kind,
            object_id: q.object_id,
            before: q.before,
            limit: q.limit.unwrap_or(100),
        },
    )
    .await?;
    Ok(Json(AuditPage {
        items: page.items.iter().map(AuditOut::from).collect(),
        next_before: page.next_before,
    }))
}

/// The effective settings, secrets redacted.
#[utoipa::path(get, path = "/api/v1/settings", tag = "settings",
    extensions(("x-permission" = json!("settings.show"))),
    responses((status = 200, description = "The settings by section", body = Object)))]
pub async fn settings(State(state): State<ApiShared>) -> ApiResult<Json<serde_json::Value>> {
    let value = state.config.redacted().map_err(ApiError::internal)?;
    Ok(Json(
        serde_json::to_value(value).map_err(ApiError::internal)?,
    ))
}

/// Filtering bounces.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BounceQuery {
    /// Only events at or after this time (RFC 3339).
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only this kind: hard, soft, complaint, delay, auto_reply, unknown, unsubscribe.
    pub kind: Option<String>,
    /// Only this reason: user_unknown, mailbox_full, spam_complaint…
    pub reason: Option<String>,
    /// Only verified (true) or only unverified (false) events.
    pub verified: Option<bool>,
    /// At most this many (1 to 10000, default 500; lists only).
    pub limit: Option<i64>,
}

impl BounceQuery {
    /// The store's filter.
    pub fn filter(&self) -> BounceFilter {
        let word = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
        };
        BounceFilter {
            since: self.since,
            kind: word(&self.kind),
            reason: word(&self.reason),
            verified: self.verified,
            limit: self.limit.unwrap_or(500).clamp(1, 10_000),
        }
    }
}

/// A bounce, complaint or other report.
#[derive(Debug, Serialize, ToSchema)]
pub struct BounceOut {
    pub id: i64,
    pub contact_id: Option<i64>,
    pub campaign_id: Option<i64>,
    pub email: String,
    pub kind: String,
    pub reason: String,
    /// The enhanced status code, e.g. 5.1.1.
    pub status: String,
    pub diagnostic: String,
    /// Where it came from: smtp, mailbox, ses, sendgrid, postmark…
    pub source: String,
    pub matched_by: String,
    /// Matched by an identifier nobody else can forge (VERP, the signed
    /// header, a random Message-ID, an SMTP rejection…). Unverified events
    /// change no status.
    pub verified: bool,
    /// What was done to the contact.
    pub action: String,
    pub contact_status: Option<String>,
    pub organisation: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<BounceRow> for BounceOut {
    fn from(b: BounceRow) -> Self {
        BounceOut {
            id: b.id,
            contact_id: b.contact_id,
            campaign_id: b.campaign_id,
            email: b.email,
            kind: b.kind,
            reason: b.reason,
            status: b.status,
            diagnostic: b.diagnostic,
            source: b.source,
            matched_by: b.matched_by,
            verified: b.verified,
            action: b.action,
            contact_status: b.contact_status,
            organisation: b.organisation,
            created_at: b.created_at,
        }
    }
}

/// Bounce events, newest first, filtered by time, kind, reason and whether
/// they were verified.
#[utoipa::path(get, path = "/api/v1/bounces", tag = "bounces",
    extensions(("x-permission" = json!("bounces.read"))),
    params(BounceQuery),
    responses((status = 200, description = "Bounces", body = Vec<BounceOut>)))]
pub async fn list_bounces(
    State(state): State<ApiShared>,
    ApiQuery(q): ApiQuery<BounceQuery>,
) -> ApiResult<Json<Vec<BounceOut>>> {
    let rows = state.store.list_bounces(&q.filter()).await?;
    Ok(Json(rows.into_iter().map(BounceOut::from).collect()))
}

/// One address in the bounce report.
#[derive(Debug, Serialize, ToSchema)]
pub struct BounceReportOut {
    pub email: String,
    pub contact_status: Option<String>,
    pub organisation: Option<String>,
    pub events: i64,
    pub hard: i64,
    pub soft: i64,
    pub complaints: i64,
    /// Events that were not verified (and so changed nothing).
    pub unverified: i64,
    pub first_at: chrono::DateTime<chrono::Utc>,
    pub last_at: chrono::DateTime<chrono::Utc>,
    pub last_kind: String,
    pub last_reason: String,
    pub last_status: String,
    pub last_diagnostic: String,
}

impl From<BounceReportRow> for BounceReportOut {
    fn from(r: BounceReportRow) -> Self {
        BounceReportOut {
            email: r.email,
            contact_status: r.contact_status,
            organisation: r.organisation,
            events: r.events,
            hard: r.hard,
            soft: r.soft,
            complaints: r.complaints,
            unverified: r.unverified,
            first_at: r.first_at,
            last_at: r.last_at,
            last_kind: r.last_kind,
            last_reason: r.last_reason,
            last_status: r.last_status,
            last_diagnostic: r.last_diagnostic,
        }
    }
}

/// One row per address with events (those the filter keeps), the most
/// recent first.
#[utoipa::path(get, path = "/api/v1/bounces/report", tag = "bounces",
    extensions(("x-permission" = json!("bounces.read"))),
    params(BounceQuery),
    responses((status = 200, description = "The report", body = Vec<BounceReportOut>)))]
pub async fn bounce_report(
    State(state): State<ApiShared>,
    ApiQuery(q): ApiQuery<BounceQuery>,
) -> ApiResult<Json<Vec<BounceReportOut>>> {
    let rows = state.store.bounce_report(&q.filter()).await?;
    Ok(Json(rows.into_iter().map(BounceReportOut::from).collect()))
}
