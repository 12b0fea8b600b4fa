//! The shell's own pages: signing in and out, the home page, the style
//! guide, and the 404 page every unknown `/admin` path gets.
//!
//! - `GET /admin/login` shows the form; `POST /admin/login` signs in
//!   through `app::accounts::login` (the same throttling per account and
//!   per IP as the API, a new session id replacing any the browser had)
//!   and goes on to `next` (only a path under `/admin`). The form needs no
//!   CSRF token (there is no session yet), but a POST whose `Origin` is
//!   another site is refused, so no other site can sign a browser in.
//! - `POST /admin/logout` ends the session.
//! - `GET /admin` sends the user to the dashboard when there is one they
//!   may see, and otherwise lists what they can do.

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use minijinja::context;
use serde::Deserialize;

use super::{AdminError, AdminResult, AdminShared, NavItem, Page};
use crate::app::accounts::{self, LoginError, LoginRequest};
use crate::web::auth;

pub const NAV: &[NavItem] = &[];

pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "admin/base.html",
        include_str!("../../../templates/admin/base.html"),
    ),
    (
        "admin/macros.html",
        include_str!("../../../templates/admin/macros.html"),
    ),
    (
        "admin/styleguide.html",
        include_str!("../../../templates/admin/styleguide.html"),
    ),
    (
        "admin/login.html",
        include_str!("../../../templates/admin/login.html"),
    ),
    (
        "admin/home.html",
        include_str!("../../../templates/admin/home.html"),
    ),
    (
        "admin/error.html",
        include_str!("../../../templates/admin/error.html"),
    ),
];

pub fn routes() -> Router<AdminShared> {
    Router::new()
        .route("/admin", get(home))
        .route("/admin/", get(home))
        .route("/admin/login", get(login_page).post(login))
        .route("/admin/logout", post(logout))
        .route("/admin/styleguide", get(styleguide))
}

/// Where to go after signing in: a path under `/admin` only, never
/// another site (`//evil.example`) or the login page itself.
pub fn safe_next(next: Option<&str>) -> String {
    match next.map(str::trim) {
        Some(n)
            if (n == "/admin" || n.starts_with("/admin/") || n.starts_with("/admin?"))
                && !n.starts_with("/admin/login")
                && !n.contains("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.to_string()
        }
        _ => "/admin".to_string(),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    ended: Option<String>,
    signed_out: Option<String>,
}

fn ended_message(word: &str) -> Option<&'static str> {
    Some(match word {
        "idle" => "You were signed out after a while without activity. Please sign in again.",
        "absolute" => "Your session reached its longest allowed time. Please sign in again.",
        "password" => "The password of this account changed. Please sign in with the new one.",
        "disabled" => "This account has been disabled. Ask an administrator.",
        "unknown" => "Your session has ended. Please sign in again.",
        _ => return None,
    })
}

async fn login_page(
    State(state): State<AdminShared>,
    page: Option<Page>,
    Query(q): Query<LoginQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if page.is_some() {
        return Redirect::to(&next).into_response();
    }
    let notice = q
        .ended
        .as_deref()
        .and_then(ended_message)
        .or(q.signed_out.as_ref().map(|_| "You have signed out."));
    state.render_public(
        StatusCode::OK,
        "admin/login.html",
        context! { next, notice, email => "", error => () },
    )
}

