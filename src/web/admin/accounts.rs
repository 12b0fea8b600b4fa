//! The admins' pages: accounts (add, change the role, disable or enable,
//! reset the password), API tokens (create, shown once; list; revoke) and
//! the audit log with its filters.
//!
//! Each page asks the permission table (`users.manage`, `tokens.manage`,
//! `audit.read`) and calls the functions of `app::accounts` that the REST
//! API calls (`/api/v1/users`, `/api/v1/tokens`, `/api/v1/audit`), so the
//! rules (a password's strength, the last admin, a token shown once) live
//! in one place. A form with a mistake is shown again with the message at
//! its field (422); a change that is refused for the state it would leave
//! (the last admin, one's own account) comes back as an error notice.
//! A new token's secret is rendered into the answer to the POST itself,
//! never into a cookie or a redirect, and the page is `no-store`.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use chrono::{NaiveDate, TimeZone, Utc};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::{redirect_with, AdminError, AdminResult, AdminShared, Flash, NavItem, Page};
use crate::app::accounts::{self, AuditPage};
use crate::app::AppError;
use crate::domain::{Action, Role};
use crate::store::audit::AuditFilter;
use crate::web::form;

/// This module's entries in the main menu.
pub const NAV: &[NavItem] = &[
    NavItem {
        href: "/admin/users",
        label: "Users",
        action: Action::UsersManage,
        order: 90,
        summary: "Add accounts, change their roles, disable them and reset passwords.",
    },
    NavItem {
        href: "/admin/tokens",
        label: "API tokens",
        action: Action::TokensManage,
        order: 91,
        summary: "Create API tokens for scripts, and revoke them.",
    },
    NavItem {
        href: "/admin/audit",
        label: "Audit log",
        action: Action::AuditRead,
        order: 92,
        summary: "Who changed what, and when.",
    },
];

/// This module's templates.
pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "admin/users.html",
        include_str!("../../../templates/admin/users.html"),
    ),
    (
        "admin/user.html",
        include_str!("../../../templates/admin/user.html"),
    ),
    (
        "admin/tokens.html",
        include_str!("../../../templates/admin/tokens.html"),
    ),
    (
        "admin/audit.html",
        include_str!("../../../templates/admin/audit.html"),
    ),
];

/// This module's routes.
pub fn routes() -> Router<AdminShared> {
    Router::new()
        .route("/admin/users", get(users).post(add_user))
        .route("/admin/users/{id}", get(user))
        .route("/admin/users/{id}/role", post(set_role))
        .route("/admin/users/{id}/access", post(set_access))
        .route("/admin/users/{id}/password", post(set_password))
        .route("/admin/tokens", get(tokens).post(create_token))
        .route("/admin/tokens/{id}/revoke", post(revoke_token))
        .route("/admin/audit", get(audit))
}

/// The object kinds the audit trail records, for its filter.
const AUDIT_KINDS: &[&str] = &[
    "campaign",
    "contact",
    "issue",
    "job",
    "organisation",
    "token",
    "user",
];

/// The entries one audit page shows unless `limit` asks for another
/// number (1 to `accounts::AUDIT_PAGE_MAX`).
const AUDIT_PAGE: i64 = 100;

/// A form's fields, read strictly (a body that is not a form in UTF-8 is
/// a 400).
struct Fields(form::Fields);

impl Fields {
    fn parse(body: &Bytes) -> Result<Fields, AdminError> {
        form::urlencoded(body)
            .map(Fields)
            .map_err(|e| AdminError::BadRequest(format!("the form could not be read: {e}")))
    }

    fn get(&self, name: &str) -> String {
        form::value(&self.0, name).unwrap_or("").to_string()
    }
}

/// The messages a form shows at its fields.
#[derive(Debug, Default, Serialize)]
struct Errors {
    email: Option<String>,
    name: Option<String>,
    role: Option<String>,
    password: Option<String>,
    user_id: Option<String>,
}

impl Errors {
    /// Puts each invalid field's message at its field (`other` for a
    /// message without a field); anything else is not a form mistake.
    fn from_app(e: AppError, other: &str) -> Result<Errors, AdminError> {
        let mut out = Errors::default();
        match e {
            AppError::Invalid(list) => {
                for f in list {
                    let slot = match f.field.as_deref().unwrap_or(other) {
                        "email" => &mut out.email,
                        "name" => &mut out.name,
                        "role" => &mut out.role,
                        "user_id" => &mut out.user_id,
                        _ => &mut out.password,
                    };
                    *slot = Some(f.detail);
                }
            }
            e => return Err(e.into()),
        }
        Ok(out)
    }
}

