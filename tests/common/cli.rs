//! The real `whatsup` binary in a scratch directory with its own SQLite
//! file: run a command and read its output, or start a long-running one
//! (worker, serve) and read its stderr line by line while it runs.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A scratch directory with a database; every command runs there.
pub struct Cli {
    pub dir: tempfile::TempDir,
    /// Extra environment for every command.
    pub env: Vec<(String, String)>,
}

/// A secret long enough for `security.token_secret` (tests only).
pub const TOKEN_SECRET: &str = "cli-test-token-secret-0123456789abcdef";

impl Cli {
    /// A scratch directory; campaigns need no second person's approval
    /// here (the approval flow has tests of its own).
    pub fn new() -> Cli {
        Cli {
            dir: tempfile::tempdir().unwrap(),
            env: vec![("WHATSUP_NEWSLETTER_REQUIRE_APPROVAL".into(), "false".into())],
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The command, with the database in the scratch directory and every
    /// inherited `WHATSUP_*` variable but the test server's removed.
    pub fn command(&self, args: &[&str]) -> Command {
        let db = format!("sqlite://{}", self.dir.path().join("cli.db").display());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_whatsup"));
        cmd.args(["--database", &db])
            .args(args)
            .current_dir(self.dir.path())
            .env("USER", "tester");
        with_env(&mut cmd, &self.env);
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run whatsup")
    }

    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.command(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run whatsup")
    }

    /// Stdout of a command that must succeed.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed ({:?}): {}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let text = self.ok(args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {text}"))
    }

    /// Starts a long-running command; its stderr is read line by line.
    pub fn spawn(&self, args: &[&str], env: &[(&str, &str)]) -> Running {
        let mut cmd = self.command(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start whatsup");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || forward(stderr, tx));
        Running {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }
}

fn forward(stderr: ChildStderr, tx: mpsc::Sender<String>) {
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { return };
        if tx.send(line).is_err() {
            return;
        }
    }
}

/// A command that is still running.
pub struct Running {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    /// Every stderr line read so far.
    pub seen: Vec<String>,
}

impl Running {
    /// Reads stderr until a line satisfies `f` (returned), or fails after
    /// `limit` (a hang guard, not a timing assertion).
    pub fn wait_for(&mut self, what: &str, limit: Duration, f: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if f(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {what} within {limit:?}; stderr so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Sends `signal` and waits for the exit; returns its output (the rest
    /// of stderr in `seen`).
    pub fn stop(mut self, signal: libc::c_int) -> (Option<i32>, String, Vec<String>) {
        // SAFETY: signalling the child this test started, by its pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, signal);
        }
        let status = self.child.wait().expect("wait for whatsup");
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            use std::io::Read;
            let _ = out.read_to_string(&mut stdout);
        }
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        (status.code(), stdout, std::mem::take(&mut self.seen))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Removes every inherited `WHATSUP_*` variable but the test server's
/// from `cmd`, then sets `env`.
pub fn with_env(cmd: &mut Command, env: &[(String, String)]) {
    for (k, _) in std::env::vars() {
        if k.starts_with("WHATSUP_") && k != "WHATSUP_TEST_POSTGRES_URL" {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
}

/// Path of a file in the repository.
pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}
