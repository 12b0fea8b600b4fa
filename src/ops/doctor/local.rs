//! The checks that need no DNS: the token secret, the bulk-sender rules
//! that can be read from the configuration and a rendered message, the
//! templates and the stored issues, the schema version, disk space, the
//! clock, and (`--online`) `whatsup serve` at the base URL.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Check;
use crate::compose::preflight;
use crate::config::Config;
use crate::store::Store;

/// The sample issue shipped with whatsup: templates are checked by
/// compiling and rendering it.
const SAMPLE_ISSUE: &str = include_str!("../../../samples/issue-214.md");

/// Free-mail domains whose DMARC policy rejects or quarantines mail sent
/// in their name from elsewhere.
const FREE_MAIL: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "yahoo.co.jp",
    "ymail.com",
    "outlook.com",
    "hotmail.com",
    "live.com",
    "msn.com",
    "aol.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "gmx.com",
    "gmx.net",
    "gmx.de",
    "web.de",
    "mail.com",
    "yandex.ru",
    "proton.me",
    "protonmail.com",
    "zoho.com",
    "qq.com",
    "163.com",
    "naver.com",
    "docomo.ne.jp",
];

/// Token secret, bulk-sender rules: from the configuration alone.
pub fn configuration(config: &Config) -> Vec<Check> {
    let mut out = vec![token_secret(config)];
    out.extend(bulk_rules(config));
    out
}

fn token_secret(config: &Config) -> Check {
    const ID: &str = "security.token_secret";
    let fix =
        "set WHATSUP_SECURITY_TOKEN_SECRET to `openssl rand -base64 48` (keep the old value in \
               security.previous_token_secrets so links already sent keep working)";
    let secret = config.security.token_secret.expose();
    if secret.is_empty() {
        return Check::fail(
            ID,
            "no token secret: unsubscribe links cannot be signed",
            fix,
        );
    }
    let bits = entropy_bits(secret);
    let lower = secret.to_ascii_lowercase();
    let placeholder = ["change", "secret", "example", "password", "whatsup", "test"]
        .iter()
        .find(|w| lower.contains(*w));
    if let Some(word) = placeholder {
        return Check::fail(
            ID,
            format!(
                "the token secret contains {word:?}: it looks like a placeholder, not a random key"
            ),
            fix,
        );
    }
    if secret.len() < 32 || bits < 96.0 {
        return Check::fail(
            ID,
            format!(
                "the token secret is weak: {} bytes, about {bits:.0} bits of entropy",
                secret.len()
            ),
            fix,
        );
    }
    if bits < 128.0 {
        return Check::warn(
            ID,
            format!("the token secret has about {bits:.0} bits of entropy (128 recommended)"),
            fix,
        );
    }
    let short_previous = config
        .security
        .previous_token_secrets
        .iter()
        .filter(|s| s.expose().len() < 32)
        .count();
    if short_previous > 0 {
        return Check::warn(
            ID,
            format!(
                "{short_previous} of security.previous_token_secrets are shorter than 32 bytes"
            ),
            "drop old keys once the links signed with them no longer matter",
        );
    }
    Check::pass(
        ID,
        format!("{} bytes, about {bits:.0} bits of entropy", secret.len()),
    )
}

/// An estimate of a secret's entropy: its length times the log of the
/// alphabet its character classes suggest, capped by how varied its
/// characters are (Shannon entropy of the characters it uses).
fn entropy_bits(secret: &str) -> f64 {
    let chars: Vec<char> = secret.chars().collect();
    if chars.is_empty() {
        return 0.0;
    }
    let mut alphabet = 0.0;
    if chars.iter().any(|c| c.is_ascii_lowercase()) {
        alphabet += 26.0;
    }
    if chars.iter().any(|c| c.is_ascii_uppercase()) {
        alphabet += 26.0;
    }
    if chars.iter().any(|c| c.is_ascii_digit()) {
        alphabet += 10.0;
    }
    if chars.iter().any(|c| !c.is_ascii_alphanumeric()) {
        alphabet += 32.0;
    }
    let by_class = chars.len() as f64 * f64::log2(alphabet);
    let mut counts = std::collections::HashMap::new();
    for c in &chars {
        *counts.entry(*c).or_insert(0usize) += 1;
    }
    let n = chars.len() as f64;
    let shannon: f64 = counts
        .values()
        .map(|&k| {
            let p = k as f64 / n;
            -p * p.log2()
        })
        .sum();
    by_class.min(shannon * n)
}

