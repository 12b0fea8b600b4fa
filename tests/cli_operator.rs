//! What an operator sees, through the real binary: times in the office's
//! zone, the schedule echo and per-zone timeline, `send` waiting, the
//! worker's log lines as JSON, one segment error format, Unicode words,
//! unknown-variable warnings, completions and man pages, help for every
//! argument, and tables aligned by display width.

use std::time::Duration;

use clap::CommandFactory as _;
use unicode_width::UnicodeWidthStr;

use crate::common;
use crate::common::cli::{repo, Cli, Running, TOKEN_SECRET};

/// A hang guard for reading a running command's output (not a timing
/// assertion: a loaded machine only makes the test slower).
const PATIENCE: Duration = Duration::from_secs(120);

fn seed(cli: &Cli) {
    let cities = repo("subscribers/sister-cities.csv");
    cli.ok(&["subscribers", "import", cities.to_str().unwrap()]);
}

fn sample_issue(cli: &Cli) {
    let sample = repo("samples/issue-214.md");
    cli.ok(&["issues", "import", sample.to_str().unwrap()]);
}

/// The seed contacts and issue 214, with campaign 1 a draft of it to
/// `segment` (`more`: further `create` flags); returns the scratch
/// directory and what `create` printed.
fn draft(segment: &str, more: &[&str]) -> (Cli, String) {
    let cli = Cli::new();
    seed(&cli);
    sample_issue(&cli);
    let args = [
        &[
            "campaigns",
            "create",
            "--issue",
            "214",
            "--segment",
            segment,
        ][..],
        more,
    ]
    .concat();
    let created = cli.ok(&args);
    (cli, created)
}

/// Campaign 1, a draft to the sister cities (18 contacts in 12 zones).
fn sister_cities_draft() -> Cli {
    draft("tag = sister-cities", &[]).0
}

/// `campaigns schedule 1` at 09:00 local time on 2030-12-02.
const LOCAL_0900: [&str; 7] = [
    "campaigns",
    "schedule",
    "1",
    "--local",
    "09:00",
    "--date",
    "2030-12-02",
];

/// `campaigns schedule 1` at a time already past (`--now`): the worker
/// starts it at once.
const DUE_NOW: [&str; 6] = [
    "campaigns",
    "schedule",
    "1",
    "--at",
    "2020-01-01 09:00",
    "--now",
];

/// Campaign 1, to the sister cities at 09:00 local time on 2030-12-02.
fn local_time_campaign() -> Cli {
    let cli = sister_cities_draft();
    cli.ok(&LOCAL_0900);
    cli
}

const JAPANESE: &str = "email,name,title,organisation,kind,country,city,region,timezone,tags\n\
    yamada@ch.embassy.example.org,山田 太郎,参事官,スイス大使館,embassy,CH,Tokyo,Europe,Asia/Tokyo,embassies\n\
    jose.garcia@mx.embassy.example.org,José García,Consejero,Embajada de México,embassy,MX,Tokyo,Americas,Asia/Tokyo,embassies\n\
    anne.martin@paris.example.com,Anne Martin,Head of International Relations,City of Paris,city,FR,Paris,Europe,Europe/Paris,sister-cities\n";

fn japanese(cli: &Cli) {
    let path = cli.path().join("jp.csv");
    std::fs::write(&path, JAPANESE).unwrap();
    cli.ok(&["subscribers", "import", path.to_str().unwrap()]);
}

#[test]
fn every_command_and_argument_has_help_text() {
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        if cmd.get_about().is_none() && cmd.get_long_about().is_none() {
            missing.push(format!("{path}: the command"));
        }
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if arg.is_hide_set() || id == "help" || id == "version" {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("{path}: {id}"));
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }
    let mut cmd = whatsup::cli::Cli::command();
    cmd.build();
    let mut missing = Vec::new();
    walk(&cmd, "whatsup", &mut missing);
    assert!(
        missing.is_empty(),
        "arguments without help text:\n{}",
        missing.join("\n")
    );
    // And --help shows it.
    let cli = Cli::new();
    let help = cli.ok(&["campaigns", "show", "--help"]);
    assert!(help.contains("Campaign id"), "{help}");
    assert!(help.contains("Print it as JSON"), "{help}");
}

