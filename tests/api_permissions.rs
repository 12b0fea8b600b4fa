//! The permission matrix: every operation of the OpenAPI document, called
//! by every role with a valid request, answers 2xx when the permission
//! table allows the operation's `x-permission` for that role and 403 when
//! it does not. The operations come from the served document and the
//! expectations from `domain::permission`, so a new endpoint without a
//! case here fails the test.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::common::sink::{self, Sink};
use crate::common::workspace::{Api, As};
use crate::common::{self, TestDb};
use whatsup::domain::{allowed, Actor, Role};
use whatsup::web::auth::Permission;

static N: AtomicU32 = AtomicU32::new(0);

fn next() -> u32 {
    N.fetch_add(1, Ordering::Relaxed)
}

/// The shell user who sets up fixtures (the CLI may do everything).
fn setup() -> Actor {
    Actor::Cli {
        unix_user: "test".into(),
        account: None,
    }
}

async fn fresh_contact(api: &Api) -> i64 {
    let email = format!("c{}@example.net", next());
    api.db
        .store
        .add_contact(
            &whatsup::store::NewContact {
                email: whatsup::domain::EmailAddress::parse(&email).unwrap(),
                name: "Fresh".into(),
                title: String::new(),
                salutation: String::new(),
                organisation_id: None,
                language: None,
                consent_source: "test".into(),
                attributes: Default::default(),
                tags: vec![],
            },
            &setup(),
        )
        .await
        .unwrap()
        .id
}

async fn fresh_campaign(api: &Api) -> i64 {
    common::draft_campaign(&api.db.store, &format!("C{}", next()), "").await
}

async fn running_campaign(api: &Api) -> i64 {
    let id = fresh_campaign(api).await;
    whatsup::send::engine::start(&api.db.store, &api.db.config, id, &setup())
        .await
        .unwrap()
        .unwrap();
    id
}

/// A started campaign moved on to `to` (paused; cancelled, whose event
/// stream ends).
async fn moved_campaign(api: &Api, to: whatsup::domain::CampaignState) -> i64 {
    let id = running_campaign(api).await;
    assert!(api
        .db
        .store
        .move_campaign(
            id,
            &[whatsup::domain::CampaignState::Running],
            to,
            &setup(),
            "test",
        )
        .await
        .unwrap());
    id
}

async fn fresh_user(api: &Api) -> i64 {
    whatsup::app::accounts::add_user(
        &api.db.store,
        &setup(),
        &format!("u{}@example.net", next()),
        "",
        Role::Viewer,
        None,
    )
    .await
    .unwrap()
    .id
}

async fn fresh_token(api: &Api) -> i64 {
    let (t, _) = whatsup::app::accounts::create_token(
        &api.db.store,
        &setup(),
        api.viewer.user.id,
        &format!("t{}", next()),
    )
    .await
    .unwrap();
    t.id
}

