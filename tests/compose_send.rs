//! `whatsup issues test-send` against a real SMTP server (Postfix's
//! smtp-sink on a free loopback port), and the preview command and server.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn smtp_sink() -> Option<PathBuf> {
    [
        "/usr/sbin/smtp-sink",
        "/usr/bin/smtp-sink",
        "/usr/local/sbin/smtp-sink",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// Ends the server when the test ends, even on failure.
struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn whatsup(dir: &Path, args: &[&str], env: &[(&str, String)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_whatsup"));
    cmd.args(args)
        .current_dir(root())
        .env("WHATSUP_CONFIG", root().join("config/whatsup.toml"))
        .env(
            "WHATSUP_DATABASE_URL",
            format!("sqlite://{}", dir.join("t.db").display()),
        );
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn test_send_delivers_the_issue_to_a_real_smtp_server() {
    let Some(sink) = smtp_sink() else {
        if std::env::var_os("CI").is_some() {
            panic!("smtp-sink (Postfix) is not installed, and CI requires the SMTP test");
        }
        eprintln!("\n*** SKIP: test_send_delivers_the_issue_to_a_real_smtp_server: smtp-sink is not installed ***\n");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("mail");
    std::fs::create_dir(&dump).unwrap();
    // smtp-sink drops privileges to -u when run as root; let it write here.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dump, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let port = free_port();
    let mut cmd = Command::new(sink);
    cmd.arg("-d").arg(format!("{}/%M.", dump.display()));
    if unsafe_is_root() {
        cmd.args(["-u", "nobody"]);
    }
    cmd.arg(format!("127.0.0.1:{port}")).arg("100");
    let _server = Guard(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "smtp-sink did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = whatsup(
        dir.path(),
        &[
            "issues",
            "test-send",
            "samples/issue-214.md",
            "--to",
            "editor@example.org",
        ],
        &[
            ("WHATSUP_SMTP_HOST", "127.0.0.1".into()),
            ("WHATSUP_SMTP_PORT", port.to_string()),
            ("WHATSUP_SMTP_TLS", "none".into()),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let file = loop {
        if let Some(f) = std::fs::read_dir(&dump).unwrap().flatten().next() {
            break f.path();
        }
        assert!(Instant::now() < deadline, "no message arrived");
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(200));
    let text = std::fs::read_to_string(file).unwrap();
    assert!(
        text.contains("X-Mail-Args: <whatsup@tokyo.example.org>"),
        "{text}"
    );
    assert!(text.contains("X-Rcpt-Args: <editor@example.org>"), "{text}");
    assert!(
        text.contains("Subject: Night gardens, river lanterns and a cooler Tokyo"),
        "{text}"
    );
    assert!(
        text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
        "{text}"
    );
    assert!(
        text.contains("Content-Type: text/html; charset=utf-8"),
        "{text}"
    );
}

fn unsafe_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[test]
fn preview_writes_html_text_and_eml_for_a_stored_contact() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("preview");
    let add = whatsup(
        dir.path(),
        &[
            "orgs",
            "add",
            "--kind",
            "city",
            "--name",
            "City of Example",
            "--city",
            "Example City",
        ],
        &[],
    );
    assert!(
        add.status.success(),
        "adding an organisation: {}",
        String::from_utf8_lossy(&add.stderr)
    );
    let contact_args = [
        "subscribers",
        "add",
        "mayor@city.example.net",
        "--name",
        "Jordan Lee",
        "--title",
        "Mayor",
        "--org",
        "City of Example",
    ];
    let c = whatsup(dir.path(), &contact_args, &[]);
    assert!(
        c.status.success(),
        "adding a contact: {}",
        String::from_utf8_lossy(&c.stderr)
    );
    let out = whatsup(
        dir.path(),
        &[
            "issues",
            "preview",
            "samples/issue-214.md",
            "--contact",
            "mayor@city.example.net",
            "--out",
            out_dir.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(out_dir.join("issue-214.html")).unwrap();
    let text = std::fs::read_to_string(out_dir.join("issue-214.txt")).unwrap();
    let eml = std::fs::read(out_dir.join("issue-214.eml")).unwrap();
    assert!(html.contains("Jordan Lee"), "personalised HTML");
    assert!(text.contains("Jordan Lee"), "personalised text");
    assert!(String::from_utf8_lossy(&eml).contains("To: Jordan Lee <mayor@city.example.net>"));
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preview_server_refreshes_when_the_issue_file_changes() {
    use whatsup::compose::{preview, Recipient};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("issue.md");
    let sample = std::fs::read_to_string(root().join("samples/issue-214.md")).unwrap();
    std::fs::write(&file, &sample).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let src = preview::Source {
        issue: file.clone(),
        newsletter: whatsup::config::Newsletter::default(),
        recipient: Recipient::sample(None),
    };
    let server = tokio::spawn(preview::serve(listener, src, async {
        let _ = rx.await;
    }));
    let get = move |p: &'static str| tokio::task::spawn_blocking(move || http_get(port, p));
    assert_eq!(get("/version").await.unwrap(), "1");
    assert!(get("/html").await.unwrap().contains("Gardens after dark"));
    assert!(get("/").await.unwrap().contains("width=\"375\""));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(
        &file,
        sample.replace("Gardens after dark", "Gardens by lantern light"),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if get("/version").await.unwrap() != "1" {
            break;
        }
        assert!(Instant::now() < deadline, "the preview did not refresh");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(get("/html")
        .await
        .unwrap()
        .contains("Gardens by lantern light"));
    let _ = tx.send(());
    server.await.unwrap().unwrap();
}