#[test]
fn every_command_shows_times_in_the_office_zone_with_its_name() {
    let cli = Cli::new();
    japanese(&cli);
    sample_issue(&cli);
    cli.ok(&["campaigns", "create", "--issue", "214"]);
    cli.ok(&["campaigns", "schedule", "1", "--at", "2030-12-01 09:00"]);
    let bounce = common::bounces::dsn(
        "bounces@tokyo.example.org",
        "yamada@ch.embassy.example.org",
        "5.1.1",
        "550 5.1.1 user unknown",
        b"Subject: x\r\n\r\nx\r\n",
    );
    let eml = cli.path().join("bounce.eml");
    std::fs::write(&eml, bounce).unwrap();
    cli.ok(&["bounces", "ingest", eml.to_str().unwrap()]);

    for args in [
        &["issues", "list"][..],
        &["issues", "show", "214"],
        &["subscribers", "show", "yamada@ch.embassy.example.org"],
        &["campaigns", "list"],
        &["campaigns", "show", "1"],
        &["bounces", "list"],
        &["bounces", "show", "yamada@ch.embassy.example.org"],
        &["bounces", "report"],
    ] {
        let out = cli.ok(args);
        assert!(
            has_time_in(&out, "JST"),
            "{args:?} shows no JST time:\n{out}"
        );
        assert!(!has_time_in(&out, "UTC"), "{args:?} shows UTC:\n{out}");
        let utc = cli.ok(&[&["--utc"][..], args].concat());
        assert!(
            has_time_in(&utc, "UTC"),
            "{args:?} --utc shows no UTC time:\n{utc}"
        );
        assert!(
            !has_time_in(&utc, "JST"),
            "{args:?} --utc shows JST:\n{utc}"
        );
    }
    let list = cli.ok(&["subscribers", "list"]);
    assert!(list.contains("SINCE (Asia/Tokyo)"), "{list}");
    // The schedule is 09:00 in Tokyo, 00:00 UTC.
    let show = cli.ok(&["campaigns", "show", "1"]);
    assert!(show.contains("2030-12-01 09:00 JST"), "{show}");
    let utc = cli.ok(&["--utc", "campaigns", "show", "1"]);
    assert!(utc.contains("2030-12-01 00:00 UTC"), "{utc}");
    assert!(!utc.contains("JST"), "{utc}");
    let out = cli.run_env(
        &["campaigns", "show", "1"],
        &[("WHATSUP_GENERAL_TIMEZONE", "Europe/Paris")],
    );
    let paris = String::from_utf8_lossy(&out.stdout);
    assert!(paris.contains("2030-12-01 01:00 CET"), "{paris}");
    // JSON keeps RFC 3339 with the offset.
    let v = cli.json(&[
        "subscribers",
        "show",
        "--json",
        "yamada@ch.embassy.example.org",
    ]);
    let created = v["created_at"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(created).is_ok(),
        "{created}"
    );
    let v = cli.json(&["campaigns", "show", "1", "--json"]);
    assert_eq!(v["next_due"], "2030-12-01T09:00:00+09:00", "{v:#}");
}

/// Whether `text` holds a time like `2026-12-07 09:00 JST` or
/// `2026-12-07 09:00:05 JST` in the zone `abbr`.
fn has_time_in(text: &str, abbr: &str) -> bool {
    let b = text.as_bytes();
    let zone = format!(" {abbr}");
    (0..b.len()).any(|i| {
        let s = &b[i..];
        let date = s.len() >= 16
            && s[..4].iter().all(u8::is_ascii_digit)
            && s[4] == b'-'
            && s[7] == b'-'
            && s[10] == b' '
            && s[13] == b':';
        date && (s[16..].starts_with(zone.as_bytes())
            || (s.get(16) == Some(&b':') && s[19..].starts_with(zone.as_bytes())))
    })
}

