//! The mailbox intake (`whatsup bounces poll imap|pop3`) against a real
//! Dovecot on loopback, no mocks: bounces of a really sent campaign are
//! delivered into its Maildir, a pass reads them over IMAP or POP3, and the
//! test checks the contacts in the store and the files in the Maildir
//! (INBOX, Processed, Quarantine). Store failures are real: a trigger makes
//! the database refuse one message's transaction.

use crate::common;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use crate::common::bounces::{config as intake_config, contacts, dsn, send_campaign, status_of};
use crate::common::dovecot::{Dovecot, Tls};
use crate::common::TestDb;
use sha2::{Digest, Sha256};
use whatsup::bounce::intake::Intake;
use whatsup::bounce::mailbox::{Counts, FailureKind, PassReport, Protocol};
use whatsup::config::Config;
use whatsup::store::Store;

/// The intake config of the intake tests, reading this Dovecot, with the
/// outbox and the quarantine in `dir`.
fn mailbox_config(db: &TestDb, dir: &Path, dovecot: &Dovecot) -> Config {
    let mut c = intake_config(db, &dir.join("outbox"));
    c.bounces.imap = dovecot.imap();
    c.bounces.pop3 = dovecot.pop3();
    c.bounces.quarantine_dir = dir.join("quarantine");
    // Most DSNs here are `plain_dsn`s, matched by the failed address alone
    // (unverified): these tests are about the mailbox, not about matching
    // (tests/bounce_intake.rs), so they act on them as a site that opted in
    // would.
    c.bounces.act_on_unverified = true;
    c
}

async fn pass(protocol: Protocol, db: &TestDb, config: &Config) -> PassReport {
    let intake = Intake::from_config(db.store.clone(), config).unwrap();
    protocol
        .pass(&intake, config, &AtomicBool::new(false))
        .await
}

fn counts(ingested: u64, duplicates: u64, quarantined: u64, left: u64) -> Counts {
    Counts {
        ingested,
        duplicates,
        quarantined,
        left,
    }
}

/// A DSN for `rcpt` delivered to the plain bounce address, around a small
/// original message.
fn plain_dsn(rcpt: &str) -> Vec<u8> {
    dsn(
        "bounces@news.example.com",
        rcpt,
        "5.1.1",
        &format!("550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown"),
        format!("To: {rcpt}\r\nSubject: issue 214\r\n\r\nHello\r\n").as_bytes(),
    )
}

/// A DSN whose own Message-ID contains `poison`, which the trigger of
/// [`poison_store`] refuses.
fn poisoned_dsn(rcpt: &str) -> Vec<u8> {
    String::from_utf8(plain_dsn(rcpt))
        .unwrap()
        .replacen("Message-Id: <", "Message-Id: <poison.", 1)
        .into_bytes()
}

/// Makes the database refuse (abort) recording any message whose
/// Message-ID contains `poison`: a store failure for that message only.
async fn poison_store(db: &TestDb) {
    match &db.store {
        Store::Sqlite(p) => {
            sqlx::raw_sql(
                "CREATE TRIGGER poison BEFORE INSERT ON bounce_messages \
                 WHEN NEW.message_id LIKE '%poison%' \
                 BEGIN SELECT RAISE(ABORT, 'injected failure: the disk is full'); END;",
            )
            .execute(p)
            .await
            .unwrap();
        }
        Store::Postgres(p) => {
            sqlx::raw_sql(
                "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF NEW.message_id LIKE '%poison%' THEN \
                 RAISE EXCEPTION 'injected failure: the disk is full'; END IF; \
                 RETURN NEW; END $$; \
                 CREATE TRIGGER poison BEFORE INSERT ON bounce_messages \
                 FOR EACH ROW EXECUTE FUNCTION poison();",
            )
            .execute(p)
            .await
            .unwrap();
        }
    }
}

async fn cure_store(db: &TestDb) {
    match &db.store {
        Store::Sqlite(p) => {
            sqlx::raw_sql("DROP TRIGGER poison;")
                .execute(p)
                .await
                .unwrap();
        }
        Store::Postgres(p) => {
            sqlx::raw_sql("DROP TRIGGER poison ON bounce_messages;")
                .execute(p)
                .await
                .unwrap();
        }
    }
}

/// The SHA-256 of every recorded message.
async fn recorded_hashes(db: &TestDb) -> Vec<String> {
    let sql = "SELECT sha256 FROM bounce_messages ORDER BY sha256";
    match &db.store {
        Store::Sqlite(p) => sqlx::query_scalar(sql).fetch_all(p).await.unwrap(),
        Store::Postgres(p) => sqlx::query_scalar(sql).fetch_all(p).await.unwrap(),
    }
}