/// Whether a POST comes from this site (or says nothing of its origin).
fn same_origin(headers: &HeaderMap) -> bool {
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if let Some(site) = fetch_site {
        if !matches!(site, "same-origin" | "none") {
            return false;
        }
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    // Under `Referrer-Policy: no-referrer` browsers send `Origin: null`
    // with a form POST; then Sec-Fetch-Site (same-origin, checked above)
    // is what says where it came from.
    if origin == "null" {
        return fetch_site.is_some();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    authority.is_some_and(|a| a.eq_ignore_ascii_case(host))
}

async fn login(
    State(state): State<AdminShared>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !same_origin(&headers) {
        return AdminError::Forbidden("a sign-in must come from this site's own form".into())
            .into_response();
    }
    let fields = crate::web::form::urlencoded(&body).unwrap_or_default();
    let field = |n: &str| {
        crate::web::form::value(&fields, n)
            .unwrap_or("")
            .to_string()
    };
    let (email, password) = (field("email"), field("password"));
    let next = safe_next(Some(&field("next")));
    let ip = auth::client_ip(state.config(), &headers, Some(peer.ip()));
    let presented = auth::cookie(&headers, auth::SESSION_COOKIE);
    let user_agent: String = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(300)
        .collect();
    let req = LoginRequest {
        email: &email,
        password: &password,
        ip,
        user_agent: &user_agent,
        presented_session: presented.as_deref(),
    };
    let fail = |status: StatusCode, error: String| {
        state.render_public(
            status,
            "admin/login.html",
            context! { next => next.as_str(), notice => (), email => email.as_str(), error },
        )
    };
    match accounts::login(state.store(), state.config(), &req).await {
        Ok(done) => {
            let mut res = Redirect::to(&next).into_response();
            res.headers_mut().insert(
                header::SET_COOKIE,
                auth::session_cookie(state.config(), &done.session),
            );
            res
        }
        Err(LoginError::Throttled(secs)) => {
            let mut res = fail(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many failed sign-ins. Please wait {secs} second{} and try again.",
                    if secs == 1 { "" } else { "s" }
                ),
            );
            if let Ok(v) = secs.to_string().parse() {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            res
        }
        Err(LoginError::Invalid) => fail(
            StatusCode::UNAUTHORIZED,
            "The email address or the password is not right.".into(),
        ),
        Err(LoginError::Internal(e)) => AdminError::Internal(e).into_response(),
    }
}

async fn logout(State(state): State<AdminShared>, page: Page, headers: HeaderMap) -> AdminResult {
    if let Some(cookie) = auth::cookie(&headers, auth::SESSION_COOKIE) {
        accounts::logout(state.store(), &cookie, &page.actor).await?;
    }
    let mut res = Redirect::to("/admin/login?signed_out=1").into_response();
    res.headers_mut()
        .insert(header::SET_COOKIE, auth::session_cookie(state.config(), ""));
    Ok(res)
}

async fn home(State(state): State<AdminShared>, page: Page) -> AdminResult {
    let items = state.nav_items(page.role);
    if let Some(d) = items.iter().find(|n| n.href == "/admin/dashboard") {
        return Ok(Redirect::to(d.href).into_response());
    }
    let items: Vec<_> = items
        .iter()
        .map(|n| context! { href => n.href, label => n.label, summary => n.summary })
        .collect();
    state.render(
        &page,
        "admin/home.html",
        context! { title => "Overview", items },
    )
}

async fn styleguide(State(state): State<AdminShared>, page: Page) -> AdminResult {
    state.render(
        &page,
        "admin/styleguide.html",
        context! { title => "Style guide" },
    )
}

/// Every unknown path under `/admin` (and, as the admin listener's last
/// fallback, the API's 404 problem for any other path).
pub async fn not_found(page: Option<Page>, uri: axum::http::Uri) -> Response {
    if !(uri.path() == "/admin" || uri.path().starts_with("/admin/")) {
        return crate::web::api::not_found().await;
    }
    let e = match page {
        Some(_) => AdminError::NotFound(
            "There is no page at this address. Use the menu above to find what you need.".into(),
        ),
        None => AdminError::NotFound("There is no page at this address.".into()),
    };
    e.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_inside_the_admin() {
        assert_eq!(safe_next(Some("/admin/issues/3")), "/admin/issues/3");
        assert_eq!(safe_next(Some("/admin?x=1")), "/admin?x=1");
        for bad in [
            "//evil.example/admin",
            "https://evil.example/admin",
            "/admin//evil.example",
            "/administrator",
            "/admin/login?next=/admin",
            "/admin/\\evil",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/admin", "{bad}");
        }
        assert_eq!(safe_next(None), "/admin");
    }
}
