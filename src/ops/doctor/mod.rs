//! `whatsup doctor`: checks an installation before the first send and
//! after every change, and says for each check what to do about it.
//!
//! - `dns` (`dns.rs`): SPF, DKIM, DMARC, MX, PTR and the base URL's host,
//!   through the configured resolver (`doctor.resolver`);
//! - `relay` (`relay.rs`): each SMTP server's connection, STARTTLS and its
//!   certificate, AUTH, PIPELINING; no message is sent;
//! - `local` (`local.rs`): the token secret, the clock, templates and
//!   stored issues, migrations, disk space, the bulk-sender rules that can
//!   be checked without the network, and (`--online`) `serve` at the
//!   base URL.
//!
//! Every check is pass, warn, fail or skip; any fail makes the exit code 1.

mod dns;
mod http;
mod local;
mod relay;

use serde::Serialize;

use crate::config::Config;

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
    /// Not applicable to this setup (the reason says why).
    Skip,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        }
    }
}

/// One check: what was found, and what to do about it.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// A stable name: `dns.spf`, `relay.primary.auth`, …
    pub id: String,
    pub status: Status,
    /// What was found, in one sentence.
    pub summary: String,
    /// What to do about a warning or failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn pass(id: impl Into<String>, summary: impl Into<String>) -> Check {
        Check::new(id, Status::Pass, summary, None::<String>)
    }
    pub fn skip(id: impl Into<String>, summary: impl Into<String>) -> Check {
        Check::new(id, Status::Skip, summary, None::<String>)
    }
    pub fn warn(
        id: impl Into<String>,
        summary: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check::new(id, Status::Warn, summary, Some(fix))
    }
    pub fn fail(
        id: impl Into<String>,
        summary: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check::new(id, Status::Fail, summary, Some(fix))
    }
    fn new(
        id: impl Into<String>,
        status: Status,
        summary: impl Into<String>,
        fix: Option<impl Into<String>>,
    ) -> Check {
        Check {
            id: id.into(),
            status,
            summary: summary.into(),
            fix: fix.map(Into::into),
        }
    }
}

/// Everything doctor found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
    pub passed: usize,
    pub warnings: usize,
    pub failures: usize,
    pub skipped: usize,
}

impl Report {
    fn new(checks: Vec<Check>) -> Report {
        let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
        Report {
            passed: count(Status::Pass),
            warnings: count(Status::Warn),
            failures: count(Status::Fail),
            skipped: count(Status::Skip),
            checks,
        }
    }

    /// The human-readable form: one line a check, the fix indented below.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            out.push_str(&format!(
                "{}  {:<28} {}\n",
                c.status.label(),
                c.id,
                c.summary
            ));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("      {:<28} → {fix}\n", ""));
            }
        }
        out.push_str(&format!(
            "\n{} passed, {} warnings, {} failed, {} skipped\n",
            self.passed, self.warnings, self.failures, self.skipped
        ));
        out
    }
}

/// What to check beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Also fetch `<base_url>/healthz`: is `whatsup serve` reachable?
    pub online: bool,
}

/// Runs every check.
pub async fn run(config: &Config, options: &Options) -> Report {
    let mut checks = Vec::new();
    checks.extend(local::configuration(config));
    let relay = relay::check_all(config).await;
    checks.extend(relay.checks);
    checks.extend(dns::check_all(config).await);
    let (store_checks, db_time) = local::store(config).await;
    checks.extend(store_checks);
    checks.extend(local::templates(config));
    checks.push(local::disk(config));
    let mut http_time = None;
    if options.online {
        let (check, time) = local::online(config).await;
        checks.push(check);
        http_time = time;
    }
    checks.push(local::clock(db_time, relay.clock, http_time));
    Report::new(checks)
}
