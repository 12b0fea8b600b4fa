//! The operators' admin pages in headless Chromium against the real
//! binary: `whatsup serve` (the admin), `whatsup worker` (the sending) and
//! smtp-sink on loopback. An operator creates a campaign whose segment
//! count is the CLI's, schedules it at local times and asks for approval;
//! a second operator approves it (named) and starts it; the progress
//! follows live through pause and resume to the end, and the sink holds
//! exactly one message per recipient. Each page gets screenshots and
//! axe-core at desktop and tablet widths, and no console errors.

use std::net::SocketAddr;
use std::time::Duration;

use fantoccini::Locator;

use crate::common::admin_pages::{serve, whatsup, Running};
use crate::common::browser::{assert_clean, Browser, DESKTOP, TABLET};
use crate::common::sink::{self, Sink};
use crate::common::workspace::PASSWORD;
use crate::common::{self, TestDb};
use whatsup::domain::{Actor, Role};

const SEGMENT: &str = "kind = city";

async fn fill(b: &Browser, css: &str, text: &str) {
    let el = b
        .client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"));
    el.clear().await.unwrap();
    el.send_keys(text).await.unwrap();
}

async fn text_of(b: &Browser, css: &str) -> String {
    b.client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .text()
        .await
        .unwrap()
}

/// Waits (up to a minute) until the element's text satisfies `ok`.
async fn wait_text(b: &Browser, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    for _ in 0..600 {
        if let Ok(el) = b.client.find(Locator::Css(css)).await {
            if let Ok(t) = el.text().await {
                if ok(&t) {
                    return t;
                }
                last = t;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} never showed {what}; last {last:?}");
}

/// A hard bounce matched only by its address (so unverified).
async fn record_unverified_bounce(db: &TestDb, email: &str) {
    use whatsup::store::bounces::BouncePolicy;
    let c = db.store.contact(email).await.unwrap().unwrap();
    let e = common::bounces::event(c.id, email, "hard", "user_unknown", false);
    let msg = common::bounces::message("browser", vec![e]);
    db.store
        .record_bounce(&msg, &BouncePolicy::default(), "bounce:test")
        .await
        .unwrap();
}

async fn sign_in(b: &Browser, addr: SocketAddr, email: &str) {
    b.open(&format!("http://{addr}/admin/login")).await;
    fill(b, "#email", email).await;
    fill(b, "#password", PASSWORD).await;
    b.click("main button[type=submit]").await;
}

/// Screenshots, console and axe of the page at `path`, at desktop and tablet.
async fn check_page(b: &Browser, addr: SocketAddr, path: &str, name: &str) {
    let report = b
        .check(&format!("http://{addr}{path}"), name, &[DESKTOP, TABLET])
        .await;
    assert_clean(name, &report, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_approves_and_starts_a_local_time_campaign_and_watches_it_finish_through_pause_and_resume(
) {
    if !sink::available() {
        return;
    }
    let Some(b) = Browser::start().await else {
        return;
    };
    let db = common::sqlite().await;
    common::import(
        &db.store,
        &common::seed("sister-cities.csv"),
        &Default::default(),
    )
    .await;
    common::import(
        &db.store,
        &common::seed("embassies.csv"),
        &Default::default(),
    )
    .await;
    common::save_sample_issue(&db.store).await;
    let setup = Actor::Cli {
        unix_user: "test".into(),
        account: None,
    };
    for (email, role) in [
        ("operator@example.org", Role::Operator),
        ("approver@example.org", Role::Operator),
    ] {
        whatsup::app::accounts::add_user(&db.store, &setup, email, "", role, Some(PASSWORD))
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let mut sink = Sink::start(&[]);
    let (admin, addr) = serve(&db, dir.path(), sink.port);

    // The CLI's count of the segment.
    let out = common::whatsup_ok(
        &db.url,
        &["subscribers", "list", "--segment", SEGMENT, "--limit", "0"],
    );
    let cli_count: i64 = out
        .lines()
        .last()
        .and_then(|l| l.split(" of ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {out:?}"));
    assert!(cli_count > 10, "{out}");

    // The operator writes the campaign; the count follows the typing.
    sign_in(&b, addr, "operator@example.org").await;
    b.open(&format!("http://{addr}/admin/campaigns/new")).await;
    b.client
        .find(Locator::Css("#issue"))
        .await
        .unwrap()
        .select_by_value("214")
        .await
        .unwrap();
    fill(&b, "#name", "December to the sister cities").await;
    fill(&b, "#segment", "knd = city").await;
    wait_text(&b, "#segment-error", "the did-you-mean", |t| {
        t.contains("did you mean")
    })
    .await;
    fill(&b, "#segment", SEGMENT).await;
    let shown = wait_text(&b, "#segment-count", "the count", |t| {
        t.contains("match in all")
    })
    .await;
    assert!(
        shown.contains(&format!("{cli_count} match in all")),
        "the page's count is the CLI's ({cli_count}): {shown}"
    );
    b.screenshot("admin-campaigns-new-typed-1280").await;
    b.click("main form button[type=submit]").await;
    let url = b.client.current_url().await.unwrap();
    let id: i64 = url
        .path()
        .rsplit('/')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a campaign page: {url}"));
    let campaign = format!("/admin/campaigns/{id}");

    // Local times, due already everywhere (yesterday 09:00), with the timeline.
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    b.client
        .find(Locator::Css("#mode-local"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.client
        .execute(
            "document.getElementById('local-date').value = arguments[0];",
            vec![serde_json::json!(yesterday)],
        )
        .await
        .unwrap();
    fill(&b, "#local-time", "09:00").await;
    b.client
        .find(Locator::Css("#now"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.click("form[action$='/schedule'] button").await;
    let timeline = text_of(&b, "#timeline").await;
    assert!(timeline.contains("America/New_York"), "{timeline}");
    assert!(
        timeline.contains(&format!("{yesterday} 09:00 EST")),
        "{timeline}"
    );
    fill(&b, "#request-note", "for the December send").await;
    b.click("form[action$='/request-approval'] button").await;
    assert!(text_of(&b, "#approval-heading + p")
        .await
        .contains("needs approval"));
    check_page(&b, addr, "/admin/campaigns", "admin-campaigns").await;
    check_page(&b, addr, "/admin/campaigns/new", "admin-campaigns-new").await;
    check_page(&b, addr, &campaign, "admin-campaign-scheduled").await;
    b.click(".account button").await;

    // A second operator approves, named, and starts it.
    sign_in(&b, addr, "approver@example.org").await;
    b.open(&format!("http://{addr}{campaign}")).await;
    b.click("form[action$='/approve'] button").await;
    assert_eq!(
        text_of(&b, "#approved-by").await,
        "user:approver@example.org"
    );
    b.click("form[action$='/start'] button").await;
    assert_eq!(text_of(&b, "#campaign-state").await, "running");
    let worker = Running(
        whatsup(&db, dir.path(), sink.port)
            .arg("worker")
            .spawn()
            .expect("start whatsup worker"),
    );

    // Live: the sent count rises without a reload; pause mid-way.
    wait_text(&b, "[data-field=sent]", "a first message sent", |t| {
        t.parse::<i64>().is_ok_and(|n| n > 0)
    })
    .await;
    b.click("form[action$='/pause'] button").await;
    assert_eq!(text_of(&b, "#campaign-state").await, "paused");
    let sent_at_pause: i64 = text_of(&b, "[data-field=sent]").await.parse().unwrap();
    assert!(sent_at_pause < cli_count, "paused before the end");
    check_page(&b, addr, &campaign, "admin-campaign-paused").await;
    b.click("form[action$='/resume'] button").await;
    // progress.js reloads the page when the state changes to finished.
    wait_text(&b, "#campaign-state", "finished", |t| t == "finished").await;
    assert_eq!(
        text_of(&b, "[data-field=sent]").await,
        cli_count.to_string()
    );
    check_page(&b, addr, &campaign, "admin-campaign-finished").await;

    // The contacts search filters as one types; a recipient's page shows
    // the delivery; the organisations too.
    b.open(&format!("http://{addr}/admin/contacts")).await;
    fill(&b, "#q", SEGMENT).await;
    let count = wait_text(&b, "#contacts-count", "the segment's count", |t| {
        t.starts_with(&format!("{cli_count} "))
    })
    .await;
    assert!(count.contains("match"), "{count}");
    let nyc = db
        .store
        .contact("press@nyc.example.com")
        .await
        .unwrap()
        .unwrap();
    check_page(&b, addr, "/admin/contacts", "admin-contacts").await;
    check_page(
        &b,
        addr,
        &format!("/admin/contacts/{}", nyc.id),
        "admin-contact",
    )
    .await;
    assert!(text_of(&b, "main")
        .await
        .contains("December to the sister cities"));
    check_page(&b, addr, "/admin/contacts/new", "admin-contacts-new").await;
    check_page(&b, addr, "/admin/organisations", "admin-organisations").await;
    let org = nyc.organisation_id.unwrap();
    check_page(
        &b,
        addr,
        &format!("/admin/organisations/{org}"),
        "admin-organisation",
    )
    .await;

    // The bounces page, with an unverified event marked.
    record_unverified_bounce(&db, "press@nyc.example.com").await;
    check_page(&b, addr, "/admin/bounces", "admin-bounces").await;
    assert!(text_of(&b, "#bounces").await.contains("unverified"));
    check_page(
        &b,
        addr,
        "/admin/bounces?view=report",
        "admin-bounces-report",
    )
    .await;

    // Exactly one message per recipient.
    let msgs = sink.messages();
    let per = sink::per_recipient(&msgs);
    assert_eq!(per.len() as i64, cli_count, "{per:?}");
    assert!(per.values().all(|n| *n == 1), "{per:?}");

    b.close().await;
    drop(worker);
    drop(admin);
    sink.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_a_bad_csv_shows_its_row_errors_in_the_table() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let db = common::sqlite().await;
    let setup = Actor::Cli {
        unix_user: "test".into(),
        account: None,
    };
    whatsup::app::accounts::add_user(
        &db.store,
        &setup,
        "operator@example.org",
        "",
        Role::Operator,
        Some(PASSWORD),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (admin, addr) = serve(&db, dir.path(), 9);
    let csv = dir.path().join("embassies-update.csv");
    std::fs::write(
        &csv,
        "email,name,organisation,kind,country,timezone\n\
         a@fr.embassy.example.org,Amélie,Embassy of France,embassy,FR,Asia/Tokyo\n\
         b@fr.embassy.example.org,\"Bruno \"the\" Bold\",Embassy of France,embassy,FR,Asia/Tokyo\n\
         c@jp.example.org,山田 花子,東京都,government,JP,Asia/Tokio\n",
    )
    .unwrap();

    sign_in(&b, addr, "operator@example.org").await;
    b.open(&format!("http://{addr}/admin/imports")).await;
    b.client
        .find(Locator::Css("#file"))
        .await
        .unwrap()
        .send_keys(&csv.display().to_string())
        .await
        .unwrap();
    b.click("main form button[type=submit]").await;
    // The job's page follows the dry run and shows the table when it ends.
    let table = wait_text(&b, "#row-errors", "the row errors", |t| {
        t.contains("Reason")
    })
    .await;
    assert!(table.contains("2 rejected rows"), "{table}");
    let rows: Vec<String> = {
        let mut out = Vec::new();
        for tr in b
            .client
            .find_all(Locator::Css("#row-errors tbody tr"))
            .await
            .unwrap()
        {
            out.push(tr.text().await.unwrap());
        }
        out
    };
    // Line, column and reason: a quote in the middle of a field, then two
    // mistakes in one row (kind and time zone).
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(
        rows[0].starts_with("3 34 ") && rows[0].contains("closing quote"),
        "{rows:?}"
    );
    assert!(rows[1].starts_with("4 28 kind"), "{rows:?}");
    assert!(
        rows[2].starts_with("4 42 timezone") && rows[2].contains("Asia/Tokio"),
        "{rows:?}"
    );
    assert_eq!(text_of(&b, "[data-count=created]").await, "1");
    let job = b.client.current_url().await.unwrap().path().to_string();
    check_page(&b, addr, &job, "admin-import-dry-run").await;
    check_page(&b, addr, "/admin/imports", "admin-imports").await;
    assert_eq!(db.store.count_contacts(None).await.unwrap(), 0);
    b.close().await;
    drop(admin);
}
