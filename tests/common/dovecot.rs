//! A real Dovecot on loopback: IMAP and POP3 for the mailbox intake tests,
//! and its SMTP submission service (STARTTLS, implicit TLS, AUTH; relaying
//! to smtp-sink) for the sending tests of TLS and AUTH:
//! its own `dovecot -F` with a generated configuration in a temporary
//! directory, free unprivileged ports, one passwd-file user with a plain
//! password (plaintext login allowed: loopback only), and a Maildir the test
//! delivers into directly, as a local delivery agent would.
//!
//! Run as root (CI), Dovecot's login processes must not be root: they run as
//! `dovenull`, its internal processes as `dovecot`, and the mail user is
//! `nobody` (the Maildir is handed to it). Run as anyone else, every process
//! and the mail are that user's.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use whatsup::config::{Imap, Pop3, Secret};

pub const USER: &str = "bounces";
pub const PASSWORD: &str = "dovecot-test-password";

/// A running Dovecot; stopped (SIGTERM) when dropped.
pub struct Dovecot {
    pub dir: tempfile::TempDir,
    pub imap_port: u16,
    pub pop3_port: u16,
    /// With [`Dovecot::start_tls`]: implicit-TLS ports.
    pub imaps_port: u16,
    pub pop3s_port: u16,
    /// With [`Dovecot::start_submission`]: SMTP submission with STARTTLS,
    /// and with implicit TLS.
    pub submission_port: u16,
    pub submissions_port: u16,
    child: Child,
    /// Owner of the Maildir files, when running as root.
    owner: Option<(u32, u32)>,
}

