//! The web admin: server-rendered pages under `/admin` on the admin
//! listener (`admin.bind`), beside the REST API. Editors write issues here,
//! operators run contacts, imports and campaigns, admins manage accounts.
//!
//! # The shell, for page authors
//!
//! One module per area, each with the same three items, merged by
//! [`router`]: `routes() -> Router<AdminShared>` (paths are absolute, such
//! as `/admin/contacts`), `NAV: &[NavItem]` (its entries in the main menu,
//! each shown only to roles the permission table allows) and
//! `TEMPLATES: &[(&str, &str)]` (its templates, `include_str!`ed, named
//! `admin/<file>.html`). Nothing else is edited to add a page.
//!
//! A handler is thin: it takes [`Page`] (the logged-in user; without a
//! valid session a GET is redirected to `/admin/login?next=…`), asks the
//! permission table through [`Page::require`] (a refusal renders the 403
//! page), calls the same `app`/store function the API calls, and renders:
//!
//! ```ignore
//! async fn list(State(s): State<AdminShared>, page: Page) -> AdminResult {
//!     page.require(Action::ContactsRead)?;
//!     let rows = s.store().list_contacts(…).await?;
//!     s.render(&page, "admin/contacts.html", context! { rows })
//! }
//! ```
//!
//! - [`AdminState::render`] adds the base context `templates/admin/base.html`
//!   reads: `user` {email, name, role}, `csrf_token`, `nav` (the items this
//!   role may see, the current one marked), `assets` and `branding`,
//!   `timezone` (the zone named, e.g. "Asia/Tokyo (JST)"), `lang`,
//!   `messages` (the flash set by [`redirect_with`]), and `may`, a map of
//!   every action's name to whether this user may take it:
//!   `{% if may["contacts.write"] %}` hides what a viewer may not use.
//! - Filters in every admin template: `localtime` (a UTC time as
//!   `2025-07-01 09:00 JST` in `general.timezone`; `|localtime("%H:%M")`
//!   for another format), `number` (1,024), `bytes` (1.2 MB).
//! - Errors: return [`AdminError`] (`?` converts `AppError` and
//!   `anyhow::Error`); 403, 404, 409 and 500 become pages in the admin
//!   layout. For a form with a mistake, re-render the form with the
//!   message at its field instead (status 422, see [`AdminState::render_status`]).
//! - **CSRF**: every POST, PUT, PATCH and DELETE under `/admin` (but the
//!   login form) must carry the session's token, as the `X-CSRF-Token`
//!   header (htmx sends it from `hx-headers` on `<body>`) or as the form
//!   field `csrf_token` (`{{ csrf_field(csrf_token) }}` from
//!   `admin/macros.html`; in a multipart form it must come before any
//!   file). The check runs in middleware before any handler, so a handler
//!   cannot forget it; a missing or wrong token is a 403 page.
//! - After a successful POST, answer with [`redirect_with`] (303 and a
//!   one-time message shown on the next page).
//! - htmx fragments: [`AdminState::render_fragment`] renders a template
//!   without the layout (for `hx-target` swaps); [`is_htmx`] tells an htmx
//!   request.
//! - Every page carries [`ADMIN_CSP`] (scripts only from
//!   `/admin/assets`, no inline script or style), `no-store`, `nosniff`,
//!   `X-Frame-Options: DENY` and no referrer, unless the handler sets its
//!   own (the issue preview sets `frame-ancestors 'self'`).

pub mod accounts;
pub mod bounces;
pub mod campaigns;
pub mod contacts;
pub mod dashboard;
pub mod imports;
pub mod issues;
pub mod media;
pub mod orgs;
pub mod shell;

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Router;
use minijinja::{context, Environment, UndefinedBehavior, Value};
use subtle::ConstantTimeEq;

use super::api::ApiShared;
use super::assets::{Assets, ADMIN_CSP};
use super::auth::{self, SESSION_COOKIE};
use crate::app::accounts::{self as app_accounts, SessionEnd};
use crate::app::AppError;
use crate::config::Config;
use crate::domain::{Action, Actor, Role};
use crate::store::Store;

/// The cookie holding a one-time message for the next page.
pub const FLASH_COOKIE: &str = "whatsup_flash";

/// The form field carrying the CSRF token.
pub const CSRF_FIELD: &str = "csrf_token";

/// The largest prefix of a multipart body searched for the CSRF field.
const MULTIPART_CSRF_WINDOW: usize = 64 * 1024;

