//! The campaigns pages of the web admin over loopback, on both backends:
//! creating a campaign through the form (a segment error at its field with
//! "did you mean"), the live segment count, approval by a second person
//! (the creator is refused, the approver named), scheduling at local
//! times with the per-zone timeline, start, pause, resume and cancel, and
//! the failures with the server's reply.

use crate::common::admin_pages::{html, Browser};
use crate::common::workspace::{Api, PASSWORD};
use crate::common::{self, TestDb};
use whatsup::domain::segment::Segment;

const CSV: &str = "email,name,organisation,kind,country,city,region,timezone\n\
a@paris.example.org,Anne,City of Paris,city,FR,Paris,Europe,Europe/Paris\n\
b@nyc.example.com,Bob,City of New York,city,US,New York,Americas,America/New_York\n\
c@tokyo.example.org,Chie,Embassy of Nowhere,embassy,JP,Tokyo,Asia,Asia/Tokyo\n\
d@berlin.example.org,Dora,City of Berlin,city,DE,Berlin,Europe,Europe/Berlin\n";

/// The admin with approval required, four contacts and issue 214.
async fn start(db: TestDb) -> (Api, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = db.config.clone();
    config.general.data_dir = dir.path().to_path_buf();
    config.newsletter.require_approval = true;
    let (_csv_dir, path) = common::temp_csv(CSV);
    common::import(&db.store, &path, &Default::default()).await;
    common::save_sample_issue(&db.store).await;
    (Api::start_with(db, config).await, dir)
}

/// The one-time message on the page a 303 leads to.
async fn follow(b: &Browser, r: &crate::common::http::Reply) -> String {
    assert_eq!(r.status, 303, "{}", r.body);
    let page = b.get(r.header("location").unwrap()).await;
    assert_eq!(page.status, 200, "{}", page.body);
    html(&page)
}

