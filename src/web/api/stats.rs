//! The dashboard's views as CSV, for scripts and spreadsheets: the same
//! files the admin's dashboard offers for download, made by the same
//! functions (`app::stats`): one campaign's views and the views across
//! campaigns. Times are in `general.timezone`, with the offset written.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::problem::{ApiError, ApiPath, ApiQuery, ApiResult};
use super::ApiShared;
use crate::app::stats::{self, csv, Grain, Range};
use crate::web::auth::Caller;

pub fn routes() -> OpenApiRouter<ApiShared> {
    OpenApiRouter::new()
        .routes(routes!(campaign_view))
        .routes(routes!(overview_view))
}

/// The grain of a time view.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CampaignViewQuery {
    /// minute, 5min, 15min, hour or day; chosen to fit the send without it.
    pub grain: Option<String>,
}

/// The range and grain of the list's growth.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OverviewQuery {
    /// 30d, 90d, 12m or all (default 90d).
    pub range: Option<String>,
    /// day, week or month; chosen to fit the range without it.
    pub grain: Option<String>,
}

/// Reads an optional grain from a query.
pub fn grain(asked: Option<&str>) -> ApiResult<Option<Grain>> {
    match asked.map(str::trim).filter(|g| !g.is_empty()) {
        None => Ok(None),
        Some(g) => Grain::parse(g).map(Some).ok_or_else(|| {
            ApiError::invalid(
                "grain",
                None,
                format!("{g:?} is not one of minute, 5min, 15min, hour, day, week, month"),
            )
        }),
    }
}

/// Reads an optional range (90 days without one).
pub fn range(asked: Option<&str>) -> ApiResult<Range> {
    match asked.map(str::trim).filter(|r| !r.is_empty()) {
        None => Ok(Range::Days90),
        Some(r) => Range::parse(r).ok_or_else(|| {
            ApiError::invalid(
                "range",
                None,
                format!("{r:?} is not one of 30d, 90d, 12m, all"),
            )
        }),
    }
}

/// A CSV file as a download named `name`.
pub fn csv_file(name: &str, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// One view of a campaign's dashboard as CSV.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/report/{view}", tag = "campaigns",
    extensions(("x-permission" = json!("stats.read"))),
    params(("id" = i64, Path, description = "Campaign id"),
        ("view" = String, Path, description = "deliveries.csv, regions.csv, kinds.csv, bounces.csv, unsubscribes.csv or clicks.csv"),
        CampaignViewQuery),
    responses((status = 200, description = "The view as CSV", content_type = "text/csv", body = String)))]
pub async fn campaign_view(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiPath((id, view)): ApiPath<(i64, String)>,
    ApiQuery(q): ApiQuery<CampaignViewQuery>,
) -> ApiResult<Response> {
    let view = csv::CampaignView::parse(&view)
        .ok_or_else(|| ApiError::not_found(format!("no view {view:?}")))?;
    let grain = grain(q.grain.as_deref())?;
    let report =
        stats::campaign_report(&state.store, &state.config, &caller.actor, id, grain).await?;
    let body = csv::campaign_csv(&report, view).map_err(ApiError::internal)?;
    Ok(csv_file(&csv::campaign_file_name(id, view), body))
}

/// One view across campaigns (the list's growth, each campaign's health) as CSV.
#[utoipa::path(get, path = "/api/v1/stats/{view}", tag = "campaigns",
    extensions(("x-permission" = json!("stats.read"))),
    params(("view" = String, Path, description = "growth.csv or health.csv"), OverviewQuery),
    responses((status = 200, description = "The view as CSV", content_type = "text/csv", body = String)))]
pub async fn overview_view(
    State(state): State<ApiShared>,
    caller: Caller,
    ApiPath(view): ApiPath<String>,
    ApiQuery(q): ApiQuery<OverviewQuery>,
) -> ApiResult<Response> {
    let view = csv::OverviewView::parse(&view)
        .ok_or_else(|| ApiError::not_found(format!("no view {view:?}")))?;
    let (range, grain) = (range(q.range.as_deref())?, grain(q.grain.as_deref())?);
    let o = stats::overview(&state.store, &state.config, &caller.actor, range, grain).await?;
    let body = csv::overview_csv(&o, view).map_err(ApiError::internal)?;
    Ok(csv_file(&csv::overview_file_name(&o, view), body))
}
