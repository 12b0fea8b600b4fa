//! The README's examples, run: every `whatsup …` line of its `sh` blocks,
//! in order, in one scratch directory, through bash (so quotes, globs and
//! redirections work as in a reader's shell). A broken example fails.
//!
//! Commands that run until stopped (`worker`, `serve`, `bounces poll`
//! without `--once`, `issues preview --serve`) are started, waited for
//! until their first line of output, then stopped with SIGINT; they must
//! exit 0. The scratch directory holds what the examples name: the sample
//! issue (`samples/`), the bounce corpus (`tests/`), `list.csv` (the seed
//! list), `message.eml` (a bounce for someone@example.org), `photo.jpg`,
//! and a HOME; every listener binds port 0;
//! an smtp-sink stands in for the relay and a Dovecot for the bounce
//! mailbox. The placeholder `postgres://…` becomes a fresh database on the
//! test server. `doctor` judges this scratch machine (no DNS records, no
//! DKIM key), so its exit 1 is a verdict, not a broken example: it must
//! still print its report.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common;
use crate::common::cli::{repo, with_env, TOKEN_SECRET};

/// A hang guard per command (not a timing assertion).
const PATIENCE: Duration = Duration::from_secs(60);

/// A command from the README and the line it is on.
#[derive(Debug, Clone, PartialEq)]
struct Example {
    line: usize,
    command: String,
}

/// The `whatsup …` lines of the README's `sh` blocks (and those that pipe
/// a password variable into whatsup: `echo "$PASSWORD" | whatsup …`),
/// without their trailing comments.
fn examples(readme: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let mut in_sh = false;
    for (i, line) in readme.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(info) = trimmed.strip_prefix("```") {
            in_sh = !in_sh && info.trim() == "sh";
            continue;
        }
        if in_sh && (trimmed.starts_with("whatsup ") || pipes_a_secret(trimmed)) {
            out.push(Example {
                line: i + 1,
                command: strip_comment(trimmed).to_string(),
            });
        }
    }
    out
}

/// `echo "$NAME" | whatsup …`: a secret from the environment on stdin.
fn pipes_a_secret(line: &str) -> bool {
    line.strip_prefix("echo \"$")
        .and_then(|rest| rest.split_once("\" | whatsup "))
        .is_some_and(|(name, _)| name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
}

/// The command without a `# comment` (a `#` after a space, outside quotes).
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '\'' | '"') => quote = Some(c),
            (None, '#') if previous.is_whitespace() => return line[..i].trim_end(),
            _ => {}
        }
        previous = c;
    }
    line.trim_end()
}

/// Whether a command runs until it is stopped.
fn runs_until_stopped(command: &str) -> bool {
    let words: Vec<&str> = command.split_whitespace().collect();
    let has = |w: &str| words.contains(&w);
    has("worker")
        || has("serve")
        || (has("poll") && !has("--once"))
        || (has("preview") && has("--serve"))
}

#[test]
fn the_readme_examples_are_found_with_their_comments_removed() {
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let found = examples(&readme);
    let commands: Vec<&str> = found.iter().map(|e| e.command.as_str()).collect();
    for expected in [
        "whatsup migrate",
        "whatsup subscribers list --segment 'kind = embassy and region = \"Europe\"'",
        "whatsup issues preview 214 --serve",
        "whatsup campaigns schedule 1 --at \"2030-12-02 09:00\"",
        "whatsup bounces classify tests/data/bounces/*.eml --json",
        "whatsup completions bash > whatsup.bash",
        "echo \"$PASSWORD\" | whatsup users add ken@example.org --role operator --password-stdin",
    ] {
        assert!(
            commands.contains(&expected),
            "{expected:?} not in {commands:#?}"
        );
    }
    assert!(found.len() >= 45, "{}", found.len());
    assert_eq!(strip_comment("whatsup x 'a # b'  # c"), "whatsup x 'a # b'");
    assert!(runs_until_stopped("whatsup --log-format json worker"));
    assert!(runs_until_stopped("whatsup bounces poll imap"));
    assert!(!runs_until_stopped("whatsup bounces poll imap --once"));
    assert!(!runs_until_stopped("whatsup send 1 --no-wait"));
}

/// The scratch directory and the services the examples need.
struct Scratch {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    _sink: common::sink::Sink,
    dovecot: Option<common::dovecot::Dovecot>,
    /// A fresh PostgreSQL database for `postgres://…`, if the server is
    /// there, and the runtime its pool lives on.
    postgres: Option<common::TestDb>,
    _runtime: tokio::runtime::Runtime,
}

