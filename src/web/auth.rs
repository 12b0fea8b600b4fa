//! Who is calling the admin listener, and may they?
//!
//! [`guard`] runs before every `/api/v1` handler. It looks the route up in
//! the [`Permissions`] table (built from the OpenAPI document, where each
//! operation names its action in `x-permission`), authenticates the caller
//! (`Authorization: Bearer TOKEN`, or the session cookie), checks the CSRF
//! token of every state-changing request made with a cookie, and asks the
//! permission table whether the actor's role allows the action. Handlers
//! then take the actor with the [`Caller`] extractor.
//!
//! Answers: 401 without valid credentials (an expired or ended session
//! clears its cookie), 403 for a missing or wrong CSRF token and for an
//! action the role does not allow.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::api::problem::ApiError;
use super::api::ApiShared;
use crate::app::accounts::{self, SessionEnd};
use crate::config::Config;
use crate::domain::{Action, Actor};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "whatsup_session";
/// The header carrying the session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// What an operation requires, from its `x-permission`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// No credentials (logging in, the OpenAPI document).
    Public,
    /// Any valid credentials (logging out, who am I).
    Authenticated,
    /// The permission table must allow this action for the actor's role.
    Action(Action),
}

impl Permission {
    /// Parses an `x-permission` value.
    pub fn parse(s: &str) -> Option<Permission> {
        match s {
            "public" => Some(Permission::Public),
            "authenticated" => Some(Permission::Authenticated),
            _ => Action::ALL
                .iter()
                .find(|a| a.as_str() == s)
                .map(|a| Permission::Action(*a)),
        }
    }
}

/// The permission of every route, by method and path template.
#[derive(Debug, Clone, Default)]
pub struct Permissions(HashMap<(Method, String), Permission>);

impl Permissions {
    /// Reads `x-permission` from every operation of the document; an
    /// operation without one, or with an unknown value, is an error.
    pub fn from_openapi(doc: &serde_json::Value) -> anyhow::Result<Permissions> {
        let mut map = HashMap::new();
        let paths = doc["paths"]
            .as_object()
            .ok_or_else(|| anyhow::anyhow!("the OpenAPI document has no paths"))?;
        for (path, ops) in paths {
            for (method, op) in ops.as_object().into_iter().flatten() {
                let Ok(m) = method.to_uppercase().parse::<Method>() else {
                    continue;
                };
                let raw = op["x-permission"]
                    .as_str()
                    .ok_or_else(|| anyhow::anyhow!("{method} {path} has no x-permission"))?;
                let p = Permission::parse(raw).ok_or_else(|| {
                    anyhow::anyhow!("{method} {path}: unknown x-permission {raw:?}")
                })?;
                map.insert((m, path.clone()), p);
            }
        }
        Ok(Permissions(map))
    }

    pub fn get(&self, method: &Method, path: &str) -> Option<Permission> {
        self.0.get(&(method.clone(), path.to_string())).copied()
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: Actor,
    /// The session cookie's value when the caller came with one.
    pub session_cookie: Option<String>,
    pub csrf_token: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("authentication required"))
    }
}

/// The client's IP: the socket's peer, or with `admin.trust_forwarded_for`
/// the last X-Forwarded-For entry (the one the proxy added).
pub fn client_ip(config: &Config, headers: &HeaderMap, parts_ip: Option<IpAddr>) -> Option<IpAddr> {
    if config.admin.trust_forwarded_for {
        if let Some(ip) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok())
        {
            return Some(ip);
        }
    }
    parts_ip
}

/// The client's IP of a request.
pub fn request_ip(config: &Config, req: &Request) -> Option<IpAddr> {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    client_ip(config, req.headers(), peer)
}

/// A cookie's value from the Cookie header.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// The Set-Cookie value of a session: HttpOnly, SameSite=Lax, Path=/,
/// Secure when the admin is reached over https; an empty value with
/// Max-Age=0 clears it.
pub fn session_cookie(config: &Config, value: &str) -> HeaderValue {
    let secure = if config.admin.base_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let age = if value.is_empty() { "; Max-Age=0" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax{secure}{age}"
    ))
    .expect("a cookie of base64url characters")
}

fn unsafe_method(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Authenticates and authorises every API request (see the module doc).
pub async fn guard(State(state): State<ApiShared>, mut req: Request, next: Next) -> Response {
    let Some(path) = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
    else {
        return next.run(req).await;
    };
    let Some(permission) = state.permissions.get(req.method(), &path) else {
        // A route missing from the document is refused, never open.
        return ApiError::forbidden(format!("{} {path} has no permission rule", req.method()))
            .into_response();
    };
    if permission == Permission::Public {
        return next.run(req).await;
    }
    let ip = request_ip(&state.config, &req);
    let headers = req.headers().clone();
    let caller = match authenticate(&state, &headers, ip).await {
        Ok(c) => c,
        Err(res) => return res,
    };
    if caller.session_cookie.is_some() && unsafe_method(req.method()) {
        let presented = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let expected = caller.csrf_token.as_deref().unwrap_or("");
        if presented.is_empty() || !bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
            return ApiError::forbidden(format!(
                "a state-changing request with a session cookie needs the session's CSRF token in the {CSRF_HEADER} header"
            ))
            .with_type("csrf")
            .into_response();
        }
    }
    if let Permission::Action(action) = permission {
        if !caller.actor.may(action) {
            return ApiError::forbidden(format!(
                "{} may not {} ({action})",
                caller.actor.label(),
                action.describe()
            ))
            .into_response();
        }
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

async fn authenticate(
    state: &ApiShared,
    headers: &HeaderMap,
    ip: Option<IpAddr>,
) -> Result<Caller, Response> {
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let token = auth
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or("");
        return match accounts::check_token(&state.store, token, ip).await {
            Ok(Some(actor)) => Ok(Caller {
                actor,
                session_cookie: None,
                csrf_token: None,
            }),
            Ok(None) => Err(ApiError::unauthorized(
                "the API token is unknown, revoked, or its account is disabled",
            )
            .into_response()),
            Err(e) => Err(ApiError::internal(e).into_response()),
        };
    }
    let Some(value) = cookie(headers, SESSION_COOKIE) else {
        return Err(ApiError::unauthorized(
            "log in (POST /api/v1/auth/login) or send Authorization: Bearer TOKEN",
        )
        .into_response());
    };
    match accounts::check_session(&state.store, &state.config, &value, ip).await {
        Ok(Ok(valid)) => Ok(Caller {
            actor: valid.actor,
            session_cookie: Some(value),
            csrf_token: Some(valid.session.csrf_token),
        }),
        Ok(Err(end)) => {
            let why = match end {
                SessionEnd::Unknown => "the session is unknown or has ended",
                SessionEnd::Idle => "the session ended after a time without requests",
                SessionEnd::Absolute => "the session reached its longest life",
                SessionEnd::Disabled => "the account is disabled",
                SessionEnd::PasswordChanged => "the password changed since this session began",
            };
            let mut res = ApiError::unauthorized(format!("{why}; log in again")).into_response();
            res.headers_mut()
                .insert(header::SET_COOKIE, session_cookie(&state.config, ""));
            Err(res)
        }
        Err(e) => Err(ApiError::internal(e).into_response()),
    }
}