/// The rules of Gmail's and Yahoo's bulk-sender requirements that can be
/// checked without the network, on a message rendered from the sample.
fn bulk_rules(config: &Config) -> Vec<Check> {
    let mut out = Vec::new();
    let nl = &config.newsletter;
    let rendered = sample_message(config);
    let header = |name: &str| -> Option<String> {
        let bytes = rendered.as_ref().ok()?;
        let text = String::from_utf8_lossy(bytes);
        let head = text.split("\r\n\r\n").next().unwrap_or("").to_string();
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = value.as_mut() {
                if line.starts_with([' ', '\t']) {
                    v.push_str(line.trim());
                    continue;
                }
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case(name) {
                    value = Some(v.trim().to_string());
                }
            }
        }
        value
    };
    let one_click = header("List-Unsubscribe-Post");
    let unsubscribe = header("List-Unsubscribe").unwrap_or_default();
    out.push(if !nl.base_url.starts_with("https://") {
        Check::fail(
            "bulk.one_click",
            format!("newsletter.base_url {} is not https: one-click unsubscribe (RFC 8058) needs an https URL", nl.base_url),
            "serve whatsup behind a TLS proxy (deploy/) and set newsletter.base_url to its https URL",
        )
    } else if one_click.as_deref() == Some("List-Unsubscribe=One-Click") && unsubscribe.contains("<https://") {
        Check::pass(
            "bulk.one_click",
            "messages carry List-Unsubscribe with an https URL and List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        )
    } else {
        Check::fail(
            "bulk.one_click",
            match &rendered {
                Err(e) => format!("the sample message could not be rendered: {e}"),
                Ok(_) => "the rendered message lacks the one-click unsubscribe headers".to_string(),
            },
            "check newsletter.base_url and the templates",
        )
    });
    out.push(match header("List-Id") {
        Some(id) if !nl.list_id.is_empty() && nl.list_id.contains('.') => {
            Check::pass("bulk.list_id", format!("List-Id: {id}"))
        }
        _ => Check::fail(
            "bulk.list_id",
            format!(
                "newsletter.list_id {:?} is not a domain-like identifier",
                nl.list_id
            ),
            "set newsletter.list_id to a name under your domain, e.g. newsletter.example.org",
        ),
    });
    out.push(if !config.dkim.enabled {
        Check::fail(
            "bulk.dkim",
            "DKIM signing is off: Gmail and Yahoo require DKIM of bulk senders",
            "create a key (`openssl genpkey -algorithm ed25519 -out dkim.pem`), set [dkim] enabled, domain, selector, key_file, and publish the record doctor prints",
        )
    } else {
        match super::dns::signer(config) {
            Ok(s) => Check::pass(
                "bulk.dkim",
                format!("messages are signed (d={}, {}, key loads)", config.dkim.domain, s.algorithm().key_type()),
            ),
            Err(e) => Check::fail("bulk.dkim", format!("the DKIM key cannot be used: {e:#}"), "check dkim.key_file and dkim.algorithm"),
        }
    });
    let from_domain = nl
        .from_address
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default();
    out.push(if FREE_MAIL.contains(&from_domain.as_str()) {
        Check::fail(
            "bulk.from_domain",
            format!("the From domain {from_domain} is a free-mail domain: its DMARC policy makes receivers reject mail sent in its name from your servers"),
            "send from an address on a domain you control (newsletter.from_address)",
        )
    } else {
        Check::pass("bulk.from_domain", format!("From domain {from_domain} is your own"))
    });
    out.push(if config.sending.bounce_address.is_empty() {
        Check::warn(
            "bulk.bounce_address",
            "sending.bounce_address is empty: bounces go to the From address and cannot be matched by VERP",
            "set sending.bounce_address to an address whose domain receives bounces into `whatsup bounces ingest`",
        )
    } else {
        Check::pass(
            "bulk.bounce_address",
            format!("envelope sender {} with VERP", config.sending.bounce_address),
        )
    });
    out
}

