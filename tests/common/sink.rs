//! Postfix's `smtp-sink` on a loopback port, dumping every message to a
//! file, optionally answering 4xx (`-r`), 5xx (`-f`) or 421 (`-Q`) to some
//! commands. Killed when dropped.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Sink {
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
    _tmp: Option<tempfile::TempDir>,
}

/// A dumped message: the envelope smtp-sink saw and the message text.
#[derive(Debug, Clone)]
pub struct Dumped {
    pub mail_from: String,
    pub rcpt_to: String,
    pub text: String,
    pub modified: std::time::SystemTime,
}

impl Dumped {
    /// The first header with this name (unfolded), if any.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.text.split("\r\n\r\n").next().unwrap_or("");
        let head = head.split("\n\n").next().unwrap_or("");
        let mut found: Option<String> = None;
        for line in head.lines() {
            let line = line.trim_end_matches('\r');
            if let Some(v) = found.as_mut() {
                if line.starts_with(' ') || line.starts_with('\t') {
                    v.push(' ');
                    v.push_str(line.trim());
                    continue;
                }
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case(name) {
                    found = Some(v.trim().to_string());
                }
            }
        }
        found
    }
}

/// Whether smtp-sink is installed; skips loudly (fails in CI) when not.
pub fn available() -> bool {
    let ok = Command::new("sh")
        .args(["-c", "command -v smtp-sink"])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        super::skip_or_fail("smtp-sink (Debian package postfix) is not installed");
    }
    ok
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .unwrap()
        .port()
}

impl Sink {
    /// Starts a sink on a fresh port with its own dump directory.
    pub fn start(extra: &[&str]) -> Sink {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let mut s = Sink::start_on(free_port(), &dir, extra);
        s._tmp = Some(tmp);
        s
    }

    /// Starts a sink on `port` dumping into `dir` (which may already hold
    /// messages from an earlier sink).
    pub fn start_on(port: u16, dir: &Path, extra: &[&str]) -> Sink {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir).unwrap();
        // smtp-sink drops to `nobody` when run as root; let it write.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let mut cmd = Command::new("smtp-sink");
        if nix_is_root() {
            cmd.args(["-u", "nobody"]);
        }
        cmd.arg("-d")
            .arg(format!("{}/%Y%m%d%H%M%S.", dir.display()))
            .args(extra)
            .arg(format!("127.0.0.1:{port}"))
            .arg("256")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().expect("start smtp-sink");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "smtp-sink did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Sink {
            port,
            dir: dir.to_path_buf(),
            child,
            _tmp: None,
        }
    }

    /// Every message dumped so far.
    pub fn messages(&self) -> Vec<Dumped> {
        read_dumps(&self.dir)
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop();
    }
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// How many messages each recipient got.
pub fn per_recipient(msgs: &[Dumped]) -> std::collections::HashMap<String, usize> {
    let mut m = std::collections::HashMap::new();
    for d in msgs {
        *m.entry(d.rcpt_to.clone()).or_insert(0) += 1;
    }
    m
}

/// Reads smtp-sink dump files from `dir`.
pub fn read_dumps(dir: &Path) -> Vec<Dumped> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        if !path.is_file() {
            continue;
        }
        let Ok(raw) = std::fs::read(&path) else {
            continue;
        };
        let text = String::from_utf8_lossy(&raw).to_string();
        let mut mail_from = String::new();
        let mut rcpt_to = String::new();
        for line in text.lines().take(12) {
            if let Some(v) = line.strip_prefix("X-Mail-Args: ") {
                mail_from = angle_address(v);
            }
            if let Some(v) = line.strip_prefix("X-Rcpt-Args: ") {
                rcpt_to = angle_address(v);
            }
        }
        let modified = e
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH);
        out.push(Dumped {
            mail_from,
            rcpt_to,
            text,
            modified,
        });
    }
    out
}

/// The address inside `<...>` at the start of an smtp-sink args header.
fn angle_address(v: &str) -> String {
    v.trim()
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap_or("")
        .to_string()
}