fn roles() -> Vec<&'static str> {
    Role::ALL.iter().map(|r| r.as_str()).collect()
}

fn error(text: impl Into<String>) -> Flash {
    Flash {
        kind: "error".into(),
        text: text.into(),
    }
}

// ---- users -------------------------------------------------------------

async fn render_users(
    s: &AdminShared,
    page: &Page,
    status: StatusCode,
    form: minijinja::Value,
    errors: Errors,
) -> AdminResult {
    let users = accounts::list_users(s.store(), &page.actor).await?;
    s.render_status(
        page,
        status,
        "admin/users.html",
        context! { title => "Users", users, roles => roles(), form, errors },
    )
}

async fn users(State(s): State<AdminShared>, page: Page) -> AdminResult {
    page.require(Action::UsersManage)?;
    let form = context! { email => "", name => "", role => Role::Viewer.as_str() };
    render_users(&s, &page, StatusCode::OK, form, Errors::default()).await
}

async fn add_user(State(s): State<AdminShared>, page: Page, body: Bytes) -> AdminResult {
    page.require(Action::UsersManage)?;
    let f = Fields::parse(&body)?;
    let (email, name, role_word, password) = (
        f.get("email"),
        f.get("name"),
        f.get("role"),
        f.get("password"),
    );
    let form = context! { email => &email, name => &name, role => &role_word };
    let role = match Role::parse(&role_word) {
        Ok(r) => r,
        Err(e) => {
            let errors = Errors {
                role: Some(e.to_string()),
                ..Default::default()
            };
            return render_users(&s, &page, StatusCode::UNPROCESSABLE_ENTITY, form, errors).await;
        }
    };
    let password = Some(password.as_str()).filter(|p| !p.is_empty());
    match accounts::add_user(s.store(), &page.actor, &email, name.trim(), role, password).await {
        Ok(u) => Ok(redirect_with(
            &s,
            &format!("/admin/users/{}", u.id),
            Flash::ok(format!("Added {} as {}.", u.email, u.role)),
        )),
        Err(AppError::Conflict(m)) => {
            let errors = Errors {
                email: Some(m),
                ..Default::default()
            };
            render_users(&s, &page, StatusCode::UNPROCESSABLE_ENTITY, form, errors).await
        }
        Err(e) => {
            let errors = Errors::from_app(e, "password")?;
            render_users(&s, &page, StatusCode::UNPROCESSABLE_ENTITY, form, errors).await
        }
    }
}

async fn render_user(
    s: &AdminShared,
    page: &Page,
    id: i64,
    status: StatusCode,
    errors: Errors,
) -> AdminResult {
    page.require(Action::UsersManage)?;
    let account = accounts::user(s.store(), id).await?;
    let tokens = if page.may(Action::TokensManage) {
        accounts::list_tokens(s.store(), &page.actor, Some(id)).await?
    } else {
        Vec::new()
    };
    let title = format!("User {}", account.email);
    s.render_status(
        page,
        status,
        "admin/user.html",
        context! {
            title,
            is_self => page.user_id() == id,
            account,
            roles => roles(),
            tokens,
            errors,
        },
    )
}

async fn user(State(s): State<AdminShared>, page: Page, Path(id): Path<i64>) -> AdminResult {
    render_user(&s, &page, id, StatusCode::OK, Errors::default()).await
}

/// Where a change to account `id` goes back to, with what happened.
fn back_to_user(s: &AdminShared, id: i64, result: Result<Flash, AppError>) -> AdminResult {
    let to = format!("/admin/users/{id}");
    match result {
        Ok(flash) => Ok(redirect_with(s, &to, flash)),
        Err(AppError::Conflict(m)) => Ok(redirect_with(s, &to, error(m))),
        Err(e) => Err(e.into()),
    }
}

async fn set_role(
    State(s): State<AdminShared>,
    page: Page,
    Path(id): Path<i64>,
    body: Bytes,
) -> AdminResult {
    page.require(Action::UsersManage)?;
    let f = Fields::parse(&body)?;
    let role = match Role::parse(&f.get("role")) {
        Ok(r) => r,
        Err(e) => {
            let errors = Errors {
                role: Some(e.to_string()),
                ..Default::default()
            };
            return render_user(&s, &page, id, StatusCode::UNPROCESSABLE_ENTITY, errors).await;
        }
    };
    let done = accounts::set_role(s.store(), &page.actor, id, role)
        .await
        .map(|u| Flash::ok(format!("{} is now {}.", u.email, u.role)));
    back_to_user(&s, id, done)
}

