//! The REST API under `/api/v1`, served only on the admin listener
//! (`admin.bind`), never on the recipients' public one.
//!
//! - Handlers are thin: they parse (with problem-returning extractors),
//!   call the same `app`/store functions as the CLI, and answer JSON DTOs
//!   defined here (store rows are not the API).
//! - The OpenAPI 3.1 document is generated from the handlers and their
//!   types (utoipa) and served at `/api/v1/openapi.json`. Every operation
//!   names its permission in `x-permission`; [`auth::guard`](super::auth::guard)
//!   enforces exactly those, so the document cannot drift from the rules.
//! - Errors are RFC 9457 problems ([`problem`]).
//! - Long work (imports, sends) answers 202 with a job to poll or stream
//!   ([`jobs`]).

pub mod admin;
pub mod campaigns;
pub mod contacts;
pub mod dto;
pub mod issues;
pub mod jobs;
pub mod media;
pub mod problem;
pub mod session;
pub mod stats;
pub mod stream;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::TcpListener;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{self, Permissions};
use crate::config::Config;
use crate::store::Store;

/// What the API handlers share.
pub struct ApiState {
    pub store: Store,
    pub config: Config,
    /// Each route's permission, from the OpenAPI document.
    pub permissions: Permissions,
    /// The OpenAPI document, serialised once.
    openapi_json: Vec<u8>,
    /// Imports and other background work.
    pub jobs: jobs::Runner,
}

pub type ApiShared = Arc<ApiState>;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "whatsup API",
        description = "The REST API of whatsup, a self-hosted newsletter system: contacts, \
            organisations, segments, imports, issues, campaigns with two-person approval, \
            bounces, statistics, the audit trail, accounts and API tokens. Authenticate with \
            `Authorization: Bearer TOKEN` (from `whatsup tokens create`), or log in for a \
            session cookie and send its CSRF token in `X-CSRF-Token` with every state-changing \
            request. Each operation's `x-permission` names the action the role must allow. \
            Errors are RFC 9457 problems.",
        license(name = "MIT OR Apache-2.0")
    ),
    modifiers(&Conventions)
)]
struct ApiDoc;

/// Adds what every operation shares: the security schemes, each
/// operation's security (all but the public ones), and the problem
/// responses.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut OpenApiDoc) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("an API token from `whatsup tokens create`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                auth::SESSION_COOKIE,
                "the session cookie set by POST /api/v1/auth/login",
            ))),
        );
        components.add_security_scheme(
            "csrf",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRF-Token",
                "the session's CSRF token (from login or GET /api/v1/auth/session), required \
                 with the cookie on every state-changing request",
            ))),
        );
    }
}

/// The routes and the document, before the state is attached.
fn parts() -> (Router<ApiShared>, OpenApiDoc) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(session::login))
        .routes(routes!(session::logout))
        .routes(routes!(session::current))
        .routes(routes!(openapi_json))
        .routes(routes!(ping))
        .merge(contacts::routes())
        .merge(campaigns::routes())
        .merge(issues::routes())
        .merge(media::routes())
        .merge(jobs::routes())
        .merge(admin::routes())
        .merge(stats::routes())
        .split_for_parts()
}

/// The OpenAPI document of the API, with the shared conventions applied
/// to every operation.
pub fn openapi() -> OpenApiDoc {
    let (_, mut doc) = parts();
    dto::finish_document(&mut doc);
    doc
}

/// The API's router with its state and guard.
pub fn router(store: Store, config: Config) -> Result<(Router, ApiShared)> {
    let (routes, mut doc) = parts();
    dto::finish_document(&mut doc);
    let json = serde_json::to_value(&doc)?;
    let permissions = Permissions::from_openapi(&json)?;
    let jobs = jobs::Runner::new(store.clone(), config.clone());
    let state = Arc::new(ApiState {
        store,
        config,
        permissions,
        openapi_json: serde_json::to_vec(&json)?,
        jobs,
    });
    let max_body = state.config.admin.max_body_bytes;
    // The admin pages answer every path the API does not route; their
    // fallback gives the API's 404 problem outside `/admin`.
    let pages = super::admin::router(state.clone())?;
    let app = routes
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::guard))
        .fallback_service(pages)
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn(security_headers))
        .with_state(state.clone());
    Ok((app, state))
}

/// The 404 problem of a path that is neither the API's nor the admin's.
pub async fn not_found() -> Response {
    problem::ApiError::not_found("no such endpoint; the API is described at /api/v1/openapi.json")
        .into_response()
}

/// The admin listener's response headers: never cached, never framed.
async fn security_headers(req: axum::extract::Request, next: middleware::Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The admin's issue preview lets its own pages frame it.
    if !h.contains_key(header::X_FRAME_OPTIONS) {
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    extensions(("x-permission" = json!("public"))),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
async fn openapi_json(State(state): State<ApiShared>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=60"),
        ],
        state.openapi_json.clone(),
    )
        .into_response()
}

/// A static answer, for health checks and as the benchmark's baseline.
#[utoipa::path(get, path = "/api/v1/ping", tag = "meta",
    extensions(("x-permission" = json!("public"))),
    responses((status = 200, description = "ok", content_type = "text/plain", body = String)))]
async fn ping() -> &'static str {
    "ok\n"
}

/// The admin listener: the API and the admin pages.
pub struct AdminServer {
    pub addr: SocketAddr,
    pub state: ApiShared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl AdminServer {
    /// Binds `bind` (port 0: any free port) and serves in a background task.
    /// Import jobs left running by a process that stopped are marked failed
    /// (see [`jobs::Runner::sweep_orphans`]).
    pub async fn start(store: Store, config: Config, bind: SocketAddr) -> Result<AdminServer> {
        let listener = TcpListener::bind(bind)
            .await
            .with_context(|| format!("binding the admin listener {bind}"))?;
        let addr = listener.local_addr()?;
        let (app, state) = router(store, config)?;
        state.jobs.sweep_orphans();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            super::serve_on(listener, app, async move {
                let _ = rx.await;
            })
            .await
        });
        Ok(AdminServer {
            addr,
            state,
            stop: Some(tx),
            task,
        })
    }

    /// Stops accepting, lets requests in flight finish, waits for running
    /// import jobs, and returns.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.state.jobs.shutdown().await;
        self.task.await.context("admin server task")?
    }
}
