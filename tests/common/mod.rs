//! Helpers shared by the integration tests: fresh real databases (an SQLite
//! file in a temporary directory, or a new PostgreSQL database on the server
//! named by `WHATSUP_TEST_POSTGRES_URL`), and the rule that in CI nothing is
//! skipped.
#![allow(dead_code)]

pub mod admin_pages;
pub mod bounces;
pub mod browser;
pub mod dovecot;
pub mod http;
pub mod nsd;
pub mod pgcluster;
pub mod sink;
pub mod workspace;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use whatsup::config::{Config, Secret};
use whatsup::import::{import_file, ImportOptions, ImportReport};
use whatsup::store::Store;

/// A store with whatever keeps it alive (the temp dir, or the database name).
pub struct TestDb {
    pub store: Store,
    pub config: Config,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

/// True when running in CI, where a missing service is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| !v.is_empty() && v != "0" && v != "false")
        .unwrap_or(false)
}

/// Skips (loudly) outside CI, fails in CI.
pub fn skip_or_fail(what: &str) {
    if in_ci() {
        panic!("{what}: required in CI, where no test may skip");
    }
    eprintln!("\n!!!!! SKIPPED: {what} !!!!!\n");
}

/// The configuration of a test database. Campaigns start without the
/// two-person approval here (tests that send are about sending); the
/// approval tests (`workspace_approval`) turn it back on.
pub fn test_config() -> Config {
    let mut config = Config::default();
    config.newsletter.require_approval = false;
    config
}

pub async fn sqlite() -> TestDb {
    sqlite_migrated(true).await
}

/// A fresh SQLite file, migrated or left empty.
pub async fn sqlite_migrated(migrate: bool) -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = test_config();
    config.database.auto_migrate = migrate;
    config.general.data_dir = dir.path().to_path_buf();
    // Tests run in parallel: the metrics listener takes any free port.
    config.web.metrics_bind = "127.0.0.1:0".into();
    let url = format!("sqlite://{}", dir.path().join("whatsup.db").display());
    config.database.url = Secret::new(url.clone());
    // An empty store is connected without the schema check (it would
    // refuse a schema behind this binary's).
    let store = if migrate {
        Store::open(&config).await
    } else {
        Store::connect(&url, &config).await
    }
    .expect("open sqlite store");
    TestDb {
        store,
        config,
        url,
        _dir: Some(dir),
    }
}

static DB_COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh PostgreSQL database, or `None` (after a loud skip) outside CI
/// when no server is configured.
pub async fn postgres() -> Option<TestDb> {
    postgres_migrated(true).await
}

/// A fresh PostgreSQL database, migrated or left empty.
pub async fn postgres_migrated(migrate: bool) -> Option<TestDb> {
    let Ok(base) = std::env::var("WHATSUP_TEST_POSTGRES_URL") else {
        skip_or_fail(
            "PostgreSQL test: WHATSUP_TEST_POSTGRES_URL is not set (scripts/test sets it)",
        );
        return None;
    };
    let name = format!(
        "wtestdb_{}_{}_{}",
        std::process::id(),
        DB_COUNTER.fetch_add(1, Ordering::Relaxed),
        chrono::Utc::now().timestamp_micros() % 1_000_000
    );
    let admin = Config::default();
    let admin_store = Store::connect(&base, &admin)
        .await
        .expect("connect to the PostgreSQL test server");
    if let Store::Postgres(pool) = &admin_store {
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(pool)
            .await
            .expect("create test database");
    }
    admin_store.close().await;
    let url = match base.rfind('/') {
        Some(i) => format!("{}/{}", &base[..i], name),
        None => panic!("WHATSUP_TEST_POSTGRES_URL has no database part: {base}"),
    };
    let mut config = test_config();
    config.database.url = Secret::new(url.clone());
    config.database.max_connections = 4;
    config.database.auto_migrate = migrate;
    config.web.metrics_bind = "127.0.0.1:0".into();
    let store = if migrate {
        Store::open(&config).await
    } else {
        Store::connect(&url, &config).await
    }
    .expect("open postgres store");
    Some(TestDb {
        store,
        config,
        url,
        _dir: None,
    })
}

/// Generates `#[tokio::test]`s that run each named async fn (taking a
/// `TestDb`) once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::common::sqlite().await).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(db) = super::common::postgres().await {
                        super::$name(db).await
                    }
                }
            )+
        }
    };
}

/// Path of a file in tests/data.
pub fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

/// Path of a seed file in subscribers/.
pub fn seed(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("subscribers")
        .join(rel)
}

pub async fn import(store: &Store, path: &Path, opts: &ImportOptions) -> ImportReport {
    import_file(store, path, opts, None, Arc::new(AtomicBool::new(false)))
        .await
        .unwrap_or_else(|e| panic!("import of {} failed: {e:#}", path.display()))
}

