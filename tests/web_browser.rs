//! The recipients' pages of `whatsup serve` and the admin's layout in real
//! headless Chromium (`common::browser`): each page at phone (375), tablet
//! (768) and desktop (1280) widths, with a screenshot of each, no error in
//! the browser's console, no sideways overflow, and no serious or critical
//! axe-core violation. The unsubscribe flow is walked by clicking, as a
//! recipient would.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{Html, IntoResponse, Response};
use minijinja::context;
use whatsup::config::Branding;
use whatsup::delivery::tokens::Purpose;
use whatsup::web::assets::{Assets, ADMIN_CSP};

use crate::common::browser::{assert_clean, Browser, DESKTOP, PHONE, TABLET};
use crate::common::http;
use crate::web_pages::site;

const ALL: &[u32] = &[PHONE, TABLET, DESKTOP];

/// The console line Chromium writes for a page that answers 404 itself: the
/// error pages are meant to.
const OWN_404: &[&str] = &["the server responded with a status of 404"];

/// The sample issue's images are on www.example.org, which never resolves
/// here (no network beyond loopback): the only errors the issue pages may log.
const REMOTE_IMAGES: &[&str] = &["https://www.example.org/whatsup/214/"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recipients_pages_are_accessible_and_error_free_at_every_width() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let s = site(crate::common::sqlite().await, |_| {}).await;
    let base = format!("http://{}", s.addr());
    let ana = s.contacts[0].id;
    let unsubscribe = format!("{base}/u/{}", s.token(Purpose::Unsubscribe, ana));
    let preferences = format!("{base}/p/{}", s.token(Purpose::Preferences, ana));
    let view = format!("{base}/v/{}/{}", s.campaign, s.token(Purpose::Browser, ana));
    let pages = [
        ("unsubscribe", unsubscribe.clone(), &[][..]),
        ("preferences", preferences.clone(), &[]),
        ("view-in-browser", view, REMOTE_IMAGES),
        ("links-help", format!("{base}/links"), &[]),
        ("archive", format!("{base}/archive"), &[]),
        (
            "archive-issue",
            format!("{base}/archive/214"),
            REMOTE_IMAGES,
        ),
        ("invalid-link", format!("{base}/u/not-a-token"), OWN_404),
        ("not-found", format!("{base}/no/such/page"), OWN_404),
    ];
    for (name, url, allowed) in &pages {
        let report = browser.check(url, &format!("public-{name}"), ALL).await;
        assert_clean(name, &report, allowed);
    }

    // The flow, by clicking: unsubscribe, then undo, then preferences saved.
    browser.set_width(PHONE).await;
    browser.open(&unsubscribe).await;
    browser.click("#unsubscribe").await;
    let title = browser.client.title().await.unwrap();
    assert!(title.starts_with("Unsubscribed"), "{title}");
    let shot = browser.screenshot("public-unsubscribed-375").await;
    let (violations, passes) = browser.axe().await;
    assert!(
        violations.is_empty() && passes > 0,
        "unsubscribed: {violations:?}"
    );
    browser.click("#undo").await;
    let heading = browser
        .client
        .find(fantoccini::Locator::Css("h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(heading, "You are subscribed again");
    let (violations, _) = browser.axe().await;
    assert!(violations.is_empty(), "resubscribed: {violations:?}");
    browser.screenshot("public-resubscribed-375").await;
    browser.open(&preferences).await;
    browser.click("#save").await;
    browser
        .client
        .find(fantoccini::Locator::Css("#saved"))
        .await
        .expect("the saved notice");
    browser.screenshot("public-preferences-saved-375").await;
    let (violations, _) = browser.axe().await;
    assert!(violations.is_empty(), "preferences saved: {violations:?}");
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "{errors:?}");
    assert!(shot.exists());
    browser.close().await;
    s.server.stop().await.unwrap();
}

struct Styleguide {
    env: minijinja::Environment<'static>,
    assets: Arc<Assets>,
}

/// The style guide page, rendered from `templates/admin/styleguide.html`
/// with the context every admin page gets, under the admin CSP.
async fn styleguide(State(sg): State<Arc<Styleguide>>) -> Response {
    let ctx = context! {
        lang => "en",
        title => "Style guide",
        timezone => "Asia/Tokyo",
        csrf_token => "test-csrf-token",
        user => context! { email => "editor@example.org", role => "editor" },
        nav => vec![
            context! { href => "/admin/issues", label => "Issues", current => true },
            context! { href => "/admin/media", label => "Media", current => false },
            context! { href => "/admin/contacts", label => "Contacts", current => false },
            context! { href => "/admin/campaigns", label => "Campaigns", current => false },
            context! { href => "/admin/bounces", label => "Bounces", current => false },
            context! { href => "/admin/dashboard", label => "Dashboard", current => false },
        ],
        messages => vec![context! { kind => "ok", text => "Welcome back." }],
        ..sg.assets.template_context()
    };
    let html = sg
        .env
        .get_template("admin/styleguide.html")
        .and_then(|t| t.render(ctx))
        .unwrap_or_else(|e| panic!("admin/styleguide.html: {e:#}"));
    let mut res = Html(html).into_response();
    res.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(ADMIN_CSP),
    );
    res
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_layout_loads_its_embedded_scripts_under_the_admin_csp_and_passes_axe() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let assets = Arc::new(Assets::new("/admin/assets", &Branding::default()).unwrap());
    let tz: chrono_tz::Tz = "Asia/Tokyo".parse().unwrap();
    let env = whatsup::web::admin::environment(tz);
    let state = Arc::new(Styleguide {
        env,
        assets: assets.clone(),
    });
    let app: axum::Router = axum::Router::new()
        .route("/admin/styleguide", axum::routing::get(styleguide))
        .with_state(state)
        .nest(assets.prefix(), assets.clone().router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let page = http::get(addr, "/admin/styleguide").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page
        .body
        .contains("name=\"csrf_token\" value=\"test-csrf-token\""));
    assert!(page.body.contains("X-CSRF-Token"));

    let url = format!("http://{addr}/admin/styleguide");
    let report = browser
        .check(&url, "admin-styleguide", &[TABLET, DESKTOP])
        .await;
    assert_clean("admin style guide", &report, &[]);
    // The embedded scripts ran despite the strict CSP.
    let loaded = browser
        .client
        .execute(
            "return [typeof htmx === 'object' ? htmx.version : null, typeof uPlot];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(loaded[0], "2.0.11", "{loaded}");
    assert_eq!(loaded[1], "function", "{loaded}");
    // The brand colours reach the page through brand.css.
    let colour = browser
        .client
        .execute(
            "return getComputedStyle(document.querySelector('.topbar')).backgroundColor;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(colour, "rgb(20, 40, 75)");
    // The skip link is the first stop of the keyboard, and leads to main.
    browser
        .client
        .active_element()
        .await
        .unwrap()
        .send_keys("\u{E004}") // Tab
        .await
        .unwrap();
    let focused = browser
        .client
        .execute("return document.activeElement.className;", vec![])
        .await
        .unwrap();
    assert_eq!(focused, "skip-link");
    // Phone width too, for the record: the admin is built for tablets up,
    // and should still not break apart.
    browser.set_width(PHONE).await;
    browser.open(&url).await;
    browser.screenshot("admin-styleguide-375").await;
    assert!(browser.console_errors().await.is_empty());
    browser.close().await;
    server.abort();
}
