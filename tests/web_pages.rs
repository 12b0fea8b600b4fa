//! `whatsup serve` over loopback with a real HTTP/1.1 client, on SQLite and
//! on PostgreSQL: RFC 8058 one-click POSTs byte for byte as mail providers
//! send them, GETs that change nothing, bad tokens, undo, preferences, view
//! in browser, the archive, tracking, rate limits, security headers,
//! metrics, and 1,000 parallel unsubscribes of which none is lost.

use crate::common;

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;

use crate::common::http::{self, Reply};
use crate::common::TestDb;
use whatsup::config::{Config, Secret};
use whatsup::delivery::tokens::{Claims, Purpose, TokenKeys};
use whatsup::import::ImportOptions;
use whatsup::store::{Contact, StatusChange, Store};
use whatsup::web::Server;

const SECRET: &str = "web-test-secret-0123456789abcdef0123456789";
const OLD_SECRET: &str = "web-test-old-secret-0123456789abcdef01234567";

/// A served store with three contacts and one sent campaign of issue 214.
struct Site {
    server: Server,
    store: Store,
    keys: TokenKeys,
    campaign: i64,
    contacts: Vec<Contact>,
    config: Config,
    _db: TestDb,
    _outbox: tempfile::TempDir,
}

impl Site {
    fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    fn token(&self, purpose: Purpose, contact: i64) -> String {
        self.keys.sign(&Claims {
            purpose,
            contact_id: contact as u64,
            campaign_id: self.campaign as u64,
        })
    }

    /// The HTML part of the message the outbox holds for `email`.
    fn sent_html(&self, email: &str) -> String {
        for entry in walk(self._outbox.path()) {
            let bytes = std::fs::read(&entry).unwrap();
            let msg = mail_parser::MessageParser::default()
                .parse(&bytes)
                .expect("an .eml in the outbox");
            let to = msg.to().and_then(|a| a.first()).and_then(|a| a.address());
            if to == Some(email) {
                return msg.body_html(0).expect("an HTML part").into_owned();
            }
        }
        panic!("no message to {email} in the outbox");
    }

    async fn status(&self, contact: &Contact) -> String {
        self.store
            .contact_by_id(contact.id)
            .await
            .unwrap()
            .unwrap()
            .status
    }
}

const CONTACTS: &str = "email,name,title,organisation,kind,country,tags\n\
ana@embassy.example.org,Ana Lima,Counsellor,Embassy of Brazil in Japan,embassy,BR,embassies;culture\n\
bo@city.example.net,Bo Berg,Mayor,City of Example,city,SE,sister-cities\n\
cy@embassy.example.com,Cy Moss,Attaché,Embassy of Chile in Japan,embassy,CL,embassies;press\n";

/// Sends the latest revision of issue 214 to every active contact through
/// the outbox; returns the campaign.
async fn send_to_everyone(store: &Store, config: &Config, name: &str) -> i64 {
    let campaign = store
        .create_campaign(&whatsup::store::campaigns::NewCampaign {
            name,
            issue_number: 214,
            segment: "",
            from_name: "WHAT'S UP Tokyo",
            from_address: "whatsup@example.org",
            reply_to: "",
            transport: "outbox",
            actor: "test",
        })
        .await
        .unwrap();
    whatsup::send::engine::start(store, config, campaign, "test")
        .await
        .unwrap();
    let mut worker = whatsup::send::worker::Worker::new(store.clone(), config.clone()).unwrap();
    worker
        .send_campaign(campaign, &AtomicBool::new(false), |_| {})
        .await
        .unwrap();
    campaign
}

