//! The send gate through the REST API on both backends: a campaign whose
//! issue fails its preflight is refused at create, approve, schedule and
//! start with the findings (rule, file, line, column) in the problem; an
//! override is recorded and shown; a start the gate refuses leaves the
//! campaign `blocked` with nothing sent; a schedule time in the past is
//! refused unless `now` is given. Approval and the gate both apply.

use crate::common::workspace::{Api, As};
use crate::common::{self, TestDb};

/// The sample issue with one image at a relative path (line 64: an error
/// no mail client could show).
fn failing_source() -> String {
    sample_source().replacen(
        "src = \"https://www.example.org/whatsup/214/lanterns.jpg\"",
        "src = \"images/lanterns.jpg\"",
        1,
    )
}

fn sample_source() -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/issue-214.md"),
    )
    .unwrap()
}

async fn api(db: TestDb, require_approval: bool) -> Api {
    let mut config = db.config.clone();
    config.newsletter.require_approval = require_approval;
    config.sending.outbox_dir = db.config.general.data_dir.join("outbox");
    common::import(
        &db.store,
        &common::seed("embassies.csv"),
        &whatsup::import::ImportOptions::default(),
    )
    .await;
    Api::start_with(db, config).await
}

async fn save(api: &Api, source: &str) {
    let r = api
        .call(
            As::Token(&api.editor.token),
            "POST",
            "/api/v1/issues",
            Some(&serde_json::json!({ "source": source })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Saves the sample issue (it passes) and creates a draft campaign of it.
async fn draft_of_the_sample(api: &Api) -> i64 {
    save(api, &sample_source()).await;
    let r = api
        .call(
            As::Token(&api.operator.token),
            "POST",
            "/api/v1/campaigns",
            Some(&serde_json::json!({"issue": 214, "transport": "outbox"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["campaign"]["id"].as_i64().unwrap()
}

/// Asserts a 422 `preflight` problem naming the relative image at line 64.
fn assert_refused_for_the_image(r: &common::http::Reply) {
    assert_eq!(r.status, 422, "{}", r.body);
    let p = r.json();
    assert_eq!(p["type"], "urn:whatsup:problem:preflight", "{p}");
    let findings = p["findings"].as_array().expect("findings");
    let image = findings
        .iter()
        .find(|f| f["rule"] == "image-src")
        .unwrap_or_else(|| panic!("no image-src finding: {p}"));
    assert_eq!(image["line"], 64, "{p}");
    assert!(image["column"].as_u64().unwrap() > 0, "{p}");
    assert!(
        image["file"]
            .as_str()
            .unwrap()
            .starts_with("issue 214 revision"),
        "{p}"
    );
    assert!(
        image["message"]
            .as_str()
            .unwrap()
            .contains("images/lanterns.jpg"),
        "{p}"
    );
    assert_eq!(p["overridable"], true, "{p}");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("fails its preflight check"),
        "{p}"
    );
}

async fn a_campaign_whose_issue_fails_its_preflight_is_refused_through_the_api_with_the_findings(
    db: TestDb,
) {
    let api = api(db, true).await;
    let operator = As::Token(&api.operator.token);
    save(&api, &failing_source()).await;
    let body = serde_json::json!({"issue": 214, "transport": "outbox"});
    let r = api
        .call(operator, "POST", "/api/v1/campaigns", Some(&body))
        .await;
    assert_refused_for_the_image(&r);
    assert!(
        api.db.store.campaigns().await.unwrap().is_empty(),
        "a refused create leaves no campaign"
    );
    // An empty reason is no override.
    let r = api
        .call(
            operator,
            "POST",
            "/api/v1/campaigns",
            Some(&serde_json::json!({"issue": 214, "transport": "outbox", "override_check": " "})),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["errors"][0]["field"], "override_check");
    // With a reason it is created, and the override is shown and audited.
    let r = api
        .call(
            operator,
            "POST",
            "/api/v1/campaigns",
            Some(&serde_json::json!({
                "issue": 214, "transport": "outbox",
                "override_check": "the image is on the web page too"
            })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let c = r.json();
    let id = c["campaign"]["id"].as_i64().unwrap();
    let o = &c["campaign"]["check_override"];
    assert_eq!(o["revision"], 1, "{c}");
    assert_eq!(o["reason"], "the image is on the web page too");
    assert_eq!(o["actor"], "token:test (operator@example.org)");
    assert!(o["findings"][0]
        .as_str()
        .unwrap()
        .starts_with("image-src issue 214 revision 1:64:"));
    assert!(c["events"].as_array().unwrap().iter().any(|e| e["reason"]
        .as_str()
        .unwrap()
        .starts_with("preflight overridden for issue revision 1: the image")));
    let audit = api
        .db
        .store
        .audit_entries(&whatsup::store::audit::AuditFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        audit.iter().any(|a| a.action == "campaign.override_check"),
        "{audit:?}"
    );
    // A second revision with the same failure is not covered: approving,
    // scheduling and starting it are all refused with the findings.
    save(
        &api,
        &failing_source().replacen("subject = \"", "subject = \"Revised: ", 1),
    )
    .await;
    let approve = format!("/api/v1/campaigns/{id}/approve");
    let r = api
        .call(
            As::Token(&api.approver.token),
            "POST",
            &approve,
            Some(&serde_json::json!({})),
        )
        .await;
    assert_refused_for_the_image(&r);
    let r = api
        .call(
            operator,
            "POST",
            &format!("/api/v1/campaigns/{id}/schedule"),
            Some(&serde_json::json!({"at": "2099-01-01 09:00"})),
        )
        .await;
    assert_refused_for_the_image(&r);
    // Without the approval the start is refused before the gate runs:
    // the campaign stays a draft.
    let start = format!("/api/v1/campaigns/{id}/start");
    let r = api.call(operator, "POST", &start, None).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.json()["detail"]
        .as_str()
        .unwrap()
        .contains("not approved"));
    assert_eq!(
        api.db.store.campaign_or_err(id).await.unwrap().state,
        "draft"
    );
    // Fixed in revision 3: approved by a second person, then started.
    save(
        &api,
        &sample_source().replacen("subject = \"", "subject = \"Fixed: ", 1),
    )
    .await;
    let r = api
        .call(
            As::Token(&api.approver.token),
            "POST",
            &approve,
            Some(&serde_json::json!({})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = api.call(operator, "POST", &start, None).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let c = api.db.store.campaign_or_err(id).await.unwrap();
    assert_eq!((c.state.as_str(), c.issue_revision), ("running", Some(3)));
    api.stop().await;
}

async fn a_start_the_gate_refuses_through_the_api_blocks_the_campaign_and_sends_nothing(
    db: TestDb,
) {
    let api = api(db, false).await;
    let operator = As::Token(&api.operator.token);
    let id = draft_of_the_sample(&api).await;
    // The issue breaks after the campaign was created.
    save(
        &api,
        &failing_source().replacen("subject = \"", "subject = \"Revised: ", 1),
    )
    .await;
    let start = format!("/api/v1/campaigns/{id}/start");
    let r = api.call(operator, "POST", &start, None).await;
    assert_eq!(r.status, 409, "{}", r.body);
    let p = r.json();
    assert_eq!(p["type"], "urn:whatsup:problem:blocked", "{p}");
    assert!(p["detail"].as_str().unwrap().contains("blocked"), "{p}");
    assert_eq!(p["findings"][0]["rule"], "image-src", "{p}");
    assert_eq!(p["findings"][0]["line"], 64, "{p}");
    let r = api
        .call(operator, "GET", &format!("/api/v1/campaigns/{id}"), None)
        .await;
    let c = r.json();
    assert_eq!(c["campaign"]["state"], "blocked", "{c}");
    assert!(
        c["campaign"]["state_reason"]
            .as_str()
            .unwrap()
            .contains("error[image-src]"),
        "{c}"
    );
    assert_eq!(c["counts"]["total"], 0, "nothing was frozen or sent: {c}");
    // Overridden for this revision through the start's query, it runs.
    let r = api
        .call(
            operator,
            "POST",
            &format!("{start}?override_check=the%20image%20is%20optional"),
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let c = api.db.store.campaign_or_err(id).await.unwrap();
    assert_eq!((c.state.as_str(), c.issue_revision), ("running", Some(2)));
    assert_eq!(c.override_reason, "the image is optional");
    api.stop().await;
}

async fn a_schedule_time_in_the_past_is_refused_through_the_api_unless_now_is_given(db: TestDb) {
    let api = api(db, false).await;
    let operator = As::Token(&api.operator.token);
    let id = draft_of_the_sample(&api).await;
    let schedule = format!("/api/v1/campaigns/{id}/schedule");
    let r = api
        .call(
            operator,
            "POST",
            &schedule,
            Some(&serde_json::json!({"at": "2020-01-01 09:00"})),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let p = r.json();
    assert_eq!(p["type"], "urn:whatsup:problem:invalid", "{p}");
    assert_eq!(p["errors"][0]["field"], "at", "{p}");
    let detail = p["errors"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("2020-01-01 09:00") && detail.contains("is in the past"),
        "{detail}"
    );
    assert!(detail.contains("\"now\": true"), "{detail}");
    // A local time whose every zone has passed is refused the same way.
    let r = api
        .call(
            operator,
            "POST",
            &schedule,
            Some(&serde_json::json!({"local_time": "09:00", "local_date": "2020-01-01"})),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["errors"][0]["field"], "local");
    assert_eq!(
        api.db.store.campaign_or_err(id).await.unwrap().state,
        "draft",
        "a refused schedule changes nothing"
    );
    // With `now` it is accepted and due at once.
    let r = api
        .call(
            operator,
            "POST",
            &schedule,
            Some(&serde_json::json!({"at": "2020-01-01 09:00", "now": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["campaign"]["state"], "scheduled");
    let due = api
        .db
        .store
        .due_campaigns(chrono::Utc::now().timestamp_millis())
        .await
        .unwrap();
    assert_eq!(due, vec![id]);
    api.stop().await;
}

on_both_backends!(
    a_campaign_whose_issue_fails_its_preflight_is_refused_through_the_api_with_the_findings,
    a_start_the_gate_refuses_through_the_api_blocks_the_campaign_and_sends_nothing,
    a_schedule_time_in_the_past_is_refused_through_the_api_unless_now_is_given,
);
