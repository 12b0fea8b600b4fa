//! `/metrics` in the Prometheus text exposition format (version 0.0.4),
//! written by hand: HTTP request latency histograms by route, method and
//! status class, counters kept by this process, and delivery, unsubscribe
//! and bounce counts read from the database at scrape time (so they cover
//! every worker and server sharing it).
//!
//! It is served on its own listener (`web.metrics_bind`, loopback by
//! default) or, with `web.metrics_bind = "public"`, on the public one. When
//! `web.metrics_token` is set, a scrape needs `Authorization: Bearer
//! <token>` (compared in constant time) on either; without it: 401.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::writer::STATS;
use super::Shared;

/// Upper bounds of the latency buckets, in seconds.
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// In-process counters and histograms.
#[derive(Debug, Default)]
pub struct Metrics {
    http: Mutex<BTreeMap<(String, String, &'static str), Histogram>>,
    unsubscribes: AtomicU64,
    resubscribes: AtomicU64,
    rate_limited: AtomicU64,
    one_click_rate_limited: AtomicU64,
    one_click_waited: AtomicU64,
}

fn class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

impl Metrics {
    pub fn observe(&self, route: &str, method: &str, status: StatusCode, took: Duration) {
        let secs = took.as_secs_f64();
        if let Ok(mut m) = self.http.lock() {
            let h = m
                .entry((route.to_string(), method.to_string(), class(status)))
                .or_default();
            h.count += 1;
            h.sum += secs;
            if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
                h.counts[i] += 1;
            }
        }
    }

    pub fn unsubscribed(&self) {
        self.unsubscribes.fetch_add(1, Relaxed);
    }

    pub fn resubscribed(&self) {
        self.resubscribes.fetch_add(1, Relaxed);
    }

    /// A request refused by a rate limit (`one_click`: of the one-click
    /// limiter or ceiling).
    pub fn rate_limited(&self, one_click: bool) {
        if one_click {
            self.one_click_rate_limited.fetch_add(1, Relaxed);
        } else {
            self.rate_limited.fetch_add(1, Relaxed);
        }
    }

    /// A one-click unsubscribe that waited under the global ceiling.
    pub fn one_click_waited(&self) {
        self.one_click_waited.fetch_add(1, Relaxed);
    }

    /// The process's own metrics in exposition format.
    pub fn write(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP whatsup_http_request_duration_seconds Time to answer an HTTP request.\n\
             # TYPE whatsup_http_request_duration_seconds histogram"
        );
        let http = self.http.lock().map(|m| m.clone()).unwrap_or_default();
        for ((route, method, status), h) in &http {
            let labels = format!(
                "route=\"{}\",method=\"{}\",status=\"{status}\"",
                escape(route),
                escape(method)
            );
            let mut cumulative = 0;
            for (b, n) in BUCKETS.iter().zip(h.counts) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "whatsup_http_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "whatsup_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}\n\
                 whatsup_http_request_duration_seconds_sum{{{labels}}} {}\n\
                 whatsup_http_request_duration_seconds_count{{{labels}}} {}",
                h.count, h.sum, h.count
            );
        }
        counter(
            out,
            "whatsup_web_unsubscribes_total",
            "Contacts unsubscribed through the web pages by this process.",
            self.unsubscribes.load(Relaxed),
        );
        counter(
            out,
            "whatsup_web_resubscribes_total",
            "Unsubscribes undone through the web pages by this process.",
            self.resubscribes.load(Relaxed),
        );
        counter(
            out,
            "whatsup_http_rate_limited_total",
            "Page views and form posts refused by the per-IP rate limit.",
            self.rate_limited.load(Relaxed),
        );
        counter(
            out,
            "whatsup_one_click_rate_limited_total",
            "One-click unsubscribes refused (429) by their per-IP limit or the global ceiling.",
            self.one_click_rate_limited.load(Relaxed),
        );
        counter(
            out,
            "whatsup_one_click_waited_total",
            "One-click unsubscribes that waited for their turn under the global ceiling.",
            self.one_click_waited.load(Relaxed),
        );
        counter(
            out,
            "whatsup_web_commit_batches_total",
            "Group-commit transactions of web changes.",
            STATS.batches.load(Relaxed),
        );
        counter(
            out,
            "whatsup_web_commit_changes_total",
            "Web changes committed by the group-commit writer.",
            STATS.changes.load(Relaxed),
        );
    }
}

fn counter(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
    );
}

fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
    );
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Whether the request may scrape: no token configured, or the right one.
fn authorised(token: &str, headers: &HeaderMap) -> bool {
    if token.is_empty() {
        return true;
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| bool::from(given.trim().as_bytes().ct_eq(token.as_bytes())))
}

/// GET /metrics.
pub async fn render(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if !authorised(state.config.web.metrics_token.expose(), &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"whatsup metrics\"")],
            "a bearer token is required (web.metrics_token)\n",
        )
            .into_response();
    }
    let mut out = String::with_capacity(8192);
    match state.store.store_metrics().await {
        Ok(m) => {
            counter(
                &mut out,
                "whatsup_messages_sent_total",
                "Messages accepted by a relay or written to the outbox.",
                m.sent,
            );
            counter(
                &mut out,
                "whatsup_messages_failed_total",
                "Messages that failed for good.",
                m.failed,
            );
            counter(
                &mut out,
                "whatsup_messages_retried_total",
                "Delivery attempts beyond the first.",
                m.retried,
            );
            gauge(
                &mut out,
                "whatsup_queue_depth",
                "Deliveries pending, waiting for a retry, or being sent.",
                m.queue_depth,
            );
            gauge(
                &mut out,
                "whatsup_campaigns_waiting_for_relay",
                "Running campaigns waiting for an SMTP relay that cannot be reached.",
                m.waiting_for_relay,
            );
            gauge(
                &mut out,
                "whatsup_contacts_unsubscribed",
                "Contacts whose status is unsubscribed.",
                m.unsubscribed,
            );
            counter(
                &mut out,
                "whatsup_unsubscribes_total",
                "Unsubscribes in the audit trail, from every source.",
                m.unsubscribe_events,
            );
            let _ = writeln!(
                out,
                "# HELP whatsup_bounces_total Bounce events recorded; verified=\"false\": \
                 matched only by what anyone can write, so they changed nothing.\n\
                 # TYPE whatsup_bounces_total counter\n\
                 whatsup_bounces_total{{verified=\"true\"}} {}\n\
                 whatsup_bounces_total{{verified=\"false\"}} {}",
                m.bounces - m.unverified_bounces,
                m.unverified_bounces
            );
            gauge(
                &mut out,
                "whatsup_database_up",
                "1 if the database answered.",
                1,
            );
        }
        Err(e) => {
            tracing::error!("metrics: {e:#}");
            gauge(
                &mut out,
                "whatsup_database_up",
                "1 if the database answered.",
                0,
            );
        }
    }
    state.metrics.write(&mut out);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