/// The sample issue rendered as a message, as the sender would.
fn sample_message(config: &Config) -> Result<Vec<u8>, String> {
    let issue = crate::compose::Issue::parse("samples/issue-214.md", SAMPLE_ISSUE)
        .map_err(|e| e.to_string())?;
    let compiled = crate::compose::CompiledIssue::compile(issue, &config.newsletter)
        .map_err(|e| e.to_string())?;
    let sample = crate::compose::Recipient::sample(None);
    compiled
        .render_for(&sample)
        .map(|m| m.bytes)
        .map_err(|e| e.to_string())
}

/// The templates (built-in and overrides) compile, and the sample issue
/// passes `issues check` with them.
pub fn templates(config: &Config) -> Vec<Check> {
    let tz: chrono_tz::Tz = config.newsletter.timezone.parse().unwrap_or(chrono_tz::UTC);
    let dir = Some(config.newsletter.templates_dir.as_path()).filter(|d| !d.as_os_str().is_empty());
    let (env, _) = crate::compose::templates::environment(dir, tz);
    let mut broken = Vec::new();
    for (name, _) in crate::compose::templates::BUILTIN {
        if let Err(e) = env.get_template(name) {
            broken.push(format!("{name}: {e}"));
        }
    }
    let report = preflight::check_source("samples/issue-214.md", SAMPLE_ISSUE, &config.newsletter);
    let where_ = match dir {
        Some(d) => format!("built-in templates with overrides from {}", d.display()),
        None => "built-in templates".to_string(),
    };
    if !broken.is_empty() {
        return vec![Check::fail(
            "templates",
            format!("{} do not compile: {}", where_, broken.join("; ")),
            "fix the template named (newsletter.templates_dir)",
        )];
    }
    if !report.passed() {
        return vec![Check::fail(
            "templates",
            format!(
                "the sample issue fails `issues check` with the {where_}: {}",
                report.to_text().trim()
            ),
            "fix the templates (an unsubscribe link must stay in both parts)",
        )];
    }
    vec![Check::pass(
        "templates",
        format!(
            "{} templates compile ({where_}); the sample issue passes issues check",
            crate::compose::templates::BUILTIN.len()
        ),
    )]
}

/// The schema version and the stored issues; returns the database's
/// clock when it has its own (PostgreSQL).
pub async fn store(config: &Config) -> (Vec<Check>, Option<DateTime<Utc>>) {
    let url = config.database_url();
    if let Some(path) = crate::ops::backup::sqlite_path(&url) {
        if !path.exists() {
            return (
                vec![Check::warn(
                    "database",
                    format!("{} does not exist yet", path.display()),
                    "run `whatsup migrate` (or any command) to create it",
                )],
                None,
            );
        }
    }
    let store = match Store::connect(&url, config).await {
        Ok(s) => s,
        Err(e) => {
            return (
                vec![Check::fail(
                    "database",
                    format!("{e:#}"),
                    "check database.url and that the database is running",
                )],
                None,
            )
        }
    };
    let mut out = vec![migrations(config, &store).await];
    out.push(stored_issues(config, &store).await);
    let clock = match &store {
        Store::Postgres(_) => store.database_time().await.ok(),
        Store::Sqlite(_) => None,
    };
    store.close().await;
    (out, clock)
}

