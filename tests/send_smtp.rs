//! Sending against a real SMTP server: Postfix's smtp-sink on loopback,
//! with its fault switches for 4xx, 5xx and 421 replies. Each test runs on
//! SQLite and on PostgreSQL, except TLS and AUTH, which go through Dovecot's
//! submission service (which relays to smtp-sink) on SQLite only: they test
//! the transport, which does not depend on the store.

use crate::common;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;

use crate::common::sink::{self, per_recipient, Sink};
use crate::common::TestDb;
use whatsup::config::{Config, Secret};
use whatsup::domain::CampaignState;
use whatsup::import::ImportOptions;
use whatsup::send::engine::{self, RunEnd};
use whatsup::send::worker::Worker;
use whatsup::store::Store;

const SECRET: &str = "test-secret-that-is-long-enough-0123456789abcdef";

/// Imports `n` contacts spread over a few organisations and zones.
async fn contacts(db: &TestDb, n: usize) {
    let zones = [
        "Europe/Paris",
        "America/New_York",
        "Asia/Jakarta",
        "Australia/Sydney",
    ];
    let mut csv = String::from("email,name,title,organisation,kind,country,timezone\n");
    for i in 0..n {
        let o = i % 4;
        csv.push_str(&format!(
            "person{i}@org{o}.example.org,Person {i},Counsellor,Embassy {o},embassy,FR,{}\n",
            zones[o]
        ));
    }
    let (_dir, path) = common::temp_csv(csv);
    let report = common::import(&db.store, &path, &ImportOptions::default()).await;
    assert_eq!(report.created, n as u64, "{report:?}");
}

fn smtp_config(db: &TestDb, port: u16) -> Config {
    let mut c = db.config.clone();
    c.smtp.host = "127.0.0.1".into();
    c.smtp.port = port;
    c.smtp.timeout_secs = 10;
    c.sending.transport = "smtp".into();
    c.sending.batch_size = 25;
    c.sending.retry_base_secs = 1;
    c.sending.retry_max_secs = 1;
    c.sending.lease_secs = 30;
    c.sending.bounce_address = "bounces@example.org".into();
    c.security.token_secret = Secret::new(SECRET);
    c
}

async fn campaign(store: &Store, config: &Config) -> i64 {
    let id = common::draft_campaign(store, "test", "").await;
    engine::start(store, config, id, &crate::common::actor())
        .await
        .unwrap()
        .unwrap();
    id
}

async fn send(store: &Store, config: &Config, id: i64) -> RunEnd {
    let mut w = Worker::new(store.clone(), config.clone()).unwrap();
    w.send_campaign(id, &AtomicBool::new(false), |_| {})
        .await
        .unwrap()
}