fn sha256_hex(raw: &[u8]) -> String {
    Sha256::digest(raw)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The files in the quarantine directory with this extension.
fn quarantined(config: &Config, ext: &str) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(&config.bounces.quarantine_dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(ext))
        .collect();
    files.sort();
    files
}

fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v
}

async fn bounces_of_a_sent_campaign_are_ingested_over_imap_and_moved_to_processed(db: TestDb) {
    let Some(dovecot) = Dovecot::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = mailbox_config(&db, dir.path(), &dovecot);
    contacts(
        &db,
        &["gone@example.org", "closed@example.org", "fine@example.org"],
    )
    .await;
    let (_, sent) = send_campaign(&db, &config).await;
    let mut delivered = Vec::new();
    for (rcpt, status, diagnostic) in [
        ("gone@example.org", "5.1.1", "550 5.1.1 User unknown"),
        ("closed@example.org", "5.2.1", "550 5.2.1 Account disabled"),
    ] {
        let (verp, _, original) = sent.iter().find(|(_, to, _)| to == rcpt).unwrap();
        let bounce = dsn(verp, rcpt, status, diagnostic, original);
        dovecot.deliver(&bounce);
        delivered.push(bounce);
    }

    let report = pass(Protocol::Imap, &db, &config).await;
    assert!(report.failure.is_none(), "{report:?}\n{}", dovecot.log());
    assert_eq!(report.counts, counts(2, 0, 0, 0));
    assert_eq!(status_of(&db, "gone@example.org").await, "bounced");
    // A disabled account is a soft bounce (docs/bounces.md): counted, and
    // the contact stays active until the soft threshold.
    assert_eq!(status_of(&db, "closed@example.org").await, "active");
    assert_eq!(status_of(&db, "fine@example.org").await, "active");
    assert_eq!(dovecot.count("INBOX"), 0);
    assert_eq!(
        sorted(dovecot.messages("Processed")),
        sorted(delivered.clone())
    );
    let events = db
        .store
        .bounces_for_email("gone@example.org")
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].source.as_str(), events[0].matched_by.as_str()),
        ("imap", "verp")
    );

    // The same bounce again (a crash after the commit, before the move, has
    // the same effect): recorded once, and still moved.
    dovecot.deliver(&delivered[0]);
    let report = pass(Protocol::Imap, &db, &config).await;
    assert_eq!(report.counts, counts(0, 1, 0, 0), "{report:?}");
    assert_eq!(dovecot.count("INBOX"), 0);
    assert_eq!(dovecot.count("Processed"), 3);
    assert_eq!(
        db.store
            .bounces_for_email("gone@example.org")
            .await
            .unwrap()
            .len(),
        1
    );

    let report = pass(Protocol::Imap, &db, &config).await;
    assert_eq!(
        report.counts,
        counts(0, 0, 0, 0),
        "an empty inbox: {report:?}"
    );
    assert!(report.failure.is_none());
}

async fn a_store_failure_stops_the_imap_batch_and_leaves_the_rest_in_the_inbox(db: TestDb) {
    let Some(dovecot) = Dovecot::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = mailbox_config(&db, dir.path(), &dovecot);
    contacts(&db, &["a@example.org", "b@example.org", "c@example.org"]).await;
    poison_store(&db).await;
    dovecot.deliver(&plain_dsn("a@example.org"));
    dovecot.deliver(&poisoned_dsn("b@example.org"));
    dovecot.deliver(&plain_dsn("c@example.org"));

    let report = pass(Protocol::Imap, &db, &config).await;
    let failure = report.failure.as_ref().expect("a store failure");
    assert_eq!(failure.kind, FailureKind::Store);
    assert!(
        failure.message.contains("injected failure") && failure.message.contains("uid"),
        "{}",
        failure.message
    );
    assert_eq!(report.counts, counts(1, 0, 0, 2));
    assert_eq!(status_of(&db, "a@example.org").await, "bounced");
    assert_eq!(status_of(&db, "b@example.org").await, "active");
    assert_eq!(status_of(&db, "c@example.org").await, "active");
    assert_eq!(dovecot.count("Processed"), 1);
    assert_eq!(dovecot.count("INBOX"), 2);
    assert!(
        quarantined(&config, ".eml").is_empty(),
        "a store failure is not the message's fault"
    );

    cure_store(&db).await;
    let report = pass(Protocol::Imap, &db, &config).await;
    assert!(report.failure.is_none(), "{report:?}");
    assert_eq!(report.counts, counts(2, 0, 0, 0));
    assert_eq!(status_of(&db, "b@example.org").await, "bounced");
    assert_eq!(status_of(&db, "c@example.org").await, "bounced");
    assert_eq!(dovecot.count("INBOX"), 0);
    assert_eq!(dovecot.count("Processed"), 3);
}

