//! The dashboard's pages over loopback on both backends: the view across
//! campaigns and one campaign's, their tables in Tokyo time, and every
//! CSV download the same file as the API's.

use crate::common::admin_pages::{html, Browser};
use crate::common::workspace::{Api, As, PASSWORD};
use crate::common::{self, TestDb};
use crate::store_stats::sent_campaign;

async fn the_dashboard_shows_each_view_as_a_table_and_its_csv_is_the_apis(db: TestDb) {
    let (campaign, id) = sent_campaign(&db).await;
    // Two opens by one person and a click, recorded while tracking was on.
    let anne = id("anne.martin@paris.example.com");
    for url in [None, None, Some("https://www.example.org/events/hanami")] {
        db.store
            .record_tracking(campaign, anne, url, None)
            .await
            .unwrap();
    }
    let api = Api::start(db).await;
    // Viewers read statistics.
    let viewer = Browser::sign_in(api.addr, "viewer@example.org", PASSWORD).await;
    let home = viewer.get("/admin").await;
    assert_eq!(home.status, 303);
    assert_eq!(home.header("location"), Some("/admin/dashboard"));

    let page = viewer.get("/admin/dashboard?range=all").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let body = html(&page);
    assert!(
        body.contains(&format!(
            r#"<a href="/admin/dashboard/campaigns/{campaign}">stats</a>"#
        )),
        "{body}"
    );
    assert!(body.contains("data-chart=\"line\""));
    // 8 contacts joined, none left: all active at the end.
    assert!(
        body.contains(r#"<li><span class="figure">8</span> active contacts</li>"#),
        "{body}"
    );
    // The campaign's delivery rate: 5 of 6 attempts.
    assert!(body.contains("83.33&nbsp;%"), "{body}");

    let page = viewer
        .get(&format!("/admin/dashboard/campaigns/{campaign}?grain=hour"))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let body = html(&page);
    for text in [
        r#"<tr data-t="1775001600"><th scope="row">2026-04-01 09:00</th><td class="num" data-v="5">5</td>"#,
        r#"<th scope="row">Europe</th><td class="num">5</td>"#,
        r#"<th scope="row">Embassy</th><td class="num">3</td>"#,
        "Messages that finished per hour (times in Asia/Tokyo)",
        "1 person opened it (2 opens)",
        "1 clicked a link (1 click)",
        "<tr><td>https://www.example.org/events/hanami</td><td class=\"num\">1</td></tr>",
    ] {
        assert!(body.contains(text), "{text}: {body}");
    }

    // Each download is the API's file, byte for byte.
    for file in [
        "deliveries.csv",
        "regions.csv",
        "kinds.csv",
        "bounces.csv",
        "unsubscribes.csv",
        "clicks.csv",
    ] {
        let page = viewer
            .get(&format!(
                "/admin/dashboard/campaigns/{campaign}/{file}?grain=hour"
            ))
            .await;
        assert_eq!(page.status, 200, "{file}: {}", page.body);
        assert_eq!(page.header("content-type"), Some("text/csv; charset=utf-8"));
        let from_api = api
            .call(
                As::Token(&api.viewer.token),
                "GET",
                &format!("/api/v1/campaigns/{campaign}/report/{file}?grain=hour"),
                None,
            )
            .await;
        assert_eq!(from_api.status, 200, "{file}: {}", from_api.body);
        assert_eq!(page.body, from_api.body, "{file}");
    }
    let regions = viewer
        .get(&format!(
            "/admin/dashboard/campaigns/{campaign}/regions.csv"
        ))
        .await;
    assert!(
        regions
            .body
            .starts_with("region,recipients,sent,failed,skipped,waiting\r\nEurope,5,4,0,1,0\r\n"),
        "{}",
        regions.body
    );
    for file in ["growth.csv", "health.csv"] {
        let page = viewer
            .get(&format!("/admin/dashboard/{file}?range=30d"))
            .await;
        let from_api = api
            .call(
                As::Token(&api.viewer.token),
                "GET",
                &format!("/api/v1/stats/{file}?range=30d"),
                None,
            )
            .await;
        assert_eq!((page.status, from_api.status), (200, 200), "{file}");
        assert_eq!(page.body, from_api.body, "{file}");
    }
    assert_eq!(viewer.get("/admin/dashboard/secrets.csv").await.status, 404);
    let missing = viewer
        .get(&format!("/admin/dashboard/campaigns/{}", campaign + 50))
        .await;
    assert_eq!(missing.status, 404);
    let bad = api
        .call(
            As::Token(&api.viewer.token),
            "GET",
            &format!("/api/v1/campaigns/{campaign}/report/deliveries.csv?grain=fortnight"),
            None,
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    api.stop().await;
}

on_both_backends!(the_dashboard_shows_each_view_as_a_table_and_its_csv_is_the_apis);