#[test]
fn a_local_time_schedule_echoes_each_zones_slot_with_its_recipients() {
    let cli = sister_cities_draft();
    let out = cli.ok(&LOCAL_0900);
    assert!(
        out.starts_with(
            "campaign 1 scheduled at 09:00 local time on 2030-12-02: 18 active contacts match \
             now, in 10 slots (times in Asia/Tokyo):\n"
        ),
        "{out}"
    );
    // Sydney (UTC+11 in December) reaches 09:00 first: 07:00 in Tokyo.
    for line in [
        "  2030-12-02 07:00 JST  2  Australia/Sydney\n",
        "  2030-12-02 09:00 JST  2  Asia/Seoul\n",
        "  2030-12-02 10:00 JST  2  Asia/Shanghai\n",
        "  2030-12-02 17:00 JST  4  Europe/Berlin 2, Europe/Paris 1, Europe/Rome 1\n",
        "  2030-12-02 18:00 JST  2  Europe/London\n",
        "  2030-12-02 23:00 JST  2  America/New_York\n",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    let json = cli.json(&[&LOCAL_0900[..], &["--json"]].concat());
    let slots = json["timeline"].as_array().unwrap();
    assert!(slots.len() >= 5, "{json:#}");
    let total: i64 = slots
        .iter()
        .map(|s| s["recipients"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 18);
    assert_eq!(slots[0]["due"], "2030-12-02T07:00:00+09:00");
    assert_eq!(slots[0]["zones"]["Australia/Sydney"], 2);

    let show = cli.ok(&["campaigns", "show", "1"]);
    assert!(
        show.contains("  next due   2030-12-02 07:00 JST (2 recipients: Australia/Sydney)\n"),
        "{show}"
    );
    assert!(
        show.contains("    2030-12-02 23:00 JST  2  America/New_York\n"),
        "{show}"
    );
    // An instant: the time, in the office's zone.
    let at = cli.ok(&["campaigns", "schedule", "1", "--at", "2030-12-01 09:00"]);
    assert!(
        at.starts_with(
            "campaign 1 scheduled for 2030-12-01 09:00 JST: 18 active contacts match now\n"
        ),
        "{at}"
    );
}

#[test]
fn campaigns_list_counts_the_contacts_a_draft_matches_now() {
    let (cli, created) = draft("region = Europe", &[]);
    assert!(created.contains("7 active contacts match now"), "{created}");
    let list = cli.ok(&["campaigns", "list"]);
    assert!(list.contains("7 match now"), "{list}");
    let json = cli.json(&["campaigns", "list", "--json"]);
    assert_eq!(json[0]["matching_contacts"], 7);
    assert_eq!(json[0]["recipients"], 0);
    cli.ok(&["campaigns", "start", "1"]);
    let json = cli.json(&["campaigns", "list", "--json"]);
    assert_eq!(json[0]["matching_contacts"], serde_json::Value::Null);
    assert_eq!(json[0]["recipients"], 7);
}

#[test]
fn send_says_what_it_waits_for_and_until_when_then_exits_with_no_wait() {
    let cli = local_time_campaign();
    let out = cli.run_env(
        &["send", "1", "--no-wait"],
        &[("WHATSUP_SECURITY_TOKEN_SECRET", TOKEN_SECRET)],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stderr}{stdout}");
    assert!(
        stderr.contains(
            "campaign 1: nothing due until 2030-12-02 07:00 JST for 2 recipients \
             (Australia/Sydney); 16 more recipients are due later in 9 slots, the last \
             2030-12-02 23:00 JST; not waiting (--no-wait)"
        ),
        "{stderr}"
    );
    assert!(
        stdout.contains("  next due   2030-12-02 07:00 JST"),
        "{stdout}"
    );
    let mut cli = cli;
    cli.env
        .push(("WHATSUP_SECURITY_TOKEN_SECRET".into(), TOKEN_SECRET.into()));
    let json = cli.json(&["send", "1", "--no-wait", "--json"]);
    assert_eq!(
        json["waiting_until"], "2030-12-02T07:00:00+09:00",
        "{json:#}"
    );
    assert_eq!(json["state"], "running");
}

#[test]
fn send_waits_for_the_next_slot_until_interrupted() {
    let cli = local_time_campaign();
    let mut send = cli.spawn(
        &["send", "1", "--wait"],
        &[("WHATSUP_SECURITY_TOKEN_SECRET", TOKEN_SECRET)],
    );
    let line = send.wait_for("the waiting line", PATIENCE, |l| {
        l.contains("waiting until")
    });
    assert_eq!(
        line,
        "campaign 1: waiting until 2030-12-02 07:00 JST for 2 recipients (Australia/Sydney); \
         16 more recipients are due later in 9 slots, the last 2030-12-02 23:00 JST"
    );
    assert!(send.child.try_wait().unwrap().is_none(), "send exited");
    let (code, stdout, _) = send.stop(libc::SIGINT);
    // Interrupted before the campaign finished: 3, and nothing was sent.
    assert_eq!(code, Some(3), "{stdout}");
    assert!(stdout.contains("0 sent"), "{stdout}");
}

/// The worker's log lines on stderr as JSON objects, by `event`.
fn events(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"))
        })
        .collect()
}