/// Lines that start with dots, which POP3 byte-stuffs on the wire.
const DOTTED: &str = ".leading dot\r\n..two dots\r\n.\r\n. dot space\r\n";

async fn pop3_deletes_only_the_messages_whose_results_are_committed(db: TestDb) {
    let Some(dovecot) = Dovecot::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = mailbox_config(&db, dir.path(), &dovecot);
    contacts(&db, &["a@example.org", "b@example.org", "c@example.org"]).await;
    poison_store(&db).await;
    let first = {
        let mut m = plain_dsn("a@example.org");
        m.truncate(m.len() - b"\r\n--B--\r\n".len());
        m.extend_from_slice(DOTTED.as_bytes());
        m.extend_from_slice(b"\r\n--B--\r\n");
        m
    };
    let garbage = format!("this is not a message and has no header\r\n{DOTTED}").into_bytes();
    let poisoned = poisoned_dsn("b@example.org");
    let last = plain_dsn("c@example.org");
    for m in [&first, &garbage, &poisoned, &last] {
        dovecot.deliver(m);
    }

    let report = pass(Protocol::Pop3, &db, &config).await;
    let failure = report.failure.as_ref().expect("a store failure");
    assert_eq!(failure.kind, FailureKind::Store, "{}", failure.message);
    assert_eq!(report.counts, counts(1, 0, 1, 2));
    // Deleted: the ingested one and the quarantined one; kept: the one the
    // store refused and the one after it.
    assert_eq!(
        sorted(dovecot.messages("INBOX")),
        sorted(vec![poisoned.clone(), last.clone()])
    );
    // Exactly the delivered bytes arrived: dot-unstuffed, nothing lost.
    assert_eq!(recorded_hashes(&db).await, vec![sha256_hex(&first)]);
    let files = quarantined(&config, ".eml");
    assert_eq!(files.len(), 1);
    assert_eq!(std::fs::read(&files[0]).unwrap(), garbage);
    let why = std::fs::read_to_string(&quarantined(&config, ".error.txt")[0]).unwrap();
    assert!(
        why.contains("pop3") && why.contains("not an e-mail message"),
        "{why}"
    );

    cure_store(&db).await;
    let report = pass(Protocol::Pop3, &db, &config).await;
    assert!(report.failure.is_none(), "{report:?}");
    assert_eq!(report.counts, counts(2, 0, 0, 0));
    assert_eq!(dovecot.count("INBOX"), 0);
    assert_eq!(status_of(&db, "b@example.org").await, "bounced");
    assert_eq!(status_of(&db, "c@example.org").await, "bounced");
    let mut want: Vec<String> = [&first, &poisoned, &last]
        .iter()
        .map(|m| sha256_hex(m))
        .collect();
    want.sort();
    assert_eq!(recorded_hashes(&db).await, want);
}

