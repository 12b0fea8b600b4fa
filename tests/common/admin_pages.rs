//! Speaking to the web admin's pages over loopback as a browser would:
//! signing in through the form, reading the CSRF token from a page, and
//! sending urlencoded and multipart forms with the session cookie; and
//! running the real binary (`whatsup serve`, `whatsup worker`) on a test
//! database for the browser tests.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use super::http::{self, Reply};
use super::TestDb;
use whatsup::web::auth::{CSRF_HEADER, SESSION_COOKIE};

/// A signed-in browser: its session cookie, the page's CSRF token, and
/// the other cookies the admin set (the one-time messages).
#[derive(Debug)]
pub struct Browser {
    pub addr: SocketAddr,
    pub cookie: String,
    pub csrf: String,
    jar: Mutex<Vec<(String, String)>>,
}

/// The value of the `name=value` cookie a reply sets, if any.
pub fn set_cookie(r: &Reply, name: &str) -> Option<String> {
    r.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, v)| v.split(';').next())
        .filter_map(|c| c.split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.to_string())
}

/// The CSRF token a page carries in its `csrf-token` meta tag.
pub fn csrf_of(page: &str) -> Option<String> {
    let at = page.find("<meta name=\"csrf-token\" content=\"")?;
    let rest = &page[at + "<meta name=\"csrf-token\" content=\"".len()..];
    Some(rest[..rest.find('"')?].to_string())
}

