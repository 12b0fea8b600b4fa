//! The send gate, through the real binary on both backends: each refusal
//! (create, schedule, start, send, a time in the past), the override and
//! its history, a campaign blocked at start with nothing sent, a scheduled
//! campaign whose template breaks before the worker starts it, and one
//! recipient in 350 whose message cannot be rendered, against a real SMTP
//! server (smtp-sink) that must receive nothing.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::sink::{self, Sink};
use crate::common::TestDb;
use whatsup::domain::CampaignState;

const SECRET: &str = "test-secret-that-is-long-enough-0123456789abcdef";

/// The binary in a temporary directory, on a test database, with a config
/// file that sends to the outbox (or to `smtp_port`).
struct Bin {
    dir: tempfile::TempDir,
    url: String,
}

impl Bin {
    fn new(db: &TestDb) -> Bin {
        let b = Bin {
            dir: tempfile::tempdir().unwrap(),
            url: db.url.clone(),
        };
        b.config("outbox", 25, "");
        b
    }

    /// Writes the config file: `transport`, the SMTP port, and a templates
    /// directory (empty: the built-in templates). Campaigns start without
    /// the two-person approval here (these tests are about the gate; the
    /// API tests check both together).
    fn config(&self, transport: &str, smtp_port: u16, templates_dir: &str) {
        std::fs::write(
            self.path("whatsup.toml"),
            format!(
                "[general]\ndata_dir = \"data\"\n\
                 [security]\ntoken_secret = \"{SECRET}\"\n\
                 [smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\n\
                 [sending]\ntransport = \"{transport}\"\nbounce_address = \"bounces@example.org\"\n\
                 [newsletter]\ntemplates_dir = \"{templates_dir}\"\nrequire_approval = false\n"
            ),
        )
        .unwrap();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_whatsup"))
            .args(["--database", &self.url, "--config"])
            .arg(self.path("whatsup.toml"))
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("WHATSUP_DATABASE_URL")
            .env_remove("WHATSUP_CONFIG")
            .env("USER", "tester")
            .output()
            .expect("run whatsup")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command that must fail with exit code 1; returns its stderr.
    fn refused(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?} should be refused: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    /// Writes an issue file and imports it (a new revision when changed).
    fn issue(&self, text: &str) {
        std::fs::write(self.path("issue.md"), text).unwrap();
        self.ok(&["issues", "import", "issue.md"]);
    }

    /// Messages in the outbox for campaign `id`.
    fn outbox(&self, id: i64) -> usize {
        std::fs::read_dir(self.path(&format!("data/outbox/campaign-{id}")))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    fn state(&self, id: i64) -> String {
        self.json(&["campaigns", "status", &id.to_string(), "--json"])["state"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn deliveries(&self, id: i64) -> i64 {
        let v = self.json(&["campaigns", "status", &id.to_string(), "--json"]);
        ["pending", "sending", "retry", "sent", "failed", "skipped"]
            .iter()
            .map(|k| v["counts"][k].as_i64().unwrap())
            .sum()
    }
}

fn sample() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/issue-214.md"))
        .unwrap()
}

/// The sample with the lanterns' alt text removed (line 64, column 9).
fn without_alt() -> String {
    sample().replacen(
        "alt = \"Paper lanterns glowing on the dark water of the Sumida River\", ",
        "",
        1,
    )
}

fn fixture(b: &Bin) {
    let csv = common::data("csv/fixture.csv").display().to_string();
    b.ok(&["subscribers", "import", &csv]);
}

async fn a_failing_issue_is_refused_at_create_unless_overridden_and_the_override_is_in_the_history(
    db: TestDb,
) {
    let b = Bin::new(&db);
    fixture(&b);
    b.issue(&without_alt());
    let err = b.refused(&["campaigns", "create", "--issue", "214"]);
    assert!(
        err.contains("issue 214 revision 1:64:9: error[image-alt-missing]"),
        "{err}"
    );
    assert!(err.contains("--override-check"), "{err}");
    assert_eq!(
        b.json(&["campaigns", "list", "--json"]),
        serde_json::json!([])
    );
    let err = b.refused(&[
        "campaigns",
        "create",
        "--issue",
        "214",
        "--override-check",
        " ",
    ]);
    assert!(err.contains("give the reason"), "{err}");

    let out = b.ok(&[
        "campaigns",
        "create",
        "--issue",
        "214",
        "--override-check",
        "the photo's description follows in the web version",
    ]);
    assert!(out.contains("failures overridden"), "{out}");
    let show = b.ok(&["campaigns", "show", "1"]);
    assert!(
        show.contains(
            "override   preflight failures of revision 1 overridden by cli:tester: \
             the photo's description follows in the web version"
        ),
        "{show}"
    );
    assert!(
        show.contains("draft -> draft  by cli:tester  preflight overridden for issue revision 1: the photo's description follows in the web version (covers: image-alt-missing issue 214 revision 1:64:9)"),
        "{show}"
    );
    // The override covers revision 1 as it is: sending goes ahead.
    let out = b.ok(&["send", "1"]);
    assert!(out.contains("finished"), "{out}");
    assert_eq!(b.outbox(1), 8);

    // A new revision with the same failure is checked again.
    b.issue(&without_alt().replacen("Tokyo turns", "Tokyo now turns", 1));
    b.ok(&[
        "campaigns",
        "create",
        "--issue",
        "214",
        "--override-check",
        "still no description",
    ]);
    b.issue(&without_alt().replacen("Tokyo turns", "Tokyo soon turns", 1));
    let err = b.refused(&["send", "2"]);
    assert!(
        err.contains("issue 214 revision 3:64:9: error[image-alt-missing]"),
        "{err}"
    );
    assert_eq!(b.state(2), "blocked");
    assert_eq!(b.outbox(2), 0);
    b.ok(&[
        "send",
        "2",
        "--override-check",
        "revision 3 approved by phone",
    ]);
    assert_eq!(b.outbox(2), 8);
    let events = b.json(&["campaigns", "show", "2", "--json"])["events"].clone();
    let reasons: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.iter().any(|r| r.starts_with(
            "preflight overridden for issue revision 3: revision 3 approved by phone"
        )),
        "{reasons:?}"
    );
}

async fn a_time_in_the_past_is_refused_unless_now_is_given(db: TestDb) {
    let b = Bin::new(&db);
    fixture(&b);
    b.issue(&sample());
    b.ok(&["campaigns", "create", "--issue", "214"]);
    let err = b.refused(&["campaigns", "schedule", "1", "--at", "2020-01-01 09:00"]);
    assert!(err.contains("2020-01-01 09:00 JST is in the past"), "{err}");
    assert!(err.contains("--now"), "{err}");
    let err = b.refused(&[
        "campaigns",
        "schedule",
        "1",
        "--local",
        "09:00",
        "--date",
        "2020-01-01",
    ]);
    assert!(err.contains("is in the past"), "{err}");
    assert_eq!(b.state(1), "draft");
    let out = b.ok(&[
        "campaigns",
        "schedule",
        "1",
        "--at",
        "2020-01-01 09:00",
        "--now",
    ]);
    assert!(out.contains("campaign 1 scheduled"), "{out}");
    assert_eq!(b.state(1), "scheduled");
    let out = b.ok(&["campaigns", "schedule", "1", "--at", "2099-01-01 09:00"]);
    assert!(out.contains("2099-01-01 09:00 JST"), "{out}");
}

async fn schedule_start_and_send_refuse_a_failing_revision_and_nothing_is_sent(db: TestDb) {
    let b = Bin::new(&db);
    fixture(&b);
    b.issue(&sample());
    b.ok(&["campaigns", "create", "--issue", "214"]);
    // The editor saves a broken revision after the campaign was created.
    b.issue(
        &sample()
            .replacen(
                "heading = \"Tokyo Friendship Sports Day\"",
                "heading = \"\"",
                1,
            )
            .replacen(
                "https://www.example.org/whatsup/214/cool-spot.jpg",
                "images/cool-spot.jpg",
                1,
            ),
    );
    let err = b.refused(&["campaigns", "schedule", "1", "--at", "2099-01-01 09:00"]);
    assert!(err.contains("issue 214 revision 2:29:"), "{err}");
    assert!(
        err.contains("error[image-src]: images/cool-spot.jpg is a relative path"),
        "{err}"
    );
    assert!(
        err.contains("issue 214 revision 2:70:11: error[heading-empty]"),
        "{err}"
    );
    assert_eq!(b.state(1), "draft");

    let err = b.refused(&["campaigns", "start", "1"]);
    assert!(
        err.contains("campaign 1 is blocked; nothing was sent"),
        "{err}"
    );
    assert!(err.contains("error[heading-empty]"), "{err}");
    let show = b.ok(&["campaigns", "show", "1"]);
    assert!(show.contains("state      blocked:"), "{show}");
    assert!(
        show.contains("error[image-src]"),
        "the reasons are shown: {show}"
    );
    assert!(show.contains("draft -> blocked  by cli:tester"), "{show}");
    assert_eq!(b.deliveries(1), 0, "no recipient was frozen");

    let err = b.refused(&["send", "1"]);
    assert!(err.contains("blocked"), "{err}");
    assert_eq!(b.outbox(1), 0);
    assert_eq!(b.deliveries(1), 0);

    // Fixed: the blocked campaign starts and sends.
    b.issue(&sample());
    let out = b.ok(&["send", "1"]);
    assert!(out.contains("finished"), "{out}");
    assert_eq!(b.outbox(1), 8);
    let show = b.ok(&["campaigns", "show", "1"]);
    assert!(
        show.contains("(revision 3)"),
        "the fixed revision went out: {show}"
    );
}

async fn an_unknown_merge_tag_is_refused_at_import_with_its_line_and_column(db: TestDb) {
    let b = Bin::new(&db);
    let text = sample().replacen(
        "Summers in Tokyo are growing longer",
        "Dear {{ recipient.nmae }}, summers are growing longer",
        1,
    );
    std::fs::write(b.path("issue.md"), &text).unwrap();
    let err = b.refused(&["issues", "import", "issue.md"]);
    assert!(
        err.contains("issue.md:13:9: unknown value `recipient.nmae`: did you mean `recipient.name`? [merge-tag]"),
        "{err}"
    );
    let out = b.run(&["issues", "check", "issue.md"]);
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("issue.md:13:9: error[merge-tag]"),
        "{report}"
    );
    assert!(b
        .json(&["issues", "list", "--json"])
        .as_array()
        .unwrap()
        .is_empty());
}

async fn preview_as_shows_each_contacts_greeting(db: TestDb) {
    let b = Bin::new(&db);
    fixture(&b);
    b.ok(&[
        "subscribers",
        "add",
        "ambassador@se.embassy.example.org",
        "--name",
        "Eva Lind",
        "--title",
        "Ambassador Extraordinary and Plenipotentiary",
        "--salutation",
        "Your Excellency",
    ]);
    b.ok(&[
        "subscribers",
        "add",
        "hanako@jp.example.org",
        "--name",
        "山田 花子",
        "--title",
        "一等書記官",
    ]);
    let err = b.refused(&[
        "subscribers",
        "edit",
        "hanako@jp.example.org",
        "--salutation",
        "Dear\tSir",
    ]);
    assert!(err.contains("--salutation"), "{err}");
    let issue = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("samples/issue-214.md")
        .display()
        .to_string();
    let greeting = |email: &str| {
        let out = b.ok(&[
            "issues",
            "preview",
            &issue,
            "--contact",
            email,
            "--out",
            "preview",
        ]);
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("greeting for {email}: ")))
            .unwrap_or_else(|| panic!("no greeting line: {out}"))
            .to_string()
    };
    assert_eq!(
        greeting("ambassador@se.embassy.example.org"),
        "Your Excellency,"
    );
    assert_eq!(
        greeting("hanako@jp.example.org"),
        "Dear 山田 花子 一等書記官,"
    );
    let show = b.ok(&["subscribers", "show", "ambassador@se.embassy.example.org"]);
    assert!(show.contains("salutation:   Your Excellency"), "{show}");
    let export = b.ok(&[
        "subscribers",
        "export",
        "--segment",
        "email = ambassador@se.embassy.example.org",
    ]);
    assert!(export.contains(",Your Excellency"), "{export}");
}