async fn set_access(
    State(s): State<AdminShared>,
    page: Page,
    Path(id): Path<i64>,
    body: Bytes,
) -> AdminResult {
    page.require(Action::UsersManage)?;
    let f = Fields::parse(&body)?;
    let disabled = match f.get("disabled").as_str() {
        "true" => true,
        "false" => false,
        other => {
            return Err(AdminError::BadRequest(format!(
                "disabled must be true or false, not {other:?}"
            )))
        }
    };
    let done = accounts::set_disabled(s.store(), &page.actor, id, disabled)
        .await
        .map(|u| {
            Flash::ok(if disabled {
                format!("{} is disabled: its sessions and tokens stopped.", u.email)
            } else {
                format!("{} is enabled again.", u.email)
            })
        });
    back_to_user(&s, id, done)
}

async fn set_password(
    State(s): State<AdminShared>,
    page: Page,
    Path(id): Path<i64>,
    body: Bytes,
) -> AdminResult {
    page.require(Action::UsersManage)?;
    let f = Fields::parse(&body)?;
    match accounts::reset_password(s.store(), &page.actor, id, &f.get("password")).await {
        Ok(u) => back_to_user(
            &s,
            id,
            Ok(Flash::ok(format!(
                "The password of {} is set; its sessions ended.",
                u.email
            ))),
        ),
        Err(e @ AppError::Invalid(_)) => {
            let errors = Errors::from_app(e, "password")?;
            render_user(&s, &page, id, StatusCode::UNPROCESSABLE_ENTITY, errors).await
        }
        Err(e) => back_to_user(&s, id, Err(e)),
    }
}

// ---- tokens ------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct TokenQuery {
    user_id: Option<i64>,
}

/// A token just made: the one time its secret is shown.
#[derive(Debug, Serialize)]
struct Created {
    name: String,
    user_email: String,
    secret: String,
}

async fn render_tokens(
    s: &AdminShared,
    page: &Page,
    status: StatusCode,
    only: Option<i64>,
    created: Option<Created>,
    form: minijinja::Value,
    errors: Errors,
) -> AdminResult {
    let tokens = accounts::list_tokens(s.store(), &page.actor, only).await?;
    let all = accounts::list_users(s.store(), &page.actor).await?;
    let only_user = only.and_then(|id| all.iter().find(|u| u.id == id).cloned());
    let accounts: Vec<_> = all.into_iter().filter(|u| !u.disabled()).collect();
    s.render_status(
        page,
        status,
        "admin/tokens.html",
        context! { title => "API tokens", tokens, accounts, only_user, created, form, errors },
    )
}

async fn tokens(
    State(s): State<AdminShared>,
    page: Page,
    Query(q): Query<TokenQuery>,
) -> AdminResult {
    page.require(Action::TokensManage)?;
    let form = context! { user_id => q.user_id.unwrap_or(page.user_id()), name => "" };
    render_tokens(
        &s,
        &page,
        StatusCode::OK,
        q.user_id,
        None,
        form,
        Errors::default(),
    )
    .await
}

async fn create_token(State(s): State<AdminShared>, page: Page, body: Bytes) -> AdminResult {
    page.require(Action::TokensManage)?;
    let f = Fields::parse(&body)?;
    let name = f.get("name");
    let user_id: Option<i64> = f.get("user_id").trim().parse().ok();
    let form = context! { user_id => user_id, name => &name };
    let result = match user_id {
        Some(id) => accounts::create_token(s.store(), &page.actor, id, &name).await,
        None => Err(AppError::field(
            "user_id",
            "choose the account the token acts as",
        )),
    };
    match result {
        Ok((token, secret)) => {
            let created = Created {
                name: token.name,
                user_email: token.user_email,
                secret,
            };
            let form = context! { user_id => user_id, name => "" };
            render_tokens(
                &s,
                &page,
                StatusCode::CREATED,
                None,
                Some(created),
                form,
                Errors::default(),
            )
            .await
        }
        Err(AppError::Conflict(m)) | Err(AppError::NotFound(m)) => {
            let errors = Errors {
                name: Some(m),
                ..Default::default()
            };
            render_tokens(
                &s,
                &page,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                None,
                form,
                errors,
            )
            .await
        }
        Err(e) => {
            let errors = Errors::from_app(e, "name")?;
            render_tokens(
                &s,
                &page,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                None,
                form,
                errors,
            )
            .await
        }
    }
}