on_both_backends!(
    bounces_of_a_sent_campaign_are_ingested_over_imap_and_moved_to_processed,
    a_store_failure_stops_the_imap_batch_and_leaves_the_rest_in_the_inbox,
    pop3_deletes_only_the_messages_whose_results_are_committed,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_after_delete_the_ingested_messages_are_deleted_and_no_folder_is_made() {
    let Some(dovecot) = Dovecot::start() else {
        return;
    };
    let db = common::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = mailbox_config(&db, dir.path(), &dovecot);
    config.bounces.imap.after = "delete".into();
    config.bounces.imap.quarantine_folder = String::new();
    contacts(&db, &["a@example.org", "b@example.org"]).await;
    dovecot.deliver(&plain_dsn("a@example.org"));
    dovecot.deliver(b"");
    dovecot.deliver(&plain_dsn("b@example.org"));

    let report = pass(Protocol::Imap, &db, &config).await;
    assert!(report.failure.is_none(), "{report:?}");
    assert_eq!(report.counts, counts(2, 0, 1, 0));
    assert_eq!(dovecot.count("INBOX"), 0);
    assert!(!dovecot.has_folder("Processed"));
    assert!(!dovecot.has_folder("Quarantine"));
    assert_eq!(quarantined(&config, ".eml").len(), 1, "the empty message");
    assert_eq!(status_of(&db, "a@example.org").await, "bounced");
    assert_eq!(status_of(&db, "b@example.org").await, "bounced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_messages_are_quarantined_and_the_rest_still_go_in() {
    let Some(dovecot) = Dovecot::start() else {
        return;
    };
    let db = common::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = mailbox_config(&db, dir.path(), &dovecot);
    config.bounces.max_message_bytes = 64 * 1024;
    // Small batches, so a batch boundary falls among the bad ones.
    config.bounces.imap.batch_size = 4;
    contacts(&db, &["after.garbage@example.org", "n.okafor@example.com"]).await;

    let empty: &[u8] = b"";
    let binary: &[u8] = b"\x00\x01\x02\x03\xff\xfe not a message at all \x00";
    let oversized = {
        let mut m = plain_dsn("big@example.org");
        m.extend(std::iter::repeat_n(b'x', 200 * 1024));
        m
    };
    let wrong_charset = b"From: MAILER-DAEMON@mx.example.net\r\nTo: bounces@news.example.com\r\n\
Subject: Undeliverable\r\nContent-Type: text/plain; charset=\"x-klingon-9\"\r\n\
Content-Transfer-Encoding: 8bit\r\n\r\n<charset@example.org>: 550 5.1.1 user unknown \xff\xfe\x80\r\n"
        .to_vec();
    let base64_garbage = b"From: MAILER-DAEMON@mx.example.net\r\nTo: bounces@news.example.com\r\n\
Subject: Undelivered Mail\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"G\"\r\n\r\n\
--G\r\nContent-Type: message/delivery-status\r\nContent-Transfer-Encoding: base64\r\n\r\n\
!!!!@@@@ this is not base64 #### ====\r\n--G--\r\n"
        .to_vec();
    let mut messages = vec![
        empty.to_vec(),
        binary.to_vec(),
        oversized.clone(),
        wrong_charset,
        base64_garbage,
        plain_dsn("after.garbage@example.org"),
    ];
    // The classifier's corpus: malformed MIME, nested (forwarded) bounces,
    // ISO-2022-JP auto-replies, UTF-8 DSNs, text bounces of many MTAs.
    let corpus = common::data("bounces");
    let mut names: Vec<_> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    names.sort();
    assert!(names.len() > 30, "{names:?}");
    for p in &names {
        messages.push(std::fs::read(p).unwrap());
    }
    for m in &messages {
        dovecot.deliver(m);
    }

    let report = pass(Protocol::Imap, &db, &config).await;
    assert!(report.failure.is_none(), "{report:?}");
    let readable = messages.len() as u64 - 3;
    assert_eq!(report.counts, counts(readable, 0, 3, 0), "{report:?}");
    assert_eq!(dovecot.count("INBOX"), 0);
    assert_eq!(dovecot.count("Quarantine"), 3);
    assert_eq!(dovecot.count("Processed") as u64, readable);
    // Set aside with the reason and where it came from; of the oversized
    // one, only its first max_message_bytes were fetched and kept.
    let errors: Vec<String> = quarantined(&config, ".error.txt")
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert_eq!(errors.len(), 3);
    assert!(errors
        .iter()
        .all(|e| e.contains("imap ") && e.contains(" uid ")));
    assert!(errors.iter().any(|e| e.contains("the input is empty")));
    assert!(errors.iter().any(|e| e.contains("not an e-mail message")));
    assert!(errors
        .iter()
        .any(|e| e.contains(&format!("{} bytes", oversized.len()))));
    let kept: Vec<Vec<u8>> = quarantined(&config, ".eml")
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert!(kept.contains(&oversized[..64 * 1024].to_vec()));
    // The good ones after the garbage went in, the nested bounce included.
    assert_eq!(status_of(&db, "after.garbage@example.org").await, "bounced");
    assert_eq!(status_of(&db, "n.okafor@example.com").await, "bounced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_and_pop3_work_over_tls_and_starttls_and_check_the_certificate() {
    let certs = tempfile::tempdir().unwrap();
    if common::make_certificates(certs.path()).is_none() {
        common::skip_or_fail("openssl could not make test certificates");
        return;
    }
    let Some(dovecot) = Dovecot::start_tls(Tls {
        cert: &certs.path().join("server.pem"),
        key: &certs.path().join("server.key"),
    }) else {
        return;
    };
    let db = common::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let base = mailbox_config(&db, dir.path(), &dovecot);
    contacts(
        &db,
        &[
            "imaps@example.org",
            "imap.starttls@example.org",
            "pop3s@example.org",
            "pop3.stls@example.org",
        ],
    )
    .await;
    let ca = certs.path().join("ca.pem");
    let cases = [
        (
            Protocol::Imap,
            "tls",
            dovecot.imaps_port,
            "imaps@example.org",
        ),
        (
            Protocol::Imap,
            "starttls",
            dovecot.imap_port,
            "imap.starttls@example.org",
        ),
        (
            Protocol::Pop3,
            "tls",
            dovecot.pop3s_port,
            "pop3s@example.org",
        ),
        (
            Protocol::Pop3,
            "starttls",
            dovecot.pop3_port,
            "pop3.stls@example.org",
        ),
    ];
    for (protocol, tls, port, rcpt) in cases {
        let mut config = base.clone();
        for (t, p, c) in [
            (
                &mut config.bounces.imap.tls,
                &mut config.bounces.imap.port,
                &mut config.bounces.imap.ca_file,
            ),
            (
                &mut config.bounces.pop3.tls,
                &mut config.bounces.pop3.port,
                &mut config.bounces.pop3.ca_file,
            ),
        ] {
            *t = tls.into();
            *p = port;
            *c = ca.clone();
        }
        for host in ["localhost", "127.0.0.1"] {
            config.bounces.imap.host = host.into();
            config.bounces.pop3.host = host.into();
            // The certificate is checked: without the private CA, no login.
            let mut untrusting = config.clone();
            untrusting.bounces.imap.ca_file = Default::default();
            untrusting.bounces.pop3.ca_file = Default::default();
            dovecot.deliver(&plain_dsn(rcpt));
            let report = pass(protocol, &db, &untrusting).await;
            let failure = report.failure.expect("an untrusted certificate");
            assert_eq!(failure.kind, FailureKind::Mailbox);
            assert!(
                failure.message.contains("TLS handshake")
                    && failure.message.contains("certificate"),
                "{protocol:?} {tls} {host}: {}",
                failure.message
            );
            assert_eq!(dovecot.count("INBOX"), 1);

            let report = pass(protocol, &db, &config).await;
            assert!(
                report.failure.is_none(),
                "{protocol:?} {tls} {host}: {report:?}\n{}",
                dovecot.log()
            );
            assert_eq!(report.counts.ingested + report.counts.duplicates, 1);
            assert_eq!(dovecot.count("INBOX"), 0);
        }
        assert_eq!(status_of(&db, rcpt).await, "bounced", "{protocol:?} {tls}");
    }
}

/// `whatsup bounces poll imap --once --json`, then the polling loop stopped
/// with SIGTERM, through the real binary and a config file.
#[test]
fn the_poll_command_reports_its_counts_and_the_loop_stops_on_sigterm() {
    let Some(dovecot) = Dovecot::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("whatsup.toml");
    std::fs::write(
        &config_path,
        format!(
            "[general]\ndata_dir = {data:?}\n\
             [bounces]\nquarantine_dir = {q:?}\n\
             [bounces.imap]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
             username = {user:?}\npoll_secs = 1\n",
            data = dir.path().join("data").display().to_string(),
            q = dir.path().join("quarantine").display().to_string(),
            port = dovecot.imap_port,
            user = common::dovecot::USER,
        ),
    )
    .unwrap();
    let whatsup = || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_whatsup"));
        c.arg("--config")
            .arg(&config_path)
            .env_remove("WHATSUP_DATABASE_URL")
            .env("WHATSUP_BOUNCES_IMAP_PASSWORD", common::dovecot::PASSWORD);
        c
    };
    dovecot.deliver(&plain_dsn("someone@example.org"));
    dovecot.deliver(b"");
    let out = whatsup()
        .args(["bounces", "poll", "imap", "--once", "--json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["protocol"], "imap");
    assert_eq!(
        (
            &report["ingested"],
            &report["quarantined"],
            &report["left"],
            &report["failure"]
        ),
        (
            &serde_json::json!(1),
            &serde_json::json!(1),
            &serde_json::json!(0),
            &serde_json::Value::Null
        )
    );

    // The loop: a message delivered while it runs is read by a later pass,
    // and SIGTERM ends it cleanly.
    let child = whatsup()
        .args(["bounces", "poll", "imap"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    dovecot.deliver(&plain_dsn("later@example.org"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while dovecot.count("INBOX") > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(dovecot.count("INBOX"), 0, "the loop did not read it");
    // SAFETY: signalling the child this test started, by its pid.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("imap: 1 ingested, 0 duplicates, 0 quarantined, 0 left for retry"),
        "{stdout}"
    );
    assert_eq!(dovecot.count("Processed"), 2);
}
