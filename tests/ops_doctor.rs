//! `whatsup doctor` with the real binary and a config file, against a real
//! authoritative DNS server on loopback (NSD, `common::nsd`) serving a good
//! and a broken version of example.org and of the reverse zone of
//! 192.0.2.0/24 (nothing connects to those addresses: they only appear in
//! DNS answers), and against Dovecot's submission service (STARTTLS with a
//! private CA, AUTH) as the relay.

use crate::common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use crate::common::dovecot::{self, Dovecot, Tls};
use crate::common::nsd::{Nsd, Zone};
use crate::common::sink::{self, Sink};
use whatsup::delivery::dkim::{DkimAlgorithm, DkimConfig, Signer};

const SENDING_IP: &str = "192.0.2.10";

/// An Ed25519 key in `dir/name.pem` and its DKIM record.
fn dkim_key(dir: &Path, name: &str) -> Option<(std::path::PathBuf, String)> {
    let path = dir.join(format!("{name}.pem"));
    let ok = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&path)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        common::skip_or_fail("openssl could not make an Ed25519 key");
        return None;
    }
    let signer = Signer::new(
        &DkimConfig::with_key_file("example.org", "news", DkimAlgorithm::Ed25519Sha256, &path)
            .unwrap(),
    )
    .unwrap();
    Some((path, signer.dns_record()))
}

/// The zones of a good setup, or (`broken`) one without SPF, DMARC and
/// PTR, whose DKIM record holds `other_key` instead of the configured key.
fn zones(broken: bool, record: &str, other_record: &str) -> Vec<Zone<'static>> {
    let mut records = String::from(
        "ns IN A 127.0.0.1\n\
         mail IN A 192.0.2.10\n\
         mx IN A 192.0.2.25\n\
         @ IN MX 10 mx.example.org.\n\
         whatsup IN A 192.0.2.80\n",
    );
    if broken {
        records.push_str(&format!("news._domainkey IN TXT \"{other_record}\"\n"));
    } else {
        records.push_str(&format!(
            "@ IN TXT \"v=spf1 ip4:192.0.2.0/28 -all\"\n\
             news._domainkey IN TXT \"{record}\"\n\
             _dmarc IN TXT \"v=DMARC1; p=quarantine; rua=mailto:dmarc@example.org\"\n"
        ));
    }
    let reverse = if broken {
        "ns IN A 127.0.0.1\n".to_string()
    } else {
        "10 IN PTR mail.example.org.\n".to_string()
    };
    vec![
        Zone {
            origin: "example.org",
            records,
        },
        Zone {
            origin: "2.0.192.in-addr.arpa",
            records: reverse,
        },
    ]
}

struct Setup {
    dir: tempfile::TempDir,
    certs: tempfile::TempDir,
    dovecot: Dovecot,
    _sink: Sink,
    key: std::path::PathBuf,
    record: String,
    other_record: String,
}

fn setup() -> Option<Setup> {
    if !sink::available() {
        return None;
    }
    let certs = tempfile::tempdir().unwrap();
    if common::make_certificates(certs.path()).is_none() {
        common::skip_or_fail("openssl could not make test certificates");
        return None;
    }
    let sink = Sink::start(&[]);
    let dovecot = Dovecot::start_submission(
        Tls {
            cert: &certs.path().join("server.pem"),
            key: &certs.path().join("server.key"),
        },
        sink.port,
    )?;
    let dir = tempfile::tempdir().unwrap();
    let (key, record) = dkim_key(dir.path(), "news")?;
    let (_, other_record) = dkim_key(dir.path(), "other")?;
    Some(Setup {
        dir,
        certs,
        dovecot,
        _sink: sink,
        key,
        record,
        other_record,
    })
}

impl Setup {
    /// A config file for this setup; `extra` is appended (later keys of a
    /// table win, so it may override).
    fn config(
        &self,
        resolver: &str,
        password: &str,
        secret: &str,
        smtp_extra: &str,
    ) -> std::path::PathBuf {
        let dir = self.dir.path();
        let text = format!(
            r#"[general]
data_dir = "{dir}"

[database]
url = "sqlite://{dir}/whatsup.db"

[smtp]
host = "localhost"
port = {port}
tls = "starttls"
username = "{user}"
password = "{password}"
{smtp_extra}

[security]
token_secret = "{secret}"

[newsletter]
from_address = "whatsup@example.org"
list_id = "whatsup.example.org"
base_url = "https://whatsup.example.org"

[sending]
transport = "smtp"
bounce_address = "bounces@example.org"

[dkim]
enabled = true
domain = "example.org"
selector = "news"
algorithm = "ed25519"
key_file = "{key}"

[doctor]
resolver = "{resolver}"
sending_ips = ["{SENDING_IP}"]
timeout_secs = 5
"#,
            dir = dir.display(),
            port = self.dovecot.submission_port,
            user = dovecot::USER,
            key = self.key.display(),
        );
        let path = dir.join(format!("whatsup-{}.toml", text.len()));
        std::fs::write(&path, text).unwrap();
        path
    }