async fn a_campaign_is_created_approved_by_a_second_person_scheduled_and_started(db: TestDb) {
    let (api, _dir) = start(db).await;
    let op = Browser::sign_in(api.addr, "operator@example.org", PASSWORD).await;

    // The live count, and a mistake shown under the box.
    let r = op
        .post_htmx("/admin/campaigns/segment", &[("segment", "kind = city")])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let cities = api
        .db
        .store
        .count_contacts(Some(&Segment::parse("kind = city").unwrap()))
        .await
        .unwrap();
    assert!(
        r.body.contains(&format!("data-count=\"{cities}\"")),
        "{}",
        r.body
    );
    assert!(r.body.contains("b@nyc.example.com"), "a sample: {}", r.body);
    let r = op
        .post_htmx("/admin/campaigns/segment", &[("segment", "knd = city")])
        .await;
    assert!(r.body.contains("did you mean"), "{}", r.body);
    assert!(r.body.contains("Column 1"), "{}", r.body);

    // A segment that does not parse keeps the form, with the error at it.
    let r = op
        .post_form(
            "/admin/campaigns",
            &[
                ("issue", "214"),
                ("segment", "regoin = Europe"),
                ("transport", "outbox"),
            ],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let page = html(&r);
    assert!(page.contains("id=\"segment-error-text\""), "{page}");
    assert!(page.contains("did you mean"), "{page}");
    assert!(page.contains("regoin = Europe"), "the text is kept");

    let r = op
        .post_form(
            "/admin/campaigns",
            &[
                ("issue", "214"),
                ("name", "December – 東京"),
                ("segment", "kind = city"),
                ("transport", "outbox"),
            ],
        )
        .await;
    let page = follow(&op, &r).await;
    assert!(page.contains("December – 東京"), "{page}");
    assert!(page.contains("needs approval"), "{page}");
    let id = api.db.store.campaigns().await.unwrap()[0].id;

    // The creator may not approve; the page says why and a POST is refused.
    assert!(page.contains("id=\"approve-refusal\""), "{page}");
    let r = op
        .post_form(&format!("/admin/campaigns/{id}/approve"), &[])
        .await;
    let page = follow(&op, &r).await;
    assert!(page.contains("notice-error"), "{page}");
    assert!(page.contains("needs approval"), "{page}");
    // Nor may it start before the approval.
    let r = op
        .post_form(&format!("/admin/campaigns/{id}/start"), &[])
        .await;
    let page = follow(&op, &r).await;
    assert!(page.contains("notice-error"), "{page}");

    let r = op
        .post_form(
            &format!("/admin/campaigns/{id}/request-approval"),
            &[("note", "please check the Paris dates")],
        )
        .await;
    assert!(follow(&op, &r)
        .await
        .contains("please check the Paris dates"));

    let approver = Browser::sign_in(api.addr, "approver@example.org", PASSWORD).await;
    let r = approver
        .post_form(
            &format!("/admin/campaigns/{id}/approve"),
            &[("note", "fine")],
        )
        .await;
    let page = follow(&approver, &r).await;
    assert!(
        page.contains("id=\"approved-by\">user:approver@example.org"),
        "the approver is named: {page}"
    );

    // Local times: the timeline shows each zone at 09:00 on its own clock.
    let r = op
        .post_form(
            &format!("/admin/campaigns/{id}/schedule"),
            &[
                ("mode", "local"),
                ("local_date", "2026-12-01"),
                ("local_time", "25:00"),
            ],
        )
        .await;
    assert_eq!(
        r.status, 422,
        "a bad time is shown at its field: {}",
        r.body
    );
    assert!(html(&r).contains("id=\"local-error\""), "{}", r.body);
    let r = op
        .post_form(
            &format!("/admin/campaigns/{id}/schedule"),
            &[
                ("mode", "local"),
                ("local_date", "2026-12-01"),
                ("local_time", "09:00"),
                ("now", "1"),
            ],
        )
        .await;
    let page = follow(&op, &r).await;
    assert!(
        page.contains("2026-12-01 09:00 in each recipient"),
        "{page}"
    );
    for due in [
        "2026-12-01 09:00 CET",
        "2026-12-01 09:00 EST",
        "2026-12-01 17:00 JST",
    ] {
        assert!(page.contains(due), "{due} in the timeline: {page}");
    }
    assert!(
        !page.contains("<th scope=\"row\">Asia/Tokyo"),
        "the embassy is not a city"
    );

    let r = op
        .post_form(&format!("/admin/campaigns/{id}/start"), &[])
        .await;
    let page = follow(&op, &r).await;
    assert!(page.contains("Started: 3 recipients"), "{page}");
    assert!(
        page.contains("data-progress-url=\"/api/v1/campaigns/"),
        "{page}"
    );

    // Pause, resume, cancel.
    for (action, state) in [
        ("pause", "paused"),
        ("resume", "running"),
        ("cancel", "cancelled"),
    ] {
        let r = op
            .post_form(&format!("/admin/campaigns/{id}/{action}"), &[])
            .await;
        let page = follow(&op, &r).await;
        assert!(
            page.contains(&format!("id=\"campaign-state\">{state}<")),
            "{action}: {page}"
        );
    }
    let list = html(&op.get("/admin/campaigns").await);
    assert!(list.contains("December – 東京"), "{list}");
    api.stop().await;
}

async fn a_viewer_sees_the_campaign_but_no_actions_and_cannot_post_them(db: TestDb) {
    let (api, _dir) = start(db).await;
    let id = common::draft_campaign(&api.db.store, "draft", "").await;
    let viewer = Browser::sign_in(api.addr, "viewer@example.org", PASSWORD).await;
    let r = viewer.get(&format!("/admin/campaigns/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let page = html(&r);
    assert!(!page.contains("/start\""), "{page}");
    assert!(!page.contains("/schedule\""), "{page}");
    assert!(!page.contains("New campaign"), "{page}");
    for action in ["start", "approve", "schedule", "cancel"] {
        let r = viewer
            .post_form(&format!("/admin/campaigns/{id}/{action}"), &[])
            .await;
        assert_eq!(r.status, 403, "{action}: {}", r.body);
    }
    assert_eq!(
        api.db.store.campaign_or_err(id).await.unwrap().state,
        "draft"
    );
    api.stop().await;
}

on_both_backends!(
    a_campaign_is_created_approved_by_a_second_person_scheduled_and_started,
    a_viewer_sees_the_campaign_but_no_actions_and_cannot_post_them,
);
