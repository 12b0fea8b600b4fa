//! The CSV import pages over loopback, on both backends: a dry run's counts
//! and row errors (line, column, reason), the reject file, running the dry
//! run's file for real, and what is refused.

use crate::common::admin_pages::{html, Browser};
use crate::common::workspace::{Api, PASSWORD};
use crate::common::{self, TestDb};

async fn start(db: TestDb) -> (Api, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = db.config.clone();
    config.general.data_dir = dir.path().to_path_buf();
    (Api::start_with(db, config).await, dir)
}

/// Three good rows and two bad ones (an address, a country).
const CSV: &str = "email,name,organisation,kind,country\n\
anne@paris.example.org,Anne,City of Paris,city,FR\n\
not-an-address,Nobody,City of Paris,city,FR\n\
bob@nyc.example.com,Bob,City of New York,city,US\n\
cleo@rome.example.org,Cleo,City of Rome,city,XX\n\
dan@rome.example.org,Dan,City of Rome,city,IT\n";

/// The job page once the job is over (the page stops following it).
async fn finished(b: &Browser, path: &str) -> String {
    for _ in 0..300 {
        let page = html(&b.get(path).await);
        if !page.contains("data-job-url") {
            return page;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{path} never finished");
}

async fn upload(b: &Browser, fields: &[(&str, &str)], csv: &str) -> String {
    let r = b
        .post_multipart(
            "/admin/imports",
            fields,
            &[("file", "contacts.csv", csv.as_bytes())],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    r.header("location").unwrap().to_string()
}

async fn a_dry_run_shows_its_counts_and_row_errors_and_runs_for_real(db: TestDb) {
    let (api, _dir) = start(db).await;
    let b = Browser::sign_in(api.addr, "operator@example.org", PASSWORD).await;
    let dry = upload(&b, &[("dry_run", "1"), ("tags", "press")], CSV).await;
    let page = finished(&b, &dry).await;
    assert!(page.contains("What the import would do"), "{page}");
    assert!(page.contains("data-count=\"rows\">5<"), "{page}");
    assert!(page.contains("data-count=\"created\">3<"), "{page}");
    assert!(page.contains("data-count=\"rejected\">2<"), "{page}");
    // The table: line, column, reason.
    let table = &page[page.find("id=\"row-errors\"").expect("the row errors")..];
    assert!(
        table.contains("<td class=\"num\">3</td><td class=\"num\">1</td><td>email</td>"),
        "{table}"
    );
    assert!(table.contains("<td class=\"num\">5</td>"), "{table}");
    assert!(
        table.contains("<td class=\"num\">46</td><td>country</td>"),
        "{table}"
    );
    assert!(table.contains("&quot;XX&quot;"), "{table}");
    assert_eq!(
        api.db.store.count_contacts(None).await.unwrap(),
        0,
        "a dry run writes nothing"
    );

    let id = dry.rsplit('/').next().unwrap();
    let r = b.get(&format!("/admin/imports/{id}/rejects.csv")).await;
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with("email,name"), "{}", r.body);
    assert!(
        r.body.contains("not-an-address") && r.body.contains("cleo@rome"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("anne@"), "{}", r.body);

    let r = b.post_form(&format!("/admin/imports/{id}/run"), &[]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let real = r.header("location").unwrap().to_string();
    assert_ne!(real, dry);
    let page = finished(&b, &real).await;
    assert!(page.contains("What the import did"), "{page}");
    assert!(page.contains("data-count=\"created\">3<"), "{page}");
    assert!(
        !page.contains("Import it for real"),
        "only a dry run is run again"
    );
    assert_eq!(api.db.store.count_contacts(None).await.unwrap(), 3);
    let anne = api
        .db
        .store
        .contact("anne@paris.example.org")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(anne.tag_list(), ["press"], "the dry run's options");

    // A finished import is not run again.
    let real_id = real.rsplit('/').next().unwrap();
    let r = b
        .post_form(&format!("/admin/imports/{real_id}/run"), &[])
        .await;
    let page = html(&b.get(r.header("location").unwrap()).await);
    assert!(page.contains("is not a finished dry run"), "{page}");
    let list = html(&b.get("/admin/imports").await);
    assert!(list.contains(&format!("/admin/imports/{id}\"")), "{list}");
    api.stop().await;
}

async fn an_upload_without_a_file_or_by_an_editor_is_refused(db: TestDb) {
    let (api, _dir) = start(db).await;
    let b = Browser::sign_in(api.addr, "operator@example.org", PASSWORD).await;
    let r = b
        .post_multipart("/admin/imports", &[("dry_run", "1")], &[])
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(html(&r).contains("id=\"file-error\""), "{}", r.body);
    let editor = Browser::sign_in(api.addr, "editor@example.org", PASSWORD).await;
    let r = editor
        .post_multipart(
            "/admin/imports",
            &[],
            &[("file", "a.csv", b"email\na@example.org\n")],
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(api.db.store.count_contacts(None).await.unwrap(), 0);
    api.stop().await;
}

on_both_backends!(
    a_dry_run_shows_its_counts_and_row_errors_and_runs_for_real,
    an_upload_without_a_file_or_by_an_editor_is_refused,
);