async fn site(db: TestDb, tweak: impl FnOnce(&mut Config)) -> Site {
    let mut config = db.config.clone();
    config.security.token_secret = Secret::new(SECRET);
    config.security.previous_token_secrets = vec![Secret::new(OLD_SECRET)];
    config.web.rate_limit_per_second = 0;
    let outbox = tempfile::tempdir().unwrap();
    config.sending.outbox_dir = outbox.path().to_path_buf();
    config.sending.bounce_address = String::new();
    tweak(&mut config);
    let (_dir, csv) = common::temp_csv(CONTACTS);
    let r = common::import(&db.store, &csv, &ImportOptions::default()).await;
    assert_eq!(r.rejected, 0, "{:?}", r.errors);
    common::save_sample_issue(&db.store).await;
    let campaign = send_to_everyone(&db.store, &config, "web test").await;
    let contacts = db.store.list_contacts(None, None, 0).await.unwrap();
    let server = Server::start(
        db.store.clone(),
        config.clone(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    Site {
        server,
        store: db.store.clone(),
        keys: TokenKeys::new(SECRET, &[OLD_SECRET]).unwrap(),
        campaign,
        contacts,
        config,
        _db: db,
        _outbox: outbox,
    }
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files.extend(walk(&p));
        } else {
            files.push(p);
        }
    }
    files
}

/// The path of the first URL in `html` whose path starts with `prefix`.
fn path_in(html: &str, prefix: &str) -> String {
    let start = html
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix} link in the message"));
    let end = html[start..].find('"').unwrap();
    html[start..start + end].replace("&amp;", "&")
}

fn assert_security_headers(r: &Reply) {
    let csp = r.header("content-security-policy").expect("a CSP");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("script-src"), "{csp}");
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
}

/// The request Gmail makes for RFC 8058 one-click, byte for byte (its
/// User-Agent aside): a POST of `List-Unsubscribe=One-Click`, urlencoded,
/// with no cookie.
fn gmail_one_click(addr: SocketAddr, path: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 26\r\nConnection: close\r\n\r\nList-Unsubscribe=One-Click"
    )
    .into_bytes()
}

async fn one_click_post_unsubscribes_without_a_cookie_and_twice_is_harmless(db: TestDb) {
    let s = site(db, |_| {}).await;
    let ana = &s.contacts[0];
    let path = format!("/u/{}", s.token(Purpose::Unsubscribe, ana.id));
    let r = http::raw(s.addr(), &gmail_one_click(s.addr(), &path)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("location").is_none());
    assert!(r.header("set-cookie").is_none());
    assert!(r.body.contains("You are unsubscribed"), "{}", r.body);
    assert_security_headers(&r);
    // Committed before the reply: visible at once.
    assert_eq!(s.status(ana).await, "unsubscribed");
    let again = http::raw(s.addr(), &gmail_one_click(s.addr(), &path)).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, r.body);
    let history = s.store.status_history(ana.id).await.unwrap();
    let web: Vec<_> = history.iter().filter(|e| e.actor == "web").collect();
    assert_eq!(web.len(), 1, "{history:?}");
    assert_eq!(web[0].new_status, "unsubscribed");
    assert_eq!(web[0].evidence.0["campaign"], s.campaign);
    assert_eq!(web[0].evidence.0["method"], "one-click");
    // The others are untouched.
    assert_eq!(s.status(&s.contacts[1]).await, "active");
}