    fn doctor(&self, config: &Path, extra: &[&str]) -> (Option<i32>, serde_json::Value, String) {
        let run = |json: bool| {
            let mut c = Command::new(env!("CARGO_BIN_EXE_whatsup"));
            c.arg("--config").arg(config).arg("doctor").args(extra);
            if json {
                c.arg("--json");
            }
            c.current_dir(self.dir.path())
                .env_remove("WHATSUP_DATABASE_URL")
                .env_remove("WHATSUP_SECURITY_TOKEN_SECRET")
                .output()
                .expect("run whatsup doctor")
        };
        let out = run(true);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "doctor --json: {e}: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let text = String::from_utf8(run(false).stdout).unwrap();
        (out.status.code(), report, text)
    }

    fn migrate(&self, config: &Path) {
        let out = Command::new(env!("CARGO_BIN_EXE_whatsup"))
            .arg("--config")
            .arg(config)
            .arg("migrate")
            .env_remove("WHATSUP_DATABASE_URL")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Status and summary of each check, by id.
fn by_id(report: &serde_json::Value) -> HashMap<String, (String, String)> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                (
                    c["status"].as_str().unwrap().to_string(),
                    c["summary"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

fn expect(
    checks: &HashMap<String, (String, String)>,
    id: &str,
    status: &str,
    words: &str,
    text: &str,
) {
    let (s, summary) = checks
        .get(id)
        .unwrap_or_else(|| panic!("no check {id} in\n{text}"));
    assert_eq!(s, status, "{id}: {summary}\n{text}");
    assert!(
        summary.contains(words),
        "{id}: {summary:?} lacks {words:?}\n{text}"
    );
}

/// A setup, NSD serving its good or broken zones, and a migrated config
/// with this relay password, token secret, and the private CA or not.
fn prepared(
    broken: bool,
    password: &str,
    secret: &str,
    trust_ca: bool,
) -> Option<(Setup, Nsd, std::path::PathBuf)> {
    let s = setup()?;
    let nsd = Nsd::start(&zones(broken, &s.record, &s.other_record))?;
    let ca = if trust_ca {
        format!("ca_file = \"{}\"", s.certs.path().join("ca.pem").display())
    } else {
        String::new()
    };
    let config = s.config(&nsd.address(), password, secret, &ca);
    s.migrate(&config);
    Some((s, nsd, config))
}

const GOOD_SECRET: &str = "Qm9vbXNoYWthbGFrYV9yYW5kb20tNDg+Ynl0ZXMtb2Yta2V5LW1hdGVyaWFs";

#[test]
fn a_good_setup_passes_every_dns_relay_and_local_check() {
    let Some((s, _nsd, config)) = prepared(false, dovecot::PASSWORD, GOOD_SECRET, true) else {
        return;
    };
    let (code, report, text) = s.doctor(&config, &[]);
    eprintln!("doctor, good setup:\n{text}");
    let checks = by_id(&report);
    expect(
        &checks,
        "dns.spf",
        "pass",
        "allows sending address 192.0.2.10",
        &text,
    );
    expect(
        &checks,
        "dns.dkim",
        "pass",
        "the published ed25519 key is the configured key",
        &text,
    );
    expect(
        &checks,
        "dns.dmarc",
        "pass",
        "p=quarantine; SPF and DKIM align with example.org",
        &text,
    );
    expect(&checks, "dns.mx", "pass", "10 mx.example.org", &text);
    expect(
        &checks,
        "dns.ptr.192.0.2.10",
        "pass",
        "forward-confirmed",
        &text,
    );
    expect(&checks, "dns.base_url", "pass", "192.0.2.80", &text);
    expect(&checks, "relay.primary.connect", "pass", "answers", &text);
    expect(
        &checks,
        "relay.primary.tls",
        "pass",
        "certificate for CN=localhost verified",
        &text,
    );
    expect(
        &checks,
        "relay.primary.auth",
        "pass",
        "AUTH as bounces accepted",
        &text,
    );
    expect(
        &checks,
        "security.token_secret",
        "pass",
        "bits of entropy",
        &text,
    );
    expect(&checks, "database.migrations", "pass", "up to date", &text);
    expect(&checks, "templates", "pass", "compile", &text);
    expect(&checks, "bulk.dkim", "pass", "d=example.org", &text);
    expect(&checks, "bulk.one_click", "pass", "One-Click", &text);
    assert_eq!(report["failures"], 0, "{text}");
    assert_eq!(code, Some(0), "{text}");
    // Dovecot saw a login and no message.
    let log = s.dovecot.log();
    assert!(log.contains("Login: user=<bounces>"), "{log}");
}

#[test]
fn a_broken_setup_fails_with_what_to_do_for_each_problem() {
    let Some((s, _nsd, config)) = prepared(
        true,
        "not-the-password",
        "change-me-change-me-change-me-change-me",
        true,
    ) else {
        return;
    };
    let (code, report, text) = s.doctor(&config, &[]);
    eprintln!("doctor, broken setup:\n{text}");
    assert_eq!(code, Some(1), "{text}");
    let checks = by_id(&report);
    expect(
        &checks,
        "dns.spf",
        "fail",
        "no SPF record for the envelope domain example.org",
        &text,
    );
    expect(
        &checks,
        "dns.dkim",
        "fail",
        "the published key is not the configured key",
        &text,
    );
    expect(&checks, "dns.dmarc", "fail", "no DMARC record", &text);
    expect(
        &checks,
        "dns.ptr.192.0.2.10",
        "fail",
        "has no PTR record",
        &text,
    );
    expect(
        &checks,
        "relay.primary.auth",
        "fail",
        "AUTH as bounces refused",
        &text,
    );
    expect(
        &checks,
        "security.token_secret",
        "fail",
        "placeholder",
        &text,
    );
    // Every failure says what to do.
    for c in report["checks"].as_array().unwrap() {
        if c["status"] == "fail" {
            assert!(c["fix"].as_str().is_some_and(|f| !f.is_empty()), "{c}");
        }
    }
    assert!(
        text.contains("publish a TXT record at news._domainkey.example.org"),
        "{text}"
    );
}

#[test]
fn an_untrusted_relay_certificate_fails_the_tls_check() {
    // No ca_file: the private CA is not trusted.
    let Some((s, _nsd, config)) = prepared(false, dovecot::PASSWORD, GOOD_SECRET, false) else {
        return;
    };
    let (code, report, text) = s.doctor(&config, &[]);
    assert_eq!(code, Some(1), "{text}");
    let checks = by_id(&report);
    expect(&checks, "relay.primary.tls", "fail", "TLS handshake", &text);
    assert!(
        !checks.contains_key("relay.primary.auth"),
        "no AUTH without TLS: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_checks_that_serve_answers_at_the_base_url() {
    let db = common::sqlite().await;
    let dir = db.config.general.data_dir.clone();
    let port = sink::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let doctor = || {
        Command::new(env!("CARGO_BIN_EXE_whatsup"))
            .args(["--database", &db.url, "doctor", "--online", "--json"])
            .env("WHATSUP_NEWSLETTER_BASE_URL", &base)
            .env("WHATSUP_DOCTOR_RESOLVER", "127.0.0.1:9")
            .env("WHATSUP_DOCTOR_TIMEOUT_SECS", "1")
            .env("WHATSUP_SECURITY_TOKEN_SECRET", GOOD_SECRET)
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let down: serde_json::Value = serde_json::from_slice(&doctor().stdout).unwrap();
    let checks = by_id(&down);
    assert_eq!(checks["online.base_url"].0, "fail", "{down}");
    let mut serve = Command::new(env!("CARGO_BIN_EXE_whatsup"))
        .args(["--database", &db.url, "serve", "--no-worker", "--bind"])
        .arg(format!("127.0.0.1:{port}"))
        .env("WHATSUP_SECURITY_TOKEN_SECRET", GOOD_SECRET)
        .env("WHATSUP_WEB_METRICS_BIND", "127.0.0.1:0")
        .env("WHATSUP_ADMIN_BIND", "127.0.0.1:0")
        .current_dir(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    common::first_line(&mut serve);
    let serve = common::Running(serve);
    let up: serde_json::Value = serde_json::from_slice(&doctor().stdout).unwrap();
    let checks = by_id(&up);
    drop(serve);
    assert_eq!(checks["online.base_url"].0, "pass", "{up}");
    assert!(checks["clock"].1.contains("the web server"), "{up}");
}
