//! `whatsup serve` over loopback with a real HTTP/1.1 client, on SQLite and
//! on PostgreSQL: RFC 8058 one-click POSTs byte for byte as mail providers
//! send them, GETs that change nothing, bad tokens, undo, preferences, view
//! in browser, the archive, tracking, rate limits, security headers,
//! metrics, and 1,000 one-click unsubscribes from one address of which none
//! is refused or lost. The hardening of issue 17 is tested here too: strict
//! one-click bodies, forms that must come from our page, invalid UTF-8,
//! body limits, canonical numbers, the metrics listener, HSTS and
//! Permissions-Policy, and the view link that shows no address and expires.

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
const FORM: &str = "application/x-www-form-urlencoded";
const OLD_SECRET: &str = "web-test-old-secret-0123456789abcdef01234567";

/// A served store with three contacts and one sent campaign of issue 214.
pub(crate) struct Site {
    pub(crate) server: Server,
    store: Store,
    keys: TokenKeys,
    pub(crate) campaign: i64,
    pub(crate) contacts: Vec<Contact>,
    pub(crate) config: Config,
    _db: TestDb,
    _outbox: tempfile::TempDir,
}

impl Site {
    pub(crate) fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// The metrics listener (tests bind it to a free loopback port).
    fn metrics(&self) -> SocketAddr {
        self.server.metrics_addr.expect("a metrics listener")
    }

    /// POSTs a form as a browser does from our own page.
    async fn post_from_page(&self, path: &str, body: &[u8]) -> Reply {
        let origin = format!("http://{}", self.addr());
        http::post_with(
            self.addr(),
            path,
            FORM,
            &[("Origin", &origin), ("Sec-Fetch-Site", "same-origin")],
            body,
        )
        .await
    }

    pub(crate) fn token(&self, purpose: Purpose, contact: i64) -> String {
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
            actor: &crate::common::actor(),
        })
        .await
        .unwrap();
    whatsup::send::engine::start(store, config, campaign, &crate::common::actor())
        .await
        .unwrap();
    let mut worker = whatsup::send::worker::Worker::new(store.clone(), config.clone()).unwrap();
    worker
        .send_campaign(campaign, &AtomicBool::new(false), |_| {})
        .await
        .unwrap();
    campaign
}

