//! The sample issue in headless Chromium (`common::browser`): screenshots at
//! 375 px and 600 px, nothing overflowing sideways at either width, and no
//! serious or critical axe-core violation.

use std::path::PathBuf;

use whatsup::compose::{CompiledIssue, Issue, Recipient};
use whatsup::config::Newsletter;
use whatsup::domain::OrgKind;

use crate::common::browser::{assert_clean, Browser, PHONE};

fn sample_html() -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let issue = Issue::load(&root.join("samples/issue-214.md")).unwrap();
    let c = CompiledIssue::compile(issue, &Newsletter::default()).unwrap();
    let mut r = Recipient::sample(Some(OrgKind::Embassy));
    // A long unbreakable address is the usual cause of overflow on phones.
    r.email = "international.relations.department.long.address@embassy.example.org".into();
    c.html_for(&r).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_issue_renders_in_chromium_at_phone_and_desktop_widths_without_overflow() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("issue.html");
    std::fs::write(&page, sample_html()).unwrap();
    let url = format!("file://{}", page.display());
    // `check` fails on sideways overflow at each width.
    let report = browser.check(&url, "issue-214", &[PHONE, 600]).await;
    assert_eq!(report.screenshots.len(), 2);
    // The sample's images are on www.example.org, which never resolves here.
    assert_clean(
        "issue 214",
        &report,
        &["https://www.example.org/whatsup/214/"],
    );
    browser.set_width(PHONE).await;
    browser.open(&url).await;
    assert_eq!(browser.widths().await, (375, 375));
    browser.close().await;
}