/// Contacts for the 350-recipient test: one of them in Oslo.
fn three_hundred_and_fifty(dir: &Path) -> PathBuf {
    let mut csv = String::from("email,name,title,organisation,kind,country,city,timezone\n");
    for i in 0..350 {
        let city = if i == 211 { "Oslo" } else { "Tokyo" };
        csv.push_str(&format!(
            "person{i}@org{}.example.org,Person {i},Counsellor,Embassy {},embassy,NO,{city},Asia/Tokyo\n",
            i % 7,
            if i == 211 { 999 } else { i % 7 },
        ));
    }
    let path = dir.join("350.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

async fn a_template_that_fails_for_one_recipient_in_350_blocks_the_campaign_and_nothing_is_sent(
    db: TestDb,
) {
    if !sink::available() {
        return;
    }
    let sink = Sink::start(&[]);
    let b = Bin::new(&db);
    let templates = b.path("templates");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(
        templates.join("greeting.txt"),
        "{% if recipient.city == \"Oslo\" %}Dear {{ recipient.nosuch }},\n{% else %}Dear {{ recipient.addressee }},{% endif %}",
    )
    .unwrap();
    b.config("smtp", sink.port, &templates.display().to_string());
    let csv = three_hundred_and_fifty(b.dir.path());
    b.ok(&["subscribers", "import", &csv.display().to_string()]);
    b.issue(&sample());
    // The preflight's sample contacts never reach that branch.
    b.ok(&["issues", "check", "214"]);
    b.ok(&["campaigns", "create", "--issue", "214"]);
    let err = b.refused(&["send", "1"]);
    assert!(
        err.contains("1 of 350 recipients' messages cannot be rendered; nothing was sent"),
        "{err}"
    );
    assert!(err.contains("greeting.txt:1:"), "the template line: {err}");
    assert!(err.contains("recipient.nosuch"), "{err}");
    assert!(
        err.contains("person211@org1.example.org"),
        "the recipient: {err}"
    );
    assert_eq!(b.state(1), "blocked");
    assert_eq!(b.deliveries(1), 0);
    assert!(sink.messages().is_empty(), "the relay received nothing");
    let show = b.ok(&["campaigns", "show", "1"]);
    assert!(show.contains("person211@org1.example.org"), "{show}");

    // Fixed: everyone gets exactly one message.
    std::fs::remove_file(templates.join("greeting.txt")).unwrap();
    let out = b.ok(&["send", "1"]);
    assert!(out.contains("350 sent"), "{out}");
    assert_eq!(sink.messages().len(), 350);
}

async fn a_scheduled_campaign_whose_template_breaks_before_it_starts_is_blocked_and_sends_nothing(
    db: TestDb,
) {
    let b = Bin::new(&db);
    fixture(&b);
    b.issue(&sample());
    b.ok(&["campaigns", "create", "--issue", "214"]);
    b.ok(&[
        "campaigns",
        "schedule",
        "1",
        "--at",
        "2020-01-01 09:00",
        "--now",
    ]);
    // Before the worker gets to it, a template override drops the
    // unsubscribe link from the text part.
    let templates = b.path("templates");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(
        templates.join("issue.txt"),
        "{{ issue.subject }}\n\n{{ greeting }}\n\n{{ issue.intro_text }}\n",
    )
    .unwrap();
    b.config("outbox", 25, &templates.display().to_string());
    let mut worker = Command::new(env!("CARGO_BIN_EXE_whatsup"))
        .args(["--database", &b.url, "--config"])
        .arg(b.path("whatsup.toml"))
        .arg("worker")
        .current_dir(b.dir.path())
        .env_remove("WHATSUP_DATABASE_URL")
        .env_remove("WHATSUP_CONFIG")
        .env("WHATSUP_SENDING_POLL_SECS", "1")
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let c = loop {
        let c = db.store.campaign_or_err(1).await.unwrap();
        if c.state != CampaignState::Scheduled.as_str() || Instant::now() > deadline {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // SAFETY: signalling our own child by its id.
    unsafe { libc::kill(worker.id() as i32, libc::SIGTERM) };
    assert!(worker.wait().unwrap().success(), "the worker stops cleanly");
    assert_eq!(c.state, "blocked", "{c:?}");
    assert!(
        c.state_reason.contains("error[unsubscribe-missing]"),
        "{}",
        c.state_reason
    );
    assert_eq!(b.deliveries(1), 0);
    assert_eq!(b.outbox(1), 0, "nothing was sent");
    let show = b.ok(&["campaigns", "show", "1"]);
    assert!(show.contains("scheduled -> blocked"), "{show}");
    assert!(
        show.contains("the text part has no unsubscribe link"),
        "{show}"
    );
}

async fn an_image_from_the_media_library_passes_and_goes_out_with_its_full_address(db: TestDb) {
    let b = Bin::new(&db);
    fixture(&b);
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(image::RgbImage::new(40, 30))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    std::fs::write(b.path("photo.png"), png).unwrap();
    let added = b.json(&[
        "media",
        "add",
        "photo.png",
        "--alt",
        "A black rectangle",
        "--json",
    ]);
    let name = format!(
        "{}.{}",
        added["hash"].as_str().unwrap(),
        added["ext"].as_str().unwrap()
    );
    let with =
        |src: &str| sample().replacen("https://www.example.org/whatsup/214/lanterns.jpg", src, 1);
    let missing = format!("/media/{}.png", "0".repeat(64));
    b.issue(&with(&missing));
    let err = b.refused(&["campaigns", "create", "--issue", "214"]);
    assert!(
        err.contains(&format!(
            "error[image-src]: {missing} is not in the media library"
        )),
        "{err}"
    );
    let file = b.path("issue.md").display().to_string();
    let out = b.run(&["issues", "check", &file]);
    assert_eq!(out.status.code(), Some(1), "issues check agrees");
    b.issue(&with(&format!("/media/{name}")));
    b.ok(&["issues", "check", &file]);
    b.ok(&[
        "send",
        &b.ok(&["campaigns", "create", "--issue", "214", "--json"])
            .parse::<serde_json::Value>()
            .unwrap()["id"]
            .to_string(),
    ]);
    let outbox = b.path("data/outbox");
    let campaign = std::fs::read_dir(&outbox)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let eml = std::fs::read_dir(campaign)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let parsed = std::fs::read(eml).unwrap();
    let msg = mail_parser::MessageParser::default()
        .parse(&parsed)
        .unwrap();
    let html = msg.body_html(0).unwrap();
    assert!(
        html.contains(&format!(
            "src=\"https://whatsup.tokyo.example.org/media/{name}\""
        )),
        "the library's address is made absolute"
    );
}

async fn every_seed_contact_is_greeted_by_name_first_with_the_role_after(db: TestDb) {
    for file in ["embassies.csv", "sister-cities.csv"] {
        common::import(&db.store, &common::seed(file), &Default::default()).await;
    }
    let issue = whatsup::compose::Issue::parse("sample", &sample()).unwrap();
    let compiled = whatsup::compose::CompiledIssue::compile(issue, &db.config.newsletter).unwrap();
    let contacts = db.store.list_contacts(None, None, 0).await.unwrap();
    assert!(contacts.len() > 200);
    let mut table = String::new();
    for c in &contacts {
        let r = whatsup::compose::Recipient::from_contact(c, Default::default());
        let g = compiled.greeting(&r).unwrap();
        let expected = if c.org_kind.as_deref() == Some("city") {
            format!(
                "Dear {} and friends in {},",
                c.name,
                c.org_city.as_deref().unwrap()
            )
        } else {
            format!("Dear {}, {},", c.name, c.title)
        };
        assert_eq!(g, expected, "{}", c.email);
        table.push_str(&format!("{}\t{g}\n", c.email));
    }
    common::snapshot("seed-greetings.txt", &table);
}

on_both_backends!(
    an_image_from_the_media_library_passes_and_goes_out_with_its_full_address,
    every_seed_contact_is_greeted_by_name_first_with_the_role_after,
    a_failing_issue_is_refused_at_create_unless_overridden_and_the_override_is_in_the_history,
    a_time_in_the_past_is_refused_unless_now_is_given,
    schedule_start_and_send_refuse_a_failing_revision_and_nothing_is_sent,
    an_unknown_merge_tag_is_refused_at_import_with_its_line_and_column,
    preview_as_shows_each_contacts_greeting,
    a_template_that_fails_for_one_recipient_in_350_blocks_the_campaign_and_nothing_is_sent,
    a_scheduled_campaign_whose_template_breaks_before_it_starts_is_blocked_and_sends_nothing,
);
