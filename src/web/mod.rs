//! `whatsup serve`: the recipients' web pages (unsubscribe with RFC 8058
//! one-click, undo, preferences, view in browser), the public archive and
//! its Atom feed, optional open and click tracking, `/healthz`, and the
//! sending services' bounce and complaint [`webhooks`]. `/metrics` is served
//! on a listener of its own (`web.metrics_bind`, loopback by default), or on
//! the public one behind a bearer token.
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
//!   `frame-ancestors 'none'` and a Permissions-Policy that allows nothing
//!   (and HSTS when `newsletter.base_url` is https); every response to a
//!   URL with a token (`/u/`, `/p/`, `/v/`, `/t/`) is `no-store`.
//! - **One-click is never refused for rate.** RFC 8058 POSTs
//!   (`POST /u/{token}`) have their own generous per-IP limiter, separate
//!   from the page views', and a global ceiling under which they wait
//!   their turn instead of being refused. A 429 has a page of its own.
//! - **Forms are small, strict and ours.** Bodies are capped at
//!   [`FORM_BODY_LIMIT`] (413); see `pages.rs` for what each POST accepts.
//! - **Numbers in paths are canonical** ([`canonical_number`]):
//!   `/archive/0214` is a 404, not issue 214.
//!
//! Only `src/store/` speaks SQL; status changes go through `record_change!`
//! with actor `web` and the campaign from the token as evidence.

pub mod admin;
pub mod api;
mod archive;
pub mod assets;
pub mod auth;
pub(crate) mod form;
pub(crate) mod media;
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
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
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

/// The largest body of a one-click POST or one of the recipients' forms
/// (the webhooks have `webhooks.max_body_bytes`).
pub const FORM_BODY_LIMIT: usize = 8 * 1024;

/// What the recipients' pages may use of the browser: nothing.
pub const PERMISSIONS_POLICY: &str = "accelerometer=(), autoplay=(), camera=(), \
    display-capture=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), \
    payment=(), publickey-credentials-get=(), usb=(), browsing-topics=()";

/// HSTS when the public base URL is https: a year.
pub const HSTS: &str = "max-age=31536000";

/// The route of one-click unsubscribes (and the confirmation form).
const ONE_CLICK_ROUTE: &str = "/u/{token}";

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
    /// Page views and the other forms, per client IP.
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// One-click unsubscribes, per client IP (generous).
    one_click: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// One-click unsubscribes from everyone together.
    one_click_ceiling: Option<DefaultDirectRateLimiter>,
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
        let w = &config.web;
        let limiter = quota(w.rate_limit_per_second, w.rate_limit_burst).map(RateLimiter::keyed);
        let one_click = quota(w.one_click_per_second, w.one_click_burst).map(RateLimiter::keyed);
        // The ceiling's burst is one second's worth.
        let one_click_ceiling = quota(
            w.one_click_ceiling_per_second,
            w.one_click_ceiling_per_second,
        )
        .map(RateLimiter::direct);
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
            one_click,
            one_click_ceiling,
            compiled: Mutex::new(HashMap::new()),
            archived: Mutex::new(HashMap::new()),
        });
        Ok(state)
    }

    fn base_url(&self) -> &str {
        self.config.newsletter.base_url.trim_end_matches('/')
    }
}

/// A rate and a burst, or `None` when the rate is 0 (no limit).
fn quota(per_second: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(burst.max(1))?;
    Some(Quota::per_second(rate).allow_burst(burst))
}

/// A number in a path, only in its canonical form: ASCII digits without a
/// leading zero (or just `0`), no sign, no spaces. `/archive/0214` and
/// `/v/01/…` are not found; each resource has one URL.
pub fn canonical_number(s: &str) -> Option<u64> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    canonical.then(|| s.parse().ok()).flatten()
}

/// Whether `origin` (an `Origin` header) is this site: the origin of
/// `newsletter.base_url`, or the scheme-less `Host` the request was sent to.
fn is_our_origin(state: &AppState, origin: &str, host: Option<&str>) -> bool {
    let origin = origin.trim().trim_end_matches('/');
    if origin.eq_ignore_ascii_case(&base_origin(state.base_url())) {
        return true;
    }
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h.trim()))
}

/// `scheme://host[:port]` of a URL.
fn base_origin(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split('/').next().unwrap_or(rest);
            format!("{scheme}://{authority}")
        }
        None => url.to_string(),
    }
}

