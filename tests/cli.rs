//! CLI tests that run the real `whatsup` binary against a real SQLite file:
//! exit codes, human and JSON output, segment errors with a caret, the audit
//! trail, export, organisations, and that secrets never appear in output.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

struct Cli {
    dir: tempfile::TempDir,
}

impl Cli {
    fn new() -> Cli {
        Cli {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let db = format!("sqlite://{}", self.dir.path().join("cli.db").display());
        Command::new(env!("CARGO_BIN_EXE_whatsup"))
            .args(["--database", &db])
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("WHATSUP_DATABASE_URL")
            .env("USER", "tester")
            .output()
            .expect("run whatsup")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let text = self.ok(args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {text}"))
    }
}

fn fixture() -> String {
    common::data("csv/fixture.csv").display().to_string()
}

#[test]
fn migrate_creates_the_database_and_reports_the_schema_version() {
    let cli = Cli::new();
    let out = cli.ok(&["migrate"]);
    assert!(out.contains("schema version 19"), "{out}");
    assert!(cli.dir.path().join("cli.db").exists());
}

#[test]
fn import_prints_a_summary_and_list_shows_status_since_and_reason() {
    let cli = Cli::new();
    let out = cli.ok(&["subscribers", "import", &fixture()]);
    assert!(out.contains("8 rows: 8 created"), "{out}");
    let list = cli.ok(&["subscribers", "list", "--segment", "kind = embassy"]);
    assert!(list.starts_with("EMAIL"), "{list}");
    assert!(list.contains("culture@fr.embassy.example.org"), "{list}");
    assert!(list.contains("3 of 3 contacts"), "{list}");
    let json = cli.json(&["subscribers", "list", "--json", "--limit", "2"]);
    assert_eq!(json.as_array().unwrap().len(), 2);
    assert_eq!(json[0]["email"], "anne.martin@paris.example.com");
}

#[test]
fn an_import_with_bad_rows_exits_3_and_writes_the_reject_file() {
    let cli = Cli::new();
    let rejects = cli.dir.path().join("rejects.csv");
    let out = cli.run(&[
        "subscribers",
        "import",
        &common::data("csv/invalid_emails.csv").display().to_string(),
        "--reject-file",
        &rejects.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "invalid_emails.csv:line 2, column 1 (email): invalid email \"not-an-email\""
        ),
        "{stderr}"
    );
    let rejected = std::fs::read_to_string(&rejects).unwrap();
    assert_eq!(
        rejected.lines().count(),
        6,
        "header and five bad rows: {rejected}"
    );
    let report = cli.run(&[
        "subscribers",
        "import",
        "--json",
        &rejects.display().to_string(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(v["rejected"], 5);
    assert_eq!(v["errors"][0]["field"], "email");
}

#[test]
fn a_bad_segment_fails_with_a_caret_under_the_column() {
    let cli = Cli::new();
    let out = cli.run(&[
        "subscribers",
        "list",
        "--segment",
        "kind = embassy and regoin = Europe",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("column 20"), "{stderr}");
    assert!(stderr.contains("did you mean \"region\""), "{stderr}");
    assert!(stderr.contains(&format!("{}^", " ".repeat(19))), "{stderr}");
}

#[test]
fn set_status_records_who_and_why_and_show_prints_the_history() {
    let cli = Cli::new();
    cli.ok(&["subscribers", "import", &fixture()]);
    let out = cli.ok(&[
        "subscribers",
        "set-status",
        "Press@DE.embassy.example.org",
        "blocklisted",
        "--reason",
        "asked by phone",
    ]);
    assert!(out.contains("active → blocklisted"), "{out}");
    let again = cli.ok(&[
        "subscribers",
        "set-status",
        "press@de.embassy.example.org",
        "blocklisted",
        "--reason",
        "x",
    ]);
    assert!(again.contains("nothing changed"), "{again}");
    let v = cli.json(&[
        "subscribers",
        "show",
        "press@de.embassy.example.org",
        "--json",
    ]);
    assert_eq!(v["status"], "blocklisted");
    assert_eq!(v["history"].as_array().unwrap().len(), 1);
    assert_eq!(v["history"][0]["actor"], "cli:tester");
    assert_eq!(v["history"][0]["reason"], "asked by phone");
    let bad = cli.run(&[
        "subscribers",
        "set-status",
        "press@de.embassy.example.org",
        "gone",
        "--reason",
        "x",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown status \"gone\""));
    let summary = cli.ok(&["subscribers", "summary"]);
    assert!(summary.contains("BLOCKLISTED"), "{summary}");
}

#[test]
fn add_edit_and_remove_work_on_single_contacts() {
    let cli = Cli::new();
    cli.ok(&[
        "orgs",
        "add",
        "--kind",
        "embassy",
        "--name",
        "Embassy of Chile in Japan",
        "--country",
        "cl",
    ]);
    let v = cli.json(&[
        "subscribers",
        "add",
        "Attache@cl.embassy.example.org",
        "--name",
        "Ana Rojas",
        "--org",
        "embassy of chile in japan",
        "--tag",
        "Culture",
        "--attr",
        "desk=arts",
        "--json",
    ]);
    assert_eq!(v["email"], "attache@cl.embassy.example.org");
    assert_eq!(v["organisation"]["country"], "CL");
    assert_eq!(v["tags"][0], "culture");
    let dup = cli.run(&["subscribers", "add", "ATTACHE@cl.embassy.example.org"]);
    assert_eq!(dup.status.code(), Some(1));
    let v = cli.json(&[
        "subscribers",
        "edit",
        "attache@cl.embassy.example.org",
        "--title",
        "Attaché",
        "--remove-tag",
        "culture",
        "--unset-attr",
        "desk",
        "--no-org",
        "--json",
    ]);
    assert_eq!(v["title"], "Attaché");
    assert_eq!(v["tags"].as_array().unwrap().len(), 0);
    assert!(v["organisation"].is_null());
    assert!(v["attributes"].as_object().unwrap().is_empty());
    cli.ok(&["subscribers", "remove", "attache@cl.embassy.example.org"]);
    assert_eq!(
        cli.run(&["subscribers", "show", "attache@cl.embassy.example.org"])
            .status
            .code(),
        Some(1)
    );
    let bad = cli.run(&["subscribers", "add", "not an address"]);
    assert_eq!(bad.status.code(), Some(1));
}

#[test]
fn orgs_can_be_listed_shown_and_edited() {
    let cli = Cli::new();
    cli.ok(&["subscribers", "import", &fixture()]);
    let list = cli.json(&["orgs", "list", "--kind", "city", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 3);
    let shown = cli.ok(&["orgs", "show", "City of Paris"]);
    assert!(shown.contains("relationship: sister since 1982"), "{shown}");
    let edited = cli.json(&[
        "orgs",
        "edit",
        "city of paris",
        "--notes",
        "Sister city since 1982",
        "--json",
    ]);
    assert_eq!(edited["notes"], "Sister city since 1982");
    assert_eq!(edited["contacts"], 1);
    let bad = cli.run(&["orgs", "edit", "City of Paris", "--country", "XX"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("\"XX\" is not an ISO 3166-1"));
}

#[test]
fn export_writes_the_import_format_and_json() {
    let cli = Cli::new();
    cli.ok(&["subscribers", "import", &fixture()]);
    let out = cli.dir.path().join("out.csv");
    cli.ok(&[
        "subscribers",
        "export",
        "--segment",
        "tag = press",
        "--out",
        &out.display().to_string(),
    ]);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.starts_with("email,name,title,organisation,kind,country,city,region,timezone,relationship,since,language,tags,salutation,department\n"), "{text}");
    assert_eq!(text.lines().count(), 5, "{text}");
    let json = cli.json(&[
        "subscribers",
        "export",
        "--format",
        "json",
        "--segment",
        "kind = city",
    ]);
    assert_eq!(json.as_array().unwrap().len(), 3);
}

#[test]
fn config_show_never_prints_secrets() {
    let cli = Cli::new();
    let out = Command::new(env!("CARGO_BIN_EXE_whatsup"))
        .args(["config"])
        .current_dir(cli.dir.path())
        .env("WHATSUP_SMTP_PASSWORD", "hunter2-smtp")
        .env("WHATSUP_BOUNCES_IMAP_PASSWORD", "hunter2-imap")
        .env("WHATSUP_BOUNCES_POP3_PASSWORD", "hunter2-pop3")
        .env("WHATSUP_WEB_METRICS_TOKEN", "hunter2-metrics")
        .env("WHATSUP_WEBHOOKS_POSTMARK_USERNAME", "hook")
        .env("WHATSUP_WEBHOOKS_POSTMARK_PASSWORD", "hunter2-postmark")
        .env(
            "WHATSUP_SECURITY_TOKEN_SECRET",
            "0123456789abcdef0123456789abcdef-secret",
        )
        .env("WHATSUP_DATABASE_URL", "postgres://u:dbpass@localhost/x")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!text.contains("-secret"), "{text}");
    assert!(!text.contains("dbpass"), "{text}");
    assert!(text.contains("[redacted]"), "{text}");
    assert!(text.contains("WHATSUP_SMTP_PASSWORD"), "{text}");
}

#[test]
fn every_command_has_help() {
    let cli = Cli::new();
    for args in [
        vec!["--help"],
        vec!["subscribers", "--help"],
        vec!["subscribers", "import", "--help"],
        vec!["orgs", "edit", "--help"],
        vec!["demo", "--help"],
        vec!["media", "add", "--help"],
    ] {
        let out = cli.ok(&args);
        assert!(out.contains("Usage:"), "{args:?}: {out}");
    }
}

#[test]
fn the_demo_imports_the_seed_previews_the_sample_issue_and_sends_it_to_the_outbox() {
    let cli = Cli::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let seed = root.join("subscribers").display().to_string();
    let issue = root.join("samples/issue-214.md").display().to_string();
    let args = ["demo", "--seed-dir", &seed, "--issue", &issue];
    let out = cli.ok(&args);
    assert!(out.contains("0 rejected"), "{out}");
    assert!(
        out.contains("embassy") && out.contains("Europe") && out.contains("total"),
        "{out}"
    );
    assert!(out.contains("preflight passed"), "{out}");
    let data = cli.dir.path().join("data");
    assert!(data.join("preview/issue-214.html").exists());
    assert!(data.join("preview/issue-214.eml").exists());
    // One .eml per active seed contact (227 contacts, all active).
    let outbox = data.join("outbox/campaign-1");
    let files = std::fs::read_dir(&outbox)
        .unwrap_or_else(|e| panic!("{}: {e}; output: {out}", outbox.display()))
        .filter(|e| {
            e.as_ref()
                .map(|e| e.path().extension().is_some_and(|x| x == "eml"))
                .unwrap_or(false)
        })
        .count();
    assert!(
        out.contains(&format!("campaign 1: {files} sent, 0 failed")),
        "{out}"
    );
    assert!(files > 200, "{files} messages in the outbox");
    let one = std::fs::read_dir(&outbox)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(one).unwrap();
    assert!(text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
    assert!(text.contains("Return-Path: <bounces+"));
    let again = cli.ok(&args);
    assert!(
        again.contains(" 0 created"),
        "a second run changes nothing: {again}"
    );
    assert!(again.contains("already sent"), "{again}");
}

/// Writes `rows` valid rows, each contact tagged, to a CSV in `dir`.
fn big_csv(dir: &Path, rows: usize) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("big.csv");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    writeln!(f, "email,name,organisation,kind,country,tags").unwrap();
    for i in 0..rows {
        writeln!(
            f,
            "p{i}@example.org,Person {i},Mission {},embassy,FR,bulk",
            i % 100
        )
        .unwrap();
    }
    f.flush().unwrap();
    path
}

/// Counts contacts and tag links through a second connection while the
/// import runs (SQLite in WAL mode allows a reader beside the writer).
fn counts(db: &Path) -> (i64, i64) {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(
            "select (select count(*) from contacts) || ' ' || (select count(*) from contact_tags);",
        )
        .output()
        .expect("sqlite3 is needed for this test (apt-get install sqlite3)");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text
        .split_whitespace()
        .map(|n| n.parse::<i64>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// Starts an import of `csv` with batches of 500 rows and `signal`s it once
/// some batches are committed; returns the child's exit status.
fn interrupt_import(cli: &Cli, csv: &Path, signal: i32) -> Output {
    let db = cli.dir.path().join("cli.db");
    cli.ok(&["migrate"]);
    let child = Command::new(env!("CARGO_BIN_EXE_whatsup"))
        .args([
            "--database",
            &format!("sqlite://{}", db.display()),
            "subscribers",
            "import",
        ])
        .arg(csv)
        .env("WHATSUP_IMPORT_BATCH_SIZE", "500")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut waited = 0;
    while counts(&db).0 == 0 && waited < 60_000 {
        std::thread::sleep(std::time::Duration::from_millis(5));
        waited += 5;
    }
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, signal) };
    child.wait_with_output().unwrap()
}

#[test]
fn a_killed_import_leaves_whole_batches_and_running_it_again_completes_it() {
    let cli = Cli::new();
    let csv = big_csv(cli.dir.path(), 100_000);
    let out = interrupt_import(&cli, &csv, libc::SIGKILL);
    let db = cli.dir.path().join("cli.db");
    let (contacts, links) = counts(&db);
    if out.status.success() {
        eprintln!("note: the import finished before the kill arrived; nothing was interrupted");
    }
    assert!(contacts > 0, "some batches were committed before the kill");
    assert_eq!(
        contacts % 500,
        0,
        "only whole batches are committed: {contacts}"
    );
    assert_eq!(
        links, contacts,
        "each committed contact has its tag: no half-written batch"
    );
    let out = cli.ok(&["subscribers", "import", &csv.display().to_string()]);
    assert!(
        out.contains(&format!("{} created", 100_000 - contacts)),
        "{out}"
    );
    assert_eq!(counts(&db), (100_000, 100_000));
}

#[test]
fn ctrl_c_finishes_the_current_batch_and_says_to_run_again() {
    let cli = Cli::new();
    let csv = big_csv(cli.dir.path(), 100_000);
    let out = interrupt_import(&cli, &csv, libc::SIGINT);
    let (contacts, links) = counts(&cli.dir.path().join("cli.db"));
    assert_eq!(contacts % 500, 0, "{contacts}");
    assert_eq!(links, contacts);
    if contacts < 100_000 {
        assert_eq!(out.status.code(), Some(3), "an interrupted import exits 3");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("interrupted: run again to finish"),
            "{stdout}"
        );
        assert!(stdout.contains(&format!("{contacts} created")), "{stdout}");
    } else {
        eprintln!("note: the import finished before Ctrl-C arrived; nothing was interrupted");
    }
}

#[test]
fn bounces_ingest_sets_garbage_aside_and_records_a_bounce_that_list_and_report_show() {
    let cli = Cli::new();
    cli.ok(&["subscribers", "import", &fixture()]);
    // Garbage: set aside in the quarantine, and still exit 0 for the MTA.
    let garbage = cli.dir.path().join("garbage.bin");
    std::fs::write(&garbage, b"   \n\n  ").unwrap();
    let out = cli.run(&["bounces", "ingest", garbage.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("set aside"));
    let quarantine = cli.dir.path().join("data/bounces/quarantine");
    let names: Vec<String> = std::fs::read_dir(&quarantine)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.iter().any(|n| n.ends_with(".error.txt")));
    // A bounce for an address of the fixture, matched by the address only
    // (no VERP, no signed header): recorded, shown, and not acted on.
    let dsn = "From: MAILER-DAEMON@mx.example.net\nTo: bounces@tokyo.example.org\n\
Subject: Undelivered Mail Returned to Sender\nMIME-Version: 1.0\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n\n\
--B\nContent-Type: text/plain\n\nfailed\n\n--B\nContent-Type: message/delivery-status\n\n\
Reporting-MTA: dns; mx.example.net\n\nFinal-Recipient: rfc822; culture@fr.embassy.example.org\n\
Action: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 User unknown\n\n--B--\n";
    let file = cli.dir.path().join("dsn.eml");
    std::fs::write(&file, dsn).unwrap();
    let out = cli.ok(&["bounces", "ingest", file.to_str().unwrap()]);
    assert!(
        out.contains(
            "culture@fr.embassy.example.org hard (user_unknown): recorded (unverified), \
             matched by address (unverified)"
        ),
        "{out}"
    );
    let again = cli.ok(&["bounces", "ingest", file.to_str().unwrap()]);
    assert!(again.contains("already recorded"), "{again}");
    let list = cli.json(&["bounces", "list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["status"], "5.1.1");
    assert_eq!(list[0]["verified"], false);
    let report = cli.json(&["bounces", "report", "--since", "1d", "--json"]);
    assert_eq!(report[0]["email"], "culture@fr.embassy.example.org");
    assert_eq!(report[0]["contact_status"], "active");
    assert_eq!(report[0]["unverified"], 1);
    assert_eq!(report[0]["last_diagnostic"], "550 5.1.1 User unknown");
}

#[test]
fn media_add_stores_an_image_under_its_hash_and_list_shows_it() {
    let cli = Cli::new();
    let photo = cli.dir.path().join("東京 photo.png");
    image::RgbImage::from_fn(1500, 300, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    })
    .save(&photo)
    .unwrap();
    let photo = photo.display().to_string();
    let added = cli.json(&[
        "media",
        "add",
        &photo,
        "--alt",
        "Rikugien garden at night",
        "--json",
    ]);
    let hash = added["hash"].as_str().unwrap();
    assert_eq!(hash.len(), 64);
    assert_eq!(added["width"], 1200);
    assert_eq!(added["height"], 240);
    assert_eq!(added["ext"], "png");
    assert_eq!(added["original_name"], "東京 photo.png");
    assert_eq!(added["uploaded_by"], "cli:tester");
    assert_eq!(
        added["url"],
        format!("https://whatsup.tokyo.example.org/media/{hash}.png")
    );
    assert!(cli
        .dir
        .path()
        .join(format!("data/media/{hash}.png"))
        .exists());
    // The same file again is the same entry.
    let again = cli.json(&["media", "add", &photo, "--alt", "Again", "--json"]);
    assert_eq!(again["id"], added["id"]);
    let list = cli.json(&["media", "list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["alt"], "Rikugien garden at night");
    let table = cli.ok(&["media", "list"]);
    // The table cuts long cells: the hash's start is there.
    assert!(
        table.contains(&hash[..30]) && table.contains("1200×240"),
        "{table}"
    );

    // No alt text: refused by the parser, nothing stored.
    let out = cli.run(&["media", "add", &photo]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--alt"));
    let out = cli.run(&["media", "add", &photo, "--alt", "  "]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("alt text is required"));
    // A corrupt file: exit 1 with the file's name and the reason.
    let broken = cli.dir.path().join("broken.png");
    let bytes = std::fs::read(cli.dir.path().join("東京 photo.png")).unwrap();
    std::fs::write(&broken, &bytes[..bytes.len() / 3]).unwrap();
    let out = cli.run(&["media", "add", &broken.display().to_string(), "--alt", "x"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken.png") && err.contains("could not be read"),
        "{err}"
    );
    assert_eq!(
        cli.json(&["media", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
