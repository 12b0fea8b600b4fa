//! Real headless Chromium for the browser tests, driven over WebDriver.
//!
//! [`Browser::start`] runs Debian's `chromedriver` on a free loopback port,
//! with a fresh profile directory and no network beyond loopback, and opens
//! a session through fantoccini. A test then opens pages and asks for:
//! - [`Browser::set_width`]: the viewport (375 phone, 768 tablet, 1280
//!   desktop), set exactly through the DevTools protocol, since a headless
//!   window will not shrink below about 500 px;
//! - [`Browser::screenshot`]: a PNG of the whole page under
//!   `<target>/artifacts/screenshots/` (or `$WHATSUP_ARTIFACTS_DIR`), its path
//!   printed;
//! - [`Browser::console_errors`]: the browser log's errors since the last
//!   call (script errors, CSP violations, failed loads), read from
//!   chromedriver's log endpoint, so errors during the load count too;
//! - [`Browser::axe`]: axe-core (vendored in `tests/vendor/axe-core`, its
//!   checksum in `assets/vendor/vendor.toml`) run inside the page, returning
//!   the serious and critical violations.
//!
//! [`Browser::check`] does all of it at each width and fails the test with a
//! readable list. Without chromedriver the test skips loudly outside CI and
//! fails in CI ([`super::skip_or_fail`]).

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// Phone, tablet and desktop widths.
pub const PHONE: u32 = 375;
pub const TABLET: u32 = 768;
pub const DESKTOP: u32 = 1280;

/// A serious or critical axe-core finding.
#[derive(Debug, Clone)]
pub struct Violation {
    pub id: String,
    pub impact: String,
    pub help: String,
    /// CSS selectors and HTML of the offending elements.
    pub nodes: Vec<String>,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}: {}", self.impact, self.id, self.help)?;
        for n in &self.nodes {
            write!(f, "\n      at {n}")?;
        }
        Ok(())
    }
}

/// What [`Browser::check`] found on one page.
#[derive(Debug, Default)]
pub struct PageReport {
    pub screenshots: Vec<PathBuf>,
    pub console_errors: Vec<String>,
    pub violations: Vec<Violation>,
    /// axe-core's count of rules that passed (proof that it ran).
    pub axe_passes: usize,
}

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    shots: PathBuf,
}

/// Where the Chromium binary itself is (Debian's /usr/bin/chromium is a
/// shell wrapper; chromedriver wants the program).
fn chromium_binary() -> Option<PathBuf> {
    [
        "/usr/lib/chromium/chromium",
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

fn chromedriver_binary() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("chromedriver"))
            .find(|p| p.exists())
    })
}