/// The first log event named `name` (the test fails without one).
fn event<'a>(events: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    events
        .iter()
        .find(|e| e["event"] == name)
        .unwrap_or_else(|| panic!("no {name} event in {events:#?}"))
}

#[test]
fn the_worker_logs_what_it_does_as_json_lines() {
    let cli = sister_cities_draft();
    cli.ok(&DUE_NOW);
    let mut worker = cli.spawn(
        &["--log-format", "json", "worker"],
        &[
            ("WHATSUP_SECURITY_TOKEN_SECRET", TOKEN_SECRET),
            ("WHATSUP_SENDING_POLL_SECS", "1"),
        ],
    );
    worker.wait_for("campaign.finished", PATIENCE, |l| {
        l.contains("\"campaign.finished\"")
    });
    let (code, _, lines) = worker.stop(libc::SIGTERM);
    assert_eq!(code, Some(0), "{lines:#?}");
    let events = events(&lines);
    let started = event(&events, "campaign.started");
    assert_eq!(started["level"], "INFO");
    assert_eq!(started["campaign"], 1);
    assert_eq!(started["recipients"], 18);
    assert!(started["render_secs"].is_number(), "{started}");
    assert!(
        started["message"]
            .as_str()
            .unwrap()
            .starts_with("campaign 1 started: 18 recipients, every message rendered in "),
        "{started}"
    );
    let finished = event(&events, "campaign.finished");
    assert_eq!(finished["sent"], 18);
    assert_eq!(finished["failed"], 0);
    assert!(
        chrono::DateTime::parse_from_rfc3339(finished["timestamp"].as_str().unwrap()).is_ok(),
        "{finished}"
    );
    // Progress lines, if the campaign lasted long enough for one, carry
    // the rate and the estimate.
    for p in events.iter().filter(|e| e["event"] == "campaign.progress") {
        assert!(p["rate"].is_number() && p["total"] == 18, "{p}");
    }
    assert!(events.iter().any(|e| e["message"] == "worker stopped"));
}

