//! The files of deploy/, tested as installed: `systemd-analyze verify` and
//! an offline security review of the units, Caddy reading the Caddyfile,
//! and Debian's nginx with deploy/nginx/whatsup.conf in front of the real
//! `whatsup serve`: one-click unsubscribe through the proxy, the client's
//! address taken from X-Forwarded-For only when whatsup trusts it, and the
//! admin paths and /metrics not reachable through it.
//!
//! The deploy files are used as they are, with only their ports, paths and
//! binary replaced (each replacement must find its text, so the test
//! notices when the files change).

use crate::common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::sink::free_port;
use crate::common::TestDb;
use whatsup::config::Secret;

const SECRET: &str = "deploy-test-secret-that-is-long-enough-01234";

fn deploy(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(rel)
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `text` with `from` replaced by `to`; `from` must be there.
fn replace(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the deploy file no longer contains {from:?}"
    );
    text.replace(from, to)
}

#[test]
fn the_systemd_units_pass_systemd_analyze_verify_and_its_security_review() {
    if !have("systemd-analyze") {
        common::skip_or_fail("systemd-analyze (Debian package systemd) is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for unit in ["whatsup-serve.service", "whatsup-worker.service"] {
        let text = std::fs::read_to_string(deploy(&format!("systemd/{unit}"))).unwrap();
        for directive in [
            "User=whatsup",
            "ProtectSystem=strict",
            "StateDirectory=whatsup",
            "NoNewPrivileges=yes",
            "KillSignal=SIGTERM",
            "RestartPreventExitStatus=78",
        ] {
            assert!(text.contains(directive), "{unit} lacks {directive}");
        }
        // verify insists that the ExecStart binary exists.
        let text = replace(
            &text,
            "/usr/local/bin/whatsup",
            env!("CARGO_BIN_EXE_whatsup"),
        );
        let path = dir.path().join(unit);
        std::fs::write(&path, text).unwrap();
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{unit}: {said}");
        assert!(
            said.trim().is_empty(),
            "{unit}: systemd-analyze verify warns: {said}"
        );
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(&path)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        let level: f64 = said
            .lines()
            .find_map(|l| l.split("Overall exposure level for ").nth(1))
            .and_then(|rest| rest.split(':').nth(1))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{unit}: no exposure level in {said}"));
        assert!(
            level <= 2.0,
            "{unit}: exposure {level} (2.0 or less expected)\n{said}"
        );
    }
}

#[test]
fn caddy_reads_the_caddyfile_without_a_warning() {
    if !have("caddy") {
        common::skip_or_fail("caddy (Debian package caddy) is not installed");
        return;
    }
    let out = Command::new("caddy")
        .args(["adapt", "--adapter", "caddyfile", "--config"])
        .arg(deploy("caddy/Caddyfile"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("warn"), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = json.to_string();
    assert!(text.contains("127.0.0.1:8080"), "{text}");
    assert!(
        text.contains("/admin/*") && text.contains("/metrics"),
        "{text}"
    );
}

/// A running nginx with the deploy site; stopped when dropped.
struct Nginx {
    https: u16,
    http: u16,
    /// The configuration, logs and temporary files; removed last.
    _dir: tempfile::TempDir,
    child: Child,
}

impl Nginx {
    fn start(upstream: u16, certs: &Path) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let (https, http) = (free_port(), free_port());
        let site = std::fs::read_to_string(deploy("nginx/whatsup.conf")).unwrap();
        let site = replace(&site, "listen 80;", &format!("listen 127.0.0.1:{http};"));
        let site = replace(
            &site,
            "listen 443 ssl http2;",
            &format!("listen 127.0.0.1:{https} ssl http2;"),
        );
        let site: String = site
            .lines()
            .filter(|l| !l.contains("listen [::]"))
            .map(|l| format!("{l}\n"))
            .collect();
        let site = replace(
            &site,
            "/etc/letsencrypt/live/whatsup.example.org/fullchain.pem",
            &certs.join("server.pem").display().to_string(),
        );
        let site = replace(
            &site,
            "/etc/letsencrypt/live/whatsup.example.org/privkey.pem",
            &certs.join("server.key").display().to_string(),
        );
        let site = replace(
            &site,
            "server 127.0.0.1:8080;",
            &format!("server 127.0.0.1:{upstream};"),
        );
        let site = replace(
            &site,
            "root /var/www/letsencrypt;",
            &format!("root {};", dir.path().display()),
        );
        let root = dir.path().display();
        // SAFETY: geteuid has no preconditions.
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root;"
        } else {
            ""
        };
        std::fs::write(dir.path().join("site.conf"), site).unwrap();
        std::fs::write(
            dir.path().join("nginx.conf"),
            format!(
                "{user}\nworker_processes 1;\npid {root}/nginx.pid;\nerror_log {root}/error.log info;\n\
                 daemon off;\nevents {{ worker_connections 64; }}\nhttp {{\n\
                 access_log {root}/access.log;\nclient_body_temp_path {root}/body;\n\
                 proxy_temp_path {root}/proxy;\nfastcgi_temp_path {root}/fastcgi;\n\
                 uwsgi_temp_path {root}/uwsgi;\nscgi_temp_path {root}/scgi;\n\
                 include {root}/site.conf;\n}}\n"
            ),
        )
        .unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nginx");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", https)).is_err() {
            let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
            assert!(Instant::now() < deadline, "nginx did not start: {log}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx {
            https,
            http,
            _dir: dir,
            child,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT: nginx's graceful stop.
        common::stop_child(&mut self.child, libc::SIGQUIT);
    }
}

/// What curl got.
struct Got {
    status: u16,
    headers: String,
    body: String,
}

/// curl from 127.0.0.2 (so the client's address differs from nginx's
/// 127.0.0.1), trusting the test CA.
fn curl(url: &str, certs: &Path, extra: &[&str]) -> Got {
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("headers");
    let body = dir.path().join("body");
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "30",
            "--interface",
            "127.0.0.2",
            "--cacert",
        ])
        .arg(certs.join("ca.pem"))
        .arg("-D")
        .arg(&headers)
        .arg("-o")
        .arg(&body)
        .args(["-w", "%{http_code}"])
        .args(extra)
        .arg(url)
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Got {
        status: String::from_utf8_lossy(&out.stdout).trim().parse().unwrap(),
        headers: std::fs::read_to_string(headers).unwrap_or_default(),
        body: std::fs::read_to_string(body).unwrap_or_default(),
    }
}