/// One entry of the main menu.
#[derive(Debug, Clone, Copy)]
pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    /// Shown only to roles the permission table allows this action.
    pub action: Action,
    /// Position in the menu (lower first).
    pub order: u16,
    /// One line for the home page's list of what the user can do.
    pub summary: &'static str,
}

/// What the admin pages share.
pub struct AdminState {
    /// The API's state: store, config, jobs, permissions.
    pub api: ApiShared,
    pub assets: Arc<Assets>,
    env: Environment<'static>,
    pub tz: chrono_tz::Tz,
    nav: Vec<NavItem>,
}

pub type AdminShared = Arc<AdminState>;

/// Every module's templates and menu entries.
fn modules() -> (Vec<(&'static str, &'static str)>, Vec<NavItem>) {
    let templates = [
        shell::TEMPLATES,
        issues::TEMPLATES,
        media::TEMPLATES,
        contacts::TEMPLATES,
        orgs::TEMPLATES,
        imports::TEMPLATES,
        campaigns::TEMPLATES,
        bounces::TEMPLATES,
        dashboard::TEMPLATES,
        accounts::TEMPLATES,
    ]
    .concat();
    let mut nav = [
        shell::NAV,
        issues::NAV,
        media::NAV,
        contacts::NAV,
        orgs::NAV,
        imports::NAV,
        campaigns::NAV,
        bounces::NAV,
        dashboard::NAV,
        accounts::NAV,
    ]
    .concat();
    nav.sort_by_key(|n| n.order);
    (templates, nav)
}

/// The admin's template environment: the built-in admin templates only
/// (no override directory: these are not the newsletter's templates),
/// strict about undefined values, with the admin filters.
pub fn environment(tz: chrono_tz::Tz) -> Environment<'static> {
    let (templates, _) = modules();
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    for (name, source) in templates {
        env.add_template(name, source)
            .unwrap_or_else(|e| panic!("templates/{name}: {e:#}"));
    }
    env.add_filter(
        "localtime",
        move |value: Value, format: Option<String>| -> Result<String, minijinja::Error> {
            if value.is_none() || value.is_undefined() {
                return Ok(String::new());
            }
            local_time(&value.to_string(), format.as_deref(), tz)
        },
    );
    env.add_filter("number", |n: i64| group_digits(n));
    env.add_filter("bytes", |n: i64| human_bytes(n));
    env
}

/// A UTC time (RFC 3339) in `tz`, zone named: `2025-07-01 09:00 JST`.
pub fn local_time(
    value: &str,
    format: Option<&str>,
    tz: chrono_tz::Tz,
) -> Result<String, minijinja::Error> {
    let t = chrono::DateTime::parse_from_rfc3339(value).map_err(|_| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("localtime: {value:?} is not an RFC 3339 time"),
        )
    })?;
    Ok(t.with_timezone(&tz)
        .format(format.unwrap_or("%Y-%m-%d %H:%M %Z"))
        .to_string())
}

