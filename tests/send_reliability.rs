//! Sending under real conditions, without any crash: a relay slower than
//! the lease, a flaky relay that drops connections and answers 421, a relay
//! that stays away, three workers sharing one per-second limit, and three
//! workers racing to start one campaign. Every test runs on SQLite and on
//! PostgreSQL.

use crate::common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::common::sink::{self, per_recipient, Sink};
use crate::common::TestDb;
use whatsup::config::{Config, Secret};
use whatsup::domain::CampaignState;
use whatsup::import::ImportOptions;
use whatsup::send::engine::{self, RunEnd};
use whatsup::send::worker::Worker;
use whatsup::store::campaigns::Schedule;

const SECRET: &str = "reliability-secret-that-is-long-enough-0123456789";

/// Imports `n` contacts `r{i}@example.net`.
async fn contacts(db: &TestDb, n: usize) {
    let mut csv = String::from("email,name,organisation,kind,country\n");
    for i in 0..n {
        csv.push_str(&format!(
            "r{i}@example.net,R {i},Office {},embassy,DE\n",
            i % 5
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
    c.sending.retry_base_secs = 1;
    c.sending.retry_max_secs = 1;
    c.sending.bounce_address = "bounces@example.org".into();
    c.security.token_secret = Secret::new(SECRET);
    c
}

/// A started campaign of the sample issue to every contact.
async fn started(db: &TestDb, config: &Config, n: usize) -> i64 {
    contacts(db, n).await;
    common::save_sample_issue(&db.store).await;
    let id = common::draft_campaign(&db.store, "reliability", "").await;
    engine::start(
        &db.store,
        config,
        id,
        &whatsup::domain::Actor::system("test"),
    )
    .await
    .unwrap()
    .unwrap();
    id
}

async fn send(db: &TestDb, config: &Config, id: i64) -> RunEnd {
    let mut w = Worker::new(db.store.clone(), config.clone()).unwrap();
    w.send_campaign(id, &AtomicBool::new(false), |_| {})
        .await
        .unwrap()
}

async fn a_relay_slower_than_the_lease_sends_each_recipient_exactly_one_message(db: TestDb) {
    if !sink::available() {
        return;
    }
    // One second per message over 8 connections: a batch of 100 takes
    // 12.5 s to drain, longer than the 10 s lease. The heartbeat renews the
    // claims, so no batch is taken over and sent again.
    let sink = Sink::start(&["-w", "1"]);
    let mut config = smtp_config(&db, sink.port);
    config.sending.lease_secs = 10;
    config.sending.batch_size = 100;
    config.smtp.max_connections = 8;
    let id = started(&db, &config, 300).await;
    assert_eq!(send(&db, &config, id).await, RunEnd::Finished);
    let msgs = sink.messages();
    let per = per_recipient(&msgs);
    let twice: Vec<_> = per.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    assert_eq!(msgs.len(), 300, "exactly one message per recipient");
    let rows = db.store.deliveries(id, None, 1000).await.unwrap();
    assert!(rows.iter().all(|r| r.status == "sent" && r.attempts == 1));
}

/// What the flaky server saw: for each recipient, the transactions that
/// reached RCPT, and the messages it accepted.
#[derive(Default)]
struct Flaky {
    rcpts: HashMap<String, usize>,
    accepted: HashMap<String, usize>,
    connections: usize,
    dropped_at_connect: usize,
}

/// A relay that misbehaves by a fixed pseudo-random plan: of the
/// connections, one in ten is closed before the greeting and one in twenty
/// is greeted with 421 and closed (neither is an attempt for any message);
/// of the recipients, one in ten gets `421` and the connection closed,
/// one in twenty has the connection dropped after RCPT (both attempts).
/// Everything else is accepted. No PIPELINING, so each RCPT is seen before
/// the server decides.
async fn flaky_server() -> (u16, Arc<Mutex<Flaky>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Flaky::default()));
    let shared = seen.clone();
    tokio::spawn(async move {
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut roll = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % 100
        };
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let at_connect = roll();
            let rcpt_rolls: Vec<u64> = (0..64).map(|_| roll()).collect();
            let seen = shared.clone();
            seen.lock().unwrap().connections += 1;
            tokio::spawn(async move {
                let (rd, mut wr) = sock.into_split();
                if at_connect < 10 {
                    seen.lock().unwrap().dropped_at_connect += 1;
                    return;
                }
                if at_connect < 15 {
                    let _ = wr.write_all(b"421 4.3.2 not now\r\n").await;
                    return;
                }
                let mut rd = BufReader::new(rd);
                let _ = wr.write_all(b"220 flaky.example.net ESMTP\r\n").await;
                let mut rolls = rcpt_rolls.into_iter();
                let mut rcpt = String::new();
                loop {
                    let mut line = String::new();
                    if rd.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let cmd = line.trim_end().to_string();
                    let verb = cmd
                        .split([' ', ':'])
                        .next()
                        .unwrap_or("")
                        .to_ascii_uppercase();
                    let reply: String = match verb.as_str() {
                        "EHLO" => {
                            "250-flaky.example.net\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n"
                                .into()
                        }
                        "MAIL" | "RSET" | "NOOP" => "250 2.0.0 Ok\r\n".into(),
                        "RCPT" => {
                            let lower = cmd.to_ascii_lowercase();
                            rcpt = lower
                                .split('<')
                                .nth(1)
                                .and_then(|r| r.split('>').next())
                                .unwrap_or("")
                                .to_string();
                            *seen.lock().unwrap().rcpts.entry(rcpt.clone()).or_insert(0) += 1;
                            match rolls.next().unwrap_or(99) {
                                0..=9 => {
                                    let _ = wr.write_all(b"421 4.4.5 too busy, closing\r\n").await;
                                    return;
                                }
                                10..=14 => return,
                                _ => "250 2.1.5 Ok\r\n".into(),
                            }
                        }
                        "DATA" => {
                            if wr.write_all(b"354 go ahead\r\n").await.is_err() {
                                return;
                            }
                            loop {
                                let mut l = Vec::new();
                                if rd.read_until(b'\n', &mut l).await.unwrap_or(0) == 0 {
                                    return;
                                }
                                if l == b".\r\n" {
                                    break;
                                }
                            }
                            *seen
                                .lock()
                                .unwrap()
                                .accepted
                                .entry(rcpt.clone())
                                .or_insert(0) += 1;
                            "250 2.0.0 Ok: queued\r\n".into()
                        }
                        "QUIT" => {
                            let _ = wr.write_all(b"221 2.0.0 Bye\r\n").await;
                            return;
                        }
                        _ => "502 5.5.2 not recognized\r\n".into(),
                    };
                    if wr.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, seen)
}

async fn a_flaky_relay_costs_no_attempt_for_messages_it_never_saw_and_loses_none(db: TestDb) {
    let (port, seen) = flaky_server().await;
    let mut config = smtp_config(&db, port);
    config.sending.batch_size = 40;
    config.smtp.max_connections = 4;
    let id = started(&db, &config, 200).await;
    assert_eq!(send(&db, &config, id).await, RunEnd::Finished);
    let rows = db.store.deliveries(id, None, 1000).await.unwrap();
    let c = db.store.campaign_or_err(id).await.unwrap();
    let seen = seen.lock().unwrap();
    assert!(
        seen.dropped_at_connect > 0,
        "the plan dropped some connections"
    );
    assert_eq!(rows.len(), 200);
    // Nothing lost: every recipient's message accepted, exactly once.
    assert!(rows.iter().all(|r| r.status == "sent"), "all sent");
    for r in &rows {
        assert_eq!(seen.accepted.get(&r.email), Some(&1), "{}", r.email);
        // An attempt is counted only for a transaction the server saw.
        let rcpts = seen.rcpts.get(&r.email).copied().unwrap_or(0);
        assert!(
            r.attempts >= 1 && r.attempts as usize <= rcpts,
            "{}: {} attempts counted, {rcpts} transactions seen",
            r.email,
            r.attempts
        );
    }
    let retried = rows.iter().filter(|r| r.attempts > 1).count();
    assert!(retried > 0, "the 421s and drops were retried");
    assert_eq!(c.state, "finished");
    assert_eq!(c.waiting_since_ms, None);
}

async fn a_relay_outage_longer_than_the_wait_pauses_the_campaign_and_never_finishes_it(db: TestDb) {
    // Nothing listens on this port. One attempt per message would fail
    // every recipient at once if connection failures were attempts; the
    // campaign must wait instead, and pause once the outage is longer than
    // sending.relay_outage_secs (3 s here instead of the default 31 min:
    // the rule is the same).
    let port = sink::free_port();
    let mut config = smtp_config(&db, port);
    config.sending.max_attempts = 1;
    config.sending.relay_outage_secs = 3;
    let id = started(&db, &config, 30).await;
    let began = Instant::now();
    let end = send(&db, &config, id).await;
    assert_eq!(end, RunEnd::NotRunning(CampaignState::Paused));
    assert!(began.elapsed() >= Duration::from_secs(3), "it waited first");
    let c = db.store.campaign_or_err(id).await.unwrap();
    assert_eq!(c.state, "paused");
    assert!(
        c.state_reason.contains("relay") && c.state_reason.contains("127.0.0.1"),
        "{}",
        c.state_reason
    );
    let counts = db.store.delivery_counts(id).await.unwrap();
    assert_eq!((counts.sent, counts.failed, counts.sending), (0, 0, 0));
    assert_eq!(counts.open(), 30, "every recipient still waits");
    let rows = db.store.deliveries(id, None, 100).await.unwrap();
    assert!(rows.iter().all(|r| r.attempts == 0), "no attempt used up");
    let events = db.store.campaign_events(id).await.unwrap();
    assert!(events.iter().all(|e| e.new_state != "finished"));

    // The relay comes back; resuming sends everyone once.
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start_on(port, dir.path(), &[]);
    assert!(db
        .store
        .move_campaign(
            id,
            &[CampaignState::Paused],
            CampaignState::Running,
            &whatsup::domain::Actor::system("test"),
            "resumed"
        )
        .await
        .unwrap());
    assert_eq!(send(&db, &config, id).await, RunEnd::Finished);
    let per = per_recipient(&sink.messages());
    assert_eq!(per.len(), 30);
    assert!(per.values().all(|n| *n == 1));
}

async fn three_workers_share_the_per_second_limit(db: TestDb) {
    if !sink::available() {
        return;
    }
    // 30 messages at 5 per second for all workers together need at least
    // 5 s whatever the machine's load (a lower bound: load only slows the
    // workers down). With a limit per process they would take 2 s.
    let sink = Sink::start(&[]);
    let mut config = smtp_config(&db, sink.port);
    config.smtp.per_second = 5;
    config.sending.batch_size = 4;
    let id = started(&db, &config, 30).await;
    let began = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let (store, config) = (db.store.clone(), config.clone());
        tasks.push(tokio::spawn(async move {
            let mut w = Worker::new(store, config).unwrap();
            w.send_campaign(id, &AtomicBool::new(false), |_| {})
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let took = began.elapsed();
    let per = per_recipient(&sink.messages());
    assert_eq!(per.len(), 30);
    assert!(per.values().all(|n| *n == 1));
    assert!(
        took >= Duration::from_millis(4900),
        "30 messages at 5/s for three workers together took only {took:?}"
    );
}

async fn three_workers_starting_one_campaign_leave_one_history_entry(db: TestDb) {
    contacts(&db, 40).await;
    common::save_sample_issue(&db.store).await;
    let mut config = db.config.clone();
    config.security.token_secret = Secret::new(SECRET);
    config.sending.outbox_dir = db.config.general.data_dir.join("outbox");
    config.sending.poll_secs = 1;
    let id = db
        .store
        .create_campaign(&whatsup::store::campaigns::NewCampaign {
            name: "race",
            issue_number: 214,
            segment: "",
            from_name: "WHAT'S UP Tokyo",
            from_address: "whatsup@example.org",
            reply_to: "",
            transport: "outbox",
            actor: &whatsup::domain::Actor::system("test"),
        })
        .await
        .unwrap();
    let due = chrono::Utc::now().timestamp_millis() - 1000;
    db.store
        .schedule_campaign(
            id,
            &Schedule::At(due),
            &whatsup::domain::Actor::system("test"),
        )
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let (store, config, stop) = (db.store.clone(), config.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut w = Worker::new(store, config).unwrap();
            w.run(&stop).await.unwrap();
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while db.store.campaign_or_err(id).await.unwrap().state != "finished" {
        assert!(Instant::now() < deadline, "the campaign did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let events = db.store.campaign_events(id).await.unwrap();
    let moves: Vec<(String, String)> = events
        .iter()
        .map(|e| (e.old_state.clone().unwrap_or_default(), e.new_state.clone()))
        .collect();
    let count = |from: &str, to: &str| moves.iter().filter(|m| m.0 == from && m.1 == to).count();
    assert_eq!(count("scheduled", "running"), 1, "{moves:?}");
    assert_eq!(count("running", "finished"), 1, "{moves:?}");
    assert_eq!(db.store.delivery_counts(id).await.unwrap().sent, 40);
}

/// Three starts of one campaign at once, straight through the store: one
/// wins, the others find it running; one history entry, one set of
/// deliveries.
async fn concurrent_starts_of_one_campaign_have_one_winner(db: TestDb) {
    contacts(&db, 25).await;
    common::save_sample_issue(&db.store).await;
    let id = common::draft_campaign(&db.store, "race", "").await;
    let mut tasks = Vec::new();
    for i in 0..3 {
        let (store, config) = (db.store.clone(), db.config.clone());
        tasks.push(tokio::spawn(async move {
            engine::start(
                &store,
                &config,
                id,
                &whatsup::domain::Actor::system(&format!("worker{i}")),
            )
            .await
        }));
    }
    let mut winners = 0;
    for t in tasks {
        if let Ok(Some(n)) = t.await.unwrap() {
            assert_eq!(n, 25);
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    let events = db.store.campaign_events(id).await.unwrap();
    assert_eq!(
        events.iter().filter(|e| e.new_state == "running").count(),
        1
    );
    assert_eq!(db.store.delivery_counts(id).await.unwrap().total(), 25);
}

on_both_backends!(
    a_relay_slower_than_the_lease_sends_each_recipient_exactly_one_message,
    a_flaky_relay_costs_no_attempt_for_messages_it_never_saw_and_loses_none,
    a_relay_outage_longer_than_the_wait_pauses_the_campaign_and_never_finishes_it,
    three_workers_share_the_per_second_limit,
    three_workers_starting_one_campaign_leave_one_history_entry,
    concurrent_starts_of_one_campaign_have_one_winner,
);

/// A sent message, as the relay received it, scored by SpamAssassin (the
/// Debian package, local rules only: no network tests) without the
/// ALL_TRUSTED bonus that a message with no untrusted relay gets: at most
/// 0. The preheader is hidden without low-contrast text, which scored
/// +0.7 (HTML_FONT_LOW_CONTRAST).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spamassassin_scores_a_sent_message_at_most_zero_without_the_trusted_bonus() {
    if !sink::available() {
        return;
    }
    let spamassassin = std::process::Command::new("sh")
        .args(["-c", "command -v spamassassin"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !spamassassin {
        common::skip_or_fail("spamassassin (Debian package spamassassin) is not installed");
        return;
    }
    let db = common::sqlite().await;
    let sink = Sink::start(&[]);
    let config = smtp_config(&db, sink.port);
    let id = started(&db, &config, 1).await;
    assert_eq!(send(&db, &config, id).await, RunEnd::Finished);
    let msg = sink.messages().pop().expect("one message");
    // smtp-sink's own X- lines first, then the message as sent.
    let text = msg.text.replace("\r\n", "\n");
    let mut child = std::process::Command::new("spamassassin")
        .args(["-L", "-t", "--cf", "score ALL_TRUSTED 0"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = report
        .lines()
        .find(|l| l.starts_with("X-Spam-Status:"))
        .unwrap_or_else(|| panic!("no X-Spam-Status in:\n{report}"));
    let score: f64 = status
        .split("score=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no score in {status}"));
    assert!(
        !report.contains("HTML_FONT_LOW_CONTRAST"),
        "the preheader reads as hidden low-contrast text:\n{report}"
    );
    assert!(score <= 0.0, "SpamAssassin scores {score}:\n{report}");
}