/// A urlencoded body from pairs.
pub fn urlencoded(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", http::form_value(k), http::form_value(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A multipart body of text fields, then files (field, file name, bytes).
pub fn multipart(fields: &[(&str, &str)], files: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----whatsupTestBoundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    for (k, name, bytes) in files {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Posts the login form; the reply (a 303 with a cookie when it worked).
pub async fn post_login(addr: SocketAddr, email: &str, password: &str, next: &str) -> Reply {
    let body = urlencoded(&[("email", email), ("password", password), ("next", next)]);
    http::post(
        addr,
        "/admin/login",
        "application/x-www-form-urlencoded",
        body.as_bytes(),
    )
    .await
}

impl Browser {
    /// Signs in through the form and reads the CSRF token from `/admin`.
    pub async fn sign_in(addr: SocketAddr, email: &str, password: &str) -> Browser {
        let r = post_login(addr, email, password, "/admin").await;
        assert_eq!(r.status, 303, "sign in as {email}: {}", r.body);
        let cookie = set_cookie(&r, SESSION_COOKIE).expect("a session cookie");
        let mut b = Browser {
            addr,
            cookie,
            csrf: String::new(),
            jar: Mutex::new(Vec::new()),
        };
        let home = b.get("/admin").await;
        let page = if home.status == 303 {
            b.get(home.header("location").unwrap()).await
        } else {
            home
        };
        b.csrf = csrf_of(&page.body).expect("the page's CSRF token");
        b
    }

    fn cookie_header(&self) -> String {
        let mut all = format!("{SESSION_COOKIE}={}", self.cookie);
        for (k, v) in self.jar.lock().unwrap().iter() {
            all.push_str(&format!("; {k}={v}"));
        }
        all
    }

    /// Keeps the cookies a reply sets (but the session's, which is fixed).
    fn keep_cookies(&self, r: &Reply) {
        let mut jar = self.jar.lock().unwrap();
        for (_, v) in r
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        {
            let Some((k, v)) = v.split(';').next().and_then(|c| c.split_once('=')) else {
                continue;
            };
            if k == SESSION_COOKIE {
                continue;
            }
            jar.retain(|(name, _)| name != k);
            if !v.is_empty() {
                jar.push((k.to_string(), v.to_string()));
            }
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        let cookie = self.cookie_header();
        let r = http::get_with(self.addr, path, &[("Cookie", &cookie)]).await;
        self.keep_cookies(&r);
        r
    }

    /// Posts a urlencoded form with the `csrf_token` field added.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let mut all = vec![("csrf_token", self.csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(
            path,
            "application/x-www-form-urlencoded",
            urlencoded(&all).as_bytes(),
            &[],
        )
        .await
    }

    /// Posts a multipart form with the `csrf_token` field first.
    pub async fn post_multipart(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        files: &[(&str, &str, &[u8])],
    ) -> Reply {
        let mut all = vec![("csrf_token", self.csrf.as_str())];
        all.extend_from_slice(fields);
        let (ct, body) = multipart(&all, files);
        self.post_raw(path, &ct, &body, &[]).await
    }

    /// Posts as htmx does: the token in the `X-CSRF-Token` header.
    pub async fn post_htmx(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let csrf = self.csrf.clone();
        self.post_raw(
            path,
            "application/x-www-form-urlencoded",
            urlencoded(fields).as_bytes(),
            &[(CSRF_HEADER, &csrf), ("HX-Request", "true")],
        )
        .await
    }

    /// Posts a body as is (no token added) with extra headers.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Reply {
        let cookie = self.cookie_header();
        let mut all = vec![("Cookie", cookie.as_str())];
        all.extend_from_slice(headers);
        let r = http::post_with(self.addr, path, content_type, &all, body).await;
        self.keep_cookies(&r);
        r
    }
}

/// A page's HTML with minijinja's escaped slashes (`&#x2f;`) put back, so
/// tests can look for paths as written.
pub fn html(r: &Reply) -> String {
    r.body.replace("&#x2f;", "/")
}

/// A draft campaign of issue `issue` to the embassies, made by the CLI
/// user (an operator's work, set up by the test).
pub async fn embassy_campaign(
    store: &whatsup::store::Store,
    config: &whatsup::config::Config,
    issue: i64,
    name: &str,
) -> whatsup::store::campaigns::Campaign {
    use whatsup::app::campaign_actions::{self, CreateCampaign};
    let operator = whatsup::domain::Actor::Cli {
        unix_user: "operator".into(),
        account: None,
    };
    campaign_actions::create(
        store,
        config,
        &operator,
        &CreateCampaign {
            issue,
            segment: "kind = embassy".into(),
            name: Some(name.into()),
            transport: Some("outbox".into()),
            ..CreateCampaign::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("create the campaign: {e}"))
    .campaign
}

/// The token secret the binaries of the browser tests share.
const SECRET: &str = "browser-test-secret-0123456789abcdef0123456789";

/// The real binary on the test database, sending through the sink slowly
/// enough (3 a second) for a pause to land mid-way.
pub fn whatsup(db: &TestDb, dir: &Path, sink_port: u16) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_whatsup"));
    c.current_dir(dir)
        .env("WHATSUP_CONFIG", "/dev/null")
        .env("WHATSUP_DATABASE_URL", &db.url)
        .env("WHATSUP_SECURITY_TOKEN_SECRET", SECRET)
        .env("WHATSUP_GENERAL_DATA_DIR", dir)
        .env("WHATSUP_NEWSLETTER_REQUIRE_APPROVAL", "true")
        .env("WHATSUP_SENDING_POLL_SECS", "1")
        .env("WHATSUP_SENDING_TRANSPORT", "smtp")
        .env("WHATSUP_SENDING_BOUNCE_ADDRESS", "bounces@example.org")
        .env("WHATSUP_SMTP_HOST", "127.0.0.1")
        .env("WHATSUP_SMTP_PORT", sink_port.to_string())
        .env("WHATSUP_SMTP_PER_SECOND", "3")
        .env("WHATSUP_WEB_METRICS_BIND", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    c
}

/// A child process ended when the test ends, even by a failed assertion.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            super::stop_child(&mut self.0, libc::SIGTERM);
        }
    }
}

/// Starts `whatsup serve --no-worker` and returns it with the admin's address.
pub fn serve(db: &TestDb, dir: &Path, sink_port: u16) -> (Running, SocketAddr) {
    use std::io::BufRead;
    let mut child = whatsup(db, dir, sink_port)
        .args([
            "serve",
            "--no-worker",
            "--bind",
            "127.0.0.1:0",
            "--admin-bind",
            "127.0.0.1:0",
        ])
        .spawn()
        .expect("start whatsup serve");
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let admin = loop {
        let line = lines
            .next()
            .expect("whatsup serve prints its addresses")
            .unwrap();
        if let Some(rest) = line.split("admin API on http://").nth(1) {
            break rest.split('/').next().unwrap().parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (Running(child), admin)
}