#[test]
fn the_worker_reports_a_due_unapproved_campaign_once_and_starts_it_once_approved() {
    let cli = sister_cities_draft();
    cli.ok(&DUE_NOW);
    cli.ok(&["users", "add", "ken@example.org", "--role", "operator"]);
    let mut worker = cli.spawn(
        &["--log-format", "json", "worker"],
        &[
            ("WHATSUP_SECURITY_TOKEN_SECRET", TOKEN_SECRET),
            ("WHATSUP_SENDING_POLL_SECS", "1"),
            ("WHATSUP_NEWSLETTER_REQUIRE_APPROVAL", "true"),
        ],
    );
    let line = worker.wait_for("campaign.not_approved", PATIENCE, |l| {
        l.contains("\"campaign.not_approved\"")
    });
    let waiting: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(waiting["level"], "WARN", "{waiting}");
    assert_eq!(waiting["campaign"], 1, "{waiting}");
    let reason = waiting["reason"].as_str().unwrap();
    assert!(
        reason.contains("campaign 1 is not approved") && reason.contains("--as EMAIL"),
        "{reason}"
    );
    // Still scheduled: nothing was frozen or sent.
    let show = cli.json(&["campaigns", "show", "1", "--json"]);
    assert_eq!(show["campaign"]["state"], "scheduled", "{show:#}");
    cli.ok(&["--as", "ken@example.org", "campaigns", "approve", "1"]);
    worker.wait_for("campaign.finished", PATIENCE, |l| {
        l.contains("\"campaign.finished\"")
    });
    let (code, _, lines) = worker.stop(libc::SIGTERM);
    assert_eq!(code, Some(0), "{lines:#?}");
    let events = events(&lines);
    let count = |name: &str| events.iter().filter(|e| e["event"] == name).count();
    assert_eq!(count("campaign.not_approved"), 1, "{events:#?}");
    assert_eq!(count("campaign.started"), 1, "{events:#?}");
    let finished = event(&events, "campaign.finished");
    assert_eq!(finished["sent"], 18, "{finished}");
}

#[test]
fn worker_logs_written_to_a_file_have_no_colour_and_show_the_office_zone() {
    let cli = Cli::new();
    let worker = cli.spawn(
        &["worker"],
        &[("WHATSUP_SECURITY_TOKEN_SECRET", TOKEN_SECRET)],
    );
    let mut worker = worker;
    let line = worker.wait_for("worker started", PATIENCE, |l| l.contains("worker started"));
    let (code, _, lines) = worker.stop(libc::SIGTERM);
    assert_eq!(code, Some(0));
    assert!(!lines.iter().any(|l| l.contains('\u{1b}')), "{lines:#?}");
    assert!(line.contains(" JST  INFO "), "{line}");
}

/// Campaign 1 over SMTP to the contacts in France and Britain (3), due at
/// once, and a worker logging JSON with quick retries, against `port`.
fn smtp_campaign_and_worker(port: u16, max_attempts: &str) -> (Cli, Running) {
    let (cli, _) = draft("country = FR or country = GB", &["--transport", "smtp"]);
    cli.ok(&DUE_NOW);
    let port = port.to_string();
    let worker = cli.spawn(
        &["--log-format", "json", "worker"],
        &[
            ("WHATSUP_SECURITY_TOKEN_SECRET", TOKEN_SECRET),
            ("WHATSUP_SMTP_HOST", "127.0.0.1"),
            ("WHATSUP_SMTP_PORT", &port),
            ("WHATSUP_SENDING_POLL_SECS", "1"),
            ("WHATSUP_SENDING_RETRY_BASE_SECS", "1"),
            ("WHATSUP_SENDING_RETRY_MAX_SECS", "1"),
            ("WHATSUP_SENDING_MAX_ATTEMPTS", max_attempts),
        ],
    );
    (cli, worker)
}

#[test]
fn the_worker_reports_the_relay_going_down_and_coming_back_up() {
    if !common::sink::available() {
        return;
    }
    // Nothing listens on the port yet.
    let port = common::sink::free_port();
    let (_cli, mut worker) = smtp_campaign_and_worker(port, "6");
    worker.wait_for("relay.down", PATIENCE, |l| l.contains("\"relay.down\""));
    worker.wait_for("campaign.waiting_for_relay", PATIENCE, |l| {
        l.contains("\"campaign.waiting_for_relay\"")
    });
    let dumps = tempfile::tempdir().unwrap();
    let _sink = common::sink::Sink::start_on(port, dumps.path(), &[]);
    worker.wait_for("relay.up", PATIENCE, |l| l.contains("\"relay.up\""));
    worker.wait_for("campaign.finished", PATIENCE, |l| {
        l.contains("\"campaign.finished\"")
    });
    let (code, _, lines) = worker.stop(libc::SIGTERM);
    assert_eq!(code, Some(0));
    let events = events(&lines);
    let down = event(&events, "relay.down");
    assert_eq!(down["server"], "primary");
    assert_eq!(down["level"], "WARN");
    let downs = events.iter().filter(|e| e["event"] == "relay.down").count();
    assert_eq!(downs, 1, "one outage, one report: {events:#?}");
    assert!(events.iter().any(|e| e["event"] == "campaign.relay_back"));
    let finished = event(&events, "campaign.finished");
    // The outage used up nobody's attempts.
    assert_eq!(finished["sent"], 3, "{finished}");
    assert_eq!(finished["failed"], 0, "{finished}");
}