/// A valid request for the operation: its path with ids filled in, and
/// its body.
struct Req {
    path: String,
    body: Option<(&'static str, Vec<u8>)>,
}

fn json(v: serde_json::Value) -> Option<(&'static str, Vec<u8>)> {
    Some(("application/json", v.to_string().into_bytes()))
}

/// The jobs the job endpoints are called with.
struct Jobs {
    /// A finished import with a rejected row.
    import: i64,
    /// A finished dry run, to run for real.
    dry_run: i64,
}

async fn case(api: &Api, jobs: &Jobs, method: &str, path: &str) -> Req {
    let import_job = jobs.import;
    let org = api.db.store.list_orgs(None).await.unwrap()[0].id;
    let p = |s: String| Req {
        path: s,
        body: None,
    };
    let pb = |s: String, b| Req { path: s, body: b };
    match (method, path) {
        ("post", "/api/v1/auth/logout") | ("get", "/api/v1/auth/session") => p(path.into()),
        ("get", "/api/v1/contacts") => {
            p("/api/v1/contacts?segment=status%20%3D%20active&limit=5".into())
        }
        ("post", "/api/v1/contacts") => pb(
            path.into(),
            json(
                serde_json::json!({"email": format!("n{}@example.net", next()), "tags": ["press"]}),
            ),
        ),
        ("get", "/api/v1/contacts/{id}") | ("get", "/api/v1/contacts/{id}/history") => {
            p(path.replace("{id}", &fresh_contact(api).await.to_string()))
        }
        ("patch", "/api/v1/contacts/{id}") => pb(
            path.replace("{id}", &fresh_contact(api).await.to_string()),
            json(serde_json::json!({"name": "Changed", "add_tags": ["economy"]})),
        ),
        ("delete", "/api/v1/contacts/{id}") => {
            p(path.replace("{id}", &fresh_contact(api).await.to_string()))
        }
        ("post", "/api/v1/contacts/{id}/status") => pb(
            path.replace("{id}", &fresh_contact(api).await.to_string()),
            json(serde_json::json!({"status": "unsubscribed", "reason": "asked by phone"})),
        ),
        ("get", "/api/v1/organisations") => p(path.into()),
        ("post", "/api/v1/organisations") => pb(
            path.into(),
            json(
                serde_json::json!({"kind": "embassy", "name": format!("Embassy {}", next()), "country": "FR"}),
            ),
        ),
        ("get", "/api/v1/organisations/{id}") => p(path.replace("{id}", &org.to_string())),
        ("patch", "/api/v1/organisations/{id}") => pb(
            path.replace("{id}", &org.to_string()),
            json(serde_json::json!({"notes": format!("note {}", next())})),
        ),
        ("get", "/api/v1/tags") => p(path.into()),
        ("post", "/api/v1/segments/count") => pb(
            path.into(),
            json(serde_json::json!({"segment": "kind = embassy"})),
        ),
        ("post", "/api/v1/imports") => Req {
            path: "/api/v1/imports?tags=press".into(),
            body: Some((
                "text/csv",
                format!("email,name\nimp{}@example.net,Imported\n", next()).into_bytes(),
            )),
        },
        ("get", "/api/v1/jobs") => p(path.into()),
        ("get", "/api/v1/jobs/{id}")
        | ("get", "/api/v1/jobs/{id}/events")
        | ("get", "/api/v1/jobs/{id}/rejects") => p(path.replace("{id}", &import_job.to_string())),
        ("post", "/api/v1/imports/{id}/run") => p(path.replace("{id}", &jobs.dry_run.to_string())),
        ("get", "/api/v1/issues") => p(path.into()),
        ("post", "/api/v1/issues") => {
            let source = std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/issue-214.md"),
            )
            .unwrap()
            .replace("number = 214", &format!("number = {}", 1000 + next()));
            pb(path.into(), json(serde_json::json!({"source": source})))
        }
        ("get", "/api/v1/issues/{number}") => p(path.replace("{number}", "214")),
        ("get", "/api/v1/issues/{number}/revisions/{revision}") => {
            p(path.replace("{number}", "214").replace("{revision}", "1"))
        }
        ("post", "/api/v1/issues/{number}/check") => p(path.replace("{number}", "214")),
        ("get", "/api/v1/issues/{number}/preview") => {
            p(path.replace("{number}", "214") + "?format=text")
        }
        ("post", "/api/v1/issues/{number}/test-send") => {
            pb(path.replace("{number}", "214"), json(serde_json::json!({})))
        }
        ("get", "/api/v1/issues/{number}/draft") | ("delete", "/api/v1/issues/{number}/draft") => {
            p(path.replace("{number}", "214"))
        }
        ("put", "/api/v1/issues/{number}/draft") => pb(
            path.replace("{number}", "214"),
            json(serde_json::json!({"source": format!("+++\nnot yet {}\n", next())})),
        ),
        ("get", "/api/v1/media") => p(path.into()),
        ("post", "/api/v1/media") => {
            // A different image each time (the library keeps one of each).
            let n = next() as u8;
            let img = image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([n, x as u8, y as u8]));
            let mut png = std::io::Cursor::new(Vec::new());
            image::DynamicImage::ImageRgb8(img)
                .write_to(&mut png, image::ImageFormat::Png)
                .unwrap();
            pb(
                format!("{path}?alt=A%20lantern&name=lantern.png"),
                Some(("image/png", png.into_inner())),
            )
        }
        ("get", "/api/v1/campaigns") => p(path.into()),
        ("post", "/api/v1/campaigns") => pb(
            path.into(),
            json(
                serde_json::json!({"issue": 214, "segment": "kind = embassy", "transport": "outbox"}),
            ),
        ),
        ("get", "/api/v1/campaigns/{id}")
        | ("get", "/api/v1/campaigns/{id}/counts")
        | ("get", "/api/v1/campaigns/{id}/deliveries")
        | ("get", "/api/v1/campaigns/{id}/stats")
        | ("get", "/api/v1/campaigns/{id}/progress")
        | ("get", "/api/v1/campaigns/{id}/timeline") => {
            p(path.replace("{id}", &running_campaign(api).await.to_string()))
        }
        ("get", "/api/v1/campaigns/{id}/events") => p(path.replace(
            "{id}",
            &moved_campaign(api, whatsup::domain::CampaignState::Cancelled)
                .await
                .to_string(),
        )),
        ("patch", "/api/v1/campaigns/{id}") => pb(
            path.replace("{id}", &fresh_campaign(api).await.to_string()),
            json(serde_json::json!({"segment": "kind = city"})),
        ),
        ("post", "/api/v1/campaigns/{id}/request-approval")
        | ("post", "/api/v1/campaigns/{id}/approve") => pb(
            path.replace("{id}", &fresh_campaign(api).await.to_string()),
            json(serde_json::json!({"note": "looks right"})),
        ),
        ("post", "/api/v1/campaigns/{id}/schedule") => pb(
            path.replace("{id}", &fresh_campaign(api).await.to_string()),
            json(serde_json::json!({"at": "2030-01-01 09:00"})),
        ),
        ("post", "/api/v1/campaigns/{id}/start") | ("post", "/api/v1/campaigns/{id}/cancel") => {
            p(path.replace("{id}", &fresh_campaign(api).await.to_string()))
        }
        ("post", "/api/v1/campaigns/{id}/pause")
        | ("post", "/api/v1/campaigns/{id}/retry-failed") => {
            p(path.replace("{id}", &running_campaign(api).await.to_string()))
        }
        ("post", "/api/v1/campaigns/{id}/resume") => p(path.replace(
            "{id}",
            &moved_campaign(api, whatsup::domain::CampaignState::Paused)
                .await
                .to_string(),
        )),
        ("get", "/api/v1/campaigns/{id}/report/{view}") => p(path
            .replace("{id}", &running_campaign(api).await.to_string())
            .replace("{view}", "regions.csv")),
        ("get", "/api/v1/stats/{view}") => p(path.replace("{view}", "health.csv")),
        ("get", "/api/v1/bounces") | ("get", "/api/v1/bounces/report") => p(path.into()),
        ("get", "/api/v1/audit") => p("/api/v1/audit?limit=5".into()),
        ("get", "/api/v1/users") | ("get", "/api/v1/tokens") | ("get", "/api/v1/settings") => {
            p(path.into())
        }
        ("post", "/api/v1/users") => pb(
            path.into(),
            json(
                serde_json::json!({"email": format!("new{}@example.net", next()), "role": "viewer"}),
            ),
        ),
        ("get", "/api/v1/users/{id}") => {
            p(path.replace("{id}", &fresh_user(api).await.to_string()))
        }
        ("patch", "/api/v1/users/{id}") => pb(
            path.replace("{id}", &fresh_user(api).await.to_string()),
            json(serde_json::json!({"role": "editor"})),
        ),
        ("post", "/api/v1/users/{id}/password") => pb(
            path.replace("{id}", &fresh_user(api).await.to_string()),
            json(serde_json::json!({"password": "amber walrus trombone quietly"})),
        ),
        ("post", "/api/v1/tokens") => pb(
            path.into(),
            json(
                serde_json::json!({"user_id": api.viewer.user.id, "name": format!("script {}", next())}),
            ),
        ),
        ("delete", "/api/v1/tokens/{id}") => {
            p(path.replace("{id}", &fresh_token(api).await.to_string()))
        }
        _ => panic!(
            "no permission-matrix case for {method} {path}: add one to tests/api_permissions.rs"
        ),
    }
}