async fn a_multipart_one_click_post_unsubscribes(db: TestDb) {
    let s = site(db, |_| {}).await;
    let bo = &s.contacts[1];
    let body = "--AaB03x\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--AaB03x--\r\n";
    let r = http::post(
        s.addr(),
        &format!("/u/{}", s.token(Purpose::Unsubscribe, bo.id)),
        "multipart/form-data; boundary=AaB03x",
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(s.status(bo).await, "unsubscribed");
    let history = s.store.status_history(bo.id).await.unwrap();
    assert_eq!(history.last().unwrap().evidence.0["method"], "one-click");
}

async fn a_get_or_head_never_unsubscribes(db: TestDb) {
    let s = site(db, |_| {}).await;
    let ana = &s.contacts[0];
    let path = format!("/u/{}", s.token(Purpose::Unsubscribe, ana.id));
    for _ in 0..3 {
        let r = http::get(s.addr(), &path).await;
        assert_eq!(r.status, 200);
        assert!(r.body.contains("<form method=\"post\""), "{}", r.body);
        assert!(r.body.contains("<html lang=\"en\">"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_security_headers(&r);
    }
    let head = format!("HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let r = http::raw(s.addr(), head.as_bytes()).await;
    assert_eq!(r.status, 200);
    assert_eq!(s.status(ana).await, "active");
    assert!(s.store.status_history(ana.id).await.unwrap().len() <= 1);
}

async fn forged_truncated_revoked_and_wrong_purpose_tokens_get_one_friendly_404(db: TestDb) {
    let s = site(db, |_| {}).await;
    let ana = &s.contacts[0];
    let good = s.token(Purpose::Unsubscribe, ana.id);
    let mut flipped = good.clone().into_bytes();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    let revoked = TokenKeys::new("a secret that is no longer configured, 32+ bytes", &[])
        .unwrap()
        .sign(&Claims {
            purpose: Purpose::Unsubscribe,
            contact_id: ana.id as u64,
            campaign_id: s.campaign as u64,
        });
    let bad = [
        String::from_utf8(flipped).unwrap(),
        good[..good.len() - 1].to_string(),
        good[..8].to_string(),
        s.token(Purpose::Preferences, ana.id),
        s.token(Purpose::Browser, ana.id),
        s.token(Purpose::Bounce, ana.id),
        revoked,
        "not-a-token".into(),
        "A".repeat(300),
    ];
    let mut bodies = std::collections::BTreeSet::new();
    for t in &bad {
        for r in [
            http::get(s.addr(), &format!("/u/{t}")).await,
            http::raw(s.addr(), &gmail_one_click(s.addr(), &format!("/u/{t}"))).await,
            http::post(
                s.addr(),
                &format!("/u/{t}/undo"),
                "application/x-www-form-urlencoded",
                b"",
            )
            .await,
        ] {
            assert_eq!(r.status, 404, "{t}: {}", r.body);
            assert!(r.body.contains("This link is not valid"), "{}", r.body);
            assert!(!r.body.contains("example.org"));
            assert_security_headers(&r);
            bodies.insert(r.body);
        }
    }
    assert_eq!(bodies.len(), 1, "every bad token gets the same page");
    assert_eq!(s.status(ana).await, "active");
    // A token signed with the previous key still works (rotation).
    let old = TokenKeys::new(OLD_SECRET, &[]).unwrap().sign(&Claims {
        purpose: Purpose::Unsubscribe,
        contact_id: ana.id as u64,
        campaign_id: s.campaign as u64,
    });
    assert_eq!(http::get(s.addr(), &format!("/u/{old}")).await.status, 200);
    // A valid token for a contact that does not exist looks like any other.
    let ghost = s.token(Purpose::Unsubscribe, 999_999);
    let r = http::raw(s.addr(), &gmail_one_click(s.addr(), &format!("/u/{ghost}"))).await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("You are unsubscribed"));
}

async fn undo_resubscribes_only_what_this_token_unsubscribed(db: TestDb) {
    let s = site(db, |_| {}).await;
    let (ana, bo) = (&s.contacts[0], &s.contacts[1]);
    let t = s.token(Purpose::Unsubscribe, ana.id);
    let form = "application/x-www-form-urlencoded";
    let r = http::post(s.addr(), &format!("/u/{t}"), form, b"confirm=yes").await;
    // minijinja writes '/' in attribute values as "&#x2f;".
    let page = r.body.replace("&#x2f;", "/");
    assert!(page.contains(&format!("action=\"/u/{t}/undo\"")), "{page}");
    assert_eq!(s.status(ana).await, "unsubscribed");
    let r = http::post(s.addr(), &format!("/u/{t}/undo"), form, b"").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("You are subscribed again"), "{}", r.body);
    assert_eq!(s.status(ana).await, "active");
    let history = s.store.status_history(ana.id).await.unwrap();
    let last = history.last().unwrap();
    assert_eq!(
        (last.actor.as_str(), last.new_status.as_str()),
        ("web", "active")
    );
    assert_eq!(last.evidence.0["method"], "undo");
    assert_eq!(history.iter().filter(|e| e.actor == "web").count(), 2);

    // An unsubscribe made elsewhere (by an operator) is not undone.
    s.store
        .set_status(
            &bo.email,
            &StatusChange {
                status: whatsup::domain::ContactStatus::Unsubscribed,
                reason: "asked by email",
                actor: "cli:test",
                evidence: serde_json::json!({}),
            },
        )
        .await
        .unwrap();
    let tb = s.token(Purpose::Unsubscribe, bo.id);
    let r = http::post(s.addr(), &format!("/u/{tb}/undo"), form, b"").await;
    assert!(r.body.contains("could not be undone"), "{}", r.body);
    assert_eq!(s.status(bo).await, "unsubscribed");

    // A bounced contact is never reactivated, even after a web unsubscribe.
    let cy = &s.contacts[2];
    s.store
        .set_status(
            &cy.email,
            &StatusChange {
                status: whatsup::domain::ContactStatus::Bounced,
                reason: "5.1.1",
                actor: "bounce",
                evidence: serde_json::json!({}),
            },
        )
        .await
        .unwrap();
    let tc = s.token(Purpose::Unsubscribe, cy.id);
    let r = http::raw(s.addr(), &gmail_one_click(s.addr(), &format!("/u/{tc}"))).await;
    assert_eq!(r.status, 200);
    http::post(s.addr(), &format!("/u/{tc}/undo"), form, b"").await;
    assert_eq!(s.status(cy).await, "bounced");
}

async fn preferences_show_and_save_name_title_and_only_the_public_topics(db: TestDb) {
    let s = site(db, |_| {}).await;
    let ana = &s.contacts[0];
    let path = format!("/p/{}", s.token(Purpose::Preferences, ana.id));
    let r = http::get(s.addr(), &path).await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("value=\"Ana Lima\""), "{}", r.body);
    assert!(r
        .body
        .contains("<label for=\"tag-culture\">Culture</label>"));
    assert!(r
        .body
        .contains("id=\"tag-culture\" name=\"tag\" value=\"culture\" checked"));
    assert!(!r.body.contains("embassies"), "private tags stay private");
    let body = format!(
        "name={}&title={}&tag=economy&tag=press&tag=vip",
        http::form_value("Ana Lima-Souza"),
        http::form_value("Minister Counsellor")
    );
    let r = http::post(
        s.addr(),
        &path,
        "application/x-www-form-urlencoded",
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Your preferences have been saved"));
    let c = s.store.contact_by_id(ana.id).await.unwrap().unwrap();
    assert_eq!(c.name, "Ana Lima-Souza");
    assert_eq!(c.title, "Minister Counsellor");
    assert_eq!(c.tag_list(), vec!["economy", "embassies", "press"]);
    // An unsubscribe token does not open the preferences page.
    let wrong = format!("/p/{}", s.token(Purpose::Unsubscribe, ana.id));
    assert_eq!(http::get(s.addr(), &wrong).await.status, 404);
}

async fn view_in_browser_shows_the_issue_as_received_but_no_personal_links(db: TestDb) {
    let s = site(db, |_| {}).await;
    let ana = &s.contacts[0];
    let t = s.token(Purpose::Browser, ana.id);
    let r = http::get(s.addr(), &format!("/v/{}/{t}", s.campaign)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Ana Lima"), "the greeting is personal");
    assert!(r.body.contains("No. 214"));
    assert!(!r.body.contains("/u/"), "no unsubscribe link");
    assert!(!r.body.contains("/p/"), "no preferences link");
    assert!(r.body.contains("/links"));
    let csp = r.header("content-security-policy").unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("script"));
    // Another campaign in the path, or another purpose's token: 404.
    let other = format!("/v/{}/{t}", s.campaign + 1);
    assert_eq!(http::get(s.addr(), &other).await.status, 404);
    let unsub = s.token(Purpose::Unsubscribe, ana.id);
    let r = http::get(s.addr(), &format!("/v/{}/{unsub}", s.campaign)).await;
    assert_eq!(r.status, 404);
}

async fn the_archive_lists_sent_issues_without_personal_data(db: TestDb) {
    let s = site(db, |_| {}).await;
    let r = http::get(s.addr(), "/archive").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("href=\"/archive/214\""), "{}", r.body);
    let r = http::get(s.addr(), "/archive/214").await;
    assert_eq!(r.status, 200);
    for c in &s.contacts {
        assert!(!r.body.contains(&c.email), "{} leaked", c.email);
        assert!(!r.body.contains(&c.name), "{} leaked", c.name);
    }
    assert!(!r.body.contains("/u/") && !r.body.contains("/p/") && !r.body.contains("/v/"));
    let feed = http::get(s.addr(), "/archive/feed.xml").await;
    assert_eq!(feed.status, 200);
    assert!(feed
        .header("content-type")
        .unwrap()
        .starts_with("application/atom+xml"));
    assert!(feed
        .body
        .contains("<feed xmlns=\"http://www.w3.org/2005/Atom\">"));
    assert!(feed
        .body
        .contains("<id>https://whatsup.tokyo.example.org/archive/214</id>"));
    // An issue that was never sent is not in the archive.
    assert_eq!(http::get(s.addr(), "/archive/999").await.status, 404);
}

async fn the_archive_can_be_switched_off(db: TestDb) {
    let s = site(db, |c| c.web.archive = false).await;
    for path in ["/archive", "/archive/214", "/archive/feed.xml"] {
        assert_eq!(http::get(s.addr(), path).await.status, 404, "{path}");
    }
}

async fn a_thousand_parallel_unsubscribes_lose_none(db: TestDb) {
    let mut csv = String::from("email,name\n");
    for i in 0..1000 {
        csv.push_str(&format!("p{i:04}@many.example.org,Person {i}\n"));
    }
    let (_dir, path) = common::temp_csv(csv);
    common::import(&db.store, &path, &ImportOptions::default()).await;
    let s = site(db, |_| {}).await;
    let segment = whatsup::domain::segment::Segment::parse("email ~ \"many.example.org\"").unwrap();
    let many = s
        .store
        .list_contacts(Some(&segment), None, 0)
        .await
        .unwrap();
    assert_eq!(many.len(), 1000);
    let addr = s.addr();
    let mut tasks = Vec::new();
    for c in &many {
        let req = gmail_one_click(addr, &format!("/u/{}", s.token(Purpose::Unsubscribe, c.id)));
        tasks.push(tokio::spawn(
            async move { http::raw(addr, &req).await.status },
        ));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let unsubscribed = whatsup::domain::segment::Segment::parse(
        "email ~ \"many.example.org\" and status = unsubscribed",
    )
    .unwrap();
    assert_eq!(
        s.store.count_contacts(Some(&unsubscribed)).await.unwrap(),
        1000
    );
    for c in &many {
        let h = s.store.status_history(c.id).await.unwrap();
        assert_eq!(
            h.iter()
                .filter(|e| e.actor == "web" && e.new_status == "unsubscribed")
                .count(),
            1,
            "{}",
            c.email
        );
    }
    let m = http::get(addr, "/metrics").await;
    assert!(
        m.body.contains("whatsup_web_unsubscribes_total 1000"),
        "{}",
        m.body
    );
}

async fn healthz_and_metrics_report_sends_unsubscribes_and_latency(db: TestDb) {
    let s = site(db, |_| {}).await;
    let h = http::get(s.addr(), "/healthz").await;
    assert_eq!((h.status, h.body.as_str()), (200, "ok\n"));
    let t = s.token(Purpose::Unsubscribe, s.contacts[0].id);
    http::raw(s.addr(), &gmail_one_click(s.addr(), &format!("/u/{t}"))).await;
    let m = http::get(s.addr(), "/metrics").await;
    assert_eq!(m.status, 200);
    assert!(m
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    for line in [
        "whatsup_messages_sent_total 3",
        "whatsup_messages_failed_total 0",
        "whatsup_messages_retried_total 0",
        "whatsup_queue_depth 0",
        "whatsup_unsubscribes_total 1",
        "whatsup_bounces_total 0",
        "whatsup_web_unsubscribes_total 1",
        "# TYPE whatsup_http_request_duration_seconds histogram",
        "whatsup_http_request_duration_seconds_count{route=\"/u/{token}\",method=\"POST\",status=\"2xx\"} 1",
    ] {
        assert!(m.body.contains(line), "missing {line:?} in\n{}", m.body);
    }
}

async fn public_pages_are_rate_limited_per_client(db: TestDb) {
    let s = site(db, |c| {
        c.web.rate_limit_per_second = 1;
        c.web.rate_limit_burst = 3;
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(http::get(s.addr(), "/archive").await.status);
    }
    assert_eq!(&statuses[..3], &[200, 200, 200]);
    assert_eq!(statuses[4], 429, "{statuses:?}");
    // Operations endpoints are not limited.
    assert_eq!(http::get(s.addr(), "/healthz").await.status, 200);
}

async fn tracking_is_off_by_default_and_counts_only_issue_links_when_on(db: TestDb) {
    let off = site(db, |_| {}).await;
    let t = off.token(Purpose::Browser, off.contacts[0].id);
    let pixel = format!("/t/o/{}/{t}", off.campaign);
    assert_eq!(http::get(off.addr(), &pixel).await.status, 404);
    let db = if matches!(off.store, Store::Sqlite(_)) {
        common::sqlite().await
    } else {
        match common::postgres().await {
            Some(db) => db,
            None => return,
        }
    };
    let s = site(db, |c| {
        c.web.track_opens = true;
        c.web.track_clicks = true;
    })
    .await;
    // The message as sent carries the pixel and tracked links to the issue;
    // the personal links stay direct.
    let html = s.sent_html(&s.contacts[0].email);
    assert!(html.contains("/u/"), "the unsubscribe link is not tracked");
    assert!(!html.contains("/t/c/0/"), "{html}");
    let pixel = path_in(&html, &format!("/t/o/{}/", s.campaign));
    let click = path_in(&html, &format!("/t/c/{}/", s.campaign));
    let r = http::get(s.addr(), &pixel).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/gif"));
    assert_eq!(&r.raw_body[..6], b"GIF89a");
    let r = http::get(s.addr(), &click).await;
    assert_eq!(r.status, 302, "{click}");
    let target = r.header("location").unwrap().to_string();
    assert!(target.starts_with("http"), "{target}");
    let n: usize = click.rsplit('/').next().unwrap().parse().unwrap();
    assert!(
        !html.contains(&format!("href=\"{target}\"")),
        "{target} is still linked directly"
    );
    // Only numbered links of the issue: no open redirect.
    let t = s.token(Purpose::Browser, s.contacts[0].id);
    let r = http::get(s.addr(), &format!("/t/c/{}/{t}/9999", s.campaign)).await;
    assert_eq!(r.status, 404);
    assert!(n < 9999);
    let forged = s.token(Purpose::Unsubscribe, s.contacts[0].id);
    assert_eq!(
        http::get(s.addr(), &format!("/t/c/{}/{forged}/{n}", s.campaign))
            .await
            .status,
        404
    );
    let counts = s.store.tracking_counts(s.campaign).await.unwrap();
    assert_eq!(counts.opens, 1);
    assert_eq!(counts.clicks, vec![(target.clone(), 1)]);
    // The operator sees the counts with the campaign.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_whatsup"))
        .args(["campaigns", "show", &s.campaign.to_string(), "--json"])
        .env("WHATSUP_CONFIG", "/dev/null")
        .env("WHATSUP_DATABASE_URL", &s._db.url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tracking"]["opens"], 1, "{v}");
    assert_eq!(v["tracking"]["clicks"][0][0], target.as_str(), "{v}");
    assert_eq!(
        s.store.tracking_ips(s.campaign).await.unwrap(),
        vec![None, None],
        "no IP stored unless track_ips"
    );
}

/// A revision of the sample with merge tags, sent to everyone: the archive
/// shows their defaults or neutral words, never a recipient's details.
async fn the_archive_shows_merge_tags_with_neutral_values_and_no_ones_details(db: TestDb) {
    let s = site(db, |_| {}).await;
    let source = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/issue-214.md"),
    )
    .unwrap()
    .replacen(
        "subject = \"Night gardens, river lanterns and a cooler Tokyo this summer\"",
        "subject = \"Summer news for {{ recipient.organisation or 'our partners' }}\"",
        1,
    )
    .replacen(
        "Welcome to the July issue of WHAT'S UP.",
        "Dear {{ recipient.name }} of {{ recipient.organisation }}, welcome to the July issue.",
        1,
    );
    let issue = whatsup::compose::Issue::parse("tagged.md", &source).unwrap();
    s.store
        .save_issue(&whatsup::store::issues::IssueText {
            number: 214,
            subject: &issue.subject,
            date: issue.date,
            source_path: "tagged.md",
            source: &source,
            actor: "test",
        })
        .await
        .unwrap();
    send_to_everyone(&s.store, &s.config, "tagged").await;
    let page = http::get(s.addr(), "/archive/214").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("Dear colleague of your organisation, welcome"),
        "neutral words: {}",
        page.body
    );
    assert!(!page.body.contains("{{"), "no braces");
    for c in &s.contacts {
        assert!(!page.body.contains(&c.name), "{} leaked", c.name);
        let org = c.org_name.as_deref().unwrap();
        assert!(!page.body.contains(org), "{org} leaked");
    }
    let index = http::get(s.addr(), "/archive").await;
    assert!(
        index.body.contains("Summer news for our partners"),
        "{}",
        index.body
    );
    let feed = http::get(s.addr(), "/archive/feed.xml").await;
    assert!(
        feed.body.contains("Summer news for our partners"),
        "{}",
        feed.body
    );
    assert!(!feed.body.contains("{{"));
}

on_both_backends!(
    the_archive_shows_merge_tags_with_neutral_values_and_no_ones_details,
    one_click_post_unsubscribes_without_a_cookie_and_twice_is_harmless,
    a_multipart_one_click_post_unsubscribes,
    a_get_or_head_never_unsubscribes,
    forged_truncated_revoked_and_wrong_purpose_tokens_get_one_friendly_404,
    undo_resubscribes_only_what_this_token_unsubscribed,
    preferences_show_and_save_name_title_and_only_the_public_topics,
    view_in_browser_shows_the_issue_as_received_but_no_personal_links,
    the_archive_lists_sent_issues_without_personal_data,
    the_archive_can_be_switched_off,
    a_thousand_parallel_unsubscribes_lose_none,
    healthz_and_metrics_report_sends_unsubscribes_and_latency,
    public_pages_are_rate_limited_per_client,
    tracking_is_off_by_default_and_counts_only_issue_links_when_on,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serve_command_listens_runs_the_worker_and_stops_on_sigterm() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_whatsup"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("WHATSUP_CONFIG", "/dev/null")
        .env("WHATSUP_GENERAL_DATA_DIR", dir.path())
        .env("WHATSUP_SECURITY_TOKEN_SECRET", SECRET)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start whatsup serve");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
        .await
        .expect("whatsup serve prints its address")
        .unwrap()
        .unwrap();
    assert!(line.contains("worker running"), "{line}");
    let addr: SocketAddr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    let r = http::get(addr, "/healthz").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    let pid = child.id().unwrap() as i32;
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait())
        .await
        .expect("whatsup serve stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

/// A minimal W3C WebDriver client over the test HTTP client: enough to open
/// pages, click, read the page and take screenshots through chromedriver.
struct WebDriver {
    addr: SocketAddr,
    session: String,
}

impl WebDriver {
    async fn call(&self, method: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
        let body = body.to_string();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        // chromedriver keeps the socket open despite `Connection: close`:
        // read the headers, then exactly Content-Length bytes.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut sock = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        sock.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 65536];
        let (status, body) = loop {
            let n = sock.read(&mut chunk).await.unwrap();
            assert!(n > 0, "chromedriver closed the connection early");
            buf.extend_from_slice(&chunk[..n]);
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("a Content-Length");
            if buf.len() >= end + 4 + len {
                let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
                break (
                    status,
                    String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned(),
                );
            }
        };
        let v: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("chromedriver answered {status}: {e}: {body}"));
        assert_eq!(status, 200, "{method} {path}: {v}");
        v["value"].clone()
    }

    async fn start(addr: SocketAddr, chromium: &str) -> WebDriver {
        let mut wd = WebDriver {
            addr,
            session: String::new(),
        };
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu",
                         "--disable-background-networking", "--disable-dev-shm-usage",
                         "--window-size=800,1000",
                         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
            }
        }}});
        let v = wd.call("POST", "/session", caps).await;
        wd.session = v["sessionId"].as_str().expect("a session id").to_string();
        wd
    }

    fn path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    async fn open(&self, url: &str) {
        self.call(
            "POST",
            &self.path("/url"),
            serde_json::json!({ "url": url }),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let v = self
            .call(
                "POST",
                &self.path("/element"),
                serde_json::json!({"using": "css selector", "value": css}),
            )
            .await;
        let id = v
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(|id| id.as_str())
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string();
        self.call(
            "POST",
            &self.path(&format!("/element/{id}/click")),
            serde_json::json!({}),
        )
        .await;
    }

    /// Waits until the page's source contains `text`, then returns it.
    async fn wait_for(&self, text: &str) -> String {
        for _ in 0..100 {
            let src = self
                .call("GET", &self.path("/source"), serde_json::json!({}))
                .await;
            let src = src.as_str().unwrap_or_default().to_string();
            if src.contains(text) {
                return src;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the page never showed {text:?}");
    }

    async fn screenshot(&self, name: &str) -> std::path::PathBuf {
        use base64::Engine as _;
        let v = self
            .call("GET", &self.path("/screenshot"), serde_json::json!({}))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64 PNG"))
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{name} is not a PNG");
        let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{name}.png"));
        std::fs::write(&file, png).unwrap();
        eprintln!("screenshot: {}", file.display());
        file
    }

    async fn quit(&self) {
        self.call("DELETE", &self.path(""), serde_json::json!({}))
            .await;
    }
}

fn on_path(name: &str) -> Option<String> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.exists())
        .map(|p| p.display().to_string())
}