/// 1234567 → "1,234,567".
pub fn group_digits(n: i64) -> String {
    let s = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// 1536 → "1.5 KB".
pub fn human_bytes(n: i64) -> String {
    let n = n.max(0) as f64;
    if n < 1000.0 {
        format!("{n} bytes")
    } else if n < 1_000_000.0 {
        format!("{:.1} KB", n / 1000.0)
    } else {
        format!("{:.1} MB", n / 1_000_000.0)
    }
}

impl AdminState {
    pub fn store(&self) -> &Store {
        &self.api.store
    }

    pub fn config(&self) -> &Config {
        &self.api.config
    }

    /// The menu entries `role` may see, `path`'s marked current.
    fn nav_for(&self, role: Role, path: &str) -> Vec<Value> {
        self.nav
            .iter()
            .filter(|n| crate::domain::permission::allowed(role, n.action))
            .map(|n| {
                let current = path == n.href || path.starts_with(&format!("{}/", n.href));
                context! { href => n.href, label => n.label, summary => n.summary, current }
            })
            .collect()
    }

    /// The menu entries a role may see (for the home page).
    pub fn nav_items(&self, role: Role) -> Vec<&NavItem> {
        self.nav
            .iter()
            .filter(|n| crate::domain::permission::allowed(role, n.action))
            .collect()
    }

    /// What every page's layout reads (see the module doc).
    fn base_context(&self, page: Option<&Page>) -> Value {
        let zone = chrono::Utc::now().with_timezone(&self.tz).format("%Z");
        let mut base = context! {
            lang => "en",
            timezone => format!("{} ({zone})", self.tz.name()),
            ..self.assets.template_context()
        };
        if let Some(p) = page {
            let may: BTreeMap<&str, bool> = Action::ALL
                .iter()
                .map(|a| (a.as_str(), p.may(*a)))
                .collect();
            let messages: Vec<Value> = p
                .flash
                .iter()
                .map(|f| context! { kind => f.kind.as_str(), text => f.text.as_str() })
                .collect();
            base = context! {
                user => context! { email => p.email(), name => p.name.as_str(), role => p.role.as_str(), id => p.user_id() },
                csrf_token => p.csrf.as_str(),
                nav => self.nav_for(p.role, &p.path),
                may,
                messages,
                ..base
            };
        }
        base
    }

    /// Renders a page in the admin layout with status 200.
    pub fn render(&self, page: &Page, template: &str, ctx: Value) -> AdminResult {
        self.render_status(page, StatusCode::OK, template, ctx)
    }

    /// Renders a page in the admin layout with a status (422 for a form
    /// shown again with its errors).
    pub fn render_status(
        &self,
        page: &Page,
        status: StatusCode,
        template: &str,
        ctx: Value,
    ) -> AdminResult {
        let html = self.render_to_string(Some(page), template, ctx)?;
        let mut res = (status, Html(html)).into_response();
        if page.flash.is_some() {
            res.headers_mut()
                .append(header::SET_COOKIE, flash_cookie(self.config(), None));
        }
        Ok(res)
    }

    /// Renders a template without the layout's base context (an htmx
    /// fragment); `ctx` is all it gets, plus `csrf_token`, `may` and `user`.
    pub fn render_fragment(&self, page: &Page, template: &str, ctx: Value) -> AdminResult {
        let html = self.render_to_string(Some(page), template, ctx)?;
        Ok(Html(html).into_response())
    }

    /// Renders for someone not logged in (the login page).
    pub fn render_public(&self, status: StatusCode, template: &str, ctx: Value) -> Response {
        match self.render_to_string(None, template, ctx) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => e.into_response(),
        }
    }

    fn render_to_string(
        &self,
        page: Option<&Page>,
        template: &str,
        ctx: Value,
    ) -> Result<String, AdminError> {
        let full = context! { ..ctx, ..self.base_context(page) };
        self.env
            .get_template(template)
            .and_then(|t| t.render(full))
            .map_err(|e| {
                // The debug info names the expression and the values
                // around it: it goes to the log, not to the page.
                AdminError::Internal(anyhow!(
                    "rendering {template}: {e:#}{}\n{}",
                    e.line().map(|l| format!(" (line {l})")).unwrap_or_default(),
                    e.display_debug_info()
                ))
            })
    }

    /// The error page in the layout (with the menu when someone is logged in).
    fn error_page(&self, page: Option<&Page>, status: StatusCode, message: &str) -> Response {
        let title = match status {
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::NOT_FOUND => "Page not found",
            StatusCode::CONFLICT => "That cannot be done now",
            StatusCode::UNAUTHORIZED => "Please sign in again",
            s if s.is_server_error() => "Something went wrong",
            _ => "That did not work",
        };
        let ctx = context! { title, status => status.as_u16(), message };
        match self.render_to_string(page, "admin/error.html", ctx) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!("the error page itself failed: {e}");
                (status, message.to_string()).into_response()
            }
        }
    }
}

/// A one-time message shown on the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    /// ok, warn or error.
    pub kind: String,
    pub text: String,
}

impl Flash {
    pub fn ok(text: impl Into<String>) -> Flash {
        Flash {
            kind: "ok".into(),
            text: text.into(),
        }
    }
    pub fn warn(text: impl Into<String>) -> Flash {
        Flash {
            kind: "warn".into(),
            text: text.into(),
        }
    }

    fn encode(&self) -> String {
        let raw = format!("{}:{}", self.kind, self.text);
        percent_encoding::utf8_percent_encode(&raw, percent_encoding::NON_ALPHANUMERIC).to_string()
    }

    fn decode(v: &str) -> Option<Flash> {
        let raw = percent_encoding::percent_decode_str(v)
            .decode_utf8()
            .ok()?
            .into_owned();
        let (kind, text) = raw.split_once(':')?;
        if !matches!(kind, "ok" | "warn" | "error") {
            return None;
        }
        Some(Flash {
            kind: kind.into(),
            text: text.chars().take(500).collect(),
        })
    }
}