async fn every_operation_answers_each_role_as_the_permission_table_says(db: TestDb) {
    if !sink::available() {
        return;
    }
    let sink = Sink::start(&[]);
    let mut config = db.config.clone();
    config.smtp.host = "127.0.0.1".into();
    config.smtp.port = sink.port;
    let media_dir = tempfile::tempdir().unwrap();
    config.general.data_dir = media_dir.path().to_path_buf();
    common::save_sample_issue(&db.store).await;
    common::import(
        &db.store,
        &common::seed("embassies.csv"),
        &whatsup::import::ImportOptions::default(),
    )
    .await;
    let api = Api::start_with(db, config).await;
    // An import job with a rejected row, for the job endpoints.
    let r = api
        .call_raw(
            As::Token(&api.admin.token),
            "POST",
            "/api/v1/imports",
            Some((
                "text/csv",
                b"email,name\nnot-an-address,X\nok@example.net,Y\n",
            )),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let job = r.json()["id"].as_i64().unwrap();
    wait_for_job(&api, job).await;
    // A dry run, for running it for real.
    let r = api
        .call_raw(
            As::Token(&api.admin.token),
            "POST",
            "/api/v1/imports?dry_run=true",
            Some((
                "text/csv",
                b"email,name
dry@example.net,Z
",
            )),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let dry_run = r.json()["id"].as_i64().unwrap();
    wait_for_job(&api, dry_run).await;
    let jobs = Jobs {
        import: job,
        dry_run,
    };

    let doc = api
        .call(As::Nobody, "GET", "/api/v1/openapi.json", None)
        .await
        .json();
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let permission = Permission::parse(op["x-permission"].as_str().unwrap()).unwrap();
            for role in Role::ALL {
                let expect_ok = match permission {
                    Permission::Public => continue,
                    Permission::Authenticated => true,
                    Permission::Action(a) => allowed(*role, a),
                };
                let req = case(&api, &jobs, method, path).await;
                let body = req.body.as_ref().map(|(t, b)| (*t, b.as_slice()));
                let who = As::Token(&api.person(*role).token);
                let r = api
                    .call_raw(who, &method.to_uppercase(), &req.path, body)
                    .await;
                if expect_ok {
                    assert!(
                        (200..300).contains(&r.status),
                        "{role} {method} {path} ({permission:?}): expected 2xx, got {} {}",
                        r.status,
                        r.body
                    );
                } else {
                    assert_eq!(
                        r.status, 403,
                        "{role} {method} {path} ({permission:?}): {}",
                        r.body
                    );
                    assert_eq!(r.header("content-type"), Some("application/problem+json"));
                }
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 200,
        "only {checked} calls: the document lost operations"
    );
    // The test messages reached the sink, one per role allowed to send.
    let sent = sink.messages().len();
    let senders = Role::ALL
        .iter()
        .filter(|r| allowed(**r, whatsup::domain::Action::IssuesTestSend))
        .count();
    assert_eq!(sent, senders);
    api.stop().await;
}

pub async fn wait_for_job(api: &Api, id: i64) -> serde_json::Value {
    for _ in 0..600 {
        let r = api
            .call(
                As::Token(&api.admin.token),
                "GET",
                &format!("/api/v1/jobs/{id}"),
                None,
            )
            .await;
        let j = r.json();
        if matches!(
            j["state"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            return j;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("job {id} did not end");
}

async fn nothing_but_login_and_the_document_answers_without_credentials(db: TestDb) {
    let api = Api::start(db).await;
    let doc = api
        .call(As::Nobody, "GET", "/api/v1/openapi.json", None)
        .await
        .json();
    assert_eq!(doc["openapi"], "3.1.0");
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let public = op["x-permission"] == "public";
            let concrete = path
                .replace("{id}", "1")
                .replace("{number}", "214")
                .replace("{revision}", "1");
            let r = api
                .call(As::Nobody, &method.to_uppercase(), &concrete, None)
                .await;
            if public {
                assert_ne!(r.status, 401, "{method} {path}");
                assert!(op.get("security").is_none(), "{method} {path}");
            } else {
                assert_eq!(r.status, 401, "{method} {path}: {}", r.body);
                assert!(r.header("www-authenticate").is_some());
                assert!(op["security"].is_array(), "{method} {path}");
            }
        }
    }
    api.stop().await;
}

on_both_backends!(
    every_operation_answers_each_role_as_the_permission_table_says,
    nothing_but_login_and_the_document_answers_without_credentials,
);
