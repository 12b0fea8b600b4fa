//! The API operations the operators' pages added, on both backends: a
//! campaign's timeline, progress and progress stream; running a finished
//! dry run for real; bounces filtered by verification.

use crate::api_permissions::wait_for_job;
use crate::common::workspace::{Api, As};
use crate::common::{self, TestDb};
use whatsup::domain::CampaignState;

const CSV: &str = "email,name,organisation,kind,country,city,region,timezone\n\
a@paris.example.org,Anne,City of Paris,city,FR,Paris,Europe,Europe/Paris\n\
b@nyc.example.com,Bob,City of New York,city,US,New York,Americas,America/New_York\n";

async fn start(db: TestDb) -> (Api, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = db.config.clone();
    config.general.data_dir = dir.path().to_path_buf();
    let (_d, path) = common::temp_csv(CSV);
    common::import(&db.store, &path, &Default::default()).await;
    common::save_sample_issue(&db.store).await;
    (Api::start_with(db, config).await, dir)
}

async fn a_campaigns_timeline_progress_and_event_stream_are_served(db: TestDb) {
    let (api, _dir) = start(db).await;
    let token = As::Token(&api.viewer.token);
    let id = common::draft_campaign(&api.db.store, "zones", "").await;
    let t = api
        .call(
            token,
            "GET",
            &format!("/api/v1/campaigns/{id}/timeline"),
            None,
        )
        .await;
    assert_eq!(t.status, 200, "{}", t.body);
    let t = t.json();
    assert_eq!(
        (t["started"].as_bool(), t["mode"].as_str()),
        (Some(false), Some("at_start"))
    );
    assert_eq!(t["recipients"], 2);
    let zones: Vec<&str> = t["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["zone"].as_str().unwrap())
        .collect();
    assert_eq!(zones, ["America/New_York", "Europe/Paris"]);

    whatsup::send::engine::start(&api.db.store, &api.db.config, id, &common::actor())
        .await
        .unwrap()
        .unwrap();
    let p = api
        .call(
            token,
            "GET",
            &format!("/api/v1/campaigns/{id}/progress"),
            None,
        )
        .await
        .json();
    assert_eq!(
        (
            p["state"].as_str(),
            p["counts"]["pending"].as_i64(),
            p["over"].as_bool()
        ),
        (Some("running"), Some(2), Some(false))
    );
    let t = api
        .call(
            token,
            "GET",
            &format!("/api/v1/campaigns/{id}/timeline"),
            None,
        )
        .await
        .json();
    assert_eq!(t["started"], true);
    assert_eq!(t["slots"][0]["open"], 1);

    // The stream of a campaign that is over: one event, then the end.
    assert!(api
        .db
        .store
        .move_campaign(
            id,
            &[CampaignState::Running],
            CampaignState::Cancelled,
            &common::actor(),
            "test"
        )
        .await
        .unwrap());
    let r = api
        .call(
            token,
            "GET",
            &format!("/api/v1/campaigns/{id}/events"),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let events: Vec<&str> = r.body.lines().filter(|l| l.starts_with("event:")).collect();
    assert_eq!(events, ["event: progress"], "{}", r.body);
    let data = r
        .body
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap();
    let p: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(
        (p["state"].as_str(), p["over"].as_bool()),
        (Some("cancelled"), Some(true))
    );
    assert_eq!(
        api.call(token, "GET", "/api/v1/campaigns/999/events", None)
            .await
            .status,
        404
    );
    api.stop().await;
}

async fn a_finished_dry_run_is_run_for_real_once_asked_and_nothing_else_is(db: TestDb) {
    let (api, _dir) = start(db).await;
    let op = As::Token(&api.operator.token);
    let csv = b"email,name\nnew@example.net,New\nbad,Bad\n";
    let r = api
        .call_raw(
            op,
            "POST",
            "/api/v1/imports?dry_run=true&tags=press",
            Some(("text/csv", csv)),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let dry = r.json()["id"].as_i64().unwrap();
    let j = wait_for_job(&api, dry).await;
    assert_eq!(
        (
            j["result"]["created"].as_i64(),
            j["result"]["rejected"].as_i64()
        ),
        (Some(1), Some(1))
    );
    assert!(api
        .db
        .store
        .contact("new@example.net")
        .await
        .unwrap()
        .is_none());

    let r = api
        .call(op, "POST", &format!("/api/v1/imports/{dry}/run"), None)
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let real = r.json()["id"].as_i64().unwrap();
    let j = wait_for_job(&api, real).await;
    assert_eq!(
        (j["state"].as_str(), j["result"]["dry_run"].as_bool()),
        (Some("succeeded"), Some(false))
    );
    let c = api
        .db
        .store
        .contact("new@example.net")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.tag_list(), ["press"], "the dry run's options");
    // Only a finished dry run runs.
    let r = api
        .call(op, "POST", &format!("/api/v1/imports/{real}/run"), None)
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    let r = api.call(op, "POST", "/api/v1/imports/9999/run", None).await;
    assert_eq!(r.status, 404, "{}", r.body);
    api.stop().await;
}

async fn bounces_are_listed_by_verification(db: TestDb) {
    let (api, _dir) = start(db).await;
    let store = &api.db.store;
    let anne = store
        .contact("a@paris.example.org")
        .await
        .unwrap()
        .unwrap()
        .id;
    for (key, verified) in [("k1", true), ("k2", false)] {
        let e = common::bounces::event(
            anne,
            "a@paris.example.org",
            "soft",
            "mailbox_full",
            verified,
        );
        store
            .record_bounce(
                &common::bounces::message(key, vec![e]),
                &Default::default(),
                "bounce:test",
            )
            .await
            .unwrap();
    }
    let token = As::Token(&api.viewer.token);
    let list = |q: &'static str| {
        let api = &api;
        async move {
            api.call(token, "GET", &format!("/api/v1/bounces{q}"), None)
                .await
                .json()
        }
    };
    assert_eq!(list("").await.as_array().unwrap().len(), 2);
    let unverified = list("?verified=false").await;
    assert_eq!(unverified.as_array().unwrap().len(), 1);
    assert_eq!(unverified[0]["verified"], false);
    assert_eq!(
        list("?reason=user_unknown").await.as_array().unwrap().len(),
        0
    );
    let report = list("/report?verified=true").await;
    assert_eq!(
        (
            report[0]["events"].as_i64(),
            report[0]["unverified"].as_i64()
        ),
        (Some(1), Some(0))
    );
    api.stop().await;
}

on_both_backends!(
    a_campaigns_timeline_progress_and_event_stream_are_served,
    a_finished_dry_run_is_run_for_real_once_asked_and_nothing_else_is,
    bounces_are_listed_by_verification,
);