/// `<target>/artifacts/screenshots`, or `$WHATSUP_ARTIFACTS_DIR/screenshots`.
pub fn screenshot_dir() -> PathBuf {
    let base = match std::env::var_os("WHATSUP_ARTIFACTS_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("the target directory")
            .join("artifacts"),
    };
    base.join("screenshots")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// chromedriver's log endpoint (`POST /session/{id}/se/log`), which fantoccini
/// does not wrap.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

/// A DevTools protocol command through chromedriver
/// (`POST /session/{id}/goog/cdp/execute`).
#[derive(Debug)]
struct Cdp(Value);

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.0.to_string()))
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session, or returns
    /// `None` after [`super::skip_or_fail`] when they are not installed.
    pub async fn start() -> Option<Browser> {
        let (Some(driver_bin), Some(chrome)) = (chromedriver_binary(), chromium_binary()) else {
            super::skip_or_fail(
                "browser test: chromedriver or chromium is not installed \
                 (apt-get install chromium chromium-driver)",
            );
            return None;
        };
        let profile = tempfile::tempdir().expect("a profile directory");
        let shots = screenshot_dir();
        std::fs::create_dir_all(&shots).expect("the screenshot directory");
        // A port chosen free can be taken before chromedriver binds it: try again.
        for _ in 0..3 {
            let port = free_port();
            // Its own process group, which Chromium joins: one signal ends
            // them all, even when a failing test never reaches close().
            let mut driver = Command::new(&driver_bin)
                .process_group(0)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .arg(format!(
                    "--log-path={}",
                    profile.path().join("chromedriver.log").display()
                ))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromedriver");
            let url = format!("http://127.0.0.1:{port}");
            match Self::connect(&url, &chrome, profile.path()).await {
                Ok(client) => {
                    return Some(Browser {
                        client,
                        driver,
                        _profile: profile,
                        shots,
                    })
                }
                Err(e) => {
                    end_group(&mut driver);
                    eprintln!("chromedriver on port {port} did not start a session: {e}");
                }
            }
        }
        panic!("chromedriver did not start a Chromium session in three attempts");
    }

    async fn connect(url: &str, chrome: &Path, profile: &Path) -> Result<Client, String> {
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-quic",
            "--no-first-run",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-crash-reporter",
            "--disable-breakpad",
            "--hide-scrollbars",
            "--lang=en-GB",
            "--force-device-scale-factor=1",
            // Nothing leaves the machine: names other than localhost do not resolve.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
            "--window-size=1280,900",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!(
            "--user-data-dir={}",
            profile.join("chromium").display()
        )])
        .collect::<Vec<_>>();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": chrome, "args": args }),
        );
        caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        caps.insert("pageLoadStrategy".into(), json!("normal"));
        let mut last = String::new();
        // chromedriver answers once it has bound its port.
        for _ in 0..100 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(url)
                .await
            {
                Ok(c) => return Ok(c),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(last)
    }

    /// Opens `url` and waits for the load.
    pub async fn open(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    /// Sets the viewport to `width` CSS pixels (and `height`).
    pub async fn set_viewport(&self, width: u32, height: u32) {
        self.client
            .issue_cmd(Cdp(json!({
                "cmd": "Emulation.setDeviceMetricsOverride",
                "params": {
                    "width": width,
                    "height": height,
                    "deviceScaleFactor": 1,
                    "mobile": width < 600,
                }
            })))
            .await
            .expect("Emulation.setDeviceMetricsOverride");
    }

    pub async fn set_width(&self, width: u32) {
        self.set_viewport(width, 900).await;
    }

    /// The page's width and the viewport's, in CSS pixels.
    pub async fn widths(&self) -> (u64, u64) {
        let v = self
            .client
            .execute(
                "return [document.documentElement.scrollWidth, window.innerWidth];",
                vec![],
            )
            .await
            .expect("measure the page");
        (v[0].as_u64().unwrap(), v[1].as_u64().unwrap())
    }

    /// A PNG of the whole page at the current width, written as
    /// `<screenshot dir>/<name>.png`; the path is printed and returned.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let (_, width) = self.widths().await;
        let height = self
            .client
            .execute(
                "return Math.max(document.documentElement.scrollHeight, document.body ? document.body.scrollHeight : 0);",
                vec![],
            )
            .await
            .expect("page height")
            .as_u64()
            .unwrap_or(900)
            .clamp(200, 6000);
        self.set_viewport(width as u32, height as u32).await;
        let png = self.client.screenshot().await.expect("a screenshot");
        self.set_viewport(width as u32, 900).await;
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        eprintln!("screenshot: {}", path.display());
        path
    }

    /// Errors in the browser's log since the last call: script errors,
    /// content-security-policy violations, resources that failed to load.
    pub async fn console_errors(&self) -> Vec<String> {
        let entries = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("chromedriver's browser log");
        entries
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|e| e["level"] == "SEVERE")
                    .map(|e| e["message"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Runs axe-core in the page; returns the serious and critical
    /// violations and how many rules passed.
    pub async fn axe(&self) -> (Vec<Violation>, usize) {
        let source = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vendor/axe-core/axe.min.js"),
        )
        .expect("tests/vendor/axe-core/axe.min.js");
        self.client
            .execute(&format!("{source}\n;return typeof axe;"), vec![])
            .await
            .expect("inject axe-core");
        let result = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];\
                 axe.run(document, { resultTypes: ['violations'] })\
                   .then(r => done({ violations: r.violations, passes: r.passes.length }))\
                   .catch(e => done({ error: String(e) }));",
                vec![],
            )
            .await
            .expect("run axe-core");
        if let Some(e) = result.get("error") {
            panic!("axe-core failed: {e}");
        }
        let violations = result["violations"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .map(|v| Violation {
                id: v["id"].as_str().unwrap_or_default().into(),
                impact: v["impact"].as_str().unwrap_or_default().into(),
                help: v["help"].as_str().unwrap_or_default().into(),
                nodes: v["nodes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|n| format!("{} {}", n["target"], n["html"].as_str().unwrap_or("")))
                    .collect(),
            })
            .collect();
        let passes = result["passes"].as_u64().unwrap_or(0) as usize;
        (violations, passes)
    }

    /// Opens `url` at each width: a screenshot `<name>-<width>`, the console
    /// errors of the load, axe-core's serious and critical violations, and
    /// whether the page overflows the viewport sideways.
    pub async fn check(&self, url: &str, name: &str, widths: &[u32]) -> PageReport {
        let mut report = PageReport::default();
        for &width in widths {
            self.set_width(width).await;
            self.console_errors().await; // forget what came before
            self.open(url).await;
            report
                .screenshots
                .push(self.screenshot(&format!("{name}-{width}")).await);
            let (page, viewport) = self.widths().await;
            assert!(
                page <= viewport,
                "{name} at {width} px: the page is {page} px wide, wider than the viewport"
            );
            let (violations, passes) = self.axe().await;
            report.axe_passes = passes;
            report.violations.extend(violations);
            report.console_errors.extend(
                self.console_errors()
                    .await
                    .into_iter()
                    .map(|e| format!("at {width} px: {e}")),
            );
        }
        report
            .violations
            .dedup_by(|a, b| a.id == b.id && a.nodes == b.nodes);
        report
    }

    /// Clicks the element matching a CSS selector and waits until the
    /// page it leads to has loaded (a form POST navigates after the click
    /// has returned).
    pub async fn click(&self, css: &str) {
        self.client
            .execute("window.__whatsupBeforeClick = true;", vec![])
            .await
            .expect("mark the page");
        let el = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"));
        el.click()
            .await
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
        for _ in 0..200 {
            let done = self
                .client
                .execute(
                    "return window.__whatsupBeforeClick === undefined \
                     && document.readyState === 'complete';",
                    vec![],
                )
                .await
                .map(|v| v == Value::Bool(true))
                .unwrap_or(false); // between documents the script may fail
            if done {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("clicking {css} led to no new page within 10 s");
    }

    /// Ends the session (Chromium quits), then chromedriver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
        // Drop ends the process group.
    }
}

/// Kills chromedriver's process group (chromedriver and every Chromium
/// process it started) and reaps chromedriver.
fn end_group(driver: &mut Child) {
    let pgid = driver.id() as libc::pid_t;
    // SAFETY: kill(2) with a negative pid signals that process group only;
    // the group is chromedriver's own (process_group(0) at spawn).
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
    let _ = driver.wait();
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Also when a failing test never reached close().
        end_group(&mut self.driver);
    }
}

/// Fails with every problem of a report, named, or prints what passed.
pub fn assert_clean(name: &str, report: &PageReport, allowed_errors: &[&str]) {
    let errors: Vec<&String> = report
        .console_errors
        .iter()
        .filter(|e| !allowed_errors.iter().any(|a| e.contains(a)))
        .collect();
    let mut problems = String::new();
    for e in &errors {
        problems.push_str(&format!("\n  console: {e}"));
    }
    for v in &report.violations {
        problems.push_str(&format!("\n  axe: {v}"));
    }
    assert!(problems.is_empty(), "{name}:{problems}");
    assert!(report.axe_passes > 0, "{name}: axe-core checked no rule");
    eprintln!(
        "{name}: no console errors, no serious or critical axe violations ({} rules passed)",
        report.axe_passes
    );
}
