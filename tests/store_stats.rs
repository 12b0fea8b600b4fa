//! The dashboard's figures on SQLite and on PostgreSQL: the store's counts
//! by minute, region, kind, bounce reason and unsubscribe method, each
//! campaign's health, the list's changes and totals, and the app layer's
//! report and overview folded into Tokyo time. Part of the store
//! conformance suite.

use crate::common::{self, data, import, TestDb};

use whatsup::app::stats::{self, Grain, Range};
use whatsup::domain::{Account, Actor, Role};
use whatsup::import::ImportOptions;
use whatsup::store::bounces::{BouncePolicy, NewBounceEvent, NewBounceMessage};
use whatsup::store::web::WebChange;
use whatsup::store::Store;

/// Runs `sql` with integer parameters on either backend, as the sender
/// would have left the rows.
async fn raw(store: &Store, sql: &str, params: &[i64]) -> u64 {
    macro_rules! run {
        ($pool:expr) => {{
            let mut q = sqlx::query(sql);
            for p in params {
                q = q.bind(*p);
            }
            q.execute($pool).await.unwrap().rows_affected()
        }};
    }
    match store {
        Store::Sqlite(p) => run!(p),
        Store::Postgres(p) => run!(p),
    }
}

/// The fixture's eight contacts, a started campaign to all of them, and
/// its deliveries as a send would leave them: five sent over three
/// minutes (four at 00:01 UTC, one at 00:03), one failed at 01:10, one
/// skipped, one still pending. Returns the campaign and contact ids.
pub(crate) async fn sent_campaign(db: &TestDb) -> (i64, impl Fn(&str) -> i64) {
    let r = import(
        &db.store,
        &data("csv/fixture.csv"),
        &ImportOptions::default(),
    )
    .await;
    assert_eq!(r.created, 8, "{:?}", r.errors);
    common::save_sample_issue(&db.store).await;
    let campaign = common::draft_campaign(&db.store, "stats", "").await;
    whatsup::send::engine::start(&db.store, &db.config, campaign, &common::actor())
        .await
        .unwrap();
    let mut ids = std::collections::HashMap::new();
    for c in db.store.list_contacts(None, None, 0).await.unwrap() {
        ids.insert(c.email.clone(), c.id);
    }
    let id = move |email: &str| ids[email];
    let set = |status: &str, at: &str| {
        let sent_at = if status == "sent" {
            format!("'{at}'")
        } else {
            "NULL".into()
        };
        format!(
            "UPDATE deliveries SET status = '{status}', sent_at = {sent_at}, updated_at = '{at}' \
             WHERE campaign_id = $1 AND contact_id = $2"
        )
    };
    for email in [
        "anne.martin@paris.example.com",
        "jonas.weber@berlin.example.com",
        "culture@fr.embassy.example.org",
        "press@de.embassy.example.org",
    ] {
        let sql = set("sent", "2026-04-01T00:01:20Z");
        assert_eq!(raw(&db.store, &sql, &[campaign, id(email)]).await, 1);
    }
    let steps = [
        ("o'neill@nyc.example.com", "sent", "2026-04-01T00:03:59Z"),
        (
            "info@br.embassy.example.org",
            "failed",
            "2026-04-01T01:10:00Z",
        ),
        ("tokyo@eu.example.net", "skipped", "2026-04-01T00:02:00Z"),
    ];
    for (email, status, at) in steps {
        let sql = set(status, at);
        assert_eq!(raw(&db.store, &sql, &[campaign, id(email)]).await, 1);
    }
    (campaign, id)
}

fn hard_bounce(contact: i64, campaign: i64, email: &str, reason: &str) -> NewBounceEvent {
    NewBounceEvent {
        contact_id: Some(contact),
        campaign_id: Some(campaign),
        delivery_id: None,
        email: email.into(),
        kind: "hard".into(),
        reason: reason.into(),
        status: "5.1.1".into(),
        diagnostic: "550 5.1.1 user unknown".into(),
        matched_by: "verp".into(),
        verified: true,
    }
}