/// The public routes. Pages and forms are rate-limited per client IP, and
/// one-click unsubscribes by their own limits; `/healthz`, the stylesheet
/// and the webhooks are not. Bodies of the pages' POSTs are capped at
/// [`FORM_BODY_LIMIT`]. `/metrics` is here only with `web.metrics_bind =
/// "public"` (behind its bearer token).
pub fn router(state: Shared) -> Router {
    let public = Router::new()
        .route(
            ONE_CLICK_ROUTE,
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
        .route_layer(DefaultBodyLimit::max(FORM_BODY_LIMIT))
        .route_layer(middleware::from_fn_with_state(state.clone(), rate_limit));
    let mut app = Router::new()
        .merge(public)
        .merge(webhooks::routes(&state))
        .route("/healthz", get(healthz))
        .route("/assets/web.css", get(stylesheet))
        .route("/favicon.ico", get(assets::favicon))
        .route("/media/{file}", get(media::file));
    if state.config.web.metrics_bind == "public" {
        app = app.route("/metrics", get(metrics::render));
    }
    app.fallback(pages::not_found)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// The routes of the metrics listener: `/metrics` (behind the bearer token
/// when `web.metrics_token` is set) and `/healthz`.
pub fn metrics_router(state: Shared) -> Router {
    Router::new()
        .route("/metrics", get(metrics::render))
        .route("/healthz", get(healthz))
        .with_state(state)
}

/// A running server: its addresses, and a way to stop it.
pub struct Server {
    pub addr: SocketAddr,
    /// Where /metrics is served when it has a listener of its own.
    pub metrics_addr: Option<SocketAddr>,
    pub state: Shared,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl Server {
    /// Binds `bind` (port 0: any free port) and, unless `web.metrics_bind`
    /// is `public` or `off`, the metrics listener, and serves both in a
    /// background task.
    pub async fn start(store: Store, config: Config, bind: SocketAddr) -> Result<Server> {
        let listener = TcpListener::bind(bind)
            .await
            .with_context(|| format!("binding {bind}"))?;
        let addr = listener.local_addr()?;
        let metrics_listener = match config.web.metrics_bind.as_str() {
            "public" | "off" => None,
            other => {
                let at: SocketAddr = other
                    .parse()
                    .with_context(|| format!("web.metrics_bind {other:?}"))?;
                Some(
                    TcpListener::bind(at)
                        .await
                        .with_context(|| format!("binding web.metrics_bind {at}"))?,
                )
            }
        };
        let metrics_addr = metrics_listener
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()?;
        let state = AppState::new(store, config)?;
        let (tx, rx) = tokio::sync::watch::channel(false);
        let stopped = move |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let public = serve_on(listener, router(state.clone()), stopped(rx.clone()));
        let metrics = metrics_listener
            .map(|l| serve_on(l, metrics_router(state.clone()), stopped(rx.clone())));
        let task = tokio::spawn(async move {
            match metrics {
                Some(metrics) => tokio::try_join!(public, metrics).map(|_| ()),
                None => public.await,
            }
        });
        Ok(Server {
            addr,
            metrics_addr,
            state,
            stop: Some(tx),
            task,
        })
    }

    /// Stops accepting, lets requests in flight finish, and waits.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(true);
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
    // Every URL that carries a token, whether or not a route matched.
    let path = req.uri().path();
    let personal = ["/u/", "/p/", "/v/", "/t/"]
        .iter()
        .any(|p| path.starts_with(p));
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
    h.insert(
        header::HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static(PERMISSIONS_POLICY),
    );
    if state.base_url().starts_with("https://") {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
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
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    client_ip_from(state, req.headers(), peer)
}

/// [`client_ip`] from the headers and the socket's peer.
fn client_ip_from(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    peer: Option<SocketAddr>,
) -> Option<IpAddr> {
    if state.config.web.trust_forwarded_for {
        if let Some(ip) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok())
        {
            return Some(ip);
        }
    }
    peer.map(|p| p.ip())
}

/// The per-IP limits of the public routes: one-click unsubscribes (a POST
/// to [`ONE_CLICK_ROUTE`]) by their own generous limiter, everything else
/// by the page limiter. (The one-click ceiling applies in the handler, to
/// valid requests only: see [`one_click_turn`].)
async fn rate_limit(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let one_click = req.method() == Method::POST
        && req
            .extensions()
            .get::<MatchedPath>()
            .is_some_and(|p| p.as_str() == ONE_CLICK_ROUTE);
    let ip = client_ip(&state, &req);
    let limiter = if one_click {
        state.one_click.as_ref()
    } else {
        state.limiter.as_ref()
    };
    let refused = per_ip_refused(limiter, ip);
    if let Some(retry_after) = refused {
        state.metrics.rate_limited(one_click);
        return pages::busy(&state, retry_after);
    }
    next.run(req).await
}

/// Whether `limiter` refuses one more request from `ip`: the seconds to
/// wait, for Retry-After.
fn per_ip_refused(
    limiter: Option<&DefaultKeyedRateLimiter<IpAddr>>,
    ip: Option<IpAddr>,
) -> Option<u64> {
    let (Some(limiter), Some(ip)) = (limiter, ip) else {
        return None;
    };
    let not_until = limiter.check_key(&ip).err()?;
    if limiter.len() > 100_000 {
        limiter.retain_recent();
    }
    let wait = not_until.wait_time_from(limiter.clock().now());
    tracing::debug!(%ip, ?wait, "rate limited");
    Some(wait.as_secs().max(1))
}

/// A valid one-click unsubscribe's turn under the global ceiling, which
/// keeps the database safe: it waits for its turn, for up to
/// `web.one_click_max_wait_secs`, and is refused (the seconds for
/// Retry-After) only after that. Requests with a bad token or body never
/// get here, so they cannot use up the ceiling.
pub(crate) async fn one_click_turn(state: &AppState) -> Option<u64> {
    let ceiling = state.one_click_ceiling.as_ref()?;
    let deadline = Instant::now() + Duration::from_secs(state.config.web.one_click_max_wait_secs);
    let mut waited = false;
    loop {
        let Err(not_until) = ceiling.check() else {
            if waited {
                state.metrics.one_click_waited();
            }
            return None;
        };
        let wait = not_until.wait_time_from(ceiling.clock().now());
        if Instant::now() + wait > deadline {
            return Some(wait.as_secs().max(1));
        }
        waited = true;
        tokio::time::sleep(wait).await;
    }
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
