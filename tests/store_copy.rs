//! `whatsup store copy`: the real binary copies a real SQLite store into a
//! fresh PostgreSQL database. Every table of the schema must be filled by
//! the fixture and copied (a table added by a later migration makes the
//! first test fail until the fixture fills it), ids, statuses, histories,
//! tokens and delivery records survive, the copy resumes after a failure
//! in the middle, and a PostgreSQL worker finishes a campaign that SQLite
//! half sent without sending anyone a second message.

use crate::common;

use std::collections::HashMap;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::common::sink::{self, Sink};
use crate::common::TestDb;
use chrono::{DateTime, SubsecRound, Utc};
use whatsup::bounce::intake::Intake;
use whatsup::config::{Config, Secret};
use whatsup::domain::ContactStatus;
use whatsup::import::ImportOptions;
use whatsup::send::engine;
use whatsup::send::worker::Worker;
use whatsup::store::campaigns::NewCampaign;
use whatsup::store::{StatusChange, Store};

const SECRET: &str = "store-copy-test-secret-long-enough-0123456789";

/// Imports `n` contacts over 500 organisations; one in 200 is tagged
/// `press` (the campaign's segment), every one has an attribute.
async fn contacts(store: &Store, n: usize) {
    let mut csv = String::from(
        "email,name,title,organisation,kind,country,timezone,language,tags,delegation\n",
    );
    for i in 0..n {
        let tags = if i % 200 == 0 {
            "press;culture"
        } else {
            "culture"
        };
        csv.push_str(&format!(
            "person{i}@org{o}.example.org,Person {i},Counsellor,Embassy {o},embassy,FR,Europe/Paris,fr,{tags},d{}\n",
            i % 7,
            o = i % 500
        ));
    }
    let (_dir, path) = common::temp_csv(csv);
    let report = common::import(store, &path, &ImportOptions::default()).await;
    assert_eq!(report.created, n as u64, "{report:?}");
}

fn smtp_config(db: &TestDb, port: u16, dir: &std::path::Path) -> Config {
    let mut c = db.config.clone();
    c.general.data_dir = dir.to_path_buf();
    c.smtp.host = "127.0.0.1".into();
    c.smtp.port = port;
    c.smtp.timeout_secs = 20;
    c.smtp.per_hour = 1_000_000;
    c.sending.transport = "smtp".into();
    c.sending.batch_size = 20;
    c.sending.lease_secs = 60;
    c.sending.bounce_address = "bounces@news.example.com".into();
    c.security.token_secret = Secret::new(SECRET);
    c
}

async fn campaign(store: &Store, config: &Config, segment: &str) -> i64 {
    common::save_sample_issue(store).await;
    let id = store
        .create_campaign(&NewCampaign {
            name: "copied",
            issue_number: 214,
            segment,
            from_name: "WHAT'S UP Tokyo",
            from_address: "whatsup@news.example.com",
            reply_to: "",
            transport: "smtp",
            actor: &whatsup::domain::Actor::system("test"),
        })
        .await
        .unwrap();
    engine::start(store, config, id, &whatsup::domain::Actor::system("test"))
        .await
        .unwrap()
        .unwrap();
    id
}

/// `whatsup store copy --to URL --json` from the SQLite file of `db`.
fn copy_cli(sqlite_url: &str, to: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_whatsup"))
        .args([
            "--database",
            sqlite_url,
            "store",
            "copy",
            "--to",
            to,
            "--json",
        ])
        .args(extra)
        .env_remove("WHATSUP_DATABASE_URL")
        .env("WHATSUP_SECURITY_TOKEN_SECRET", SECRET)
        .output()
        .expect("run whatsup store copy")
}

fn report_of(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "store copy failed ({:?}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON report")
}

/// The tables of the SQLite schema, read from the file itself.
async fn sqlite_tables(store: &Store) -> Vec<String> {
    let Store::Sqlite(p) = store else {
        panic!("an SQLite store")
    };
    sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(p)
    .await
    .unwrap()
}