pub(crate) async fn site(db: TestDb, tweak: impl FnOnce(&mut Config)) -> Site {
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
    let r = s.post_from_page(&format!("/u/{t}"), b"confirm=yes").await;
    // minijinja writes '/' in attribute values as "&#x2f;".
    let page = r.body.replace("&#x2f;", "/");
    assert!(page.contains(&format!("action=\"/u/{t}/undo\"")), "{page}");
    assert_eq!(s.status(ana).await, "unsubscribed");
    let r = s.post_from_page(&format!("/u/{t}/undo"), b"").await;
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
            &crate::common::actor(),
        )
        .await
        .unwrap();
    let tb = s.token(Purpose::Unsubscribe, bo.id);
    let r = s.post_from_page(&format!("/u/{tb}/undo"), b"").await;
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
            &crate::common::actor(),
        )
        .await
        .unwrap();
    let tc = s.token(Purpose::Unsubscribe, cy.id);
    let r = http::raw(s.addr(), &gmail_one_click(s.addr(), &format!("/u/{tc}"))).await;
    assert_eq!(r.status, 200);
    s.post_from_page(&format!("/u/{tc}/undo"), b"").await;
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
    let r = s.post_from_page(&path, body.as_bytes()).await;
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
    // The link most likely to be forwarded shows no address.
    assert!(!r.body.contains(&ana.email), "{}", r.body);
    assert!(!r.body.contains("embassy.example.org"));
    assert!(r.body.contains("your email address"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
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

/// Mail providers post one-click unsubscribes from few addresses, and
/// behind a reverse proxy (without `trust_forwarded_for`) every client has
/// the proxy's: 1,000 at once from one IP, with the default limits (the
/// page limit is 20/s, burst 100), must all get 200 and all be committed.
async fn a_burst_of_a_thousand_one_click_posts_from_one_ip_all_get_200_and_are_committed(
    db: TestDb,
) {
    let mut csv = String::from("email,name\n");
    for i in 0..1000 {
        csv.push_str(&format!("p{i:04}@many.example.org,Person {i}\n"));
    }
    let (_dir, path) = common::temp_csv(csv);
    common::import(&db.store, &path, &ImportOptions::default()).await;
    let defaults = Config::default().web;
    let s = site(db, |c| {
        c.web.rate_limit_per_second = defaults.rate_limit_per_second;
        c.web.rate_limit_burst = defaults.rate_limit_burst;
    })
    .await;
    assert_eq!(s.server.state.config.web.rate_limit_burst, 100);
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
    let mut statuses = std::collections::BTreeMap::new();
    for t in tasks {
        *statuses.entry(t.await.unwrap()).or_insert(0) += 1;
    }
    assert_eq!(statuses, [(200, 1000)].into(), "every one gets 200");
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
    let m = http::get(s.metrics(), "/metrics").await;
    for line in [
        "whatsup_web_unsubscribes_total 1000",
        "whatsup_one_click_rate_limited_total 0",
    ] {
        assert!(m.body.contains(line), "{line} in {}", m.body);
    }
}

async fn healthz_and_metrics_report_sends_unsubscribes_and_latency(db: TestDb) {
    let s = site(db, |_| {}).await;
    let h = http::get(s.addr(), "/healthz").await;
    assert_eq!((h.status, h.body.as_str()), (200, "ok\n"));
    let t = s.token(Purpose::Unsubscribe, s.contacts[0].id);
    http::raw(s.addr(), &gmail_one_click(s.addr(), &format!("/u/{t}"))).await;
    let m = http::get(s.metrics(), "/metrics").await;
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
        "whatsup_bounces_total{verified=\"true\"} 0",
        "whatsup_bounces_total{verified=\"false\"} 0",
        "whatsup_web_unsubscribes_total 1",
        "# TYPE whatsup_http_request_duration_seconds histogram",
        "whatsup_http_request_duration_seconds_count{route=\"/u/{token}\",method=\"POST\",status=\"2xx\"} 1",
    ] {
        assert!(m.body.contains(line), "missing {line:?} in\n{}", m.body);
    }
}

/// The 429 page: its own page, which asks to try again shortly and does not
/// blame the link.
fn assert_busy_page(r: &Reply) {
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.body.contains("Please try again shortly"), "{}", r.body);
    assert!(!r.body.contains("copied"), "{}", r.body);
    assert!(!r.body.contains("not valid"), "{}", r.body);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry >= 1);
}

