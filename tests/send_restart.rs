//! The real binary through the interruptions of a working day: the
//! PostgreSQL server restarts under `whatsup send` and under `whatsup
//! worker` (a cluster of the test's own, so the shared test server is not
//! disturbed), and `whatsup send` gets SIGTERM (as from a supervisor).

use crate::common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::pgcluster::Cluster;
use crate::common::sink::{self, per_recipient, Sink};
use crate::common::TestDb;
use whatsup::config::{Config, Secret};
use whatsup::import::ImportOptions;
use whatsup::store::Store;

const SECRET: &str = "restart-test-secret-0123456789abcdef0123456789";

async fn prepare(store: &Store, n: usize) -> i64 {
    let mut csv = String::from("email,name,organisation,kind,country\n");
    for i in 0..n {
        csv.push_str(&format!(
            "r{i}@example.net,R {i},Office {},embassy,DE\n",
            i % 7
        ));
    }
    let (_dir, path) = common::temp_csv(csv);
    common::import(store, &path, &ImportOptions::default()).await;
    common::save_sample_issue(store).await;
    common::draft_campaign(store, "restart test", "").await
}

fn whatsup(url: &str, port: u16, per_second: u32, dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_whatsup"));
    c.current_dir(dir)
        .env("WHATSUP_DATABASE_URL", url)
        .env("WHATSUP_SMTP_HOST", "127.0.0.1")
        .env("WHATSUP_SMTP_PORT", port.to_string())
        .env("WHATSUP_SENDING_TRANSPORT", "smtp")
        .env("WHATSUP_NEWSLETTER_REQUIRE_APPROVAL", "false")
        .env("WHATSUP_SENDING_BATCH_SIZE", "20")
        .env("WHATSUP_SMTP_PER_SECOND", per_second.to_string())
        .env("WHATSUP_SENDING_POLL_SECS", "1")
        .env("WHATSUP_SENDING_BOUNCE_ADDRESS", "bounces@example.org")
        .env("WHATSUP_SECURITY_TOKEN_SECRET", SECRET)
        .env("WHATSUP_GENERAL_DATA_DIR", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Waits until the sink holds `n` messages (or fails after two minutes).
fn wait_for_messages(sink: &Sink, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while sink.messages().len() < n {
        assert!(Instant::now() < deadline, "fewer than {n} messages arrived");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for the child to exit (or kills it after two minutes); returns
/// (success, code, stdout, stderr).
fn finish(mut child: Child) -> (Option<i32>, String, String) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A database of its own on a fresh cluster: (cluster, URL, store).
async fn cluster_db() -> Option<(Cluster, String, Store)> {
    let cluster = Cluster::start()?;
    let admin = Store::connect(&cluster.url("postgres"), &Config::default())
        .await
        .expect("connect to the test cluster");
    if let Store::Postgres(p) = &admin {
        sqlx::query("CREATE DATABASE whatsup")
            .execute(p)
            .await
            .unwrap();
    }
    admin.close().await;
    let url = cluster.url("whatsup");
    let mut config = Config::default();
    config.database.url = Secret::new(url.clone());
    let store = Store::open(&config).await.expect("open the store");
    Some((cluster, url, store))
}

/// The campaign's state and history, read over a fresh connection (the
/// old ones died with the restart).
async fn state_and_history(url: &str, id: i64) -> (String, Vec<String>, i64) {
    let mut config = Config::default();
    config.database.url = Secret::new(url.to_string());
    let store = Store::open(&config).await.unwrap();
    let c = store.campaign_or_err(id).await.unwrap();
    let events = store
        .campaign_events(id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| format!("{:?} -> {} ({})", e.old_state, e.new_state, e.reason))
        .collect();
    let sent = store.delivery_counts(id).await.unwrap().sent;
    store.close().await;
    (c.state, events, sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_carries_on_through_a_postgresql_restart_and_finishes_without_a_resume() {
    if !sink::available() {
        return;
    }
    let Some((cluster, url, store)) = cluster_db().await else {
        return;
    };
    let id = prepare(&store, 300).await;
    store.close().await;
    let sink = Sink::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let child = whatsup(&url, sink.port, 40, work.path())
        .args(["send", &id.to_string()])
        .spawn()
        .unwrap();
    wait_for_messages(&sink, 60);
    cluster.restart();
    let (code, stdout, stderr) = finish(child);
    assert_eq!(
        code,
        Some(0),
        "send finishes after the restart\n{stdout}\n{stderr}\n{}",
        cluster.log()
    );
    assert!(stdout.contains("finished"), "{stdout}");
    assert!(
        cluster
            .log()
            .contains("database system is ready to accept connections"),
        "the server restarted"
    );
    let per = per_recipient(&sink.messages());
    assert_eq!(per.len(), 300, "every recipient got the message");
    let twice = per.values().filter(|n| **n > 1).count();
    assert!(twice <= 20, "{twice} sent twice (bound: one batch)");
    let (state, history, sent) = state_and_history(&url, id).await;
    assert_eq!((state.as_str(), sent), ("finished", 300));
    assert!(history.iter().all(|e| !e.contains("paused")), "{history:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_carries_on_through_a_postgresql_restart_and_finishes_without_a_resume() {
    if !sink::available() {
        return;
    }
    let Some((cluster, url, store)) = cluster_db().await else {
        return;
    };
    let id = prepare(&store, 300).await;
    let mut config = Config::default();
    config.database.url = Secret::new(url.clone());
    config.security.token_secret = Secret::new(SECRET);
    config.newsletter.require_approval = false;
    whatsup::send::engine::start(&store, &config, id, &whatsup::domain::Actor::system("test"))
        .await
        .unwrap()
        .unwrap();
    store.close().await;
    let sink = Sink::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let child = whatsup(&url, sink.port, 40, work.path())
        .arg("worker")
        .spawn()
        .unwrap();
    wait_for_messages(&sink, 60);
    cluster.restart();
    wait_for_messages(&sink, 300);
    // The worker records the last outcomes and finishes the campaign.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (state, history, _) = state_and_history(&url, id).await;
        if state == "finished" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the campaign is {state}: {history:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let (code, stdout, stderr) = finish(child);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let per = per_recipient(&sink.messages());
    assert_eq!(per.len(), 300);
    let twice = per.values().filter(|n| **n > 1).count();
    assert!(twice <= 20, "{twice} sent twice (bound: one batch)");
    let (_, history, sent) = state_and_history(&url, id).await;
    assert_eq!(sent, 300);
    assert!(history.iter().all(|e| !e.contains("paused")), "{history:?}");
}

async fn sigterm_stops_send_cleanly_recording_what_went_out(db: TestDb) {
    if !sink::available() {
        return;
    }
    let id = prepare(&db.store, 200).await;
    let sink = Sink::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let child = whatsup(&db.url, sink.port, 20, work.path())
        .args(["send", &id.to_string()])
        .spawn()
        .unwrap();
    wait_for_messages(&sink, 20);
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let (code, stdout, stderr) = finish(child);
    assert_eq!(
        code,
        Some(3),
        "interrupted: not finished\n{stdout}\n{stderr}"
    );
    assert!(stderr.contains("stopping"), "{stderr}");
    assert!(stdout.contains("stopped by a signal"), "{stdout}");
    // Every message that went out is recorded; nothing stays claimed.
    let counts = db.store.delivery_counts(id).await.unwrap();
    let got = sink.messages().len() as i64;
    assert_eq!(counts.sending, 0, "claims were given back");
    assert_eq!(
        counts.sent, got,
        "the outcomes of the messages in flight were recorded"
    );
    assert!(counts.sent < 200);
    // A second run sends the rest, and nobody twice.
    let child = whatsup(&db.url, sink.port, 0, work.path())
        .args(["send", &id.to_string()])
        .spawn()
        .unwrap();
    let (code, stdout, stderr) = finish(child);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let per = per_recipient(&sink.messages());
    assert_eq!(per.len(), 200);
    assert!(
        per.values().all(|n| *n == 1),
        "a recipient got two messages"
    );
}

on_both_backends!(sigterm_stops_send_cleanly_recording_what_went_out);
