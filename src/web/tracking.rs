//! Optional open and click tracking (`web.track_opens`, `web.track_clicks`;
//! both off by default).
//!
//! - `/t/o/{campaign}/{token}` answers a 1×1 transparent GIF and counts an
//!   open.
//! - `/t/c/{campaign}/{token}/{n}` counts a click and redirects to link
//!   number `n` of the campaign's issue: the target is looked up in the
//!   issue's own numbered link list, never taken from the request, so the
//!   endpoint cannot be used as an open redirect.
//!
//! The token is the recipient's view-in-browser token (signed, with the
//! campaign inside). The client IP is stored only with `web.track_ips`.
//! Numbers in the path are canonical (no leading zeros, no sign), and both
//! answers are `no-store` (their URLs carry a token; see `observe`).

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;

use super::pages::{compiled_for, invalid_link, verify};
use super::{canonical_number, AppState, Shared};
use crate::delivery::tokens::{Claims, Purpose};

/// A transparent 1×1 GIF.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

fn claims(state: &AppState, campaign: &str, token: &str) -> Option<Claims> {
    let c = verify(state, Purpose::Browser, token)?;
    (canonical_number(campaign) == Some(c.campaign_id)).then_some(c)
}

/// The client's address when `web.track_ips` is on: behind a proxy with
/// `web.trust_forwarded_for`, the one the proxy saw.
fn ip(state: &AppState, headers: &HeaderMap, addr: &SocketAddr) -> Option<String> {
    state
        .config
        .web
        .track_ips
        .then(|| super::client_ip_from(state, headers, Some(*addr)))
        .flatten()
        .map(|ip| ip.to_string())
}

pub(super) async fn open(
    State(state): State<Shared>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((campaign, token)): Path<(String, String)>,
) -> Response {
    if !state.config.web.track_opens {
        return invalid_link(&state);
    }
    let Some(c) = claims(&state, &campaign, &token) else {
        return invalid_link(&state);
    };
    if let Err(e) = state
        .store
        .record_tracking(
            c.campaign_id as i64,
            c.contact_id as i64,
            None,
            ip(&state, &headers, &addr).as_deref(),
        )
        .await
    {
        tracing::warn!("recording an open: {e:#}");
    }
    (
        [
            (header::CONTENT_TYPE, "image/gif"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PIXEL,
    )
        .into_response()
}

pub(super) async fn click(
    State(state): State<Shared>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((campaign, token, n)): Path<(String, String, String)>,
) -> Response {
    if !state.config.web.track_clicks {
        return invalid_link(&state);
    }
    let (Some(c), Some(n)) = (claims(&state, &campaign, &token), canonical_number(&n)) else {
        return invalid_link(&state);
    };
    let compiled = match compiled_for(&state, c.campaign_id as i64).await {
        Ok(Some(compiled)) => compiled,
        Ok(None) => return invalid_link(&state),
        Err(e) => {
            tracing::error!("click: {e:#}");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let Some(url) = compiled
        .text_links
        .iter()
        .find(|l| l.n as u64 == n)
        .map(|l| l.url.clone())
    else {
        return invalid_link(&state);
    };
    if let Err(e) = state
        .store
        .record_tracking(
            c.campaign_id as i64,
            c.contact_id as i64,
            Some(&url),
            ip(&state, &headers, &addr).as_deref(),
        )
        .await
    {
        tracing::warn!("recording a click: {e:#}");
    }
    (StatusCode::FOUND, [(header::LOCATION, url)]).into_response()
}
