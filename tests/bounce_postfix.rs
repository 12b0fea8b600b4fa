//! The Postfix pipe intake end to end, with no hand-made bounce anywhere:
//! whatsup sends a real campaign over SMTP to a private Postfix instance
//! started by the test, Postfix's local(8) delivery fails for a user that
//! does not exist, Postfix's bounce(8) writes the DSN to the campaign's VERP
//! return path, and a `pipe(8)` transport for the bounce domain runs the real
//! `whatsup bounces ingest --recipient ${original_recipient}`, which marks
//! the contact bounced in the real database (SQLite and PostgreSQL).
//!
//! The instance lives in a temporary directory (its own `main.cf`,
//! `master.cf`, queue and log on a free loopback port) and is stopped when
//! the test ends; the system's Postfix is left alone. Postfix runs as root
//! and its `pipe` refuses to run commands as root, so the pipe runs as
//! `nobody`, with a copy of the whatsup binary and a database it may write.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::common::TestDb;
use whatsup::config::{Config, Secret};
use whatsup::import::ImportOptions;
use whatsup::send::engine::{self, RunEnd};
use whatsup::send::worker::Worker;
use whatsup::store::Store;

const SECRET: &str = "postfix-pipe-test-secret-long-enough-0123456789";
/// The domain the private Postfix is the final destination for.
const DEST: &str = "dest.test";
/// The newsletter's own domain; its bounce address is piped to whatsup.
const NEWS: &str = "news.test";

/// A private Postfix instance; stopped on drop.
struct Postfix {
    conf: PathBuf,
    log: PathBuf,
    port: u16,
}

impl Postfix {
    /// Whether this machine can run one: Postfix installed and we are root.
    fn available() -> Result<(), String> {
        if !Path::new("/usr/sbin/postfix").exists() {
            return Err("Postfix is not installed (Debian package postfix)".into());
        }
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err("a private Postfix instance needs root".into());
        }
        Ok(())
    }

    /// Starts an instance in `root`, piping mail for `NEWS` to `pipe_argv`.
    fn start(root: &Path, pipe_argv: &str) -> Postfix {
        let conf = root.join("conf");
        let queue = root.join("queue");
        let data = root.join("data");
        for d in [&conf, &queue, &data] {
            std::fs::create_dir_all(d).unwrap();
        }
        chown(&data, "postfix");
        let port = common::sink::free_port();
        let log = root.join("maillog");
        let main_cf = format!(
            "compatibility_level = 3.6\n\
             queue_directory = {queue}\n\
             data_directory = {data}\n\
             maillog_file = {log}\n\
             maillog_file_prefixes = {root}\n\
             myhostname = mx.{DEST}\n\
             mydomain = {DEST}\n\
             myorigin = {DEST}\n\
             mydestination = {DEST}\n\
             inet_interfaces = loopback-only\n\
             inet_protocols = ipv4\n\
             mynetworks = 127.0.0.0/8\n\
             local_recipient_maps =\n\
             alias_maps =\n\
             alias_database =\n\
             relayhost =\n\
             smtp_dns_support_level = disabled\n\
             biff = no\n\
             transport_maps = inline:{{{NEWS}=whatsup:,fine@{DEST}=discard:}}\n",
            queue = queue.display(),
            data = data.display(),
            log = log.display(),
            root = root.display(),
        );
        std::fs::write(conf.join("main.cf"), main_cf).unwrap();
        let stock = std::fs::read_to_string("/etc/postfix/master.cf").unwrap();
        let mut master = String::new();
        for line in stock.lines() {
            if line.starts_with("smtp      inet") || line.starts_with("smtp inet") {
                master.push_str(&line.replacen("smtp ", &format!("127.0.0.1:{port} "), 1));
            } else {
                master.push_str(line);
            }
            master.push('\n');
        }
        master.push_str(&format!(
            "whatsup   unix  -       n       n       -       -       pipe\n  \
             flags=Rq user=nobody argv={pipe_argv}\n"
        ));
        std::fs::write(conf.join("master.cf"), master).unwrap();
        let c = conf.display().to_string();
        run("postconf", &["-c", &c, "-F", "*/*/chroot = n"]);
        run("postfix", &["-c", &c, "check"]);
        run("postfix", &["-c", &c, "start"]);
        let pf = Postfix { conf, log, port };
        pf.wait_for_log("daemon started", Duration::from_secs(30));
        pf
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.log_text().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("Postfix never logged {needle:?}; log:\n{}", self.log_text());
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("postfix")
            .args(["-c", &self.conf.display().to_string(), "stop"])
            .output();
    }
}

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn chown(path: &Path, user: &str) {
    run("chown", &["-R", user, &path.display().to_string()]);
}

/// A copy of the whatsup binary that `nobody` may run (the build's own is
/// usually under /root).
fn public_binary(dir: &Path) -> PathBuf {
    let to = dir.join("whatsup");
    std::fs::copy(env!("CARGO_BIN_EXE_whatsup"), &to).unwrap();
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
    to
}