#[test]
fn the_worker_reports_retries_of_temporary_failures() {
    if !common::sink::available() {
        return;
    }
    // A relay that answers every RCPT with a 4xx.
    let sink = common::sink::Sink::start(&["-r", "rcpt"]);
    let (_cli, mut worker) = smtp_campaign_and_worker(sink.port, "2");
    worker.wait_for("campaign.finished", PATIENCE, |l| {
        l.contains("\"campaign.finished\"")
    });
    let (code, _, lines) = worker.stop(libc::SIGTERM);
    assert_eq!(code, Some(0));
    let events = events(&lines);
    let retries = event(&events, "campaign.retries");
    assert!(retries["retries"].as_i64().unwrap() >= 1, "{retries}");
    assert!(retries["next_due"].as_str().unwrap().ends_with("+09:00"));
    assert!(retries["message"]
        .as_str()
        .unwrap()
        .contains("will be retried, the first at"));
    let finished = event(&events, "campaign.finished");
    // Two attempts each, then they fail for good.
    assert_eq!(finished["failed"], 3, "{finished}");
}

#[test]
fn a_segment_error_reads_the_same_in_every_command() {
    let cli = Cli::new();
    seed(&cli);
    sample_issue(&cli);
    let expected = "error: invalid segment: column 8: \"embasy\" is not a kind (expected one of: \
                    city, embassy, representative_office, international_org, other)\n\
                    kind = embasy\n       ^\n";
    for args in [
        &["subscribers", "list", "--segment", "kind = embasy"][..],
        &["subscribers", "export", "--segment", "kind = embasy"],
        &[
            "campaigns",
            "create",
            "--issue",
            "214",
            "--segment",
            "kind = embasy",
        ],
    ] {
        let out = cli.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), expected, "{args:?}");
    }
    // After Japanese text the caret is placed by display width.
    let out = cli.run(&[
        "subscribers",
        "list",
        "--segment",
        "organisation ~ 大使館 and knd = x",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines[0],
        "error: invalid segment: column 24: unknown field \"knd\" (did you mean \"kind\"?)"
    );
    let caret = lines[2].find('^').unwrap();
    assert_eq!(
        lines[1][..lines[1].find("knd").unwrap()].width(),
        caret,
        "{stderr}"
    );
}

#[test]
fn unquoted_words_in_segments_may_be_any_letters_and_digits() {
    let cli = Cli::new();
    japanese(&cli);
    for (segment, email) in [
        ("name ~ José", "jose.garcia@mx.embassy.example.org"),
        ("organisation ~ 大使館", "yamada@ch.embassy.example.org"),
        ("title = 参事官", "yamada@ch.embassy.example.org"),
        (
            "organisation ~ México",
            "jose.garcia@mx.embassy.example.org",
        ),
    ] {
        let v = cli.json(&["subscribers", "list", "--json", "--segment", segment]);
        let found: Vec<&str> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["email"].as_str().unwrap())
            .collect();
        assert_eq!(found, [email], "{segment}");
    }
}

