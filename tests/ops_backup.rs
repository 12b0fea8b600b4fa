//! `whatsup backup` and `whatsup restore` with the real binary: SQLite
//! copies made while a worker sends a campaign through smtp-sink (nothing
//! lost, every copy opens), restores that check before they replace, and
//! PostgreSQL's pg_dump and pg_restore.

use crate::common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::sink::{self, Sink};
use whatsup::config::Config;
use whatsup::import::ImportOptions;
use whatsup::send::engine;
use whatsup::store::Store;

const SECRET: &str = "backup-test-secret-that-is-long-enough-012345";

fn whatsup(url: &str, dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_whatsup"));
    c.args(["--database", url])
        .current_dir(dir)
        .env_remove("WHATSUP_DATABASE_URL")
        .env("WHATSUP_SECURITY_TOKEN_SECRET", SECRET)
        .env("WHATSUP_GENERAL_DATA_DIR", dir);
    c
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn contacts(store: &Store, n: usize) {
    let mut csv = String::from("email,name,organisation,kind,country\n");
    for i in 0..n {
        csv.push_str(&format!(
            "backup{i}@example.net,Backup {i},Office {},embassy,DE\n",
            i % 5
        ));
    }
    let (_dir, path) = common::temp_csv(csv);
    common::import(store, &path, &ImportOptions::default()).await;
}

/// A worker process sending through `port`.
fn start_worker(url: &str, dir: &Path, port: u16) -> Child {
    whatsup(url, dir)
        .arg("worker")
        .env("WHATSUP_SMTP_HOST", "127.0.0.1")
        .env("WHATSUP_SMTP_PORT", port.to_string())
        .env("WHATSUP_SMTP_PER_SECOND", "40")
        .env("WHATSUP_SENDING_TRANSPORT", "smtp")
        .env("WHATSUP_SENDING_BATCH_SIZE", "20")
        .env("WHATSUP_SENDING_POLL_SECS", "1")
        .env("WHATSUP_SENDING_BOUNCE_ADDRESS", "bounces@example.org")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start whatsup worker")
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sha(path: &Path) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

async fn open_copy(path: &Path) -> Store {
    Store::connect(&format!("sqlite://{}", path.display()), &Config::default())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_taken_while_a_campaign_sends_open_and_one_restores_with_nothing_lost() {
    if !sink::available() {
        return;
    }
    const N: usize = 240;
    let db = common::sqlite().await;
    let sink = Sink::start(&[]);
    let dir = db.config.general.data_dir.clone();
    contacts(&db.store, N).await;
    common::save_sample_issue(&db.store).await;
    let id = common::draft_campaign(&db.store, "backup test", "").await;
    let mut start_config = db.config.clone();
    start_config.security.token_secret = whatsup::config::Secret::new(SECRET);
    engine::start(
        &db.store,
        &start_config,
        id,
        &whatsup::domain::Actor::system("test"),
    )
    .await
    .unwrap()
    .unwrap();
    let mut worker = start_worker(&db.url, &dir, sink.port);

    let mut backups = Vec::new();
    for (i, after) in [40usize, 120, 200].into_iter().enumerate() {
        wait_for("messages to go out", || sink.messages().len() >= after);
        let out = dir.join(format!("copy{i}.db"));
        let json = ok(
            whatsup(&db.url, &dir)
                .args(["backup", "--out", out.to_str().unwrap(), "--json"])
                .output()
                .unwrap(),
            "backup",
        );
        let report: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(report["integrity"], "ok", "{report}");
        let sent_by_then = sink.messages().len() as i64;
        let copy = open_copy(&out).await;
        assert_eq!(copy.count_contacts(None).await.unwrap(), N as i64);
        let counts = copy.delivery_counts(id).await.unwrap();
        assert_eq!(counts.total(), N as i64, "every recipient is in the copy");
        assert!(counts.sent <= sent_by_then, "{counts:?} vs {sent_by_then}");
        copy.close().await;
        backups.push((out, counts));
    }
    wait_for("every message to go out", || sink.messages().len() >= N);
    // The outcomes of the last messages are recorded shortly after they go.
    let deadline = Instant::now() + Duration::from_secs(60);
    while db.store.campaign_or_err(id).await.unwrap().state != "finished" {
        assert!(Instant::now() < deadline, "the campaign did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(worker.id() as i32, libc::SIGTERM) };
    let status = worker.wait().unwrap();
    assert!(status.success(), "the worker stops cleanly: {status:?}");
    let mut per: HashMap<String, usize> = HashMap::new();
    for m in sink.messages() {
        *per.entry(m.rcpt_to).or_insert(0) += 1;
    }
    assert_eq!(per.len(), N, "backups took nothing away from the send");
    assert!(per.values().all(|n| *n == 1), "nobody got two messages");

    // While this process has the database open, a restore refuses.
    let (copy, at_backup) = &backups[1];
    let live = dir.join("whatsup.db");
    let before = sha(&live);
    let refused = whatsup(&db.url, &dir)
        .args(["restore", copy.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("open in another process"), "{stderr}");
    assert_eq!(sha(&live), before, "a refused restore changes nothing");

    db.store.close().await;
    let out = ok(
        whatsup(&db.url, &dir)
            .args(["restore", copy.to_str().unwrap()])
            .output()
            .unwrap(),
        "restore",
    );
    assert!(out.contains("integrity ok"), "{out}");
    assert!(out.contains("kept as"), "{out}");
    assert!(out.contains(&format!("campaigns [{id}]")), "{out}");
    let restored = open_copy(&live).await;
    assert_eq!(restored.delivery_counts(id).await.unwrap(), *at_backup);
    assert_eq!(restored.campaign_or_err(id).await.unwrap().state, "running");
    restored.close().await;
    let kept = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("whatsup.db.before-restore-"))
        .expect("the replaced database is kept");
    let previous = open_copy(&kept).await;
    let c = previous.campaign_or_err(id).await.unwrap();
    assert_eq!(c.state, "finished", "the kept database holds every outcome");
    assert_eq!(previous.delivery_counts(id).await.unwrap().sent, N as i64);
    previous.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_refuses_a_damaged_a_foreign_or_a_newer_copy_and_changes_nothing() {
    let db = common::sqlite().await;
    let dir = db.config.general.data_dir.clone();
    contacts(&db.store, 2000).await;
    let good = dir.join("good.db");
    ok(
        whatsup(&db.url, &dir)
            .args(["backup", "--out", good.to_str().unwrap()])
            .output()
            .unwrap(),
        "backup",
    );
    let again = whatsup(&db.url, &dir)
        .args(["backup", "--out", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(1),
        "an existing file is not overwritten"
    );
    db.store.close().await;
    let live = dir.join("whatsup.db");
    let before = sha(&live);

    // Damaged: garbage over the b-tree headers of every page after the
    // first two (the page size is at byte 16 of the file header).
    let damaged = dir.join("damaged.db");
    let mut bytes = std::fs::read(&good).unwrap();
    let page = usize::from(u16::from_be_bytes([bytes[16], bytes[17]]));
    for start in (2 * page..bytes.len()).step_by(page) {
        for b in &mut bytes[start..start + 64] {
            *b = 0x5a;
        }
    }
    std::fs::write(&damaged, bytes).unwrap();
    // Foreign: not a database at all.
    let foreign = dir.join("notes.txt");
    std::fs::write(
        &foreign,
        "these are not the rows you are looking for\n".repeat(20),
    )
    .unwrap();
    // Newer: a migration this binary does not know.
    let newer = dir.join("newer.db");
    std::fs::copy(&good, &newer).unwrap();
    let store = open_copy(&newer).await;
    if let Store::Sqlite(p) = &store {
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, installed_on, success, \
             checksum, execution_time) VALUES (9999, 'from the future', CURRENT_TIMESTAMP, 1, x'00', 1)",
        )
        .execute(p)
        .await
        .unwrap();
    }
    store.close().await;

    for (file, expect) in [
        (&damaged, "malformed"),
        (&foreign, "not an SQLite database"),
        (&newer, "newer than this whatsup"),
    ] {
        let out = whatsup(&db.url, &dir)
            .args(["restore", file.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{}: {stderr}", file.display());
        assert!(stderr.contains(expect), "{}: {stderr}", file.display());
        assert!(stderr.contains("nothing was changed"), "{stderr}");
        assert_eq!(
            sha(&live),
            before,
            "{}: the database is untouched",
            file.display()
        );
    }
    ok(
        whatsup(&db.url, &dir)
            .args(["restore", good.to_str().unwrap()])
            .output()
            .unwrap(),
        "restore of the good copy",
    );
}

/// An empty PostgreSQL database (not migrated), named like the others.
async fn empty_postgres() -> Option<String> {
    let db = common::postgres().await?;
    let base = db.url.clone();
    let name = format!("{}_empty", base.rsplit('/').next().unwrap());
    if let Store::Postgres(p) = &db.store {
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(p)
            .await
            .unwrap();
    }
    db.store.close().await;
    Some(format!("{}/{name}", &base[..base.rfind('/').unwrap()]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_backups_go_through_pg_dump_and_restore_through_pg_restore() {
    let Some(db) = common::postgres().await else {
        return;
    };
    let Some(empty) = empty_postgres().await else {
        return;
    };
    contacts(&db.store, 500).await;
    let work = tempfile::tempdir().unwrap();
    let dump = work.path().join("whatsup.pgdump");
    let printed = ok(
        whatsup(&db.url, work.path())
            .args(["backup", "--out", dump.to_str().unwrap()])
            .output()
            .unwrap(),
        "backup (print)",
    );
    assert!(printed.starts_with("pg_dump --format=custom"), "{printed}");
    assert!(
        !printed.contains(":whatsup_test@"),
        "no password: {printed}"
    );
    assert!(!dump.exists(), "printing runs nothing");
    let ran = ok(
        whatsup(&db.url, work.path())
            .args(["backup", "--out", dump.to_str().unwrap(), "--run"])
            .output()
            .unwrap(),
        "backup --run",
    );
    assert!(ran.contains("checked with pg_restore --list"), "{ran}");
    let restored = ok(
        whatsup(&empty, work.path())
            .args(["restore", dump.to_str().unwrap(), "--run"])
            .output()
            .unwrap(),
        "restore --run",
    );
    assert!(restored.contains("schema version"), "{restored}");
    let copy = Store::connect(&empty, &Config::default()).await.unwrap();
    assert_eq!(copy.count_contacts(None).await.unwrap(), 500);
    assert_eq!(
        copy.schema_version().await.unwrap(),
        db.store.schema_version().await.unwrap()
    );
    copy.close().await;
    // Into a database that is not empty, nothing is restored.
    let again = whatsup(&empty, work.path())
        .args(["restore", dump.to_str().unwrap(), "--run"])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
}
