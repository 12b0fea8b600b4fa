//! `whatsup serve`: the recipients' web pages (unsubscribe with RFC 8058
//! one-click, undo, preferences, view in browser), the public archive and
//! its Atom feed, optional open and click tracking, `/healthz`,
//! `/metrics`, and the sending services' bounce and complaint
//! [`webhooks`].
//!
//! Rules every handler keeps:
//! - **A GET never changes anything.** Link scanners fetch every link in a
//!   mail; only a POST unsubscribes.
//! - **The reply comes after the commit.** Unsubscribes and undos go to the
//!   group-commit [`writer`]: one task commits a batch of them in one
//!   transaction and only then answers each request.
//! - **A bad token tells nothing.** Forged, truncated, revoked (key removed)
//!   and wrong-purpose tokens all get the same 4xx page, and no page reveals
//!   whether an address is on the list.
//! - **Tokens do not leak.** Every response carries
//!   `Referrer-Policy: no-referrer`, a restrictive CSP with
//!   `frame-ancestors 'none'`, and pages with tokens are `no-store`.
//!
//! Only `src/store/` speaks SQL; status changes go through `record_change!`
//! with actor `web` and the campaign from the token as evidence.

pub mod api;
mod archive;
pub mod auth;
mod form;
pub mod metrics;
mod pages;
mod tracking;
pub mod webhooks;
pub mod writer;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use minijinja::Environment;
use tokio::net::TcpListener;

use crate::compose::CompiledIssue;
use crate::config::Config;
use crate::delivery::tokens::TokenKeys;
use crate::store::Store;

/// The CSP of the recipients' pages: our stylesheet, no scripts, forms only
/// to ourselves, never framed.
pub const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
                            form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The CSP of a rendered issue: its inline styles and remote images, still
/// no scripts, no forms, never framed.
pub const ISSUE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; \
                             img-src https: data:; form-action 'none'; \
                             frame-ancestors 'none'; base-uri 'none'";

/// Everything the handlers share.
pub struct AppState {
    pub store: Store,
    pub config: Config,
    keys: TokenKeys,
    env: Environment<'static>,
    css: String,
    writer: writer::Writer,
    pub metrics: metrics::Metrics,
    /// The configured bounce and complaint webhooks.
    pub webhooks: webhooks::Webhooks,
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Compiled campaign issues for the web view, by campaign id.
    compiled: Mutex<HashMap<i64, Arc<CompiledIssue>>>,
    /// Rendered archive pages, by issue number and revision.
    archived: Mutex<HashMap<(i64, i64), Arc<String>>>,
}

pub type Shared = Arc<AppState>;

impl AppState {
    /// Builds the state: token keys, templates, the writer task (spawned on
    /// the current runtime) and the rate limiter.
    pub fn new(store: Store, config: Config) -> Result<Shared> {
        let keys = crate::send::identity::token_keys(&config)?;
        let tz: chrono_tz::Tz = config
            .newsletter
            .timezone
            .parse()
            .map_err(|_| anyhow!("newsletter.timezone is not an IANA zone"))?;
        let dir =
            Some(config.newsletter.templates_dir.as_path()).filter(|d| !d.as_os_str().is_empty());
        let (env, _) = crate::compose::templates::environment(dir, tz);
        let css = env
            .get_template("web/web.css")
            .and_then(|t| t.render(()))
            .context("templates/web/web.css")?;
        let limiter = match (
            NonZeroU32::new(config.web.rate_limit_per_second),
            NonZeroU32::new(config.web.rate_limit_burst.max(1)),
        ) {
            (Some(rate), Some(burst)) => Some(RateLimiter::keyed(
                Quota::per_second(rate).allow_burst(burst),
            )),
            _ => None,
        };
        let metrics = metrics::Metrics::default();
        let webhooks = webhooks::Webhooks::from_config(store.clone(), &config)?;
        let writer = writer::Writer::spawn(store.clone(), config.web.commit_batch);
        let state = Arc::new(AppState {
            store,
            config,
            keys,
            env,
            css,
            writer,
            metrics,
            webhooks,
            limiter,
            compiled: Mutex::new(HashMap::new()),
            archived: Mutex::new(HashMap::new()),
        });
        Ok(state)
    }