/// TLS material for [`Dovecot::start_tls`].
pub struct Tls<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The name of the user with this uid, from the passwd database.
fn user_name(uid: u32) -> String {
    let out = Command::new("id")
        .args(["-un", &uid.to_string()])
        .output()
        .expect("run id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The name of the group with this gid.
fn group_name(gid: u32) -> String {
    let out = Command::new("getent")
        .args(["group", &gid.to_string()])
        .output()
        .expect("run getent group");
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    line.split(':').next().unwrap_or_default().to_string()
}

impl Dovecot {
    /// Starts Dovecot without TLS, or returns `None` after
    /// [`super::skip_or_fail`] when it is not installed.
    pub fn start() -> Option<Dovecot> {
        Dovecot::launch(None, None)
    }

    /// Starts Dovecot with TLS: STARTTLS/STLS on the plain ports and
    /// implicit TLS on `imaps_port` and `pop3s_port`.
    pub fn start_tls(tls: Tls<'_>) -> Option<Dovecot> {
        Dovecot::launch(Some(tls), None)
    }

    /// Starts Dovecot with TLS and also its SMTP submission service
    /// (STARTTLS on `submission_port`, implicit TLS on `submissions_port`,
    /// AUTH required), which relays what it accepts to the SMTP server on
    /// `relay_port` (an smtp-sink).
    pub fn start_submission(tls: Tls<'_>, relay_port: u16) -> Option<Dovecot> {
        if !Path::new("/usr/lib/dovecot/submission").exists() {
            super::skip_or_fail(
                "Dovecot's submission service is not installed (apt-get install dovecot-submissiond)",
            );
            return None;
        }
        Dovecot::launch(Some(tls), Some(relay_port))
    }

    fn launch(tls: Option<Tls<'_>>, relay: Option<u16>) -> Option<Dovecot> {
        let binary = ["/usr/sbin/dovecot", "/usr/local/sbin/dovecot"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let Some(binary) = binary else {
            super::skip_or_fail(
                "Dovecot is not installed (apt-get install dovecot-imapd dovecot-pop3d)",
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        let (owner, users, mail_user, mail_group) = if euid == 0 {
            (
                Some((65534, 65534)),
                "default_internal_user = dovecot\ndefault_login_user = dovenull\n".to_string(),
                "65534".to_string(),
                "65534".to_string(),
            )
        } else {
            // SAFETY: getegid has no preconditions.
            let egid = unsafe { libc::getegid() };
            let me = user_name(euid);
            (
                None,
                format!(
                    "default_internal_user = {me}\ndefault_internal_group = {}\n\
                     default_login_user = {me}\n",
                    group_name(egid)
                ),
                euid.to_string(),
                egid.to_string(),
            )
        };
        // The mail user must reach the Maildir inside the temp dir.
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
        for sub in ["run", "state", "mail"] {
            std::fs::create_dir(root.join(sub)).unwrap();
        }
        let (imap_port, pop3_port) = (free_port(), free_port());
        let (imaps_port, pop3s_port) = if tls.is_some() {
            (free_port(), free_port())
        } else {
            (0, 0)
        };
        let (submission_port, submissions_port) = match relay {
            Some(_) => (free_port(), free_port()),
            None => (0, 0),
        };
        let submission = match relay {
            None => String::new(),
            Some(relay_port) => format!(
                r#"
hostname = localhost
submission_relay_host = 127.0.0.1
submission_relay_port = {relay_port}
service submission-login {{
  chroot =
  inet_listener submission {{
    address = 127.0.0.1
    port = {submission_port}
  }}
  inet_listener submissions {{
    address = 127.0.0.1
    port = {submissions_port}
    ssl = yes
  }}
}}
"#
            ),
        };
        let protocols = if relay.is_some() {
            "imap pop3 submission"
        } else {
            "imap pop3"
        };
        let ssl = match &tls {
            None => "ssl = no\n".to_string(),
            Some(t) => format!(
                "ssl = yes\nssl_cert = <{}\nssl_key = <{}\nssl_min_protocol = TLSv1.2\n",
                t.cert.display(),
                t.key.display()
            ),
        };
        let root_s = root.display();
        let conf = format!(
            r#"# Generated by tests/common/dovecot.rs
base_dir = {root_s}/run
state_dir = {root_s}/state
instance_name = whatsup-test-{imap_port}
log_path = {root_s}/dovecot.log
protocols = {protocols}
listen = 127.0.0.1
{ssl}
# Plain-text passwords on loopback only: this is a test server.
disable_plaintext_auth = no
auth_mechanisms = plain login
{users}first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:{root_s}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root_s}/passwd
}}
userdb {{
  driver = static
  args = uid={mail_user} gid={mail_group} home={root_s}/mail/%u
}}
# No chroot, so the login processes also work when not started as root.
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
  }}
}}
service pop3-login {{
  chroot =
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3_port}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {pop3s_port}
  }}
}}
{submission}"#
        );
        std::fs::write(root.join("dovecot.conf"), conf).unwrap();
        std::fs::write(root.join("passwd"), format!("{USER}:{{PLAIN}}{PASSWORD}\n")).unwrap();
        let maildir = root.join("mail").join(USER);
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        let child = Command::new(binary)
            .arg("-F")
            .arg("-c")
            .arg(root.join("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dovecot");
        let dovecot = Dovecot {
            dir,
            imap_port,
            pop3_port,
            imaps_port,
            pop3s_port,
            submission_port,
            submissions_port,
            child,
            owner,
        };
        dovecot.chown_tree(&dovecot.dir.path().join("mail"));
        dovecot.wait_ready();
        Some(dovecot)
    }

    /// Waits until IMAP greets as ready and POP3 answers.
    fn wait_ready(&self) {
        use std::io::{BufRead, BufReader};
        let deadline = Instant::now() + Duration::from_secs(20);
        let imap_ready = || -> bool {
            let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", self.imap_port)) else {
                return false;
            };
            s.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut lines = BufReader::new(s).lines();
            // "* OK Waiting for authentication process" comes first while
            // the auth process starts; "ready." once it is there.
            lines
                .by_ref()
                .take(3)
                .any(|l| l.is_ok_and(|l| l.contains("ready")))
        };
        let pop3_ready = || std::net::TcpStream::connect(("127.0.0.1", self.pop3_port)).is_ok();
        let submission_ready = || {
            self.submission_port == 0
                || std::net::TcpStream::connect(("127.0.0.1", self.submission_port)).is_ok()
        };
        while Instant::now() < deadline {
            if imap_ready() && pop3_ready() && submission_ready() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("dovecot did not become ready; its log:\n{}", self.log());
    }

    /// Dovecot's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    fn chown_tree(&self, path: &Path) {
        let Some((uid, gid)) = self.owner else {
            return;
        };
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
        if path.is_dir() {
            for e in std::fs::read_dir(path).unwrap() {
                self.chown_tree(&e.unwrap().path());
            }
        }
    }

    /// The Maildir of a folder: `INBOX` is the Maildir itself, others are
    /// Maildir++ `.Name` subdirectories.
    pub fn folder_dir(&self, folder: &str) -> PathBuf {
        let maildir = self.dir.path().join("mail").join(USER);
        if folder.eq_ignore_ascii_case("INBOX") {
            maildir
        } else {
            maildir.join(format!(".{folder}"))
        }
    }

    /// Delivers `raw` into the INBOX the way a delivery agent does (write
    /// to tmp/, rename into new/). File names carry increasing times, so
    /// Dovecot gives the messages UIDs in delivery order.
    pub fn deliver(&self, raw: &[u8]) {
        let maildir = self.folder_dir("INBOX");
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let name = format!(
            "{}.M0P{}Q{n}.whatsup-test",
            1_700_000_000 + n,
            std::process::id()
        );
        let tmp = maildir.join("tmp").join(&name);
        std::fs::write(&tmp, raw).unwrap();
        self.chown_tree(&tmp);
        std::fs::rename(&tmp, maildir.join("new").join(&name)).unwrap();
    }

    /// The messages in a folder (its cur/ and new/), in file-name order.
    pub fn messages(&self, folder: &str) -> Vec<Vec<u8>> {
        let dir = self.folder_dir(folder);
        let mut files = Vec::new();
        for sub in ["cur", "new"] {
            let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
                continue;
            };
            files.extend(entries.map(|e| e.unwrap().path()));
        }
        files.sort();
        files.iter().map(|p| std::fs::read(p).unwrap()).collect()
    }

    pub fn count(&self, folder: &str) -> usize {
        self.messages(folder).len()
    }

    /// Whether the folder exists at all.
    pub fn has_folder(&self, folder: &str) -> bool {
        self.folder_dir(folder).is_dir()
    }

    /// `[bounces.imap]` for this server, plain text on loopback.
    pub fn imap(&self) -> Imap {
        Imap {
            host: "127.0.0.1".into(),
            port: self.imap_port,
            tls: "none".into(),
            username: USER.into(),
            password: Secret::new(PASSWORD),
            timeout_secs: 20,
            ..Imap::default()
        }
    }

    /// `[bounces.pop3]` for this server, plain text on loopback.
    pub fn pop3(&self) -> Pop3 {
        Pop3 {
            host: "127.0.0.1".into(),
            port: self.pop3_port,
            tls: "none".into(),
            username: USER.into(),
            password: Secret::new(PASSWORD),
            timeout_secs: 20,
            ..Pop3::default()
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signalling the child this fixture started, by its pid.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