fn flash_cookie(config: &Config, flash: Option<&Flash>) -> HeaderValue {
    let secure = if config.admin.base_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let v = match flash {
        Some(f) => format!(
            "{FLASH_COOKIE}={}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=120{secure}",
            f.encode()
        ),
        None => {
            format!("{FLASH_COOKIE}=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
        }
    };
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A 303 to `to` with a one-time message for the page there.
pub fn redirect_with(state: &AdminState, to: &str, flash: Flash) -> Response {
    let mut res = Redirect::to(to).into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        flash_cookie(state.config(), Some(&flash)),
    );
    res
}

/// Whether a request came from htmx.
pub fn is_htmx(headers: &HeaderMap) -> bool {
    headers.get("hx-request").is_some_and(|v| v == "true")
}

/// The logged-in user of an admin request (see the module doc).
#[derive(Debug, Clone)]
pub struct Page {
    pub actor: Actor,
    pub role: Role,
    /// The account's display name (may be empty).
    pub name: String,
    /// The session's CSRF token.
    pub csrf: String,
    /// The request's path, for the menu.
    pub path: String,
    flash: Option<Flash>,
}

impl Page {
    /// Whether the permission table lets this user take `action`.
    pub fn may(&self, action: Action) -> bool {
        self.actor.may(action)
    }

    /// Refuses (the 403 page) an action the user's role does not allow.
    pub fn require(&self, action: Action) -> Result<(), AdminError> {
        crate::app::require(&self.actor, action).map_err(AdminError::from)
    }

    pub fn email(&self) -> &str {
        self.actor.account().map(|a| a.email.as_str()).unwrap_or("")
    }

    pub fn user_id(&self) -> i64 {
        self.actor.account().map(|a| a.id).unwrap_or(0)
    }
}

/// Why there is no [`Page`]: the session's end, for the login page.
#[derive(Debug, Clone, Copy)]
struct NoSession(Option<SessionEnd>);

impl<S: Send + Sync> FromRequestParts<S> for Page {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if let Some(p) = parts.extensions.get::<Page>() {
            return Ok(p.clone());
        }
        let ended = parts.extensions.get::<NoSession>().and_then(|n| n.0);
        let next = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/admin".into());
        Err(AdminError::LoginRequired { next, ended })
    }
}

impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for Page {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Page>().cloned())
    }
}

/// Why a page could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("please sign in")]
    LoginRequired {
        next: String,
        ended: Option<SessionEnd>,
    },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Input that a form did not catch (a bad link, a tampered field).
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Internal(anyhow::Error),
}

pub type AdminResult<T = Response> = Result<T, AdminError>;

impl From<AppError> for AdminError {
    fn from(e: AppError) -> AdminError {
        match e {
            AppError::Invalid(_) => AdminError::BadRequest(e.to_string()),
            AppError::NotFound(m) => AdminError::NotFound(m),
            AppError::Conflict(m) => AdminError::Conflict(m),
            AppError::Forbidden(m) => AdminError::Forbidden(m),
            // The send gate's refusals: the state does not allow it now.
            AppError::Refused(_) | AppError::Blocked { .. } => AdminError::Conflict(e.to_string()),
            AppError::Internal(e) => AdminError::Internal(e),
        }
    }
}

impl From<anyhow::Error> for AdminError {
    fn from(e: anyhow::Error) -> AdminError {
        AdminError::from(AppError::from(e))
    }
}

/// What the layout middleware turns into a full error page.
#[derive(Debug, Clone)]
struct ErrorPage(String);

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            AdminError::LoginRequired { next, ended } => {
                let mut to = format!("/admin/login?next={}", encode(next));
                if let Some(e) = ended {
                    to.push_str(&format!("&ended={}", end_word(*e)));
                }
                return Redirect::to(&to).into_response();
            }
            AdminError::Forbidden(m) => (StatusCode::FORBIDDEN, m.clone()),
            AdminError::NotFound(m) => (StatusCode::NOT_FOUND, m.clone()),
            AdminError::Conflict(m) => (StatusCode::CONFLICT, m.clone()),
            AdminError::BadRequest(m) => (StatusCode::BAD_REQUEST, m.clone()),
            AdminError::Internal(e) => {
                tracing::error!("admin page: {e:#}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The server could not finish this request. Nothing was lost: try again, \
                     and if it keeps happening tell whoever runs the server (the details are \
                     in its log)."
                        .to_string(),
                )
            }
        };
        let mut res = (status, message.clone()).into_response();
        res.extensions_mut().insert(ErrorPage(message));
        res
    }
}

