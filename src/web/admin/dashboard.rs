//! The dashboard: across campaigns (the list's growth and each started
//! campaign's health, over 30 or 90 days, 12 months or all time) and per
//! campaign (deliveries over time, outcomes by region and by organisation
//! kind, bounces by reason, unsubscribes, opens and clicks).
//!
//! The figures come from `app::stats` (the same functions the API's CSV
//! views call, `/api/v1/stats/{view}` and
//! `/api/v1/campaigns/{id}/report/{view}`), in `general.timezone`. Every
//! view is a table first: the time series are also drawn by uPlot
//! (`assets/admin/dashboard.js` reads the numbers from the table, so the
//! chart and its accessible alternative cannot disagree), and each table
//! downloads as CSV.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::{AdminError, AdminResult, AdminShared, NavItem, Page};
use crate::app::stats::{self, csv, Bucket, Finished, Grain, Growth, Range};
use crate::domain::Action;
use crate::web::api::stats::csv_file;

pub const NAV: &[NavItem] = &[NavItem {
    href: "/admin/dashboard",
    label: "Dashboard",
    action: Action::StatsRead,
    order: 5,
    summary: "How the list grows and how each campaign went.",
}];

pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "admin/dashboard.html",
        include_str!("../../../templates/admin/dashboard.html"),
    ),
    (
        "admin/dashboard_macros.html",
        include_str!("../../../templates/admin/dashboard_macros.html"),
    ),
    (
        "admin/dashboard_campaign.html",
        include_str!("../../../templates/admin/dashboard_campaign.html"),
    ),
];

pub fn routes() -> Router<AdminShared> {
    Router::new()
        .route("/admin/dashboard", get(overview))
        .route("/admin/dashboard/{file}", get(overview_csv))
        .route("/admin/dashboard/campaigns/{id}", get(campaign))
        .route("/admin/dashboard/campaigns/{id}/{file}", get(campaign_csv))
}

#[derive(Debug, Default, Deserialize)]
struct ViewQuery {
    range: Option<String>,
    grain: Option<String>,
}

impl ViewQuery {
    fn grain(&self) -> Option<Grain> {
        self.grain.as_deref().and_then(Grain::parse)
    }

    fn range(&self) -> Range {
        self.range
            .as_deref()
            .and_then(Range::parse)
            .unwrap_or(Range::Days90)
    }
}

/// A choice of a select: its value, words and whether it is chosen.
#[derive(Debug, Serialize)]
struct Choice {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

fn grain_choices(grains: &[Grain], chosen: Grain) -> Vec<Choice> {
    grains
        .iter()
        .map(|g| Choice {
            value: g.as_str(),
            label: g.per(),
            selected: *g == chosen,
        })
        .collect()
}

/// One row of a time table, with the bucket's start in Unix seconds for
/// the chart.
#[derive(Debug, Serialize)]
struct TimeRow<T> {
    t: i64,
    label: String,
    #[serde(flatten)]
    value: T,
}

fn time_rows<T: Copy + Serialize>(buckets: &[Bucket<T>]) -> Vec<TimeRow<T>> {
    buckets
        .iter()
        .map(|b| TimeRow {
            t: b.start.timestamp(),
            label: b.label.clone(),
            value: b.value,
        })
        .collect()
}

/// The list's changes with the sums a table shows.
#[derive(Debug, Clone, Copy, Serialize)]
struct GrowthRow {
    #[serde(flatten)]
    g: Growth,
    left: i64,
    net: i64,
}

async fn overview(
    State(s): State<AdminShared>,
    page: Page,
    Query(q): Query<ViewQuery>,
) -> AdminResult {
    page.require(Action::StatsRead)?;
    let range = q.range();
    let o = stats::overview(s.store(), s.config(), &page.actor, range, q.grain()).await?;
    let growth: Vec<Bucket<GrowthRow>> = o
        .growth
        .iter()
        .map(|b| Bucket {
            start: b.start,
            label: b.label.clone(),
            value: GrowthRow {
                g: b.value,
                left: b.value.left(),
                net: b.value.net(),
            },
        })
        .collect();
    let ranges: Vec<Choice> = Range::ALL
        .iter()
        .map(|r| Choice {
            value: r.as_str(),
            label: r.describe(),
            selected: *r == range,
        })
        .collect();
    let query = format!("range={}&grain={}", o.range.as_str(), o.grain.as_str());
    let files: Vec<(&str, String)> = csv::OverviewView::ALL
        .iter()
        .map(|v| (v.file(), format!("/admin/dashboard/{}?{query}", v.file())))
        .collect();
    s.render(
        &page,
        "admin/dashboard.html",
        context! {
            title => "Dashboard",
            range_words => range.describe(),
            ranges,
            grains => grain_choices(stats::GROWTH_GRAINS, o.grain),
            per => o.grain.per(),
            growth => time_rows(&growth),
            period_left => o.period.left(),
            period_net => o.period.net(),
            files => files.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
            o,
        },
    )
}

async fn overview_csv(
    State(s): State<AdminShared>,
    page: Page,
    Path(file): Path<String>,
    Query(q): Query<ViewQuery>,
) -> AdminResult<Response> {
    page.require(Action::StatsRead)?;
    let view = csv::OverviewView::parse(&file)
        .ok_or_else(|| AdminError::NotFound(format!("there is no view {file}")))?;
    let o = stats::overview(s.store(), s.config(), &page.actor, q.range(), q.grain()).await?;
    let body = csv::overview_csv(&o, view)?;
    Ok(csv_file(&csv::overview_file_name(&o, view), body))
}

async fn campaign(
    State(s): State<AdminShared>,
    page: Page,
    Path(id): Path<i64>,
    Query(q): Query<ViewQuery>,
) -> AdminResult {
    page.require(Action::StatsRead)?;
    let r = stats::campaign_report(s.store(), s.config(), &page.actor, id, q.grain()).await?;
    let query = format!("grain={}", r.grain.as_str());
    let files: std::collections::BTreeMap<&str, String> = csv::CampaignView::ALL
        .iter()
        .map(|v| {
            (
                v.file(),
                format!("/admin/dashboard/campaigns/{id}/{}?{query}", v.file()),
            )
        })
        .collect();
    let timeline: Vec<TimeRow<Finished>> = time_rows(&r.timeline);
    s.render(
        &page,
        "admin/dashboard_campaign.html",
        context! {
            title => format!("Campaign {}: {}", r.campaign.id, r.campaign.name),
            grains => grain_choices(stats::TIMELINE_GRAINS, r.grain),
            per => r.grain.per(),
            timeline,
            unsubscribes_net => r.unsubscribes.net(),
            files,
            r,
        },
    )
}

async fn campaign_csv(
    State(s): State<AdminShared>,
    page: Page,
    Path((id, file)): Path<(i64, String)>,
    Query(q): Query<ViewQuery>,
) -> AdminResult<Response> {
    page.require(Action::StatsRead)?;
    let view = csv::CampaignView::parse(&file)
        .ok_or_else(|| AdminError::NotFound(format!("there is no view {file}")))?;
    let r = stats::campaign_report(s.store(), s.config(), &page.actor, id, q.grain()).await?;
    let body = csv::campaign_csv(&r, view)?;
    Ok(csv_file(&csv::campaign_file_name(id, view), body))
}