async fn bounce(store: &Store, key: &str, event: NewBounceEvent) {
    let message = NewBounceMessage {
        sha256: key.into(),
        message_id: format!("<{key}@example.net>"),
        source: "test".into(),
        format: "dsn".into(),
        events: vec![event],
    };
    let out = store
        .record_bounce(&message, &BouncePolicy::default(), "bounce:test")
        .await
        .unwrap();
    assert!(!out.duplicate);
}

async fn a_campaigns_counts_group_by_minute_region_kind_reason_and_unsubscribe_method(db: TestDb) {
    let (campaign, id) = sent_campaign(&db).await;
    let s = &db.store;

    let minutes = s.delivery_minutes(campaign).await.unwrap();
    let got: Vec<(String, i64, i64)> = minutes
        .iter()
        .map(|m| (m.at.to_rfc3339(), m.sent, m.failed))
        .collect();
    assert_eq!(
        got,
        [
            ("2026-04-01T00:01:00+00:00".to_string(), 4, 0),
            ("2026-04-01T00:03:00+00:00".to_string(), 1, 0),
            ("2026-04-01T01:10:00+00:00".to_string(), 0, 1),
        ]
    );

    let info = id("info@br.embassy.example.org");
    bounce(
        s,
        "b1",
        hard_bounce(
            info,
            campaign,
            "info@br.embassy.example.org",
            "user_unknown",
        ),
    )
    .await;
    let (anne, jonas) = (
        id("anne.martin@paris.example.com"),
        id("jonas.weber@berlin.example.com"),
    );
    s.apply_web_changes(&[
        WebChange::Unsubscribe {
            contact: anne,
            campaign,
            one_click: true,
        },
        WebChange::Unsubscribe {
            contact: jonas,
            campaign,
            one_click: false,
        },
    ])
    .await
    .unwrap();
    s.apply_web_changes(&[WebChange::Resubscribe {
        contact: jonas,
        campaign,
    }])
    .await
    .unwrap();
    let u = s.campaign_unsubscribes(campaign).await.unwrap();
    assert_eq!((u.one_click, u.form, u.undone, u.net()), (1, 1, 1, 1));
    assert_eq!(
        s.campaign_unsubscribes(campaign + 1).await.unwrap().net(),
        0
    );

    // A second campaign that never started has no health row.
    common::draft_campaign(s, "not started", "").await;
    let health = s.campaign_health(None).await.unwrap();
    assert_eq!(health.len(), 1, "{health:?}");
    let h = &health[0];
    assert_eq!(
        (h.id, h.recipients, h.sent, h.failed, h.skipped, h.waiting),
        (campaign, 8, 5, 1, 1, 1)
    );
    assert_eq!((h.hard, h.soft, h.complaints, h.unsubscribes), (1, 0, 0, 1));
    assert!(h.started_at.is_some());
    assert_eq!(s.campaign_health(Some(campaign)).await.unwrap(), health);

    let t = s.status_totals().await.unwrap();
    assert_eq!(
        (
            t.active,
            t.unsubscribed,
            t.bounced,
            t.blocklisted,
            t.total()
        ),
        (6, 1, 1, 0, 8)
    );
    // Every change happened during this test, so summing the hours is
    // right even if the clock passed an hour meanwhile.
    let changes = s.list_changes(None).await.unwrap();
    let sum = |f: fn(&whatsup::store::stats::ListChange) -> i64| changes.iter().map(f).sum::<i64>();
    assert_eq!(sum(|c| c.joined), 8);
    assert_eq!(sum(|c| c.unsubscribed), 2);
    assert_eq!(sum(|c| c.bounced), 1);
    assert_eq!(sum(|c| c.returned), 1);
    assert_eq!(sum(|c| c.net()), 6);
    let later = chrono::Utc::now() + chrono::Duration::hours(2);
    assert!(s.list_changes(Some(later)).await.unwrap().is_empty());
}