#[test]
fn chromium_walks_unsubscribe_then_undo_then_preferences_and_takes_screenshots() {
    // The walk is one large future: in a debug build it needs more stack
    // than a test thread has.
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_stack_size(16 << 20)
                .enable_all()
                .build()
                .unwrap()
                .block_on(chromium_walk())
        })
        .unwrap()
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
}

async fn chromium_walk() {
    let (Some(driver), Some(chromium)) = (on_path("chromedriver"), on_path("chromium")) else {
        if std::env::var_os("CI").is_some() {
            panic!("chromium and chromedriver are not installed, and CI requires this test");
        }
        eprintln!("\n*** SKIP: chromium_walks_…: chromium or chromedriver is not installed (apt-get install chromium chromium-driver) ***\n");
        return;
    };
    let s = Box::pin(site(common::sqlite().await, |_| {})).await;
    let ana = &s.contacts[0];
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start chromedriver");
    let driver_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(driver_addr).await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let wd = WebDriver::start(driver_addr, &chromium).await;
    let base = format!("http://{}", s.addr());

    // The link in the email: a page that asks, and changes nothing yet.
    let t = s.token(Purpose::Unsubscribe, ana.id);
    wd.open(&format!("{base}/u/{t}")).await;
    wd.wait_for("Unsubscribe from").await;
    wd.screenshot("web-1-unsubscribe").await;
    assert_eq!(s.status(ana).await, "active");

    wd.click("#unsubscribe").await;
    wd.wait_for("You are unsubscribed").await;
    wd.screenshot("web-2-unsubscribed").await;
    assert_eq!(s.status(ana).await, "unsubscribed");

    wd.click("#undo").await;
    wd.wait_for("You are subscribed again").await;
    wd.screenshot("web-3-resubscribed").await;
    assert_eq!(s.status(ana).await, "active");

    wd.click("#preferences").await;
    wd.wait_for("Your preferences").await;
    wd.screenshot("web-4-preferences").await;
    wd.click("#tag-tourism").await;
    wd.click("#save").await;
    wd.wait_for("Your preferences have been saved").await;
    wd.screenshot("web-5-preferences-saved").await;
    let c = s.store.contact_by_id(ana.id).await.unwrap().unwrap();
    assert_eq!(c.tag_list(), vec!["culture", "embassies", "tourism"]);

    wd.quit().await;
    child.kill().await.ok();
}
