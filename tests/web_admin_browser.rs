//! The issue editor in real headless Chromium (`common::browser`) against
//! the admin listener of the real binary (`whatsup serve`): an editor signs
//! in, uploads an image, writes an issue with it, sees the preflight's error
//! at the image's alt field, fixes it, previews the issue at phone width as
//! a named contact, and requests approval. Then every page of the editor's
//! side is checked at tablet and desktop widths: a screenshot each, axe-core,
//! the console.

use std::time::Duration;

use fantoccini::Locator;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

use crate::common::admin_pages::embassy_campaign;
use crate::common::admin_pages::serve;
use crate::common::browser::{assert_clean, Browser, DESKTOP, PHONE, TABLET};
use crate::common::workspace::{person, PASSWORD};
use crate::common::{self};
use whatsup::domain::Role;

/// Messages under `newsletter.base_url` (which never resolves here) or on
/// www.example.org: the only errors the preview's images may log.
const REMOTE_IMAGES: &[&str] = &["whatsup.tokyo.example.org", "www.example.org"];

/// Polls a script until it returns true (15 s at most).
async fn wait_for(b: &Browser, script: &str, what: &str) {
    for _ in 0..150 {
        let v = b.client.execute(script, vec![]).await;
        if matches!(v, Ok(serde_json::Value::Bool(true))) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("waited 15 s for {what} ({script})");
}

async fn js(b: &Browser, script: &str) -> serde_json::Value {
    b.client
        .execute(script, vec![])
        .await
        .unwrap_or_else(|e| panic!("{script}: {e}"))
}

async fn type_into(b: &Browser, css: &str, text: &str) {
    let el = b
        .client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"));
    el.clear().await.unwrap();
    el.send_keys(text).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_editor_writes_an_issue_with_an_uploaded_image_fixes_its_preflight_error_previews_it_as_a_contact_and_requests_approval(
) {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let db = common::sqlite().await;
    let files = tempfile::tempdir().unwrap();
    common::import(
        &db.store,
        &common::seed("embassies.csv"),
        &whatsup::import::ImportOptions::default(),
    )
    .await;
    person(&db, "editor@example.org", Role::Editor).await;
    // The real binary, as in production: `whatsup serve` with the admin on
    // its own listener (no relay is needed: nothing is sent here).
    let (_serve, addr) = serve(&db, files.path(), 9);
    let base = format!("http://{addr}");

    // Signing in, sent there from the page asked for.
    browser.set_width(DESKTOP).await;
    browser.open(&format!("{base}/admin/media")).await;
    let url = browser.client.current_url().await.unwrap();
    assert!(url.as_str().contains("/admin/login?next="), "{url}");
    type_into(&browser, "#email", "editor@example.org").await;
    type_into(&browser, "#password", PASSWORD).await;
    browser
        .click("form[action='/admin/login'] button[type=submit]")
        .await;
    let url = browser.client.current_url().await.unwrap();
    assert!(url.as_str().ends_with("/admin/media"), "{url}");

    // An image into the library, with its alt text.
    let png = files.path().join("sumida-lanterns.png");
    let img = RgbImage::from_fn(900, 600, |x, y| {
        Rgb([(x % 256) as u8, (y % 256) as u8, 120])
    });
    DynamicImage::ImageRgb8(img)
        .save_with_format(&png, ImageFormat::Png)
        .unwrap();
    browser
        .client
        .find(Locator::Css("#file"))
        .await
        .unwrap()
        .send_keys(&png.display().to_string())
        .await
        .unwrap();
    type_into(
        &browser,
        "#alt",
        "Paper lanterns floating on the Sumida river at dusk",
    )
    .await;
    browser
        .click("form[action='/admin/media'] button[type=submit]")
        .await;
    let media = db.store.list_media(10, 0).await.unwrap();
    assert_eq!(media.len(), 1, "the upload is in the library");
    let src = media[0].path();

    // A new issue.
    browser.open(&format!("{base}/admin/issues")).await;
    browser
        .click("form[action='/admin/issues'] button[type=submit]")
        .await;
    let url = browser.client.current_url().await.unwrap();
    assert!(url.as_str().ends_with("/admin/issues/1"), "{url}");
    // The skeleton's two other sections go: this issue has one story.
    browser.click("button[value='remove-section:s2']").await;
    browser.click("button[value='remove-section:s1']").await;

    // Writing: subject, heading, body with the toolbar, the image.
    type_into(
        &browser,
        "#f-subject",
        "Lanterns on the Sumida 隅田川の灯籠流し",
    )
    .await;
    type_into(&browser, "#f-s0-title", "Culture & Nature").await;
    type_into(
        &browser,
        "#f-s0-a0-heading",
        "Lanterns float down the Sumida",
    )
    .await;
    type_into(
        &browser,
        "#f-s0-a0-body",
        "Thousands of paper lanterns drift past Asakusa.",
    )
    .await;
    browser
        .client
        .find(Locator::Css("#f-s0-a0-body"))
        .await
        .unwrap()
        .send_keys("\u{E009}a") // Ctrl+A: the toolbar wraps the selection
        .await
        .unwrap();
    browser
        .client
        .find(Locator::Css(
            "[aria-controls='f-s0-a0-body'] [data-md='bold']",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let body = js(
        &browser,
        "return document.getElementById('f-s0-a0-body').value;",
    )
    .await;
    assert_eq!(body, "**Thousands of paper lanterns drift past Asakusa.**");
    browser
        .client
        .find(Locator::Css("#f-s0-a0-image_src"))
        .await
        .unwrap()
        .select_by_value(&src)
        .await
        .unwrap();

    // The image has no alt text yet: autosave brings the error to its field,
    // and the approval request stays disabled.
    wait_for(
        &browser,
        "return document.getElementById('f-s0-a0-image_alt-msg').textContent.includes('Error');",
        "the alt text's error at its field",
    )
    .await;
    let blocked = js(
        &browser,
        "return document.getElementById('approval-blocked').textContent;",
    )
    .await;
    assert!(blocked.as_str().unwrap().contains("Fix the"), "{blocked}");
    browser.screenshot("admin-editor-alt-error-1280").await;

    // Fixed, the error goes; saved, the request is possible.
    type_into(
        &browser,
        "#f-s0-a0-image_alt",
        "Paper lanterns on the river at dusk",
    )
    .await;
    wait_for(
        &browser,
        "return document.getElementById('f-s0-a0-image_alt-msg').textContent.trim() === '';",
        "the alt text's error to go",
    )
    .await;
    browser.click("#save-button").await;
    let notice = js(
        &browser,
        "return document.querySelector('.notice-ok, .notice-warn').textContent;",
    )
    .await;
    assert!(
        notice.as_str().unwrap().contains("Saved as revision"),
        "{notice}"
    );
    let saved = db.store.issue_revision(1, None).await.unwrap();
    assert!(saved.source.contains(&src), "{}", saved.source);
    assert!(saved
        .source
        .contains("alt = \"Paper lanterns on the river at dusk\""));

    // Now that it passes its preflight, an operator makes the campaign
    // (the send gate refuses one for an issue that fails it).
    let campaign = embassy_campaign(&db.store, &db.config, 1, "Lantern issue to embassies").await;
    browser.open(&format!("{base}/admin/issues/1")).await;
    let button = format!("#request-approval-{}", campaign.id);
    let disabled = js(
        &browser,
        &format!("return document.querySelector('{button}').disabled;"),
    )
    .await;
    assert_eq!(disabled, false);

    // The preview on a phone, as a contact found by organisation.
    let contact = db
        .store
        .list_contacts(None, Some(1), 0)
        .await
        .unwrap()
        .remove(0);
    let org = contact.org_name.clone().unwrap();
    type_into(&browser, "#pv-contact-q", &org).await;
    wait_for(
        &browser,
        &format!(
            "return !!document.querySelector('#pv-contact option[value=\"{}\"]');",
            contact.id
        ),
        "the contact among the choices",
    )
    .await;
    browser
        .client
        .execute(
            &format!(
                "window.__whatsupBeforeClick = true; const s = document.getElementById('pv-contact'); \
                 s.value = '{}'; s.dispatchEvent(new Event('change', {{bubbles: true}}));",
                contact.id
            ),
            vec![],
        )
        .await
        .unwrap();
    wait_for(
        &browser,
        "return window.__whatsupBeforeClick === undefined && document.readyState === 'complete';",
        "the page with the chosen contact",
    )
    .await;
    let url = browser.client.current_url().await.unwrap();
    assert!(
        url.as_str().contains(&format!("contact={}", contact.id)),
        "{url}"
    );
    assert!(url.as_str().contains("view=phone"), "{url}");
    let width = js(
        &browser,
        "return document.getElementById('preview-frame').getBoundingClientRect().width;",
    )
    .await;
    assert_eq!(
        width.as_f64(),
        Some(375.0),
        "the phone preview is 375 px wide"
    );
    wait_for(
        &browser,
        &format!(
            "const d = document.getElementById('preview-frame').contentDocument; \
             return !!d && !!d.body && d.body.innerText.includes('{}');",
            contact.email
        ),
        "the preview addressed to the contact",
    )
    .await;
    let as_whom = js(
        &browser,
        "return document.getElementById('preview-as').textContent;",
    )
    .await;
    assert!(
        as_whom.as_str().unwrap().contains(&contact.email),
        "{as_whom}"
    );
    browser.screenshot("admin-editor-phone-preview-1280").await;

    // The request for approval.
    browser.click(&button).await;
    let approvals = db.store.approvals(campaign.id).await.unwrap();
    assert_eq!(approvals.len(), 1);
    assert_eq!(approvals[0].kind, "request");
    assert_eq!(approvals[0].issue_revision, saved.revision);
    assert_eq!(approvals[0].actor, "user:editor@example.org");
    let notice = js(
        &browser,
        "return document.querySelector('.notice-ok').textContent;",
    )
    .await;
    assert!(
        notice.as_str().unwrap().contains("Approval of revision"),
        "{notice}"
    );
    let errors = browser.console_errors().await;
    let errors: Vec<_> = errors
        .iter()
        .filter(|e| !REMOTE_IMAGES.iter().any(|r| e.contains(r)))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");

    // Every page of the editor's side, at tablet and desktop widths.
    let pages = [
        ("admin-issues", format!("{base}/admin/issues")),
        ("admin-issue-editor", format!("{base}/admin/issues/1")),
        (
            "admin-issue-editor-desktop-dark",
            format!(
                "{base}/admin/issues/1?view=desktop&dark=1&contact={}",
                contact.id
            ),
        ),
        (
            "admin-issue-editor-text",
            format!("{base}/admin/issues/1?view=text"),
        ),
        (
            "admin-issue-source",
            format!("{base}/admin/issues/1?mode=source"),
        ),
        (
            "admin-issue-revisions",
            format!("{base}/admin/issues/1/revisions"),
        ),
        (
            "admin-issue-diff",
            format!("{base}/admin/issues/1/revisions/2"),
        ),
        ("admin-media", format!("{base}/admin/media")),
        ("admin-home", format!("{base}/admin")),
    ];
    for (name, url) in &pages {
        let report = browser.check(url, name, &[TABLET, DESKTOP]).await;
        assert_clean(name, &report, REMOTE_IMAGES);
    }
    // The login page, signed out.
    browser
        .click("form[action='/admin/logout'] button[type=submit]")
        .await;
    let report = browser
        .check(
            &format!("{base}/admin/login"),
            "admin-login",
            &[PHONE, TABLET, DESKTOP],
        )
        .await;
    assert_clean("admin-login", &report, &[]);
    browser.close().await;
}