async fn page_views_are_limited_per_client_but_one_click_has_its_own_limiter(db: TestDb) {
    let s = site(db, |c| {
        c.web.rate_limit_per_second = 1;
        c.web.rate_limit_burst = 3;
    })
    .await;
    let mut replies = Vec::new();
    for _ in 0..5 {
        replies.push(http::get(s.addr(), "/archive").await);
    }
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(&statuses[..3], &[200, 200, 200]);
    assert_busy_page(&replies[4]);
    // The page limit is spent, and one-click POSTs from the same address
    // still unsubscribe: they have their own limiter.
    for c in &s.contacts {
        let path = format!("/u/{}", s.token(Purpose::Unsubscribe, c.id));
        let r = http::raw(s.addr(), &gmail_one_click(s.addr(), &path)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(s.status(c).await, "unsubscribed");
    }
    // Operations endpoints are not limited.
    assert_eq!(http::get(s.addr(), "/healthz").await.status, 200);
    let m = http::get(s.metrics(), "/metrics").await;
    assert!(m.body.contains("whatsup_one_click_rate_limited_total 0"));
    assert!(!m.body.contains("whatsup_http_rate_limited_total 0"));
}

async fn one_click_beyond_its_generous_per_ip_burst_gets_the_429_page(db: TestDb) {
    let s = site(db, |c| {
        c.web.one_click_per_second = 1;
        c.web.one_click_burst = 2;
    })
    .await;
    let ana = &s.contacts[0];
    let path = format!("/u/{}", s.token(Purpose::Unsubscribe, ana.id));
    let mut replies = Vec::new();
    for _ in 0..6 {
        replies.push(http::raw(s.addr(), &gmail_one_click(s.addr(), &path)).await);
    }
    assert_eq!((replies[0].status, replies[1].status), (200, 200));
    assert_busy_page(&replies[5]);
    let m = http::get(s.metrics(), "/metrics").await;
    assert!(!m.body.contains("whatsup_one_click_rate_limited_total 0"));
}

/// Under the global ceiling, one-click POSTs wait their turn instead of
/// being refused; only beyond `one_click_max_wait_secs` do they get a 429.
async fn one_click_posts_over_the_global_ceiling_wait_their_turn_and_all_succeed(db: TestDb) {
    let s = site(db, |c| {
        c.web.one_click_ceiling_per_second = 1;
        c.web.one_click_max_wait_secs = 60;
    })
    .await;
    let addr = s.addr();
    let mut tasks = Vec::new();
    for round in 0..2 {
        for c in &s.contacts {
            let req = gmail_one_click(addr, &format!("/u/{}", s.token(Purpose::Unsubscribe, c.id)));
            tasks.push(tokio::spawn(async move {
                (round, http::raw(addr, &req).await.status)
            }));
        }
    }
    for t in tasks {
        let (round, status) = t.await.unwrap();
        assert_eq!(status, 200, "round {round}");
    }
    for c in &s.contacts {
        assert_eq!(s.status(c).await, "unsubscribed");
    }
    // Six posts at once at one a second: some of them waited.
    let m = http::get(s.metrics(), "/metrics").await;
    assert!(
        !m.body.contains("whatsup_one_click_waited_total 0"),
        "{}",
        m.body
    );
    assert!(m.body.contains("whatsup_one_click_rate_limited_total 0"));

    // Without any wait allowed, the ceiling refuses with the 429 page.
    let db = other_backend_db(&s).await;
    let Some(db) = db else { return };
    let strict = site(db, |c| {
        c.web.one_click_ceiling_per_second = 1;
        c.web.one_click_max_wait_secs = 0;
    })
    .await;
    let addr = strict.addr();
    // Requests with a bad token or body never reach the ceiling, so a flood
    // of them cannot use it up: the one valid post after them goes through.
    let first = &strict.contacts[0];
    let good = format!("/u/{}", strict.token(Purpose::Unsubscribe, first.id));
    for _ in 0..5 {
        let forged = gmail_one_click(addr, "/u/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(http::raw(addr, &forged).await.status, 404);
        assert_eq!(http::post(addr, &good, FORM, b"").await.status, 400);
    }
    assert_eq!(
        http::raw(addr, &gmail_one_click(addr, &good)).await.status,
        200
    );
    assert_eq!(strict.status(first).await, "unsubscribed");
    let mut tasks = Vec::new();
    for c in strict.contacts.iter().cycle().take(8) {
        let req = gmail_one_click(
            addr,
            &format!("/u/{}", strict.token(Purpose::Unsubscribe, c.id)),
        );
        tasks.push(tokio::spawn(async move { http::raw(addr, &req).await }));
    }
    let mut refused = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        if r.status != 200 {
            refused.push(r);
        }
    }
    assert!(
        !refused.is_empty(),
        "eight posts at once over a ceiling of 1/s"
    );
    for r in &refused {
        assert_busy_page(r);
    }
}

/// A fresh database of the same backend as `s`.
async fn other_backend_db(s: &Site) -> Option<TestDb> {
    if matches!(s.store, Store::Sqlite(_)) {
        Some(common::sqlite().await)
    } else {
        common::postgres().await
    }
}

/// Every body but RFC 8058's pair (or our confirmation form) is refused,
/// with its own status, and changes nothing.
async fn a_one_click_post_without_the_rfc_8058_body_is_refused_and_changes_nothing(db: TestDb) {
    let s = site(db, |_| {}).await;
    let ana = &s.contacts[0];
    let path = format!("/u/{}", s.token(Purpose::Unsubscribe, ana.id));
    let big = format!("List-Unsubscribe=One-Click&pad={}", "x".repeat(9000));
    let cases: Vec<(&str, &str, Vec<u8>, u16)> = vec![
        ("an empty body", FORM, Vec::new(), 400),
        (
            "random text",
            FORM,
            b"hello there, please go away".to_vec(),
            400,
        ),
        ("another value", FORM, b"List-Unsubscribe=Yes".to_vec(), 400),
        (
            "JSON",
            "application/json",
            br#"{"List-Unsubscribe":"One-Click"}"#.to_vec(),
            415,
        ),
        (
            "text/plain",
            "text/plain",
            b"List-Unsubscribe=One-Click".to_vec(),
            415,
        ),
        (
            "invalid UTF-8",
            FORM,
            b"List-Unsubscribe=One-Click&x=%ff%fe".to_vec(),
            400,
        ),
        ("a body over 8 KiB", FORM, big.into_bytes(), 413),
        (
            "an empty multipart",
            "multipart/form-data; boundary=b",
            b"--b--\r\n".to_vec(),
            400,
        ),
    ];
    for (what, ct, body, want) in &cases {
        let r = http::post(s.addr(), &path, ct, body).await;
        assert_eq!(r.status, *want, "{what}: {}", r.body);
        assert!(!r.body.contains("You are unsubscribed"), "{what}");
        assert_eq!(r.header("cache-control"), Some("no-store"), "{what}");
        assert_security_headers(&r);
        assert_eq!(s.status(ana).await, "active", "{what} unsubscribed");
    }
    assert!(s.store.status_history(ana.id).await.unwrap().len() <= 1);
    // The same path still takes the real thing.
    let r = http::raw(s.addr(), &gmail_one_click(s.addr(), &path)).await;
    assert_eq!(r.status, 200);
    assert_eq!(s.status(ana).await, "unsubscribed");
}

/// The value of the hidden `form_token` field of a page.
fn form_token_in(html: &str) -> String {
    let at = html
        .find("name=\"form_token\" value=\"")
        .unwrap_or_else(|| panic!("no form token in {html}"));
    let rest = &html[at + "name=\"form_token\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// A cross-site form post, as the browser of someone lured to another site
/// sends it.
const CROSS_SITE: &[(&str, &str)] = &[
    ("Origin", "https://evil.example"),
    ("Sec-Fetch-Site", "cross-site"),
];

async fn the_confirmation_undo_and_preferences_forms_must_come_from_our_page(db: TestDb) {
    let s = site(db, |_| {}).await;
    let (ana, bo) = (&s.contacts[0], &s.contacts[1]);
    let prefs = format!("/p/{}", s.token(Purpose::Preferences, ana.id));
    let unsub = format!("/u/{}", s.token(Purpose::Unsubscribe, bo.id));
    let save = b"name=Mallory&title=Owned&tag=press";

    // Cross-site: 403, nothing saved or changed.
    let r = http::post_with(s.addr(), &prefs, FORM, CROSS_SITE, save).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("another site"), "{}", r.body);
    let r = http::post_with(s.addr(), &unsub, FORM, CROSS_SITE, b"confirm=yes").await;
    assert_eq!(r.status, 403);
    // Without Origin, Sec-Fetch-Site or a form token (an old client, or a
    // script): also 403.
    assert_eq!(http::post(s.addr(), &prefs, FORM, save).await.status, 403);
    assert_eq!(
        http::post(s.addr(), &unsub, FORM, b"confirm=yes")
            .await
            .status,
        403
    );
    // text/plain (what a cross-site form can send without a preflight): 415.
    let r = http::post_with(s.addr(), &prefs, "text/plain", CROSS_SITE, save).await;
    assert_eq!(r.status, 415);
    let r = s.post_from_page(&prefs, b"").await;
    assert_eq!(r.status, 200, "an empty form from our page is fine");
    let c = s.store.contact_by_id(ana.id).await.unwrap().unwrap();
    assert_eq!(
        (c.name.as_str(), c.title.as_str()),
        ("Ana Lima", "Counsellor")
    );
    assert_eq!(s.status(bo).await, "active");

    // A form token of another page does not do.
    let page = http::get(s.addr(), &prefs).await.body;
    let prefs_token = form_token_in(&page);
    let body = format!("confirm=yes&form_token={prefs_token}");
    assert_eq!(
        http::post(s.addr(), &unsub, FORM, body.as_bytes())
            .await
            .status,
        403
    );
    assert_eq!(s.status(bo).await, "active");

    // The page's own form token, with no browser headers at all: accepted.
    let body = format!("name=Ana+Lima-Souza&title=Counsellor&form_token={prefs_token}");
    let r = http::post(s.addr(), &prefs, FORM, body.as_bytes()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let c = s.store.contact_by_id(ana.id).await.unwrap().unwrap();
    assert_eq!(c.name, "Ana Lima-Souza");
    let page = http::get(s.addr(), &unsub).await.body;
    let body = format!("confirm=yes&form_token={}", form_token_in(&page));
    let r = http::post(s.addr(), &unsub, FORM, body.as_bytes()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(s.status(bo).await, "unsubscribed");
    let history = s.store.status_history(bo.id).await.unwrap();
    assert_eq!(history.last().unwrap().evidence.0["method"], "form");

    // The undo form: cross-site refused, its own token accepted.
    let undo = format!("{unsub}/undo");
    let r = http::post_with(s.addr(), &undo, FORM, CROSS_SITE, b"").await;
    assert_eq!(r.status, 403);
    assert_eq!(s.status(bo).await, "unsubscribed");
    let body = format!(
        "form_token={}",
        form_token_in(&unsubscribed_page(&s, &unsub).await)
    );
    let r = http::post(s.addr(), &undo, FORM, body.as_bytes()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(s.status(bo).await, "active");

    // Only a same-origin signal from the browser: accepted.
    let r = http::post_with(
        s.addr(),
        &unsub,
        FORM,
        &[("Sec-Fetch-Site", "same-origin")],
        b"confirm=yes",
    )
    .await;
    assert_eq!(r.status, 200);
    // One-click stays exempt, as RFC 8058 requires: it comes from the
    // mail provider, cross-site or with no headers at all.
    let cy = &s.contacts[2];
    let one_click = format!("/u/{}", s.token(Purpose::Unsubscribe, cy.id));
    let r = http::post_with(
        s.addr(),
        &one_click,
        FORM,
        CROSS_SITE,
        b"List-Unsubscribe=One-Click",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(s.status(cy).await, "unsubscribed");
}

/// The page the unsubscribe POST answers with (it holds the undo form):
/// posted again, which changes nothing for an unsubscribed contact.
async fn unsubscribed_page(s: &Site, unsub: &str) -> String {
    let r = s.post_from_page(unsub, b"confirm=yes").await;
    assert_eq!(r.status, 200);
    r.body
}

async fn invalid_utf8_in_a_form_is_refused_and_not_stored(db: TestDb) {
    let s = site(db, |_| {}).await;
    let ana = &s.contacts[0];
    let prefs = format!("/p/{}", s.token(Purpose::Preferences, ana.id));
    for (ct, body) in [
        (FORM, b"name=%ff%fe%80".to_vec()),
        (FORM, b"name=\xff\xfe".to_vec()),
        (
            "multipart/form-data; boundary=b",
            b"--b\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n\xff\xfe\x80\r\n--b--\r\n".to_vec(),
        ),
    ] {
        let origin = format!("http://{}", s.addr());
        let r = http::post_with(s.addr(), &prefs, ct, &[("Origin", &origin)], &body).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.body.contains("UTF-8"), "{}", r.body);
    }
    let c = s.store.contact_by_id(ana.id).await.unwrap().unwrap();
    assert_eq!(c.name, "Ana Lima");
    assert!(!c.name.contains('\u{fffd}'));
    // Valid UTF-8 of any script is kept as it is.
    let r = s
        .post_from_page(&prefs, "name=Ana+Lima+%E9%87%8C%E7%BE%8E".as_bytes())
        .await;
    assert_eq!(r.status, 200);
    let c = s.store.contact_by_id(ana.id).await.unwrap().unwrap();
    assert_eq!(c.name, "Ana Lima 里美");
}

async fn responses_carry_hsts_and_permissions_policy_and_token_urls_are_never_stored(db: TestDb) {
    let s = site(db, |c| {
        c.web.track_opens = true;
        c.web.track_clicks = true;
    })
    .await;
    assert!(s
        .server
        .state
        .config
        .newsletter
        .base_url
        .starts_with("https://"));
    let html = s.sent_html(&s.contacts[0].email);
    let click = path_in(&html, &format!("/t/c/{}/", s.campaign));
    let pixel = path_in(&html, &format!("/t/o/{}/", s.campaign));
    let t = s.token(Purpose::Browser, s.contacts[0].id);
    let u = s.token(Purpose::Unsubscribe, s.contacts[0].id);
    let p = s.token(Purpose::Preferences, s.contacts[0].id);
    for (path, status) in [
        (click.as_str(), 302),
        (pixel.as_str(), 200),
        (&format!("/v/{}/{t}", s.campaign), 200),
        (&format!("/u/{u}"), 200),
        (&format!("/p/{p}"), 200),
        ("/u/not-a-token", 404),
        ("/u/not-a-token/extra/segments", 404),
        ("/archive", 200),
    ] {
        let r = http::get(s.addr(), path).await;
        assert_eq!(r.status, status, "{path}");
        assert_eq!(
            r.header("strict-transport-security"),
            Some("max-age=31536000"),
            "{path}"
        );
        let pp = r
            .header("permissions-policy")
            .unwrap_or_else(|| panic!("{path}"));
        assert!(
            pp.contains("camera=()") && pp.contains("geolocation=()"),
            "{pp}"
        );
        assert_security_headers(&r);
        if path != "/archive" {
            assert_eq!(r.header("cache-control"), Some("no-store"), "{path}");
        }
    }
    // Over plain http (a test install), no HSTS.
    let Some(db) = other_backend_db(&s).await else {
        return;
    };
    let plain = site(db, |c| {
        c.newsletter.base_url = "http://localhost:8080".into()
    })
    .await;
    let r = http::get(plain.addr(), "/archive").await;
    assert_eq!(r.header("strict-transport-security"), None);
    assert!(r.header("permissions-policy").is_some());
}

async fn metrics_are_served_on_their_own_listener_and_need_a_token_on_the_public_one(db: TestDb) {
    let s = site(db, |_| {}).await;
    assert_ne!(s.metrics(), s.addr());
    assert!(s.metrics().ip().is_loopback());
    assert_eq!(http::get(s.addr(), "/metrics").await.status, 404);
    let m = http::get(s.metrics(), "/metrics").await;
    assert_eq!(m.status, 200);
    assert!(m.body.contains("whatsup_database_up 1"));
    assert_eq!(http::get(s.metrics(), "/healthz").await.status, 200);
    assert_eq!(http::get(s.metrics(), "/archive").await.status, 404);

    // On the public listener, only with the bearer token.
    let Some(db) = other_backend_db(&s).await else {
        return;
    };
    let public = site(db, |c| {
        c.web.metrics_bind = "public".into();
        c.web.metrics_token = Secret::new("metrics-token-0123456789");
    })
    .await;
    assert_eq!(public.server.metrics_addr, None);
    let r = http::get(public.addr(), "/metrics").await;
    assert_eq!(r.status, 401);
    assert!(!r.body.contains("whatsup_"));
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    let wrong = http::get_with(
        public.addr(),
        "/metrics",
        &[("Authorization", "Bearer nope")],
    )
    .await;
    assert_eq!(wrong.status, 401);
    let right = http::get_with(
        public.addr(),
        "/metrics",
        &[("Authorization", "Bearer metrics-token-0123456789")],
    )
    .await;
    assert_eq!(right.status, 200);
    assert!(right.body.contains("whatsup_database_up 1"));
    // "public" without a token is refused at startup.
    let load = |bind: &str| {
        let env = [("WHATSUP_WEB_METRICS_BIND".to_string(), bind.to_string())];
        Config::load(Some(std::path::Path::new("/dev/null")), env).map(|_| ())
    };
    let err = format!("{:#}", load("public").unwrap_err());
    assert!(err.contains("web.metrics_token"), "{err}");
    let err = format!("{:#}", load("nowhere").unwrap_err());
    assert!(err.contains("web.metrics_bind"), "{err}");
    assert!(load("off").is_ok() && load("127.0.0.1:9999").is_ok());
}

async fn numbers_in_paths_must_be_canonical(db: TestDb) {
    let s = site(db, |c| {
        c.web.track_opens = true;
        c.web.track_clicks = true;
    })
    .await;
    let t = s.token(Purpose::Browser, s.contacts[0].id);
    let c = s.campaign;
    assert_eq!(http::get(s.addr(), "/archive/214").await.status, 200);
    assert_eq!(
        http::get(s.addr(), &format!("/v/{c}/{t}")).await.status,
        200
    );
    let html = s.sent_html(&s.contacts[0].email);
    let click = path_in(&html, &format!("/t/c/{c}/"));
    assert_eq!(http::get(s.addr(), &click).await.status, 302);
    let (prefix, n) = click.rsplit_once('/').unwrap();
    for path in [
        "/archive/0214".to_string(),
        "/archive/+214".to_string(),
        "/archive/214.0".to_string(),
        format!("/v/0{c}/{t}"),
        format!("/v/+{c}/{t}"),
        format!("/t/o/0{c}/{t}"),
        format!("/t/c/0{c}/{t}/{n}"),
        format!("{prefix}/0{n}"),
        format!("{prefix}/+{n}"),
    ] {
        let r = http::get(s.addr(), &path).await;
        assert_eq!(r.status, 404, "{path}");
    }
    assert_eq!(s.store.tracking_counts(c).await.unwrap().clicks.len(), 1);
}

/// Moves every delivery of the site's campaign `days` into the past.
async fn age_deliveries(s: &Site, days: i64) {
    let then = chrono::Utc::now() - chrono::Duration::days(days);
    let sql = "UPDATE deliveries SET sent_at = $1, updated_at = $1 WHERE campaign_id = $2";
    let changed = match &s.store {
        Store::Sqlite(p) => sqlx::query(sql)
            .bind(then)
            .bind(s.campaign)
            .execute(p)
            .await
            .map(|r| r.rows_affected()),
        Store::Postgres(p) => sqlx::query(sql)
            .bind(then)
            .bind(s.campaign)
            .execute(p)
            .await
            .map(|r| r.rows_affected()),
    };
    assert_eq!(changed.unwrap(), s.contacts.len() as u64);
}

async fn a_view_link_expires_after_view_token_days_and_offers_the_archive_copy(db: TestDb) {
    let s = site(db, |_| {}).await;
    assert_eq!(s.server.state.config.web.view_token_days, 90);
    let ana = &s.contacts[0];
    let path = format!("/v/{}/{}", s.campaign, s.token(Purpose::Browser, ana.id));
    age_deliveries(&s, 89).await;
    assert_eq!(http::get(s.addr(), &path).await.status, 200);
    age_deliveries(&s, 91).await;
    let r = http::get(s.addr(), &path).await;
    assert_eq!(r.status, 410, "{}", r.body);
    assert!(r.body.contains("This link has expired"), "{}", r.body);
    assert!(r.body.contains("90 days"));
    let archive = r.body.replace("&#x2f;", "/");
    assert!(archive.contains("href=\"/archive/214\""), "{archive}");
    assert!(!r.body.contains("Ana Lima") && !r.body.contains(&ana.email));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    // The archive copy it offers is there.
    assert_eq!(http::get(s.addr(), "/archive/214").await.status, 200);
    // A bad token is still the one 404 page, expired or not.
    let forged = format!(
        "/v/{}/{}",
        s.campaign,
        s.token(Purpose::Unsubscribe, ana.id)
    );
    assert_eq!(http::get(s.addr(), &forged).await.status, 404);

    // Without the archive, the page says where the issue still is.
    let Some(db) = other_backend_db(&s).await else {
        return;
    };
    let closed = site(db, |c| {
        c.web.archive = false;
        c.web.view_token_days = 30;
    })
    .await;
    age_deliveries(&closed, 31).await;
    let path = format!(
        "/v/{}/{}",
        closed.campaign,
        closed.token(Purpose::Browser, closed.contacts[0].id)
    );
    let r = http::get(closed.addr(), &path).await;
    assert_eq!(r.status, 410);
    assert!(
        r.body.contains("30 days") && !r.body.contains("/archive/"),
        "{}",
        r.body
    );
    // 0: the link never expires.
    let Some(db) = other_backend_db(&s).await else {
        return;
    };
    let forever = site(db, |c| c.web.view_token_days = 0).await;
    age_deliveries(&forever, 3650).await;
    let path = format!(
        "/v/{}/{}",
        forever.campaign,
        forever.token(Purpose::Browser, forever.contacts[0].id)
    );
    assert_eq!(http::get(forever.addr(), &path).await.status, 200);
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
    let out = common::whatsup_ok(
        &s._db.url,
        &["campaigns", "show", &s.campaign.to_string(), "--json"],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
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
            actor: &crate::common::actor(),
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
    a_burst_of_a_thousand_one_click_posts_from_one_ip_all_get_200_and_are_committed,
    healthz_and_metrics_report_sends_unsubscribes_and_latency,
    page_views_are_limited_per_client_but_one_click_has_its_own_limiter,
    one_click_beyond_its_generous_per_ip_burst_gets_the_429_page,
    one_click_posts_over_the_global_ceiling_wait_their_turn_and_all_succeed,
    a_one_click_post_without_the_rfc_8058_body_is_refused_and_changes_nothing,
    the_confirmation_undo_and_preferences_forms_must_come_from_our_page,
    invalid_utf8_in_a_form_is_refused_and_not_stored,
    responses_carry_hsts_and_permissions_policy_and_token_urls_are_never_stored,
    metrics_are_served_on_their_own_listener_and_need_a_token_on_the_public_one,
    numbers_in_paths_must_be_canonical,
    a_view_link_expires_after_view_token_days_and_offers_the_archive_copy,
    tracking_is_off_by_default_and_counts_only_issue_links_when_on,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serve_command_listens_runs_the_worker_and_stops_on_sigterm() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_whatsup"))
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--admin-bind",
            "127.0.0.1:0",
        ])
        .env("WHATSUP_CONFIG", "/dev/null")
        .env("WHATSUP_GENERAL_DATA_DIR", dir.path())
        .env("WHATSUP_SECURITY_TOKEN_SECRET", SECRET)
        .env("WHATSUP_WEB_METRICS_BIND", "127.0.0.1:0")
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