async fn migrations(config: &Config, store: &Store) -> Check {
    const ID: &str = "database.migrations";
    let url = config.database_url();
    let status = match store.schema_status().await {
        Ok(s) => s,
        Err(e) => {
            return Check::fail(
                ID,
                format!("reading the schema version: {e:#}"),
                "check the database",
            )
        }
    };
    if let Some(refusal) = status.refusal(&url) {
        return Check::fail(
            ID,
            refusal,
            "run the whatsup version that matches the database, or restore a backup",
        );
    }
    if status.pending.is_empty() {
        return Check::pass(
            ID,
            format!("schema version {} (up to date)", status.applied),
        );
    }
    let summary = format!(
        "schema version {}, this whatsup needs {}: {} migration(s) pending",
        status.applied,
        status.known,
        status.pending.len()
    );
    if config.database.auto_migrate {
        Check::warn(
            ID,
            summary,
            "they are applied when serve or worker next starts; back up first (`whatsup backup`)",
        )
    } else {
        Check::fail(
            ID,
            summary,
            "back up, then run `whatsup migrate` (database.auto_migrate is off)",
        )
    }
}

/// Every stored issue's latest revision parses and passes `issues check`
/// with this version's issue format and templates.
async fn stored_issues(config: &Config, store: &Store) -> Check {
    const ID: &str = "issues";
    let issues = match store.list_issues().await {
        Ok(i) => i,
        Err(e) => {
            return Check::warn(
                ID,
                format!("listing the stored issues: {e:#}"),
                "run `whatsup migrate`",
            )
        }
    };
    let mut bad = Vec::new();
    for issue in &issues {
        let Ok(number) = u32::try_from(issue.number) else {
            continue;
        };
        match store.issue_revision(number, None).await {
            Ok(rev) => {
                let report = preflight::check_source(
                    &format!("issue {number}"),
                    &rev.source,
                    &config.newsletter,
                );
                if !report.passed() {
                    bad.push(format!(
                        "issue {number}: {}",
                        report.to_text().lines().next().unwrap_or("")
                    ));
                }
            }
            Err(e) => bad.push(format!("issue {number}: {e:#}")),
        }
    }
    if bad.is_empty() {
        Check::pass(
            ID,
            format!(
                "{} stored issue(s) parse and pass issues check with this version's format",
                issues.len()
            ),
        )
    } else {
        Check::fail(
            ID,
            format!(
                "{} of {} stored issues fail: {}",
                bad.len(),
                issues.len(),
                bad.join("; ")
            ),
            "fix the issue file and store it again (`whatsup issues save FILE`)",
        )
    }
}

/// Free space and writability of data_dir.
pub fn disk(config: &Config) -> Check {
    const ID: &str = "disk.data_dir";
    let dir = &config.general.data_dir;
    if !dir.exists() {
        return Check::warn(
            ID,
            format!("{} does not exist yet", dir.display()),
            "it is created on first use; make sure its parent is writable",
        );
    }
    let probe = dir.join(format!(".doctor-{}", std::process::id()));
    if let Err(e) = std::fs::write(&probe, b"x") {
        return Check::fail(
            ID,
            format!("{} is not writable: {e}", dir.display()),
            "give the whatsup user write access to general.data_dir",
        );
    }
    let _ = std::fs::remove_file(&probe);
    let Some((free, total)) = free_space(dir) else {
        return Check::warn(
            ID,
            format!("the free space of {} is unknown", dir.display()),
            "check it with df",
        );
    };
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    let share = if total > 0 {
        free as f64 / total as f64
    } else {
        0.0
    };
    let summary = format!(
        "{}: {:.1} GiB free of {:.1} GiB ({:.0}%)",
        dir.display(),
        gib(free),
        gib(total),
        share * 100.0
    );
    let fix =
        "free space or move general.data_dir: SQLite, the outbox and backups need room to write";
    if free < 256 << 20 || share < 0.02 {
        Check::fail(ID, summary, fix)
    } else if free < 2 << 30 || share < 0.10 {
        Check::warn(ID, summary, fix)
    } else {
        Check::pass(ID, summary)
    }
}