async fn every_recipient_gets_exactly_one_personalised_message_with_the_bulk_sender_headers(
    db: TestDb,
) {
    if !sink::available() {
        return;
    }
    let sink = Sink::start(&[]);
    contacts(&db, 60).await;
    common::save_sample_issue(&db.store).await;
    let config = smtp_config(&db, sink.port);
    let id = campaign(&db.store, &config).await;
    assert_eq!(send(&db.store, &config, id).await, RunEnd::Finished);

    let msgs = sink.messages();
    let per = per_recipient(&msgs);
    assert_eq!(per.len(), 60);
    assert!(per.values().all(|n| *n == 1), "{per:?}");
    let counts = db.store.delivery_counts(id).await.unwrap();
    assert_eq!((counts.sent, counts.failed, counts.open()), (60, 0, 0));

    let m = msgs
        .iter()
        .find(|m| m.rcpt_to == "person7@org3.example.org")
        .expect("person 7's message");
    assert!(m.text.contains("Person 7"), "personalised with the name");
    assert!(m.mail_from.starts_with("bounces+") && m.mail_from.ends_with("@example.org"));
    assert!(m.header("Message-ID").unwrap().ends_with("@example.org>"));
    assert!(m.header("Date").is_some());
    assert!(m.header("List-Id").is_some());
    let unsub = m.header("List-Unsubscribe").unwrap();
    assert!(unsub.starts_with("<https://"), "{unsub}");
    assert_eq!(
        m.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    assert_eq!(m.header("X-Whatsup-Campaign"), Some(id.to_string()));
    // Tokens differ per recipient.
    let other = msgs.iter().find(|x| x.rcpt_to != m.rcpt_to).unwrap();
    assert_ne!(other.header("List-Unsubscribe"), Some(unsub));
}

/// Sends until every recipient waits for the relay, which cannot be
/// reached, then checks that none was sent, none failed, none used up an
/// attempt, and the campaign says it waits for its relay.
async fn every_recipient_waits_for_the_relay(db: &TestDb, config: &Config, id: i64) {
    run_until(db, config, id, |rows| {
        !rows.is_empty()
            && rows.iter().all(|r| {
                r.status == "retry"
                    && r.last_reply
                        .as_deref()
                        .is_some_and(|t| t.starts_with("waiting for relay"))
            })
    })
    .await;
    let counts = db.store.delivery_counts(id).await.unwrap();
    assert_eq!((counts.sent, counts.failed), (0, 0));
    let rows = db.store.deliveries(id, None, 1000).await.unwrap();
    assert!(
        rows.iter().all(|r| r.attempts == 0),
        "no attempt is used up"
    );
    let c = db.store.campaign_or_err(id).await.unwrap();
    assert_eq!(c.state, "running");
    assert!(
        c.waiting_since_ms.is_some(),
        "the campaign waits for its relay"
    );
    assert!(!c.waiting_reason.is_empty());
}

/// Runs one worker on the campaign in the background until `done` holds
/// for the campaign's delivery rows (or a minute passes), then raises the
/// stop flag and waits for the worker to finish its batch. Conditions, not
/// sleeps, so a slow machine only makes the test slower.
async fn run_until(
    db: &TestDb,
    config: &Config,
    id: i64,
    done: impl Fn(&[whatsup::store::campaigns::DeliveryRow]) -> bool,
) -> Vec<whatsup::store::campaigns::DeliveryRow> {
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let task = {
        let (store, config, stop) = (db.store.clone(), config.clone(), stop.clone());
        tokio::spawn(async move {
            let mut w = Worker::new(store, config).unwrap();
            w.send_campaign(id, &stop, |_| {}).await.unwrap()
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let rows = loop {
        let rows = db.store.deliveries(id, None, 1000).await.unwrap();
        if done(&rows) {
            break rows;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "condition not reached in a minute: {:?}",
            rows.iter()
                .map(|r| (&r.status, &r.last_code))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    task.await.unwrap();
    rows
}

/// Every delivery was tried and answered with this reply code.
fn all_tried_with(
    code: &'static str,
) -> impl Fn(&[whatsup::store::campaigns::DeliveryRow]) -> bool {
    move |rows| {
        !rows.is_empty()
            && rows
                .iter()
                .all(|r| r.last_code.as_deref().unwrap_or("").starts_with(code))
    }
}

async fn temporary_rejections_are_retried_until_the_server_accepts(db: TestDb) {
    if !sink::available() {
        return;
    }
    let mut failing = Sink::start(&["-r", "rcpt"]);
    contacts(&db, 20).await;
    common::save_sample_issue(&db.store).await;
    let config = smtp_config(&db, failing.port);
    let id = campaign(&db.store, &config).await;
    // While the server answers 4xx, the campaign keeps retrying and never
    // finishes or fails anyone.
    run_until(&db, &config, id, all_tried_with("4")).await;
    let counts = db.store.delivery_counts(id).await.unwrap();
    assert_eq!(counts.sent, 0);
    assert_eq!(counts.failed, 0);

    // The server recovers on the same port; the retries go through.
    let port = failing.port;
    let dir = tempfile::tempdir().unwrap();
    failing.stop();
    let good = Sink::start_on(port, dir.path(), &[]);
    assert_eq!(send(&db.store, &config, id).await, RunEnd::Finished);
    let per = per_recipient(&good.messages());
    assert_eq!(per.len(), 20);
    assert!(per.values().all(|n| *n == 1));
    let rows = db.store.deliveries(id, None, 100).await.unwrap();
    assert!(rows.iter().all(|r| r.status == "sent" && r.attempts >= 2));
}

async fn permanent_rejections_fail_at_once_are_recorded_as_bounces_and_pause_the_campaign(
    db: TestDb,
) {
    if !sink::available() {
        return;
    }
    let sink = Sink::start(&["-f", "rcpt"]);
    contacts(&db, 40).await;
    common::save_sample_issue(&db.store).await;
    let mut config = smtp_config(&db, sink.port);
    config.sending.pause_error_window = 20;
    let id = campaign(&db.store, &config).await;
    let end = send(&db.store, &config, id).await;
    assert_eq!(end, RunEnd::NotRunning(CampaignState::Paused));
    let c = db.store.campaign_or_err(id).await.unwrap();
    assert!(
        c.state_reason.contains("rejected permanently"),
        "{}",
        c.state_reason
    );
    let failed = db
        .store
        .deliveries(id, Some(whatsup::domain::DeliveryStatus::Failed), 100)
        .await
        .unwrap();
    assert!(failed.len() >= 20, "{}", failed.len());
    assert!(failed.iter().all(|d| d.attempts == 1));
    assert!(failed
        .iter()
        .all(|d| d.last_code.as_deref().unwrap_or("").starts_with('5')));
    let bounces = db.store.bounce_events(Some(id), 100).await.unwrap();
    assert_eq!(bounces.len(), failed.len());
    assert!(bounces
        .iter()
        .all(|b| b.source == "smtp" && b.status.starts_with('5')));
    assert!(sink.messages().is_empty());
}

async fn the_hourly_ceiling_holds_and_the_rest_wait_for_the_next_window(db: TestDb) {
    if !sink::available() {
        return;
    }
    let sink = Sink::start(&[]);
    contacts(&db, 30).await;
    common::save_sample_issue(&db.store).await;
    let mut config = smtp_config(&db, sink.port);
    config.smtp.per_hour = 12;
    let id = campaign(&db.store, &config).await;
    // Twelve go out; the other eighteen wait for the next hour.
    run_until(&db, &config, id, |rows| {
        let n = |s: &str| rows.iter().filter(|r| r.status == s).count();
        n("sent") == 12 && n("retry") == 18
    })
    .await;
    assert_eq!(
        db.store.campaign_or_err(id).await.unwrap().state,
        CampaignState::Running.as_str(),
        "the campaign waits for the next hour"
    );
    assert_eq!(sink.messages().len(), 12);
    let counts = db.store.delivery_counts(id).await.unwrap();
    assert_eq!(counts.sent, 12);
    assert_eq!(counts.retry, 18);
    let waiting = db
        .store
        .deliveries(id, Some(whatsup::domain::DeliveryStatus::Retry), 100)
        .await
        .unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    assert!(waiting.iter().all(|d| d.due_ms > now && d.attempts == 0));
}

async fn the_per_second_limit_spaces_the_messages(db: TestDb) {
    if !sink::available() {
        return;
    }
    let sink = Sink::start(&[]);
    contacts(&db, 21).await;
    common::save_sample_issue(&db.store).await;
    let mut config = smtp_config(&db, sink.port);
    config.smtp.per_second = 10;
    let id = campaign(&db.store, &config).await;
    let began = std::time::Instant::now();
    assert_eq!(send(&db.store, &config, id).await, RunEnd::Finished);
    // 21 messages at 10 per second with no burst need at least 2 s: a lower
    // bound the limiter guarantees, whatever the machine's load.
    assert!(began.elapsed() >= std::time::Duration::from_millis(1900));
    let mut times: Vec<_> = sink.messages().iter().map(|m| m.modified).collect();
    times.sort();
    assert_eq!(times.len(), 21);
}

async fn a_paused_campaign_sends_nothing_and_resumes_where_it_stopped(db: TestDb) {
    if !sink::available() {
        return;
    }
    let sink = Sink::start(&[]);
    contacts(&db, 30).await;
    common::save_sample_issue(&db.store).await;
    let config = smtp_config(&db, sink.port);
    let id = campaign(&db.store, &config).await;
    assert!(db
        .store
        .move_campaign(
            id,
            &[CampaignState::Running],
            CampaignState::Paused,
            &crate::common::actor(),
            "test",
        )
        .await
        .unwrap());
    assert_eq!(
        send(&db.store, &config, id).await,
        RunEnd::NotRunning(CampaignState::Paused)
    );
    assert!(sink.messages().is_empty());
    assert!(db
        .store
        .move_campaign(
            id,
            &[CampaignState::Paused],
            CampaignState::Running,
            &crate::common::actor(),
            "test",
        )
        .await
        .unwrap());
    assert_eq!(send(&db.store, &config, id).await, RunEnd::Finished);
    let per = per_recipient(&sink.messages());
    assert_eq!(per.len(), 30);
    assert!(per.values().all(|n| *n == 1));
    let events = db.store.campaign_events(id).await.unwrap();
    let states: Vec<&str> = events.iter().map(|e| e.new_state.as_str()).collect();
    assert_eq!(
        states,
        ["draft", "running", "paused", "running", "finished"]
    );
}

async fn contacts_who_unsubscribe_after_the_start_are_skipped(db: TestDb) {
    if !sink::available() {
        return;
    }
    let sink = Sink::start(&[]);
    contacts(&db, 10).await;
    common::save_sample_issue(&db.store).await;
    let config = smtp_config(&db, sink.port);
    let id = campaign(&db.store, &config).await;
    db.store
        .set_status(
            "person3@org3.example.org",
            &whatsup::store::StatusChange {
                status: whatsup::domain::ContactStatus::Unsubscribed,
                reason: "test",
                actor: "test",
                evidence: serde_json::json!({}),
            },
            &crate::common::actor(),
        )
        .await
        .unwrap();
    assert_eq!(send(&db.store, &config, id).await, RunEnd::Finished);
    let per = per_recipient(&sink.messages());
    assert_eq!(per.len(), 9);
    assert!(!per.contains_key("person3@org3.example.org"));
    assert_eq!(db.store.delivery_counts(id).await.unwrap().skipped, 1);
}

async fn several_workers_share_one_campaign_and_each_recipient_gets_one_message(db: TestDb) {
    if !sink::available() {
        return;
    }
    let sink = Sink::start(&[]);
    contacts(&db, 150).await;
    common::save_sample_issue(&db.store).await;
    let mut config = smtp_config(&db, sink.port);
    config.sending.batch_size = 10;
    config.smtp.per_hour = 120;
    let id = campaign(&db.store, &config).await;
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let store = db.store.clone();
        let config = config.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut w = Worker::new(store, config).unwrap();
            w.send_campaign(id, &stop, |_| {}).await.unwrap();
        }));
    }
    // Until the hour's ceiling is used up (or a minute passes), then stop
    // the workers the way Ctrl-C does: each completes its batch first.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while db.store.delivery_counts(id).await.unwrap().sent < 90
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let per = per_recipient(&sink.messages());
    assert!(
        per.values().all(|n| *n == 1),
        "a recipient got two messages"
    );
    // The shared hourly ceiling holds for the three together. Each worker
    // reserves sends ten at a time, so up to ten per worker may go unused
    // in this window (never more than the ceiling are sent).
    let counts = db.store.delivery_counts(id).await.unwrap();
    assert_eq!(counts.sent as usize, per.len());
    assert!(counts.sent <= 120, "{} sent, over the ceiling", counts.sent);
    assert!(counts.sent >= 90, "only {} sent", counts.sent);
    assert_eq!(counts.sent + counts.retry, 150);
}

async fn a_local_time_campaign_is_due_at_nine_in_each_recipients_zone(db: TestDb) {
    contacts(&db, 8).await;
    common::save_sample_issue(&db.store).await;
    let config = smtp_config(&db, 25);
    let id = common::draft_campaign(&db.store, "local", "country = FR").await;
    let (date, time) = whatsup::send::schedule::check_local("2026-12-01", "09:00").unwrap();
    let earliest = whatsup::send::schedule::earliest(date, time).timestamp_millis();
    assert!(db
        .store
        .schedule_campaign(
            id,
            &whatsup::store::campaigns::Schedule::Local {
                date: "2026-12-01".into(),
                time: "09:00".into(),
                earliest_ms: earliest,
            },
            &crate::common::actor()
        )
        .await
        .unwrap());
    // Not due an hour before the first zone reaches 09:00; due after.
    assert!(db
        .store
        .due_campaigns(earliest - 3_600_000)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(db.store.due_campaigns(earliest).await.unwrap(), vec![id]);
    assert_eq!(
        engine::start(&db.store, &config, id, &crate::common::actor())
            .await
            .unwrap(),
        Some(8)
    );
    let at = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    };
    let due: HashMap<String, i64> = db
        .store
        .deliveries(id, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.email, d.due_ms))
        .collect();
    assert_eq!(due["person0@org0.example.org"], at("2026-12-01T08:00:00Z")); // Paris
    assert_eq!(due["person1@org1.example.org"], at("2026-12-01T14:00:00Z")); // New York
    assert_eq!(due["person2@org2.example.org"], at("2026-12-01T02:00:00Z")); // Jakarta
    assert_eq!(due["person3@org3.example.org"], at("2026-11-30T22:00:00Z")); // Sydney (summer)
                                                                             // A second start loses: the campaign is already running.
    assert_eq!(
        engine::start(&db.store, &config, id, &crate::common::actor())
            .await
            .ok(),
        None
    );
}

async fn a_421_that_drops_the_connection_is_retried_on_a_new_connection(db: TestDb) {
    if !sink::available() {
        return;
    }
    let mut closing = Sink::start(&["-Q", "rcpt"]);
    contacts(&db, 12).await;
    common::save_sample_issue(&db.store).await;
    let config = smtp_config(&db, closing.port);
    let id = campaign(&db.store, &config).await;
    // Every recipient is tried and gets the 421; nobody fails.
    run_until(&db, &config, id, all_tried_with("421")).await;
    let counts = db.store.delivery_counts(id).await.unwrap();
    assert_eq!((counts.sent, counts.failed), (0, 0));
    let port = closing.port;
    let dir = tempfile::tempdir().unwrap();
    closing.stop();
    let good = Sink::start_on(port, dir.path(), &[]);
    assert_eq!(send(&db.store, &config, id).await, RunEnd::Finished);
    let per = per_recipient(&good.messages());
    assert_eq!(per.len(), 12);
    assert!(per.values().all(|n| *n == 1));
}

async fn a_relay_that_is_down_stalls_the_campaign_which_recovers_when_it_returns(db: TestDb) {
    if !sink::available() {
        return;
    }
    let port = sink::free_port();
    contacts(&db, 12).await;
    common::save_sample_issue(&db.store).await;
    let config = smtp_config(&db, port);
    let id = campaign(&db.store, &config).await;
    // Nothing listens on the port: connections are refused. Every recipient
    // waits for the relay without using up an attempt; nobody fails.
    every_recipient_waits_for_the_relay(&db, &config, id).await;
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start_on(port, dir.path(), &[]);
    assert_eq!(send(&db.store, &config, id).await, RunEnd::Finished);
    let per = per_recipient(&sink.messages());
    assert_eq!(per.len(), 12);
    assert!(per.values().all(|n| *n == 1));
    let rows = db.store.deliveries(id, None, 100).await.unwrap();
    assert!(rows.iter().all(|r| r.status == "sent" && r.attempts == 1));
    let c = db.store.campaign_or_err(id).await.unwrap();
    assert_eq!(
        c.waiting_since_ms, None,
        "no longer waiting once it is done"
    );
}

fn fallback(port: u16, name: &str, weight: u32) -> whatsup::config::SmtpServer {
    whatsup::config::SmtpServer {
        name: name.into(),
        host: "127.0.0.1".into(),
        port,
        weight,
        timeout_secs: 10,
        ..Default::default()
    }
}

async fn when_the_primary_relay_is_down_the_fallback_delivers_everything(db: TestDb) {
    if !sink::available() {
        return;
    }
    let backup = Sink::start(&[]);
    contacts(&db, 30).await;
    common::save_sample_issue(&db.store).await;
    let mut config = smtp_config(&db, sink::free_port());
    config.smtp.fallback = vec![fallback(backup.port, "backup", 1)];
    let id = campaign(&db.store, &config).await;
    assert_eq!(send(&db.store, &config, id).await, RunEnd::Finished);
    let per = per_recipient(&backup.messages());
    assert_eq!(per.len(), 30);
    assert!(per.values().all(|n| *n == 1));
    let counts = db.store.delivery_counts(id).await.unwrap();
    assert_eq!((counts.sent, counts.failed), (30, 0));
}

async fn two_live_relays_share_the_messages_by_weight(db: TestDb) {
    if !sink::available() {
        return;
    }
    let a = Sink::start(&[]);
    let b = Sink::start(&[]);
    contacts(&db, 60).await;
    common::save_sample_issue(&db.store).await;
    let mut config = smtp_config(&db, a.port);
    config.smtp.weight = 1;
    config.smtp.fallback = vec![fallback(b.port, "second", 2)];
    let id = campaign(&db.store, &config).await;
    assert_eq!(send(&db.store, &config, id).await, RunEnd::Finished);
    let (pa, pb) = (per_recipient(&a.messages()), per_recipient(&b.messages()));
    assert_eq!(pa.len() + pb.len(), 60, "each recipient exactly once");
    assert!(pa.keys().all(|k| !pb.contains_key(k)));
    assert!(
        !pa.is_empty() && pb.len() > pa.len(),
        "weights 1:2 but {} and {}",
        pa.len(),
        pb.len()
    );
}

async fn the_worker_starts_a_scheduled_campaign_when_it_is_due_and_sends_it(db: TestDb) {
    if !sink::available() {
        return;
    }
    let sink = Sink::start(&[]);
    contacts(&db, 10).await;
    common::save_sample_issue(&db.store).await;
    let mut config = smtp_config(&db, sink.port);
    config.sending.poll_secs = 1;
    let id = common::draft_campaign(&db.store, "scheduled", "").await;
    let at = chrono::Utc::now().timestamp_millis() + 1500;
    assert!(db
        .store
        .schedule_campaign(
            id,
            &whatsup::store::campaigns::Schedule::At(at),
            &crate::common::actor()
        )
        .await
        .unwrap());
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let worker = {
        let (store, config, stop) = (db.store.clone(), config.clone(), stop.clone());
        tokio::spawn(async move {
            let mut w = Worker::new(store, config).unwrap();
            w.run(&stop).await.unwrap();
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let c = db.store.campaign_or_err(id).await.unwrap();
        if c.state == CampaignState::Finished.as_str() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {} after a minute",
            c.state
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    worker.await.unwrap();
    let per = per_recipient(&sink.messages());
    assert_eq!(per.len(), 10);
    assert!(per.values().all(|n| *n == 1));
    let sent_at: Vec<i64> = db
        .store
        .deliveries(id, None, 100)
        .await
        .unwrap()
        .iter()
        .filter_map(|d| d.sent_at.map(|t| t.timestamp_millis()))
        .collect();
    assert_eq!(sent_at.len(), 10);
    assert!(
        sent_at.iter().all(|t| *t >= at),
        "nothing went out before the scheduled time"
    );
}

on_both_backends!(
    a_local_time_campaign_is_due_at_nine_in_each_recipients_zone,
    every_recipient_gets_exactly_one_personalised_message_with_the_bulk_sender_headers,
    temporary_rejections_are_retried_until_the_server_accepts,
    permanent_rejections_fail_at_once_are_recorded_as_bounces_and_pause_the_campaign,
    the_hourly_ceiling_holds_and_the_rest_wait_for_the_next_window,
    the_per_second_limit_spaces_the_messages,
    a_paused_campaign_sends_nothing_and_resumes_where_it_stopped,
    contacts_who_unsubscribe_after_the_start_are_skipped,
    several_workers_share_one_campaign_and_each_recipient_gets_one_message,
    a_421_that_drops_the_connection_is_retried_on_a_new_connection,
    a_relay_that_is_down_stalls_the_campaign_which_recovers_when_it_returns,
    when_the_primary_relay_is_down_the_fallback_delivers_everything,
    two_live_relays_share_the_messages_by_weight,
    the_worker_starts_a_scheduled_campaign_when_it_is_due_and_sends_it,
);

/// STARTTLS and implicit TLS, each with AUTH, against a real SMTP server:
/// Dovecot's submission service, which requires AUTH, presents a
/// certificate from a private CA, and relays what it accepts to smtp-sink.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_and_implicit_tls_with_auth_deliver_through_a_real_submission_server() {
    use crate::common::dovecot::{self, Dovecot, Tls};
    if !sink::available() {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    if common::make_certificates(certs.path()).is_none() {
        common::skip_or_fail("openssl could not make test certificates");
        return;
    }
    let sink = Sink::start(&[]);
    let tls = Tls {
        cert: &certs.path().join("server.pem"),
        key: &certs.path().join("server.key"),
    };
    let Some(server) = Dovecot::start_submission(tls, sink.port) else {
        return;
    };
    let db = common::sqlite().await;
    contacts(&db, 6).await;
    common::save_sample_issue(&db.store).await;
    for (mode, port) in [
        ("starttls", server.submission_port),
        ("tls", server.submissions_port),
    ] {
        let mut config = smtp_config(&db, port);
        config.smtp.tls = mode.into();
        config.smtp.ca_file = certs.path().join("ca.pem");
        config.smtp.username = dovecot::USER.into();
        config.smtp.password = Secret::new(dovecot::PASSWORD);
        let id = campaign(&db.store, &config).await;
        let end = send(&db.store, &config, id).await;
        assert_eq!(end, RunEnd::Finished, "{mode}: {}", server.log());
        let counts = db.store.delivery_counts(id).await.unwrap();
        assert_eq!((counts.sent, counts.failed), (6, 0), "{mode}");
    }
    // Both campaigns went through Dovecot to the sink.
    assert_eq!(per_recipient(&sink.messages()).values().sum::<usize>(), 12);

    // Without the private CA the server's certificate is not trusted:
    // nothing is sent, and every recipient waits for the relay.
    let mut config = smtp_config(&db, server.submission_port);
    config.smtp.tls = "starttls".into();
    config.smtp.username = dovecot::USER.into();
    config.smtp.password = Secret::new(dovecot::PASSWORD);
    let id = campaign(&db.store, &config).await;
    every_recipient_waits_for_the_relay(&db, &config, id).await;
    assert_eq!(per_recipient(&sink.messages()).values().sum::<usize>(), 12);
    // Dovecot's own log: every login authenticated, and over TLS.
    let log = server.log();
    let logins: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("submission-login") && l.contains("Login: user=<bounces>"))
        .collect();
    assert!(!logins.is_empty(), "{log}");
    assert!(
        logins
            .iter()
            .all(|l| l.contains("method=PLAIN") && l.contains("TLS")),
        "{log}"
    );
}
