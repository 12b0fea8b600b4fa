//! Crash safety of the real binary: `whatsup send` is killed with SIGKILL at
//! pseudo-random moments, run after run, against smtp-sink; a final run
//! completes the campaign. No recipient may be missed, and messages sent
//! twice must stay within the documented bound: at most one claimed batch
//! (`sending.batch_size`) per kill.

use crate::common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::sink::{self, Sink};
use crate::common::TestDb;
use whatsup::import::ImportOptions;

const RECIPIENTS: usize = 1000;
/// Messages per second: slow enough that every run is killed mid-campaign
/// (8 runs of at most ~1 s each send fewer than RECIPIENTS).
const PER_SECOND: u32 = 100;
const BATCH: usize = 20;

async fn prepare(db: &TestDb) -> i64 {
    let mut csv = String::from("email,name,organisation,kind,country\n");
    for i in 0..RECIPIENTS {
        csv.push_str(&format!(
            "crash{i}@example.net,Crash {i},Office {},embassy,DE\n",
            i % 7
        ));
    }
    let (_dir, path) = common::temp_csv(csv);
    common::import(&db.store, &path, &ImportOptions::default()).await;
    common::save_sample_issue(&db.store).await;
    common::draft_campaign(&db.store, "crash test", "").await
}

fn send_command(db: &TestDb, port: u16, id: i64, dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_whatsup"));
    c.args(["send", &id.to_string()])
        .current_dir(dir)
        .env("WHATSUP_DATABASE_URL", &db.url)
        .env("WHATSUP_SMTP_HOST", "127.0.0.1")
        .env("WHATSUP_SMTP_PORT", port.to_string())
        .env("WHATSUP_SENDING_TRANSPORT", "smtp")
        .env("WHATSUP_NEWSLETTER_REQUIRE_APPROVAL", "false")
        .env("WHATSUP_SENDING_BATCH_SIZE", BATCH.to_string())
        .env("WHATSUP_SMTP_PER_SECOND", PER_SECOND.to_string())
        .env("WHATSUP_SENDING_LEASE_SECS", "1")
        .env("WHATSUP_SENDING_BOUNCE_ADDRESS", "bounces@example.org")
        .env(
            "WHATSUP_SECURITY_TOKEN_SECRET",
            "crash-test-secret-0123456789abcdef0123456789",
        )
        .env("WHATSUP_GENERAL_DATA_DIR", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

async fn killing_the_sender_at_random_moments_misses_no_recipient(db: TestDb) {
    if !sink::available() {
        return;
    }
    let sink = Sink::start(&[]);
    let id = prepare(&db).await;
    let work = tempfile::tempdir().unwrap();
    let mut kills = 0usize;
    // Deterministic "random" delays, different in every run.
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    for _ in 0..8 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = 150 + seed % 900;
        let mut child = send_command(&db, sink.port, id, work.path())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        if child.try_wait().unwrap().is_none() {
            // SAFETY: plain kill(2) on our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
            kills += 1;
        }
        let _ = child.wait();
    }
    let out = send_command(&db, sink.port, id, work.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the final run completes: {:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut per: HashMap<String, usize> = HashMap::new();
    for m in sink.messages() {
        *per.entry(m.rcpt_to).or_insert(0) += 1;
    }
    let missed: Vec<String> = (0..RECIPIENTS)
        .map(|i| format!("crash{i}@example.net"))
        .filter(|a| !per.contains_key(a))
        .collect();
    assert_eq!(kills, 8, "every run is killed before the campaign is done");
    assert!(missed.is_empty(), "missed after {kills} kills: {missed:?}");
    let duplicates: usize = per.values().map(|n| n - 1).sum();
    eprintln!(
        "crash test ({}): {kills} kills, {RECIPIENTS} recipients, {duplicates} sent twice (bound {})",
        if db.url.starts_with("postgres") { "PostgreSQL" } else { "SQLite" },
        kills * BATCH
    );
    assert!(
        duplicates <= kills * BATCH,
        "{duplicates} duplicates after {kills} kills"
    );
    let counts = db.store.delivery_counts(id).await.unwrap();
    assert_eq!(counts.sent as usize, RECIPIENTS);
}

on_both_backends!(killing_the_sender_at_random_moments_misses_no_recipient);
