//! `/metrics` in the Prometheus text exposition format (version 0.0.4),
//! written by hand: HTTP request latency histograms by route, method and
//! status class, counters kept by this process, and delivery, unsubscribe
//! and bounce counts read from the database at scrape time (so they cover
//! every worker and server sharing it).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

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

    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Relaxed);
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
            "Requests refused by the per-IP rate limit.",
            self.rate_limited.load(Relaxed),
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

/// GET /metrics.
pub async fn render(State(state): State<Shared>) -> Response {
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
            counter(
                &mut out,
                "whatsup_bounces_total",
                "Bounce events recorded.",
                m.bounces,
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