pub(crate) fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn end_word(e: SessionEnd) -> &'static str {
    match e {
        SessionEnd::Unknown => "unknown",
        SessionEnd::Idle => "idle",
        SessionEnd::Absolute => "absolute",
        SessionEnd::Disabled => "disabled",
        SessionEnd::PasswordChanged => "password",
    }
}

/// The admin pages' router, with `/admin/assets`, ready to nest at the
/// root of the admin listener (its paths are absolute).
pub fn router(api: ApiShared) -> anyhow::Result<Router> {
    let config = &api.config;
    let tz: chrono_tz::Tz = config
        .general
        .timezone
        .parse()
        .map_err(|_| anyhow!("general.timezone is not an IANA zone"))?;
    let assets =
        Arc::new(Assets::new("/admin/assets", &config.branding).context("the admin's assets")?);
    let (_, nav) = modules();
    let state = Arc::new(AdminState {
        api,
        assets: assets.clone(),
        env: environment(tz),
        tz,
        nav,
    });
    let max_body = state.config().admin.max_body_bytes;
    let pages = Router::new()
        .merge(shell::routes())
        .merge(issues::routes())
        .merge(media::routes())
        .merge(contacts::routes())
        .merge(orgs::routes())
        .merge(imports::routes())
        .merge(campaigns::routes())
        .merge(bounces::routes())
        .merge(dashboard::routes())
        .merge(accounts::routes())
        .fallback(shell::not_found)
        .layer(middleware::from_fn_with_state(state.clone(), session_layer))
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .with_state(state);
    Ok(Router::new()
        .nest_service("/admin/assets", assets.router::<()>())
        .merge(pages))
}

/// The session, CSRF and layout middleware of every page (see the module doc).
async fn session_layer(State(state): State<AdminShared>, mut req: Request, next: Next) -> Response {
    let ip = auth::request_ip(state.config(), &req);
    let headers = req.headers().clone();
    let mut clear_session = false;
    let mut page = None;
    if let Some(cookie) = auth::cookie(&headers, SESSION_COOKIE) {
        match app_accounts::check_session(state.store(), state.config(), &cookie, ip).await {
            Ok(Ok(valid)) => {
                let account = valid.actor.account().cloned();
                let name = match &account {
                    Some(a) => state
                        .store()
                        .user_by_id(a.id)
                        .await
                        .ok()
                        .flatten()
                        .map(|u| u.name)
                        .unwrap_or_default(),
                    None => String::new(),
                };
                page = account.map(|a| Page {
                    role: a.role,
                    actor: valid.actor.clone(),
                    name,
                    csrf: valid.session.csrf_token.clone(),
                    path: req.uri().path().to_string(),
                    flash: auth::cookie(&headers, FLASH_COOKIE)
                        .as_deref()
                        .and_then(Flash::decode),
                });
            }
            Ok(Err(end)) => {
                clear_session = true;
                req.extensions_mut().insert(NoSession(Some(end)));
            }
            Err(e) => {
                return state.error_page(
                    None,
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("The database could not be reached ({e:#}). Try again in a moment."),
                )
            }
        }
    }
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let exempt = req.uri().path() == "/admin/login";
    if unsafe_method && !exempt {
        let Some(p) = &page else {
            return with_headers(no_session_for_post(&state, &headers, clear_session));
        };
        let (ok, r) = check_csrf(req, &p.csrf, state.config().admin.max_body_bytes).await;
        req = r;
        if !ok {
            return with_headers(state.error_page(
                Some(p),
                StatusCode::FORBIDDEN,
                "This form was sent without its security token, or with one from another \
                 session (perhaps you signed in again in another tab). Go back, reload the \
                 page, and send it again.",
            ));
        }
    }
    if let Some(p) = &page {
        req.extensions_mut().insert(p.clone());
    }
    let mut res = next.run(req).await;
    if let Some(ErrorPage(message)) = res.extensions().get::<ErrorPage>().cloned() {
        let status = res.status();
        if is_htmx(&headers) {
            // htmx shows fragments; the message alone.
            res = (
                status,
                Html(format!("<p class=\"error-text\">{}</p>", escape(&message))),
            )
                .into_response();
        } else {
            res = state.error_page(page.as_ref(), status, &message);
        }
    }
    if clear_session {
        res.headers_mut()
            .append(header::SET_COOKIE, auth::session_cookie(state.config(), ""));
    }
    with_headers(res)
}