    fn base_url(&self) -> &str {
        self.config.newsletter.base_url.trim_end_matches('/')
    }
}

/// The routes. Public pages are rate-limited per client IP; `/healthz`,
/// `/metrics`, the stylesheet and the webhooks are not.
pub fn router(state: Shared) -> Router {
    let public = Router::new()
        .route(
            "/u/{token}",
            get(pages::unsubscribe_page).post(pages::unsubscribe),
        )
        .route("/u/{token}/undo", post(pages::undo))
        .route(
            "/p/{token}",
            get(pages::preferences_page).post(pages::save_preferences),
        )
        .route("/v/{campaign}/{token}", get(pages::view_in_browser))
        .route("/links", get(pages::links_help))
        .route("/archive", get(archive::index))
        .route("/archive/feed.xml", get(archive::feed))
        .route("/archive/{number}", get(archive::issue))
        .route("/t/o/{campaign}/{token}", get(tracking::open))
        .route("/t/c/{campaign}/{token}/{n}", get(tracking::click))
        .route_layer(middleware::from_fn_with_state(state.clone(), rate_limit));
    Router::new()
        .merge(public)
        .merge(webhooks::routes(&state))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::render))
        .route("/assets/web.css", get(stylesheet))
        .fallback(pages::not_found)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// A running server: its address, and a way to stop it.
pub struct Server {
    pub addr: SocketAddr,
    pub state: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl Server {
    /// Binds `bind` (port 0: any free port) and serves in a background task.
    pub async fn start(store: Store, config: Config, bind: SocketAddr) -> Result<Server> {
        let listener = TcpListener::bind(bind)
            .await
            .with_context(|| format!("binding {bind}"))?;
        let addr = listener.local_addr()?;
        let state = AppState::new(store, config)?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(state.clone());
        let task = tokio::spawn(async move {
            serve_on(listener, app, async move {
                let _ = rx.await;
            })
            .await
        });
        Ok(Server {
            addr,
            state,
            stop: Some(tx),
            task,
        })
    }

    /// Stops accepting, lets requests in flight finish, and waits.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.await.context("server task")?
    }
}

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn serve_on(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("web server")
}

/// Sets the security headers, and times every request for /metrics.
async fn observe(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "other".into());
    let method = req.method().clone();
    let personal = route.starts_with("/u/") || route.starts_with("/p/") || route.starts_with("/v/");
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_CSP),
        );
    }
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if personal {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(
            header::HeaderName::from_static("x-robots-tag"),
            HeaderValue::from_static("noindex"),
        );
    }
    state
        .metrics
        .observe(&route, method.as_str(), res.status(), start.elapsed());
    res
}

/// The client's IP: the socket's peer, or with `web.trust_forwarded_for`
/// the last X-Forwarded-For entry (the one the proxy added).
fn client_ip(state: &AppState, req: &Request) -> Option<IpAddr> {
    if state.config.web.trust_forwarded_for {
        if let Some(ip) = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok())
        {
            return Some(ip);
        }
    }
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

async fn rate_limit(State(state): State<Shared>, req: Request, next: Next) -> Response {
    if let (Some(limiter), Some(ip)) = (&state.limiter, client_ip(&state, &req)) {
        if limiter.check_key(&ip).is_err() {
            state.metrics.rate_limited();
            if limiter.len() > 100_000 {
                limiter.retain_recent();
            }
            let mut res = pages::message_page(
                &state,
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests",
                "Please wait a moment and try again.",
            );
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return res;
        }
    }
    next.run(req).await
}

async fn healthz(State(state): State<Shared>) -> Response {
    match tokio::time::timeout(Duration::from_secs(5), state.store.schema_version()).await {
        Ok(Ok(_)) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "ok\n",
        )
            .into_response(),
        Ok(Err(e)) => {
            tracing::error!("healthz: {e:#}");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database timeout\n").into_response(),
    }
}

async fn stylesheet(State(state): State<Shared>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        state.css.clone(),
    )
        .into_response()
}