fn free_space(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain data; all-zero is a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a pointer to a statvfs.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let unit = st.f_frsize as u64;
    Some((st.f_bavail as u64 * unit, st.f_blocks as u64 * unit))
}

/// `--online`: GET `<base_url>/healthz`; returns the server's Date header.
pub async fn online(config: &Config) -> (Check, Option<DateTime<Utc>>) {
    const ID: &str = "online.base_url";
    let url = format!(
        "{}/healthz",
        config.newsletter.base_url.trim_end_matches('/')
    );
    let timeout = Duration::from_secs(config.doctor.timeout_secs);
    match super::http::get(&url, timeout).await {
        Ok(reply) if reply.status == 200 && reply.body.trim() == "ok" => (
            Check::pass(ID, format!("{url} answers 200 ok: whatsup serve is reachable")),
            reply.date,
        ),
        Ok(reply) => (
            Check::fail(
                ID,
                format!("{url} answers {} {:?}", reply.status, reply.body.chars().take(80).collect::<String>()),
                "check that the proxy forwards to whatsup serve (deploy/nginx.conf) and that serve is running",
            ),
            reply.date,
        ),
        Err(e) => (
            Check::fail(ID, format!("{url}: {e:#}"), "start whatsup serve and its proxy, and check newsletter.base_url"),
            None,
        ),
    }
}

/// Whether the kernel's clock is synchronised (NTP), and its offset from
/// the database's, the relay's or the web server's clock.
pub fn clock(
    db: Option<DateTime<Utc>>,
    relay: Option<DateTime<Utc>>,
    http: Option<DateTime<Utc>>,
) -> Check {
    const ID: &str = "clock";
    let now = Utc::now();
    let mut offsets = Vec::new();
    let mut worst = 0i64;
    for (what, t) in [
        ("the database", db),
        ("the relay", relay),
        ("the web server", http),
    ] {
        if let Some(t) = t {
            let off = (t - now).num_seconds();
            worst = worst.max(off.abs());
            offsets.push(format!("{what} {off:+} s"));
        }
    }
    let synced = kernel_clock_synchronised();
    let against = if offsets.is_empty() {
        "no remote clock to compare with (PostgreSQL, a relay greeting with a date, or --online give one)".to_string()
    } else {
        format!("offset from {}", offsets.join(", "))
    };
    let sync = match synced {
        Some(true) => "synchronised (NTP)",
        Some(false) => "not synchronised",
        None => "synchronisation unknown",
    };
    let summary = format!("the system clock is {sync}; {against}");
    let fix = "run an NTP client (systemd-timesyncd or chrony): schedules, tokens and DKIM timestamps depend on the clock";
    if worst > 300 {
        Check::fail(ID, summary, fix)
    } else if worst > 30 || synced == Some(false) {
        Check::warn(ID, summary, fix)
    } else {
        Check::pass(ID, summary)
    }
}

/// The kernel's view: `adjtimex` says whether NTP keeps the clock in step.
fn kernel_clock_synchronised() -> Option<bool> {
    // SAFETY: timex is plain data; all-zero (modes 0) only reads the state.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: a pointer to a timex with modes = 0.
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state < 0 {
        return None;
    }
    Some(state != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_random_secret_has_enough_entropy_and_a_repetitive_one_not() {
        assert!(entropy_bits("q8N0xv2Lr7ZpK4mW1sYt9bC3dF6gH5jE8kA0uQ2wR4e=") > 128.0);
        assert!(entropy_bits(&"ab".repeat(20)) < 96.0);
        assert!(entropy_bits("0123456789abcdef0123456789abcdef") < 160.0);
    }

    #[test]
    fn the_clock_fails_far_off_and_passes_close_by() {
        let now = Utc::now();
        let far = clock(Some(now + chrono::Duration::minutes(10)), None, None);
        assert_eq!(far.status, super::super::Status::Fail);
        assert!(far.summary.contains("the database +"), "{}", far.summary);
    }
}