impl Scratch {
    fn new() -> Option<Scratch> {
        if !common::sink::available() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        for name in ["samples", "tests"] {
            std::os::unix::fs::symlink(repo(name), dir.path().join(name)).unwrap();
        }
        // The seed list, less one embassy the README adds by hand.
        let mut list = String::new();
        for file in ["subscribers/sister-cities.csv", "subscribers/embassies.csv"] {
            let text = std::fs::read_to_string(repo(file)).unwrap();
            for (i, line) in text.lines().enumerate() {
                if (i == 0 && !list.is_empty()) || line.contains("Embassy of Chile") {
                    continue;
                }
                list.push_str(line);
                list.push('\n');
            }
        }
        std::fs::write(dir.path().join("list.csv"), list).unwrap();
        let bounce = common::bounces::dsn(
            "bounces@tokyo.example.org",
            "someone@example.org",
            "5.1.1",
            "550 5.1.1 <someone@example.org>: user unknown",
            b"Subject: WHAT'S UP\r\n\r\nHello\r\n",
        );
        std::fs::write(dir.path().join("message.eml"), bounce).unwrap();
        // A photo for `media add`: a small gradient, as a JPEG.
        image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 128]))
            .save(dir.path().join("photo.jpg"))
            .unwrap();
        let sink = common::sink::Sink::start(&[]);
        let bin = Path::new(env!("CARGO_BIN_EXE_whatsup"));
        let path = format!(
            "{}:{}",
            bin.parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), path),
            ("HOME".into(), dir.path().display().to_string()),
            ("USER".into(), "readme".into()),
            ("WHATSUP_SECURITY_TOKEN_SECRET".into(), TOKEN_SECRET.into()),
            ("WHATSUP_WEB_BIND".into(), "127.0.0.1:0".into()),
            ("WHATSUP_WEB_METRICS_BIND".into(), "127.0.0.1:0".into()),
            // The admin API on a free port (its default, 8081, is shared).
            ("WHATSUP_ADMIN_BIND".into(), "127.0.0.1:0".into()),
            ("WHATSUP_NEWSLETTER_PREVIEW_PORT".into(), "0".into()),
            ("WHATSUP_SMTP_HOST".into(), "127.0.0.1".into()),
            ("WHATSUP_SMTP_PORT".into(), sink.port.to_string()),
            ("WHATSUP_SENDING_POLL_SECS".into(), "1".into()),
            // The passwords the account examples pipe in.
            ("PASSWORD".into(), "lantern-river-garden-Tokyo-1960".into()),
            ("NEW".into(), "vermilion-bridge-autumn-Sumida-2030".into()),
        ];
        let dovecot = common::dovecot::Dovecot::start();
        if let Some(d) = &dovecot {
            for (proto, port) in [("IMAP", d.imap_port), ("POP3", d.pop3_port)] {
                for (key, value) in [
                    ("HOST", "127.0.0.1".to_string()),
                    ("PORT", port.to_string()),
                    ("TLS", "none".to_string()),
                    ("USERNAME", common::dovecot::USER.to_string()),
                    ("PASSWORD", common::dovecot::PASSWORD.to_string()),
                ] {
                    env.push((format!("WHATSUP_BOUNCES_{proto}_{key}"), value));
                }
            }
        }
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let postgres = runtime.block_on(common::postgres());
        Some(Scratch {
            dir,
            env,
            _sink: sink,
            dovecot,
            postgres,
            _runtime: runtime,
        })
    }

    fn command(&self, example: &Example) -> Command {
        let mut cmd = Command::new("bash");
        // `exec`: the signal of a command that runs until stopped reaches
        // whatsup itself, not the shell.
        let command = match &self.postgres {
            Some(db) => example.command.replace("postgres://…", &db.url),
            None => example.command.clone(),
        };
        cmd.arg("-c")
            .arg(if command.starts_with("whatsup ") {
                format!("exec {command}")
            } else {
                command
            })
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        with_env(&mut cmd, &self.env);
        cmd
    }
}

/// Both output streams, line by line, into one channel.
fn forward(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    for stream in [Box::new(out) as Box<dyn Read + Send>, Box::new(err)] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
    }
    rx
}

/// Runs one example; `Err` says what went wrong.
fn run(scratch: &Scratch, example: &Example) -> Result<(), String> {
    let mut child = scratch
        .command(example)
        .spawn()
        .map_err(|e| format!("cannot start bash: {e}"))?;
    let lines = forward(&mut child);
    let mut seen = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    if runs_until_stopped(&example.command) {
        // Each says when it is ready, after it catches its signals.
        let ready = |l: &str| {
            [
                "worker started",
                "listening on",
                "serving the preview",
                "until Ctrl-C",
            ]
            .iter()
            .any(|w| l.contains(w))
        };
        loop {
            match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    let done = ready(&line);
                    seen.push(line);
                    if done {
                        break;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    return Err(format!(
                        "not ready within {PATIENCE:?}:\n{}",
                        seen.join("\n")
                    ));
                }
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            seen.extend(lines.try_iter());
            return Err(format!(
                "exited ({status}) instead of running:\n{}",
                seen.join("\n")
            ));
        }
        // SAFETY: signalling the child this test started, by its pid.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGINT);
        }
    }
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            seen.extend(lines.try_iter());
            return Err(format!(
                "still running after {PATIENCE:?}:\n{}",
                seen.join("\n")
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(5)) {
        seen.push(line);
    }
    // doctor's exit 1 is its verdict on this scratch machine.
    let verdict = example.command.starts_with("whatsup doctor")
        && status.code() == Some(1)
        && seen.iter().any(|l| l.starts_with("PASS"));
    if status.success() || verdict {
        Ok(())
    } else {
        Err(format!("{status}:\n{}", seen.join("\n")))
    }
}

#[test]
fn every_example_in_the_readme_runs() {
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let mut failures = Vec::new();
    let mut ran = 0;
    for example in examples(&readme) {
        if example.command.contains("poll") && scratch.dovecot.is_none()
            || example.command.contains("postgres://…") && scratch.postgres.is_none()
        {
            // Dovecot::start or common::postgres has said why, loudly (and
            // failed in CI).
            continue;
        }
        ran += 1;
        eprintln!("README.md:{}: {}", example.line, example.command);
        if let Err(why) = run(&scratch, &example) {
            failures.push(format!(
                "README.md:{}: {}\n  {}",
                example.line,
                example.command,
                why.replace('\n', "\n  ")
            ));
        }
    }
    assert!(ran >= 45, "only {ran} examples ran");
    assert!(
        failures.is_empty(),
        "{} README examples fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // What the examples left behind is what they say.
    let dir = scratch.dir.path();
    assert!(dir.join("cities.csv").is_file());
    assert!(dir.join("preview/issue-214.html").is_file());
    assert!(dir.join("whatsup.bash").is_file());
    assert!(dir.join(".local/share/man/man1/whatsup.1").is_file());
}
