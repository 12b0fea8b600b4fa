//! Every dashboard view as a CSV file: the table under each chart, with
//! full numbers, for a spreadsheet.
//!
//! - Times are RFC 3339 in the configured zone (`2025-04-01T09:00:00+09:00`),
//!   so a file says which zone it speaks.
//! - Rates are percentages with two decimals; an empty cell means there
//!   was nothing to divide by.
//! - A text cell that a spreadsheet would run as a formula (starting with
//!   `=`, `+`, `-`, `@`, a tab or a carriage return: a campaign's name, a
//!   clicked link, a bounce reason) gets a leading `'`.

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::{CampaignReport, HealthRow, Overview};

/// The views of one campaign that export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CampaignView {
    #[serde(rename = "deliveries.csv")]
    Deliveries,
    #[serde(rename = "regions.csv")]
    Regions,
    #[serde(rename = "kinds.csv")]
    Kinds,
    #[serde(rename = "bounces.csv")]
    Bounces,
    #[serde(rename = "unsubscribes.csv")]
    Unsubscribes,
    #[serde(rename = "clicks.csv")]
    Clicks,
}

impl CampaignView {
    pub const ALL: &'static [CampaignView] = &[
        CampaignView::Deliveries,
        CampaignView::Regions,
        CampaignView::Kinds,
        CampaignView::Bounces,
        CampaignView::Unsubscribes,
        CampaignView::Clicks,
    ];

    /// The file's name in its URL: `deliveries.csv`…
    pub fn file(self) -> &'static str {
        match self {
            CampaignView::Deliveries => "deliveries.csv",
            CampaignView::Regions => "regions.csv",
            CampaignView::Kinds => "kinds.csv",
            CampaignView::Bounces => "bounces.csv",
            CampaignView::Unsubscribes => "unsubscribes.csv",
            CampaignView::Clicks => "clicks.csv",
        }
    }

    pub fn parse(file: &str) -> Option<CampaignView> {
        CampaignView::ALL.iter().copied().find(|v| v.file() == file)
    }
}

/// The views across campaigns that export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OverviewView {
    #[serde(rename = "growth.csv")]
    Growth,
    #[serde(rename = "health.csv")]
    Health,
}

impl OverviewView {
    pub const ALL: &'static [OverviewView] = &[OverviewView::Growth, OverviewView::Health];

    pub fn file(self) -> &'static str {
        match self {
            OverviewView::Growth => "growth.csv",
            OverviewView::Health => "health.csv",
        }
    }

    pub fn parse(file: &str) -> Option<OverviewView> {
        OverviewView::ALL.iter().copied().find(|v| v.file() == file)
    }
}

/// A text cell, made safe to open in a spreadsheet.
pub fn text(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

fn rate(r: Option<f64>) -> String {
    r.map(|r| format!("{r:.2}")).unwrap_or_default()
}

fn write(header: &[&str], rows: Vec<Vec<String>>) -> Result<Vec<u8>> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    w.write_record(header)?;
    for r in rows {
        w.write_record(&r)?;
    }
    w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
}

/// The name a download of `view` of campaign `id` gets.
pub fn campaign_file_name(id: i64, view: CampaignView) -> String {
    format!("campaign-{id}-{}", view.file())
}

/// One view of a campaign's report as CSV.
pub fn campaign_csv(r: &CampaignReport, view: CampaignView) -> Result<Vec<u8>> {
    match view {
        CampaignView::Deliveries => write(
            &["period_start", "sent", "failed"],
            r.timeline
                .iter()
                .map(|b| {
                    vec![
                        b.start.to_rfc3339(),
                        b.value.sent.to_string(),
                        b.value.failed.to_string(),
                    ]
                })
                .collect(),
        ),
        CampaignView::Regions | CampaignView::Kinds => {
            let (first, rows) = if view == CampaignView::Regions {
                ("region", &r.by_region)
            } else {
                ("organisation_kind", &r.by_kind)
            };
            write(
                &[first, "recipients", "sent", "failed", "skipped", "waiting"],
                rows.iter()
                    .map(|o| {
                        vec![
                            text(&o.group),
                            o.total.to_string(),
                            o.sent.to_string(),
                            o.failed.to_string(),
                            o.skipped.to_string(),
                            o.waiting.to_string(),
                        ]
                    })
                    .collect(),
            )
        }
        CampaignView::Bounces => write(
            &["kind", "reason", "events"],
            r.bounces
                .iter()
                .map(|b| vec![text(&b.kind), text(&b.reason), b.count.to_string()])
                .collect(),
        ),
        CampaignView::Unsubscribes => {
            let u = &r.unsubscribes;
            write(
                &["method", "count"],
                vec![
                    vec!["one-click".into(), u.one_click.to_string()],
                    vec!["form".into(), u.form.to_string()],
                    vec!["undone".into(), u.undone.to_string()],
                    vec!["net".into(), u.net().to_string()],
                ],
            )
        }
        CampaignView::Clicks => write(
            &["url", "clicks"],
            r.tracking
                .by_url
                .iter()
                .map(|(url, n)| vec![text(url), n.to_string()])
                .collect(),
        ),
    }
}

