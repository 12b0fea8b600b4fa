//! The contacts and organisations pages of the web admin over loopback, on
//! both backends: the segment search with its count and "did you mean",
//! paging forwards and back, a contact's page (history, deliveries,
//! bounces), editing with errors at their fields, a status change with its
//! reason, adding a contact, and the organisations list and page.

use crate::common::admin_pages::{html, Browser};
use crate::common::workspace::{Api, PASSWORD};
use crate::common::{self, TestDb};
use whatsup::domain::segment::Segment;

async fn start(db: TestDb) -> (Api, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = db.config.clone();
    config.general.data_dir = dir.path().to_path_buf();
    common::import(
        &db.store,
        &common::seed("embassies.csv"),
        &Default::default(),
    )
    .await;
    (Api::start_with(db, config).await, dir)
}

/// The addresses linked from a contacts page, in order.
fn emails(page: &str) -> Vec<String> {
    page.split("<td><a href=\"/admin/contacts/")
        .skip(1)
        .filter_map(|s| s.split_once("\">").map(|(_, r)| r))
        .filter_map(|r| r.split_once("</a>").map(|(e, _)| e.to_string()))
        .collect()
}

/// The path of a pager link (`rel` prev or next), unescaped.
fn pager(page: &str, rel: &str) -> Option<String> {
    let at = page.find(&format!("rel=\"{rel}\""))?;
    let before = &page[..at];
    let href = before.rsplit("href=\"").next()?;
    Some(href.split('"').next()?.replace("&amp;", "&"))
}

async fn the_segment_search_counts_pages_both_ways_and_says_what_is_wrong(db: TestDb) {
    let (api, _dir) = start(db).await;
    let b = Browser::sign_in(api.addr, "viewer@example.org", PASSWORD).await;
    let all = api.db.store.count_contacts(None).await.unwrap();
    assert!(all > 100, "{all}");
    let first = html(&b.get("/admin/contacts").await);
    assert!(
        first.contains(&format!("<strong>{all}</strong> contacts")),
        "{first}"
    );
    let page1 = emails(&first);
    assert_eq!(page1.len(), 50);
    let next = pager(&first, "next").expect("a next page");
    assert!(pager(&first, "prev").is_none());
    let second = html(&b.get(&next).await);
    let page2 = emails(&second);
    assert_eq!(page2.len(), 50);
    assert!(page1.last().unwrap() < page2.first().unwrap());
    let back = html(&b.get(&pager(&second, "prev").unwrap()).await);
    assert_eq!(
        emails(&back),
        page1,
        "previous leads back to the first page"
    );

    let q = "region = Europe and kind = embassy";
    let n = api
        .db
        .store
        .count_contacts(Some(&Segment::parse(q).unwrap()))
        .await
        .unwrap();
    let r = b
        .get(&format!(
            "/admin/contacts?q={}",
            crate::common::http::form_value(q)
        ))
        .await;
    let page = html(&r);
    assert!(
        page.contains(&format!("<strong>{n}</strong> contacts match")),
        "{page}"
    );
    assert_eq!(emails(&page).len() as i64, n.min(50));

    let r = b.get("/admin/contacts?q=regoin%20%3D%20Europe").await;
    assert_eq!(r.status, 200);
    let page = html(&r);
    assert!(page.contains("id=\"q-error\""), "{page}");
    assert!(page.contains("did you mean &quot;region&quot;"), "{page}");
    assert!(page.contains("Column 1"), "{page}");
    assert!(!page.contains("Add a contact"), "a viewer adds nobody");
    api.stop().await;
}

