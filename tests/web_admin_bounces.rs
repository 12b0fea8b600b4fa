//! The bounces page over loopback, on both backends: the events and the
//! per-address report filtered by kind, reason and verification, with the
//! unverified events marked.

use crate::common::admin_pages::{html, Browser};
use crate::common::workspace::{Api, PASSWORD};
use crate::common::{self, TestDb};
use whatsup::store::bounces::{BouncePolicy, NewBounceEvent, NewBounceMessage};

const CSV: &str = "email,name\nanne@example.org,Anne\nbob@example.org,Bob\n";

fn event(contact: i64, email: &str, kind: &str, reason: &str, verified: bool) -> NewBounceEvent {
    NewBounceEvent {
        contact_id: Some(contact),
        campaign_id: None,
        delivery_id: None,
        email: email.into(),
        kind: kind.into(),
        reason: reason.into(),
        status: "5.1.1".into(),
        diagnostic: format!("550 5.1.1 {reason}"),
        matched_by: if verified { "verp" } else { "address" }.into(),
        verified,
    }
}

async fn start(db: TestDb) -> (Api, tempfile::TempDir) {
    let (_d, path) = common::temp_csv(CSV);
    common::import(&db.store, &path, &Default::default()).await;
    let store = &db.store;
    let anne = store.contact("anne@example.org").await.unwrap().unwrap().id;
    let bob = store.contact("bob@example.org").await.unwrap().unwrap().id;
    for (key, e) in [
        (
            "m1",
            event(anne, "anne@example.org", "hard", "user_unknown", false),
        ),
        (
            "m2",
            event(bob, "bob@example.org", "hard", "user_unknown", true),
        ),
        (
            "m3",
            event(bob, "bob@example.org", "soft", "mailbox_full", true),
        ),
    ] {
        let msg = NewBounceMessage {
            sha256: key.into(),
            message_id: format!("<{key}@example.net>"),
            source: "test".into(),
            format: "dsn".into(),
            events: vec![e],
        };
        store
            .record_bounce(&msg, &BouncePolicy::default(), "bounce:test")
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let mut config = db.config.clone();
    config.general.data_dir = dir.path().to_path_buf();
    (Api::start_with(db, config).await, dir)
}

/// The table's body rows.
fn rows(page: &str) -> Vec<&str> {
    let Some(at) = page.find("<tbody>") else {
        return Vec::new();
    };
    page[at..]
        .split("</tbody>")
        .next()
        .unwrap()
        .split("<tr")
        .skip(1)
        .collect()
}

async fn bounces_are_filtered_by_kind_reason_and_verification_and_unverified_ones_marked(
    db: TestDb,
) {
    let (api, _dir) = start(db).await;
    let b = Browser::sign_in(api.addr, "viewer@example.org", PASSWORD).await;
    let all = html(&b.get("/admin/bounces").await);
    let r = rows(&all);
    assert_eq!(r.len(), 3, "{all}");
    // Newest first; only Anne's is unverified, and marked.
    assert!(
        r[2].contains("anne@example.org") && r[2].contains("badge-warn\">unverified"),
        "{all}"
    );
    assert!(!r[0].contains("unverified"), "{all}");
    assert!(
        all.contains("<option value=\"user_unknown\">user_unknown (2)"),
        "{all}"
    );

    let only = |q: &'static str| {
        let b = &b;
        async move { html(&b.get(&format!("/admin/bounces?{q}")).await) }
    };
    assert_eq!(rows(&only("kind=hard").await).len(), 2);
    assert_eq!(rows(&only("reason=mailbox_full").await).len(), 1);
    let unverified = only("verified=no").await;
    assert_eq!(rows(&unverified).len(), 1);
    assert!(unverified.contains("anne@example.org"));
    assert_eq!(rows(&only("kind=hard&verified=yes").await).len(), 1);
    let none = only("kind=complaint").await;
    assert!(none.contains("No bounces match the filter"), "{none}");

    // The report: one row per address.
    let report = only("view=report").await;
    let r = rows(&report);
    assert_eq!(r.len(), 2, "{report}");
    let bob = r.iter().find(|r| r.contains("bob@example.org")).unwrap();
    assert!(
        bob.contains("<td class=\"num\">2</td>"),
        "two events: {bob}"
    );
    assert_eq!(b.get("/admin/bounces?days=soon").await.status, 400);
    api.stop().await;
}

on_both_backends!(bounces_are_filtered_by_kind_reason_and_verification_and_unverified_ones_marked,);