/// PostgreSQL keeps timestamps to the microsecond; SQLite has chrono's
/// nanoseconds. Values compare equal after the same truncation.
fn us(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

fn contact_us(mut c: whatsup::store::Contact) -> whatsup::store::Contact {
    c.created_at = us(c.created_at);
    c.updated_at = us(c.updated_at);
    c.status_changed_at = us(c.status_changed_at);
    c.consent_at = c.consent_at.map(us);
    c
}

fn campaign_us(mut c: whatsup::store::campaigns::Campaign) -> whatsup::store::campaigns::Campaign {
    c.created_at = us(c.created_at);
    c.updated_at = us(c.updated_at);
    c
}

async fn pg_scalar(store: &Store, sql: &str) -> i64 {
    let Store::Postgres(p) = store else {
        panic!("a PostgreSQL store")
    };
    sqlx::query_scalar(sql).fetch_one(p).await.unwrap()
}

/// Fills every table: contacts, a campaign sent through smtp-sink (with a
/// shared hourly window), a bounce read by the intake, a status change by
/// hand, an open and a click, an image in the media library, a per-second
/// window.
async fn fill_every_table(db: &TestDb, config: &Config, n: usize) -> i64 {
    contacts(&db.store, n).await;
    let id = campaign(&db.store, config, "tag = press").await;
    let mut w = Worker::new(db.store.clone(), config.clone()).unwrap();
    let end = w
        .send_campaign(id, &AtomicBool::new(false), |_| {})
        .await
        .unwrap();
    assert_eq!(end, engine::RunEnd::Finished);
    let bounced = db
        .store
        .contact("person200@org200.example.org")
        .await
        .unwrap()
        .unwrap();
    let verp = whatsup::send::identity::Identity::from_config(config)
        .unwrap()
        .envelope_from(id, bounced.id)
        .unwrap();
    let dsn = common::bounces::dsn(
        &verp,
        &bounced.email,
        "5.1.1",
        "550 5.1.1 User unknown",
        b"Subject: x\r\n\r\nbody\r\n",
    );
    let intake = Intake::from_config(db.store.clone(), config).unwrap();
    intake.ingest(&dsn, "test", None).await.unwrap();
    db.store
        .set_status(
            "person400@org400.example.org",
            &StatusChange {
                status: ContactStatus::Unsubscribed,
                reason: "asked by phone",
                actor: "cli:test",
                evidence: serde_json::json!({"call": 1}),
            },
            &whatsup::domain::Actor::system("test"),
        )
        .await
        .unwrap();
    let opener = db
        .store
        .contact("person600@org100.example.org")
        .await
        .unwrap()
        .unwrap();
    db.store
        .record_tracking(id, opener.id, None, None)
        .await
        .unwrap();
    db.store
        .record_tracking(
            id,
            opener.id,
            Some("https://www.example.org/a"),
            Some("192.0.2.1"),
        )
        .await
        .unwrap();
    db.store
        .add_media(&whatsup::store::media::NewMedia {
            hash: &"ab".repeat(32),
            ext: "png",
            width: 600,
            height: 400,
            bytes: 12_345,
            alt: "The river at dusk",
            original_name: "river.png",
            uploaded_by: "cli:test",
        })
        .await
        .unwrap();
    fill_workspace(&db.store, id).await;
    // The shared per-second window (the campaign above ran without a
    // per_second limit, so it reserved none).
    db.store
        .reserve_rate("primary", chrono::Utc::now().timestamp_millis(), 100, 3)
        .await
        .unwrap();
    id
}

/// The workspace's tables: an account with a session and an API token, a
/// failed login, a request and an approval of campaign `id`, and a job.
async fn fill_workspace(store: &Store, id: i64) {
    use whatsup::domain::actor::Account;
    use whatsup::domain::{Actor, Role};
    use whatsup::store::approvals::ApprovalKind;
    use whatsup::store::jobs::{JobKind, JobState};
    use whatsup::store::users::{NewSession, ThrottleScope};
    let cli = Actor::system("test");
    let user = store
        .create_user(
            "ken@example.org",
            "Ken Sato",
            Role::Operator,
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            &cli,
        )
        .await
        .unwrap();
    let me = Actor::User {
        account: Account {
            id: user.id,
            email: user.email.clone(),
            role: Role::Operator,
        },
        ip: Some("192.0.2.7".parse().unwrap()),
    };
    store
        .create_session(
            &NewSession {
                id_hash: &"5e".repeat(32),
                user_id: user.id,
                csrf_token: "csrf-token-of-the-session",
                password_tag: "tag",
                ip: Some("192.0.2.7".into()),
                user_agent: "test",
                replaces: None,
            },
            &me,
        )
        .await
        .unwrap();
    store
        .create_token(user.id, "nightly export", &"70".repeat(32), "wu_abcd", &me)
        .await
        .unwrap();
    store
        .record_login_failure(
            &[
                (ThrottleScope::Account, "ken@example.org"),
                (ThrottleScope::Ip, "192.0.2.9"),
            ],
            Utc::now().timestamp_millis(),
            3_600_000,
            &cli,
            "ken@example.org",
        )
        .await
        .unwrap();
    for kind in [ApprovalKind::Request, ApprovalKind::Approval] {
        store
            .record_approval(id, kind, 1, "tag = press", "looks right", &me)
            .await
            .unwrap();
    }
    store
        .create_job(
            JobKind::Send,
            JobState::Succeeded,
            Some(id),
            &me,
            serde_json::json!({"campaign": id}),
        )
        .await
        .unwrap();
    // An autosaved draft of the campaign's issue (the issue editor's).
    let issue = store.campaign(id).await.unwrap().unwrap().issue_number;
    store
        .save_draft(u32::try_from(issue).unwrap(), user.id, 1, "+++\nunsaved\n")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_of_100000_contacts_and_a_finished_campaign_copies_with_every_check_passing() {
    if !sink::available() {
        return;
    }
    let Some(pg) = common::postgres().await else {
        return;
    };
    let db = common::sqlite().await;
    let sink = Sink::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let config = smtp_config(&db, sink.port, work.path());
    let id = fill_every_table(&db, &config, 100_000).await;
    let tables = sqlite_tables(&db.store).await;
    let empty: Vec<&String> = {
        let Store::Sqlite(p) = &db.store else {
            unreachable!()
        };
        let mut empty = Vec::new();
        for t in &tables {
            let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM \"{t}\""))
                .fetch_one(p)
                .await
                .unwrap();
            if n == 0 {
                empty.push(t);
            }
        }
        empty
    };
    assert!(
        empty.is_empty(),
        "tables {empty:?} are empty in the copy fixture: a migration added them. Fill them in \
         tests/store_copy.rs (fill_every_table) so that the copy of their rows and types is tested"
    );

    let report = report_of(&copy_cli(&db.url, &pg.url, &[]));
    let copied: Vec<String> = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = copied.clone();
    sorted.sort();
    assert_eq!(sorted, tables, "every table of the schema is copied");
    for t in report["tables"].as_array().unwrap() {
        assert_eq!(t["source_rows"], t["target_rows"], "{t}");
        assert_eq!(t["source_checksum"], t["target_checksum"], "{t}");
    }
    let at = |name: &str| copied.iter().position(|t| t == name).unwrap();
    assert!(at("organisations") < at("contacts") && at("contacts") < at("deliveries"));
    assert!(at("campaigns") < at("deliveries") && at("deliveries") < at("bounce_events"));

    // Ids, statuses, histories and delivery records, through the store API.
    let source = &db.store;
    let target = &pg.store;
    for email in [
        "person0@org0.example.org",
        "person200@org200.example.org",
        "person400@org400.example.org",
        "person99999@org499.example.org",
    ] {
        let a = source.contact(email).await.unwrap().unwrap();
        let b = target.contact(email).await.unwrap().unwrap();
        assert_eq!(contact_us(a.clone()), b, "{email}");
        let ha = source.status_history(a.id).await.unwrap();
        let hb = target.status_history(b.id).await.unwrap();
        assert_eq!(ha.len(), hb.len(), "{email}");
        for (x, y) in ha.iter().zip(&hb) {
            assert_eq!(
                (
                    x.id,
                    &x.new_status,
                    &x.actor,
                    &x.evidence.0,
                    us(x.created_at)
                ),
                (y.id, &y.new_status, &y.actor, &y.evidence.0, y.created_at)
            );
        }
    }
    assert_eq!(
        target
            .contact("person200@org200.example.org")
            .await
            .unwrap()
            .unwrap()
            .status,
        "bounced"
    );
    let (ca, cb) = (
        source.campaign_or_err(id).await.unwrap(),
        target.campaign_or_err(id).await.unwrap(),
    );
    assert_eq!(campaign_us(ca), cb);
    assert_eq!(cb.state, "finished");
    assert_eq!(
        source.delivery_counts(id).await.unwrap(),
        target.delivery_counts(id).await.unwrap()
    );
    let da = source.deliveries(id, None, 1000).await.unwrap();
    let db_ = target.deliveries(id, None, 1000).await.unwrap();
    assert_eq!(da.len(), 500);
    for (x, y) in da.iter().zip(&db_) {
        let mut x = x.clone();
        x.sent_at = x.sent_at.map(us);
        assert_eq!(&x, y);
    }
    let ea = source.campaign_events(id).await.unwrap();
    let eb = target.campaign_events(id).await.unwrap();
    assert_eq!(ea.len(), eb.len());
    for (x, y) in ea.iter().zip(&eb) {
        let mut x = x.clone();
        x.created_at = us(x.created_at);
        assert_eq!(&x, y);
    }

    // New rows continue after the copied ids.
    let max_id = pg_scalar(target, "SELECT MAX(id) FROM contacts").await;
    let added = target
        .add_contact(
            &whatsup::store::NewContact {
                email: whatsup::domain::EmailAddress::parse("new@example.net").unwrap(),
                name: "New".into(),
                title: String::new(),
                salutation: String::new(),
                organisation_id: None,
                language: None,
                consent_source: "test".into(),
                attributes: Default::default(),
                tags: vec!["press".into()],
            },
            &whatsup::domain::Actor::system("test"),
        )
        .await
        .unwrap();
    assert!(added.id > max_id, "{} after {max_id}", added.id);
    assert_eq!(
        pg_scalar(target, "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'whatsup_store_copy'")
            .await,
        0,
        "the bookkeeping table is gone once the copy is verified"
    );

    // A token made for the SQLite store unsubscribes the same contact on
    // PostgreSQL: ids and the secret are all a token needs.
    let who = source
        .contact("person0@org0.example.org")
        .await
        .unwrap()
        .unwrap();
    let keys = whatsup::send::identity::token_keys(&config).unwrap();
    let tokens = whatsup::send::identity::link_tokens(&keys, id, who.id);
    let mut web_config = pg.config.clone();
    web_config.security.token_secret = Secret::new(SECRET);
    let server =
        whatsup::web::Server::start(target.clone(), web_config, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    let page = common::http::get(server.addr, &format!("/u/{}", tokens.unsubscribe)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let done = common::http::post(
        server.addr,
        &format!("/u/{}", tokens.unsubscribe),
        "application/x-www-form-urlencoded",
        b"List-Unsubscribe=One-Click",
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.body);
    server.stop().await.unwrap();
    assert_eq!(
        target.contact(&who.email).await.unwrap().unwrap().status,
        "unsubscribed"
    );
}

/// Makes the insert of contact `id` into the target fail with `message`,
/// as a full disk or a lost connection would (`DROP TRIGGER fail_at ON
/// contacts` ends it).
async fn fail_at(p: &sqlx::PgPool, id: i64, message: &str) {
    sqlx::query(&format!(
        "CREATE FUNCTION fail_at() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.id = {id} THEN RAISE EXCEPTION '{message}'; END IF; RETURN NEW; END $$"
    ))
    .execute(p)
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER fail_at BEFORE INSERT ON contacts FOR EACH ROW EXECUTE FUNCTION fail_at()",
    )
    .execute(p)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_copy_resumes_from_its_last_chunk_and_a_changed_source_is_caught() {
    let Some(pg) = common::postgres().await else {
        return;
    };
    let db = common::sqlite().await;
    contacts(&db.store, 12_000).await;
    let Store::Postgres(p) = &pg.store else {
        unreachable!()
    };
    // A failure in the middle of the contacts, as a full disk would be.
    fail_at(p, 7000, "disk full (simulated)").await;
    let failed = copy_cli(&db.url, &pg.url, &["--chunk-rows", "1000"]);
    assert_eq!(failed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("disk full (simulated)"), "{stderr}");
    assert_eq!(
        pg_scalar(&pg.store, "SELECT COUNT(*) FROM contacts").await,
        6000
    );
    assert_eq!(
        pg_scalar(
            &pg.store,
            "SELECT rows_copied FROM whatsup_store_copy WHERE table_name = 'contacts'"
        )
        .await,
        6000
    );
    sqlx::query("DROP TRIGGER fail_at ON contacts")
        .execute(p)
        .await
        .unwrap();

    let report = report_of(&copy_cli(&db.url, &pg.url, &["--chunk-rows", "1000"]));
    assert_eq!(report["resumed"], true);
    let contacts_row = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "contacts")
        .unwrap()
        .clone();
    assert_eq!(contacts_row["resumed_after"], 6000, "{contacts_row}");
    assert_eq!(contacts_row["copied_now"], 6000, "{contacts_row}");
    assert_eq!(contacts_row["target_rows"], 12000);
    let organisations = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "organisations")
        .unwrap()
        .clone();
    assert_eq!(
        organisations["copied_now"], 0,
        "copied before the failure: {organisations}"
    );

    // A second copy into the now full database is refused.
    let again = copy_cli(&db.url, &pg.url, &[]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not empty"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_changed_in_the_source_between_runs_fails_the_verification() {
    let Some(pg) = common::postgres().await else {
        return;
    };
    let db = common::sqlite().await;
    contacts(&db.store, 3_000).await;
    let Store::Postgres(p) = &pg.store else {
        unreachable!()
    };
    fail_at(p, 2500, "connection lost (simulated)").await;
    assert_eq!(
        copy_cli(&db.url, &pg.url, &["--chunk-rows", "500"])
            .status
            .code(),
        Some(1)
    );
    sqlx::query("DROP TRIGGER fail_at ON contacts")
        .execute(p)
        .await
        .unwrap();
    // Someone renames a contact that was already copied.
    let Store::Sqlite(s) = &db.store else {
        unreachable!()
    };
    sqlx::query("UPDATE contacts SET name = 'Renamed' WHERE id = 10")
        .execute(s)
        .await
        .unwrap();
    let out = copy_cli(&db.url, &pg.url, &["--chunk-rows", "500"]);
    assert_eq!(out.status.code(), Some(1), "the verification fails");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bad: Vec<&str> = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["source_checksum"] != t["target_checksum"])
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    assert_eq!(bad, ["contacts"]);
    assert!(
        pg_scalar(&pg.store, "SELECT COUNT(*) FROM whatsup_store_copy").await > 0,
        "an unverified copy keeps its bookkeeping"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_worker_finishes_a_half_sent_campaign_without_duplicates() {
    if !sink::available() {
        return;
    }
    let Some(pg) = common::postgres().await else {
        return;
    };
    let db = common::sqlite().await;
    let sink = Sink::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let mut config = smtp_config(&db, sink.port, work.path());
    config.smtp.per_second = 200;
    contacts(&db.store, 400).await;
    let id = campaign(&db.store, &config, "").await;
    let stop = AtomicBool::new(false);
    let mut w = Worker::new(db.store.clone(), config.clone()).unwrap();
    let end = w
        .send_campaign(id, &stop, |c| {
            if c.done() >= 200 {
                stop.store(true, Ordering::SeqCst);
            }
        })
        .await
        .unwrap();
    assert_eq!(end, engine::RunEnd::Stopped);
    let half = db.store.delivery_counts(id).await.unwrap();
    assert!(half.sent >= 200 && half.sent < 400, "{half:?}");
    assert_eq!(sink.messages().len() as i64, half.sent);
    db.store.close().await;

    report_of(&copy_cli(&db.url, &pg.url, &[]));
    let mut pg_config = config.clone();
    pg_config.database.url = Secret::new(pg.url.clone());
    let mut w = Worker::new(pg.store.clone(), pg_config).unwrap();
    let end = w
        .send_campaign(id, &AtomicBool::new(false), |_| {})
        .await
        .unwrap();
    assert_eq!(end, engine::RunEnd::Finished);
    let mut per: HashMap<String, usize> = HashMap::new();
    for m in sink.messages() {
        *per.entry(m.rcpt_to).or_insert(0) += 1;
    }
    assert_eq!(per.len(), 400, "every recipient got a message");
    let twice: Vec<_> = per.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent twice: {twice:?}");
    assert_eq!(pg.store.delivery_counts(id).await.unwrap().sent, 400);
}