async fn revoke_token(
    State(s): State<AdminShared>,
    page: Page,
    Path(id): Path<i64>,
) -> AdminResult<Response> {
    page.require(Action::TokensManage)?;
    let flash = match accounts::revoke_token(s.store(), &page.actor, id).await {
        Ok(t) => Flash::ok(format!(
            "Revoked “{}” of {}: it stopped working.",
            t.name, t.user_email
        )),
        Err(AppError::Conflict(m)) => error(m),
        Err(e) => return Err(e.into()),
    };
    Ok(redirect_with(&s, "/admin/tokens", flash))
}

// ---- audit -------------------------------------------------------------

#[derive(Debug, Default, Deserialize, Serialize)]
struct AuditQuery {
    #[serde(default)]
    since: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    object_kind: String,
    #[serde(default)]
    object_id: String,
    before: Option<i64>,
    limit: Option<i64>,
}

impl AuditQuery {
    /// The query string of this filter, with `before` for another page.
    fn query(&self, before: Option<i64>) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("since", &self.since),
            ("actor", &self.actor),
            ("object_kind", &self.object_kind),
            ("object_id", &self.object_id),
        ] {
            if !v.is_empty() {
                q.append_pair(k, v);
            }
        }
        if let Some(n) = self.limit {
            q.append_pair("limit", &n.to_string());
        }
        if let Some(b) = before {
            q.append_pair("before", &b.to_string());
        }
        q.finish()
    }
}

/// Midnight of a `YYYY-MM-DD` day in `tz`, in UTC.
fn day_start(day: &str, tz: chrono_tz::Tz) -> Result<chrono::DateTime<Utc>, String> {
    let d = NaiveDate::parse_from_str(day.trim(), "%Y-%m-%d")
        .map_err(|_| format!("{day:?} is not a date like 2025-04-01"))?;
    let midnight = d.and_hms_opt(0, 0, 0).expect("midnight");
    tz.from_local_datetime(&midnight)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(midnight + chrono::Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("{day} has no midnight in {}", tz.name()))
}

/// One entry as the table shows it.
#[derive(Debug, Serialize)]
struct Entry {
    id: i64,
    created_at: chrono::DateTime<Utc>,
    actor: String,
    ip: Option<String>,
    action: String,
    object_kind: String,
    object_id: String,
    /// The query string that filters the log to this entry's object.
    object_query: String,
    details: String,
}

async fn audit(
    State(s): State<AdminShared>,
    page: Page,
    Query(q): Query<AuditQuery>,
) -> AdminResult {
    page.require(Action::AuditRead)?;
    let (since, error) = match q.since.trim() {
        "" => (None, None),
        day => match day_start(day, s.tz) {
            Ok(t) => (Some(t), None),
            Err(e) => (None, Some(e)),
        },
    };
    let AuditPage { items, next_before } = if error.is_some() {
        AuditPage {
            items: Vec::new(),
            next_before: None,
        }
    } else {
        accounts::audit(
            s.store(),
            &page.actor,
            AuditFilter {
                since,
                actor: Some(q.actor.clone()),
                object_kind: Some(q.object_kind.clone()),
                object_id: Some(q.object_id.clone()),
                before: q.before,
                limit: q.limit.unwrap_or(AUDIT_PAGE),
            },
        )
        .await?
    };
    let entries: Vec<Entry> = items
        .into_iter()
        .map(|r| Entry {
            details: match &r.details.0 {
                serde_json::Value::Null => String::new(),
                serde_json::Value::Object(m) if m.is_empty() => String::new(),
                v => v.to_string(),
            },
            object_query: form_urlencoded::Serializer::new(String::new())
                .append_pair("object_kind", &r.object_kind)
                .append_pair("object_id", &r.object_id)
                .finish(),
            id: r.id,
            created_at: r.created_at,
            actor: r.actor,
            ip: r.ip,
            action: r.action,
            object_kind: r.object_kind,
            object_id: r.object_id,
        })
        .collect();
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    s.render_status(
        &page,
        status,
        "admin/audit.html",
        context! {
            title => "Audit log",
            entries,
            kinds => AUDIT_KINDS,
            next => next_before.map(|b| q.query(Some(b))),
            first => q.query(None),
            first_page => q.before.is_none(),
            error,
            filter => q,
        },
    )
}