/// The answer to a POST without a valid session: a 401 page that says so
/// (the form's content cannot be kept by a redirect; the issue editor
/// keeps its own copy). htmx is told to go to the login page.
fn no_session_for_post(state: &AdminState, headers: &HeaderMap, clear: bool) -> Response {
    let mut res = state.error_page(
        None,
        StatusCode::UNAUTHORIZED,
        "Your session has ended, so this was not saved. Sign in again, then send it again.",
    );
    if is_htmx(headers) {
        res.headers_mut()
            .insert("hx-redirect", HeaderValue::from_static("/admin/login"));
    }
    if clear {
        res.headers_mut()
            .append(header::SET_COOKIE, auth::session_cookie(state.config(), ""));
    }
    res
}

fn escape(s: &str) -> String {
    let mut out = String::new();
    crate::compose::mime::html_escape_into(s, &mut out);
    out
}

/// The admin's response headers; a handler's own are kept.
fn with_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    let defaults: [(header::HeaderName, &'static str); 5] = [
        (header::CONTENT_SECURITY_POLICY, ADMIN_CSP),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    for (name, value) in defaults {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    }
    res
}

fn tokens_match(presented: &str, expected: &str) -> bool {
    !presented.is_empty()
        && !expected.is_empty()
        && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

/// Checks a state-changing request's CSRF token: the header, else the
/// form field (urlencoded: the whole body, bounded by the body limit;
/// multipart: the field must come within the first 64 KiB, before any
/// file). Returns the request with its body intact.
async fn check_csrf(req: Request, expected: &str, max_body: usize) -> (bool, Request) {
    if let Some(h) = req.headers().get(auth::CSRF_HEADER) {
        let ok = tokens_match(h.to_str().unwrap_or(""), expected);
        return (ok, req);
    }
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let (parts, body) = req.into_parts();
    match essence.as_str() {
        "application/x-www-form-urlencoded" => {
            let bytes = match axum::body::to_bytes(body, max_body).await {
                Ok(b) => b,
                Err(_) => return (false, Request::from_parts(parts, Body::empty())),
            };
            let ok = form_urlencoded::parse(&bytes)
                .find(|(k, _)| k == CSRF_FIELD)
                .is_some_and(|(_, v)| tokens_match(&v, expected));
            (ok, Request::from_parts(parts, Body::from(bytes)))
        }
        "multipart/form-data" => {
            let boundary = super::form::boundary(&ct);
            let (ok, body) = multipart_csrf(body, boundary, expected).await;
            (ok, Request::from_parts(parts, body))
        }
        _ => (false, Request::from_parts(parts, body)),
    }
}

/// Reads a multipart body's first chunks until the CSRF field is complete
/// (within [`MULTIPART_CSRF_WINDOW`], before any file part), and returns
/// the verdict with a body that yields the same bytes again.
async fn multipart_csrf(body: Body, boundary: Option<String>, expected: &str) -> (bool, Body) {
    use futures_util::StreamExt;
    let Some(boundary) = boundary else {
        return (false, Body::empty());
    };
    let mut stream = body.into_data_stream();
    let mut prefix: Vec<u8> = Vec::new();
    let mut verdict = None;
    while verdict.is_none() && prefix.len() < MULTIPART_CSRF_WINDOW {
        match stream.next().await {
            Some(Ok(chunk)) => prefix.extend_from_slice(&chunk),
            Some(Err(_)) => return (false, Body::empty()),
            None => {
                verdict = Some(
                    super::form::multipart_first_field(&prefix, &boundary, CSRF_FIELD)
                        .flatten()
                        .is_some_and(|v| tokens_match(&v, expected)),
                );
                break;
            }
        }
        verdict = super::form::multipart_first_field(&prefix, &boundary, CSRF_FIELD)
            .map(|v| v.is_some_and(|v| tokens_match(&v, expected)));
    }
    let ok = verdict.unwrap_or(false);
    let rest = stream;
    let body = Body::from_stream(
        futures_util::stream::once(
            async move { Ok::<_, axum::Error>(axum::body::Bytes::from(prefix)) },
        )
        .chain(rest),
    );
    (ok, body)
}