async fn a_contact_is_added_edited_and_its_status_changed_with_a_reason(db: TestDb) {
    let (api, _dir) = start(db).await;
    let b = Browser::sign_in(api.addr, "operator@example.org", PASSWORD).await;
    let r = b
        .post_form(
            "/admin/contacts",
            &[("email", "not an address"), ("name", "山田 花子")],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let page = html(&r);
    assert!(page.contains("id=\"email-error\""), "{page}");
    assert!(page.contains("山田 花子"), "the name is kept");
    let org = api.db.store.list_orgs(None).await.unwrap()[0].clone();
    let r = b
        .post_form(
            "/admin/contacts",
            &[
                ("email", "Hanako.Yamada@example.net"),
                ("name", "山田 花子"),
                ("organisation_id", &org.id.to_string()),
                ("tags", "press, vip"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let path = r.header("location").unwrap().to_string();
    let page = html(&b.get(&path).await);
    assert!(page.contains("hanako.yamada@example.net added."), "{page}");
    assert!(page.contains(&org.name), "{page}");
    assert!(page.contains("press, vip"), "{page}");

    // Edit: a bad language at its field, then a good change of name and tags.
    let edit = |lang: &'static str, tags: &'static str| {
        vec![
            ("email", "hanako.yamada@example.net"),
            ("name", "Hanako Yamada"),
            ("title", "Press Attaché"),
            ("language", lang),
            ("tags", tags),
        ]
    };
    let r = b.post_form(&path, &edit("not a language!", "press")).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(html(&r).contains("id=\"language-error\""), "{}", r.body);
    let r = b.post_form(&path, &edit("ja", "press, economy")).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let c = api
        .db
        .store
        .contact("hanako.yamada@example.net")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (c.name.as_str(), c.title.as_str(), c.language.as_deref()),
        ("Hanako Yamada", "Press Attaché", Some("ja"))
    );
    let mut tags = c.tag_list();
    tags.sort();
    assert_eq!(tags, ["economy", "press"]);
    assert_eq!(c.organisation_id, None, "the form said no organisation");

    // A status change needs a reason, and shows in the history.
    let status = format!("{path}/status");
    let r = b
        .post_form(&status, &[("status", "unsubscribed"), ("reason", " ")])
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(html(&r).contains("id=\"reason-error\""), "{}", r.body);
    let r = b
        .post_form(
            &status,
            &[("status", "unsubscribed"), ("reason", "asked by phone")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let page = html(&b.get(&path).await);
    assert!(
        page.contains("Status changed from active to unsubscribed."),
        "{page}"
    );
    assert!(page.contains("asked by phone"), "{page}");
    assert!(
        page.contains("id=\"contact-status\">unsubscribed"),
        "{page}"
    );

    // A viewer reads but may not post.
    let viewer = Browser::sign_in(api.addr, "viewer@example.org", PASSWORD).await;
    let page = html(&viewer.get(&path).await);
    assert!(!page.contains("Change the status"), "{page}");
    let r = viewer
        .post_form(&status, &[("status", "active"), ("reason", "x")])
        .await;
    assert_eq!(r.status, 403);
    api.stop().await;
}

async fn a_contacts_deliveries_show_on_its_page_and_its_organisation_lists_it(db: TestDb) {
    let (api, _dir) = start(db).await;
    common::save_sample_issue(&api.db.store).await;
    let id = common::draft_campaign(&api.db.store, "to Europe", "region = Europe").await;
    whatsup::send::engine::start(&api.db.store, &api.db.config, id, &common::actor())
        .await
        .unwrap()
        .unwrap();
    let europe = Segment::parse("region = Europe").unwrap();
    let c = api
        .db
        .store
        .contact_page(Some(&europe), None, 1)
        .await
        .unwrap()[0]
        .clone();
    let b = Browser::sign_in(api.addr, "viewer@example.org", PASSWORD).await;
    let page = html(&b.get(&format!("/admin/contacts/{}", c.id)).await);
    assert!(
        page.contains(&format!("/admin/campaigns/{id}\">to Europe")),
        "{page}"
    );
    assert!(page.contains("<td>pending</td>"), "{page}");
    // The organisation's page lists the contact.
    let org = c.organisation_id.unwrap();
    let page = html(&b.get(&format!("/admin/organisations/{org}")).await);
    assert!(page.contains(&c.email), "{page}");
    let list = html(&b.get("/admin/organisations?kind=embassy").await);
    assert!(
        list.contains(&format!("/admin/organisations/{org}\"")),
        "{list}"
    );
    assert_eq!(
        b.get("/admin/organisations?kind=nonsense").await.status,
        400
    );
    api.stop().await;
}

on_both_backends!(
    the_segment_search_counts_pages_both_ways_and_says_what_is_wrong,
    a_contact_is_added_edited_and_its_status_changed_with_a_reason,
    a_contacts_deliveries_show_on_its_page_and_its_organisation_lists_it,
);
