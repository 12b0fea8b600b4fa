//! Logging in and out: `POST /api/v1/auth/login` starts a session (a new
//! id, replacing any the browser presented) and returns its CSRF token;
//! `POST /api/v1/auth/logout` ends it; `GET /api/v1/auth/session` tells who
//! is logged in.

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::dto::UserOut;
use super::problem::{ApiError, ApiJson, ApiResult};
use super::ApiShared;
use crate::app::accounts::{self, LoginError, LoginRequest};
use crate::web::auth::{self, Caller};

/// Email address and password.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginIn {
    pub email: String,
    pub password: String,
}

/// Who is logged in, and the CSRF token to send with every state-changing
/// request of this session (`X-CSRF-Token`).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionOut {
    pub user: UserOut,
    /// Null when authenticated by an API token (no CSRF token is needed).
    pub csrf_token: Option<String>,
    /// user or token
    pub via: String,
    /// The token's name, when authenticated by one.
    pub token: Option<String>,
}

/// Logs in with email and password; sets the session cookie.
///
/// Failures are counted per account and per client IP; past the free
/// attempts each further one must wait longer (429 with Retry-After).
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth",
    extensions(("x-permission" = json!("public"))),
    request_body = LoginIn,
    responses(
        (status = 200, description = "Logged in; the session cookie is set", body = SessionOut),
        (status = 401, description = "Wrong email address or password", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed logins: wait Retry-After seconds", body = super::problem::Problem, content_type = "application/problem+json"),
    ))]
pub async fn login(
    State(state): State<ApiShared>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<LoginIn>,
) -> ApiResult<Response> {
    let ip = auth::client_ip(&state.config, &headers, Some(peer.ip()));
    let presented = auth::cookie(&headers, auth::SESSION_COOKIE);
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(300)
        .collect::<String>();
    let req = LoginRequest {
        email: &input.email,
        password: &input.password,
        ip,
        user_agent: &user_agent,
        presented_session: presented.as_deref(),
    };
    match accounts::login(&state.store, &state.config, &req).await {
        Ok(done) => {
            let body = SessionOut {
                user: UserOut::from(&done.user),
                csrf_token: Some(done.csrf_token),
                via: "user".into(),
                token: None,
            };
            let mut res = Json(body).into_response();
            res.headers_mut().insert(
                header::SET_COOKIE,
                auth::session_cookie(&state.config, &done.session),
            );
            Ok(res)
        }
        Err(LoginError::Throttled(secs)) => Err(ApiError::too_many(
            secs,
            format!("too many failed logins; try again in {secs} s"),
        )),
        Err(LoginError::Invalid) => Err(ApiError::unauthorized("wrong email address or password")),
        Err(LoginError::Internal(e)) => Err(ApiError::internal(format!("{e:#}"))),
    }
}

/// Logs out: ends the session and clears its cookie.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    extensions(("x-permission" = json!("authenticated"))),
    responses((status = 204, description = "Logged out")))]
pub async fn logout(State(state): State<ApiShared>, caller: Caller) -> ApiResult<Response> {
    if let Some(cookie) = &caller.session_cookie {
        accounts::logout(&state.store, cookie, &caller.actor).await?;
    }
    let mut res = axum::http::StatusCode::NO_CONTENT.into_response();
    res.headers_mut()
        .insert(header::SET_COOKIE, auth::session_cookie(&state.config, ""));
    Ok(res)
}

/// Who is calling, with the session's CSRF token.
#[utoipa::path(get, path = "/api/v1/auth/session", tag = "auth",
    extensions(("x-permission" = json!("authenticated"))),
    responses((status = 200, description = "The caller", body = SessionOut)))]
pub async fn current(
    State(state): State<ApiShared>,
    caller: Caller,
) -> ApiResult<Json<SessionOut>> {
    let account = caller
        .actor
        .account()
        .ok_or_else(|| ApiError::unauthorized("no account"))?;
    let user = crate::app::accounts::user(&state.store, account.id).await?;
    let token = match &caller.actor {
        crate::domain::Actor::Token { name, .. } => Some(name.clone()),
        _ => None,
    };
    Ok(Json(SessionOut {
        user: UserOut::from(&user),
        csrf_token: caller.csrf_token.clone(),
        via: if token.is_some() { "token" } else { "user" }.into(),
        token,
    }))
}