#[test]
fn a_misspelt_environment_variable_is_named_with_the_nearest_setting() {
    let cli = Cli::new();
    let out = cli.run_env(
        &["subscribers", "summary"],
        &[("WHATSUP_SMTP_PROT", "2525")],
    );
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "warning: WHATSUP_SMTP_PROT is not a whatsup setting; it is ignored (did you mean \
             WHATSUP_SMTP_PORT?)"
        ),
        "{stderr}"
    );
    let check = cli.run_env(&["config", "--check"], &[("WHATSUP_SMTP_PROT", "2525")]);
    assert_eq!(check.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&check.stderr).contains("WHATSUP_SMTP_PORT?"));
    let json = cli.run_env(
        &["config", "--check", "--json"],
        &[("WHATSUP_SMTP_PROT", "2525")],
    );
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["unknown_env"][0]["nearest"], "WHATSUP_SMTP_PORT");
    // Known names, a flag's variable included, pass.
    let good = cli.run_env(
        &["config", "--check"],
        &[
            ("WHATSUP_SMTP_PORT", "2525"),
            ("WHATSUP_CONFIG", "/dev/null"),
        ],
    );
    assert_eq!(good.status.code(), Some(0), "{good:?}");
    assert!(String::from_utf8_lossy(&good.stdout).starts_with("configuration OK"));
    assert!(good.stderr.is_empty(), "{good:?}");
}

#[test]
fn completions_are_generated_for_each_shell() {
    let cli = Cli::new();
    for (shell, marker) in [
        ("bash", "complete -F _whatsup"),
        ("zsh", "#compdef whatsup"),
        ("fish", "complete -c whatsup"),
        ("elvish", "edit:completion:arg-completer[whatsup]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let script = cli.ok(&["completions", shell]);
        assert!(script.contains(marker), "{shell}: {marker} missing");
        assert!(script.contains("schedule"), "{shell} lacks subcommands");
    }
    // Bash can load it, and then completes whatsup's commands.
    let path = cli.path().join("whatsup.bash");
    std::fs::write(&path, cli.ok(&["completions", "bash"])).unwrap();
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; COMP_WORDS=(whatsup camp); COMP_CWORD=1; _whatsup whatsup camp whatsup; \
             echo \"${{COMPREPLY[@]}}\"",
            path.display()
        ))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "campaigns",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn man_pages_are_written_for_every_command() {
    let cli = Cli::new();
    let out = cli.ok(&["man", "--out", "man1"]);
    assert!(out.contains("man pages in man1"), "{out}");
    for page in [
        "whatsup.1",
        "whatsup-campaigns.1",
        "whatsup-campaigns-schedule.1",
        "whatsup-send.1",
        "whatsup-completions.1",
    ] {
        let text = std::fs::read_to_string(cli.path().join("man1").join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH "), "{page}");
    }
    let send = std::fs::read_to_string(cli.path().join("man1/whatsup-send.1")).unwrap();
    assert!(send.contains("no\\-wait"), "{send}");
}

/// The display column at which each cell of a line starts (cells are
/// separated by two or more spaces).
fn cell_starts(line: &str) -> Vec<usize> {
    let mut starts = vec![0];
    let mut spaces = 0;
    let mut col = 0;
    for c in line.chars() {
        if c == ' ' {
            spaces += 1;
        } else {
            if spaces >= 2 {
                starts.push(col);
            }
            spaces = 0;
        }
        col += unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
    }
    starts
}

#[test]
fn tables_align_japanese_names_by_display_width_and_never_cut_an_email() {
    let cli = Cli::new();
    japanese(&cli);
    let long = "a.very.long.address.for.testing.the.table@representative-office.example.org";
    cli.ok(&["subscribers", "add", long, "--name", "Ünal Öztürk"]);
    let out = cli.ok(&["subscribers", "list"]);
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.contains('@') || l.starts_with("EMAIL"))
        .collect();
    let header = cell_starts(lines[0]);
    for line in &lines[1..] {
        let starts = cell_starts(line);
        // Every cell of a row starts at a header's column.
        assert!(
            starts.iter().all(|s| header.contains(s)),
            "misaligned:\n{}\n{line}",
            lines[0]
        );
    }
    assert!(out.contains("山田 太郎"), "{out}");
    assert!(out.contains(long), "{out}");
    assert!(!out.contains('…'), "{out}");
    // --wide adds the columns left out by default.
    assert!(!lines[0].contains("TITLE"));
    let wide = cli.ok(&["--wide", "subscribers", "list"]);
    assert!(wide.lines().next().unwrap().contains("TITLE"), "{wide}");
    assert!(wide.contains("参事官"), "{wide}");
}