/// `whatsup serve --no-worker` on `port`, behind https://localhost:`public`.
fn serve(db: &TestDb, port: u16, public: u16, trust: bool) -> common::Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_whatsup"))
        .args(["serve", "--no-worker", "--bind"])
        .arg(format!("127.0.0.1:{port}"))
        .current_dir(&db.config.general.data_dir)
        .env("WHATSUP_DATABASE_URL", &db.url)
        .env("WHATSUP_SECURITY_TOKEN_SECRET", SECRET)
        .env(
            "WHATSUP_NEWSLETTER_BASE_URL",
            format!("https://localhost:{public}"),
        )
        .env("WHATSUP_WEB_TRUST_FORWARDED_FOR", trust.to_string())
        .env("WHATSUP_WEB_TRACK_OPENS", "true")
        .env("WHATSUP_WEB_TRACK_IPS", "true")
        .env("WHATSUP_WEB_METRICS_BIND", "127.0.0.1:0")
        .env("WHATSUP_ADMIN_BIND", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let line = common::first_line(&mut child);
    assert!(line.contains("listening on"), "{line}");
    common::Running(child)
}

fn stop(server: common::Running) {
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_in_front_of_serve_passes_one_click_keeps_the_admin_private_and_forwards_the_client_address(
) {
    for tool in ["nginx", "curl"] {
        if !have(tool) {
            common::skip_or_fail(&format!("{tool} is not installed (apt-get install {tool})"));
            return;
        }
    }
    let certs = tempfile::tempdir().unwrap();
    if common::make_certificates(certs.path()).is_none() {
        common::skip_or_fail("openssl could not make test certificates");
        return;
    }
    let certs = certs.path();
    let db = common::sqlite().await;
    let id = common::running_campaign(
        &db,
        "email,name,organisation,kind,country\nreader@example.net,Reader,Office,embassy,FR\n",
        SECRET,
    )
    .await;
    let mut config = db.config.clone();
    config.security.token_secret = Secret::new(SECRET);
    let contact = db
        .store
        .contact("reader@example.net")
        .await
        .unwrap()
        .unwrap();
    let keys = whatsup::send::identity::token_keys(&config).unwrap();
    let tokens = whatsup::send::identity::link_tokens(&keys, id, contact.id);

    let port = free_port();
    let nginx = Nginx::start(port, certs);
    let public = format!("https://localhost:{}", nginx.https);
    let server = serve(&db, port, nginx.https, true);

    let health = curl(&format!("{public}/healthz"), certs, &[]);
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let plain = curl(&format!("http://localhost:{}/u/x", nginx.http), certs, &[]);
    assert_eq!(plain.status, 301, "plain http redirects to https");

    // The admin, the API and the metrics: nginx's own 404, never whatsup's.
    for path in [
        "/admin",
        "/admin/login",
        "/api/v1/contacts",
        "/api/v1/openapi.json",
        "/metrics",
    ] {
        let got = curl(&format!("{public}{path}"), certs, &[]);
        assert_eq!(got.status, 404, "{path}");
        assert!(
            !got.headers
                .to_ascii_lowercase()
                .contains("content-security-policy"),
            "{path} reached whatsup:\n{}",
            got.headers
        );
    }
    // The client's address: the one nginx saw (127.0.0.2), whatever the
    // client claims in its own X-Forwarded-For.
    let pixel = format!("{public}/t/o/{id}/{}", tokens.browser);
    let spoof = ["-H", "X-Forwarded-For: 203.0.113.9"];
    assert_eq!(curl(&pixel, certs, &spoof).status, 200);
    assert_eq!(
        db.store.tracking_ips(id).await.unwrap(),
        [Some("127.0.0.2".to_string())]
    );

    // RFC 8058 one-click through the proxy, as a mail provider sends it.
    let one_click = curl(
        &format!("{public}/u/{}", tokens.unsubscribe),
        certs,
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/x-www-form-urlencoded",
            "--data-binary",
            "List-Unsubscribe=One-Click",
        ],
    );
    assert_eq!(one_click.status, 200, "{}", one_click.body);
    let after = db
        .store
        .contact("reader@example.net")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.status, "unsubscribed");
    let history = db.store.status_history(after.id).await.unwrap();
    assert_eq!(history.last().unwrap().actor, "web");
    stop(server);

    // Without trust_forwarded_for, the address is nginx's (the socket's
    // peer), and a header sent straight to whatsup changes nothing.
    let server = serve(&db, port, nginx.https, false);
    assert_eq!(curl(&pixel, certs, &spoof).status, 200);
    let direct = format!("http://127.0.0.1:{port}/t/o/{id}/{}", tokens.browser);
    assert_eq!(curl(&direct, certs, &spoof).status, 200);
    stop(server);
    assert_eq!(
        db.store.tracking_ips(id).await.unwrap(),
        [
            Some("127.0.0.2".to_string()),
            Some("127.0.0.1".to_string()),
            Some("127.0.0.2".to_string())
        ]
    );
    drop(nginx);
}