/// The name a download of an overview view gets.
pub fn overview_file_name(o: &Overview, view: OverviewView) -> String {
    format!(
        "list-{}-{}-{}",
        o.range.as_str(),
        o.grain.as_str(),
        view.file()
    )
}

fn health_row(h: &HealthRow) -> Vec<String> {
    let c = &h.health;
    vec![
        c.id.to_string(),
        text(&c.name),
        c.issue_number.to_string(),
        h.started.map(|t| t.to_rfc3339()).unwrap_or_default(),
        c.state.clone(),
        c.recipients.to_string(),
        c.sent.to_string(),
        c.failed.to_string(),
        c.skipped.to_string(),
        c.waiting.to_string(),
        c.hard.to_string(),
        c.soft.to_string(),
        c.complaints.to_string(),
        c.unsubscribes.to_string(),
        c.opens.to_string(),
        c.openers.to_string(),
        c.clicks.to_string(),
        c.clickers.to_string(),
        rate(h.rates.delivery),
        rate(h.rates.bounce),
        rate(h.rates.complaint),
        rate(h.rates.unsubscribe),
        rate(h.rates.open),
        rate(h.rates.click),
    ]
}

/// One view of the overview as CSV.
pub fn overview_csv(o: &Overview, view: OverviewView) -> Result<Vec<u8>> {
    match view {
        OverviewView::Growth => write(
            &[
                "period_start",
                "joined",
                "unsubscribed",
                "bounced",
                "blocklisted",
                "returned",
                "net",
                "active_at_end",
                "contacts_at_end",
            ],
            o.growth
                .iter()
                .map(|b| {
                    let g = &b.value;
                    vec![
                        b.start.to_rfc3339(),
                        g.joined.to_string(),
                        g.unsubscribed.to_string(),
                        g.bounced.to_string(),
                        g.blocklisted.to_string(),
                        g.returned.to_string(),
                        g.net().to_string(),
                        g.active.to_string(),
                        g.contacts.to_string(),
                    ]
                })
                .collect(),
        ),
        OverviewView::Health => write(
            &[
                "campaign_id",
                "name",
                "issue",
                "started_at",
                "state",
                "recipients",
                "sent",
                "failed",
                "skipped",
                "waiting",
                "hard_bounces",
                "soft_bounces",
                "complaints",
                "unsubscribes",
                "opens",
                "unique_opens",
                "clicks",
                "unique_clicks",
                "delivery_rate_pct",
                "bounce_rate_pct",
                "complaint_rate_pct",
                "unsubscribe_rate_pct",
                "open_rate_pct",
                "click_rate_pct",
            ],
            o.health.iter().map(health_row).collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_a_spreadsheet_would_run_as_a_formula_is_quoted() {
        assert_eq!(text("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(text("-2+3"), "'-2+3");
        assert_eq!(text("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(text("WHAT'S UP 東京"), "WHAT'S UP 東京");
        assert_eq!(text(""), "");
    }

    #[test]
    fn view_files_round_trip() {
        for v in CampaignView::ALL {
            assert_eq!(CampaignView::parse(v.file()), Some(*v));
        }
        for v in OverviewView::ALL {
            assert_eq!(OverviewView::parse(v.file()), Some(*v));
        }
        assert_eq!(CampaignView::parse("secrets.csv"), None);
    }
}
