//! One store conformance suite, run against SQLite and against PostgreSQL:
//! contacts, organisations, statuses and their audit trail, segments, CSV
//! import semantics and lossless export, and the bounce recording's rule
//! that unverified events change nothing.

use crate::common;

use std::collections::BTreeSet;

use crate::common::{data, import, temp_csv, TestDb};
use whatsup::config::Secret;
use whatsup::domain::segment::Segment;
use whatsup::domain::{CampaignState, ContactStatus, CountryCode, EmailAddress, OrgKind};
use whatsup::export::{export, Format};
use whatsup::import::ImportOptions;
use whatsup::store::bounces::{
    BounceFilter, BouncePolicy, NewBounceEvent, NewBounceMessage, UNVERIFIED_ACTION,
};
use whatsup::store::{ContactPatch, NewContact, OrgFields, StatusChange, Store};

fn new_contact(email: &str) -> NewContact {
    NewContact {
        email: EmailAddress::parse(email).unwrap(),
        name: "Test Person".into(),
        title: "Officer".into(),
        salutation: String::new(),
        organisation_id: None,
        language: None,
        consent_source: "test".into(),
        attributes: Default::default(),
        tags: vec!["Press".into()],
    }
}

async fn emails(store: &Store, segment: &str) -> BTreeSet<String> {
    let seg = Segment::parse(segment).unwrap_or_else(|e| panic!("{segment}: {e}"));
    store
        .list_contacts(Some(&seg), None, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.email)
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

async fn fixture(db: &TestDb) {
    let r = import(
        &db.store,
        &data("csv/fixture.csv"),
        &ImportOptions::default(),
    )
    .await;
    assert_eq!(r.rejected, 0, "{:?}", r.errors);
    assert_eq!(r.created, 8);
}

async fn adding_a_contact_normalises_the_address_and_refuses_a_case_variant(db: TestDb) {
    let c = db
        .store
        .add_contact(
            &new_contact("  Mixed.Case@Example.ORG "),
            &crate::common::actor(),
        )
        .await
        .unwrap();
    assert_eq!(c.email, "mixed.case@example.org");
    assert_eq!(c.status, "active");
    assert_eq!(c.tag_list(), vec!["press"]);
    let err = db
        .store
        .add_contact(
            &new_contact("MIXED.case@example.org"),
            &crate::common::actor(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    assert!(db
        .store
        .contact("MIXED.CASE@example.org")
        .await
        .unwrap()
        .is_some());
}

async fn organisations_are_found_by_name_case_insensitively_and_edited(db: TestDb) {
    let fields = OrgFields {
        kind: Some(OrgKind::Embassy),
        name: Some("Embassy of France in Japan".into()),
        country: Some(Some(CountryCode::parse("fr").unwrap())),
        region: Some(Some("Europe".into())),
        ..Default::default()
    };
    let o = db
        .store
        .add_org(&fields, &crate::common::actor())
        .await
        .unwrap();
    assert_eq!(o.country.as_deref(), Some("FR"));
    let found = db
        .store
        .find_org("embassy of FRANCE in japan")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, o.id);
    assert!(
        db.store
            .add_org(&fields, &crate::common::actor())
            .await
            .is_err(),
        "a second organisation with the same name"
    );
    let edited = db
        .store
        .edit_org(
            o.id,
            &OrgFields {
                region: Some(None),
                notes: Some("moved".into()),
                ..Default::default()
            },
            &crate::common::actor(),
        )
        .await
        .unwrap();
    assert_eq!(edited.region, None);
    assert_eq!(edited.notes, "moved");
    assert_eq!(edited.kind, "embassy");
    assert_eq!(
        db.store
            .list_orgs(Some(OrgKind::Embassy))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(db
        .store
        .list_orgs(Some(OrgKind::City))
        .await
        .unwrap()
        .is_empty());
}

async fn a_status_change_writes_the_audit_trail_once(db: TestDb) {
    db.store
        .add_contact(&new_contact("a@example.org"), &crate::common::actor())
        .await
        .unwrap();
    let change = StatusChange {
        status: ContactStatus::Bounced,
        reason: "550 5.1.1 user unknown",
        actor: "bounce",
        evidence: serde_json::json!({"status": "5.1.1"}),
    };
    assert_eq!(
        db.store
            .set_status("A@example.org", &change, &crate::common::actor())
            .await
            .unwrap(),
        Some(ContactStatus::Active)
    );
    // The same change again changes nothing and writes nothing.
    assert_eq!(
        db.store
            .set_status("a@example.org", &change, &crate::common::actor())
            .await
            .unwrap(),
        None
    );
    let c = db.store.contact("a@example.org").await.unwrap().unwrap();
    assert_eq!(c.status, "bounced");
    assert_eq!(c.status_reason, "550 5.1.1 user unknown");
    let history = db.store.status_history(c.id).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].old_status.as_deref(), Some("active"));
    assert_eq!(history[0].new_status, "bounced");
    assert_eq!(history[0].actor, "bounce");
    assert_eq!(history[0].evidence.0["status"], "5.1.1");
    assert!(db
        .store
        .set_status("nobody@example.org", &change, &crate::common::actor())
        .await
        .is_err());
}

async fn editing_a_contact_changes_fields_tags_and_attributes(db: TestDb) {
    db.store
        .add_contact(&new_contact("e@example.org"), &crate::common::actor())
        .await
        .unwrap();
    let mut patch = ContactPatch {
        name: Some("Eve Example".into()),
        add_tags: vec!["culture".into()],
        remove_tags: vec!["press".into()],
        ..Default::default()
    };
    patch.attributes.insert("desk".into(), "culture".into());
    let c = db
        .store
        .edit_contact("e@example.org", &patch, &crate::common::actor())
        .await
        .unwrap();
    assert_eq!(c.name, "Eve Example");
    assert_eq!(c.title, "Officer");
    assert_eq!(c.tag_list(), vec!["culture"]);
    assert_eq!(c.attributes.0["desk"], "culture");
    assert!(db
        .store
        .remove_contact("E@example.org", &crate::common::actor())
        .await
        .unwrap());
    assert!(!db
        .store
        .remove_contact("e@example.org", &crate::common::actor())
        .await
        .unwrap());
}

async fn segments_choose_exactly_the_expected_contacts(db: TestDb) {
    fixture(&db).await;
    let s = &db.store;
    assert_eq!(
        emails(s, r#"kind = embassy and region = "Europe""#).await,
        set(&[
            "culture@fr.embassy.example.org",
            "press@de.embassy.example.org"
        ])
    );
    assert_eq!(
        emails(s, "tag = sister-cities or country in (FR, DE)").await,
        set(&[
            "anne.martin@paris.example.com",
            "jonas.weber@berlin.example.com",
            "o'neill@nyc.example.com",
            "culture@fr.embassy.example.org",
            "press@de.embassy.example.org",
        ])
    );
    assert_eq!(
        emails(s, r#"attr.department = "protocol""#).await,
        set(&["o'neill@nyc.example.com"])
    );
    assert_eq!(
        emails(s, "since >= 1990 and relationship = sister").await,
        set(&["jonas.weber@berlin.example.com"])
    );
    assert_eq!(
        emails(s, "organisation is empty").await,
        set(&["freelance@example.net"])
    );
    assert_eq!(
        emails(s, r#"name ~ "NEILL""#).await,
        set(&["o'neill@nyc.example.com"])
    );
    assert_eq!(
        emails(s, "language = pt-br").await,
        set(&["info@br.embassy.example.org"])
    );
    // != includes contacts without the field (no organisation, so no region).
    assert_eq!(emails(s, "region != Europe").await.len(), 3);
    assert_eq!(emails(s, "created > 2000-01-01").await.len(), 8);
    assert_eq!(emails(s, "created < 2000-01-01").await.len(), 0);
    assert_eq!(
        emails(s, "tag = press and not (kind = city)").await.len(),
        3
    );
    let seg = Segment::parse("kind = embassy").unwrap();
    assert_eq!(s.count_contacts(Some(&seg)).await.unwrap(), 3);
}

async fn injection_attempts_in_segments_match_nothing_and_change_nothing(db: TestDb) {
    fixture(&db).await;
    for attack in [
        r#"name = "x'; drop table contacts; --""#,
        r#"name = "x' or '1'='1""#,
        r#"tag = "a') or 1=1 --""#,
        r#"attr.department = "x') or ('1'='1""#,
        r#"email ~ "%' or 1=1 --""#,
    ] {
        assert!(emails(&db.store, attack).await.is_empty(), "{attack}");
    }
    assert_eq!(db.store.count_contacts(None).await.unwrap(), 8);
}

async fn importing_the_same_file_twice_changes_nothing(db: TestDb) {
    fixture(&db).await;
    let before = db
        .store
        .contact("anne.martin@paris.example.com")
        .await
        .unwrap()
        .unwrap();
    let again = import(
        &db.store,
        &data("csv/fixture.csv"),
        &ImportOptions::default(),
    )
    .await;
    assert_eq!(
        (
            again.created,
            again.updated,
            again.unchanged,
            again.tags_added
        ),
        (0, 0, 8, 0)
    );
    assert_eq!((again.orgs_created, again.orgs_updated), (0, 0));
    let with_update = import(
        &db.store,
        &data("csv/fixture.csv"),
        &ImportOptions {
            update: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        (
            with_update.created,
            with_update.updated,
            with_update.unchanged
        ),
        (0, 0, 8)
    );
    let after = db
        .store
        .contact("anne.martin@paris.example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(before, after);
}

async fn update_merges_changed_fields_and_keeps_the_rest(db: TestDb) {
    fixture(&db).await;
    let (_dir, path) = temp_csv(
        "email,name,title,organisation,kind,region,tags,desk\n\
         ANNE.MARTIN@paris.example.com,,Deputy Mayor's Adviser,City of Paris,city,Europe,culture,Asia\n",
    );
    let plain = import(&db.store, &path, &ImportOptions::default()).await;
    assert_eq!(
        (plain.updated, plain.unchanged, plain.tags_added),
        (0, 1, 1)
    );
    let c = db
        .store
        .contact("anne.martin@paris.example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        c.title, "Head of International Relations",
        "without --update fields stay"
    );
    let merged = import(
        &db.store,
        &path,
        &ImportOptions {
            update: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(merged.updated, 1);
    let c = db
        .store
        .contact("anne.martin@paris.example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.title, "Deputy Mayor's Adviser");
    assert_eq!(
        c.name, "Anne Martin",
        "an empty cell does not clear a field"
    );
    assert_eq!(c.attributes.0["desk"], "Asia");
    assert_eq!(c.attributes.0["department"], "Relations internationales");
    assert_eq!(c.tag_list(), vec!["culture", "press", "sister-cities"]);
}

async fn an_import_never_reactivates_a_suppressed_contact_unless_forced(db: TestDb) {
    fixture(&db).await;
    let change = StatusChange {
        status: ContactStatus::Unsubscribed,
        reason: "one-click unsubscribe",
        actor: "web",
        evidence: serde_json::json!({}),
    };
    db.store
        .set_status(
            "press@de.embassy.example.org",
            &change,
            &crate::common::actor(),
        )
        .await
        .unwrap();
    let r = import(
        &db.store,
        &data("csv/fixture.csv"),
        &ImportOptions::default(),
    )
    .await;
    assert_eq!((r.reactivated, r.kept_suppressed), (0, 1));
    let c = db
        .store
        .contact("press@de.embassy.example.org")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.status, "unsubscribed");
    let forced = import(
        &db.store,
        &data("csv/fixture.csv"),
        &ImportOptions {
            force_reactivate: true,
            actor: "cli:tester".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(forced.reactivated, 1);
    let c = db
        .store
        .contact("press@de.embassy.example.org")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.status, "active");
    let history = db.store.status_history(c.id).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].actor, "cli:tester");
    assert_eq!(history[1].evidence.0["line"], 6);
}

async fn a_dry_run_reports_but_writes_nothing(db: TestDb) {
    let r = import(
        &db.store,
        &data("csv/fixture.csv"),
        &ImportOptions {
            dry_run: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!((r.created, r.orgs_created), (8, 7));
    assert!(r.dry_run);
    assert_eq!(db.store.count_contacts(None).await.unwrap(), 0);
    assert!(db.store.list_orgs(None).await.unwrap().is_empty());
    assert!(db.store.tags().await.unwrap().is_empty());
}

async fn duplicates_are_caught_across_batches(db: TestDb) {
    let mut csv = String::from("email,name\n");
    for i in 0..50 {
        csv.push_str(&format!("person{i}@example.org,P {i}\n"));
    }
    csv.push_str("PERSON3@example.org,again\n");
    let (_dir, path) = temp_csv(csv);
    let r = import(
        &db.store,
        &path,
        &ImportOptions {
            batch_size: 7,
            ..Default::default()
        },
    )
    .await;
    assert_eq!((r.created, r.rejected), (50, 1));
    assert_eq!(r.errors[0].line, 52);
    assert!(
        r.errors[0].message.contains("already appears on line 5"),
        "{}",
        r.errors[0].message
    );
    assert_eq!(r.errors[0].field.as_deref(), Some("email"));
    assert_eq!(r.batches_committed, 8);
}

async fn a_contact_that_existed_before_the_import_is_a_duplicate_when_it_appears_twice(db: TestDb) {
    db.store
        .add_contact(&new_contact("old@example.org"), &crate::common::actor())
        .await
        .unwrap();
    let mut csv = String::from("email,name\nold@example.org,Old\n");
    for i in 0..10 {
        csv.push_str(&format!("person{i}@example.org,P {i}\n"));
    }
    // Line 13, in a later chunk than line 2.
    csv.push_str("Old@Example.org,Old again\n");
    let (_dir, path) = temp_csv(csv);
    let opts = ImportOptions {
        batch_size: 4,
        ..Default::default()
    };
    let r = import(&db.store, &path, &opts).await;
    assert_eq!((r.created, r.unchanged, r.rejected), (10, 1, 1));
    assert_eq!(r.errors[0].line, 13);
    assert!(
        r.errors[0].message.contains("already appears on line 2"),
        "{}",
        r.errors[0].message
    );
    // Again: the same report, nothing changed.
    let again = import(&db.store, &path, &opts).await;
    assert_eq!((again.created, again.unchanged, again.rejected), (0, 11, 1));
    assert_eq!(again.errors[0].line, 13);
}

async fn a_row_rejected_for_its_organisation_is_still_the_first_of_its_address(db: TestDb) {
    let mut csv = String::from("email,organisation,kind\n");
    csv.push_str("a@example.org,Embassy of Peru,embassy\n");
    // Line 3 disagrees with line 2 about the organisation's kind.
    csv.push_str("b@example.org,Embassy of Peru,city\n");
    for i in 0..6 {
        csv.push_str(&format!("person{i}@example.org,,\n"));
    }
    // Line 10, in a later chunk: the address of line 3 again.
    csv.push_str("b@example.org,Embassy of Peru,embassy\n");
    let (_dir, path) = temp_csv(csv);
    let r = import(
        &db.store,
        &path,
        &ImportOptions {
            batch_size: 3,
            ..Default::default()
        },
    )
    .await;
    assert_eq!((r.created, r.rejected), (7, 2));
    let lines: Vec<u64> = r.errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [3, 10]);
    assert!(
        r.errors[1].message.contains("already appears on line 3"),
        "{}",
        r.errors[1].message
    );
}

async fn a_batch_of_several_chunks_is_one_transaction_that_catches_duplicates_across_them(
    db: TestDb,
) {
    // The reader hands over 2,000 rows at a time: three chunks, one batch.
    let mut csv = String::from("email,name,tags\n");
    for i in 0..4500 {
        csv.push_str(&format!("person{i}@example.org,P {i},press\n"));
    }
    csv.push_str("PERSON3@example.org,again,press\n");
    let (_dir, path) = temp_csv(csv);
    let r = import(
        &db.store,
        &path,
        &ImportOptions {
            batch_size: 10_000,
            tags: vec!["Press".into()],
            ..Default::default()
        },
    )
    .await;
    assert_eq!((r.created, r.rejected, r.batches_committed), (4500, 1, 1));
    assert_eq!(r.errors[0].line, 4502);
    assert!(
        r.errors[0].message.contains("already appears on line 5"),
        "{}",
        r.errors[0].message
    );
    // The row's own tag and --tag name the same tag: one link per contact.
    assert_eq!(r.tags_added, 4500);
    assert_eq!(emails(&db.store, "tag = press").await.len(), 4500);
}

async fn an_import_batch_that_refers_to_a_missing_organisation_fails_and_writes_nothing(
    db: TestDb,
) {
    use whatsup::store::import::NewRow;
    let mut session = db.store.import_session(false).await.unwrap();
    session.begin_batch().await.unwrap();
    let attrs = serde_json::Map::new();
    let rows = [NewRow {
        e: "orphan@example.org",
        n: "",
        t: "",
        o: Some(999_999),
        l: None,
        a: &attrs,
        s: "",
    }];
    // PostgreSQL's reference trigger refuses the rows; on SQLite the
    // batch's reference check does.
    let result = async {
        session
            .insert_contacts(&rows, "import:test", chrono::Utc::now())
            .await?;
        session.check_references(&[999_999], &[]).await
    }
    .await;
    let err = result.expect_err("a missing organisation must fail the batch");
    assert!(
        format!("{err:#}").contains("no longer exist")
            || format!("{err:#}").contains("organisation that does not exist"),
        "{err:#}"
    );
    session.rollback().await.unwrap();
    session.finish().await.unwrap();
    assert_eq!(db.store.count_contacts(None).await.unwrap(), 0);
}

/// Runs `sql` with integer parameters on either backend, as another writer
/// (or a buggy one) could, bypassing the store.
async fn raw(store: &Store, sql: &str, params: &[i64]) -> Result<u64, sqlx::Error> {
    macro_rules! run {
        ($pool:expr) => {{
            let mut q = sqlx::query(sql);
            for p in params {
                q = q.bind(*p);
            }
            q.execute($pool).await.map(|r| r.rows_affected())
        }};
    }
    match store {
        Store::Sqlite(p) => run!(p),
        Store::Postgres(p) => run!(p),
    }
}

/// `SELECT COUNT(*) …` with integer parameters on either backend.
async fn raw_count(store: &Store, sql: &str, params: &[i64]) -> i64 {
    macro_rules! run {
        ($pool:expr) => {{
            let mut q = sqlx::query_scalar(sql);
            for p in params {
                q = q.bind(*p);
            }
            q.fetch_one($pool).await.unwrap()
        }};
    }
    match store {
        Store::Sqlite(p) => run!(p),
        Store::Postgres(p) => run!(p),
    }
}

/// Asserts that `result` is a refused reference.
fn assert_refused(what: &str, result: Result<u64, sqlx::Error>) {
    let err = result.expect_err(what).to_string();
    assert!(
        err.to_lowercase().contains("foreign key")
            || err.contains("does not exist")
            || err.contains("cannot change"),
        "{what}: {err}"
    );
}

async fn deliveries_go_with_their_contact_and_never_refer_to_a_missing_one(db: TestDb) {
    fixture(&db).await;
    common::save_sample_issue(&db.store).await;
    let campaign = common::draft_campaign(&db.store, "references", "").await;
    whatsup::send::engine::start(&db.store, &db.config, campaign, &crate::common::actor())
        .await
        .unwrap();
    assert_eq!(db.store.delivery_counts(campaign).await.unwrap().total(), 8);
    assert!(db
        .store
        .remove_contact("anne.martin@paris.example.com", &crate::common::actor())
        .await
        .unwrap());
    assert_eq!(db.store.delivery_counts(campaign).await.unwrap().total(), 7);

    // Refused as a foreign key would refuse them (on PostgreSQL the checks
    // are statement triggers: migrations/postgres/0009).
    let insert =
        "INSERT INTO deliveries (campaign_id, contact_id, email, status, due_ms, updated_at) \
                  VALUES ($1, $2, 'nobody@example.org', 'pending', 0, '2026-01-01T00:00:00Z')";
    let missing = 999_999;
    assert_refused(
        "a missing contact",
        raw(&db.store, insert, &[campaign, missing]).await,
    );
    let contact = db
        .store
        .contact("jonas.weber@berlin.example.com")
        .await
        .unwrap()
        .unwrap();
    assert_refused(
        "a missing campaign",
        raw(&db.store, insert, &[missing, contact.id]).await,
    );
    let change = "UPDATE deliveries SET contact_id = $1 \
                  WHERE id = (SELECT MIN(id) FROM deliveries WHERE campaign_id = $2)";
    assert_refused(
        "moving a delivery to a missing contact",
        raw(&db.store, change, &[missing, campaign]).await,
    );
    assert_eq!(db.store.delivery_counts(campaign).await.unwrap().total(), 7);
}

async fn tag_links_and_organisations_follow_removals_and_never_refer_to_missing_rows(db: TestDb) {
    fixture(&db).await;
    let anne = db
        .store
        .contact("anne.martin@paris.example.com")
        .await
        .unwrap()
        .unwrap();
    let links = "SELECT COUNT(*) FROM contact_tags WHERE contact_id = $1";
    assert_eq!(raw_count(&db.store, links, &[anne.id]).await, 2);
    let missing = 999_999;

    // References to rows that do not exist are refused (on PostgreSQL by
    // the statement triggers of migrations/postgres/0010).
    assert_refused(
        "a link to a missing tag",
        raw(
            &db.store,
            "INSERT INTO contact_tags (contact_id, tag_id) VALUES ($1, $2)",
            &[anne.id, missing],
        )
        .await,
    );
    assert_refused(
        "a link to a missing contact",
        raw(
            &db.store,
            "INSERT INTO contact_tags (contact_id, tag_id) \
             SELECT $1, MIN(id) FROM tags",
            &[missing],
        )
        .await,
    );
    assert_refused(
        "a contact in a missing organisation",
        raw(
            &db.store,
            "INSERT INTO contacts (email, organisation_id, status_changed_at, created_at, updated_at) \
             VALUES ('orphan@example.org', $1, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', \
             '2026-01-01T00:00:00Z')",
            &[missing],
        )
        .await,
    );
    assert_refused(
        "moving a contact to a missing organisation",
        raw(
            &db.store,
            "UPDATE contacts SET organisation_id = $1 WHERE id = $2",
            &[missing, anne.id],
        )
        .await,
    );

    // Removals cascade.
    let press = "SELECT COUNT(*) FROM contact_tags WHERE tag_id = (SELECT id FROM tags WHERE name = 'press')";
    assert_eq!(raw_count(&db.store, press, &[]).await, 4);
    raw(&db.store, "DELETE FROM tags WHERE name = 'press'", &[])
        .await
        .unwrap();
    assert_eq!(raw_count(&db.store, press, &[]).await, 0);
    assert_eq!(raw_count(&db.store, links, &[anne.id]).await, 1);
    raw(
        &db.store,
        "DELETE FROM organisations WHERE id = $1",
        &[anne.organisation_id.unwrap()],
    )
    .await
    .unwrap();
    let anne = db.store.contact_by_id(anne.id).await.unwrap().unwrap();
    assert_eq!(anne.organisation_id, None);
    assert!(db
        .store
        .remove_contact(&anne.email, &crate::common::actor())
        .await
        .unwrap());
    assert_eq!(raw_count(&db.store, links, &[anne.id]).await, 0);
}

async fn a_file_that_contradicts_itself_about_an_organisation_is_reported(db: TestDb) {
    let (_dir, path) = temp_csv(
        "email,organisation,kind,country\n\
         a@example.org,Embassy of Chile in Japan,embassy,CL\n\
         b@example.org,Embassy of Chile in Japan,embassy,PE\n",
    );
    let r = import(&db.store, &path, &ImportOptions::default()).await;
    assert_eq!((r.created, r.rejected), (1, 1));
    let e = &r.errors[0];
    assert_eq!(
        (e.line, e.column, e.field.as_deref()),
        (3, Some(49), Some("country"))
    );
    assert!(
        e.message.contains("\"PE\" here but \"CL\" on line 2"),
        "{}",
        e.message
    );
}

async fn export_then_import_is_lossless(db: TestDb) {
    fixture(&db).await;
    let mut first = Vec::new();
    export(&db.store, None, Format::Csv, &mut first, None)
        .await
        .unwrap();
    let (_dir, path) = temp_csv(&first);
    let other = common::sqlite().await;
    let r = import(&other.store, &path, &ImportOptions::default()).await;
    assert_eq!((r.created, r.rejected), (8, 0));
    let mut second = Vec::new();
    export(&other.store, None, Format::Csv, &mut second, None)
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(first).unwrap(),
        String::from_utf8(second).unwrap()
    );
    let mut json = Vec::new();
    let seg = Segment::parse("kind = city").unwrap();
    let n = export(&db.store, Some(&seg), Format::Json, &mut json, None)
        .await
        .unwrap();
    assert_eq!(n, 3);
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert_eq!(v[0]["organisation"]["kind"], "city");
}

async fn the_seed_data_imports_without_a_single_rejected_row(db: TestDb) {
    for f in ["sister-cities.csv", "embassies.csv"] {
        let r = import(&db.store, &common::seed(f), &ImportOptions::default()).await;
        assert_eq!(r.rejected, 0, "{f}: {:?}", r.errors);
    }
    let cities = Segment::parse("kind = city and tag = sister-cities").unwrap();
    let orgs: BTreeSet<String> = db
        .store
        .list_contacts(Some(&cities), None, 0)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.org_name)
        .collect();
    assert_eq!(orgs.len(), 12, "{orgs:?}");
    let embassies = db.store.list_orgs(Some(OrgKind::Embassy)).await.unwrap();
    assert!(embassies.len() >= 140, "{} embassies", embassies.len());
    for c in db.store.list_contacts(None, None, 0).await.unwrap() {
        let domain = c.email.rsplit('@').next().unwrap();
        assert!(
            ["example.org", "example.com", "example.net"]
                .iter()
                .any(|d| domain == *d || domain.ends_with(&format!(".{d}"))),
            "{} is not on a reserved domain",
            c.email
        );
    }
}

/// A start check that sees every frozen recipient and refuses when told to.
struct Counting {
    seen: Vec<String>,
    pages: usize,
    refuse: bool,
}

impl whatsup::store::campaigns::FrozenCheck for Counting {
    async fn page(&mut self, rows: Vec<whatsup::store::campaigns::Claimed>) -> anyhow::Result<()> {
        self.pages += 1;
        self.seen.extend(rows.into_iter().map(|r| r.email));
        Ok(())
    }

    async fn verdict(&mut self) -> anyhow::Result<Option<String>> {
        Ok(self
            .refuse
            .then(|| format!("{} recipients seen; refused", self.seen.len())))
    }
}

async fn a_refused_start_freezes_nobody_and_leaves_the_campaign_blocked_with_its_reason(
    db: TestDb,
) {
    use whatsup::store::campaigns::Started;
    fixture(&db).await;
    common::save_sample_issue(&db.store).await;
    let id = common::draft_campaign(&db.store, "gate", "").await;
    let due: std::collections::HashMap<String, i64> = [(String::new(), 0)].into();
    let mut check = Counting {
        seen: Vec::new(),
        pages: 0,
        refuse: true,
    };
    let started = db
        .store
        .start_campaign(id, 1, None, &due, &common::actor(), &mut check)
        .await
        .unwrap();
    assert_eq!(
        started,
        Started::Blocked("8 recipients seen; refused".into())
    );
    assert_eq!(check.seen.len(), 8, "every frozen recipient was checked");
    let c = db.store.campaign_or_err(id).await.unwrap();
    assert_eq!(
        (c.state.as_str(), c.state_reason.as_str()),
        ("blocked", "8 recipients seen; refused")
    );
    assert_eq!(c.recipients, 0);
    assert_eq!(c.issue_revision, None);
    assert_eq!(
        db.store.delivery_counts(id).await.unwrap().total(),
        0,
        "nothing frozen"
    );
    let events = db.store.campaign_events(id).await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(
        (last.old_state.as_deref(), last.new_state.as_str()),
        (Some("draft"), "blocked")
    );
    // A blocked campaign may be scheduled again, and started.
    assert!(db
        .store
        .schedule_campaign(
            id,
            &whatsup::store::campaigns::Schedule::At(0),
            &common::actor()
        )
        .await
        .unwrap());
    let mut check = Counting {
        seen: Vec::new(),
        pages: 0,
        refuse: false,
    };
    let started = db
        .store
        .start_campaign(id, 1, None, &due, &common::actor(), &mut check)
        .await
        .unwrap();
    assert_eq!(started, Started::Running(8));
    assert_eq!(check.pages, 1);
    let mut seen = check.seen.clone();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 8);
    assert_eq!(db.store.delivery_counts(id).await.unwrap().pending, 8);
    // Running: not startable again, and the check is not asked.
    let mut check = Counting {
        seen: Vec::new(),
        pages: 0,
        refuse: true,
    };
    let again = db
        .store
        .start_campaign(id, 1, None, &due, &common::actor(), &mut check)
        .await
        .unwrap();
    assert_eq!(again, Started::NotStartable);
    assert_eq!(check.pages, 0);
}

async fn an_override_is_kept_on_the_campaign_and_written_to_its_history(db: TestDb) {
    use whatsup::store::campaigns::CheckOverride;
    common::save_sample_issue(&db.store).await;
    let id = common::draft_campaign(&db.store, "override", "").await;
    let o = CheckOverride {
        revision: 1,
        reason: "alt text is on the web page".into(),
        findings: vec!["image-alt-missing issue 214 revision 1:64:9".into()],
    };
    db.store
        .record_override(id, &o, &whatsup::domain::Actor::system("editor"))
        .await
        .unwrap();
    let c = db.store.campaign_or_err(id).await.unwrap();
    assert_eq!(c.override_for(1), Some(o.clone()));
    assert_eq!(c.override_for(2), None, "another revision is not covered");
    assert_eq!(c.override_actor, "system:editor");
    let events = db.store.campaign_events(id).await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(
        (
            last.old_state.as_deref(),
            last.new_state.as_str(),
            last.actor.as_str()
        ),
        (Some("draft"), "draft", "system:editor")
    );
    assert_eq!(
        last.reason,
        "preflight overridden for issue revision 1: alt text is on the web page \
         (covers: image-alt-missing issue 214 revision 1:64:9)"
    );
    assert!(db
        .store
        .record_override(999_999, &o, &common::actor())
        .await
        .is_err());
}

async fn a_contacts_salutation_is_stored_edited_imported_and_exported(db: TestDb) {
    let mut c = new_contact("envoy@se.embassy.example.org");
    c.salutation = " Your Excellency ".into();
    let added = db.store.add_contact(&c, &common::actor()).await.unwrap();
    assert_eq!(added.salutation, "Your Excellency");
    let edited = db
        .store
        .edit_contact(
            "envoy@se.embassy.example.org",
            &ContactPatch {
                salutation: Some("Dear Ambassador Lind".into()),
                ..Default::default()
            },
            &common::actor(),
        )
        .await
        .unwrap();
    assert_eq!(edited.salutation, "Dear Ambassador Lind");
    let (_dir, path) = common::temp_csv(
        "email,name,salutation\nenvoy@se.embassy.example.org,Eva Lind,\n\
         consul@no.embassy.example.org,Ola Nordmann,Dear Consul General\n",
    );
    let report = common::import(
        &db.store,
        &path,
        &whatsup::import::ImportOptions {
            update: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!((report.created, report.rejected), (1, 0), "{report:?}");
    let kept = db
        .store
        .contact("envoy@se.embassy.example.org")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        kept.salutation, "Dear Ambassador Lind",
        "an empty field keeps it"
    );
    let new = db
        .store
        .contact("consul@no.embassy.example.org")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(new.salutation, "Dear Consul General");
    assert!(new.attributes.0.is_empty(), "a column, not an attribute");
    let (_dir, bad) = common::temp_csv(format!(
        "email,salutation\nlong@example.org,{}\n",
        "x".repeat(201)
    ));
    let report = common::import(&db.store, &bad, &Default::default()).await;
    assert_eq!(report.rejected, 1, "{report:?}");
}

/// Runs the migrations up to `version` only.
async fn migrate_to(store: &Store, version: i64) {
    migrate_only(store, |v| v <= version).await
}

/// Runs the migrations whose version `keep` accepts.
async fn migrate_only(store: &Store, keep: impl Fn(i64) -> bool) {
    macro_rules! run {
        ($m:expr, $p:expr) => {{
            let mut m = $m;
            m.migrations = m
                .migrations
                .iter()
                .filter(|x| keep(x.version))
                .cloned()
                .collect::<Vec<_>>()
                .into();
            m.run($p).await.unwrap();
        }};
    }
    match store {
        Store::Sqlite(p) => run!(sqlx::migrate!("migrations/sqlite"), p),
        Store::Postgres(p) => run!(sqlx::migrate!("migrations/postgres"), p),
    }
}

/// A database at schema version 10 with a campaign, its history, a
/// delivery and a salutation kept as an attribute, then migrated: nothing
/// is lost, references still hold and cascade, and `blocked` is allowed.
async fn the_blocked_state_migration_keeps_campaigns_their_history_and_references(db: TestDb) {
    migrate_to(&db.store, 10).await;
    let postgres = matches!(db.store, Store::Postgres(_));
    for sql in [
        "INSERT INTO contacts (id, email, name, status_changed_at, attributes, created_at, updated_at) \
         VALUES (1, 'a@example.org', 'A', '2026-01-01T00:00:00Z', '{\"salutation\": \" Your Excellency \", \"dept\": \"x\"}', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
        "INSERT INTO campaigns (id, name, issue_number, from_name, from_address, transport, state, \
         created_at, updated_at) VALUES (7, 'Old', 214, 'T', 't@example.org', 'outbox', 'finished', \
         '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
        "INSERT INTO campaign_events (campaign_id, old_state, new_state, actor, created_at) \
         VALUES (7, 'running', 'finished', 'w', '2026-01-01T00:00:00Z')",
        "INSERT INTO deliveries (campaign_id, contact_id, email, status, due_ms, updated_at) \
         VALUES (7, 1, 'a@example.org', 'sent', 0, '2026-01-01T00:00:00Z')",
    ] {
        raw(&db.store, sql, &[]).await.unwrap();
    }
    db.store.migrate().await.unwrap();
    db.store.migrate().await.unwrap();
    let c = db.store.campaign_or_err(7).await.unwrap();
    assert_eq!((c.name.as_str(), c.state.as_str()), ("Old", "finished"));
    assert_eq!(c.override_revision, None);
    assert_eq!(db.store.campaign_events(7).await.unwrap().len(), 1);
    assert_eq!(db.store.delivery_counts(7).await.unwrap().sent, 1);
    let a = db.store.contact("a@example.org").await.unwrap().unwrap();
    assert_eq!(a.salutation, "Your Excellency");
    assert_eq!(a.attributes.0.get("dept"), Some(&serde_json::json!("x")));
    assert!(!a.attributes.0.contains_key("salutation"));
    assert!(db
        .store
        .move_campaign(
            7,
            &[CampaignState::Finished],
            CampaignState::Blocked,
            &common::actor(),
            "x"
        )
        .await
        .unwrap());
    assert_refused(
        "an event of a missing campaign",
        raw(
            &db.store,
            "INSERT INTO campaign_events (campaign_id, new_state, actor, created_at) \
             VALUES (999, 'draft', 'x', '2026-01-01T00:00:00Z')",
            &[],
        )
        .await,
    );
    let bad_state = raw(
        &db.store,
        "UPDATE campaigns SET state = 'exploded' WHERE id = $1",
        &[7],
    )
    .await;
    assert!(bad_state.is_err(), "the CHECK still holds");
    let index = if postgres {
        "SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'campaigns_state'"
    } else {
        "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'index' AND name = 'campaigns_state'"
    };
    assert_eq!(raw_count(&db.store, index, &[]).await, 1);
    raw(&db.store, "DELETE FROM campaigns WHERE id = $1", &[7])
        .await
        .unwrap();
    assert_eq!(
        db.store.delivery_counts(7).await.unwrap().total(),
        0,
        "cascaded"
    );
    assert!(
        db.store.campaign_events(7).await.unwrap().is_empty(),
        "cascaded"
    );
}

/// A database upgraded by a binary that did not have migration 0011 yet
/// (its later migrations applied) takes it on the next `migrate`.
async fn a_database_migrated_without_0011_takes_it_later(db: TestDb) {
    migrate_only(&db.store, |v| v != 11).await;
    raw(
        &db.store,
        "INSERT INTO campaigns (id, name, issue_number, from_name, from_address, transport, state, \
         created_at, updated_at) VALUES (3, 'Later', 214, 'T', 't@example.org', 'outbox', 'draft', \
         '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
        &[],
    )
    .await
    .unwrap();
    db.store.migrate().await.unwrap();
    assert!(db
        .store
        .move_campaign(
            3,
            &[CampaignState::Draft],
            CampaignState::Blocked,
            &common::actor(),
            "x"
        )
        .await
        .unwrap());
    let c = db.store.campaign_or_err(3).await.unwrap();
    assert_eq!(
        (c.state.as_str(), c.override_findings.as_str()),
        ("blocked", "[]")
    );
}

mod migration {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::the_blocked_state_migration_keeps_campaigns_their_history_and_references(
            super::common::sqlite_migrated(false).await,
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(db) = super::common::postgres_migrated(false).await {
            super::the_blocked_state_migration_keeps_campaigns_their_history_and_references(db)
                .await
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_without_0011() {
        super::a_database_migrated_without_0011_takes_it_later(
            super::common::sqlite_migrated(false).await,
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_without_0011() {
        if let Some(db) = super::common::postgres_migrated(false).await {
            super::a_database_migrated_without_0011_takes_it_later(db).await
        }
    }
}

/// One event of `kind` for `email`, matched to its contact as given.
fn bounce_event(contact: i64, email: &str, kind: &str, verified: bool) -> NewBounceEvent {
    NewBounceEvent {
        contact_id: Some(contact),
        campaign_id: None,
        delivery_id: None,
        email: email.into(),
        kind: kind.into(),
        reason: "user_unknown".into(),
        status: "5.1.1".into(),
        diagnostic: "550 5.1.1 user unknown".into(),
        matched_by: if verified { "verp" } else { "address" }.into(),
        verified,
    }
}

fn bounce_message(key: &str, events: Vec<NewBounceEvent>) -> NewBounceMessage {
    NewBounceMessage {
        sha256: key.into(),
        message_id: format!("<{key}@example.net>"),
        source: "test".into(),
        format: "dsn".into(),
        events,
    }
}

async fn an_unverified_bounce_is_recorded_but_changes_no_status_unless_the_policy_allows(
    db: TestDb,
) {
    fixture(&db).await;
    let store = &db.store;
    let id = |email: &'static str| async move { store.contact(email).await.unwrap().unwrap().id };
    let (anne, jonas) = (
        id("anne.martin@paris.example.com").await,
        id("jonas.weber@berlin.example.com").await,
    );
    let policy = BouncePolicy {
        soft_threshold: 2,
        ..BouncePolicy::default()
    };
    let record = |key: &'static str, e: NewBounceEvent, policy: BouncePolicy| async move {
        let out = store
            .record_bounce(&bounce_message(key, vec![e]), &policy, "bounce:test")
            .await
            .unwrap();
        assert!(!out.duplicate);
        out.events[0].clone()
    };
    let status = |id: i64| async move { store.contact_by_id(id).await.unwrap().unwrap().status };

    // A hard bounce and a complaint that are not verified: recorded only.
    for (key, kind) in [("h1", "hard"), ("c1", "complaint")] {
        let e = record(
            key,
            bounce_event(anne, "anne.martin@paris.example.com", kind, false),
            policy,
        )
        .await;
        assert_eq!((e.verified, e.action.as_str()), (false, UNVERIFIED_ACTION));
        let row = store.bounce_by_id(e.event_id).await.unwrap().unwrap();
        assert!(!row.verified);
    }
    assert_eq!(status(anne).await, "active");
    assert!(
        store.status_history(anne).await.unwrap().is_empty(),
        "no status event"
    );
    // Unverified soft bounces do not count towards the threshold.
    for key in ["s1", "s2"] {
        let e = record(
            key,
            bounce_event(anne, "anne.martin@paris.example.com", "soft", false),
            policy,
        )
        .await;
        assert_eq!(e.action, UNVERIFIED_ACTION);
    }
    let e = record(
        "s3",
        bounce_event(anne, "anne.martin@paris.example.com", "soft", true),
        policy,
    )
    .await;
    assert_eq!(e.action, "counted 1 of 2");
    // A verified hard bounce acts, with `verified` in the evidence.
    let e = record(
        "h2",
        bounce_event(anne, "anne.martin@paris.example.com", "hard", true),
        policy,
    )
    .await;
    assert_eq!((e.verified, e.action.as_str()), (true, "bounced"));
    let history = store.status_history(anne).await.unwrap();
    assert_eq!(history.last().unwrap().evidence.0["verified"], true);
    // With act_on_unverified, an unverified one acts too.
    let open = BouncePolicy {
        act_on_unverified: true,
        ..policy
    };
    let e = record(
        "h3",
        bounce_event(jonas, "jonas.weber@berlin.example.com", "hard", false),
        open,
    )
    .await;
    assert_eq!((e.verified, e.action.as_str()), (false, "bounced"));
    assert_eq!(status(jonas).await, "bounced");

    // Listed, reported and counted as such.
    let rows = store.list_bounces(&Default::default()).await.unwrap();
    assert_eq!(rows.iter().filter(|r| !r.verified).count(), 5);
    let report = store.bounce_report(&Default::default()).await.unwrap();
    let anne_line = report
        .iter()
        .find(|r| r.email == "anne.martin@paris.example.com")
        .unwrap();
    assert_eq!((anne_line.events, anne_line.unverified), (6, 4));
    // Filtered by kind, by whether verified, and both.
    let only = |kind: Option<&str>, verified: Option<bool>| BounceFilter {
        kind: kind.map(String::from),
        verified,
        ..Default::default()
    };
    let n = |f: BounceFilter| async move { store.list_bounces(&f).await.unwrap().len() };
    assert_eq!(n(only(Some("hard"), None)).await, 3);
    assert_eq!(n(only(Some("hard"), Some(false))).await, 2);
    assert_eq!(n(only(None, Some(true))).await, 2);
    assert_eq!(n(only(Some("complaint"), Some(true))).await, 0);
    let reason = |r: &str| BounceFilter {
        reason: Some(r.into()),
        ..Default::default()
    };
    assert_eq!(n(reason("user_unknown")).await, 7);
    assert_eq!(n(reason("mailbox_full")).await, 0);
    let report = store.bounce_report(&only(None, Some(false))).await.unwrap();
    let anne_line = report
        .iter()
        .find(|r| r.email == "anne.martin@paris.example.com")
        .unwrap();
    assert_eq!((anne_line.events, anne_line.unverified), (4, 4));
    let kinds = store.bounce_reasons().await.unwrap();
    assert_eq!(kinds.iter().map(|k| k.2).sum::<i64>(), 7);
    let m = store.store_metrics().await.unwrap();
    assert_eq!((m.bounces, m.unverified_bounces), (7, 5));
}

async fn a_deliverys_time_and_stored_message_id_are_found_for_the_web_and_the_intake(db: TestDb) {
    fixture(&db).await;
    common::save_sample_issue(&db.store).await;
    let campaign = common::draft_campaign(&db.store, "lookups", "").await;
    whatsup::send::engine::start(&db.store, &db.config, campaign, &crate::common::actor())
        .await
        .unwrap();
    let anne = db
        .store
        .contact("anne.martin@paris.example.com")
        .await
        .unwrap()
        .unwrap();
    // Not sent yet: the row's last change.
    let before = chrono::Utc::now() - chrono::Duration::minutes(5);
    let t = db.store.delivery_time(campaign, anne.id).await.unwrap();
    assert!(t.is_some_and(|t| t > before), "{t:?}");
    assert_eq!(
        db.store.delivery_time(campaign + 1, anne.id).await.unwrap(),
        None
    );
    assert_eq!(
        db.store.delivery_time(campaign, 999_999).await.unwrap(),
        None
    );
    // Found by its Message-ID with or without brackets; the stored form is
    // returned so the intake can tell a random one from an old one.
    let mid = "<0123456789abcdef0123456789abcdef@example.org>";
    let sql = format!(
        "UPDATE deliveries SET message_id = '{mid}' WHERE campaign_id = $1 AND contact_id = $2"
    );
    assert_eq!(raw(&db.store, &sql, &[campaign, anne.id]).await.unwrap(), 1);
    for asked in [mid, mid.trim_matches(['<', '>'])] {
        let (d, stored) = db
            .store
            .delivery_by_message_id(asked)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (d.contact_id, d.campaign_id, stored.as_str()),
            (anne.id, campaign, mid)
        );
    }
    assert!(db
        .store
        .delivery_by_message_id("<other@example.org>")
        .await
        .unwrap()
        .is_none());
}

on_both_backends!(
    a_refused_start_freezes_nobody_and_leaves_the_campaign_blocked_with_its_reason,
    an_override_is_kept_on_the_campaign_and_written_to_its_history,
    a_contacts_salutation_is_stored_edited_imported_and_exported,
    adding_a_contact_normalises_the_address_and_refuses_a_case_variant,
    organisations_are_found_by_name_case_insensitively_and_edited,
    a_status_change_writes_the_audit_trail_once,
    editing_a_contact_changes_fields_tags_and_attributes,
    segments_choose_exactly_the_expected_contacts,
    injection_attempts_in_segments_match_nothing_and_change_nothing,
    importing_the_same_file_twice_changes_nothing,
    update_merges_changed_fields_and_keeps_the_rest,
    an_import_never_reactivates_a_suppressed_contact_unless_forced,
    a_dry_run_reports_but_writes_nothing,
    duplicates_are_caught_across_batches,
    a_contact_that_existed_before_the_import_is_a_duplicate_when_it_appears_twice,
    a_row_rejected_for_its_organisation_is_still_the_first_of_its_address,
    a_batch_of_several_chunks_is_one_transaction_that_catches_duplicates_across_them,
    an_import_batch_that_refers_to_a_missing_organisation_fails_and_writes_nothing,
    deliveries_go_with_their_contact_and_never_refer_to_a_missing_one,
    tag_links_and_organisations_follow_removals_and_never_refer_to_missing_rows,
    a_file_that_contradicts_itself_about_an_organisation_is_reported,
    export_then_import_is_lossless,
    the_seed_data_imports_without_a_single_rejected_row,
    an_unverified_bounce_is_recorded_but_changes_no_status_unless_the_policy_allows,
    a_deliverys_time_and_stored_message_id_are_found_for_the_web_and_the_intake,
);

/// PostgreSQL only: SQLite's import batch holds the write lock from before
/// its addresses are looked up, so no other writer can add one meanwhile.
mod postgres_only {
    use super::*;
    use whatsup::store::import::NewRow;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_address_another_writer_adds_during_an_import_batch_is_skipped_not_an_error() {
        let Some(db) = common::postgres().await else {
            return;
        };
        let mut session = db.store.import_session(false).await.unwrap();
        session.begin_batch().await.unwrap();
        // Another connection adds one of the batch's addresses and commits.
        db.store
            .add_contact(&new_contact("late@example.org"), &crate::common::actor())
            .await
            .unwrap();
        let attrs = serde_json::Map::new();
        let row = |e| NewRow {
            e,
            n: "From the file",
            t: "",
            o: None,
            l: None,
            a: &attrs,
            s: "",
        };
        let rows = [row("late@example.org"), row("fresh@example.org")];
        let inserted = session
            .insert_contacts(&rows, "import:test", chrono::Utc::now())
            .await
            .unwrap();
        let emails: Vec<&str> = inserted.iter().map(|(_, e)| e.as_str()).collect();
        assert_eq!(emails, ["fresh@example.org"]);
        session.commit_batch().await.unwrap();
        session.finish().await.unwrap();
        assert_eq!(db.store.count_contacts(None).await.unwrap(), 2);
        let late = db.store.contact("late@example.org").await.unwrap().unwrap();
        assert_eq!(late.name, "Test Person");
    }
}

/// SQLite only: the import's connection checks references per batch with
/// its foreign keys off, and must never go back to the pool that way.
mod sqlite_only {
    use super::*;

    /// A store on the same file whose pool has a single connection, so the
    /// next user gets the connection the import had.
    async fn one_connection(db: &TestDb) -> Store {
        let mut config = db.config.clone();
        config.database.max_connections = 1;
        Store::open(&config).await.unwrap()
    }

    async fn foreign_keys_are_enforced(store: &Store) -> bool {
        let mut orphan = new_contact("orphan@example.org");
        orphan.organisation_id = Some(999_999);
        store
            .add_contact(&orphan, &crate::common::actor())
            .await
            .is_err()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_import_connection_goes_back_to_the_pool_with_foreign_keys_on() {
        let db = common::sqlite().await;
        let store = one_connection(&db).await;
        let (_dir, path) =
            temp_csv("email,organisation,kind\na@example.org,Embassy of Peru,embassy\n");
        let r = import(&store, &path, &ImportOptions::default()).await;
        assert_eq!(r.created, 1);
        assert!(foreign_keys_are_enforced(&store).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_organisation_removed_between_batches_fails_the_next_batch_that_refers_to_it() {
        let db = common::sqlite().await;
        let org = db
            .store
            .add_org(
                &OrgFields {
                    kind: Some(OrgKind::Embassy),
                    name: Some("Embassy of Peru".into()),
                    ..Default::default()
                },
                &crate::common::actor(),
            )
            .await
            .unwrap();
        let mut session = db.store.import_session(false).await.unwrap();
        session.begin_batch().await.unwrap();
        session.check_references(&[org.id], &[]).await.unwrap();
        session.commit_batch().await.unwrap();
        // Another writer removes it between two batches (whatsup itself
        // has no command that does).
        let Store::Sqlite(pool) = &db.store else {
            unreachable!()
        };
        sqlx::query("DELETE FROM organisations WHERE id = ?")
            .bind(org.id)
            .execute(pool)
            .await
            .unwrap();
        session.begin_batch().await.unwrap();
        let err = session.check_references(&[org.id], &[]).await.unwrap_err();
        assert!(
            format!("{err:#}").contains("1 of the organisations"),
            "{err:#}"
        );
        session.rollback().await.unwrap();
        session.finish().await.unwrap();
    }

    async fn page_size(store: &Store) -> i64 {
        let Store::Sqlite(pool) = store else {
            unreachable!()
        };
        sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(pool)
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_new_database_file_gets_the_configured_page_size_and_an_existing_one_keeps_its_own() {
        let db = common::sqlite().await;
        assert_eq!(page_size(&db.store).await, 16384);
        let dir = tempfile::tempdir().unwrap();
        let mut config = db.config.clone();
        config.database.url = Secret::new(format!(
            "sqlite://{}",
            dir.path().join("small.db").display()
        ));
        config.database.sqlite_page_size = 4096;
        let small = Store::open(&config).await.unwrap();
        assert_eq!(page_size(&small).await, 4096);
        // Reopened with another setting, the file keeps the size it was made with.
        small.close().await;
        config.database.sqlite_page_size = 65536;
        assert_eq!(page_size(&Store::open(&config).await.unwrap()).await, 4096);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_import_session_dropped_without_finishing_closes_its_connection() {
        let db = common::sqlite().await;
        let store = one_connection(&db).await;
        let session = store.import_session(false).await.unwrap();
        drop(session);
        // The pool opens a fresh connection, with its foreign keys on.
        assert!(foreign_keys_are_enforced(&store).await);
    }
}