async fn the_report_folds_the_counts_into_tokyo_time_and_the_overview_walks_back_from_now(
    db: TestDb,
) {
    let (campaign, id) = sent_campaign(&db).await;
    let s = &db.store;
    let info = id("info@br.embassy.example.org");
    bounce(
        s,
        "b1",
        hard_bounce(
            info,
            campaign,
            "info@br.embassy.example.org",
            "user_unknown",
        ),
    )
    .await;
    // The least role that reads statistics.
    let actor = Actor::User {
        account: Account {
            id: 1,
            email: "viewer@example.org".into(),
            role: Role::Viewer,
        },
        ip: None,
    };

    let r = stats::campaign_report(s, &db.config, &actor, campaign, None)
        .await
        .unwrap();
    assert_eq!(r.zone, "Asia/Tokyo");
    // 00:01 to 01:10 UTC is 70 minutes: fine enough for one bar a minute.
    assert_eq!(r.grain, Grain::Minute);
    assert_eq!(r.timeline.len(), 70);
    assert_eq!(r.timeline[0].label, "2026-04-01 09:01");
    assert_eq!(r.timeline[0].value.sent, 4);
    assert_eq!(r.timeline.iter().map(|b| b.value.sent).sum::<i64>(), 5);
    assert_eq!(r.timeline.last().unwrap().value.failed, 1);
    let rows = |v: &[stats::OutcomeRow]| -> Vec<(String, i64, i64, i64)> {
        v.iter()
            .map(|o| (o.label.clone(), o.total, o.sent, o.failed))
            .collect()
    };
    assert_eq!(
        rows(&r.by_region),
        [
            ("Europe".to_string(), 5, 4, 0),
            ("Americas".to_string(), 2, 1, 1),
            ("(no region)".to_string(), 1, 0, 0),
        ]
    );
    assert_eq!(
        rows(&r.by_kind),
        [
            ("City".to_string(), 3, 3, 0),
            ("Embassy".to_string(), 3, 2, 1),
            ("(no organisation)".to_string(), 1, 0, 0),
            ("International organisation".to_string(), 1, 0, 0),
        ]
    );
    assert_eq!(r.bounces.len(), 1);
    assert_eq!(
        (r.bounces[0].reason.as_str(), r.bounces[0].count),
        ("user_unknown", 1)
    );
    let h = r.health.as_ref().unwrap();
    assert_eq!(h.rates.delivery.map(|d| (d * 100.0).round()), Some(8333.0));

    // An hour grain is taken when asked for; the CSV says its zone.
    let hourly = stats::campaign_report(s, &db.config, &actor, campaign, Some(Grain::Hour))
        .await
        .unwrap();
    assert_eq!(hourly.timeline.len(), 2);
    let csv = stats::csv::campaign_csv(&hourly, stats::csv::CampaignView::Deliveries).unwrap();
    assert_eq!(
        String::from_utf8(csv).unwrap(),
        "period_start,sent,failed\r\n\
         2026-04-01T09:00:00+09:00,5,0\r\n\
         2026-04-01T10:00:00+09:00,0,1\r\n"
    );

    let o = stats::overview(s, &db.config, &actor, Range::Days30, None)
        .await
        .unwrap();
    assert_eq!(o.grain, Grain::Day);
    assert_eq!((o.totals.active, o.totals.bounced), (7, 1));
    assert_eq!((o.period.joined, o.period.bounced), (8, 1));
    // Thirty days back the list was empty; today it ends with seven active.
    assert_eq!((o.period.active, o.period.contacts), (0, 0));
    let last = o.growth.last().unwrap();
    assert_eq!((last.value.active, last.value.contacts), (7, 8));
    assert_eq!(o.health.len(), 1);
    let csv = stats::csv::overview_csv(&o, stats::csv::OverviewView::Health).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .starts_with(&format!("{campaign},stats,214,")),
        "{csv}"
    );

    let missing = stats::campaign_report(s, &db.config, &actor, campaign + 99, None).await;
    assert!(
        matches!(missing, Err(whatsup::app::AppError::NotFound(_))),
        "{missing:?}"
    );
}

on_both_backends!(
    a_campaigns_counts_group_by_minute_region_kind_reason_and_unsubscribe_method,
    the_report_folds_the_counts_into_tokyo_time_and_the_overview_walks_back_from_now,
);