fn sending_config(db: &TestDb, port: u16) -> Config {
    let mut c = db.config.clone();
    c.smtp.host = "127.0.0.1".into();
    c.smtp.port = port;
    c.smtp.timeout_secs = 10;
    c.sending.transport = "smtp".into();
    c.sending.retry_base_secs = 1;
    c.sending.retry_max_secs = 1;
    c.sending.bounce_address = format!("bounces@{NEWS}");
    c.security.token_secret = Secret::new(SECRET);
    c
}

async fn status_of(store: &Store, email: &str) -> String {
    store.contact(email).await.unwrap().unwrap().status
}

async fn a_dsn_from_postfix_through_the_pipe_marks_the_unknown_user_bounced(db: TestDb) {
    if let Err(why) = Postfix::available() {
        common::skip_or_fail(&format!("Postfix pipe intake: {why}"));
        return;
    }
    let root = tempfile::Builder::new()
        .prefix("whatsup-postfix")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let pipe_dir = root.path().join("pipe");
    std::fs::create_dir(&pipe_dir).unwrap();
    let binary = public_binary(&pipe_dir);

    // The database the pipe writes to must be writable by `nobody`.
    if let Some(file) = db.config.database.url.expose().strip_prefix("sqlite://") {
        chown(Path::new(file).parent().unwrap(), "nobody");
    }
    let mut pipe_config = db.config.clone();
    pipe_config.security.token_secret = Secret::new(SECRET);
    pipe_config.sending.bounce_address = format!("bounces@{NEWS}");
    pipe_config.general.data_dir = pipe_dir.join("data");
    let config_file = pipe_dir.join("whatsup.toml");
    std::fs::write(&config_file, toml::to_string(&pipe_config).unwrap()).unwrap();
    chown(&pipe_dir, "nobody");

    let postfix = Postfix::start(
        root.path(),
        &format!(
            "{} --config {} bounces ingest --recipient ${{original_recipient}}",
            binary.display(),
            config_file.display()
        ),
    );
    let config = sending_config(&db, postfix.port);

    let gone = format!("nosuch@{DEST}");
    let fine = format!("fine@{DEST}");
    let csv = format!(
        "email,name,title,organisation,kind,country,timezone\n\
         {gone},Gone Person,Counsellor,Embassy of Testland,embassy,FR,Europe/Paris\n\
         {fine},Fine Person,Counsellor,Embassy of Testland,embassy,FR,Europe/Paris\n"
    );
    let (_csv_dir, path) = common::temp_csv(csv);
    let report = common::import(&db.store, &path, &ImportOptions::default()).await;
    assert_eq!(report.created, 2, "{report:?}");
    common::save_sample_issue(&db.store).await;
    let campaign = common::draft_campaign(&db.store, "postfix pipe", "").await;
    engine::start(&db.store, &config, campaign, &crate::common::actor())
        .await
        .unwrap()
        .unwrap();
    let mut worker = Worker::new(db.store.clone(), config.clone()).unwrap();
    let end = worker
        .send_campaign(campaign, &AtomicBool::new(false), |_| {})
        .await
        .unwrap();
    assert_eq!(end, RunEnd::Finished);

    // Postfix bounces the message, then pipes its DSN to whatsup.
    let deadline = Instant::now() + Duration::from_secs(90);
    // The pipe commits before it exits, and Postfix logs the delivery only
    // after it exits, so wait for both.
    loop {
        let bounced = status_of(&db.store, &gone).await == "bounced";
        if bounced && postfix.log_text().contains("relay=whatsup") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "bounced in the store: {bounced}; the DSN's delivery to whatsup never logged; Postfix log:\n{}",
            postfix.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = postfix.log_text();
    assert!(log.contains("status=bounced (unknown user"), "{log}");
    assert_eq!(status_of(&db.store, &fine).await, "active");

    let events = db.store.bounces_for_email(&gone).await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e.kind, "hard");
    assert_eq!(e.reason, "user_unknown");
    assert_eq!(e.status, "5.1.1");
    assert!(e.diagnostic.contains("unknown user"), "{e:?}");
    assert_eq!(e.campaign_id, Some(campaign));
    assert_eq!(e.matched_by, "verp");
    assert_eq!(e.source, "pipe");
}

#[tokio::test]
async fn on_sqlite_a_dsn_from_postfix_through_the_pipe_marks_the_unknown_user_bounced() {
    a_dsn_from_postfix_through_the_pipe_marks_the_unknown_user_bounced(common::sqlite().await)
        .await;
}

#[tokio::test]
async fn on_postgres_a_dsn_from_postfix_through_the_pipe_marks_the_unknown_user_bounced() {
    if let Some(db) = common::postgres().await {
        a_dsn_from_postfix_through_the_pipe_marks_the_unknown_user_bounced(db).await;
    }
}