/// Writes `content` to a file in a fresh temp dir; returns (dir, path).
pub fn temp_csv(content: impl AsRef<[u8]>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("input.csv");
    std::fs::write(&path, content).expect("write csv");
    (dir, path)
}

/// Stores the sample issue (`samples/issue-214.md`, number 214).
pub async fn save_sample_issue(store: &Store) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/issue-214.md");
    let source = std::fs::read_to_string(&path).expect("read the sample issue");
    let issue = whatsup::compose::Issue::parse("samples/issue-214.md", &source).expect("parse it");
    store
        .save_issue(&whatsup::store::issues::IssueText {
            number: issue.number,
            subject: &issue.subject,
            date: issue.date,
            source_path: "samples/issue-214.md",
            source: &source,
            actor: &crate::common::actor(),
        })
        .await
        .expect("save the sample issue");
}

/// A draft campaign of issue 214 over SMTP to `segment`.
pub async fn draft_campaign(store: &Store, name: &str, segment: &str) -> i64 {
    store
        .create_campaign(&whatsup::store::campaigns::NewCampaign {
            name,
            issue_number: 214,
            segment,
            from_name: "WHAT'S UP Tokyo",
            from_address: "whatsup@example.org",
            reply_to: "",
            transport: "smtp",
            actor: &crate::common::actor(),
        })
        .await
        .expect("create the campaign")
}

/// A private CA and a certificate for localhost/127.0.0.1 signed by it.
pub fn make_certificates(dir: &Path) -> Option<()> {
    let run = |args: &[String]| {
        std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         extendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    let args = |line: &str| -> Vec<String> { line.split(' ').map(str::to_string).collect() };
    let ok = [
        format!("req -x509 {ec} -keyout ca.key -out ca.pem -days 30 -subj /CN=whatsup-test-CA"),
        format!("req {ec} -keyout server.key -out server.csr -subj /CN=localhost"),
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
         -days 30 -extfile ext.cnf"
            .to_string(),
    ]
    .iter()
    .all(|line| run(&args(line)));
    ok.then_some(())
}

/// Compares `actual` with `tests/snapshots/NAME`. Outside CI a missing
/// snapshot is written; set UPDATE_SNAPSHOTS=1 to rewrite one after a
/// deliberate change. A difference writes `NAME.new` beside it and fails.
pub fn snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some()
        || !path.exists() && std::env::var_os("CI").is_none()
    {
        std::fs::write(&path, actual).unwrap();
        eprintln!("wrote snapshot {}", path.display());
        return;
    }
    let expected =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if expected != actual {
        let new = path.with_extension(format!(
            "{}.new",
            path.extension().and_then(|e| e.to_str()).unwrap_or("")
        ));
        std::fs::write(&new, actual).unwrap();
        panic!(
            "{} differs from the rendering (written to {}); rerun with UPDATE_SNAPSHOTS=1 if the change is intended",
            path.display(),
            new.display()
        );
    }
}

/// The actor of changes a test makes directly through the store.
pub fn actor() -> whatsup::domain::Actor {
    whatsup::domain::Actor::system("test")
}

/// Runs the real binary on the database at `url` with no config file, and
/// returns its standard output; fails the test if it fails.
pub fn whatsup_ok(url: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_whatsup"))
        .args(args)
        .env("WHATSUP_CONFIG", "/dev/null")
        .env("WHATSUP_DATABASE_URL", url)
        .output()
        .expect("run whatsup");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The first line a child process prints on its piped stdout; the rest is
/// read (and dropped) by a thread, so that the child never writes into a
/// closed pipe (whatsup dies of SIGPIPE, as a command-line tool should).
pub fn first_line(child: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(child.stdout.take().expect("a piped stdout"));
    let mut line = String::new();
    reader.read_line(&mut line).expect("read the first line");
    std::thread::spawn(move || for _ in reader.lines() {});
    line
}

/// Imports `csv` (with its header), stores the sample issue and starts a
/// campaign of it to everyone over SMTP, signed with `secret`; returns its
/// id.
pub async fn running_campaign(db: &TestDb, csv: &str, secret: &str) -> i64 {
    let (_dir, path) = temp_csv(csv);
    import(&db.store, &path, &ImportOptions::default()).await;
    save_sample_issue(&db.store).await;
    let id = draft_campaign(&db.store, "running", "").await;
    let mut config = db.config.clone();
    config.security.token_secret = Secret::new(secret);
    whatsup::send::engine::start(
        &db.store,
        &config,
        id,
        &whatsup::domain::Actor::system("test"),
    )
    .await
    .expect("start the campaign")
    .expect("this test starts it");
    id
}

/// Sends `signal` to a child and waits up to five seconds for it to exit,
/// then kills it.
pub fn stop_child(child: &mut std::process::Child, signal: i32) {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, signal) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A child process that is stopped (SIGTERM, then SIGKILL) when dropped,
/// also when the test fails before it stops it.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            stop_child(&mut self.0, libc::SIGTERM);
        }
    }
}
