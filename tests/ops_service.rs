//! `serve` and `worker` as services, with the real binary: SIGTERM during a
//! send records every message in flight (a restart sends nobody a second
//! message), the stop timeout bounds a stop while the relay hangs, and an
//! old binary refuses a schema that a newer one upgraded, both at start and
//! while it runs.

use crate::common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::sink::{self, Sink};
use crate::common::TestDb;
use whatsup::store::Store;

const SECRET: &str = "service-test-secret-that-is-long-enough-0123";

fn whatsup(db: &TestDb, dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_whatsup"));
    c.current_dir(dir)
        .env("WHATSUP_DATABASE_URL", &db.url)
        .env("WHATSUP_SECURITY_TOKEN_SECRET", SECRET)
        .env("WHATSUP_GENERAL_DATA_DIR", dir)
        .env("WHATSUP_SENDING_POLL_SECS", "1")
        .env("WHATSUP_SENDING_TRANSPORT", "smtp")
        .env("WHATSUP_SENDING_BOUNCE_ADDRESS", "bounces@example.org")
        .env("WHATSUP_SMTP_HOST", "127.0.0.1")
        .env("WHATSUP_WEB_METRICS_BIND", "127.0.0.1:0")
        .env("WHATSUP_ADMIN_BIND", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// A running campaign of `n` recipients.
async fn running_campaign(db: &TestDb, n: usize) -> i64 {
    let mut csv = String::from("email,name,organisation,kind,country\n");
    for i in 0..n {
        csv.push_str(&format!("stop{i}@example.net,Stop {i},Office,embassy,DE\n"));
    }
    common::running_campaign(db, &csv, SECRET).await
}

fn term(child: &Child) {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
}

/// Waits for the child to exit (the test fails after two minutes).
fn wait_exit(child: &mut Child) -> (Option<i32>, String) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                e.read_to_string(&mut err).unwrap();
            }
            return (status.code(), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the process did not exit");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !check() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn sigterm_during_a_send_records_every_message_in_flight_and_a_restart_duplicates_none(
    db: TestDb,
) {
    if !sink::available() {
        return;
    }
    const N: usize = 120;
    // Each DATA answer waits a second: messages are always in flight.
    let sink = Sink::start(&["-w", "1"]);
    let id = running_campaign(&db, N).await;
    let dir = tempfile::tempdir().unwrap();
    let start = |db: &TestDb| {
        whatsup(db, dir.path())
            .arg("worker")
            .env("WHATSUP_SMTP_PORT", sink.port.to_string())
            .env("WHATSUP_SMTP_MAX_CONNECTIONS", "8")
            .env("WHATSUP_SENDING_BATCH_SIZE", "16")
            .spawn()
            .unwrap()
    };
    let mut worker = start(&db);
    wait_until("the first messages", || sink.messages().len() >= 16).await;
    term(&worker);
    let (code, stderr) = wait_exit(&mut worker);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("every message in flight was recorded"),
        "{stderr}"
    );
    let counts = db.store.delivery_counts(id).await.unwrap();
    assert_eq!(counts.sending, 0, "nothing is left claimed: {counts:?}");
    assert_eq!(
        counts.sent as usize,
        sink.messages().len(),
        "every message the relay accepted is recorded as sent"
    );
    assert!(
        (counts.sent as usize) < N,
        "stopped mid-campaign: {counts:?}"
    );

    let mut worker = start(&db);
    let deadline = Instant::now() + Duration::from_secs(120);
    while db.store.campaign_or_err(id).await.unwrap().state != "finished" {
        assert!(Instant::now() < deadline, "the campaign did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    term(&worker);
    let (code, stderr) = wait_exit(&mut worker);
    assert_eq!(code, Some(0), "{stderr}");
    let mut per: HashMap<String, usize> = HashMap::new();
    for m in sink.messages() {
        *per.entry(m.rcpt_to).or_insert(0) += 1;
    }
    assert_eq!(per.len(), N);
    let twice: Vec<_> = per.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent twice: {twice:?}");
}

async fn the_stop_timeout_bounds_a_stop_while_the_relay_hangs(db: TestDb) {
    // A relay that accepts connections and never says a word.
    let hang = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hang.local_addr().unwrap().port();
    let id = running_campaign(&db, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let mut worker = whatsup(&db, dir.path())
        .arg("worker")
        .env("WHATSUP_SMTP_PORT", port.to_string())
        .env("WHATSUP_SMTP_TIMEOUT_SECS", "600")
        .env("WHATSUP_GENERAL_STOP_TIMEOUT_SECS", "2")
        .spawn()
        .unwrap();
    let store = db.store.clone();
    let deadline = Instant::now() + Duration::from_secs(120);
    while store.delivery_counts(id).await.unwrap().sending == 0 {
        assert!(Instant::now() < deadline, "nothing was claimed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    term(&worker);
    let (code, stderr) = wait_exit(&mut worker);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("stop timeout (2 s) reached"), "{stderr}");
    let counts = store.delivery_counts(id).await.unwrap();
    assert!(
        counts.sending > 0,
        "messages in flight stay claimed for their lease: {counts:?}"
    );
    drop(hang);
}

async fn an_old_binary_refuses_a_newer_schema_at_start_and_while_it_runs(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = whatsup(&db, dir.path())
        .args(["serve", "--no-worker", "--bind", "127.0.0.1:0"])
        .spawn()
        .unwrap();
    let first = common::first_line(&mut serve);
    assert!(first.contains("listening on"), "{first}");
    // A newer whatsup, elsewhere, applies a migration this one does not know.
    let sql = "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
               execution_time) VALUES (9999, 'from the future', TRUE, $1, 1)";
    match &db.store {
        Store::Sqlite(p) => sqlx::query(&sql.replace("TRUE", "1"))
            .bind(vec![0u8])
            .execute(p)
            .await
            .map(|_| ())
            .unwrap(),
        Store::Postgres(p) => sqlx::query(sql)
            .bind(vec![0u8])
            .execute(p)
            .await
            .map(|_| ())
            .unwrap(),
    }
    let (code, stderr) = wait_exit(&mut serve);
    assert_eq!(code, Some(78), "{stderr}");
    assert!(stderr.contains("newer than this whatsup"), "{stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");

    for args in [
        &["worker"][..],
        &["serve", "--bind", "127.0.0.1:0"],
        &["migrate"],
    ] {
        let out = whatsup(&db, dir.path()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(78), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("schema version 9999"), "{args:?}: {stderr}");
    }
}

async fn sigterm_stops_serve_after_the_requests_in_flight(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = whatsup(&db, dir.path())
        .args(["serve", "--bind", "127.0.0.1:0"])
        .spawn()
        .unwrap();
    let first = common::first_line(&mut serve);
    let addr: std::net::SocketAddr = first
        .split("http://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    let health = common::http::get(addr, "/healthz").await;
    assert_eq!(health.status, 200);
    term(&serve);
    let (code, stderr) = wait_exit(&mut serve);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("stopping (stop signal)"), "{stderr}");
}

on_both_backends!(
    sigterm_during_a_send_records_every_message_in_flight_and_a_restart_duplicates_none,
    the_stop_timeout_bounds_a_stop_while_the_relay_hangs,
    an_old_binary_refuses_a_newer_schema_at_start_and_while_it_runs,
    sigterm_stops_serve_after_the_requests_in_flight,
);
